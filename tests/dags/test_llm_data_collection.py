"""`dag.test()` of llm_data_collection on the sample corpus: in-process, real operators, real store."""

from __future__ import annotations

import json
from pathlib import Path

import pendulum
import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def dag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(ROOT / "dags")).get_dag("llm_data_collection")


def _run(dag, day: str, **kwargs):
    dr = dag.test(logical_date=pendulum.parse(day), **kwargs)
    states = {ti.task_id: ti.state for ti in dr.get_task_instances()}
    return dr, states


def test_dag_test_on_sample_data(airflow_db, dag, sample_dir: Path, serve_dir, monkeypatch):
    from airflow.models.asset import AssetEvent
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    from llmops.storage import LocalStore
    from llmops.versions import latest_for_partition, read_manifest

    monkeypatch.setenv("LLMOPS_HOME", str(sample_dir))
    monkeypatch.setenv("LLMOPS_SUPPORT_API", serve_dir(sample_dir / "api"))
    day = json.loads((sample_dir / "sample_manifest.json").read_text())["days"][0]

    dr, states = _run(dag, day)
    assert dr.state == "success", states
    store = LocalStore(sample_dir / "store")
    vid = latest_for_partition(store, "support_messages", "curated", day)
    m = read_manifest(store, "support_messages", "curated", vid)
    raw = read_manifest(store, "support_messages", "raw", m["parents"][0])
    assert m["producer"]["dag_id"] == "llm_data_collection" and m["producer"]["partition"] == day
    assert {r for r in raw["counts"]["by_reason"]["quarantined"]} >= {"malformed_json", "invalid_utf8", "null_text"}
    c = m["counts"]
    assert c["input"] == raw["counts"]["kept"] == c["kept"] + c["duplicates"] + c["filtered"] + c["quarantined"]
    # the HTTP API source was read (its ids are in the raw version)
    import pyarrow.parquet as pq

    raw_ids = [i for f in raw["files"] for i in pq.read_table(
        store.local_path(f"datasets/support_messages/raw/versions/{raw['id']}/{f['path']}")).column("id").to_pylist()]
    assert any(i.startswith("api-") for i in raw_ids)

    with create_session() as session:
        events = session.scalars(select(AssetEvent).where(AssetEvent.source_run_id == dr.run_id)).all()
        assert len(events) == 1
        extra = events[0].extra
        assert extra["version_id"] == vid and extra["partition"] == day and extra["counts"]["kept"] == c["kept"]
        xcoms = session.scalars(select(XComModel).where(XComModel.run_id == dr.run_id)).all()
        payload = json.dumps([x.value for x in xcoms], default=str)
        assert "@example" not in payload and vid in payload  # ids and counts, never text

    # a second run of the same partition (a retry / backfill) writes the same version, nothing new
    before = sorted(store.list("datasets/support_messages/curated/versions"))
    dr2, states2 = _run(dag, day)
    assert dr2.state == "success", states2
    assert latest_for_partition(store, "support_messages", "curated", day) == vid
    assert sorted(store.list("datasets/support_messages/curated/versions")) == before


def test_partition_param_overrides_logical_date(airflow_db, dag, sample_dir: Path, serve_dir, monkeypatch):
    from llmops.storage import LocalStore
    from llmops.versions import latest_for_partition

    monkeypatch.setenv("LLMOPS_HOME", str(sample_dir))
    monkeypatch.setenv("LLMOPS_SUPPORT_API", serve_dir(sample_dir / "api"))
    day = json.loads((sample_dir / "sample_manifest.json").read_text())["days"][1]
    dr, states = _run(dag, "2026-12-01", run_conf={"partition": day})
    assert dr.state == "success", states
    assert latest_for_partition(LocalStore(sample_dir / "store"), "support_messages", "curated", day)
