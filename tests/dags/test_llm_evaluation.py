"""`dag.test()` of llm_evaluation with human approval on: the candidate that passed the gate waits in
Airflow's Required Actions (HITL) until a reviewer approves; one that fails the gate is never put to
a human. The reviewer's answer goes through the handler of the REST API's HITL PATCH endpoint."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pendulum
import pytest

from tests._tiny_models import build_tiny_classifier

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
SUITE = """\
name: quick_intents
version: 1
task: classification
golden: {name: support_intents, version: v1}
metrics: [accuracy, macro_f1]
primary: macro_f1
slices: [lang]
robustness: [casing]
explain: {errors: 2, per_slice: 0, steps: 8}
bootstrap_resamples: 200
thresholds: {max_robustness_drop: 1.0, slice_tolerance: 1.0, require_ci_separation: true}
"""


def _register(tmp_path: Path, uri: str, name: str) -> str:
    """A tiny random classifier over the golden labels, logged with the transformers flavor and
    registered the way training registers (one version per run)."""
    import mlflow
    import torch
    import transformers
    from mlflow import MlflowClient
    from transformers import AutoModelForSequenceClassification

    from llmops.evaluation.golden import load_golden
    from llmops.training.tracking import register_once, use_tracking_uri

    rows, _ = load_golden("support_intents", "v1")
    labels = sorted({r["label"] for r in rows})
    folder = build_tiny_classifier(tmp_path / name, [r["text"] for r in rows], num_labels=len(labels), seed=0)
    model = AutoModelForSequenceClassification.from_pretrained(folder)
    model.config.id2label = dict(enumerate(labels))
    model.config.label2id = {lab: i for i, lab in enumerate(labels)}
    model.save_pretrained(folder)
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("llm_fine_tuning")
    exp_id = exp.experiment_id if exp else client.create_experiment("llm_fine_tuning")
    run_id = client.create_run(exp_id, run_name=name, tags={"llmops.task": "classification"}).info.run_id
    pipe = transformers.pipeline("text-classification", model=str(folder), tokenizer=str(folder), device=-1)
    with use_tracking_uri(uri), mlflow.start_run(run_id=run_id):
        info = mlflow.transformers.log_model(pipe, name="model", task="text-classification", pip_requirements=[
            f"transformers=={transformers.__version__}", f"torch=={torch.__version__.split('+')[0]}"])
    with use_tracking_uri(uri):
        return register_once(client, "support-intent", info.model_uri, run_id, {})


class _Reviewer(threading.Thread):
    """Answers the first HITL request of llm_evaluation's `approve` task, as the UI would."""

    def __init__(self, choice: str) -> None:
        super().__init__(daemon=True)
        self.choice, self.request, self.error = choice, None, None
        self.done = threading.Event()

    def run(self) -> None:
        try:
            self._answer()
        except Exception as exc:  # reported by the test
            self.error = exc

    def _answer(self) -> None:
        from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
        from airflow.api_fastapi.core_api.datamodels.hitl import UpdateHITLDetailPayload
        from airflow.api_fastapi.core_api.routes.public.hitl import update_hitl_detail
        from airflow.models.hitl import HITLDetail
        from airflow.models.taskinstance import TaskInstance
        from airflow.utils.session import create_session
        from sqlalchemy import select

        deadline = time.monotonic() + 600
        while not self.done.is_set() and time.monotonic() < deadline:
            with create_session() as session:
                ti = session.scalars(select(TaskInstance).where(
                    TaskInstance.dag_id == "llm_evaluation", TaskInstance.task_id == "approve",
                    TaskInstance.state == "awaiting_input")).first()
                if ti is not None:
                    detail = session.scalars(select(HITLDetail).where(HITLDetail.ti_id == ti.id)).one()
                    self.request = {"subject": detail.subject, "body": detail.body, "options": detail.options}
                    update_hitl_detail(dag_id=ti.dag_id, dag_run_id=ti.run_id, task_id=ti.task_id,
                                       update_hitl_detail_payload=UpdateHITLDetailPayload(
                                           chosen_options=[self.choice]),
                                       user=SimpleAuthManagerUser(username="reviewer", role="admin"),
                                       session=session, map_index=ti.map_index)
                    return
            time.sleep(0.5)


