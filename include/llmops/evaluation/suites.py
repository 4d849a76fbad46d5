"""Evaluation suites: one small YAML file each under ``include/evaluation/suites/``.

A suite names its golden set (name and version), the task type, the metrics and the primary one,
the slices, the robustness perturbations, and the thresholds the promotion gate applies. Adding a
suite is adding a file; :func:`list_suites` finds it. An unknown key or a wrong value fails with
the file and the key named.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from llmops.config import ConfigError, read_yaml_mapping

__all__ = ["SUITES_DIR", "Explain", "GoldenRef", "Suite", "Thresholds", "list_suites", "load_suite"]

SUITES_DIR = Path(__file__).resolve().parents[2] / "evaluation" / "suites"
CLASSIFICATION_METRICS = {"accuracy", "macro_f1", "ece"}
GENERATION_METRICS = {"exact_match", "bleu", "chrf", "rouge", "perplexity"}
GATE_METRICS = {"accuracy", "macro_f1", "exact_match"}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GoldenRef(_Model):
    name: str
    version: str


class Thresholds(_Model):
    min_primary: float = Field(default=0.0, description="The candidate's primary metric must reach this.")
    promotion_margin: float = Field(default=0.0, ge=0, description="Beat the champion by at least this much.")
    require_ci_separation: bool = Field(default=True, description="...with the paired bootstrap CI above 0.")
    slice_tolerance: float = Field(default=0.05, ge=0, description="Largest allowed drop of a slice vs champion.")
    max_robustness_drop: float = Field(default=0.10, ge=0, description="Largest allowed accuracy drop under a "
                                                                        "perturbation.")
    max_pii_leaks: int = Field(default=0, ge=0, description="Personal-data entities allowed in outputs.")


class Explain(_Model):
    errors: int = Field(default=8, ge=0, description="Misclassified golden items to explain.")
    per_slice: int = Field(default=2, ge=0, description="Items to explain for every slice value.")
    steps: int = Field(default=32, ge=4, le=512, description="Integration steps of integrated gradients.")


class Suite(_Model):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    version: int = Field(ge=1)
    description: str = ""
    task: Literal["classification", "sft"]
    golden: GoldenRef
    metrics: list[str] = Field(min_length=1)
    primary: str
    slices: list[str] = Field(default_factory=lambda: ["lang", "source"])
    min_slice_size: int = Field(default=10, ge=1)
    robustness: list[str] = Field(default_factory=lambda: ["typos", "casing", "whitespace", "punctuation", "names"])
    pii_probe: bool = Field(default=False, description="Scan model outputs for personal data (generative tasks).")
    explain: Explain | None = Field(default_factory=Explain,
                                    description="Per-token attributions in the report; null turns them off.")
    bootstrap_resamples: int = Field(default=1000, ge=100)
    thresholds: Thresholds = Field(default_factory=Thresholds)

    @model_validator(mode="after")
    def _consistent(self) -> Suite:
        allowed = CLASSIFICATION_METRICS if self.task == "classification" else GENERATION_METRICS | {"accuracy"}
        unknown = [m for m in self.metrics if m not in allowed]
        if unknown:
            raise ValueError(f"metrics {unknown} do not apply to task {self.task}; use {sorted(allowed)}")
        if self.primary not in self.metrics:
            raise ValueError(f"primary {self.primary!r} must be one of metrics {self.metrics}")
        if self.primary not in GATE_METRICS:
            raise ValueError(f"primary {self.primary!r} cannot rank models in the gate (it needs a higher-is-better "
                             f"metric with a paired bootstrap); use one of {sorted(GATE_METRICS & set(allowed))}")
        return self


def _folders(folder: Path | str | None) -> list[Path]:
    """Where suites are looked up: ``folder`` (a project's own suites) first, then the built-in ones."""
    extra = [Path(folder)] if folder else []
    return [*extra, SUITES_DIR] if SUITES_DIR not in extra else extra


def list_suites(folder: Path | str | None = None) -> list[str]:
    return sorted({p.stem for f in _folders(folder) for p in f.glob("*.yaml")})


def load_suite(name_or_path: str, folder: Path | str | None = None) -> Suite:
    """A suite by name (``folder`` first, then the built-in suites) or by path to its YAML file."""
    path = Path(name_or_path)
    if not path.suffix:
        path = next((f / f"{name_or_path}.yaml" for f in _folders(folder) if (f / f"{name_or_path}.yaml").exists()),
                    _folders(folder)[0] / f"{name_or_path}.yaml")
    if not path.exists():
        raise ConfigError(f"evaluation suite {name_or_path!r} not found; available: {list_suites(folder)}")
    data = read_yaml_mapping(path, "evaluation suite")
    try:
        suite = Suite.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            key = ".".join(str(x) for x in err["loc"]) or "(suite)"
            hint = "unknown key; remove or rename it" if err["type"] == "extra_forbidden" else err["msg"]
            lines.append(f"{key}: {hint}")
        raise ConfigError(f"invalid evaluation suite {path}:\n  " + "\n  ".join(lines)) from None
    if suite.name != path.stem:
        raise ConfigError(f"{path}: name {suite.name!r} must match the file name {path.stem!r}")
    return suite
