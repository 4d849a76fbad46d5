"""A training's run folder (checkpoints, final model, results) on the object store.

With a local store the run folder *is* the store's folder. With S3 it is a local cache: pulled
before a run (so a retry on another worker resumes), pushed while it runs and at the end.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["RunFolder"]


class RunFolder:
    """A training's run folder: the object store's own folder when the store is local, else a local
    cache that is pulled before and pushed during and after the run (checkpoints, final model)."""

    def __init__(self, store: Any, prefix: str, cache_root: Path) -> None:
        self.store, self.prefix = store, prefix
        local = store.local_path(prefix) if store.uri.startswith("file:") else None
        self.remote = local is None
        self.path = Path(local) if local is not None else cache_root / prefix
        self.path.mkdir(parents=True, exist_ok=True)

    def pull(self) -> int:
        if not self.remote:
            return 0
        n = 0
        for key in self.store.list(self.prefix):
            dest = self.path / key[len(self.prefix):].lstrip("/")
            if not dest.exists():
                self.store.download(key, dest)
                n += 1
        return n

    def push(self) -> int:
        """Upload complete checkpoints, the final model and results; drop checkpoints pruned locally.

        Once the training finished (``train_result.json`` is written), a checkpoint is no longer a
        resume point – a retry only publishes the final model – so the checkpoints (weights and
        optimizer states, several times the model's size) are not uploaded and leave the store."""
        if not self.remote:
            return 0
        finished = (self.path / "train_result.json").is_file()
        have = set(self.store.list(self.prefix))
        n = 0
        for path in sorted(p for p in self.path.rglob("*") if p.is_file()):
            rel = path.relative_to(self.path).as_posix()
            top = rel.split("/", 1)[0]
            if top.startswith("checkpoint-") and (finished or not (self.path / top / "trainer_state.json").exists()):
                continue  # still being written, or no longer needed
            key = f"{self.prefix}/{rel}"
            if key not in have or "/" not in rel:
                self.store.write_bytes(key, path.read_bytes())
                n += 1
        local_ckpts = {p.name for p in self.path.glob("checkpoint-*")}
        for key in have:
            top = key[len(self.prefix):].lstrip("/").split("/", 1)[0]
            if top.startswith("checkpoint-") and (finished or top not in local_ckpts):
                self.store.delete(key)
        return n
