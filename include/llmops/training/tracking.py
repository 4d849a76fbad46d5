"""MLflow tracking of a fine-tuning run: one run per training, reused by every retry.

A training is named by its *run key* (the Airflow DAG run and task, or the run folder). The first
attempt creates the MLflow run tagged with that key; a retried or resumed attempt finds it and logs
into it. The final model is logged once with the transformers flavor and registered once: before
registering, the registry is searched for a version made from this run.

Only the process of rank 0 talks to MLflow.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from pathlib import Path
from typing import Any

from llmops.config import expand_vars
from llmops.mlflow_uri import ensure_experiment, use_tracking_uri
from llmops.training.args import TrackingArgs, TrainConfig

__all__ = ["RUN_KEY_TAG", "TrackingCallback", "flat_params", "open_run", "publish_model", "tracking_uri",
           "use_tracking_uri"]

log = logging.getLogger(__name__)

RUN_KEY_TAG = "llmops.run_key"
MODEL_URI_TAG = "llmops.model_uri"

# Dense bf16 peak of common training GPUs, TFLOP/s (vendor data sheets), for MFU.
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A10G": 125.0, "L4": 121.0,
                    "A6000": 155.0, "4090": 165.0}


def tracking_uri(args: TrackingArgs) -> str | None:
    uri = args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    return expand_vars(uri) if uri else None


def _client(args: TrackingArgs) -> Any:
    from mlflow import MlflowClient

    uri = tracking_uri(args)
    if uri and uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return MlflowClient(tracking_uri=uri)


def experiment_id(client: Any, args: TrackingArgs) -> str:
    return ensure_experiment(client, args.experiment, args.artifact_location)


def open_run(cfg: TrainConfig, run_key: str) -> str:
    """The id of the MLflow run of ``run_key``: found by its tag, or created (first attempt)."""
    args = cfg.tracking
    client = _client(args)
    exp_id = experiment_id(client, args)
    found = client.search_runs([exp_id], filter_string=f"tags.`{RUN_KEY_TAG}` = '{_quote(run_key)}'",
                               order_by=["attributes.start_time ASC"], max_results=1)
    if found:
        run_id = str(found[0].info.run_id)
        if found[0].info.status != "RUNNING":  # a retry: the same run goes on
            client.update_run(run_id, status="RUNNING")
        return run_id
    tags = {RUN_KEY_TAG: run_key, "llmops.task": cfg.model.task, "llmops.base_model": cfg.model.name_or_path,
            "llmops.dataset": cfg.data.dataset, "llmops.dataset_versions": ",".join(cfg.data.versions),
            **args.tags}
    run = client.create_run(exp_id, run_name=args.run_name, tags=tags)
    return str(run.info.run_id)


def _quote(value: str) -> str:
    return value.replace("'", "\\'")


def system_metrics(cfg: TrainConfig, run_id: str) -> Any:
    """Start MLflow's system metrics sampler (CPU, memory, disk, network; GPU with pynvml) for the run."""
    if not cfg.tracking.log_system_metrics:
        return None
    from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

    monitor = SystemMetricsMonitor(run_id, sampling_interval=5, resume_logging=True,
                                   tracking_uri=tracking_uri(cfg.tracking))
    monitor.start()
    return monitor


def flat_params(data: Any, prefix: str = "") -> dict[str, str]:
    """Nested config -> ``a.b.c`` params (MLflow params are flat strings of at most 6000 chars)."""
    out: dict[str, str] = {}
    if isinstance(data, dict):
        for key, value in data.items():
            out.update(flat_params(value, f"{prefix}{key}."))
    else:
        out[prefix.rstrip(".")] = json.dumps(data)[:6000] if isinstance(data, list | dict) else str(data)
    return out


def code_version() -> str:
    """The project's git commit when it runs from a checkout, else the package version."""
    import subprocess

    root = Path(__file__).resolve().parents[3]
    try:
        sha = subprocess.run(["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"], capture_output=True,
                             text=True, timeout=10, check=True).stdout.strip()
        return sha or "unknown"
    except (OSError, subprocess.SubprocessError):
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("llmops")
        except PackageNotFoundError:
            return "unknown"


def log_params_once(client: Any, run_id: str, params: dict[str, str]) -> None:
    """Log params not yet on the run (a retry logs nothing again; a changed value is kept as it was)."""
    from mlflow.entities import Param

    have = client.get_run(run_id).data.params
    new = [Param(k, v) for k, v in params.items() if k not in have]
    changed = sorted(k for k, v in params.items() if k in have and have[k] != v)
    if changed:
        log.warning("MLflow run %s keeps its first values of %s", run_id, ", ".join(changed))
    for i in range(0, len(new), 100):
        client.log_batch(run_id, params=new[i:i + 100])


def _peak_flops() -> float | None:
    import torch

    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name(0)
    for key, tflops in PEAK_BF16_TFLOPS.items():
        if key in name:
            return tflops * 1e12
    return None


def _trainer_callback_base() -> type:
    from transformers import TrainerCallback

    return TrainerCallback


