"""
### llm_privacy_erasure

Honours a data subject's **erasure request** (GDPR art. 17 / CCPA) everywhere the pipeline put
their data. Trigger it by hand with the request id and the subjects:

* `subjects` – identifiers (an e-mail address, a phone number, a customer id), pseudonyms found in
  the data (`<EMAIL_ADDRESS_1a2b3c4d5e6f>`) or subject keys (`EMAIL_ADDRESS:<64 hex>`). Prefer
  pseudonyms or keys (`llmops subject-keys` computes them): raw identifiers are kept in this
  run's conf in the metadata DB. Raw identifiers are masked in every task log.

1. **erase** – finds the subject's records through the subject index (and the raw text for raw
   identifiers) in every raw, curated and labeled version, writes successor versions without them
   and purges the old ones (their manifests record the request and the counts, never the data);
   scrubs annotation exports, Data Docs and MLflow run artifacts; expires open HITs holding the
   subject's items; flags every model version trained on affected data (`llmops.privacy.erasure`
   tag – the promotion gate refuses it); writes `privacy/erasures/<request_id>.json` and an
   audit event. Counts only in the log and XCom.
2. **request_retraining** – when labeled versions changed, emits a labeled-dataset asset event
   with their successors, so `llm_fine_tuning` retrains through its normal path.

A second run of the same request finds nothing left and changes nothing.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import Param, dag, task

from llmops_airflow.assets import LABELED_DATASET
from llmops_airflow.dagconfig import DEFAULT_CONFIG
from llmops_airflow.dagconfig import load_pipeline_config as _config


@dag(
    dag_id="llm_privacy_erasure",
    schedule=None,
    start_date=datetime(2026, 11, 1),
    catchup=False,
    max_active_runs=1,  # two requests never rewrite the same version at once
    doc_md=__doc__,
    tags=["llmops", "privacy"],
    default_args={"owner": "llmops", "retries": 2, "retry_delay": timedelta(seconds=30)},
    params={
        "request_id": Param("", type="string", minLength=1, maxLength=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$",
                            description="The erasure request's id (e.g. DSR-2026-0042); kept in the audit trail."),
        "subjects": Param([], type="array", minItems=1, items={"type": "string"},
                          description="Identifiers, pseudonyms or subject keys of the data subject."),
        "config_path": Param(DEFAULT_CONFIG, type="string",
                             description="Pipeline config, relative to the project folder or absolute."),
    },
)
def llm_privacy_erasure() -> None:
    @task
    def erase(params: dict[str, Any] | None = None) -> dict[str, Any]:
        import logging

        from airflow.sdk.exceptions import AirflowFailException
        from airflow.sdk.log import mask_secret

        from llmops.privacy.erasure import ErasureError
        from llmops.privacy.erasure import erase as run_erasure
        from llmops_airflow.hooks.store import ObjectStoreHook
        from llmops_airflow.operators.annotation import open_crowd

        params = params or {}
        subjects = [str(s) for s in params.get("subjects") or []]
        for value in subjects:  # never in a log line, whatever prints them
            mask_secret(value)
        cfg = _config(params["config_path"])
        store = ObjectStoreHook.for_config(cfg).store
        try:
            out = run_erasure(cfg, store=store, request_id=params["request_id"], subjects=subjects,
                              backend_factory=lambda: open_crowd(cfg, store))
        except ErasureError as exc:
            raise AirflowFailException(str(exc)) from None
        logging.getLogger("airflow.task").info(
            "erasure %s: %s records; removed %s; %s files and %s MLflow artifacts scrubbed; %s HITs cancelled; "
            "model versions flagged %s%s", out["request_id"], out["records"], out["removed"], out["files_scrubbed"],
            out["mlflow_artifacts_scrubbed"], out["hits_cancelled"], out["model_versions_flagged"],
            "" if out["changed"] else " (nothing left to erase)")
        return out

    @task(outlets=[LABELED_DATASET])
    def request_retraining(result: dict[str, Any], **context: Any) -> list[str]:
        from airflow.sdk.exceptions import AirflowSkipException

        if not result["retrain"]:
            raise AirflowSkipException("no labeled version changed: nothing to retrain")
        context["outlet_events"][LABELED_DATASET].extra = {
            "version_id": result["retrain"][-1], "versions": result["retrain"], "reason": "erasure",
            "request_id": result["request_id"]}
        return list(result["retrain"])

    request_retraining(erase())


llm_privacy_erasure()
