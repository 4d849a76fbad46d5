"""One partition curated by 1 shard worker vs 2, under the real scheduler (LocalExecutor).

    python benchmarks/bench_shards.py [--docs 30000] [--repeats 3] [--out benchmarks/results/shards.json]

A seeded sample day of ``--docs`` support messages (the project's generator: five sources, PII,
duplicates, bad records) is collected and curated by ``llm_data_collection`` under ``airflow
standalone`` (SQLite, LocalExecutor, parallelism 4) in two configurations, each run in a fresh store,
alternating, ``--repeats`` times (the median run of each is reported, and every run is kept):

* baseline: ``curation.shard_rows`` above the day's size: one ``curate_shard`` task does it all;
* sharded: ``shard_bytes`` at half the text bytes of the day's raw version (from the baseline's): two
  ``curate_shard`` tasks of the same size run at once, one per core.

Both with ``pii.n_process: 1`` (one core per task) and the shipped config otherwise (quality gates
on). The figure is the curation's wall time: from the first ``curate_shard`` start to the end of
``dedup_merge`` (task times from the REST API); each task loads its own Presidio/spaCy pipelines,
which is part of the cost of spreading work over workers. The two curated versions must hold the
same data files (checked), and the capacity figures derive from the measured per-core rate. While
each run goes, the CPU seconds of every process under ``airflow standalone`` are sampled and summed
by kind (task processes, scheduler, DAG processor, API server, triggerer, ...), with the machine's
busy, idle and steal shares (``/proc/stat``; steal is time the hypervisor gave to other guests).
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


def _config(home: Path, store: str, shard_rows: int, shard_bytes: int | None = None) -> Path:
    import yaml

    cfg = yaml.safe_load((ROOT / "include/config/pipeline.yaml").read_text())
    cfg["storage"]["root"] = str(home / store)
    cfg["curation"]["shard_rows"] = shard_rows
    if shard_bytes is not None:
        cfg["curation"]["shard_bytes"] = shard_bytes
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


def _raw_text_bytes(store_root: Path, day: str) -> tuple[int, int]:
    """Rows and UTF-8 bytes of text of the day's raw version (the size of the work to split)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from llmops.storage import LocalStore
    from llmops.versions import latest_for_partition, read_manifest

    store = LocalStore(store_root)
    raw = read_manifest(store, "support_messages", "raw", latest_for_partition(store, "support_messages", "raw", day))
    prefix = f"datasets/support_messages/raw/versions/{raw['id']}"
    rows = size = 0
    for f in raw["files"]:
        text = pq.read_table(store.local_path(f"{prefix}/{f['path']}"), columns=["text"]).column("text")
        rows += len(text)
        size += int(pc.sum(pc.binary_length(pc.cast(text, "binary"))).as_py() or 0)
    return rows, size


def _category(cmdline: list[str]) -> str:
    """Which part of Airflow a process is, from its command line / process title."""
    text = " ".join(cmdline)
    for key, name in (("supervisor", "task supervisor"), ("airflow worker --", "task processes"),
                      ("scheduler", "scheduler"), ("dag-processor", "dag processor"), ("dag_processor", "dag processor"),
                      ("api-server", "api server"), ("api_server", "api server"), ("uvicorn", "api server"),
                      ("gunicorn", "api server"), ("triggerer", "triggerer"), ("standalone", "standalone"),
                      ("LocalExecutor", "executor worker")):
        if key in text:
            return name
    return "other airflow"


