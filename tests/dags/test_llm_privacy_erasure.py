"""``llm_privacy_erasure`` run the way a worker runs it (supervisor, forked task, the task's JSON log
file): the subject's records go, and the raw identifier given as a param reaches neither the task
log nor XCom. A second run of the same request is a no-op."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pendulum
import pytest
import yaml

from tests._airflow_worker import worker_like_executor

ROOT = Path(__file__).resolve().parents[2]
EMAIL = "maria.ortiz@example.net"
SUBJECT = f"My refund for the broken kettle never arrived, please answer me at {EMAIL} today."


def _xcoms(run_id: str) -> list[object]:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        return [x.value for x in session.scalars(select(XComModel).where(
            XComModel.dag_id == "llm_privacy_erasure", XComModel.run_id == run_id))]


@pytest.mark.slow
def test_erasure_dag_on_the_worker_path_keeps_the_identifier_out_of_logs_and_xcom(
        airflow_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from airflow import settings
    from airflow.dag_processing.dagbag import DagBag
    from airflow.executors.executor_loader import ExecutorLoader

    from llmops.config import load_config
    from llmops.privacy.audit import read_events
    from llmops.stages import collect_raw, curate_version, open_config_store
    from llmops.versions import iter_batches, latest_for_partition, read_manifest

    home = tmp_path / "home"
    monkeypatch.setenv("LLMOPS_HOME", str(home))
    landing = home / "landing" / "dt=2026-11-25"
    landing.mkdir(parents=True)
    rows = [{"id": f"r{i}", "text": f"The courier left parcel number {i} at the wrong door, please check it."}
            for i in range(6)] + [{"id": "subject", "text": SUBJECT}]
    (landing / "tickets.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = tmp_path / "pipeline.yaml"
    config.write_text(yaml.safe_dump({
        "base_dir": str(home), "storage": {"root": str(home / "store")},
        "sources": [{"name": "tickets", "kind": "files", "paths": ["landing/dt={partition}/tickets.jsonl"]}],
        "curation": {"filters": {"languages": []}, "pii": {"spacy_model": "blank"}, "dedup": {"near": {"enabled": False}}},
        "quality": {"enabled": False},
        "training": {"tracking": {"tracking_uri": f"sqlite:///{home}/mlflow.db",
                                  "artifact_location": str(home / "artifacts")}},
    }))
    cfg = load_config(config)
    store = open_config_store(cfg)
    raw = collect_raw(cfg, store=store, partition="2026-11-25", producer={"kind": "test"})
    curated = curate_version(cfg, store=store, raw_version_id=raw["id"], partition="2026-11-25",
                             producer={"kind": "test"})
    assert curated["counts"]["kept"] == 7

    monkeypatch.setattr(settings, "DAGS_FOLDER", str(ROOT / "dags"))
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(ROOT / "dags"))
    log_folder = tmp_path / "logs"
    monkeypatch.setenv("AIRFLOW__LOGGING__BASE_LOG_FOLDER", str(log_folder))
    monkeypatch.setenv("AIRFLOW__API_AUTH__JWT_SECRET", secrets.token_urlsafe(64))
    executor = worker_like_executor()
    monkeypatch.setattr(ExecutorLoader, "get_default_executor", classmethod(lambda cls: executor))
    dag = DagBag(dag_folder=str(ROOT / "dags" / "llm_privacy_erasure.py")).dags["llm_privacy_erasure"]
    conf = {"request_id": "DSR-2026-0007", "subjects": [EMAIL], "config_path": str(config)}

    states = []
    for n, when in enumerate(("2026-11-27T10:00:00Z", "2026-11-27T11:00:00Z")):
        dr = dag.test(logical_date=pendulum.parse(when), run_after=pendulum.parse(when), run_conf=conf,
                      use_executor=True)
        states.append({ti.task_id: ti.state for ti in dr.get_task_instances()})
        xcoms = json.dumps(_xcoms(dr.run_id), default=str)
        assert EMAIL not in xcoms and "maria" not in xcoms.casefold()
        values = _xcoms(dr.run_id)
        [result] = [v for v in values if isinstance(v, dict) and "removed" in v]
        assert result["changed"] is (n == 0)
        assert result["removed"] == ({"raw": 1, "curated": 1, "labeled": 0} if n == 0 else
                                     {"raw": 0, "curated": 0, "labeled": 0})
    # no labeled version was touched: nothing to retrain (skipped, no asset event)
    assert states[0] == {"erase": "success", "request_retraining": "skipped"} == states[1]
    logs = sorted(log_folder.rglob("*.log"))
    assert len(logs) == 4
    text = "".join(p.read_text() for p in logs)
    assert "erasure DSR-2026-0007: 1 records" in text and "nothing left to erase" in text
    assert EMAIL not in text and "maria.ortiz" not in text

    successor = read_manifest(store, cfg.dataset, "curated", latest_for_partition(store, cfg.dataset, "curated",
                                                                                  "2026-11-25"))
    assert successor["counts"]["kept"] == 6 and successor["erasure"]["request_id"] == "DSR-2026-0007"
    assert not any(r["id"] == "subject" for b in iter_batches(store, successor) for r in b.to_pylist())
    events = read_events(store, event="erasure")
    assert len(events) == 1 and events[0]["actor"]["dag_id"] == "llm_privacy_erasure"


@pytest.mark.slow
def test_retention_dag_counts_ages_to_the_runs_interval_end(airflow_db: Path, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch):
    from airflow.dag_processing.dagbag import DagBag

    from llmops.config import load_config
    from llmops.stages import collect_raw, open_config_store
    from llmops.versions import read_manifest

    home = tmp_path / "home"
    monkeypatch.setenv("LLMOPS_HOME", str(home))
    for day in ("2026-11-20", "2026-11-26"):
        (home / "landing" / f"dt={day}").mkdir(parents=True)
        (home / "landing" / f"dt={day}" / "t.jsonl").write_text(json.dumps({"id": day, "text": SUBJECT}) + "\n")
    config = tmp_path / "pipeline.yaml"
    config.write_text(yaml.safe_dump({
        "base_dir": str(home), "storage": {"root": str(home / "store")}, "quality": {"enabled": False},
        "sources": [{"name": "t", "kind": "files", "paths": ["landing/dt={partition}/t.jsonl"]}],
        "privacy": {"retention": {"raw_days": 2}}}))
    cfg = load_config(config)
    store = open_config_store(cfg)
    raws = {day: collect_raw(cfg, store=store, partition=day, producer={"kind": "test"})["id"]
            for day in ("2026-11-20", "2026-11-26")}

    dag = DagBag(dag_folder=str(ROOT / "dags" / "llm_privacy_retention.py")).dags["llm_privacy_retention"]
    # the night of 2026-11-26: its interval ends on the 27th, when the 20th was 7 days old and the 26th
    # one day (counted to the wall clock, the 26th would be too old as well)
    dr = dag.test(logical_date=pendulum.parse("2026-11-26T03:30:00Z"), run_conf={"config_path": str(config)})
    assert {ti.task_id: ti.state for ti in dr.get_task_instances()} == {"enforce": "success"}
    assert read_manifest(store, cfg.dataset, "raw", raws["2026-11-20"])["retention"]["policy"] == "raw_days=2"
    assert "retention" not in read_manifest(store, cfg.dataset, "raw", raws["2026-11-26"])
