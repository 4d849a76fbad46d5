"""Sharded curation (llmops.curate.shards): the curated version does not depend on the sharding."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from llmops.config import FilesSource, PipelineConfig
from llmops.curate.shards import curate_shard, merge_shards, shard_count, staging_prefix
from llmops.stages import collect_raw, curate_paths, curate_version
from llmops.storage import LocalStore

DAY = "2026-11-20"


def _messages() -> list[dict]:
    """Faker paragraphs (en, es) with exact and near duplicates that cross shard boundaries, a
    reused id and a text too short to keep."""
    from faker import Faker

    fake = Faker(["en_US", "es_ES"])
    fake.seed_instance(20261120)
    out = [{"id": f"m{n}", "text": fake.paragraph(nb_sentences=4)} for n in range(60)]
    out += [
        {"id": "exact-a", "text": out[3]["text"]},  # exact duplicate of an early record
        {"id": "exact-b", "text": "  " + out[41]["text"] + " "},  # the same once normalised
        {"id": "near-a", "text": out[7]["text"][:-1] + "!!"},
        {"id": "near-b", "text": out[52]["text"] + " Thanks"},
        {"id": "m10", "text": "A different text that reuses the id of an earlier record, long enough to keep it."},
        {"id": "short", "text": "ok"},
        {"id": "dup-of-dup", "text": out[3]["text"]},
    ]
    # interleaved so that duplicates land in other shards than their originals
    return out[:20] + out[60:63] + out[20:45] + out[63:] + out[45:60]


def _config(tmp: Path, src: Path, shard_rows: int) -> PipelineConfig:
    cfg = PipelineConfig(base_dir=str(tmp), sources=[FilesSource(name="inbox", paths=[str(src)])])
    cfg.storage.root = str(tmp / "store")
    cfg.curation.pii.enabled = False
    cfg.curation.batch_size = 16  # several near-dedup batches, crossing shard boundaries
    cfg.curation.shard_rows = shard_rows
    cfg.quality.enabled = False
    return cfg


def _rows(store: LocalStore, m: dict, which: str = "files") -> list[dict]:
    prefix = f"datasets/{m['dataset']}/{m['stage']}/versions/{m['id']}"
    return [r for f in m[which] for r in pq.read_table(store.local_path(f"{prefix}/{f['path']}")).to_pylist()]


@pytest.fixture()
def source(tmp_path: Path) -> Path:
    src = tmp_path / "inbox.jsonl"
    src.write_text("".join(json.dumps(m) + "\n" for m in _messages()))
    return src


def _curate(tmp: Path, src: Path, shard_rows: int) -> tuple[PipelineConfig, LocalStore, dict, dict]:
    cfg = _config(tmp, src, shard_rows)
    store = LocalStore(tmp / "store")
    raw = collect_raw(cfg, store=store, partition=DAY, producer={"kind": "test"})
    cur = curate_version(cfg, store=store, raw_version_id=raw["id"], partition=DAY, producer={"kind": "test"})
    return cfg, store, raw, cur


def test_four_shards_give_the_same_version_content_as_one(tmp_path: Path, source: Path):
    _, s1, raw1, one = _curate(tmp_path / "one", source, 1000)
    _, s4, raw4, four = _curate(tmp_path / "four", source, 20)
    assert shard_count(raw1) == 1 and shard_count(raw4) == 4
    assert one["shards"] == 1 and four["shards"] == 4
    c = one["counts"]
    assert four["counts"] == c
    assert c["by_reason"]["duplicates"] == {"exact_duplicate": 3, "near_duplicate": 2}
    assert c["by_reason"]["quarantined"] == {"duplicate_id": 1}
    assert sum(c["by_reason"]["filtered"].values()) == 1
    # byte-for-byte the same data and quarantine files: same records, order and row groups
    assert [f["sha256"] for f in four["files"]] == [f["sha256"] for f in one["files"]]
    assert [f["sha256"] for f in four["quarantine_files"]] == [f["sha256"] for f in one["quarantine_files"]]
    assert four["config_hash"] == one["config_hash"]
    reasons = {r["id"]: (r["reason"], r["detail"]) for r in _rows(s4, four, "quarantine_files")}
    # the first of a group is kept: "exact-b" and "near-b" come before the records they copy
    assert reasons["exact-a"][0] == reasons["dup-of-dup"][0] == reasons["m41"][0] == "exact_duplicate"
    assert reasons["near-a"] == ("near_duplicate", "near-duplicate of m7")
    assert reasons["m52"] == ("near_duplicate", "near-duplicate of near-b")
    assert reasons["m10"][0] == "duplicate_id"
    # the staging areas are gone once merged (only the merge markers remain)
    assert [k for k in s4.list("datasets/support_messages/staging") if not k.endswith("merged.json")] == []


def test_shards_curated_by_two_local_processes_give_the_same_version(tmp_path: Path, source: Path):
    """``llmops collect --workers 2``: the shards by two spawned processes, the same version."""
    _, _, _, one_proc = _curate(tmp_path / "one", source, 20)
    cfg = _config(tmp_path / "two", source, 20)
    store = LocalStore(tmp_path / "two" / "store")
    raw = collect_raw(cfg, store=store, partition=DAY, producer={"kind": "test"})
    two = curate_version(cfg, store=store, raw_version_id=raw["id"], partition=DAY, producer={"kind": "test"},
                         workers=2)
    assert two["shards"] == 4 and two["counts"] == one_proc["counts"]
    assert [f["sha256"] for f in two["files"]] == [f["sha256"] for f in one_proc["files"]]
    assert two["id"] == one_proc["id"]
    with pytest.raises(ValueError, match="workers must be at least 1"):
        curate_version(cfg, store=store, raw_version_id=raw["id"], partition=DAY, producer={}, workers=0)


def test_sharded_curation_keeps_what_one_streaming_process_keeps(tmp_path: Path, source: Path):
    cfg, store, _, four = _curate(tmp_path / "four", source, 20)
    streamed = curate_paths([source], tmp_path / "streamed", cfg)
    assert streamed["counts"] == four["counts"]
    kept = [r["id"] for r in _rows(store, four)]
    out = tmp_path / "streamed"
    assert kept == [r["id"] for f in streamed["files"] for r in pq.read_table(out / f["path"]).to_pylist()]


def test_a_shard_task_run_twice_changes_nothing(tmp_path: Path, source: Path):
    cfg = _config(tmp_path, source, 20)
    store = LocalStore(tmp_path / "store")
    raw = collect_raw(cfg, store=store, partition=DAY, producer={"kind": "test"})
    prefix = staging_prefix(cfg, raw)
    first = curate_shard(cfg, store=store, raw=raw, index=2)
    staged = {k: store.read_bytes(k) for k in store.list(prefix)}
    assert first["rows"] == 20 and "skipped" not in first
    again = curate_shard(cfg, store=store, raw=raw, index=2)
    assert again["skipped"] == "staged" and again["rows"] == 20
    assert {k: store.read_bytes(k) for k in store.list(prefix)} == staged
    assert store.list("datasets/support_messages/curated") == []  # a shard publishes no version
    # the merge names the shards it is missing
    with pytest.raises(FileNotFoundError, match=r"shard\(s\) \[0, 1, 3\] of 4 are not staged"):
        merge_shards(cfg, store=store, raw=raw, partition=DAY, producer={})
    for i in (0, 1, 3):
        curate_shard(cfg, store=store, raw=raw, index=i)
    m = merge_shards(cfg, store=store, raw=raw, partition=DAY, producer={})
    versions = store.list("datasets/support_messages/curated/versions")
    # a repeated merge and late shard tasks (a retry after the merge) publish nothing new
    assert merge_shards(cfg, store=store, raw=raw, partition=DAY, producer={})["id"] == m["id"]
    assert curate_shard(cfg, store=store, raw=raw, index=0)["skipped"] == "merged"
    assert store.list("datasets/support_messages/curated/versions") == versions
    with pytest.raises(IndexError, match="has 4 shard"):
        curate_shard(cfg, store=store, raw=raw, index=4)


def test_shard_size_is_not_part_of_the_identity(tmp_path: Path, source: Path):
    from llmops.config import config_hash

    a, b = _config(tmp_path, source, 20), _config(tmp_path, source, 7)
    b.curation.shard_bytes = 4096
    assert config_hash(a.curation) == config_hash(b.curation)
    a.curation.batch_size = 17
    assert config_hash(a.curation) != config_hash(b.curation)


def test_raw_shards_are_bounded_by_bytes_too(tmp_path: Path, source: Path):
    cfg = _config(tmp_path, source, 1000)
    cfg.curation.shard_bytes = 2048
    store = LocalStore(tmp_path / "store")
    raw = collect_raw(cfg, store=store, partition=DAY, producer={"kind": "test"})
    sizes = [sum(len(r["text"].encode()) for r in pq.read_table(store.local_path(
        f"datasets/support_messages/raw/versions/{raw['id']}/{f['path']}")).to_pylist()) for f in raw["files"]]
    assert len(sizes) > 3 and sum(f["rows"] for f in raw["files"]) == raw["counts"]["kept"]
    assert all(s < 2048 + 200 for s in sizes)  # a file ends with the row that reaches the bound


# ------------------------------------------------------------------------------------ history
def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_a_later_day_counts_reposts_of_earlier_days_and_a_backfill_is_deterministic(tmp_path: Path):
    from faker import Faker

    fake = Faker("en_US")
    fake.seed_instance(7)
    day1 = [{"id": f"d1-{n}", "text": fake.paragraph(nb_sentences=4)} for n in range(40)]
    day2 = [{"id": f"d2-{n}", "text": fake.paragraph(nb_sentences=4)} for n in range(40)]
    day2 += [{"id": "repost-exact", "text": day1[5]["text"]},
             {"id": "repost-near", "text": day1[17]["text"] + " Any news?"},
             {"id": "repost-twice", "text": day1[5]["text"]}]
    src = tmp_path / "landing"
    src.mkdir()
    _write(src / "2026-11-20.jsonl", day1)
    _write(src / "2026-11-21.jsonl", day2)
    cfg = PipelineConfig(base_dir=str(tmp_path),
                         sources=[FilesSource(name="inbox", paths=[str(src / "{partition}.jsonl")])])
    cfg.storage.root = str(tmp_path / "store")
    cfg.curation.pii.enabled = False
    cfg.curation.shard_rows = 15
    cfg.quality.enabled = False
    store = LocalStore(tmp_path / "store")

    def run(day: str) -> dict:
        raw = collect_raw(cfg, store=store, partition=day, producer={"kind": "test"})
        return curate_version(cfg, store=store, raw_version_id=raw["id"], partition=day, producer={"kind": "test"})

    first = run("2026-11-20")
    assert first["counts"]["duplicates"] == 0 and first["history"] == {"partitions": 0, "records": 0}
    second = run("2026-11-21")
    assert second["history"] == {"partitions": 1, "records": 40}
    assert second["counts"]["by_reason"]["duplicates"] == {
        "exact_duplicate": 1, "exact_duplicate_history": 1, "near_duplicate_history": 1}
    assert second["counts"]["kept"] == 40
    q = {r["id"]: (r["reason"], r["detail"]) for r in _rows(store, second, "quarantine_files")}
    assert q["repost-exact"] == ("exact_duplicate_history", "exact duplicate of d1-5 (partition 2026-11-20)")
    assert q["repost-near"] == ("near_duplicate_history", "near duplicate of d1-17 (partition 2026-11-20)")
    assert q["repost-twice"][0] == "exact_duplicate"  # of the repost, earlier in its own partition
    # a backfill of day 1 sees only what came before it: the same version as its first run
    assert run("2026-11-20")["id"] == first["id"]
    assert run("2026-11-21")["id"] == second["id"]
    # the index holds keys, ids and fingerprints, never text
    for key in store.list("datasets/support_messages/dedup_index"):
        data = store.read_bytes(key)
        assert day1[5]["text"][:30].encode() not in data

    # erasure takes a record's keys out: its repost is then new content
    from llmops.curate.history import erase_records

    assert erase_records(store, "support_messages", {"d1-5"}) == 1
    assert erase_records(store, "support_messages", {"d1-5"}) == 0
    again = run("2026-11-21")
    assert again["counts"]["by_reason"]["duplicates"] == {
        "exact_duplicate": 1, "near_duplicate_history": 1}


def test_history_lookups_read_only_the_blocks_that_can_match(tmp_path: Path):
    import numpy as np

    from llmops.curate.history import HistoryIndex, exact_halves, write_run
    from llmops.curate.minhash import NearDupIndex

    store = LocalStore(tmp_path)
    rng = np.random.default_rng(3)
    near = NearDupIndex(0.8, 128)
    params = {"num_perm": 128, "kind": "char", "n": 5, "seed": 1, "bands": near.bands, "rows": near.rows,
              "fingerprint_bits": 8}
    n = 200_000
    digests = [rng.bytes(16) for _ in range(n)]
    bands = rng.integers(0, 2**63, size=(n, near.bands), dtype=np.int64).astype(np.uint64)
    fps = rng.integers(0, 256, size=(n, 128), dtype=np.uint8)
    write_run(store, "d", partition="2026-11-01", version_id="curated-a", ids=[f"r{i}" for i in range(n)],
              exact=digests, bands=bands, fps=fps, params=params)
    history = HistoryIndex.open(store, "d", before="2026-11-02")
    assert len(history) == 1 and history.docs == n
    hi, lo = exact_halves([digests[10], digests[150_000], rng.bytes(16)])
    assert history.exact(hi, lo) == {0: (0, 10), 1: (0, 150_000)}
    q_fps = fps[[42, 7]].copy()
    q_fps[1] ^= 0xFF  # shares its bands but not its fingerprints: not a duplicate
    assert history.near(bands[[42, 7]], q_fps, params=params, need=near.need) == {0: (0, 42)}
    read, total = history.stats["blocks_read"], history.stats["blocks_total"]
    assert read <= 40 < total, history.stats  # a handful of blocks per lookup, out of thousands
    assert history.ids(0, np.array([42])) == {42: "r42"}
    # other MinHash parameters: not compared; partitions on or after the day asked for: not seen
    assert history.near(bands[[42]], fps[[42]], params={**params, "n": 3}, need=near.need) == {}
    assert len(HistoryIndex.open(store, "d", before="2026-11-01")) == 0
    # a horizon: only the partitions of the last days are checked
    assert len(HistoryIndex.open(store, "d", before="2026-11-03", horizon_days=2)) == 1
    assert len(HistoryIndex.open(store, "d", before="2026-11-04", horizon_days=2)) == 0
    history.close()


def _random_run(rng, n: int, bands: int):
    import numpy as np

    digests = [rng.bytes(16) for _ in range(n)]
    keys = rng.integers(0, 2**63, size=(n, bands), dtype=np.int64).astype(np.uint64)
    fps = rng.integers(0, 256, size=(n, 128), dtype=np.uint8)
    return digests, keys, fps


def test_compaction_merges_segments_without_changing_an_answer(tmp_path: Path):
    """Nine one-day runs are compacted into size tiers; every lookup, for any day, gives what the
    uncompacted runs gave; a re-published day and an erasure hold in merged segments too."""
    import numpy as np

    from llmops.curate import history as h
    from llmops.curate.minhash import NearDupIndex

    store = LocalStore(tmp_path)
    rng = np.random.default_rng(11)
    near = NearDupIndex(0.8, 128)
    params = {"num_perm": 128, "kind": "char", "n": 5, "seed": 1, "bands": near.bands, "rows": near.rows,
              "fingerprint_bits": 8}
    days = [f"2026-11-{d:02d}" for d in range(1, 10)]
    data = {}
    for k, day in enumerate(days):
        data[day] = _random_run(rng, 3_000, near.bands)
        digests, keys, fps = data[day]
        # day 5 repeats a record of day 2: the earliest is the answer wherever the two are stored
        if day == "2026-11-05":
            digests[9], keys[9], fps[9] = data["2026-11-02"][0][4], data["2026-11-02"][1][4], data["2026-11-02"][2][4]
        h.write_run(store, "d", partition=day, version_id=f"v{k}", ids=[f"{day}/{i}" for i in range(3_000)],
                    exact=digests, bands=keys, fps=fps, params=params, compaction=False)

    def answers(before: str) -> tuple:
        idx = h.HistoryIndex.open(store, "d", before=before)
        picks = [("2026-11-02", 4), ("2026-11-05", 9), ("2026-11-07", 2999), ("2026-11-09", 0)]
        digests = [data[d][0][i] for d, i in picks] + [rng.bytes(16)]
        hi, lo = h.exact_halves(digests)
        ex = idx.exact(hi, lo)
        bands = np.stack([data[d][1][i] for d, i in picks])
        bands[:, 1:] = 0  # one shared band is enough to be a candidate
        fps = np.stack([data[d][2][i] for d, i in picks])
        ne = idx.near(bands, fps, params=params, need=near.need)
        named = {q: (idx.runs[r]["partition"], idx.ids(r, np.array([d]))[d]) for q, (r, d) in ex.items()}
        out = (len(idx), idx.docs, ex, ne, named, idx.stats["segments"])
        idx.close()
        return out

    before = {day: answers(day) for day in ("2026-11-03", "2026-11-06", "2026-11-10")}
    assert before["2026-11-10"][5] == 9  # one segment per run
    assert before["2026-11-10"][4][0] == ("2026-11-02", "2026-11-02/4")
    assert before["2026-11-10"][4][1] == ("2026-11-02", "2026-11-02/4")  # day 5's copy is not the earliest
    assert before["2026-11-03"][2] == {0: (1, 4), 1: (1, 4)}  # a backfill of day 3 sees days 1 and 2 only

    merged = h.compact(store, "d")
    assert [m["runs"] for m in merged] == [4, 4]  # 9 runs of 3,000: two merges of four (tier 5 -> 6)
    segments = h._segment_names(store, "d")
    assert len(segments) == 3 and sum(s.startswith("m-") for s in segments) == 2
    after = {day: answers(day) for day in before}
    for day in before:
        assert after[day][:5] == before[day][:5], day
    assert after["2026-11-10"][5] == 3

    # day 3 re-published with other content: its old keys are no longer answers, also inside a merged segment
    digests, keys, fps = _random_run(rng, 500, near.bands)
    h.write_run(store, "d", partition="2026-11-03", version_id="v2b", ids=[f"b/{i}" for i in range(500)],
                exact=digests, bands=keys, fps=fps, params=params, compaction=False)
    idx = h.HistoryIndex.open(store, "d", before="2026-11-10")
    hi, lo = h.exact_halves([data["2026-11-03"][0][7], digests[7]])
    assert idx.exact(hi, lo) == {1: (2, 7)} and idx.runs[2]["version_id"] == "v2b"
    idx.close()
    h.compact(store, "d", full=True)  # everything into one segment: the superseded run is dropped
    (only,) = h._segment_names(store, "d")
    meta = json.loads(store.read_bytes(f"datasets/d/dedup_index/segments/{only}/segment.json"))
    assert [r["version_id"] for r in meta["runs"]] == ["v0", "v1", "v2b", "v3", "v4", "v5", "v6", "v7", "v8"]

    # erasure inside the merged segment: the record's keys and id are gone, the rest answers as before
    assert h.erase_records(store, "d", {"2026-11-02/4", "2026-11-09/0"}) == 2
    assert h.erase_records(store, "d", {"2026-11-02/4"}) == 0
    idx = h.HistoryIndex.open(store, "d", before="2026-11-10")
    hi, lo = h.exact_halves([data["2026-11-02"][0][4], data["2026-11-09"][0][0], data["2026-11-07"][0][2999]])
    got = idx.exact(hi, lo)
    assert got == {0: (4, 9), 2: (6, 2999)}  # day 5's copy of the erased record is a record of its own
    assert idx.ids(1, np.array([4])) == {} and idx.ids(6, np.array([2999])) == {2999: "2026-11-07/2999"}
    idx.close()
    for name in h._segment_names(store, "d"):
        seg = h._local_segment(store, "d", name)
        names = seg.ids(np.arange(seg.docs))
        assert "2026-11-02/4" not in names and "2026-11-09/0" not in names and names.count("") == 2
        seg.close()


def test_an_s3_index_is_read_from_local_copies_and_pruned_after_compaction(tmp_path: Path, s3_client, monkeypatch):
    import numpy as np

    from llmops.curate import history as h
    from llmops.storage import S3Store

    monkeypatch.setenv("LLMOPS_INDEX_CACHE", str(tmp_path / "cache"))
    s3_client.create_bucket(Bucket="lake")
    store = S3Store("s3://lake/llmops", s3_client)
    rng = np.random.default_rng(5)
    data = []
    for k in range(4):
        digests, keys, fps = _random_run(rng, 200, 9)
        data.append(digests)
        h.write_run(store, "d", partition=f"2026-11-0{k + 1}", version_id=f"v{k}", ids=[f"{k}/{i}" for i in range(200)],
                    exact=digests, bands=keys, fps=fps, params={"bands": 9}, compaction=k < 3)
        idx = h.HistoryIndex.open(store, "d", before="2026-12-01")
        hi, lo = h.exact_halves([data[0][3], digests[5]])
        assert idx.exact(hi, lo) == {0: (0, 3), 1: (k, 5)}
        idx.close()
    cache = h._cache_dir(store, "d")
    assert sorted(p.name for p in cache.iterdir()) == ["run-v0", "run-v1", "run-v2", "run-v3"]
    (merged,) = h.compact(store, "d")
    idx = h.HistoryIndex.open(store, "d", before="2026-12-01")
    assert idx.stats["segments"] == 1 and idx.ids(3, np.array([199])) == {199: "3/199"}
    idx.close()
    assert [p.name for p in cache.iterdir()] == [merged["name"]]  # the replaced copies are gone
    assert not [k for k in store.list("datasets/d/dedup_index/segments/") if "/run-" in k]


def test_an_index_in_the_earlier_parquet_layout_is_converted_on_first_use(tmp_path: Path):
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from llmops.curate import history as h

    store = LocalStore(tmp_path)
    rng = np.random.default_rng(8)
    digests, keys, fps = _random_run(rng, 300, 9)
    hi, lo = h.exact_halves(digests)
    run = tmp_path / "datasets/d/dedup_index/runs/v0"
    run.mkdir(parents=True)
    o = np.lexsort((lo, hi))
    pq.write_table(pa.table({"hi": hi[o], "lo": lo[o], "doc": np.arange(300, dtype=np.int32)[o]}), run / "exact.parquet")
    flat = keys.view(np.int64).ravel()
    o = np.argsort(flat)
    pq.write_table(pa.table({"key": flat[o], "doc": np.repeat(np.arange(300, dtype=np.int32), 9)[o]}),
                   run / "bands.parquet")
    pq.write_table(pa.table({"doc": np.arange(300, dtype=np.int32), "id": [f"r{i}" for i in range(300)],
                             "fps": pa.FixedSizeListArray.from_arrays(pa.array(fps.ravel()), 128)}), run / "docs.parquet")
    (run / "run.json").write_text(json.dumps({"partition": "2026-11-01", "version_id": "v0", "docs": 300,
                                              "near": {"bands": 9}}))
    store.write_bytes("datasets/d/dedup_index/partitions/2026-11-01.json",
                      json.dumps({"partition": "2026-11-01", "version_id": "v0"}).encode())
    idx = h.HistoryIndex.open(store, "d", before="2026-11-02")
    q = keys[[17]].copy()
    q[0, 1:] = 0
    assert idx.exact(hi[[250]], lo[[250]]) == {0: (0, 250)}
    assert idx.near(q, fps[[17]], params={"bands": 9}, need=100) == {0: (0, 17)}
    assert idx.ids(0, np.array([17])) == {17: "r17"}
    idx.close()
    assert h._segment_names(store, "d") == ["run-v0"]
