"""`make settings`: airflow_settings.yaml (Astro format) applied to a plain Airflow, idempotently,
keeping secrets set outside the file, and a malformed file refused with the key named.

Every process that touches the metadata DB pays Airflow's import (5-15 s), so they are few: the
script runs as `python scripts/apply_airflow_settings.py` where a user runs it (`make settings`,
an unmigrated DB, a malformed file), and otherwise in a *driver* process that runs several steps
in one interpreter: the script file itself (`runpy`, as `python` runs it: its exit code and what it
prints), a snapshot of the DB through Airflow's models, and Airflow CLI commands (`airflow pools
list -o json`, through Airflow's own parser). A malformed file never reaches Airflow, so those
cases call the script's `main` in the test process.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from tests._modules import load_file

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = str(ROOT / "scripts" / "apply_airflow_settings.py")
AIRFLOW = str(Path(sys.executable).parent / "airflow")


def _env(home: Path) -> dict[str, str]:
    from cryptography.fernet import Fernet

    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(AIRFLOW_HOME=str(home), AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home}/airflow.db",
               AIRFLOW__CORE__LOAD_EXAMPLES="False", AIRFLOW__CORE__FERNET_KEY=Fernet.generate_key().decode())
    return env


@pytest.fixture(scope="module")
def migrated_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A freshly migrated SQLite metadata DB (copied for each test: one `airflow db migrate`)."""
    home = tmp_path_factory.mktemp("airflow-template")
    subprocess.run([AIRFLOW, "db", "migrate"], env=_env(home), check=True, capture_output=True, timeout=600)
    return home / "airflow.db"


@pytest.fixture(scope="module")
def settings_script() -> ModuleType:
    """scripts/apply_airflow_settings.py as a module (its functions and `main`)."""
    return load_file(SCRIPT, "apply_airflow_settings_under_test")


