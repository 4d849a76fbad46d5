"""Expectation suites as YAML files, versioned with the code.

    suite: curated
    version: 1
    expectations:
      - expect_column_values_to_be_unique: {column: id}
      - expect_column_values_to_be_in_set: {column: lang, value_set: $languages}

Each entry is one expectation, by its snake_case name, with its arguments. ``$name`` values are
parameters filled from the pipeline config at run time (see :func:`suite_params`). This module
does not import Great Expectations; :func:`build_suite` does.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = ["SuiteError", "SuiteSpec", "build_suite", "load_suite", "suite_params", "suites_dir"]


class SuiteError(ValueError):
    """A suite file is malformed or references an unknown parameter."""


@dataclass
class SuiteSpec:
    name: str
    version: int
    expectations: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    path: str = ""

    def resolved(self, params: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        out = []
        for name, kwargs in self.expectations:
            args = {}
            for key, value in kwargs.items():
                if isinstance(value, str) and value.startswith("$"):
                    param = value[1:]
                    if param not in params:
                        raise SuiteError(f"suite {self.name!r} ({self.path}): {name}.{key} uses ${param}, "
                                         f"which is not set; known: {', '.join(sorted(params)) or 'none'}")
                    value = params[param]
                args[key] = value
            out.append((name, args))
        return out


def suites_dir() -> Path:
    """``$LLMOPS_SUITES_DIR`` or ``include/expectations`` beside the package."""
    env = os.environ.get("LLMOPS_SUITES_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "expectations"


def load_suite(name_or_path: str) -> SuiteSpec:
    """Load a suite by stage name (``curated``) or by path to a YAML file."""
    path = Path(name_or_path)
    if not path.suffix:
        path = suites_dir() / f"{name_or_path}.yaml"
    if not path.is_file():
        raise SuiteError(f"expectation suite {name_or_path!r} not found at {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise SuiteError(f"suite file {path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict) or "expectations" not in data:
        raise SuiteError(f"suite file {path} needs a mapping with `suite`, `version` and `expectations`")
    unknown = set(data) - {"suite", "version", "expectations"}
    if unknown:
        raise SuiteError(f"suite file {path}: unknown keys {sorted(unknown)}; use suite, version, expectations")
    items = []
    for i, entry in enumerate(data["expectations"] or []):
        if not (isinstance(entry, dict) and len(entry) == 1):
            raise SuiteError(f"suite file {path}: expectations[{i}] must be one `name: {{arguments}}` mapping")
        (name, kwargs), = entry.items()
        if not isinstance(kwargs, dict):
            raise SuiteError(f"suite file {path}: expectations[{i}] ({name}) arguments must be a mapping")
        items.append((str(name), dict(kwargs)))
    return SuiteSpec(name=str(data.get("suite") or path.stem), version=int(data.get("version") or 1),
                     expectations=items, path=str(path))


def suite_params(cfg: Any, **extra: Any) -> dict[str, Any]:
    """Parameters available to ``$name`` values, from a :class:`~llmops.config.PipelineConfig`."""
    f = cfg.curation.filters
    params: dict[str, Any] = {
        "languages": list(f.languages),
        "min_chars": f.min_chars,
        "max_chars": f.max_chars,
        "max_input_chars": cfg.curation.normalize.max_input_chars,
        "sources": [s.name for s in cfg.sources],
    }
    params.update(cfg.quality.params)
    params.update(extra)
    return params


def build_suite(spec: SuiteSpec, params: dict[str, Any]) -> Any:
    """A ``great_expectations.ExpectationSuite`` for the spec (imports GX)."""
    import great_expectations as gx

    from llmops.quality.expectations import expectation_class

    suite = gx.ExpectationSuite(name=f"{spec.name}.v{spec.version}")
    for i, (name, kwargs) in enumerate(spec.resolved(params)):
        cls = expectation_class(name)
        try:
            exp = cls(**kwargs, meta={"llmops_name": name, "position": i})
        except Exception as exc:  # pydantic validation error from GX
            raise SuiteError(f"suite {spec.name!r} ({spec.path}): {name} {kwargs}: {exc}".splitlines()[0]) from None
        column = getattr(exp, "column", None)
        if column and exp.meta is not None:  # class defaults (custom expectations) are not in kwargs
            exp.meta["column"] = column
        suite.add_expectation(exp)
    return suite
