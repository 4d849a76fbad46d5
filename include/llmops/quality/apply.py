"""Run a configured gate on a version that is being written (before it is published)."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

from llmops.quality.suites import load_suite, suite_params

__all__ = ["gate_writer"]

log = logging.getLogger(__name__)


def gate_writer(writer: Any, cfg: Any, stage: str, **extra_params: Any) -> dict[str, Any] | None:
    """Validate ``writer``'s staged rows with the ``quality.<stage>`` gate of ``cfg``.

    ``fail`` raises :class:`~llmops.quality.gate.GateFailedError` (nothing is published);
    ``quarantine`` moves the failing rows into the version's quarantine; the result (and its Data
    Docs) is recorded in the manifest in every case. Returns the manifest entry, or None when
    the gate is disabled.
    """
    quality = cfg.quality
    gate = getattr(quality, stage)
    if not (quality.enabled and gate.enabled):
        return None
    from llmops.quality.gate import log_to_mlflow, run_gate

    spec = load_suite(gate.suite)
    frames = writer.staged_frames()
    with tempfile.TemporaryDirectory(prefix="llmops-gx-") as tmp:
        docs = Path(tmp) / "docs" if quality.data_docs else None
        outcome = run_gate(frames, spec, suite_params(cfg, **extra_params), policy=gate.policy, docs_dir=docs)
        if gate.policy == "quarantine" and outcome.row_reasons:
            moved = writer.move_to_quarantine(outcome.row_reasons)
            log.warning("quality gate %s moved %s rows to the quarantine", spec.name, moved)
        entry = outcome.manifest_entry()
        writer.add_validation(entry, docs)
        log_to_mlflow(entry, docs)
    log.info("quality gate %s: success=%s (%s expectations, %.2fs)", spec.name, entry["success"],
             entry["evaluated_expectations"], entry["seconds"])
    return entry