@pytest.fixture()
def airflow_env(migrated_db: Path, tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "airflow"
    home.mkdir()
    shutil.copy(migrated_db, home / "airflow.db")
    return _env(home)


def _apply(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`python scripts/apply_airflow_settings.py ARGS`: a real process."""
    return subprocess.run([sys.executable, SCRIPT, *args], env=env, capture_output=True, text=True, timeout=600)


def _counts(out: subprocess.CompletedProcess[str]) -> dict[str, int]:
    assert out.returncode == 0, out.stderr
    line = out.stdout.strip().splitlines()[-1].split(": ", 2)[2]
    return {k: int(v) for k, v in (part.rsplit(" ", 1) for part in line.split(", "))}


MARK = "@@llmops-driver-step@@"
DRIVER = """
import contextlib, io, json, runpy, sys

SCRIPT, MARK, STEPS, RESULT = sys.argv[1:5]
steps = json.loads(STEPS)


def snapshot():  # what the metadata DB holds, read through Airflow's models (passwords decrypted)
    from airflow.models.connection import Connection
    from airflow.models.pool import Pool
    from airflow.models.variable import Variable
    from airflow.utils.session import create_session
    with create_session() as s:
        return {
            "connections": {c.conn_id: {"conn_type": c.conn_type, "description": c.description, "host": c.host,
                                        "login": c.login, "password": c.password, "schema": c.schema,
                                        "port": c.port, "extra": c.extra_dejson, "is_encrypted": c.is_encrypted,
                                        "is_extra_encrypted": c.is_extra_encrypted} for c in s.query(Connection)},
            "pools": {p.pool: [p.slots, p.description] for p in s.query(Pool)},
            "variables": {v.key: v.val for v in s.query(Variable)}}


def airflow_cli(argv):  # what the `airflow` console script does with ARGV, its stdout returned
    from airflow.cli import cli_parser
    from airflow.cli.utils import redirect_stdout_log_handlers_to_stderr
    args = cli_parser.get_parser().parse_args(argv)
    if hasattr(args, "output"):
        redirect_stdout_log_handlers_to_stderr()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        args.func(args)
    return out.getvalue()


def apply(argv):  # `python scripts/apply_airflow_settings.py ARGV`: its exit code
    sys.argv = [SCRIPT, *argv]
    try:
        runpy.run_path(SCRIPT, run_name="__main__")
    except SystemExit as exc:
        return exc.code
    return "returned without exit"


results = []
for kind, arg in steps:
    for stream in (sys.stdout, sys.stderr):  # what each step prints lies between two marks
        stream.flush()
        print(MARK, file=stream, flush=True)
    if kind == "apply":
        results.append(apply(arg))
    elif kind == "snapshot":
        results.append(snapshot())
    elif kind == "cli":
        results.append(airflow_cli(arg))
    elif kind == "write":
        with open(arg[0], "w") as f:
            f.write(arg[1])
        results.append(None)
for stream in (sys.stdout, sys.stderr):
    stream.flush()
with open(RESULT, "w") as f:  # never printed: snapshots hold decrypted secrets
    json.dump(results, f)
"""


def _drive(env: dict[str, str], tmp_path: Path, *steps: tuple[str, Any]) -> tuple[list[Any], str]:
    """Run ``steps`` in one driver process: ``("apply", [ARGS])`` gives a completed process of the
    script (exit code, what it printed), ``("snapshot", None)`` what the DB holds,
    ``("cli", [ARGS])`` the parsed JSON of ``airflow ARGS -o json``, ``("write", [PATH, TEXT])``
    writes a file. Also returns all the driver printed (stdout + stderr)."""
    result = tmp_path / "driver-result.json"
    proc = subprocess.run([sys.executable, "-c", DRIVER, SCRIPT, MARK, json.dumps(steps), str(result)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    outs, errs = proc.stdout.split(MARK + "\n")[1:], proc.stderr.split(MARK + "\n")[1:]
    values = json.loads(result.read_text())
    out: list[Any] = []
    for (kind, arg), value, stdout, stderr in zip(steps, values, outs, errs, strict=True):
        if kind == "apply":
            out.append(subprocess.CompletedProcess([SCRIPT, *arg], value, stdout, stderr))
        elif kind == "cli":
            out.append(json.loads(value[value.find("["):]))
        else:
            out.append(value)
    return out, proc.stdout + proc.stderr


@pytest.mark.slow
def test_the_project_settings_apply_idempotently_and_keep_secrets(airflow_env, tmp_path):
    """`make settings` in real processes: the secrets step (`airflow connections add`), then the
    script on the project's file; then one driver checks the DB, reads it back through the CLI and
    applies the file again."""
    env = airflow_env
    # a secret set from outside (the deployment's secrets step) before the settings are applied
    subprocess.run([AIRFLOW, "connections", "add", "aws_mturk", "--conn-json", json.dumps(
        {"conn_type": "aws", "login": "AKIDMTURK", "password": "mturk-secret-value",
         "extra": {"aws_secret_access_key": "mturk-extra-secret"}})], env=env, check=True, capture_output=True)
    settings = yaml.safe_load((ROOT / "airflow_settings.yaml").read_text())["airflow"]
    n_conns = len(settings["connections"])

    first = _apply(env)  # the default file: the project's airflow_settings.yaml
    assert _counts(first) == {
        "connections_created": n_conns - 1, "connections_updated": 1, "connections_unchanged": 0,
        "pools_created": len(settings["pools"]), "pools_updated": 0, "pools_unchanged": 0,
        "variables_created": len(settings["variables"]), "variables_updated": 0, "variables_unchanged": 0}
    assert "mturk-secret-value" not in first.stdout + first.stderr
    assert "mturk-extra-secret" not in first.stdout + first.stderr

    state, pools_json, variables_json, second, again = _drive(
        env, tmp_path, ("snapshot", None), ("cli", ["pools", "list", "-o", "json"]),
        ("cli", ["variables", "list", "-o", "json"]), ("apply", [str(ROOT / "airflow_settings.yaml")]),
        ("snapshot", None))[0]
    conns = state["connections"]
    assert set(conns) == {c["conn_id"] for c in settings["connections"]}
    for c in settings["connections"]:
        got = conns[c["conn_id"]]
        assert got["conn_type"] == c["conn_type"] and got["description"] == c["conn_description"]
        assert (got["host"], got["port"], got["schema"]) == (c.get("conn_host"), c.get("conn_port"),
                                                             c.get("conn_schema"))
        assert {k: got["extra"].get(k) for k in c.get("conn_extra", {})} == c.get("conn_extra", {})
    mturk = conns["aws_mturk"]
    assert (mturk["login"], mturk["password"]) == ("AKIDMTURK", "mturk-secret-value")  # kept
    assert mturk["extra"] == {"aws_secret_access_key": "mturk-extra-secret", "region_name": "us-east-1"}
    assert mturk["is_encrypted"] and mturk["is_extra_encrypted"]  # with the Fernet key
    # read back through Airflow's CLI, as an operator would
    pools = {p["pool"]: p for p in pools_json}
    for p in settings["pools"]:
        assert (int(pools[p["pool_name"]]["slots"]), pools[p["pool_name"]]["description"]) == (
            p["pool_slot"], p["pool_description"])
    assert {v["key"] for v in variables_json} == {
        v["variable_name"] for v in settings["variables"]}

    assert _counts(second) == {
        "connections_created": 0, "connections_updated": 0, "connections_unchanged": n_conns,
        "pools_created": 0, "pools_updated": 0, "pools_unchanged": len(settings["pools"]),
        "variables_created": 0, "variables_updated": 0, "variables_unchanged": len(settings["variables"])}
    assert again == state


SETTINGS = {"airflow": {
    "connections": [
        {"conn_id": "store", "conn_type": "aws", "conn_extra": {"endpoint_url": "http://s3:8333"}},
        {"conn_id": "tracking", "conn_uri": "http://mlflow.internal:5000/api?timeout=5"},
        {"conn_id": "alerts", "conn_type": "smtp", "conn_host": "smtp.example.com", "conn_port": 587,
         "conn_extra": '{"from_email": "a@example.com"}'},
    ],
    "pools": [{"pool_name": "gpu", "pool_slot": 2, "pool_description": "GPUs"}, {"pool_name": "mturk", "pool_slot": 5}],
    "variables": [{"variable_name": "llmops_note", "variable_value": "hello"},
                  {"variable_name": "llmops_limits", "variable_value": {"a": 1, "b": [2, 3]}}],
}}


@pytest.mark.slow
def test_a_changed_file_updates_what_it_names_and_leaves_the_rest(airflow_env, tmp_path):
    """One driver: apply a file, snapshot, apply the changed file, snapshot."""
    env = airflow_env
    path = tmp_path / "settings.yaml"
    path.write_text(yaml.safe_dump(SETTINGS))
    changed = json.loads(json.dumps(SETTINGS))
    changed["airflow"]["connections"][0]["conn_extra"] = {"region_name": "eu-west-1"}
    changed["airflow"]["pools"][0]["pool_slot"] = 4
    changed["airflow"]["variables"][0]["variable_value"] = "bye"
    del changed["airflow"]["variables"][1]
    applied, first, _, applied_changed, second = _drive(
        env, tmp_path, ("apply", [str(path)]), ("snapshot", None), ("write", [str(path), yaml.safe_dump(changed)]),
        ("apply", [str(path)]), ("snapshot", None))[0]
    assert _counts(applied) == {
        "connections_created": 3, "connections_updated": 0, "connections_unchanged": 0,
        "pools_created": 2, "pools_updated": 0, "pools_unchanged": 0,
        "variables_created": 2, "variables_updated": 0, "variables_unchanged": 0}
    tracking = first["connections"]["tracking"]
    assert {k: tracking[k] for k in ("conn_type", "host", "port", "schema", "extra")} == {
        "conn_type": "http", "host": "mlflow.internal", "port": 5000, "schema": "api", "extra": {"timeout": 5}}
    assert first["connections"]["alerts"]["extra"] == {"from_email": "a@example.com"}
    assert first["pools"]["gpu"] == [2, "GPUs"] and first["pools"]["mturk"] == [5, ""]
    assert first["variables"] == {"llmops_note": "hello", "llmops_limits": '{"a": 1, "b": [2, 3]}'}

    assert _counts(applied_changed) == {
        "connections_created": 0, "connections_updated": 1, "connections_unchanged": 2,
        "pools_created": 0, "pools_updated": 1, "pools_unchanged": 1,
        "variables_created": 0, "variables_updated": 1, "variables_unchanged": 0}
    # extra keys merge; what the file no longer names stays (nothing is deleted)
    assert second["connections"]["store"]["extra"] == {"endpoint_url": "http://s3:8333", "region_name": "eu-west-1"}
    assert second["pools"]["gpu"] == [4, "GPUs"]
    assert second["variables"] == {"llmops_note": "bye", "llmops_limits": '{"a": 1, "b": [2, 3]}'}


@pytest.mark.slow
def test_credentials_in_the_file_are_applied_but_never_printed(airflow_env, tmp_path):
    """One driver: the script is its first step (what a fresh `python` runs), then a snapshot; nothing
    the whole process printed holds a secret."""
    path = tmp_path / "settings.yaml"
    path.write_text(yaml.safe_dump({"airflow": {"connections": [
        {"conn_id": "with_password", "conn_type": "http", "conn_login": "u", "conn_password": "pw-in-file-123"},
        {"conn_id": "with_uri", "conn_uri": "postgresql://user:uri-secret-456@db:5432/x"}]}}))
    (out, state), printed = _drive(airflow_env, tmp_path, ("apply", [str(path)]), ("snapshot", None))
    assert out.returncode == 0, out.stderr
    assert "airflow.connections[0].conn_password: credentials in the settings file" in out.stderr
    assert "airflow.connections[1].conn_uri: credentials in the settings file" in out.stderr
    for secret in ("pw-in-file-123", "uri-secret-456"):
        assert secret not in out.stdout + out.stderr and secret not in printed
    conns = state["connections"]
    assert conns["with_password"]["password"] == "pw-in-file-123" and conns["with_uri"]["password"] == "uri-secret-456"


@pytest.mark.slow
def test_an_unmigrated_db_is_named_with_the_fix(tmp_path):
    env = _env(tmp_path)
    env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{tmp_path}/empty.db"
    out = _apply(env)
    assert out.returncode == 1
    assert "has no Airflow tables" in out.stderr and "airflow db migrate" in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize("bad,message", [
    ({"pools": [{"pool_name": "gpu", "pool_slot": 1}, {"pool_name": "x", "pool_slot": 0}]},
     "airflow.pools[1].pool_slot: expected a positive integer, got 0"),
    ({"pools": [{"pool_name": "gpu", "pool_slot": "2"}]}, "airflow.pools[0].pool_slot: expected a positive integer"),
    ({"pools": [{"pool_slot": 2}]}, "airflow.pools[0].pool_name: missing"),
    ({"connections": [{"conn_type": "aws"}]}, "airflow.connections[0].conn_id: missing"),
    ({"connections": [{"conn_id": "c"}]}, "airflow.connections[0].conn_type: missing"),
    ({"connections": [{"conn_id": "c", "conn_type": "http", "conn_hots": "h"}]},
     "airflow.connections[0].conn_hots: unknown key"),
    ({"connections": [{"conn_id": "c", "conn_type": "http", "conn_port": "80"}]},
     "airflow.connections[0].conn_port: expected a port number"),
    ({"connections": [{"conn_id": "c", "conn_type": "http", "conn_extra": ["a"]}]},
     "airflow.connections[0].conn_extra: expected a mapping"),
    ({"connections": [{"conn_id": "c", "conn_type": "http"}, {"conn_id": "c", "conn_type": "aws"}]},
     "airflow.connections[1].conn_id: 'c' is already defined at airflow.connections[0]"),
    ({"variables": [{"variable_name": "v"}]}, "airflow.variables[0].variable_value: missing"),
    ({"variables": {"v": 1}}, "airflow.variables: expected a list"),
    ({"pool": []}, "airflow.pool: unknown section"),
])
def test_a_malformed_file_is_refused_naming_the_key(settings_script, tmp_path, capsys, bad, message):
    """The script's `main` in this process: a malformed file is refused before Airflow is touched."""
    path = tmp_path / "airflow_settings.yaml"
    path.write_text(yaml.safe_dump({"airflow": bad}))
    code = settings_script.main([str(path)])
    err = capsys.readouterr().err
    assert code == 2 and message in err, err


def test_a_malformed_file_exits_2_in_a_real_process(tmp_path):
    path = tmp_path / "airflow_settings.yaml"
    path.write_text(yaml.safe_dump({"airflow": {"pools": [{"pool_name": "x", "pool_slot": 0}]}}))
    out = _apply(dict(os.environ), str(path))
    assert out.returncode == 2, out.stderr
    assert out.stderr == "apply_airflow_settings: airflow.pools[0].pool_slot: expected a positive integer, got 0\n"


def test_the_project_file_is_valid_and_holds_no_credentials():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import apply_airflow_settings as settings_script
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    settings = settings_script.load(ROOT / "airflow_settings.yaml")
    assert settings_script.warnings_for(settings) == []
    assert {c["conn_id"] for c in settings["connections"]} >= {"aws_default", "aws_mturk", "llmops_pii_hmac",
                                                                "mlflow_default", "smtp_default", "slack_api_default"}
    assert "gpu" in {p["pool_name"] for p in settings["pools"]}