class TrackingCallback(_trainer_callback_base()):  # type: ignore[misc]
    """Step metrics (loss, lr, grad norm, tokens/s, MFU and memory on GPU) to MLflow and a progress
    line to the log; steps already logged by an earlier attempt are not logged twice."""

    def __init__(self, run_id: str | None, client: Any | None, *, n_params: int, world_size: int) -> None:
        self.run_id, self.client = run_id, client
        self.n_params, self.world_size = n_params, world_size
        self.last_logged = -1
        self._t: float | None = None
        self._tokens = 0
        self.peak = _peak_flops()
        self.history: list[dict[str, float]] = []

    def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        if self.client is not None and self.run_id is not None:
            seen = self.client.get_metric_history(self.run_id, "train/loss")
            self.last_logged = max((m.step for m in seen), default=-1)
        self._t, self._tokens = time.perf_counter(), int(state.num_input_tokens_seen or 0)

    def on_save(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        # tokens/s measures training steps: the time spent writing a checkpoint is left out
        self._t, self._tokens = time.perf_counter(), int(state.num_input_tokens_seen or 0)

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kw: Any) -> None:
        if not state.is_world_process_zero or not logs:
            return
        import torch

        step = int(state.global_step)
        metrics = {_metric_name(k): float(v) for k, v in logs.items()
                   if isinstance(v, int | float) and math.isfinite(float(v))}
        now, tokens = time.perf_counter(), int(state.num_input_tokens_seen or 0)
        if self._t is not None and tokens > self._tokens and now > self._t:
            tps = (tokens - self._tokens) / (now - self._t)  # tokens of all ranks per second
            metrics["perf/tokens_per_s"] = tps
            if self.peak:
                metrics["perf/mfu"] = 6.0 * self.n_params * tps / (self.peak * self.world_size)
        self._t, self._tokens = now, tokens
        if torch.cuda.is_available():
            metrics["gpu/max_memory_allocated_gib"] = torch.cuda.max_memory_allocated() / 2**30
        self.history.append({"step": float(step), **metrics})
        loss = metrics.get("train/loss")
        log.info("step %d/%d (%.0f%%)%s%s", step, state.max_steps, 100.0 * step / max(1, state.max_steps),
                 f" loss={loss:.4f}" if loss is not None else "",
                 f" tokens/s={metrics['perf/tokens_per_s']:.0f}" if "perf/tokens_per_s" in metrics else "")
        if self.client is not None and self.run_id is not None and step > self.last_logged:
            from mlflow.entities import Metric

            ts = int(time.time() * 1000)
            self.client.log_batch(self.run_id, metrics=[Metric(k, v, ts, step) for k, v in metrics.items()])


def _metric_name(key: str) -> str:
    """Trainer log keys -> MLflow names: ``loss`` -> ``train/loss``, ``eval_loss`` -> ``eval/loss``, and the
    end-of-training totals (``train_runtime``, ``train_loss``) -> ``summary/...``."""
    if key.startswith("eval_"):
        return "eval/" + key.removeprefix("eval_")
    if key.startswith("train_"):
        return "summary/" + key.removeprefix("train_")
    return "train/" + key


def curves_png(history: list[dict[str, float]], path: Path) -> Path | None:
    """Training curves (loss, learning rate, tokens/s over steps) as one PNG."""
    keys = [k for k in ("train/loss", "train/learning_rate", "perf/tokens_per_s", "eval/loss")
            if any(k in h for h in history)]
    if not keys:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3), squeeze=False)
    for ax, key in zip(axes[0], keys, strict=True):
        pts = [(h["step"], h[key]) for h in history if key in h]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="." if len(pts) < 50 else None)
        ax.set_title(key)
        ax.set_xlabel("step")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def publish_model(cfg: TrainConfig, run_id: str, model_dir: Path, *, artifacts: list[Path],
                  tags: dict[str, str]) -> dict[str, Any]:
    """Log the run's artifacts and the model (transformers flavor) once, and register it once.

    Returns ``{"run_id", "model_uri", "registered_model", "version"}``; a retry returns the same.
    """
    import mlflow

    args = cfg.tracking
    client = _client(args)
    run = client.get_run(run_id)
    for path in artifacts:
        if path.exists():
            client.log_artifact(run_id, str(path), artifact_path="training")
    model_uri = run.data.tags.get(MODEL_URI_TAG)
    if model_uri is None:
        import torch
        import transformers

        task = "text-classification" if cfg.model.task == "classification" else "text-generation"
        # from an in-memory pipeline: MLflow's local-checkpoint path does not read transformers 5's task table
        pipe = transformers.pipeline(task, model=str(model_dir), tokenizer=str(model_dir), device=-1)  # type: ignore[call-overload]
        with use_tracking_uri(tracking_uri(args)), mlflow.start_run(run_id=run_id):
            info = mlflow.transformers.log_model(
                pipe, name="model", task=task,
                pip_requirements=[f"transformers=={transformers.__version__}",
                                  f"torch=={torch.__version__.split('+')[0]}"])
        model_uri = info.model_uri
        client.set_tag(run_id, MODEL_URI_TAG, model_uri)
    out: dict[str, Any] = {"run_id": run_id, "model_uri": model_uri, "registered_model": args.registered_model,
                           "version": None}
    if args.registered_model:  # the registry resolves models:/ sources through the fluent tracking URI
        with use_tracking_uri(tracking_uri(args)):
            out["version"] = register_once(client, args.registered_model, model_uri, run_id, tags)
    return out


def register_once(client: Any, name: str, model_uri: str, run_id: str, tags: dict[str, str]) -> str:
    """The registry version made from ``run_id``; created only if there is none yet."""
    from mlflow.exceptions import MlflowException

    existing = client.search_model_versions(f"name = '{_quote(name)}' and run_id = '{_quote(run_id)}'")
    if existing:
        return str(min(int(v.version) for v in existing))
    try:
        client.create_registered_model(name, description="Fine-tuned by the llmops pipeline.")
    except MlflowException as exc:
        if "RESOURCE_ALREADY_EXISTS" not in str(exc.error_code):
            raise
    mv = client.create_model_version(name, source=model_uri, run_id=run_id, tags=tags,
                                     model_id=model_uri.removeprefix("models:/")
                                     if model_uri.startswith("models:/") else None)
    log.info("registered %s version %s from run %s", name, mv.version, run_id)
    return str(mv.version)