class CpuMeter:
    """CPU seconds (user + system) spent by each process under ``airflow standalone`` while a run is
    going, by kind of process: sampled every ``every`` seconds (a process that ends between two
    samples loses at most that much)."""

    def __init__(self, root_pid: int, every: float = 0.5) -> None:
        import threading

        self.root, self.every = root_pid, every
        self.first: dict[int, float] = {}
        self.last: dict[int, tuple[str, float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _sample(self) -> None:
        import psutil

        try:
            root = psutil.Process(self.root)
            procs = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return
        for p in procs:
            try:
                t = p.cpu_times()
                used = t.user + t.system
                name = _category(p.cmdline())  # again each time: a forked task sets its title after the fork
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            self.last[p.pid] = (name, used)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.every)

    @staticmethod
    def _machine() -> list[int]:
        """The machine's CPU time by state (jiffies: user nice system idle iowait irq softirq steal)."""
        with open("/proc/stat") as fh:
            return [int(x) for x in fh.readline().split()[1:9]]

    def machine_shares(self) -> dict[str, float]:
        """Shares of the machine's CPU time while the run went: busy, idle and steal (time the
        hypervisor gave to other guests: a noisy neighbour)."""
        d = [b - a for a, b in zip(self._m0, self._m1, strict=True)]
        total = max(1, sum(d))
        return {"busy": round((d[0] + d[1] + d[2] + d[5] + d[6]) / total, 3),
                "idle": round((d[3] + d[4]) / total, 3), "steal": round(d[7] / total, 3)}

    def __enter__(self) -> CpuMeter:
        self._m0 = self._machine()
        self._sample()  # what the processes alive at the start had used already is not counted
        self.first = {pid: used for pid, (_, used) in self.last.items()}
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()
        self._m1 = self._machine()

    def by_kind(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for pid, (name, used) in self.last.items():
            out[name] = out.get(name, 0.0) + used - self.first.get(pid, 0.0)
        return {k: round(v, 1) for k, v in sorted(out.items(), key=lambda kv: -kv[1])}


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
    ap.add_argument("--repeats", type=int, default=3,
                    help="runs of each configuration, alternating (the median run of each is reported)")
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
    split: dict[str, int] = {}
    server, api_url = serve_folder(home / "api")
    env = airflow_env(home, free_port(), api_url)
    run([str(VENV_BIN / "airflow"), "db", "migrate"], env)
    apply_settings(env)
    af = Standalone(env)
    af.start()
    reps: dict[str, list[dict[str, Any]]] = {"one_worker": [], "two_workers": []}
    try:
        af.wait_healthy()
        run([str(VENV_BIN / "airflow"), "dags", "reserialize"], env)
        api = af.client()
        unpaused = False
        # the two configurations alternate, each in a fresh store: a slow spell of the machine hits both
        for rep in range(args.repeats):
            for name in ("one_worker", "two_workers"):
                store = f"store{1 if name == 'one_worker' else 2}_{rep}"
                if name == "one_worker":
                    cfg_path = _config(home, store, 10 * total)
                else:  # two shards of the same size: cut at half the day's text bytes (the baseline's raw version)
                    split["raw_rows"], split["raw_text_bytes"] = _raw_text_bytes(home / f"store1_{rep}", day)
                    split["shard_bytes"] = math.ceil(split["raw_text_bytes"] / 2)
                    cfg_path = _config(home, store, 10 * total, split["shard_bytes"])
                body = {"dag_run_id": f"bench__{name}_{rep}", "conf": {"config_path": str(cfg_path), "partition": day},
                        # the first run takes the latest interval's logical date, so that unpausing creates no run
                        "logical_date": None if unpaused else f"{day}T00:00:00Z"}
                with CpuMeter(af.proc.pid) as meter:  # type: ignore[union-attr]
                    run_id = api.rest("POST", f"dags/{DAG}/dagRuns", body)["dag_run_id"]
                    if not unpaused:
                        api.rest("PATCH", f"dags/{DAG}", {"is_paused": False})
                        unpaused = True
                    state = _wait(api, run_id, 3600)
                got = {"state": state["state"], "store": store, **_times(api, run_id),
                       "cpu_s_by_process": meter.by_kind(), "machine_cpu": meter.machine_shares()}
                reps[name].append(got)
                print(f"bench_shards: {name} #{rep + 1}: {got}", flush=True)
    finally:
        af.stop()
        server.shutdown()

    hashes = []
    for name in ("one_worker", "two_workers"):
        for got in reps[name]:
            st = LocalStore(home / got["store"])
            m = read_manifest(st, "support_messages", "curated", latest_for_partition(st, "support_messages", "curated", day))
            hashes.append([f["sha256"] for f in m["files"]])
            counts = m["counts"]
    same = all(h == hashes[0] for h in hashes)

    def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
        return sorted(runs, key=lambda r: r["curation_s"])[len(runs) // 2]

    one, two = median_run(reps["one_worker"]), median_run(reps["two_workers"])
    per_core = counts["input"] / one["curation_s"]  # docs/s of one worker, load and merge included
    result = {
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "docs": counts["input"], "generated_s": generated, "counts": {k: counts[k] for k in (
            "input", "kept", "duplicates", "filtered", "quarantined")},
        "repeats": args.repeats, "one_worker": one, "two_workers": two, "split": split,
        "speedup": round(one["curation_s"] / two["curation_s"], 2),
        "speedups_by_repeat": [round(a["curation_s"] / b["curation_s"], 2)
                               for a, b in zip(reps["one_worker"], reps["two_workers"], strict=True)],
        "runs": reps,
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
