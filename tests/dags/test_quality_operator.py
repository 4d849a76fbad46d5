"""GreatExpectationsGateOperator and its TaskFlow form, run with dag.test() on a real store."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import pendulum
import pytest

pytestmark = pytest.mark.slow


def _seed_version(home: Path) -> str:
    from llmops.records import Record
    from llmops.storage import LocalStore
    from llmops.versions import VersionWriter

    texts = ["my parcel never arrived and I need help", "please mail me at bob@example.com about it",
             "the blender stopped working after a week", "la cafetera llegó rota y quiero un cambio"]
    w = VersionWriter("support_messages", "curated", producer={"kind": "test"})
    w.counts.input = len(texts)
    w.add_records([Record(id=f"g{i}", text=t, source="email_tickets", lang="es" if i == 3 else "en")
                   for i, t in enumerate(texts)])
    return w.finish(LocalStore(home / "store"))["id"]


def _run(policy: str, version_id: str):
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=str(Path(__file__).resolve().parents[2] / "dags")).get_dag("llm_dataset_gate")
    return dag.test(logical_date=pendulum.datetime(2026, 11, 25, tz="UTC"),
                    run_conf={"version_id": version_id, "policy": policy})


def _xcoms(run_id: str) -> dict[tuple[str, str], object]:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.scalars(select(XComModel).where(XComModel.run_id == run_id)).all()
        return {(x.task_id, x.key): x.value for x in rows}


def test_template_fields_are_constructor_arguments():
    from llmops_airflow.links import DataDocsLink
    from llmops_airflow.operators.quality import GreatExpectationsGateOperator

    params = inspect.signature(GreatExpectationsGateOperator.__init__).parameters
    assert set(GreatExpectationsGateOperator.template_fields) <= set(params)
    assert any(isinstance(link, DataDocsLink) for link in GreatExpectationsGateOperator.operator_extra_links)


def test_warn_records_beside_the_version_and_links_docs(airflow_db, tmp_path: Path, monkeypatch):
    from llmops.storage import LocalStore

    monkeypatch.setenv("LLMOPS_HOME", str(tmp_path))
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "http://airflow.test")
    vid = _seed_version(tmp_path)
    dr = _run("warn", vid)
    assert dr.state == "success"
    x = _xcoms(dr.run_id)
    out = x[("gate", "return_value")]
    out = json.loads(out) if isinstance(out, str) else out
    assert out["version_id"] == vid and out["validation"]["success"] is False
    url = x[("gate", "data_docs_url")]
    url = json.loads(url) if isinstance(url, str) and url.startswith('"') else url
    assert str(url).startswith(f"http://airflow.test/llmops/docs/datasets/support_messages/curated/versions/{vid}/gates/")
    assert any(k[1].startswith("_link_") and "llmops/docs" in str(v) for k, v in x.items())  # the UI's extra link
    store = LocalStore(tmp_path / "store")
    results = [k for k in store.list(f"datasets/support_messages/curated/versions/{vid}/gates") if k.endswith("result.json")]
    assert results and json.loads(store.read_bytes(results[0]))["failed_expectations"] == 1
    assert any(k.endswith("/docs/index.html") for k in store.list(f"datasets/support_messages/curated/versions/{vid}/gates"))


def test_quarantine_publishes_successor_without_failing_rows(airflow_db, tmp_path: Path, monkeypatch):
    from llmops.storage import LocalStore
    from llmops.versions import iter_batches, read_manifest

    monkeypatch.setenv("LLMOPS_HOME", str(tmp_path))
    vid = _seed_version(tmp_path)
    dr = _run("quarantine", vid)
    assert dr.state == "success"
    out = _xcoms(dr.run_id)[("gate", "return_value")]
    out = json.loads(out) if isinstance(out, str) else out
    new = out["version_id"]
    assert new != vid
    store = LocalStore(tmp_path / "store")
    m = read_manifest(store, "support_messages", "curated", new)
    assert m["parents"] == [vid] and m["counts"]["kept"] == 3 and m["counts"]["quarantined"] == 1
    assert [r["id"] for b in iter_batches(store, m, which="quarantine_files") for r in b.to_pylist()] == ["g1"]


def test_fail_policy_fails_the_task(airflow_db, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("LLMOPS_HOME", str(tmp_path))
    vid = _seed_version(tmp_path)
    dr = _run("fail", vid)
    (ti,) = dr.get_task_instances()
    assert ti.state == "failed" and ti.try_number == 1  # failed at once, no retry on the same data


@pytest.fixture()
def signed_in(airflow_db, monkeypatch: pytest.MonkeyPatch):
    """Airflow's simple auth manager, initialised as the API server does; yields a JWT of a
    viewer (read access to DAGs) and takes the process-wide auth manager down again after."""
    from airflow.api_fastapi.app import init_auth_manager, purge_cached_app
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    monkeypatch.setenv("AIRFLOW__CORE__AUTH_MANAGER",
                       "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager")
    monkeypatch.setenv("AIRFLOW__API_AUTH__JWT_SECRET", "a-test-secret-long-enough-for-hs512-" + "0123456789abcdef" * 2)
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", "viewer:viewer")
    purge_cached_app()
    am = init_auth_manager()
    try:
        yield am.generate_jwt(SimpleAuthManagerUser(username="viewer", role="viewer"))
    finally:
        purge_cached_app()


def test_docs_app_serves_only_docs_and_only_to_a_signed_in_reader(tmp_path: Path, signed_in: str):
    from fastapi.testclient import TestClient

    from llmops.storage import LocalStore
    from llmops_airflow.docs_app import create_app, dag_for

    store = LocalStore(tmp_path)
    store.write_bytes("datasets/d/curated/versions/v1/docs/curated/index.html", b"<html>ok</html>")
    store.write_bytes("datasets/d/curated/versions/v1/data/part-00000.parquet", b"PAR1")
    client = TestClient(create_app(lambda: store))
    page = "/docs/datasets/d/curated/versions/v1/docs/curated/index.html"
    assert client.get(page).status_code == 401  # no token, no session cookie
    assert client.get(page, headers={"Authorization": "Bearer not-a-jwt"}).status_code == 403
    auth = {"Authorization": f"Bearer {signed_in}"}
    ok = client.get(page, headers=auth)
    assert ok.status_code == 200 and ok.text == "<html>ok</html>" and ok.headers["content-type"].startswith("text/html")
    assert client.get(page, cookies={"_token": signed_in}).status_code == 200  # the UI's session cookie
    assert client.get("/docs/datasets/d/curated/versions/v1/data/part-00000.parquet", headers=auth).status_code == 404
    assert client.get("/docs/datasets/d/curated/versions/v1/docs/../data/part-00000.parquet",
                      headers=auth).status_code == 404
    assert client.get("/docs/datasets/d/curated/versions/v1/docs/curated/missing.html", headers=auth).status_code == 404
    # whose read permission a page needs: the DAG that published the stage
    assert dag_for("datasets/d/curated/versions/v1/docs/curated/index.html") == "llm_data_collection"
    assert dag_for("datasets/d/labeled/versions/v1/docs/labeled/index.html") == "llm_annotation"
    assert dag_for("datasets/d/curated/versions/v1/gates/run-1/index.html") == "llm_dataset_gate"


def test_docs_need_the_dags_read_permission(tmp_path: Path, signed_in: str, monkeypatch: pytest.MonkeyPatch):
    """The permission is asked of Airflow's auth manager, for the publishing DAG: a user it denies
    that DAG gets 403."""
    from airflow.api_fastapi.app import get_auth_manager
    from fastapi.testclient import TestClient

    from llmops.storage import LocalStore
    from llmops_airflow.docs_app import create_app

    store = LocalStore(tmp_path)
    store.write_bytes("datasets/d/labeled/versions/v1/docs/labeled/index.html", b"<html>ok</html>")
    asked = []

    def is_authorized_dag(*, method, access_entity=None, details=None, user):
        asked.append((method, details.id if details else None))
        return False

    monkeypatch.setattr(get_auth_manager(), "is_authorized_dag", is_authorized_dag)
    client = TestClient(create_app(lambda: store))
    denied = client.get("/docs/datasets/d/labeled/versions/v1/docs/labeled/index.html",
                        headers={"Authorization": f"Bearer {signed_in}"})
    assert denied.status_code == 403 and asked == [("GET", "llm_annotation")]


def test_taskflow_form_calls_the_same_gate(tmp_path: Path, monkeypatch):
    from llmops_airflow.operators.quality import quality_gate

    monkeypatch.setenv("LLMOPS_HOME", str(tmp_path))
    vid = _seed_version(tmp_path)
    pushed = {}

    class _TI:
        dag_id, run_id, task_id = "d", "r", "quality_gate"

        def xcom_push(self, key, value):
            pushed[key] = value

    out = quality_gate.function("support_messages", "curated", vid, "curated", "warn", ti=_TI(), ds="2026-11-25")
    assert out["version_id"] == vid and out["validation"]["failed_expectations"] == 1
    assert pushed["data_docs_url"].endswith("/docs/index.html")
