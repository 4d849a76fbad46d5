"""The watchdog (llmops.drift.watchdog): published work whose next stage never ran is found, reported
and alerted on; what is labeled, evaluated or recent is not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from llmops.config import PipelineConfig
from llmops.records import Record
from llmops.storage import LocalStore
from llmops.versions import VersionWriter


def _curated(store: LocalStore, cfg: PipelineConfig, partition: str, text: str) -> str:
    writer = VersionWriter(cfg.dataset, "curated", config_hash=partition)
    writer.counts.input = 1
    writer.add_records([Record(f"{partition}-1", text, "s")])
    return writer.finish(store, partition=partition)["id"]


def test_overdue_curated_and_model_versions(tmp_path: Path):
    from mlflow import MlflowClient

    from llmops.annotation.jobs import labeled_schema
    from llmops.drift.watchdog import overdue
    from llmops_airflow.notifiers import alert_text

    cfg = PipelineConfig(base_dir=str(tmp_path))
    store = LocalStore(tmp_path / "store")
    old = _curated(store, cfg, "2026-11-20", "a message that was labeled")
    waiting = _curated(store, cfg, "2026-11-21", "a message nobody labeled")
    writer = VersionWriter(cfg.dataset, "labeled", parents=[old], schema=labeled_schema())
    writer.counts.input = 0
    writer.finish(store, partition="2026-11-20")

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db", registry_uri=f"sqlite:///{tmp_path}/mlflow.db")
    client.create_registered_model(cfg.training.registered_model)
    evaluated = client.create_model_version(cfg.training.registered_model, source=str(tmp_path / "m1"))
    client.set_model_version_tag(cfg.training.registered_model, evaluated.version, "eval.support_intents.run_id", "r1")
    pending = client.create_model_version(cfg.training.registered_model, source=str(tmp_path / "m2"))

    now = datetime.now(UTC)
    assert overdue(cfg, store, now=now, client=client)["overdue"] is False  # all of it is recent
    found = overdue(cfg, store, now=now + timedelta(hours=40), client=client)
    assert found["overdue"] is True
    assert [(u["partition"], u["version_id"]) for u in found["unlabeled"]] == [("2026-11-21", waiting)]
    assert found["unlabeled"][0]["age_hours"] >= 40
    assert [(u["model"], u["version"]) for u in found["unevaluated"]] == [
        (cfg.training.registered_model, str(pending.version))]

    text = alert_text({"dataset": cfg.dataset, "night": "2026-11-23", "drift": False, "watchdog": found})
    assert f"curated 2026-11-21 {waiting}: no labels" in text and f"v{pending.version}: no evaluation" in text
    assert "nobody labeled" not in text  # ids and ages, never text

    cfg.drift.watchdog.enabled = False
    assert overdue(cfg, store, now=now + timedelta(hours=40), client=client)["overdue"] is False


def test_a_new_suite_version_makes_every_model_version_due_once(tmp_path: Path):
    """llm_evaluation evaluates the versions with no evaluation on the *current* version of a suite:
    a tag from suite version 1 (or from before versions were recorded) does not cover version 2."""
    from mlflow import MlflowClient

    from llmops.evaluation.promotion import unevaluated_versions

    shipped = Path(__file__).resolve().parents[2] / "include/evaluation/suites/support_intents.yaml"
    suites = tmp_path / "suites"
    suites.mkdir()
    (suites / "support_intents.yaml").write_text(shipped.read_text())
    cfg = PipelineConfig(base_dir=str(tmp_path), evaluation={"suites_dir": str(suites)})
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db", registry_uri=f"sqlite:///{tmp_path}/mlflow.db")
    name = cfg.training.registered_model
    client.create_registered_model(name)
    legacy = client.create_model_version(name, source=str(tmp_path / "m1"))  # tagged before suite versions
    client.set_model_version_tag(name, legacy.version, "eval.support_intents.run_id", "r1")
    v1 = client.create_model_version(name, source=str(tmp_path / "m2"))
    client.set_model_version_tag(name, v1.version, "eval.support_intents.run_id", "r2")
    client.set_model_version_tag(name, v1.version, "eval.support_intents.suite_version", "1")
    assert unevaluated_versions(cfg, client) == []

    (suites / "support_intents.yaml").write_text(shipped.read_text().replace("version: 1\n", "version: 2\n", 1))
    assert [mv.version for mv in unevaluated_versions(cfg, client)] == [legacy.version, v1.version]
    client.set_model_version_tag(name, v1.version, "eval.support_intents.run_id", "r3")
    client.set_model_version_tag(name, v1.version, "eval.support_intents.suite_version", "2")
    assert [mv.version for mv in unevaluated_versions(cfg, client)] == [legacy.version]
