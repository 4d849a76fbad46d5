"""Peak memory of curating many short documents: curation streams, it does not load everything.

    python benchmarks/bench_memory.py [--docs 1000000] [--pii-docs 20000] [--out ...]

Runs ``llmops curate`` in a child process on a generated JSON Lines file and reads the child's
peak RSS (``ru_maxrss``). Measured in the same run for comparison: the same command on a tenth of
the documents (memory should not grow 10x), and the peak RSS of a child that merely loads the
input with ``pandas.read_json(lines=True)`` (what a load-everything implementation starts from).
The large run disables PII (throughput is measured by bench_curation); a PII-enabled run on
``--pii-docs`` documents shows the cost of the loaded spaCy pipeline.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import write_result

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "include"))
LLMOPS = str(Path(sys.executable).parent / "llmops")


def write_input(path: Path, n: int) -> int:
    from llmops.sampledata import iter_short_docs

    with path.open("w", encoding="utf-8") as fh:
        for doc in iter_short_docs(n, seed=5):
            fh.write(json.dumps(doc, ensure_ascii=False) + "\n")
    return path.stat().st_size


def child_peak(cmd: list[str]) -> tuple[float, float, str]:
    """Run ``cmd`` as the only child of a fresh Python, return (peak RSS MiB, seconds, stdout)."""
    wrapper = (
        "import resource, subprocess, sys, time\n"
        "t = time.perf_counter()\n"
        "p = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "dt = time.perf_counter() - t\n"
        "if p.returncode: sys.stderr.write(p.stderr); sys.exit(p.returncode)\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, dt)\n"
        "sys.stdout.write(p.stdout)\n"
    )
    out = subprocess.run([sys.executable, "-c", wrapper, *cmd], capture_output=True, text=True, check=True)
    first, _, rest = out.stdout.partition("\n")
    kb, secs = first.split()
    return int(kb) / 1024, float(secs), rest


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=1_000_000)
    ap.add_argument("--pii-docs", type=int, default=20_000)
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/memory.json"))
    args = ap.parse_args()
    result: dict = {"docs": args.docs}
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        cfg = t / "nopii.yaml"
        cfg.write_text("curation:\n  pii: {enabled: false}\n")
        small_n = max(args.docs // 10, 1)
        big, small = t / "big.jsonl", t / "small.jsonl"
        t0 = time.perf_counter()
        result["input_bytes"] = write_input(big, args.docs)
        write_input(small, small_n)
        result["generate_s"] = round(time.perf_counter() - t0, 1)
        rss_big, s_big, out_big = child_peak([LLMOPS, "curate", str(big), "--out", str(t / "o1"), "--config", str(cfg)])
        rss_small, s_small, _ = child_peak([LLMOPS, "curate", str(small), "--out", str(t / "o2"), "--config", str(cfg)])
        rss_load, s_load, _ = child_peak([sys.executable, "-c",
                                          f"import pandas as pd; df = pd.read_json({str(big)!r}, lines=True); print(len(df))"])
        result["curate_no_pii"] = {"peak_rss_mib": round(rss_big, 1), "seconds": round(s_big, 1),
                                   "docs_per_s": round(args.docs / s_big, 1), "summary": out_big.splitlines()[:2]}
        result["curate_no_pii_tenth"] = {"docs": small_n, "peak_rss_mib": round(rss_small, 1),
                                         "seconds": round(s_small, 1)}
        result["pandas_load_only"] = {"peak_rss_mib": round(rss_load, 1), "seconds": round(s_load, 1)}
        if args.pii_docs:
            pii_in = t / "pii.jsonl"
            write_input(pii_in, args.pii_docs)
            rss_pii, s_pii, _ = child_peak([LLMOPS, "curate", str(pii_in), "--out", str(t / "o3")])
            result["curate_with_pii"] = {"docs": args.pii_docs, "peak_rss_mib": round(rss_pii, 1),
                                         "seconds": round(s_pii, 1), "docs_per_s": round(args.pii_docs / s_pii, 1)}
    result["ratios"] = {
        "rss_growth_for_10x_docs": round(rss_big / rss_small, 2),
        "curate_rss_vs_pandas_load": round(rss_big / rss_load, 2),
        "curate_rss_vs_input_size": round(rss_big * 2**20 / result["input_bytes"], 2),
    }
    return write_result(args.out, result)


if __name__ == "__main__":
    raise SystemExit(main())
