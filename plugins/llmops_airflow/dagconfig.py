"""The few pipeline-config keys DAG files read when they are parsed, read cheaply.

The DAG processor re-imports every DAG file regularly, in a fresh process. Validating the whole
pipeline config there (the pydantic model tree of ``llmops.config``) costs more than the rest of a
DAG file, just to read a pool, a queue or a cron. :func:`dag_settings` reads the file with
``yaml.safe_load`` (cached per file version) and returns only the keys that shape a DAG, with the
model's defaults and the model's constraints; ``${VAR}`` is not expanded in them, as the model does
not expand them either. Whenever a value is not what the model accepts as is, or the file is
missing or not valid YAML, the full model is loaded instead: it raises the same :class:`ConfigError`
(naming the key) as before, or returns the value it coerces. Tasks still load and validate the
whole config (:func:`load_pipeline_config`) when they run.

Importing this module is light: no pydantic model, no operator, no ``llmops`` core module.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

PROJECT_DIR = Path(os.environ.get("LLMOPS_PROJECT_DIR", Path(__file__).resolve().parents[2]))
# The deployment's config (LLMOPS_CONFIG, read when the DAGs are parsed) is every DAG's default
# `config_path` param; without it, the project's own file.
DEFAULT_CONFIG = os.environ.get("LLMOPS_CONFIG") or "include/config/pipeline.yaml"

__all__ = ["DEFAULT_CONFIG", "PROJECT_DIR", "DagSettings", "dag_settings", "load_pipeline_config",
           "resolve_config_path"]


def resolve_config_path(path: str | None) -> Path | None:
    """A config path from a task argument: relative paths are under the project folder."""
    path = (path or os.environ.get("LLMOPS_CONFIG") or "").strip()
    if not path:
        return None
    p = Path(path)
    return p if p.is_absolute() else PROJECT_DIR / p


def load_pipeline_config(path: str | None) -> Any:
    """The validated pipeline config of a task argument or DAG param (heavy imports stay out of parsing)."""
    from llmops.config import load_config

    return load_config(resolve_config_path(path))


# Defaults and constraints of the pydantic fields (llmops/training/settings.py TrainingConfig,
# llmops/evaluation/settings.py EvaluationConfig, llmops/drift/settings.py DriftConfig);
# tests/dags/test_dag_integrity.py checks that they agree with the model.
@dataclass(frozen=True)
class TrainingKeys:
    pool: str = "gpu"
    gpus: int = 0
    queue: str | None = None
    retries: int = 2
    retry_delay_s: int = 30


@dataclass(frozen=True)
class EvaluationKeys:
    require_approval: bool = False
    approval_timeout_h: float = 72.0


@dataclass(frozen=True)
class DriftKeys:
    schedule: str = "0 2 * * *"


@dataclass(frozen=True)
class DagSettings:
    """``training.{pool,gpus,queue,retries,retry_delay_s}``, ``evaluation.{require_approval,approval_timeout_h}``, ``drift.schedule``."""

    training: TrainingKeys = TrainingKeys()
    evaluation: EvaluationKeys = EvaluationKeys()
    drift: DriftKeys = DriftKeys()


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


_CHECKS: dict[str, dict[str, Any]] = {
    "training": {"pool": lambda v: isinstance(v, str),
                 "gpus": lambda v: _is_int(v) and 0 <= v <= 64,
                 "queue": lambda v: v is None or isinstance(v, str),
                 "retries": lambda v: _is_int(v) and 0 <= v <= 10,
                 "retry_delay_s": lambda v: _is_int(v) and 0 <= v <= 86_400},
    "evaluation": {"require_approval": lambda v: isinstance(v, bool),
                   "approval_timeout_h": lambda v: (_is_int(v) or isinstance(v, float)) and v > 0},
    "drift": {"schedule": lambda v: isinstance(v, str)},
}
_SECTIONS = {"training": TrainingKeys, "evaluation": EvaluationKeys, "drift": DriftKeys}


def _from_model(path: Path | None) -> DagSettings:
    """The same keys through the full pydantic model (raises its ConfigError on an invalid file)."""
    from llmops.config import load_config

    cfg = load_config(path)
    return DagSettings(
        training=TrainingKeys(pool=cfg.training.pool, gpus=cfg.training.gpus, queue=cfg.training.queue,
                              retries=cfg.training.retries, retry_delay_s=cfg.training.retry_delay_s),
        evaluation=EvaluationKeys(require_approval=cfg.evaluation.require_approval,
                                  approval_timeout_h=cfg.evaluation.approval_timeout_h),
        drift=DriftKeys(schedule=cfg.drift.schedule),
    )


@lru_cache(maxsize=16)
def _read(path: Path | None, _version: tuple[int, int] | None) -> DagSettings:
    if path is None:
        return DagSettings()
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: same resolver and constructor, ~10x faster
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=loader)  # a safe loader
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return _from_model(path)
    data = {} if data is None else data
    if not isinstance(data, dict):
        return _from_model(path)
    sections = {}
    for name, checks in _CHECKS.items():
        section = data.get(name, {})
        if not isinstance(section, dict):  # `training:` left empty (null) too: the model says what is wrong
            return _from_model(path)
        values = {key: section[key] for key in checks if key in section}
        if not all(checks[key](value) for key, value in values.items()):
            return _from_model(path)
        if "approval_timeout_h" in values:
            values["approval_timeout_h"] = float(values["approval_timeout_h"])  # the model's float
        sections[name] = _SECTIONS[name](**values)
    return DagSettings(**sections)


def dag_settings(path: str | None) -> DagSettings:
    """The DAG-shaping keys of the config at ``path`` (relative: under the project folder; empty:
    ``LLMOPS_CONFIG``, else the embedded defaults), cached until the file changes."""
    resolved = resolve_config_path(path)
    try:
        st = resolved.stat() if resolved is not None else None
    except OSError:
        st = None
    return _read(resolved, (st.st_mtime_ns, st.st_size) if st is not None else None)
