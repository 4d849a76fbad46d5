"""
### llm_fine_tuning

Fine-tunes Hugging Face models with **DeepSpeed** on the labeled dataset versions and registers
each trained model as a new version in the **MLflow** model registry.

1. **resolve** – the labeled versions to train on: the `versions` param, else the newest labeled
   version of every partition (all labels so far; a relabeled item keeps its newest label). When
   another run already trained on the same rows (ids, texts, labels) with the same candidates and
   settings – a re-curation of unchanged text publishes a labeled version that only carries the
   labels forward – the run trains nothing and says which run did (`force` trains anyway).
2. **plan** – one training per candidate (`training.candidates` in the pipeline config, or the
   `candidates` param), with the run's overrides (base model, task, DeepSpeed config, steps or
   epochs, LoRA) applied to each.
3. **train** – one mapped task per candidate, in the `gpu` pool (slots = GPUs) and on the
   `training.queue` Celery queue (workers on GPU nodes): the DeepSpeed launcher on the worker
   (CPU in the embedded setup) or a GPU pod (`training.launcher: kubernetes`). Checkpoints live
   in a run folder keyed by (DAG run, task), so a retry resumes from the newest one, logs
   into the same MLflow run and never registers a second version.
4. **announce** – one candidate-model asset event listing every registered version, for
   evaluation to rank, and the record of what was trained on (the fingerprint).
5. **catch_up** – also after a run that trained nothing: if the newest labeled data is still not
   what any run trained on (a labeled version published while this run was busy: the scheduler may
   drop that event, apache/airflow#56050), one more run for it; nothing otherwise.

Runs when a labeled version is published (asset schedule), or by hand with params.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import Param, dag, task

from llmops_airflow.assets import CANDIDATE_MODEL, LABELED_DATASET
from llmops_airflow.dagconfig import DEFAULT_CONFIG, dag_settings
from llmops_airflow.dagconfig import load_pipeline_config as _config
from llmops_airflow.operators.training import DeepSpeedTrainOperator, TrainingCatchUpOperator


@dag(
    dag_id="llm_fine_tuning",
    schedule=[LABELED_DATASET],
    start_date=datetime(2026, 11, 1),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["llmops", "training", "deepspeed", "mlflow"],
    default_args={
        "owner": "llmops",
        "retries": 2,
        "retry_delay": timedelta(seconds=30),
        "retry_exponential_backoff": True,
    },
    params={
        "config_path": Param(DEFAULT_CONFIG, type="string",
                             description="Pipeline config, relative to the project folder or absolute."),
        "versions": Param(None, type=["null", "string"],
                          description="Comma-separated labeled versions (default: newest of every partition)."),
        "base_model": Param(None, type=["null", "string"],
                            description="Override every candidate's base model (a local folder)."),
        "task": Param(None, type=["null", "string"], enum=[None, "classification", "sft"]),
        "deepspeed": Param(None, type=["null", "string"],
                           description="zero2 | zero3 | zero3_offload | a JSON path (default: the config's)."),
        "max_steps": Param(None, type=["null", "integer"], minimum=1),
        "epochs": Param(None, type=["null", "number"], exclusiveMinimum=0,
                        description="Train this many epochs instead of max_steps."),
        "learning_rate": Param(None, type=["null", "number"], exclusiveMinimum=0),
        "lora": Param(None, type=["null", "boolean"], description="LoRA adapters on/off (default: the config's)."),
        "force": Param(False, type="boolean",
                       description="Train even if a run already trained on the same data and settings."),
        "candidates": Param([], type="array",
                            description="Model selection: [{name, model: {...}, train: {...}}, ...] replaces "
                                        "training.candidates."),
    },
)
def llm_fine_tuning() -> None:
    @task
    def resolve(params: dict[str, Any] | None = None, **context: Any) -> list[str]:
        import json

        from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

        from llmops.training.plan import trained_marker, training_fingerprint
        from llmops.versions import latest_versions
        from llmops_airflow.hooks.store import ObjectStoreHook

        params = params or {}
        cfg = _config(params["config_path"])
        store = ObjectStoreHook.for_config(cfg).store
        found = [v.strip() for v in (params.get("versions") or "").split(",") if v.strip()]
        if not found:
            found = list(latest_versions(store, cfg.dataset, "labeled").values())
        if not found:
            raise AirflowFailException("no labeled version yet: run llm_annotation first or pass `versions`")
        try:
            fingerprint = training_fingerprint(cfg, store, found, params)
        except ValueError as exc:
            raise AirflowFailException(str(exc)) from None
        context["ti"].xcom_push(key="fingerprint", value=fingerprint)
        marker = trained_marker(cfg.dataset, fingerprint)
        if not params.get("force") and store.exists(marker):
            done = json.loads(store.read_bytes(marker))
            if done.get("run_id") != context["run_id"]:  # a retry of that run itself goes on
                raise AirflowSkipException(
                    f"nothing to train: run {done.get('run_id')} trained on the same rows, candidates and settings "
                    f"(fingerprint {fingerprint}, model versions {done.get('registered')}); set force: true to "
                    "train anyway")
        return found

    @task
    def plan(params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        from airflow.sdk.exceptions import AirflowFailException

        from llmops.training.plan import plan_candidates

        params = params or {}
        try:
            return plan_candidates(_config(params["config_path"]), params)
        except ValueError as exc:
            raise AirflowFailException(str(exc)) from None

    @task(outlets=[CANDIDATE_MODEL])
    def announce(results: list[dict[str, Any]], **context: Any) -> list[dict[str, Any]]:
        keep = ("candidate", "registered_model", "version", "run_id", "model_uri", "dataset_versions", "task",
                "global_step", "eval")
        import json

        from llmops.training.plan import trained_marker
        from llmops_airflow.hooks.store import ObjectStoreHook

        candidates = [{k: r.get(k) for k in keep} for r in results]
        context["outlet_events"][CANDIDATE_MODEL].extra = {"candidates": candidates}
        # what this run trained on: a later run on the same data and settings trains nothing
        fingerprint = context["ti"].xcom_pull(task_ids="resolve", key="fingerprint")
        if fingerprint:
            cfg = _config(context["params"]["config_path"])
            ObjectStoreHook.for_config(cfg).store.create_bytes(trained_marker(cfg.dataset, fingerprint), json.dumps({
                "fingerprint": fingerprint, "dag_id": context["dag"].dag_id, "run_id": context["run_id"],
                "dataset_versions": candidates[0]["dataset_versions"] if candidates else None,
                "registered": [f"{c['registered_model']}/{c['version']}" for c in candidates]},
                indent=1, sort_keys=True).encode())
        return candidates

    versions = resolve()
    # pool, GPUs and queue at parse time (a light YAML read of these keys); the task re-reads the whole config
    stage = dag_settings(DEFAULT_CONFIG).training
    train = DeepSpeedTrainOperator.partial(
        task_id="train",
        config_path="{{ params.config_path }}",
        versions=versions,
        pool=stage.pool,
        pool_slots=max(1, stage.gpus),
        **({"queue": stage.queue} if stage.queue else {}),
        retries=stage.retries,  # each retry resumes from the newest checkpoint in the store
        retry_delay=timedelta(seconds=stage.retry_delay_s),
        execution_timeout=timedelta(hours=24),
    ).expand(candidate=plan())
    announce(train.output) >> TrainingCatchUpOperator(task_id="catch_up", config_path="{{ params.config_path }}")


llm_fine_tuning()
