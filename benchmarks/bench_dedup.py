"""Near-duplicate detection: ``llmops`` MinHash LSH against datasketch, same corpus, same run.

    python benchmarks/bench_dedup.py [--docs 20000] [--out benchmarks/results/dedup.json]

Both see the same seeded stream of short messages with ~5% planted near-duplicates
(1-3 word edits), use char 5-gram shingles, 128 permutations, Jaccard threshold 0.8 and the same
LSH banding (datasketch is given the same false-positive/false-negative weights, so both pick
the same bands x rows), and insert every document that is not a duplicate, in stream order –
the streaming dedup the pipeline does. Reported: wall time, docs/s, and recall / precision
against the planted pairs (a pair counts when either member is flagged as the other's duplicate).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "include"))

THRESHOLD = 0.8
NUM_PERM = 128
FP_WEIGHT = 0.2


def corpus(n: int, seed: int = 3) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """Messages of 20-60 words drawn from the sample corpus' vocabulary in random order (so two
    unrelated messages are far below the threshold), plus planted 1-3 word edits of earlier ones."""
    from llmops.sampledata import TEMPLATES, _near_dup

    rng = random.Random(seed)
    vocab = sorted({w.strip(",.?!") for lang in TEMPLATES.values() for tpls in lang.values() for t in tpls
                    for w in t.split() if "{" not in w})
    docs: list[tuple[str, str]] = []
    truth: dict[str, str] = {}
    for i in range(n):
        if docs and rng.random() < 0.05:
            src_id, src_text = rng.choice(docs[-2000:])
            docs.append((f"d{i}", _near_dup(rng, src_text)))
            truth[f"d{i}"] = src_id
        else:
            docs.append((f"d{i}", " ".join(rng.choice(vocab) for _ in range(rng.randint(20, 60)))))
    return docs, truth


def score(found: dict[str, str], truth: dict[str, str], docs: list[tuple[str, str]]) -> tuple[float, float]:
    """Recall over planted pairs whose true Jaccard is >= threshold; precision over all flags."""
    from llmops.curate.minhash import shingles

    text = dict(docs)

    def jac(a: str, b: str) -> float:
        sa, sb = shingles(text[a]), shingles(text[b])
        return len(sa & sb) / len(sa | sb)

    planted = {frozenset(p) for p in truth.items() if jac(*p) >= THRESHOLD}
    flagged = {frozenset(p) for p in found.items()}
    recall = len(planted & flagged) / max(1, len(planted))
    # a flag is correct when it is a planted pair or the two texts really are >= threshold similar
    correct = sum(1 for p in flagged if p in planted or jac(*tuple(p)) >= THRESHOLD)
    precision = correct / max(1, len(flagged))
    return recall, precision


def run_datasketch(docs: list[tuple[str, str]]) -> tuple[float, dict[str, str]]:
    from datasketch import MinHash, MinHashLSH

    from llmops.curate.minhash import shingles

    t = time.perf_counter()
    lsh = MinHashLSH(threshold=THRESHOLD, num_perm=NUM_PERM, weights=(FP_WEIGHT, 1 - FP_WEIGHT))
    found: dict[str, str] = {}
    for doc_id, text in docs:
        m = MinHash(num_perm=NUM_PERM)
        m.update_batch([s.encode("utf-8") for s in shingles(text)])
        hits = lsh.query(m)
        if hits:
            found[doc_id] = sorted(hits)[0]
        else:
            lsh.insert(doc_id, m)
    return time.perf_counter() - t, found


def run_llmops(docs: list[tuple[str, str]], batch: int = 512) -> tuple[float, dict[str, str], tuple[int, int]]:
    from llmops.curate.minhash import NearDupIndex

    t = time.perf_counter()
    index = NearDupIndex(threshold=THRESHOLD, num_perm=NUM_PERM, fp_weight=FP_WEIGHT)
    found: dict[str, str] = {}
    for i in range(0, len(docs), batch):
        part = docs[i : i + batch]
        for (doc_id, _), dup in zip(part, index.check_and_add([d for d, _ in part], [x for _, x in part]),
                                    strict=True):
            if dup is not None:
                found[doc_id] = dup
    return time.perf_counter() - t, found, (index.bands, index.rows)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=20000)
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/dedup.json"))
    args = ap.parse_args()
    docs, truth = corpus(args.docs)
    ds_s, ds_found = run_datasketch(docs)
    ll_s, ll_found, banding = run_llmops(docs)
    ds_r, ds_p = score(ds_found, truth, docs)
    ll_r, ll_p = score(ll_found, truth, docs)
    result = {
        "docs": args.docs,
        "planted_near_duplicates": len(truth),
        "threshold": THRESHOLD,
        "num_perm": NUM_PERM,
        "bands_rows": list(banding),
        "datasketch": {"seconds": round(ds_s, 2), "docs_per_s": round(args.docs / ds_s, 1),
                       "recall": round(ds_r, 4), "precision": round(ds_p, 4), "flagged": len(ds_found)},
        "llmops": {"seconds": round(ll_s, 2), "docs_per_s": round(args.docs / ll_s, 1),
                   "recall": round(ll_r, 4), "precision": round(ll_p, 4), "flagged": len(ll_found)},
        "speedup": round(ds_s / ll_s, 2),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
