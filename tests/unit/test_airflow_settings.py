"""`make settings`: airflow_settings.yaml (Astro format) applied to a plain Airflow, idempotently,
keeping secrets set outside the file, and a malformed file refused with the key named."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
SCRIPT = str(ROOT / "scripts" / "apply_airflow_settings.py")
AIRFLOW = str(Path(sys.executable).parent / "airflow")


@pytest.fixture()
def airflow_home(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(AIRFLOW_HOME=str(tmp_path), AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{tmp_path}/airflow.db",
               AIRFLOW__CORE__LOAD_EXAMPLES="False", AIRFLOW__CORE__FERNET_KEY="Jb5K2Z0kH8nQk7m0W8Jq2QmZb3fJkq4YH6m8vQxkJ2A=")
    subprocess.run([AIRFLOW, "db", "migrate"], env=env, check=True, capture_output=True, timeout=300)
    return env


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, timeout=300)


def _get(env: dict[str, str], *args: str) -> list[dict]:
    out = subprocess.run([AIRFLOW, *args, "-o", "json"], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout[out.stdout.find("["):])


READ_CONNECTIONS = """
import json
from airflow.models.connection import Connection
from airflow.utils.session import create_session
with create_session() as s:
    print(json.dumps({c.conn_id: {"conn_type": c.conn_type, "description": c.description, "login": c.login,
                                  "password": c.password, "extra_dejson": c.extra_dejson,
                                  "is_encrypted": c.is_encrypted} for c in s.query(Connection)}))
"""


def _connections(env: dict[str, str]) -> dict[str, dict]:
    out = subprocess.run([sys.executable, "-c", READ_CONNECTIONS], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_settings_are_applied_idempotently_and_keep_secrets(airflow_home):
    env = airflow_home
    # a secret set from outside (a secrets step of the deployment) before the settings are applied
    subprocess.run([AIRFLOW, "connections", "add", "aws_mturk", "--conn-json", json.dumps(
        {"conn_type": "aws", "login": "AKIDMTURK", "password": "mturk-secret-value"})], env=env, check=True,
        capture_output=True)
    first = _run(env, SCRIPT)
    assert first.returncode == 0, first.stderr
    assert "connections_created 5, connections_updated 1" in first.stdout
    assert "mturk-secret-value" not in first.stdout + first.stderr
    settings = yaml.safe_load((ROOT / "airflow_settings.yaml").read_text())["airflow"]
    conns = _connections(env)
    assert set(conns) == {c["conn_id"] for c in settings["connections"]}
    for c in settings["connections"]:
        got = conns[c["conn_id"]]
        assert got["conn_type"] == c["conn_type"] and got["description"] == c["conn_description"]
        assert {k: got["extra_dejson"].get(k) for k in c.get("conn_extra", {})} == c.get("conn_extra", {})
    mturk = conns["aws_mturk"]
    assert mturk["login"] == "AKIDMTURK" and mturk["password"] == "mturk-secret-value"  # kept
    assert mturk["extra_dejson"]["region_name"] == "us-east-1" and mturk["is_encrypted"] is True
    pools = {p["pool"]: p for p in _get(env, "pools", "list")}
    assert pools["gpu"]["slots"] == "1"
    # a second run changes nothing
    second = _run(env, SCRIPT)
    assert second.returncode == 0 and "connections_created 0, connections_updated 0, connections_unchanged 6" in second.stdout
    assert _connections(env) == conns


@pytest.mark.parametrize("bad,message", [
    ({"pools": [{"pool_name": "gpu", "pool_slot": 1}, {"pool_name": "x", "pool_slot": 0}]},
     "airflow.pools[1].pool_slot: expected a positive integer"),
    ({"connections": [{"conn_type": "aws"}]}, "airflow.connections[0].conn_id: missing"),
    ({"connections": [{"conn_id": "c", "conn_type": "http", "conn_password": "x", "conn_hots": "h"}]},
     "airflow.connections[0].conn_hots: unknown key"),
    ({"variables": [{"variable_name": "v"}]}, "airflow.variables[0].variable_value: missing"),
])
def test_a_malformed_file_is_refused_naming_the_key(tmp_path, bad, message):
    path = tmp_path / "airflow_settings.yaml"
    path.write_text(yaml.safe_dump({"airflow": bad}))
    out = _run(dict(os.environ), SCRIPT, str(path))
    assert out.returncode == 2 and message in out.stderr
