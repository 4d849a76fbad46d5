"""MLflow helpers without heavy imports: the fluent API on one tracking URI for a block (without
leaking it to the process), and get-or-create of an experiment.

Kept apart from the training modules so evaluation and DAG tasks use it without importing
transformers.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["ensure_experiment", "use_tracking_uri"]


@contextmanager
def use_tracking_uri(uri: str | None) -> Iterator[None]:
    """MLflow's fluent API on ``uri`` for a block. ``mlflow.set_tracking_uri`` also exports
    ``MLFLOW_TRACKING_URI`` to the whole process (and its children): restored afterwards."""
    import mlflow

    before = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri or "")
    try:
        yield
    finally:
        mlflow.set_tracking_uri(before)  # type: ignore[arg-type]  # None unsets the variable again


def ensure_experiment(client: Any, name: str, artifact_location: str | None = None) -> str:
    """The id of experiment ``name``, created (with ``artifact_location``, a path or URI) if missing."""
    from mlflow.exceptions import MlflowException

    from llmops.config import expand_vars

    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return str(exp.experiment_id)
    location = expand_vars(artifact_location) if artifact_location else None
    if location and "://" not in location:
        location = Path(location).expanduser().resolve().as_uri()
    try:
        return str(client.create_experiment(name, artifact_location=location))
    except MlflowException:  # created meanwhile by another task
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise
        return str(exp.experiment_id)
