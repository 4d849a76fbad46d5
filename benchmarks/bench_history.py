"""Duplicates across partitions: the history dedup index at 1M, 5M and 20M documents of history.

    python benchmarks/bench_history.py [--levels 1000000,5000000,20000000] [--docs-per-partition 1000000]
                                       [--query-docs 10000] [--small-query-docs 1000] [--quick]
                                       [--out benchmarks/results/history.json]

History: runs written with :func:`llmops.curate.history.write_run` into a ``LocalStore`` in a temporary
folder, one per partition of ``--docs-per-partition`` documents, built incrementally (the first level,
then runs added up to the next). Each document has a random 16-byte exact key, the band keys of a
``NearDupIndex(0.8, 128)`` (uniform 64-bit values, as band hashes are), 128 8-bit fingerprints and
an id ``p<k>-<i>``; the time and the bytes on disk of each level are reported.

Query: one new partition of ``--query-docs`` documents (and a second of ``--small-query-docs``): 1%
exact repeats of random history documents (same exact key, band keys and fingerprints), 1% near
repeats (a few signature values changed: the fingerprints there differ, the bands holding them get
new keys, the others are copied; at least one band is shared and the fingerprints still verify) and
the rest new. The lookup is the one merge does for a partition (``HistoryIndex.open`` then
``exact``, ``near`` skipping the exact hits, and the ids of the documents found), each in a fresh
child process: its peak RSS (``ru_maxrss``) is that of the lookup; its RSS after the imports is
reported as the baseline. Each lookup runs ``--repeats`` times (the fastest is reported, the peak RSS
is the largest). Reported per level and query size: seconds, microseconds per query
document, blocks read / total, keys read and segments consulted (``HistoryIndex.stats``), the recall on the planted
repeats and false hits on the new documents. The history files were written just before each
lookup, so they are read from the OS page cache.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
from _common import write_result

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "include"))

from llmops.curate import history as history_mod  # noqa: E402
from llmops.curate.history import near_params, write_run  # noqa: E402
from llmops.curate.minhash import NearDupIndex  # noqa: E402
from llmops.storage import LocalStore  # noqa: E402

DATASET = "bench_history"
QUERY_PARTITION = "2099-12-31"  # after every history partition
RSS_LIMIT_BYTES = 1.5e9
NUM_PERM = 128

# The lookup, in a fresh interpreter: argv = include dir, store root, query .npz, options JSON.
CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, sys.argv[1])

def status_mib(field):
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")

import numpy as np
from llmops.curate.history import HistoryIndex, exact_halves
from llmops.storage import LocalStore

base_rss = status_mib("VmRSS")
base_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
opts = json.loads(sys.argv[4])
q = np.load(sys.argv[3])
exact = [bytes(row) for row in q["exact"]]
bands, fps = q["bands"], q["fps"]

steps, stats_at, peaks = {}, {}, {}
def peak_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

t0 = time.perf_counter()
history = HistoryIndex.open(LocalStore(sys.argv[2]), opts["dataset"], before=opts["partition"])
t = time.perf_counter()
steps["open"] = t - t0
hi, lo = exact_halves(exact)
exact_hits = history.exact(hi, lo)
steps["exact"] = time.perf_counter() - t
stats_at["exact"] = dict(history.stats)
peaks["exact"] = peak_mib()
t = time.perf_counter()
near_hits = history.near(bands, fps, params=opts["params"], need=opts["need"], cap=opts["cap"],
                         skip=set(exact_hits))
steps["near"] = time.perf_counter() - t
stats_at["near"] = dict(history.stats)
peaks["near"] = peak_mib()
t = time.perf_counter()
found = [(r, d) for r, d in list(exact_hits.values()) + list(near_hits.values())]
names = {}
for r in sorted({r for r, _ in found}):
    names.update({(r, d): i for d, i in history.ids(r, np.asarray([d for rr, d in found if rr == r])).items()})
steps["ids"] = time.perf_counter() - t
peaks["ids"] = peak_mib()
total = time.perf_counter() - t0
stats = dict(history.stats)
runs, docs = len(history), history.docs
history.close()

def steps_stats():
    out, prev = {}, {k: 0 for k in stats}
    for name, cur in (("exact", stats_at["exact"]), ("near", stats_at["near"]), ("ids", stats)):
        out[name] = {k: cur[k] - prev[k] for k in cur}
        prev = cur
    return out

planted = q["planted"]  # (query row, kind 0 exact / 1 near, run, doc)
truth = {int(p[0]): (int(p[1]), int(p[2]), int(p[3])) for p in planted}
res = {"exact_planted": 0, "exact_found": 0, "near_planted": 0, "near_found": 0, "wrong_target": 0,
       "false_exact": 0, "false_near": 0}
for row, (kind, r, d) in truth.items():
    key = "exact" if kind == 0 else "near"
    res[key + "_planted"] += 1
    hit = (exact_hits if kind == 0 else near_hits).get(row)
    if hit is not None:
        if hit == (r, d):
            res[key + "_found"] += 1
        else:
            res["wrong_target"] += 1
res["false_exact"] = sum(1 for row in exact_hits if row not in truth)
res["false_near"] = sum(1 for row in near_hits if row not in truth)
res["exact_as_near"] = sum(1 for row in near_hits if truth.get(row, (1,))[0] == 0)
res["ids_resolved"] = len(names)
print(json.dumps({"runs": runs, "history_docs": docs, "seconds": total, "steps_s": steps, "stats": stats,
                  "steps_stats": steps_stats(), "result": res, "rss_after_imports_mib": base_rss,
                  "peak_after_imports_mib": base_peak, "peak_after_step_mib": peaks, "peak_rss_mib": peak_mib(),
                  "vm_hwm_mib": status_mib("VmHWM")}))
"""


