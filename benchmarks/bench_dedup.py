"""Near-duplicate detection: ``llmops`` MinHash LSH against datasketch, same corpus, same run.

    python benchmarks/bench_dedup.py [--docs 20000] [--out benchmarks/results/dedup.json]

Corpus: a seeded stream of short customer-support messages (20-60 words, composed from greetings,
issue templates with random order numbers / products / amounts / dates, details, requests and
sign-offs, plus a few words of free-form narrative of their own), of which ~5% are planted
near-duplicates: 1-3 word substitutions / insertions / deletions of a recent original message.
The ground truth is known: each planted copy and its source.

Both sides see the stream in order, use char 5-gram shingles of the same canonical text,
``num_perm`` 128 and Jaccard threshold 0.8, and keep (insert) every document that is not reported
as a duplicate - the streaming dedup the curation pipeline does:

* datasketch: ``MinHash(num_perm).update_batch(shingles)`` per document, ``MinHashLSH(threshold,
  num_perm)`` with its defaults, ``query`` then ``insert``; a document with any LSH hit is a duplicate;
* llmops: ``NearDupIndex(threshold, num_perm).check_and_add`` on batches of ``--batch`` documents
  (shingling, hashing, banding and verification included in the time);
* llmops_sharded: the curation pipeline's sharded path on the same corpus as a JSON Lines files
  source: ``collect_raw`` cuts the raw version in ``--shards`` shards, ``curate_version`` curates
  each shard (``curate_shard``) and decides duplicates across them from their keys
  (``merge_shards``); PII, the quality gate, the language filter, the history index and the subject
  index off, text filters that keep every message, exact dedup on, near dedup with the same
  parameters and batch size. Its duplicates are read back from the curated version's quarantine
  (``near-duplicate of <id>``; an exact duplicate's partner is the first message with its exact
  key); the time is the whole ``curate_version`` call.

Scores against the planted ground truth and exact Jaccard of the shingle sets:

* recall: of the planted copies whose exact Jaccard with their source is >= threshold (the ones a
  dedup at that threshold should drop), the share reported as a duplicate of a document they really
  are >= threshold similar to;
* precision: of the documents reported as duplicates, the share for which a reported partner really
  is >= threshold similar (datasketch reports all LSH hits; any one of them counts).

As context, datasketch's per-shingle ``MinHash.update`` loop (signatures only) is timed on the
first ``--update-loop-docs`` documents.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import sys
import tempfile
import time
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "include"))

from llmops.curate.minhash import NearDupIndex, shingles  # noqa: E402

THRESHOLD = 0.8
NUM_PERM = 128
NGRAM = 5

GREETINGS = ["Hi", "Hello", "Hey", "Good morning", "Good afternoon", "Dear support team", "Hi there",
             "Hello team", "To whom it may concern", ""]
ISSUES = [
    "my order {order} for the {product} has not arrived yet and the tracking page has not changed since {date}",
    "I was charged {amount} twice for order {order} and I only placed it once",
    "the {product} I received on {date} stopped working after {days} days",
    "I cannot log in to my account since {date} because the password reset email never arrives",
    "the {courier} driver marked parcel {order} as delivered but nothing was left at my address in {city}",
    "I would like to return the {product} from order {order} because it is the wrong size",
    "my refund of {amount} for order {order} still has not reached my card",
    "the discount code {code} did not apply at checkout and I paid {amount} instead of the sale price",
    "I need to change the delivery address for order {order} to my office in {city}",
    "the invoice for order {order} shows the wrong company name and tax number",
    "my subscription renewed on {date} even though I cancelled it last month",
    "the app crashes every time I open the orders tab on my {device}",
    "the {product} arrived with a cracked screen and the box was badly damaged",
    "I ordered two {product}s but only one was in the parcel from {courier}",
    "can you tell me when the {product} will be back in stock in {city}",
    "your chat agent promised me a callback on {date} but nobody ever called",
    "the {product} is much smaller than the photos on your website suggested",
    "I received someone else's order, a {product}, instead of my own order {order}",
    "my loyalty points from order {order} disappeared from my account after {date}",
    "the payment for order {order} failed but the money of {amount} left my bank account",
]
DETAILS = [
    "I have attached a photo of the damage", "this is the third time I am writing about this",
    "I have been a customer for {years} years", "please check with your warehouse in {city}",
    "the order was a birthday gift for my {relative}", "I already tried restarting the app and clearing the cache",
    "my phone number is on the account", "I paid with {payment}", "the tracking number is {tracking}",
    "I am travelling from {date} so please reply by email", "nobody answered the hotline for {days} minutes",
    "my neighbour did not receive anything either", "I still have the original packaging",
    "the same thing happened with order {order2} last year", "I really need it before {date}",
]
REQUESTS = [
    "could you please send a replacement", "please refund me as soon as possible",
    "can someone call me back today", "please let me know what I should do next",
    "I would like to cancel the whole order", "could you escalate this to a supervisor",
    "please send me a prepaid return label", "can you confirm the new delivery date",
    "please fix this before I dispute the charge with my bank", "I expect a full refund including shipping",
]
CLOSINGS = ["Thanks", "Thank you", "Kind regards, {name}", "Best, {name}", "Cheers, {name}", "Regards",
            "Thanks in advance", "", "Many thanks, {name}"]
SLOTS = {
    "product": ["running shoes", "wireless headphones", "coffee machine", "winter jacket", "phone case",
                "smart watch", "desk lamp", "backpack", "blender", "yoga mat", "office chair", "kettle",
                "gaming mouse", "bluetooth speaker", "sofa cushion", "air fryer", "rain coat", "tablet"],
    "courier": ["DHL", "UPS", "FedEx", "DPD", "GLS", "Royal Mail", "Hermes", "PostNL"],
    "city": ["Berlin", "Madrid", "Leeds", "Lyon", "Porto", "Milan", "Dublin", "Vienna", "Utrecht", "Krakow"],
    "relative": ["mother", "father", "sister", "brother", "daughter", "son", "wife", "husband", "friend"],
    "payment": ["my credit card", "PayPal", "a gift card", "bank transfer", "Apple Pay", "Klarna"],
    "device": ["phone", "tablet", "laptop", "iPad", "Android phone"],
    "name": ["Anna", "Ben", "Carla", "David", "Elif", "Farid", "Greta", "Hugo", "Ines", "Jonas", "Kim", "Lena"],
}
# free-form narrative: every real message has some of its own words, so two messages from the same
# templates are related (Jaccard ~0.3-0.6) but not near-duplicates
STORY = ("I we it this that the a my your our they he she was is were had have has did not never still "
         "already only just also again when after before because since while but so and or then yesterday "
         "today tonight morning evening week weekend month Monday Friday last next first second third "
         "time times day days hour hours minute box parcel package item items gift delivery driver shop "
         "store website app account email message call chat agent manager form page screen photo receipt "
         "label door floor building street neighbour family kids work office home trip holiday birthday "
         "wedding party school meeting waited tried checked opened closed called wrote asked told said "
         "paid bought ordered returned cancelled sent received found lost broke fixed changed moved left "
         "came went looked seemed worked stopped started wanted needed expected promised happened "
         "nothing something everything anything nobody someone everyone quite very really totally almost "
         "late early quickly slowly properly twice once new old wrong right same different broken missing "
         "empty small large heavy cheap expensive simple annoying frustrating disappointing fine").split()
FILLERS = ["really", "please", "now", "again", "today", "still", "also", "urgently", "just", "honestly"]


def _fill(rng: random.Random, template: str) -> str:
    values = {k: rng.choice(v) for k, v in SLOTS.items()}
    values.update(
        order=f"#{rng.randint(1_000_000, 9_999_999)}", order2=f"#{rng.randint(1_000_000, 9_999_999)}",
        amount=f"{rng.randint(5, 900)}.{rng.randint(0, 99):02d} EUR", days=str(rng.randint(2, 60)),
        date=f"{rng.randint(1, 28)}/{rng.randint(1, 12)}", years=str(rng.randint(2, 15)),
        code=f"SAVE{rng.randint(10, 99)}", tracking=f"{rng.randint(10**11, 10**12 - 1)}",
    )
    return template.format(**values)


def message(rng: random.Random) -> str:
    """One support message of 20-60 words."""
    issues = [_fill(rng, t) for t in rng.sample(ISSUES, rng.choice((1, 1, 2)))]
    story = " ".join(rng.choice(STORY) for _ in range(rng.randint(6, 16)))
    parts = [rng.choice(GREETINGS), issues[0], story, *issues[1:]]
    parts += [_fill(rng, t) for t in rng.sample(DETAILS, rng.randint(0, 2))]
    parts += [_fill(rng, rng.choice(REQUESTS)), _fill(rng, rng.choice(CLOSINGS))]
    words = ". ".join(p for p in parts if p).split()
    while len(words) < 20:
        words += _fill(rng, rng.choice(DETAILS)).split()
    return " ".join(words[: rng.randint(max(20, min(len(words), 40)), 60)])


def near_copy(rng: random.Random, text: str) -> str:
    """1-3 word substitutions / insertions / deletions."""
    words = text.split()
    for _ in range(rng.randint(1, 3)):
        pos = rng.randrange(len(words))
        op = rng.random()
        if op < 0.4:
            words[pos] = rng.choice(FILLERS)
        elif op < 0.8:
            words.insert(pos, rng.choice(FILLERS))
        else:
            del words[pos]
    return " ".join(words)


def corpus(n: int, seed: int = 7, dup_rate: float = 0.05) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """``n`` (id, text) in stream order, and ground truth: planted copy id -> source id."""
    rng = random.Random(seed)
    docs: list[tuple[str, str]] = []
    truth: dict[str, str] = {}
    originals: list[int] = []
    for i in range(n):
        doc_id = f"m{i:08d}"  # zero-padded: sorting ids is stream order
        if originals and rng.random() < dup_rate:
            src = docs[rng.choice(originals[-2000:])]
            docs.append((doc_id, near_copy(rng, src[1])))
            truth[doc_id] = src[0]
        else:
            originals.append(len(docs))
            docs.append((doc_id, message(rng)))
    return docs, truth


def _shingles(text: str) -> set[str]:
    return shingles(text, kind="char", n=NGRAM)


def score(found: dict[str, list[str]], truth: dict[str, str], text: dict[str, str]) -> dict[str, float | int]:
    """Recall / precision of ``found`` (doc -> reported partners) against the planted truth."""
    cache: dict[str, set[str]] = {}

    def sh(doc: str) -> set[str]:
        if doc not in cache:
            cache[doc] = _shingles(text[doc])
        return cache[doc]

    def jac(a: str, b: str) -> float:
        sa, sb = sh(a), sh(b)
        return len(sa & sb) / len(sa | sb)

    correct = {doc for doc, partners in found.items() if any(jac(doc, p) >= THRESHOLD for p in partners)}
    should = [doc for doc, src in truth.items() if jac(doc, src) >= THRESHOLD]
    return {
        "recall": round(sum(1 for d in should if d in correct) / max(1, len(should)), 4),
        "precision": round(len(correct) / max(1, len(found)), 4),
        "flagged": len(found),
        "flagged_correct": len(correct),
        "planted_flagged": sum(1 for d in truth if d in found),
    }


def run_datasketch(docs: list[tuple[str, str]]) -> tuple[float, dict[str, list[str]], tuple[int, int]]:
    from datasketch import MinHash, MinHashLSH

    t = time.perf_counter()
    lsh = MinHashLSH(threshold=THRESHOLD, num_perm=NUM_PERM)
    found: dict[str, list[str]] = {}
    for doc_id, text in docs:
        m = MinHash(num_perm=NUM_PERM)
        m.update_batch([s.encode("utf-8") for s in _shingles(text)])
        hits = lsh.query(m)
        if hits:
            found[doc_id] = sorted(hits)
        else:
            lsh.insert(doc_id, m)
    return time.perf_counter() - t, found, (lsh.b, lsh.r)


def run_datasketch_update_loop(docs: list[tuple[str, str]]) -> float:
    """datasketch's per-shingle ``MinHash.update`` (signatures only): seconds for ``docs``."""
    from datasketch import MinHash

    t = time.perf_counter()
    for _, text in docs:
        m = MinHash(num_perm=NUM_PERM)
        for s in _shingles(text):
            m.update(s.encode("utf-8"))
    return time.perf_counter() - t


