"""One partition curated by 1 shard worker vs 2, under the real scheduler (LocalExecutor).

    python benchmarks/bench_shards.py [--docs 30000] [--out benchmarks/results/shards.json]

A seeded sample day of ``--docs`` support messages (the project's generator: five sources, PII,
duplicates, bad records) is collected and curated by ``llm_data_collection`` under ``airflow
standalone`` (SQLite, LocalExecutor, parallelism 4) twice, into two separate stores:

* baseline: ``curation.shard_rows`` above the day's size: one ``curate_shard`` task does it all;
* sharded: ``shard_rows`` at half the day: two ``curate_shard`` tasks run at once, one per core.

Both with ``pii.n_process: 1`` (one core per task) and the shipped config otherwise (quality gates
on). The figure is the curation's wall time: from the first ``curate_shard`` start to the end of
``dedup_merge`` (task times from the REST API); each task loads its own Presidio/spaCy pipelines,
which is part of the cost of spreading work over workers. The two curated versions must hold the
same data files (checked), and the capacity figures derive from the measured per-core rate.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "include"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import write_result  # noqa: E402
from local_airflow import (  # noqa: E402
    VENV_BIN,
    Standalone,
    airflow_env,
    apply_settings,
    free_port,
    prepare,
    run,
    serve_folder,
)

DAG = "llm_data_collection"


def _config(home: Path, store: str, shard_rows: int) -> Path:
    import yaml

    cfg = yaml.safe_load((ROOT / "include/config/pipeline.yaml").read_text())
    cfg["storage"]["root"] = str(home / store)
    cfg["curation"]["shard_rows"] = shard_rows
    cfg["curation"]["pii"]["n_process"] = 1
    path = home / f"{store}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _wait(api: Any, run_id: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = api.rest("GET", f"dags/{DAG}/dagRuns/{run_id}")
        if got["state"] in ("success", "failed"):
            return dict(got)
        time.sleep(2)
    raise TimeoutError(f"{DAG} run {run_id} did not finish in {timeout:.0f} s")


def _times(api: Any, run_id: str) -> dict[str, Any]:
    tis = api.rest("GET", f"dags/{DAG}/dagRuns/{run_id}/taskInstances")["task_instances"]
    at = {}
    for t in tis:
        start, end = datetime.fromisoformat(t["start_date"]), datetime.fromisoformat(t["end_date"])
        at[(t["task_id"], t.get("map_index", -1))] = (start, end, t["state"])
    shards = [v for (task, _), v in at.items() if task == "curate_shard"]
    merge = next(v for (task, _), v in at.items() if task == "dedup_merge")
    collect = next(v for (task, _), v in at.items() if task == "collect")
    return {
        "shard_tasks": len(shards),
        "curation_s": round((merge[1] - min(s[0] for s in shards)).total_seconds(), 2),
        "shard_task_s": sorted(round((e - s).total_seconds(), 2) for s, e, _ in shards),
        "merge_s": round((merge[1] - merge[0]).total_seconds(), 2),
        "collect_s": round((collect[1] - collect[0]).total_seconds(), 2),
        "states": sorted({v[2] for v in at.values()}),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--docs", type=int, default=30_000, help="records of the sample day")
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/shards.json"))
    args = ap.parse_args()

    from llmops.storage import LocalStore
    from llmops.versions import latest_for_partition, read_manifest

    home = Path(tempfile.mkdtemp(prefix="llmops-bench-shards-"))
    now = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    day = (now - timedelta(days=1)).date().isoformat()
    t0 = time.perf_counter()
    prepare(home, [day], args.docs)
    generated = round(time.perf_counter() - t0, 1)
    inputs = json.loads((home / "sample_manifest.json").read_text())
    total = int(inputs.get("records", args.docs))
    configs = {"one_worker": _config(home, "store1", 10 * total),
               # two shards: the raw version holds the landing records and ~15% more from the API
               "two_workers": _config(home, "store2", math.ceil(total * 1.2 / 2))}
    server, api_url = serve_folder(home / "api")
    env = airflow_env(home, free_port(), api_url)
    run([str(VENV_BIN / "airflow"), "db", "migrate"], env)
    apply_settings(env)
    af = Standalone(env)
    af.start()
    results: dict[str, Any] = {}
    try:
        af.wait_healthy()
        run([str(VENV_BIN / "airflow"), "dags", "reserialize"], env)
        api = af.client()
        # the first run takes the latest interval's logical date, so that unpausing creates no run of its own
        first = api.rest("POST", f"dags/{DAG}/dagRuns", {
            "dag_run_id": "bench__one_worker", "logical_date": f"{day}T00:00:00Z",
            "conf": {"config_path": str(configs["one_worker"]), "partition": day}})
        api.rest("PATCH", f"dags/{DAG}", {"is_paused": False})
        for name, run_id in (("one_worker", first["dag_run_id"]), ("two_workers", None)):
            if run_id is None:
                run_id = api.rest("POST", f"dags/{DAG}/dagRuns", {
                    "dag_run_id": f"bench__{name}", "logical_date": None,
                    "conf": {"config_path": str(configs[name]), "partition": day}})["dag_run_id"]
            state = _wait(api, run_id, 3600)
            results[name] = {"state": state["state"], **_times(api, run_id)}
            print(f"bench_shards: {name}: {results[name]}", flush=True)
    finally:
        af.stop()
        server.shutdown()

    manifests = {}
    for name, store in (("one_worker", "store1"), ("two_workers", "store2")):
        s = LocalStore(home / store)
        manifests[name] = read_manifest(s, "support_messages", "curated",
                                        latest_for_partition(s, "support_messages", "curated", day))
    same = ([f["sha256"] for f in manifests["one_worker"]["files"]]
            == [f["sha256"] for f in manifests["two_workers"]["files"]])
    counts = manifests["one_worker"]["counts"]
    one, two = results["one_worker"], results["two_workers"]
    per_core = counts["input"] / one["curation_s"]  # docs/s of one worker, load and merge included
    result = {
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "docs": counts["input"], "generated_s": generated, "counts": {k: counts[k] for k in (
            "input", "kept", "duplicates", "filtered", "quarantined")},
        "one_worker": one, "two_workers": two,
        "speedup": round(one["curation_s"] / two["curation_s"], 2),
        "same_data_files": same,
        "per_worker_docs_per_s": round(per_core, 1),
        "capacity": {
            "docs_per_day_per_worker": int(per_core * 86_400),
            "workers_for_10M_per_day": math.ceil(10_000_000 / (per_core * 86_400)),
            "workers_for_100M_per_day": math.ceil(100_000_000 / (per_core * 86_400)),
        },
    }
    import shutil

    shutil.rmtree(home, ignore_errors=True)
    if not same:
        print("bench_shards: the two curated versions differ", file=sys.stderr)
        write_result(args.out, result)
        return 1
    return write_result(args.out, result)


if __name__ == "__main__":
    raise SystemExit(main())