def _u64(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.integers(0, np.iinfo(np.uint64).max, size=shape, dtype=np.uint64, endpoint=True)


def partition_name(k: int) -> str:
    return str(np.datetime64("2026-01-01") + np.timedelta64(k, "D"))


def generate_partition(seed: int, k: int, n: int, bands: int, chunk: int
                       ) -> tuple[list[str], list[bytes], np.ndarray, np.ndarray]:
    """Partition ``k``: ids, 16-byte exact keys, band keys (n, bands) and fingerprints (n, 128)."""
    rng = np.random.default_rng([seed, k])
    keys = np.empty((n, bands), dtype=np.uint64)
    fps = np.empty((n, NUM_PERM), dtype=np.uint8)
    exact: list[bytes] = []
    for s in range(0, n, chunk):
        m = min(chunk, n - s)
        raw = rng.bytes(16 * m)
        exact.extend(raw[i : i + 16] for i in range(0, 16 * m, 16))
        keys[s : s + m] = _u64(rng, (m, bands))
        fps[s : s + m] = rng.integers(0, 256, size=(m, NUM_PERM), dtype=np.uint8)
    return [f"p{k}-{i}" for i in range(n)], exact, keys, fps


def build_query(seed: int, q: int, pool: dict[str, np.ndarray], near: NearDupIndex, changed: int
                ) -> dict[str, np.ndarray]:
    """``q`` query documents: 1% exact and 1% near repeats of documents drawn from ``pool`` (a uniform
    sample of the history), the rest new."""
    rng = np.random.default_rng([seed, 1_000_003, q, len(pool["run"])])
    n_exact = n_near = max(1, round(q * 0.01))
    exact = np.frombuffer(rng.bytes(16 * q), dtype=np.uint8).reshape(q, 16).copy()
    bands = _u64(rng, (q, near.bands))
    fps = rng.integers(0, 256, size=(q, NUM_PERM), dtype=np.uint8)
    targets = rng.choice(len(pool["run"]), size=n_exact + n_near, replace=False)
    rows = rng.choice(q, size=n_exact + n_near, replace=False)
    planted = []
    for j, (row, t) in enumerate(zip(rows.tolist(), targets.tolist(), strict=True)):
        if j < n_exact:  # the same document again
            exact[row] = pool["exact"][t]
            bands[row] = pool["bands"][t]
            fps[row] = pool["fps"][t]
            planted.append((row, 0, pool["run"][t], pool["doc"][t]))
            continue
        while True:  # a few signature values differ; bands without a changed row keep their keys
            pos = rng.choice(NUM_PERM, size=changed, replace=False)
            band_of = pos[pos < near.bands * near.rows] // near.rows
            same = np.setdiff1d(np.arange(near.bands), band_of)
            if len(same):
                break
        bands[row, same] = pool["bands"][t][same]
        fps[row] = pool["fps"][t]
        fps[row, pos] = (fps[row, pos].astype(np.int64) + rng.integers(1, 256, size=changed)) % 256
        planted.append((row, 1, pool["run"][t], pool["doc"][t]))
    return {"exact": exact, "bands": bands, "fps": fps, "planted": np.asarray(planted, dtype=np.int64)}


# Starts the lookup from a small process: a child forked from this (large) one would start with this
# one's RSS as its high-water mark, and ru_maxrss would report that instead of the lookup's peak.
LAUNCH = "import subprocess, sys; sys.exit(subprocess.run(sys.argv[1:]).returncode)"


def lookup(store_root: Path, query_path: Path, opts: dict[str, Any]) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-c", LAUNCH, sys.executable, "-c", CHILD, str(ROOT / "include"),
                          str(store_root), str(query_path), json.dumps(opts)], capture_output=True, text=True)
    if out.returncode:
        sys.stderr.write(out.stderr)
        raise SystemExit(f"lookup child failed with status {out.returncode}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def disk_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def index_segments(root: Path) -> list[dict[str, Any]]:
    """The index's segments after the writes (and the compactions they started): runs and documents."""
    out = []
    for path in sorted(root.rglob("segment.json")):
        meta = json.loads(path.read_text())
        out.append({"name": path.parent.name, "runs": len(meta["runs"]), "docs": meta["docs"]})
    return sorted(out, key=lambda m: -m["docs"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--levels", default="1000000,5000000,20000000", help="history sizes (documents), ascending")
    ap.add_argument("--docs-per-partition", type=int, default=1_000_000)
    ap.add_argument("--query-docs", type=int, default=10_000)
    ap.add_argument("--small-query-docs", type=int, default=1_000)
    ap.add_argument("--near-changed", type=int, default=12,
                    help="signature values changed in a near repeat (of 128; 25 at most still verify)")
    ap.add_argument("--chunk", type=int, default=250_000, help="documents generated at a time")
    ap.add_argument("--repeats", type=int, default=3,
                    help="lookups per level and query size (fresh processes); the fastest is reported")
    ap.add_argument("--cap", type=int, default=64, help="candidates verified per document and run")
    ap.add_argument("--seed", type=int, default=20)
    ap.add_argument("--tmp", default=None, help="parent folder of the temporary store (default: the system's)")
    ap.add_argument("--quick", action="store_true", help="smoke run: 20k/50k/100k documents of history")
    ap.add_argument("--note", action="append", default=[], help="a note recorded in the JSON (repeatable)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/history.json"))
    args = ap.parse_args()
    if args.quick:
        args.levels, args.docs_per_partition = "20000,50000,100000", 10_000
        args.query_docs, args.small_query_docs = min(args.query_docs, 2_000), min(args.small_query_docs, 200)
    levels = [int(x) for x in args.levels.split(",")]
    per = args.docs_per_partition
    if levels != sorted(levels) or any(lv % per for lv in levels):
        raise SystemExit("--levels must ascend and be multiples of --docs-per-partition")
    query_sizes = [args.query_docs, args.small_query_docs]

    near = NearDupIndex(0.8, NUM_PERM)
    params = near_params(near)
    opts = {"dataset": DATASET, "partition": QUERY_PARTITION, "params": params, "need": near.need, "cap": args.cap}
    sample = 2 * max(1, round(max(query_sizes) * 0.01))  # per partition: enough targets for any level
    tmp = Path(tempfile.mkdtemp(prefix="bench-history-", dir=args.tmp))
    store_root = tmp / "store"
    store = LocalStore(store_root)
    pool: dict[str, list[Any]] = {"run": [], "doc": [], "exact": [], "bands": [], "fps": []}
    results: list[dict[str, Any]] = []
    built, build_total = 0, 0.0
    try:
        for level in levels:
            gen_s = write_s = 0.0
            while built < level:
                k = built // per
                t = time.perf_counter()
                ids, exact, keys, fps = generate_partition(args.seed, k, per, near.bands, args.chunk)
                pick = np.random.default_rng([args.seed, k, 7]).choice(per, size=min(sample, per), replace=False)
                pool["run"] += [k] * len(pick)
                pool["doc"] += pick.tolist()
                pool["exact"] += [np.frombuffer(exact[i], dtype=np.uint8) for i in pick.tolist()]
                pool["bands"].append(keys[pick])
                pool["fps"].append(fps[pick])
                gen_s += time.perf_counter() - t
                t = time.perf_counter()
                write_run(store, DATASET, partition=partition_name(k), version_id=f"curated-{k:05d}", ids=ids,
                          exact=exact, bands=keys, fps=fps, params=params)
                write_s += time.perf_counter() - t
                del ids, exact, keys, fps
                built += per
                print(f"  partition {k}: {built:,} documents of history", file=sys.stderr, flush=True)
            build_total += gen_s + write_s
            size = disk_bytes(store_root)
            flat = {"run": np.asarray(pool["run"]), "doc": np.asarray(pool["doc"]), "exact": np.stack(pool["exact"]),
                    "bands": np.concatenate(pool["bands"]), "fps": np.concatenate(pool["fps"])}
            entry: dict[str, Any] = {
                "history_docs": level, "runs": level // per,
                "build": {"seconds": round(gen_s + write_s, 1), "generate_s": round(gen_s, 1),
                          "write_run_s": round(write_s, 1), "cumulative_s": round(build_total, 1),
                          "disk_bytes": size, "disk_gb": round(size / 1e9, 3),
                          "bytes_per_doc": round(size / level, 1)},
                "segments": index_segments(store_root),
                "queries": {},
            }
            for q in query_sizes:
                qpath = tmp / f"query-{q}.npz"
                np.savez(qpath, **build_query(args.seed, q, flat, near, args.near_changed))
                runs = [lookup(store_root, qpath, opts) for _ in range(args.repeats)]
                got = min(runs, key=lambda g: g["seconds"])  # timing: the least disturbed run
                assert got["history_docs"] == level, got
                assert all(g["result"] == got["result"] and g["stats"] == got["stats"] for g in runs)
                res, st = got["result"], got["stats"]
                entry["queries"][str(q)] = {
                    "query_docs": q,
                    "seconds": round(got["seconds"], 3),
                    "seconds_all": [round(g["seconds"], 3) for g in runs],
                    "us_per_doc": round(got["seconds"] / q * 1e6, 1),
                    "steps_s": {k: round(v, 3) for k, v in got["steps_s"].items()},
                    "segments": st["segments"],
                    "blocks_read": st["blocks_read"], "blocks_total": st["blocks_total"],
                    "blocks_read_share": round(st["blocks_read"] / max(1, st["blocks_total"]), 4),
                    "keys_read": st["keys_read"],
                    "steps_stats": got["steps_stats"],
                    "rss_after_imports_mib": round(got["rss_after_imports_mib"], 1),
                    "peak_rss_after_imports_mib": round(got["peak_after_imports_mib"], 1),
                    "peak_rss_mib": round(max(g["peak_rss_mib"] for g in runs), 1),
                    "vm_hwm_mib": round(max(g["vm_hwm_mib"] for g in runs), 1),
                    "peak_rss_after_step_mib": {k: round(v, 1) for k, v in got["peak_after_step_mib"].items()},
                    "exact_recall": round(res["exact_found"] / max(1, res["exact_planted"]), 4),
                    "near_recall": round(res["near_found"] / max(1, res["near_planted"]), 4),
                    **res,
                }
                print(f"  {level:,} docs, query {q:,}: {got['seconds']:.2f} s", file=sys.stderr, flush=True)
            results.append(entry)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    base = results[0]
    comparison: dict[str, Any] = {}
    for entry in results[1:]:
        h_ratio = entry["history_docs"] / base["history_docs"]
        per_q = {}
        for q in map(str, query_sizes):
            ratio = entry["queries"][q]["us_per_doc"] / base["queries"][q]["us_per_doc"]
            rows = entry["queries"][q]["keys_read"] / base["queries"][q]["keys_read"]
            per_q[q] = {"per_doc_cost_ratio": round(ratio, 2), "sub_linear": ratio < h_ratio,
                        "keys_read_ratio": round(rows, 2)}
        comparison[f"{entry['history_docs']}_vs_{base['history_docs']}"] = {"history_ratio": h_ratio, **per_q}
    peak = max(qr["peak_rss_mib"] for e in results for qr in e["queries"].values())
    keys_per_run = per * near.bands
    result = {
        "levels": levels,
        "docs_per_partition": per,
        "query_docs": query_sizes,
        "repeats": args.repeats,
        "planted": {"exact_share": 0.01, "near_share": 0.01, "near_changed_values": args.near_changed,
                    "need": near.need, "num_perm": NUM_PERM},
        "index": {"bands": near.bands, "rows": near.rows, "block": history_mod.BLOCK, "chunk": history_mod.CHUNK,
                  "fanout": history_mod.FANOUT, "cap": args.cap,
                  "band_blocks_per_run": math.ceil(keys_per_run / history_mod.BLOCK)},
        "results": results,
        "vs_first_level": comparison,
        "per_doc_cost_sub_linear": all(v[q]["sub_linear"] for v in comparison.values() for q in map(str, query_sizes)),
        "peak_rss_mib_max": peak,
        "peak_rss_under_1_5_gb": peak * 2**20 < RSS_LIMIT_BYTES,
        "notes": [
            "history files are read from the OS page cache (written just before each lookup)",
            "peak_rss_mib: ru_maxrss of the lookup process (started from a small launcher process, so it does "
            "not inherit this process's RSS); vm_hwm_mib: its VmHWM, the same peak from /proc",
            *args.note],
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "numpy": version("numpy"),
                    "pyarrow": version("pyarrow"), "platform": platform.platform()},
    }
    write_result(args.out, result)

    print(f"\nhistory index, {per:,} documents per partition, query partitions of {query_sizes} documents "
          "(blocks read: of the blocks of the segments consulted, HistoryIndex.stats)")
    print(f"{'history':>10} {'build s':>8} {'disk GB':>8} " + " ".join(
        f"{f'us/doc q={q}':>12} {'blocks read':>17} {'peak MiB':>8} {'recall e/n':>10}" for q in query_sizes))
    for e in results:
        cells = []
        for q in map(str, query_sizes):
            r = e["queries"][q]
            cells.append(f"{r['us_per_doc']:12.1f} {r['blocks_read']:>8}/{r['blocks_total']:<8} "
                         f"{r['peak_rss_mib']:8.0f} {r['exact_recall']:4.2f}/{r['near_recall']:<5.2f}")
        print(f"{e['history_docs']:>10,} {e['build']['seconds']:8.1f} {e['build']['disk_gb']:8.2f} " + " ".join(cells))
    for name, v in comparison.items():
        print(f"per-doc cost {name}: " + ", ".join(
            f"q={q}: x{v[q]['per_doc_cost_ratio']} (history x{v['history_ratio']:.0f})" for q in map(str, query_sizes)))
    print(f"sub-linear: {result['per_doc_cost_sub_linear']}; peak RSS {peak:.0f} MiB "
          f"(under 1.5 GB: {result['peak_rss_under_1_5_gb']})  ->  {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
