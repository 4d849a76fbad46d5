"""Run the ``llmops`` command in the test process: ``run_llmops(capfd, "curate", ...)``.

A real ``llmops`` process pays the imports (Presidio, spaCy, torch) every time: 10-50 s. In the
test process they are paid once per session, and the spaCy pipeline is cached too. The result
looks like a finished subprocess: ``returncode`` (``main``'s return value, or the code of a
``SystemExit`` argparse raised), and the ``stdout``/``stderr`` written at the file-descriptor
level while it ran (pytest's ``capfd``: prints, logging and C-level writes alike).

What only a real process shows (the console script's entry point, the exit status the shell
sees) stays with a few real runs (tests/unit/test_cli.py). The logger levels and root handlers
``llmops.cli.main`` sets are put back, so no later test inherits them.
"""

from __future__ import annotations

import logging
import subprocess

import pytest

# what llmops.cli.main changes process-wide: root handlers (basicConfig) and these loggers' levels
_LOGGERS = ("", "presidio-analyzer", "presidio-anonymizer", "spacy", "datasets", "urllib3")


def run_llmops(capfd: pytest.CaptureFixture[str], *args: str) -> subprocess.CompletedProcess[str]:
    """``llmops ARGS`` in this process, as a completed process (returncode, stdout, stderr)."""
    from llmops.cli import main

    loggers = [logging.getLogger(name or None) for name in _LOGGERS]
    levels = [lg.level for lg in loggers]
    handlers = list(logging.root.handlers)
    capfd.readouterr()  # only what this run writes
    try:
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse: usage errors exit 2, --help 0
            code = exc.code if isinstance(exc.code, int) else 1
        out, err = capfd.readouterr()
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)
        for handler in [h for h in logging.root.handlers if h not in handlers]:
            logging.root.removeHandler(handler)
    return subprocess.CompletedProcess(["llmops", *args], code, out, err)
