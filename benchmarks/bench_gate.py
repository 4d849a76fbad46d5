"""The curated quality gate (Great Expectations) on N rows against the same checks in plain pandas.

    python benchmarks/bench_gate.py [--rows 1000000] [--out benchmarks/results/gate.json]

Both run in this process on the same DataFrame (seeded short support messages, redacted-looking
text): GX through ``llmops.quality.gate.run_gate`` with the project's ``curated`` suite (policy
``warn``, no Data Docs, COMPLETE result format so failing row indices are available), pandas as
hand-written vectorised checks of the same seven expectations.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

from _common import write_result

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "include"))


def frame(n: int):  # type: ignore[no-untyped-def]
    import pandas as pd

    from llmops.sampledata import iter_short_docs

    docs = list(iter_short_docs(n, seed=9))
    return pd.DataFrame({
        "id": [d["id"] for d in docs],
        "text": [re.sub(r"\S+@\S+", "<EMAIL_ADDRESS>", d["text"]) for d in docs],
        "source": ["email_tickets" if i % 2 else "chat_logs" for i in range(n)],
        "lang": ["en" if i % 4 else "es" for i in range(n)],
    })


def pandas_checks(df, params) -> dict:  # type: ignore[no-untyped-def]
    from llmops.quality.expectations import RESIDUAL_PII_PATTERNS

    lengths = df["text"].str.len()
    pii = df["text"].str.contains(RESIDUAL_PII_PATTERNS[0], regex=True)
    for pattern in RESIDUAL_PII_PATTERNS[1:]:
        pii |= df["text"].str.contains(pattern, regex=True)
    return {
        "row_count": len(df) >= 1,
        "id_unique": int(df["id"].duplicated(keep=False).sum()),
        "text_not_null": int(df["text"].isna().sum()),
        "length": int((~lengths.between(params["min_chars"], params["max_chars"])).sum()),
        "lang": int((~df["lang"].isin(params["languages"])).sum()),
        "source": int((~df["source"].isin(params["sources"])).sum()),
        "residual_pii": int(pii.sum()),
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/gate.json"))
    args = ap.parse_args()
    from llmops.quality.gate import run_gate
    from llmops.quality.suites import load_suite

    df = frame(args.rows)
    params = {"languages": ["en", "es"], "sources": ["email_tickets", "chat_logs"], "min_chars": 12,
              "max_chars": 20000}
    # imports and one-time set-up (GX import ~7 s, regex compilation) are not validation time
    pandas_checks(df.head(100), params)
    run_gate(df.head(100), load_suite("curated"), params, policy="warn")
    t = time.perf_counter()
    plain = pandas_checks(df, params)
    pandas_s = time.perf_counter() - t
    t = time.perf_counter()
    outcome = run_gate(df, load_suite("curated"), params, policy="warn")
    gx_s = time.perf_counter() - t
    result = {
        "rows": args.rows,
        "expectations": outcome.evaluated,
        "gx_seconds": round(gx_s, 2),
        "pandas_seconds": round(pandas_s, 2),
        "gx_rows_per_s": round(args.rows / gx_s),
        "ratio_gx_vs_pandas_time": round(gx_s / pandas_s, 2),
        "gx_failed": [f["expectation"] for f in outcome.failed],
        "pandas_unexpected": plain,
    }
    return write_result(args.out, result)


if __name__ == "__main__":
    raise SystemExit(main())
