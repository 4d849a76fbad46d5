from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from llmops.records import Quarantined, Record
from llmops.storage import LocalStore, open_store
from llmops.versions import (
    CountsMismatchError,
    VersionWriter,
    iter_batches,
    latest_for_partition,
    read_manifest,
)


def _records(n: int, prefix: str = "r") -> list[Record]:
    return [Record(id=f"{prefix}{i}", text=f"text number {i}", source="s", lang="en",
                   meta={"k": i}, pii=["EMAIL_ADDRESS"] if i % 2 else []) for i in range(n)]


def _write(store: LocalStore, records: list[Record], *, partition: str | None = "2026-11-25",
           producer: dict | None = None, rows_per_file: int = 200_000) -> dict:
    w = VersionWriter("ds", "curated", parents=["raw-1"], producer=producer or {"kind": "test"},
                      config_hash="abc", rows_per_file=rows_per_file)
    w.counts.input = len(records) + 1
    w.add_records(records)
    w.add_quarantined([Quarantined("s", "f.jsonl:3", "malformed_json", raw="{bad")])
    return w.finish(store, partition=partition)


def test_local_store_roundtrip_and_atomic_write(tmp_path: Path):
    store = open_store(str(tmp_path / "st"))
    store.write_bytes("a/b/c.json", b"{}")
    assert store.exists("a/b/c.json") and store.read_bytes("a/b/c.json") == b"{}"
    assert store.list("a") == ["a/b/c.json"]
    assert not list((tmp_path / "st/a/b").glob(".tmp-*"))
    with pytest.raises(ValueError):
        store.write_bytes("../escape", b"x")
    assert open_store((tmp_path / "st").as_uri()).read_bytes("a/b/c.json") == b"{}"


def test_version_is_content_addressed_and_idempotent(tmp_path: Path):
    store = LocalStore(tmp_path)
    m1 = _write(store, _records(10), producer={"kind": "test", "run": 1})
    m2 = _write(store, _records(10), producer={"kind": "test", "run": 2})
    assert m1["id"] == m2["id"]
    assert m2["producer"] == {"kind": "test", "run": 1}  # the first write wins; nothing duplicated
    versions = {p.split("/")[4] for p in store.list("datasets/ds/curated/versions")}
    assert versions == {m1["id"]}
    m3 = _write(store, _records(11))
    assert m3["id"] != m1["id"]
    assert latest_for_partition(store, "ds", "curated", "2026-11-25") == m3["id"]


def test_manifest_contents(tmp_path: Path):
    store = LocalStore(tmp_path)
    m = _write(store, _records(5), rows_per_file=2)
    assert m["counts"] == {"input": 6, "kept": 5, "duplicates": 0, "filtered": 0, "quarantined": 1,
                           "by_reason": {"duplicates": {}, "filtered": {}, "quarantined": {"malformed_json": 1}}}
    assert [f["rows"] for f in m["files"]] == [2, 2, 1]
    assert m["pii"]["records"] == 2
    assert m["parents"] == ["raw-1"] and m["config_hash"] == "abc"
    assert {c["name"] for c in m["schema"]} >= {"id", "text", "source", "lang", "created_at", "meta"}
    on_disk = json.loads((tmp_path / f"datasets/ds/curated/versions/{m['id']}/manifest.json").read_text())
    assert on_disk == m
    rows = [r for b in iter_batches(store, m) for r in b.to_pylist()]
    assert [r["id"] for r in rows] == [f"r{i}" for i in range(5)]
    q = [r for b in iter_batches(store, m, which="quarantine_files") for r in b.to_pylist()]
    assert q[0]["reason"] == "malformed_json" and q[0]["raw"] == "{bad"
    for f in m["files"]:
        path = tmp_path / f"datasets/ds/curated/versions/{m['id']}" / f["path"]
        import hashlib
        assert hashlib.sha256(path.read_bytes()).hexdigest() == f["sha256"]


def test_counts_must_add_up(tmp_path: Path):
    w = VersionWriter("ds", "curated")
    w.counts.input = 3
    w.add_records(_records(2))
    with pytest.raises(CountsMismatchError, match="input=3"):
        w.finish(LocalStore(tmp_path))


def test_version_loads_with_datasets(tmp_path: Path):
    import datasets

    store = LocalStore(tmp_path)
    m = _write(store, _records(4))
    files = [str(tmp_path / f"datasets/ds/curated/versions/{m['id']}" / f["path"]) for f in m["files"]]
    ds = datasets.load_dataset("parquet", data_files=files, split="train")
    assert ds.num_rows == 4 and ds[0]["text"] == "text number 0"
    assert json.loads(ds[1]["meta"]) == {"k": 1}


def test_finish_to_dir_replaces_a_version_but_not_other_folders(tmp_path: Path):
    out = tmp_path / "out"
    w = VersionWriter("ds", "curated")
    w.counts.input = 2
    w.add_records(_records(2))
    m = w.finish_to_dir(out)
    assert (out / "manifest.json").exists() and pq.read_table(out / m["files"][0]["path"]).num_rows == 2
    w2 = VersionWriter("ds", "curated")
    w2.counts.input = 3
    w2.add_records(_records(3))
    m2 = w2.finish_to_dir(out)
    assert json.loads((out / "manifest.json").read_text())["id"] == m2["id"] != m["id"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    w3 = VersionWriter("ds", "curated")
    w3.counts.input = 0
    with pytest.raises(FileExistsError):
        w3.finish_to_dir(other)
    assert (other / "keep.txt").read_text() == "mine"


def test_read_manifest_missing_version(tmp_path: Path):
    with pytest.raises(FileNotFoundError):
        read_manifest(LocalStore(tmp_path), "ds", "curated", "curated-0")


def test_s3_store_versions_and_partition_pointer(tmp_path: Path, s3_client):
    """The same writer against S3 (moto in-process): manifest last, idempotent, readable back."""
    from llmops.storage import S3Store

    client = s3_client
    client.create_bucket(Bucket="lake")
    store = open_store("s3://lake/llmops", s3_client=client)
    assert isinstance(store, S3Store)
    m1 = _write(store, _records(3))
    keys = store.list(f"datasets/ds/curated/versions/{m1['id']}")
    assert f"datasets/ds/curated/versions/{m1['id']}/manifest.json" in keys and len(keys) == 3
    m2 = _write(store, _records(3), producer={"kind": "retry"})
    assert m2["id"] == m1["id"] and m2["producer"] == {"kind": "test"}
    assert latest_for_partition(store, "ds", "curated", "2026-11-25") == m1["id"]
    rows = [r for b in iter_batches(store, m1) for r in b.to_pylist()]
    assert [r["id"] for r in rows] == ["r0", "r1", "r2"]
    assert store.url("x/y") == "s3://lake/llmops/x/y"
    store.write_bytes("a.json", b"1")
    assert store.exists("a.json") and not store.exists("b.json")
    store.delete("a.json")
    assert not store.exists("a.json")
