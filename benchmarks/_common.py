"""Shared by the benchmark scripts: where results go and how they are written."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def write_result(out: str | Path, result: dict[str, Any]) -> int:
    """Write ``result`` as JSON to ``out`` (folders created), print it, return the exit status."""
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    result = {"measured": str(datetime.now(UTC).date()), **result}  # the README quotes each figure's date
    text = json.dumps(result, indent=2)
    path.write_text(text)
    print(text)
    return 0
