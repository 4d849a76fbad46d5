"""Gate an already published version (the reusable operator's path).

Versions are immutable, so a ``quarantine`` gate that finds failing rows publishes a successor
version (parent = the validated one) without those rows, and with them in its quarantine. Any
other outcome leaves the version as it is and stores the result and its Data Docs beside it under
``gates/<suite>/<run>/``.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from llmops.quality.suites import load_suite, suite_params
from llmops.storage import ObjectStore
from llmops.versions import VersionWriter, iter_batches, local_data_files, read_manifest, version_prefix

__all__ = ["gate_published_version"]


def _frames(store: ObjectStore, manifest: dict[str, Any]) -> Iterator[Any]:
    """One DataFrame per data file of the version (bounded memory)."""
    import pyarrow.parquet as pq

    for path in local_data_files(store, manifest):
        yield pq.read_table(path).to_pandas()


def gate_published_version(store: ObjectStore, cfg: Any, *, dataset: str, stage: str, version_id: str,
                           suite: str, policy: str, producer: dict[str, Any] | None = None,
                           params: dict[str, Any] | None = None) -> dict[str, Any]:
    """Validate a published version. Returns ``{"version_id", "validation", "docs_key"}`` where
    ``version_id`` is the successor's id when rows were quarantined, else the input's."""
    from llmops.curate.pipeline import records_from_batches
    from llmops.quality.gate import log_to_mlflow, run_gate

    manifest = read_manifest(store, dataset, stage, version_id)
    spec = load_suite(suite)
    df = _frames(store, manifest)
    with tempfile.TemporaryDirectory(prefix="llmops-gx-") as tmp:
        docs = Path(tmp) / "docs"
        outcome = run_gate(df, spec, suite_params(cfg, **(params or {})), policy=policy, docs_dir=docs)
        entry = outcome.manifest_entry()
        log_to_mlflow(entry, docs)
        if policy == "quarantine" and outcome.row_reasons:
            writer = VersionWriter(dataset, stage, parents=[version_id], producer=producer,
                                   config_hash=manifest["config_hash"],
                                   extra={"upstream_counts": {version_id: manifest["counts"]}})
            try:
                writer.counts.input = manifest["counts"]["kept"]
                for batch in iter_batches(store, manifest):
                    writer.add_records(list(records_from_batches([batch])))
                writer.move_to_quarantine(outcome.row_reasons)
                writer.add_validation(entry, docs)
                successor = writer.finish(store, partition=manifest.get("partition"))
            except BaseException:
                writer.abort()
                raise
            prefix = version_prefix(dataset, stage, successor["id"])
            return {"version_id": successor["id"], "validation": entry,
                    "docs_key": f"{prefix}/{successor['validations'][0]['data_docs']}"}
        run = re.sub(r"[^A-Za-z0-9_.-]+", "-", entry["gx_run_id"]).strip("-")
        base = f"{version_prefix(dataset, stage, version_id)}/gates/{spec.name}/{run}"
        store.write_bytes(f"{base}/result.json", json.dumps(entry, indent=2).encode())
        for path in sorted(p for p in docs.rglob("*") if p.is_file()):
            store.write_bytes(f"{base}/docs/{path.relative_to(docs).as_posix()}", path.read_bytes())
    return {"version_id": version_id, "validation": entry, "docs_key": f"{base}/docs/index.html"}
