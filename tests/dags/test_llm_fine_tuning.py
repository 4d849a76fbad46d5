"""`dag.test()` of llm_fine_tuning on the embedded defaults, with a tiny base model (the `base_model`
param): fine-tuned with DeepSpeed ZeRO-2 on CPU from two labeled partitions, tracked in a local
MLflow store, registered once, announced; then llm_evaluation on the golden suite.

The embedded default base model, MiniLM, goes the same way through Airflow's real scheduler in
tests/integration/test_scheduler_e2e.py (`make demo`'s script: fine-tuned, registered, evaluated,
made champion)."""

from __future__ import annotations

import json
from pathlib import Path

import pendulum
import pytest
import yaml

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]
ROOT = Path(__file__).resolve().parents[2]
LABELS = ["billing", "refund", "shipping"]
WORDS = {"billing": "I was charged twice on my invoice", "refund": "I want my money back for the return",
         "shipping": "my parcel is late, the courier never came"}


def _get_dag(dag_id: str):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(ROOT / "dags" / f"{dag_id}.py")).get_dag(dag_id)  # its file only


@pytest.fixture()
def dag():
    return _get_dag("llm_fine_tuning")


@pytest.fixture()
def labeled(tmp_path: Path, monkeypatch, mlflow_db):
    """LLMOPS_HOME under tmp_path (so the default config's store and MLflow store are there) with
    labeled versions for two partitions; an item relabeled on the second day."""
    from llmops.annotation.jobs import labeled_schema
    from llmops.config import load_config
    from llmops.stages import open_config_store
    from llmops.versions import VersionWriter

    monkeypatch.setenv("LLMOPS_HOME", str(tmp_path))
    mlflow_db(tmp_path / "mlflow" / "mlflow.db")  # the default config's tracking URI, schema migrated
    cfg = load_config(ROOT / "include/config/pipeline.yaml")
    store = open_config_store(cfg)
    versions = []
    for day, offset in (("2026-11-25", 0), ("2026-11-26", 1)):
        rows = []
        for i in range(45):
            label = LABELS[(i + offset * (i == 0)) % 3]
            rows.append({"id": f"m{i:03d}" if i == 0 else f"d{offset}-{i:03d}", "text": f"{WORDS[label]} ({i})",
                         "source": "email", "lang": "en", "created_at": None, "meta": "{}", "pii": [],
                         "label": label, "label_confidence": 0.9, "agreement": 1.0, "n_votes": 3, "votes": "{}",
                         "prelabel": None, "method": "dawid_skene"})
        writer = VersionWriter(cfg.dataset, "labeled", schema=labeled_schema())
        writer.counts.input = len(rows)
        writer.add_rows(rows)
        versions.append(writer.finish(store, partition=day)["id"])
    return cfg, store, versions


def _run(dag, conf):
    # a fixed run_after gives a fixed run id: a second call clears and re-runs the same DAG run's
    # tasks (their next try), as a retry or a "clear" from the UI does
    when = pendulum.parse("2026-11-27T12:00:00Z")
    dr = dag.test(logical_date=when, run_after=when, run_conf=conf)
    return dr, {(ti.task_id, ti.map_index): ti.state for ti in dr.get_task_instances()}


def _events(dr, since):
    """Candidate-model events of this DAG run since ``since`` (runs of earlier tests share its id)."""
    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        query = select(AssetEvent).where(AssetEvent.source_run_id == dr.run_id, AssetEvent.timestamp >= since)
        return [e.extra for e in session.scalars(query.order_by(AssetEvent.timestamp))]