def _run(dag, conf, day: str):
    when = pendulum.parse(f"{day}T12:00:00Z")
    dr = dag.test(logical_date=when, run_after=when, run_conf=conf)
    return dr, {ti.task_id: ti.state for ti in dr.get_task_instances()}


def test_promotion_waits_for_a_human_and_a_failed_gate_never_asks(airflow_db, tmp_path, monkeypatch):
    from airflow.dag_processing.dagbag import DagBag
    from mlflow import MlflowClient

    monkeypatch.setenv("LLMOPS_HOME", str(tmp_path))
    (tmp_path / "suites").mkdir()
    (tmp_path / "suites" / "quick_intents.yaml").write_text(SUITE)
    config = tmp_path / "pipeline.yaml"
    text = (ROOT / "include/config/pipeline.yaml").read_text()
    for line in ("  suites: [support_intents]", "  suites_dir: null", "  require_approval: false"):
        assert line in text
    config.write_text(text.replace("  suites: [support_intents]", "  suites: [quick_intents]")
                      .replace("  suites_dir: null", f"  suites_dir: {tmp_path / 'suites'}")
                      .replace("  require_approval: false", "  require_approval: true"))
    monkeypatch.setenv("LLMOPS_CONFIG", str(config))
    uri = f"sqlite:///{tmp_path}/mlflow/mlflow.db"
    (tmp_path / "mlflow").mkdir()
    client = MlflowClient(tracking_uri=uri)
    assert _register(tmp_path, uri, "v1") == "1"

    dag = DagBag(dag_folder=str(ROOT / "dags")).get_dag("llm_evaluation")
    assert "approve" in dag.task_dict and "passed_gate" in dag.task_dict
    reviewer = _Reviewer("Approve")
    reviewer.start()
    try:
        dr, states = _run(dag, {"config_path": str(config), "versions": "1"}, "2026-11-20")
    finally:
        reviewer.done.set()
        reviewer.join(10)
    assert reviewer.error is None, reviewer.error
    assert dr.state == "success", states
    assert states["approve"] == "success" and states["promote"] == "success", states
    assert reviewer.request["subject"] == "Promote model version 1 to champion?"
    assert "quick_intents@1: v1 vs no champion: PROMOTE" in reviewer.request["body"]
    assert reviewer.request["options"] == ["Approve", "Reject"]
    assert str(client.get_model_version_by_alias("support-intent", "champion").version) == "1"
    mv = client.get_model_version("support-intent", "1")
    assert mv.tags["eval.quick_intents.decision"] == "promote"
    # the headline metrics are on the version's logged model too, tied to the golden set
    on_model = {m.key: m for m in client.get_logged_model(mv.model_id or mv.source.removeprefix('models:/')).metrics}
    ev = client.get_run(mv.tags["eval.quick_intents.run_id"])
    assert on_model["macro_f1"].value == pytest.approx(ev.data.metrics["macro_f1"])
    assert on_model["macro_f1"].dataset_name == "support_intents-v1" and "macro_f1_ci_low" in on_model

    # the same weights again: no improvement with a CI above zero, so no human is asked
    assert _register(tmp_path, uri, "v2") == "2"
    dr, states = _run(dag, {"config_path": str(config), "versions": "2"}, "2026-11-21")
    assert dr.state == "success", states
    assert states["passed_gate"] == "success" and states["approve"] == "skipped" and states["promote"] == "skipped"
    assert client.get_model_version("support-intent", "2").tags["eval.quick_intents.decision"] == "reject"
    assert str(client.get_model_version_by_alias("support-intent", "champion").version) == "1"

    # without `versions` the registry decides: every version is evaluated, so the run skips and succeeds
    dr, states = _run(dag, {"config_path": str(config), "versions": None}, "2026-11-22")
    assert dr.state == "success" and states["resolve"] == "skipped", states
    # a version whose candidate event never came is evaluated by the next run
    assert _register(tmp_path, uri, "v3") == "3"
    dr, states = _run(dag, {"config_path": str(config), "versions": None}, "2026-11-23")
    assert dr.state == "success" and states["resolve"] == "success", states
    assert client.get_model_version("support-intent", "3").tags["eval.quick_intents.decision"] == "reject"
