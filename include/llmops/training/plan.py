"""From the pipeline config and a DAG run's params to one training config per candidate.

A candidate's config is ``training.defaults`` <- the candidate's keys <- the run's params (which
apply to every candidate: base model, task, ZeRO stage, steps or epochs, LoRA). Its run folder and
MLflow run are keyed by (DAG, DAG run, task, map index), never by try number, so a retry resumes
the same checkpoints and logs into the same run.
"""

from __future__ import annotations

import re
from typing import Any

from llmops.config import PipelineConfig
from llmops.training.args import TrainConfig, parse_train_config
from llmops.training.settings import check_candidate

__all__ = ["PARAM_KEYS", "build_train_config", "plan_candidates", "run_folder_key", "run_key", "trained_marker",
           "training_fingerprint"]

#: DAG params that override every candidate -> (section, key) in the training config.
PARAM_KEYS = {
    "base_model": ("model", "name_or_path"),
    "task": ("model", "task"),
    "deepspeed": ("train", "deepspeed"),
    "max_steps": ("train", "max_steps"),
    "epochs": ("train", "epochs"),
    "learning_rate": ("train", "learning_rate"),
}


def plan_candidates(cfg: PipelineConfig, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """One ``{"name", "model", "train"}`` per candidate (``params["candidates"]`` replaces the
    configured list when given), with the run's overrides applied."""
    params = params or {}
    stage = cfg.training
    chosen = params.get("candidates") or [c.model_dump() for c in stage.candidates]
    out = []
    for i, cand in enumerate(chosen):
        if not isinstance(cand, dict) or not cand.get("name"):
            raise ValueError(f"params.candidates[{i}]: expected {{name, model, train}}, got {cand!r}")
        extra = sorted(set(cand) - {"name", "model", "train"})
        if extra:
            raise ValueError(f"params.candidates[{i}]: unknown key(s) {extra}; use name, model, train")
        model = {**stage.defaults.get("model", {}), **cand.get("model", {})}
        train = {**stage.defaults.get("train", {}), **cand.get("train", {})}
        for param, (section, key) in PARAM_KEYS.items():
            value = params.get(param)
            if value not in (None, ""):
                (model if section == "model" else train)[key] = value
        if params.get("lora") is True:
            model.setdefault("lora", {})
            model["lora"] = model["lora"] or {}
        elif params.get("lora") is False:
            model["lora"] = None
        check_candidate(f"params.candidates[{i}] ({cand['name']})" if params.get("candidates")
                        else f"training.candidates[{i}] ({cand['name']})", model, train)
        out.append({"name": str(cand["name"]), "model": model, "train": train})
    names = [c["name"] for c in out]
    if len(set(names)) != len(names):
        raise ValueError(f"params.candidates: names must be unique, got {names}")
    return out


def _safe(part: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", part).strip("_") or "_"


def run_key(dag_id: str, run_id: str, task_id: str, map_index: int | None, candidate: str) -> str:
    idx = "" if map_index is None or map_index < 0 else f"[{map_index}]"
    return f"{dag_id}/{run_id}/{task_id}{idx}/{candidate}"


def run_folder_key(dataset: str, key: str) -> str:
    """Object-store prefix of a training's run folder: ``training/<dataset>/runs/<dag>/<run>/<task>/<name>``."""
    return "/".join(["training", _safe(dataset), "runs", *(_safe(p) for p in key.split("/"))])


def build_train_config(cfg: PipelineConfig, candidate: dict[str, Any], *, versions: list[str], output_dir: str,
                       key: str, tags: dict[str, str] | None = None) -> TrainConfig:
    """The validated training config of one candidate (errors name the key)."""
    stage = cfg.training
    data: dict[str, Any] = {"storage_root": cfg.resolved_storage_root(), "dataset": cfg.dataset,
                            "versions": list(versions)}
    decon = stage.decontamination
    if decon.enabled and cfg.evaluation.suites:
        from llmops.evaluation.promotion import suites_dir

        data["decontaminate"] = {"suites": list(cfg.evaluation.suites), "suites_dir": suites_dir(cfg),
                                 "jaccard": decon.jaccard, "ngram": decon.ngram}
    tracking = {"tracking_uri": stage.tracking.tracking_uri, "artifact_location": stage.tracking.artifact_location,
                "experiment": stage.tracking.experiment, "log_system_metrics": stage.tracking.log_system_metrics,
                "run_key": key, "run_name": f"{candidate['name']}", "registered_model": stage.registered_model,
                "tags": {"llmops.candidate": candidate["name"], **(tags or {})}}
    return parse_train_config({"model": candidate["model"], "data": data,
                               "train": {**candidate["train"], "output_dir": output_dir}, "tracking": tracking},
                              origin=f"candidate {candidate['name']}")


#: training settings that decide where and how robustly a training runs, not what it learns
_OPERATIONAL = ("tracking", "launcher", "pool", "queue", "kill_grace_s", "retries", "retry_delay_s",
                "checkpoint_sync_s", "kubernetes", "hostfile", "rdzv_endpoint")


def training_fingerprint(cfg: PipelineConfig, store: Any, versions: list[str],
                         params: dict[str, Any] | None = None) -> str:
    """What a training run learns from: the rows of ``versions`` (ids, texts, labels: not the
    version ids, so labels carried into a new labeled version of unchanged text give the same
    fingerprint), the planned candidates with the run's overrides, and the training settings
    that change the result (not the pool, queue, retries or tracking server)."""
    import hashlib
    import json

    from llmops.training.data import load_labeled_rows

    rows = hashlib.sha256()
    for row in sorted(load_labeled_rows(store, cfg.dataset, versions), key=lambda r: r["id"]):
        rows.update(json.dumps([row["id"], row["text"], row["label"], row.get("lang")], ensure_ascii=False).encode())
        rows.update(b"\n")
    settings = cfg.training.model_dump(mode="json", exclude=set(_OPERATIONAL))
    basis = {"rows": rows.hexdigest(), "candidates": plan_candidates(cfg, params), "training": settings}
    return hashlib.sha256(json.dumps(basis, sort_keys=True, default=str).encode()).hexdigest()[:32]


def trained_marker(dataset: str, fingerprint: str) -> str:
    """Object key of the record that a run trained (and registered) on this fingerprint."""
    return f"training/{dataset}/trained/{fingerprint}.json"
