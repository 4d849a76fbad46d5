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


def test_four_shards_curate_like_one(airflow_db, dag, sample_dir: Path, serve_dir, monkeypatch, tmp_path: Path):
    """The same partition through 1 and 4 mapped curate_shard tasks: the same kept records (same
    data files), quarantine and counts; a shard task run again changes nothing."""
    import math

    import yaml

    from llmops.curate.shards import curate_shard
    from llmops.storage import LocalStore
    from llmops.versions import latest_for_partition, read_manifest

    monkeypatch.setenv("LLMOPS_HOME", str(sample_dir))
    monkeypatch.setenv("LLMOPS_SUPPORT_API", serve_dir(sample_dir / "api"))
    day = json.loads((sample_dir / "sample_manifest.json").read_text())["days"][0]
    base = yaml.safe_load((ROOT / "include/config/pipeline.yaml").read_text())
    manifests, stores = {}, {}
    for shards in (1, 4):
        cfg = json.loads(json.dumps(base))
        cfg["storage"]["root"] = str(tmp_path / f"store{shards}")
        if shards == 4:  # about a quarter of the day's raw records per shard
            one = manifests[1]
            raw1 = read_manifest(stores[1], "support_messages", "raw", one["parents"][0])
            cfg["curation"]["shard_rows"] = math.ceil(raw1["counts"]["kept"] / 4)
        path = tmp_path / f"pipeline{shards}.yaml"
        path.write_text(yaml.safe_dump(cfg))
        dr, states = _run(dag, day, run_conf={"config_path": str(path)})
        assert dr.state == "success", states
        stores[shards] = LocalStore(tmp_path / f"store{shards}")
        vid = latest_for_partition(stores[shards], "support_messages", "curated", day)
        manifests[shards] = read_manifest(stores[shards], "support_messages", "curated", vid)
        mapped = [ti for ti in dr.get_task_instances() if ti.task_id == "curate_shard"]
        assert sorted(ti.map_index for ti in mapped) == list(range(shards))
        assert all(ti.state == "success" for ti in mapped)
    one, four = manifests[1], manifests[4]
    assert one["shards"] == 1 and four["shards"] == 4
    assert four["counts"] == one["counts"] and four["pii"] == one["pii"]
    assert [f["sha256"] for f in four["files"]] == [f["sha256"] for f in one["files"]]
    assert [f["sha256"] for f in four["quarantine_files"]] == [f["sha256"] for f in one["quarantine_files"]]

    # a shard task run again (a retry after the merge) publishes nothing new
    from llmops.config import load_config

    cfg4 = load_config(tmp_path / "pipeline4.yaml")
    raw4 = read_manifest(stores[4], "support_messages", "raw", four["parents"][0])
    before = sorted(stores[4].list("datasets/support_messages"))
    assert curate_shard(cfg4, store=stores[4], raw=raw4, index=1)["skipped"] == "merged"
    assert sorted(stores[4].list("datasets/support_messages")) == before