def test_dag_test_registers_exactly_one_version_also_when_retried_then_evaluation_promotes_it(
        airflow_db, dag, labeled, tmp_path, tiny_training):
    """The chain on the embedded defaults (its steps, ZeRO-2, the `minilm` candidate) with a tiny
    base model: llm_fine_tuning registers it once (also on a retry); llm_evaluation benchmarks it on
    the golden suite, logs the report to MLflow and makes it the first champion; evaluated again,
    nothing moves. MiniLM itself takes this path in the scheduler end-to-end test (`make demo`'s
    script, tests/integration/test_scheduler_e2e.py)."""
    from mlflow import MlflowClient

    cfg, store, versions = labeled
    conf = {"config_path": str(ROOT / "include/config/pipeline.yaml"), "base_model": str(tiny_training.model_dir)}
    since = pendulum.now("UTC")
    dr, states = _run(dag, conf)
    assert dr.state == "success", states
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow/mlflow.db")
    mvs = client.search_model_versions("name = 'support-intent'")
    assert [str(v.version) for v in mvs] == ["1"]
    mv = mvs[0]
    assert mv.tags["llmops.dataset_versions"] == ",".join(versions)  # every partition, oldest first
    assert mv.tags["llmops.candidate"] == "minilm" and mv.tags["airflow.dag_id"] == "llm_fine_tuning"
    run = client.get_run(mv.run_id)
    assert run.info.status == "FINISHED" and run.data.params["model.name_or_path"] == str(tiny_training.model_dir)
    assert run.data.params["deepspeed.zero_optimization.stage"] == "2"
    shipped = yaml.safe_load((ROOT / "include/config/pipeline.yaml").read_text())["training"]["defaults"]["train"]
    assert max(m.step for m in client.get_metric_history(mv.run_id, "train/loss")) == shipped["max_steps"]
    (event,) = _events(dr, since)
    assert [(c["candidate"], c["version"], c["run_id"]) for c in event["candidates"]] == [("minilm", "1", mv.run_id)]
    # the run folder is on the object store, keyed by DAG run and task (not by try)
    prefix = f"training/{cfg.dataset}/runs/llm_fine_tuning/"
    assert any(k.endswith("/train_result.json") for k in store.list(prefix))

    # the same DAG run again (cleared tasks, next try): same MLflow run, no second version, no new run
    dr2, states2 = _run(dag, conf)
    assert dr2.state == "success", states2
    assert dr2.run_id == dr.run_id
    assert [str(v.version) for v in client.search_model_versions("name = 'support-intent'")] == ["1"]
    assert len(client.search_runs([run.info.experiment_id])) == 1
    assert [c["run_id"] for c in _events(dr2, since)[-1]["candidates"]] == [mv.run_id]

    # another run on the same rows and settings (a labeled event that only carried labels forward:
    # a new labeled version of day 2, same ids, texts and labels) trains nothing
    from llmops.annotation.jobs import labeled_schema
    from llmops.training.plan import trained_marker, training_fingerprint
    from llmops.versions import VersionWriter, iter_batches, read_manifest

    fp = training_fingerprint(cfg, store, versions, conf)
    marker = json.loads(store.read_bytes(trained_marker(cfg.dataset, fp)))
    assert marker["run_id"] == dr.run_id and marker["registered"] == ["support-intent/1"]
    day2 = [r for b in iter_batches(store, read_manifest(store, cfg.dataset, "labeled", versions[1])) for r in b.to_pylist()]
    writer = VersionWriter(cfg.dataset, "labeled", schema=labeled_schema(), config_hash="labels-carried-forward")
    writer.counts.input = len(day2)
    writer.add_rows([{**r, "label_job": "job-earlier"} for r in day2])
    carried = writer.finish(store, partition="2026-11-26")["id"]
    assert carried != versions[1]
    assert training_fingerprint(cfg, store, [versions[0], carried], conf) == fp
    later = pendulum.parse("2026-11-28T12:00:00Z")
    dr3 = dag.test(logical_date=later, run_after=later, run_conf=conf)
    states3 = {ti.task_id: ti.state for ti in dr3.get_task_instances()}
    assert dr3.state == "success" and states3["resolve"] == "skipped" and states3["train"] == "skipped", states3
    assert states3["catch_up"] == "success", states3  # it looked: the newest labeled data is trained
    from airflow.sdk.exceptions import DagRunTriggerException

    from llmops_airflow.operators.training import TrainingCatchUpOperator

    catch_up = TrainingCatchUpOperator(task_id="catch_up", config_path=conf["config_path"],
                                       trigger_dag_id="llm_fine_tuning")
    assert catch_up.execute({"params": {**conf, "versions": None}}) is None
    assert [str(v.version) for v in client.search_model_versions("name = 'support-intent'")] == ["1"]
    # a changed label, another candidate setting or another base model is another fingerprint
    day2[5] = {**day2[5], "label": next(lab for lab in LABELS if lab != day2[5]["label"])}
    writer = VersionWriter(cfg.dataset, "labeled", schema=labeled_schema(), config_hash="relabeled")
    writer.counts.input = len(day2)
    writer.add_rows(day2)
    relabeled = writer.finish(store, partition="2026-11-26")["id"]
    assert training_fingerprint(cfg, store, [versions[0], relabeled], conf) != fp
    # a labeled version published while a run was busy (its event dropped, apache/airflow#56050): the
    # run's last task starts one more run for the data nobody trained on; a run with its own versions does not
    with pytest.raises(DagRunTriggerException) as more:
        catch_up.execute({"params": {**conf, "versions": None}})
    assert more.value.dag_run_id.startswith("catch_up__") and more.value.skip_when_already_exists
    assert more.value.conf == conf  # one more run like this one, for the newest data
    assert catch_up.execute({"params": {**conf, "versions": ",".join(versions)}}) is None
    assert training_fingerprint(cfg, store, versions, {**conf, "max_steps": 7}) != fp
    assert training_fingerprint(cfg, store, versions, {**conf, "base_model": "other"}) != fp

    # evaluation of the registered candidate: report in MLflow, gate, champion alias (the model knows the
    # three labels of its training data, the golden suite six: scored on all six, as MiniLM would be).
    # On the shipped suite its macro-F1 is far below the floor (min_primary 0.70): no first champion
    evaluation = _get_dag("llm_evaluation")
    conf = {"config_path": str(ROOT / "include/config/pipeline.yaml")}
    dr, states = _run(evaluation, {**conf, "versions": "1"})
    assert dr.state == "success" and states[("promote", -1)] == "skipped", states
    mv = client.get_model_version("support-intent", "1")
    assert mv.tags["eval.support_intents.decision"] == "reject"
    assert float(mv.tags["eval.support_intents.macro_f1"]) < 0.70
    assert not client.get_registered_model("support-intent").aliases
    # against a suite whose floor is 0 (tests/integration/suites) it becomes the first champion
    config = tmp_path / "floor0.yaml"
    config.write_text((ROOT / "include/config/pipeline.yaml").read_text().replace(
        "  suites_dir: null", f"  suites_dir: {ROOT / 'tests/integration/suites'}"))
    conf = {"config_path": str(config)}
    dr, states = _run(evaluation, {**conf, "versions": "1"})
    assert dr.state == "success", states
    assert states[("promote", -1)] == "success"
    champion = client.get_model_version_by_alias("support-intent", "champion")
    assert str(champion.version) == "1" and champion.tags["eval.support_intents.decision"] == "promote"
    ev = client.get_run(champion.tags["eval.support_intents.run_id"])
    assert 0 < ev.data.metrics["macro_f1"] <= 1
    assert ev.data.metrics["macro_f1_ci_low"] <= ev.data.metrics["macro_f1"] <= ev.data.metrics["macro_f1_ci_high"]
    arts = {a.path for a in client.list_artifacts(ev.info.run_id, "evaluation")}
    assert {"evaluation/report.html", "evaluation/confusion_matrix.png", "evaluation/decision.json"} <= arts
    assert ev.inputs.dataset_inputs and ev.inputs.dataset_inputs[0].dataset.name == "support_intents-v1"
    # evaluated again: it is already the champion, nothing moves
    dr, states = _run(evaluation, {**conf, "versions": "1"})
    assert dr.state == "success" and states[("promote", -1)] == "skipped", states
    assert str(client.get_model_version_by_alias("support-intent", "champion").version) == "1"


