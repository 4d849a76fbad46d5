"""
### llm_evaluation

Benchmarks every candidate model version on the versioned golden suites, compares the best one
with the current **champion**, and promotes it only when it is better with statistical confidence
and nothing regressed.

1. **resolve** – the candidate versions: the `versions` param, else every registered version of
   the model without an evaluation yet (the registry decides, not only the triggering
   candidate-model events: a lost event loses nothing, a run whose candidates another run evaluated
   skips and succeeds).
2. **evaluate** – one mapped task per candidate: every suite in `evaluation.suites` (metrics with
   bootstrap CIs, per-slice metrics, robustness under perturbations, PII probe where on),
   logged to MLflow (experiment `llm_evaluation`) with plots and an HTML report, and tagged on
   the model version.
3. **champion** – the current `champion` version, evaluated on the same suite versions.
4. **gate** – ranks the candidates by the first suite's primary metric and applies each suite's
   thresholds to the best one: primary metric, paired-bootstrap CI above the champion, slice
   regressions, robustness drop, PII leaks. One readable table in the task log and in MLflow.
5. **approve** (when `evaluation.require_approval`) – a candidate that passed the gate waits in
   *Required actions* of the Airflow UI (HITL `ApprovalOperator`, the gate table as its body)
   until a human approves or rejects it; a rejection skips `promote`.
6. **promote** – sets `champion` (the old one becomes `previous`); a repeat changes nothing.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import Param, dag, task

from llmops_airflow.assets import CANDIDATE_MODEL
from llmops_airflow.dagconfig import DEFAULT_CONFIG, dag_settings
from llmops_airflow.dagconfig import load_pipeline_config as _config


@dag(
    dag_id="llm_evaluation",
    schedule=[CANDIDATE_MODEL],
    start_date=datetime(2026, 11, 1),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["llmops", "evaluation", "mlflow"],
    default_args={"owner": "llmops", "retries": 2, "retry_delay": timedelta(seconds=30)},
    params={
        "config_path": Param(DEFAULT_CONFIG, type="string",
                             description="Pipeline config, relative to the project folder or absolute."),
        "versions": Param(None, type=["null", "string"],
                          description="Comma-separated registry versions to evaluate (default: the triggering "
                                      "candidates)."),
    },
)
def llm_evaluation() -> None:
    @task
    def resolve(params: dict[str, Any] | None = None, **context: Any) -> list[str]:
        from airflow.sdk.exceptions import AirflowSkipException

        params = params or {}
        given = [v.strip() for v in (params.get("versions") or "").split(",") if v.strip()]
        if given:
            return given
        found: list[str] = []
        for events in (context.get("triggering_asset_events") or {}).values():
            for event in events:
                for cand in (getattr(event, "extra", None) or {}).get("candidates", []):
                    if cand.get("version") and str(cand["version"]) not in found:
                        found.append(str(cand["version"]))
        # the registry decides, not only the events: every version of the model without an evaluation
        # (a candidate whose event was lost too); versions another run evaluated are left out
        import logging

        from llmops.evaluation.promotion import unevaluated_versions

        cfg = _config(params["config_path"])
        pending = [str(mv.version) for mv in unevaluated_versions(cfg)
                   if mv.name == cfg.training.registered_model]
        log = logging.getLogger("airflow.task")
        if found:
            log.info("candidates of the triggering events: %s", found)
        if not pending:
            raise AirflowSkipException("nothing to evaluate: every registered version has an evaluation"
                                       + (f" (the triggering candidates {found} were evaluated by another run)"
                                          if found else ""))
        log.info("evaluating %s version(s) without an evaluation: %s", len(pending), pending)
        return pending

    @task
    def evaluate(version: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        from llmops.evaluation.promotion import evaluate_version

        return evaluate_version(_config((params or {})["config_path"]), version)

    @task
    def champion(versions: list[str], params: dict[str, Any] | None = None) -> dict[str, Any] | None:
        from llmops.evaluation.promotion import evaluate_champion

        return evaluate_champion(_config((params or {})["config_path"]), versions)

    @task
    def gate(results: list[dict[str, Any]], champ: dict[str, Any] | None,
             params: dict[str, Any] | None = None) -> dict[str, Any]:
        import logging

        from llmops.evaluation.promotion import gate as run_gate

        out = run_gate(_config((params or {})["config_path"]), list(results), champ)
        logging.getLogger("airflow.task").info("promotion gate:\n%s", out["table"])
        return {k: v for k, v in out.items() if k != "table"} | {"table": out["table"]}

    @task
    def promote(decision: dict[str, Any], params: dict[str, Any] | None = None, **context: Any) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowSkipException

        from llmops.evaluation.promotion import apply
        from llmops_airflow.hooks.store import ObjectStoreHook

        if not decision["promote"]:
            reasons = "; ".join(decision.get("reasons") or []) or "already the champion"
            raise AirflowSkipException(f"version {decision['version']} not promoted: {reasons}")
        cfg = _config((params or {})["config_path"])
        # the audit trail is on the store, reached through the Airflow connection of storage.conn_id
        # the move is claimed for this run: a second run promoting the same version at once leaves it
        return apply(cfg, decision["version"], store=ObjectStoreHook.for_config(cfg).store,
                     owner=f"{context['dag'].dag_id}/{context['run_id']}")

    versions = resolve()
    results = evaluate.expand(version=versions)
    decision = gate(results, champion(versions))
    # read when the DAG is parsed (a light YAML read of these keys, not the validated model): LLMOPS_CONFIG
    # (the deployment's config) or the project default
    stage = dag_settings(os.environ.get("LLMOPS_CONFIG") or DEFAULT_CONFIG).evaluation
    if stage.require_approval:
        from airflow.providers.standard.operators.hitl import ApprovalOperator

        @task.short_circuit
        def passed_gate(decision: dict[str, Any]) -> bool:
            """Only a candidate that passed the gate is put to a human; otherwise approve/promote skip."""
            return bool(decision["promote"])

        approve = ApprovalOperator(
            task_id="approve",
            subject="Promote model version {{ ti.xcom_pull(task_ids='gate')['version'] }} to champion?",
            body="```\n{{ ti.xcom_pull(task_ids='gate')['table'] }}\n```",
            response_timeout=timedelta(hours=stage.approval_timeout_h),
        )
        passed_gate(decision) >> approve >> promote(decision)
    else:
        promote(decision)


llm_evaluation()
