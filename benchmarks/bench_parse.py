"""DAG parse time per file, against the bare cost of ``import airflow.sdk`` in the same run.

    python benchmarks/bench_parse.py [--repeat 5] [--out benchmarks/results/parse.json]

Each measurement is a fresh interpreter (what a DAG processor child pays); the figure reported
per file is the median of ``--repeat`` runs of the file's own import time after Airflow's SDK is
loaded, plus the heavy modules it pulled in (there should be none).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from _common import write_result

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ["torch", "transformers", "deepspeed", "presidio_analyzer", "spacy", "great_expectations", "mlflow",
         "datasets", "pandas", "pyarrow",
         # what an asset URI scheme without the `x-` prefix pulls in (every provider's URI normalizer), and
         # the pydantic config model (DAG files read their parse-time keys through llmops_airflow.dagconfig)
         "boto3", "airflow.providers.amazon.aws", "llmops.config"]

PROBE = """
import json, sys, time, importlib.util
t0 = time.perf_counter()
import airflow.sdk
t1 = time.perf_counter()
path = sys.argv[1]
if path:
    spec = importlib.util.spec_from_file_location("dagfile", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
t2 = time.perf_counter()
print(json.dumps({"sdk": t1 - t0, "file": t2 - t1, "heavy": [m for m in HEAVY if m in sys.modules]}))
"""


def probe(path: str) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "plugins"), str(ROOT / "include")])
    code = PROBE.replace("HEAVY", repr(HEAVY))
    out = subprocess.run([sys.executable, "-c", code, path], capture_output=True, text=True, check=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/parse.json"))
    args = ap.parse_args()
    sdk = [probe("")["sdk"] for _ in range(args.repeat)]
    files = {}
    for path in sorted((ROOT / "dags").glob("*.py")):
        runs = [probe(str(path)) for _ in range(args.repeat)]
        files[path.name] = {
            "median_s": round(statistics.median(r["file"] for r in runs), 4),
            "heavy_modules": runs[0]["heavy"],
        }
    base = statistics.median(sdk)
    result = {
        "repeat": args.repeat,
        "import_airflow_sdk_s": round(base, 4),
        "files": files,
        "ratio_file_vs_sdk_import": {k: round(v["median_s"] / base, 3) for k, v in files.items()},
    }
    return write_result(args.out, result)


if __name__ == "__main__":
    raise SystemExit(main())