def test_model_selection_trains_every_candidate(airflow_db, dag, labeled, tmp_path, tiny_training):
    from mlflow import MlflowClient

    model_dir = tiny_training.model_dir
    conf = {"config_path": str(ROOT / "include/config/pipeline.yaml"), "max_steps": 4,
            "candidates": [{"name": "tiny-full", "model": {"name_or_path": str(model_dir)}},
                           {"name": "tiny-lora", "model": {"name_or_path": str(model_dir), "lora": {"r": 4}},
                            "train": {"learning_rate": 1e-3}}]}
    since = pendulum.now("UTC")
    dr, states = _run(dag, conf)
    assert dr.state == "success", states
    assert sorted(k for k in states if k[0] == "train") == [("train", 0), ("train", 1)]
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow/mlflow.db")
    by_candidate = {v.tags["llmops.candidate"]: v for v in client.search_model_versions("name = 'support-intent'")}
    assert sorted(by_candidate) == ["tiny-full", "tiny-lora"]
    assert client.get_run(by_candidate["tiny-lora"].run_id).data.params["model.lora.r"] == "4"
    (event,) = _events(dr, since)
    assert sorted(c["candidate"] for c in event["candidates"]) == ["tiny-full", "tiny-lora"]
    assert all(c["global_step"] == 4 for c in event["candidates"])


def test_a_bad_candidate_fails_without_retry(airflow_db, dag, labeled):
    dr, states = _run(dag, {"config_path": str(ROOT / "include/config/pipeline.yaml"),
                            "candidates": [{"name": "x", "train": {"max_stepz": 3}}]})
    assert dr.state == "failed" and states[("plan", -1)] == "failed"