def run_llmops(docs: list[tuple[str, str]], batch: int) -> tuple[float, dict[str, list[str]], NearDupIndex]:
    t = time.perf_counter()
    index = NearDupIndex(threshold=THRESHOLD, num_perm=NUM_PERM, kind="char", n=NGRAM)
    found: dict[str, list[str]] = {}
    for i in range(0, len(docs), batch):
        part = docs[i : i + batch]
        dups = index.check_and_add([d for d, _ in part], [x for _, x in part])
        for (doc_id, _), dup in zip(part, dups, strict=True):
            if dup is not None:
                found[doc_id] = [dup]
    return time.perf_counter() - t, found, index


def run_llmops_sharded(docs: list[tuple[str, str]], batch: int, shards: int) -> tuple[float, dict[str, list[str]],
                                                                              dict[str, object]]:
    """``collect_raw`` + ``curate_version`` (every shard, then the merge) on ``docs`` as a files source."""
    import pyarrow.parquet as pq

    from llmops.config import FilesSource, PipelineConfig
    from llmops.curate.normalize import dedup_key, normalize_text
    from llmops.stages import collect_raw, curate_version
    from llmops.storage import LocalStore

    with tempfile.TemporaryDirectory(prefix="bench-dedup-") as tmp:
        root = Path(tmp)
        src = root / "messages.jsonl"
        with src.open("w", encoding="utf-8") as fh:
            for doc_id, text in docs:
                fh.write(json.dumps({"id": doc_id, "text": text}) + "\n")
        cfg = PipelineConfig(base_dir=str(root), sources=[FilesSource(name="messages", paths=[str(src)])])
        cfg.storage.root = str(root / "store")
        cfg.privacy.subject_index.enabled = False
        cfg.quality.enabled = False
        cur = cfg.curation
        cur.pii.enabled = False
        f = cur.filters
        f.min_chars, f.min_words, f.min_alpha_ratio, f.max_symbol_ratio = 0, 0, 0.0, 1.0
        f.max_duplicate_line_fraction, f.max_top_word_fraction, f.languages = 1.0, 1.0, []
        cur.dedup.exact = True
        cur.dedup.near.enabled = True
        cur.dedup.near.threshold, cur.dedup.near.num_perm = THRESHOLD, NUM_PERM
        cur.dedup.near.shingle, cur.dedup.near.ngram = "char", NGRAM
        cur.dedup.history.enabled = False
        cur.batch_size = batch
        cur.shard_rows = math.ceil(len(docs) / shards)
        store = LocalStore(root / "store")
        producer = {"kind": "benchmark"}
        t = time.perf_counter()
        raw = collect_raw(cfg, store=store, partition="2026-01-01", producer=producer)
        collect_s = time.perf_counter() - t
        t = time.perf_counter()
        manifest = curate_version(cfg, store=store, raw_version_id=raw["id"], partition="2026-01-01",
                                  producer=producer)
        seconds = time.perf_counter() - t
        prefix = f"datasets/{manifest['dataset']}/curated/versions/{manifest['id']}"
        quarantine = [r for q in manifest["quarantine_files"]
                      for r in pq.read_table(store.local_path(f"{prefix}/{q['path']}"),
                                             columns=["id", "reason", "detail"]).to_pylist()]
    first: dict[bytes, str] = {}  # exact key -> first message with it, in stream order
    for doc_id, text in docs:
        first.setdefault(dedup_key(normalize_text(text)), doc_id)
    text = dict(docs)
    found: dict[str, list[str]] = {}
    for row in quarantine:
        if row["reason"] == "near_duplicate":
            found[row["id"]] = [row["detail"].removeprefix("near-duplicate of ")]
        elif row["reason"] == "exact_duplicate":
            found[row["id"]] = [first[dedup_key(normalize_text(text[row["id"]]))]]
    counts = manifest["counts"]
    info = {"collect_s": round(collect_s, 3), "shards": manifest["shards"], "raw_files": len(raw["files"]),
            "kept": counts["kept"], "filtered": counts["filtered"], "quarantined": counts["quarantined"],
            "by_reason": counts["by_reason"]}
    return seconds, found, info


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--docs", type=int, default=20000)
    ap.add_argument("--batch", type=int, default=1024, help="llmops check_and_add batch size")
    ap.add_argument("--update-loop-docs", type=int, default=1000)
    ap.add_argument("--shards", type=int, default=4, help="shards of the raw version (llmops_sharded)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/dedup.json"))
    args = ap.parse_args()

    docs, truth = corpus(args.docs, seed=args.seed)
    text = dict(docs)
    ds_s, ds_found, ds_banding = run_datasketch(docs)
    ll_s, ll_found, index = run_llmops(docs, args.batch)
    sh_s, sh_found, sh_info = run_llmops_sharded(docs, args.batch, args.shards)
    loop_docs = docs[: args.update_loop_docs]
    loop_s = run_datasketch_update_loop(loop_docs) if loop_docs else 0.0
    ds = score(ds_found, truth, text)
    ll = score(ll_found, truth, text)
    sh = score(sh_found, truth, text)
    should = sum(1 for d, s in truth.items()
                 if len(_shingles(text[d]) & _shingles(text[s])) / len(_shingles(text[d]) | _shingles(text[s]))
                 >= THRESHOLD)
    result = {
        "measured": str(datetime.now(UTC).date()),
        "docs": args.docs,
        "threshold": THRESHOLD,
        "num_perm": NUM_PERM,
        "shingles": f"char {NGRAM}-grams",
        "planted_near_duplicates": len(truth),
        "planted_at_or_above_threshold": should,
        "datasketch": {"seconds": round(ds_s, 3), "docs_per_s": round(args.docs / ds_s, 1),
                       "bands_rows": list(ds_banding), **ds},
        "llmops": {"seconds": round(ll_s, 3), "docs_per_s": round(args.docs / ll_s, 1),
                   "bands_rows": [index.bands, index.rows], "batch": args.batch,
                   "index_mib": round(index.nbytes / 2**20, 2), "candidates_verified": index.stats.candidates,
                   **ll},
        "llmops_sharded": {"seconds": round(sh_s, 3), "docs_per_s": round(args.docs / sh_s, 1),
                           "batch": args.batch, **sh_info, **sh},
        "sharded_vs_llmops": {"recall_diff": round(sh["recall"] - ll["recall"], 4),
                              "precision_diff": round(sh["precision"] - ll["precision"], 4),
                              "within_0_01": abs(sh["recall"] - ll["recall"]) <= 0.01
                              and abs(sh["precision"] - ll["precision"]) <= 0.01},
        "datasketch_update_loop": {"docs": len(loop_docs),
                                   "docs_per_s": round(len(loop_docs) / loop_s, 1) if loop_s else None},
        "speedup": round(ds_s / ll_s, 2),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "numpy": version("numpy"),
                    "datasketch": version("datasketch")},
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")

    print(f"{args.docs} docs, {len(truth)} planted near-duplicates ({should} with Jaccard >= {THRESHOLD}), "
          f"threshold {THRESHOLD}, {NUM_PERM} permutations, char {NGRAM}-grams")
    print(f"{'':14} {'seconds':>8} {'docs/s':>9} {'recall':>7} {'precision':>9} {'bands x rows':>12}")
    for name, sec, sc, (b, r) in (("datasketch", ds_s, ds, ds_banding), ("llmops", ll_s, ll, (index.bands, index.rows)),
                                  ("llmops_sharded", sh_s, sh, (index.bands, index.rows))):
        print(f"{name:14} {sec:8.2f} {args.docs / sec:9.0f} {sc['recall']:7.3f} {sc['precision']:9.3f} {f'{b} x {r}':>12}")
    print(f"(llmops_sharded: the whole curate_version call, {sh_info['shards']} shards, filtered "
          f"{sh_info['filtered']}, duplicates {sh_info['by_reason'].get('duplicates', {})})")
    if loop_s:
        print(f"(datasketch per-shingle MinHash.update loop, signatures only: {len(loop_docs) / loop_s:.0f} docs/s)")
    print(f"speedup: {ds_s / ll_s:.1f}x  ->  {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
