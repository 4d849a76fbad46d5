"""Collection: sources that turn inputs into canonical records or quarantine entries.

Add a source by writing one function decorated with ``@register_source("kind")`` and a config
model for it (see ``llmops.config``). Built-in kinds: ``files``, ``http``, ``s3``, ``hf_disk``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from llmops.collect import files as _files  # noqa: F401  (registers "files")
from llmops.collect import remote as _remote  # noqa: F401  (registers "http", "s3", "hf_disk")
from llmops.collect.base import SOURCES, CollectContext, Item, SourceError, register_source, to_record

__all__ = ["SOURCES", "CollectContext", "Item", "SourceError", "collect", "register_source", "to_record"]


def collect(sources: Iterable[Any], ctx: CollectContext) -> Iterator[Item]:
    """Chain every configured source, in config order."""
    for cfg in sources:
        fn = SOURCES.get(cfg.kind)
        if fn is None:
            raise SourceError(f"no source registered for kind {cfg.kind!r}; known: {sorted(SOURCES)}")
        yield from fn(cfg, ctx)
