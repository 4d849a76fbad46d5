"""Training fixtures built once per test session (registered in tests/conftest.py).

* :func:`tiny_training` – a tiny BERT classifier (hidden 32, word-level tokenizer, random weights)
  and a labeled dataset version of 90 rows over billing/refund/shipping in a local store;
* :func:`mlflow_db` – a function returning the URI of a fresh MLflow SQLite store whose schema is
  already migrated (copied from one migrated once per session, instead of ~50 Alembic migrations
  per store);
* :func:`one_torch_thread` – torch on one thread in the test and the trainings it starts: a tiny
  model's ops are too small to share, and OpenMP threads spinning on a busy 2-core machine make a
  hidden-32 forward pass ~40x slower (280 ms instead of 7 ms for a batch of 32, measured here).

The model and store of ``tiny_training`` are shared, so read-only: training reads them and writes its
own run folder elsewhere; a test that writes into the store (a run folder on the object store) copies
it first with :meth:`TinyTraining.copy_store`.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

__all__ = ["LABELS", "TinyTraining", "WORDS", "mlflow_db", "one_torch_thread", "tiny_training"]

#: The labels of the tiny labeled version, and the words that give each away.
LABELS = ["billing", "refund", "shipping"]
WORDS = {"billing": "charged twice invoice", "refund": "money back return", "shipping": "parcel late courier"}


class TinyTraining(NamedTuple):
    """What a tiny training needs: ``model_dir, store, version = tiny_training``."""

    model_dir: Path
    store: Path
    version: str

    def copy_store(self, dest: Path) -> Path:
        """A private copy of the store (for a test that writes into it); returns its root."""
        shutil.copytree(self.store, dest)
        return dest


def _vocabulary() -> list[str]:
    """Texts the tiny tokenizer learns its words from: the golden suite's messages (what evaluation
    reads), the tiny labeled version's and the fine-tuning DAG test's (what training reads)."""
    from llmops.evaluation.golden import load_golden

    rows, _ = load_golden("support_intents", "v1")
    dag_words = ["I was charged twice on my invoice", "I want my money back for the return",
                 "my parcel is late, the courier never came"]
    return [r["text"] for r in rows] + [f"message {i}: {w}" for i, w in enumerate(WORDS.values())] + dag_words


@pytest.fixture(scope="session")
def tiny_training(tmp_path_factory: pytest.TempPathFactory) -> TinyTraining:
    """A tiny BERT classifier folder and a labeled version of 90 rows over three labels, built once per
    session: ``(model dir, store root, version id)``. Do not write into either (copy the store)."""
    from llmops.annotation.jobs import labeled_schema
    from llmops.storage import LocalStore
    from llmops.versions import VersionWriter
    from tests._tiny_models import build_tiny_classifier

    root = tmp_path_factory.mktemp("tiny-training")
    model_dir = build_tiny_classifier(root / "tiny-bert", _vocabulary(), num_labels=2, seed=0)
    rows = [{"id": f"r{i:03d}", "text": f"message {i}: {WORDS[LABELS[i % 3]]}", "source": "email", "lang": "en",
             "created_at": None, "meta": "{}", "pii": [], "label": LABELS[i % 3], "label_confidence": 0.9,
             "agreement": 1.0, "n_votes": 3, "votes": "{}", "prelabel": None, "method": "dawid_skene"}
            for i in range(90)]
    writer = VersionWriter("support_messages", "labeled", schema=labeled_schema())
    writer.counts.input = len(rows)
    writer.add_rows(rows)
    manifest = writer.finish(LocalStore(root / "store"))
    return TinyTraining(model_dir, root / "store", manifest["id"])


@pytest.fixture(scope="session")
def _migrated_mlflow_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()  # creates and migrates the schema
    return path


@pytest.fixture()
def mlflow_db(_migrated_mlflow_db: Path) -> Callable[[Path], str]:
    """``mlflow_db(path)`` puts an empty, migrated MLflow SQLite store at ``path`` (parents created)
    and returns its ``sqlite:///`` URI."""

    def make(path: Path) -> str:
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(_migrated_mlflow_db, path)
        return f"sqlite:///{path}"

    return make


@pytest.fixture()
def one_torch_thread(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Torch on one thread for this test (``torch.set_num_threads``) and the processes it starts
    (``OMP_NUM_THREADS``); both restored afterwards."""
    import torch

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
