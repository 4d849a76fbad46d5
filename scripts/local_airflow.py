"""Run the project on a local, embedded Airflow: ``make demo`` and ``make up``.

    python scripts/local_airflow.py demo [--home DIR] [--days 3] [--max-steps N] [--keep-running]
    python scripts/local_airflow.py up   [--home DIR]

Both start ``airflow standalone`` (API server + UI, scheduler, DAG processor, triggerer;
SQLite metadata DB, LocalExecutor) in its own process group with the project's ``dags/`` and
``plugins/``, after generating the seeded sample corpus and starting a small local HTTP server
that plays the role of the support-ticket API. ``demo`` then backfills ``llm_data_collection``
over the sample days through the scheduler; each curated version triggers ``llm_annotation``
(asset schedule) on the local simulated crowd. Once every partition is labeled it runs
``llm_fine_tuning`` once on all of them (MiniLM, DeepSpeed ZeRO-2 on CPU, local MLflow store). It
waits for all runs and prints what was produced, and where the time went. Nothing is downloaded.
Once Airflow is up, the demo drives it through its REST API (``AirflowREST``), not the CLI.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import http.server
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
DAG_ID = "llm_data_collection"
ANNOTATION_DAG_ID = "llm_annotation"  # runs on the curated asset each collection run announces
FINE_TUNING_DAG_ID = "llm_fine_tuning"  # runs on the labeled asset; the demo triggers it once
EVALUATION_DAG_ID = "llm_evaluation"  # runs on the candidate-model asset fine-tuning announces
DRIFT_DAG_ID = "llm_drift_nightly"  # nightly cron; unpaused last, its latest night runs at once
POLL_S = 3.0  # between two looks at the runs (one REST call each, cheap)


def free_port(preferred: int | None = None) -> int:
    if preferred:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", preferred))
                return preferred
            except OSError:
                pass
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def serve_folder(folder: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    """Serve ``folder`` on 127.0.0.1 (the simulated support API); returns (server, base URL)."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def airflow_env(home: Path, port: int, api_url: str) -> dict[str, str]:
    af = home / "airflow"
    env = dict(os.environ)
    env.update(
        {
            "AIRFLOW_HOME": str(af),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{af}/airflow.db",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "True",
            "LLMOPS_HOME": str(home),
            "LLMOPS_PROJECT_DIR": str(ROOT),
            "LLMOPS_SUPPORT_API": api_url,
            "TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS": "",
            "HF_HUB_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "PYTHONWARNINGS": "ignore",
        }
    )
    return env


def run(cmd: list[str], env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(cmd, env=env, check=False, text=True, capture_output=True)
    if check and out.returncode:
        tail = "\n".join((out.stdout + out.stderr).strip().splitlines()[-15:])
        raise RuntimeError(f"{' '.join(cmd[1:4])} ... exited {out.returncode}:\n{tail}")
    return out


class AirflowRESTError(RuntimeError):
    """A non-2xx answer of Airflow's REST API; ``status`` is the HTTP status (0: no answer)."""

    def __init__(self, method: str, path: str, status: int, detail: str) -> None:
        super().__init__(f"{method} {path}: {status} {detail}")
        self.status, self.detail = status, detail


class AirflowREST:
    """A small client of Airflow's REST API (``{base}/api/v2``), standard library only.

    ``password`` is the password itself or a callable that returns it (read when a token is
    needed, e.g. from the file the simple auth manager generates once the API server is up). The
    bearer token comes from ``POST {base}/auth/token`` and is fetched again when it is refused
    (expired). 503 (SQLite busy), refused connections and failed GETs are retried a few times;
    other failures raise :class:`AirflowRESTError`."""

    def __init__(self, base: str, username: str, password: str | Callable[[], str], *,
                 timeout: float = 60, retries: int = 3) -> None:
        self.base = base.rstrip("/")
        self.username = username
        self._password = password
        self.timeout = timeout
        self.retries = retries
        self._token: str | None = None

    @property
    def password(self) -> str:
        return self._password() if callable(self._password) else self._password

    def token(self, refresh: bool = False) -> str:
        if self._token is None or refresh:
            body = {"username": self.username, "password": self.password}
            self._token = str(self._request("POST", f"{self.base}/auth/token", body, {})["access_token"])
        return self._token

    def rest(self, method: str, path: str, body: Any = None) -> Any:
        """``method`` ``{base}/api/v2/{path}`` with a JSON ``body``; the decoded JSON answer (None if empty)."""
        url = f"{self.base}/api/v2/{path.lstrip('/').removeprefix('api/v2/')}"
        try:
            return self._request(method, url, body, {"Authorization": f"Bearer {self.token()}"})
        except AirflowRESTError as exc:
            if exc.status != 401:
                raise
        return self._request(method, url, body, {"Authorization": f"Bearer {self.token(refresh=True)}"})

    def _request(self, method: str, url: str, body: Any, headers: dict[str, str]) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        path = url.removeprefix(self.base)
        err = AirflowRESTError(method, path, 0, "not sent")
        for attempt in range(self.retries + 1):
            req = urllib.request.Request(url, data=data, method=method,
                                         headers={"Content-Type": "application/json", "Accept": "application/json",
                                                  **headers})
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    raw = resp.read()
                return json.loads(raw) if raw else None
            except urllib.error.HTTPError as exc:
                text = exc.read().decode(errors="replace")
                try:
                    detail = json.loads(text).get("detail", text)
                except (ValueError, AttributeError):
                    detail = text
                err = AirflowRESTError(method, path, exc.code, detail if isinstance(detail, str) else json.dumps(detail))
                if exc.code != 503:
                    raise err from None
            except (urllib.error.URLError, ConnectionError) as exc:
                reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
                err = AirflowRESTError(method, path, 0, str(reason))
                # sent again only if it cannot have been applied: refused, or a read
                if not (isinstance(reason, ConnectionRefusedError) or (
                        method == "GET" and isinstance(reason, ConnectionError))):
                    raise err from None
            if attempt < self.retries:
                time.sleep(1 + attempt)
        raise err


def simple_auth_password(airflow_home: Path, username: str = "admin") -> str:
    """The password the simple auth manager generated for ``username`` (``airflow standalone``)."""
    path = airflow_home / "simple_auth_manager_passwords.json.generated"
    return str(json.loads(path.read_text())[username])


def group_members(pgid: int) -> list[tuple[int, str]]:
    """``(pid, program)`` of the live processes of process group ``pgid`` (from /proc; zombies,
    which are already dead, are left out)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            fields = stat[stat.rindex(")") + 2:].split()
            if int(fields[2]) != pgid or fields[0] == "Z":
                continue
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError, IndexError):
            continue  # exited meanwhile
        words = [a.decode(errors="replace") for a in argv if a]
        if words and Path(words[0]).name.startswith("python") and len(words) > 1:
            words = words[1:]  # python /path/to/airflow scheduler -> airflow scheduler
        program = " ".join([Path(words[0]).name, *words[1:2]]) if words else stat[stat.index("(") + 1:stat.rindex(")")]
        out.append((int(entry.name), program))
    return out


class Standalone:
    """``airflow standalone`` in its own process group, stopped as a whole."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.log_path = Path(env["AIRFLOW_HOME"]) / "standalone.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.base = env["AIRFLOW__API__BASE_URL"]

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen([str(VENV_BIN / "airflow"), "standalone"], env=self.env,
                                     stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def wait_healthy(self, timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"airflow standalone exited ({self.proc.returncode}); see {self.log_path}")
            try:
                with urllib.request.urlopen(f"{self.base}/api/v2/monitor/health", timeout=5) as resp:
                    health = json.load(resp)
                states = {k: (v or {}).get("status") for k, v in health.items()}
                last = str(states)
                if all(states.get(k) == "healthy" for k in ("metadatabase", "scheduler", "dag_processor")):
                    return
            except (urllib.error.URLError, OSError, ValueError):
                pass
            time.sleep(2)
        raise TimeoutError(f"Airflow not healthy after {timeout:.0f}s (last: {last}); see {self.log_path}")

    def stop(self, grace: float = 7.0) -> str | None:
        """Stop ``airflow standalone``'s whole process group (its scheduler, API server, triggerer,
        DAG processor and their workers): SIGTERM, then SIGKILL for whatever still runs after
        ``grace`` seconds – done within 10 s, also when the user presses Ctrl-C again meanwhile.
        Prints and returns what was stopped (None: nothing was running)."""
        if self.proc is None:
            return None
        pgid = self.proc.pid
        members = group_members(pgid)
        if not members:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=1)
            return None
        try:  # a second Ctrl-C must not cut the clean-up short and leave the group behind
            previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        except ValueError:  # not the main thread
            previous = None
        t0 = time.monotonic()
        killed = 0
        try:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGTERM)
            while time.monotonic() - t0 < grace and group_members(pgid):
                self.proc.poll()  # reap the leader as soon as it exits
                time.sleep(0.2)
            left = group_members(pgid)
            if left:
                killed = len(left)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pgid, signal.SIGKILL)
                while time.monotonic() - t0 < grace + 2.5 and group_members(pgid):
                    self.proc.poll()
                    time.sleep(0.1)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=1)
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)
        names = sorted({name for _, name in members})
        message = (f"stopped airflow standalone: process group {pgid}, {len(members)} processes "
                   f"({', '.join(names)}) in {time.monotonic() - t0:.1f}s"
                   + (f"; {killed} did not exit on SIGTERM within {grace:.0f}s and were killed" if killed else ""))
        print(message, flush=True)
        return message

    def password(self) -> str:
        home = Path(self.env["AIRFLOW_HOME"])
        try:
            return simple_auth_password(home)
        except (OSError, ValueError, KeyError):
            return f"(see {home / 'simple_auth_manager_passwords.json.generated'})"

    def client(self) -> AirflowREST:
        """A REST client of this standalone's API server, as the admin user."""
        return AirflowREST(self.base, "admin", functools.partial(simple_auth_password, Path(self.env["AIRFLOW_HOME"])))


def sample_days(n: int, today: date | None = None) -> list[str]:
    """The last ``n`` complete days (the partitions a daily DAG has data for)."""
    today = today or datetime.now(UTC).date()
    return [(today - timedelta(days=i)).isoformat() for i in range(n, 0, -1)]


def _next_day(day: str) -> str:
    return (date.fromisoformat(day) + timedelta(days=1)).isoformat()


def prepare(home: Path, days: list[str], records_per_day: int) -> None:
    sys.path.insert(0, str(ROOT / "include"))
    from llmops.sampledata import generate

    marker = home / "sample_manifest.json"
    if not marker.exists() or json.loads(marker.read_text()).get("days") != days:
        generate(home, seed=0, records_per_day=records_per_day, days=tuple(days))


def list_runs(api: AirflowREST, dag_id: str = DAG_ID) -> list[dict[str, Any]]:
    """The DAG's runs, newest first, with the keys ``airflow dags list-runs -o json`` gives (``run_id``,
    ``state``, ``logical_date`` ("" when none), ...); [] when the API does not answer."""
    try:
        got = api.rest("GET", f"dags/{quote(dag_id, safe='')}/dagRuns?limit=100&order_by=-run_after")
    except (AirflowRESTError, OSError, ValueError) as exc:
        print(f"demo: listing the runs of {dag_id} failed ({str(exc)[:160]})")
        return []
    return [{"dag_id": r.get("dag_id"), "run_id": r.get("dag_run_id"), "state": r.get("state"),
             "run_after": r.get("run_after") or "", "logical_date": r.get("logical_date") or "",
             "start_date": r.get("start_date") or "", "end_date": r.get("end_date") or ""}
            for r in (got or {}).get("dag_runs", [])]


def unpause(api: AirflowREST, dag_id: str) -> None:
    api.rest("PATCH", f"dags/{quote(dag_id, safe='')}", {"is_paused": False})


def wait_scheduled(api: AirflowREST, dag_id: str, timeout: float = 90) -> bool:
    """Wait until the scheduler has created the runs that were due when ``dag_id`` was unpaused (with
    ``catchup=False``: its latest interval's), i.e. its next run lies in the future. A backfill that
    creates a run for the same logical date while the scheduler does makes the scheduler's insert
    fail (UNIQUE dag_run.dag_id, logical_date) and the scheduler exit. False if it did not happen."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(AirflowRESTError, OSError, ValueError):
            nxt = api.rest("GET", f"dags/{quote(dag_id, safe='')}").get("next_dagrun_run_after")
            if nxt is None or datetime.fromisoformat(nxt) > datetime.now(UTC):
                return True
        time.sleep(1)
    return False


def trigger(api: AirflowREST, dag_id: str, conf: dict[str, Any] | None = None) -> str:
    """A manual run of ``dag_id`` (no logical date, like ``airflow dags trigger``); its run id."""
    got = api.rest("POST", f"dags/{quote(dag_id, safe='')}/dagRuns", {"logical_date": None, "conf": conf or {}})
    return str(got["dag_run_id"])


def backfill(api: AirflowREST, dag_id: str, from_date: str, to_date: str) -> dict[str, Any]:
    """``airflow backfill create --dag-id D --from-date F --to-date T`` with the CLI's defaults: runs
    that already exist for a date are left as they are (reprocess ``none``), at most 10 active runs."""
    body = {"dag_id": dag_id, "from_date": f"{from_date}T00:00:00Z", "to_date": f"{to_date}T00:00:00Z",
            "run_backwards": False, "dag_run_conf": None, "reprocess_behavior": "none", "max_active_runs": 10}
    return dict(api.rest("POST", "backfills", body))


def summarize(home: Path, days: list[str]) -> list[dict[str, Any]]:
    sys.path.insert(0, str(ROOT / "include"))
    from llmops.storage import LocalStore
    from llmops.versions import latest_for_partition, read_manifest

    store = LocalStore(home / "store")
    rows = []
    for day in days:
        vid = latest_for_partition(store, "support_messages", "curated", day)
        if vid is None:
            rows.append({"partition": day, "version_id": None})
            continue
        m = read_manifest(store, "support_messages", "curated", vid)
        raw_counts = m.get("upstream_counts", {}).get(m["parents"][0]) if m["parents"] else None
        row = {"partition": day, "version_id": vid, "parents": m["parents"], "counts": m["counts"],
               "raw_counts": raw_counts, "validations": m.get("validations", []),
               "pii": m["pii"], "path": str(store.local_path(f"datasets/support_messages/curated/versions/{vid}"))}
        lid = latest_for_partition(store, "support_messages", "labeled", day)
        if lid is not None:
            lm = read_manifest(store, "support_messages", "labeled", lid)
            ann = lm["annotation"]
            row["labeled"] = {"version_id": lid, "parents": lm["parents"], "counts": lm["counts"],
                              "hits": len(ann["hits"]), "assignments": ann["assignments"],
                              "blocked_workers": len(ann["blocked_workers"]), "gold": ann["gold"],
                              "alpha": ann["aggregation"]["krippendorff_alpha"],
                              "labels": ann["label_distribution"], "cost_usd": ann["cost_usd"],
                              "path": str(store.local_path(f"datasets/support_messages/labeled/versions/{lid}"))}
        rows.append(row)
    return rows


def queued_events(api: AirflowREST, dag_id: str) -> int:
    """Asset events queued for ``dag_id`` that no run has consumed yet (a run the scheduler defers
    while the DAG is at ``max_active_runs`` exists only as these); 0 when the API does not answer."""
    try:
        got = api.rest("GET", f"dags/{quote(dag_id, safe='')}/assets/queuedEvents")
    except (AirflowRESTError, OSError, ValueError) as exc:
        print(f"demo: listing the queued asset events of {dag_id} failed ({str(exc)[:160]})")
        return 0
    return int((got or {}).get("total_entries", 0))


def wait_for_labels(api: AirflowREST, home: Path, days: list[str], deadline: float) -> dict[str, str]:
    """Wait until every partition has a labeled version (the asset-triggered runs of the annotation
    DAG may batch several curated versions into one run) and no annotation run is unfinished, or
    until one failed."""
    sys.path.insert(0, str(ROOT / "include"))
    from llmops.storage import LocalStore
    from llmops.versions import latest_for_partition

    store = LocalStore(home / "store")
    states: dict[str, str] = {}
    while time.monotonic() < deadline:
        states = {str(r["run_id"]): str(r.get("state")) for r in list_runs(api, ANNOTATION_DAG_ID)}
        finished = bool(states) and all(v in ("success", "failed") for v in states.values())
        # an asset-triggered run deferred while another run is active is not listed yet: its events are
        finished = finished and queued_events(api, ANNOTATION_DAG_ID) == 0
        missing = [d for d in days if not latest_for_partition(store, "support_messages", "labeled", d)]
        # nothing is triggered from here: each run labels every curated version not labeled yet, and
        # its catch_up task starts one more run for versions published while it was busy
        if finished and (not missing or "failed" in states.values()):
            break
        time.sleep(POLL_S)
    return states


def apply_settings(env: dict[str, str]) -> None:
    """``airflow_settings.yaml`` (the Astro format: connections, pools such as ``gpu``, variables)."""
    run([sys.executable, str(ROOT / "scripts" / "apply_airflow_settings.py"), str(ROOT / "airflow_settings.yaml")], env)


def wait_for_fine_tuning(api: AirflowREST, deadline: float, max_steps: int | None = None) -> dict[str, str]:
    """Trigger ``llm_fine_tuning`` once on every labeled partition (``max_steps``: its param, else the
    config's) and wait for it and for the ``llm_evaluation`` run its candidate-model event starts."""
    unpause(api, EVALUATION_DAG_ID)
    unpause(api, FINE_TUNING_DAG_ID)
    trigger(api, FINE_TUNING_DAG_ID, {"max_steps": max_steps} if max_steps is not None else None)
    states: dict[str, str] = {}
    while time.monotonic() < deadline:
        ft = {str(r["run_id"]): str(r.get("state")) for r in list_runs(api, FINE_TUNING_DAG_ID)}
        ev = {str(r["run_id"]): str(r.get("state")) for r in list_runs(api, EVALUATION_DAG_ID)}
        states = {f"{FINE_TUNING_DAG_ID}/{k}": v for k, v in ft.items()} | {
            f"{EVALUATION_DAG_ID}/{k}": v for k, v in ev.items()}
        done = {"success", "failed"}
        if ft and all(v in done for v in ft.values()) and ("failed" in ft.values() or (
                ev and all(v in done for v in ev.values()))):
            break
        time.sleep(POLL_S)
    return states


def wait_for_drift(api: AirflowREST, home: Path, deadline: float, night: str) -> dict[str, Any]:
    """Unpause ``llm_drift_nightly``: the scheduler starts its latest nightly run, whose night is
    the day before its cron's latest time. Wait for it; return its state and the report of ``night``
    (the last sample day). Before the cron's time of day (``drift.schedule``, 02:00 UTC) the latest
    run is the night before ``night``, which has no data: then ``night`` is run by hand (the DAG's
    ``night`` param), as a user catching up on a night would."""
    unpause(api, DRIFT_DAG_ID)

    def settle() -> list[dict[str, Any]]:
        runs: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            runs = list_runs(api, DRIFT_DAG_ID)
            if runs and all(r.get("state") in ("success", "failed") for r in runs):
                break
            time.sleep(POLL_S)
        return runs

    runs = settle()
    if runs and not list((home / "store").glob(f"drift/*/{night}/report.json")):
        print(f"demo: the scheduler's latest {DRIFT_DAG_ID} night is before {night} (its cron has not reached "
              f"today's time yet); triggering night {night}")
        trigger(api, DRIFT_DAG_ID, {"night": night})
        runs = settle()
    out: dict[str, Any] = {"runs": {str(r["run_id"]): str(r.get("state")) for r in runs}, "report": None}
    reports = sorted((home / "store").glob(f"drift/*/{night}/report.json"))
    if reports:
        rep = json.loads(reports[-1].read_text())
        out["report"] = {"night": rep["night"], "drift": rep["drift"], "breaches": [b["check"] for b in rep["breaches"]],
                         "drifted_slices": rep["drifted_slices"], "html": str(reports[-1].with_name("report.html")),
                         "documents": [rep["reference_documents"], rep["current_documents"]],
                         "golden": {k: v["value"] for k, v in rep["performance"]["suites"].items()}}
    return out


def registered_models(home: Path, name: str = "support-intent") -> list[dict[str, Any]]:
    """The registry versions of ``name`` in the local MLflow store, with their training metrics."""
    db = home / "mlflow" / "mlflow.db"
    if not db.exists():
        return []
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{db}")
    out = []
    for mv in client.search_model_versions(f"name = '{name}'"):
        run = client.get_run(mv.run_id)
        m = run.data.metrics
        out.append({"name": name, "version": str(mv.version), "run_id": mv.run_id, "candidate": mv.tags.get(
            "llmops.candidate"), "dataset_versions": mv.tags.get("llmops.dataset_versions", "").split(","),
            "steps": int(run.data.params.get("train.max_steps", 0)),
            "base_model": run.data.params.get("model.name_or_path"),
            "zero_stage": run.data.params.get("deepspeed.zero_optimization.stage"),
            "eval_accuracy": m.get("eval/accuracy"), "eval_macro_f1": m.get("eval/macro_f1"),
            "eval_loss": m.get("eval/loss"), "tokens_per_s": statistics.median(
                [x.value for x in client.get_metric_history(mv.run_id, "perf/tokens_per_s")] or [0.0]),
            "experiment_id": run.info.experiment_id,
            "aliases": sorted(client.get_model_version(name, mv.version).aliases),  # search omits aliases
            "decision": mv.tags.get("eval.support_intents.decision"),
            "golden_macro_f1": mv.tags.get("eval.support_intents.macro_f1"),
            "eval_run_id": mv.tags.get("eval.support_intents.run_id")})
    return sorted(out, key=lambda r: int(r["version"]))


def eval_metrics(home: Path, run_id: str | None) -> dict[str, float]:
    if not run_id:
        return {}
    from mlflow import MlflowClient

    return dict(MlflowClient(tracking_uri=f"sqlite:///{home / 'mlflow' / 'mlflow.db'}").get_run(run_id).data.metrics)


def start_local(args: argparse.Namespace, label: str) -> tuple[Path, list[str], Any, dict[str, str], Standalone]:
    """Sample corpus, the simulated support API and a healthy `airflow standalone` with the DAGs loaded."""
    home = Path(args.home).resolve()
    days = sample_days(args.days)
    print(f"{label}: sample corpus for {days[0]} .. {days[-1]} in {home}")
    prepare(home, days, args.records_per_day)
    server, api_url = serve_folder(home / "api")
    env = airflow_env(home, free_port(args.port), api_url)
    run([str(VENV_BIN / "airflow"), "db", "migrate"], env)
    apply_settings(env)
    af = Standalone(env)
    print(f"{label}: starting Airflow (standalone, SQLite, LocalExecutor) on {af.base}")
    af.start()
    try:
        af.wait_healthy()
        run([str(VENV_BIN / "airflow"), "dags", "reserialize"], env)
    except BaseException:
        af.stop()
        server.shutdown()
        raise
    return home, days, server, env, af


def demo(args: argparse.Namespace) -> int:
    t0 = time.monotonic()
    timings: dict[str, float] = {}
    lap = [t0]

    def phase(name: str) -> None:  # seconds since the previous phase ended
        now = time.monotonic()
        timings[name] = round(now - lap[0], 1)
        lap[0] = now

    home, days, server, env, af = start_local(args, "demo")
    try:
        api = af.client()
        unpause(api, DAG_ID)
        unpause(api, ANNOTATION_DAG_ID)
        if not wait_scheduled(api, DAG_ID):
            print(f"demo: the scheduler has not created {DAG_ID}'s latest run yet; backfilling anyway")
        phase("start_up")
        print(f"demo: backfilling {DAG_ID} for {days[0]} .. {days[-1]} through the scheduler")
        # the window covers whole data intervals: day D is the interval [D, D+1), so the window
        # ends the day after the last partition. Runs that already exist (the scheduler's own
        # latest run) are left as they are.
        settle = time.monotonic() + 60  # the DAG may still be settling in the DB right after start-up
        while True:
            try:
                backfill(api, DAG_ID, days[0], _next_day(days[-1]))
                break
            except AirflowRESTError as exc:
                if time.monotonic() >= settle:
                    raise
                print(f"demo: backfill not accepted yet ({str(exc)[:160]}); retrying")
                time.sleep(5)
        deadline = time.monotonic() + args.timeout
        wanted = set(days)
        runs: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            runs = [r for r in list_runs(api) if str(r.get("logical_date", ""))[:10] in wanted]
            done = {str(r["logical_date"])[:10] for r in runs if r.get("state") in ("success", "failed")}
            if done >= wanted:
                break
            time.sleep(POLL_S)
        states = {str(r["logical_date"])[:10]: r.get("state") for r in runs}
        print(f"demo: runs {json.dumps(states, sort_keys=True)}")
        phase("collection")
        print(f"demo: waiting for {ANNOTATION_DAG_ID} (triggered by the curated asset; local simulated crowd)")
        ann_states = wait_for_labels(api, home, days, deadline)
        print(f"demo: {ANNOTATION_DAG_ID} runs {json.dumps(sorted(ann_states.values()))}")
        phase("annotation")
        ft_states: dict[str, str] = {}
        if ann_states and set(ann_states.values()) == {"success"}:
            print(f"demo: triggering {FINE_TUNING_DAG_ID} on every labeled partition (in production it runs on "
                  "the labeled asset): MiniLM, DeepSpeed ZeRO-2 on CPU; its candidate event starts "
                  f"{EVALUATION_DAG_ID}")
            ft_states = wait_for_fine_tuning(api, deadline, args.max_steps)
            print(f"demo: {FINE_TUNING_DAG_ID} and {EVALUATION_DAG_ID} runs {json.dumps(ft_states, sort_keys=True)}")
        phase("fine_tuning_evaluation")
        drift: dict[str, Any] = {"runs": {}, "report": None}
        if ft_states and set(ft_states.values()) == {"success"}:
            print(f"demo: unpausing {DRIFT_DAG_ID}: the scheduler runs its latest night against the champion")
            drift = wait_for_drift(api, home, deadline, days[-1])
            print(f"demo: {DRIFT_DAG_ID} runs {json.dumps(sorted(drift['runs'].values()))}")
        phase("drift")
        summary = summarize(home, days)
        for row in summary:
            if row["version_id"] is None:
                print(f"  {row['partition']}: no curated version")
                continue
            c = row["counts"]
            raw = row["raw_counts"]
            bad = ", ".join(f"{k} {v}" for k, v in raw["by_reason"]["quarantined"].items()) or "none"
            print(f"  {row['partition']}: collected {raw['input']} records into {row['parents'][0]}, "
                  f"{raw['quarantined']} quarantined ({bad})")
            print(f"  {'':10}  curated {row['version_id']}: {c['input']} = kept {c['kept']} + duplicates "
                  f"{c['duplicates']} + filtered {c['filtered']} + quarantined {c['quarantined']}; "
                  f"PII redacted {sum(row['pii']['entities'].values())} ({len(row['pii']['entities'])} types)")
            for v in row["validations"]:
                state = "passed" if v["success"] else f"{v['failed_expectations']} failed"
                print(f"  {'':10}  quality gate {v['suite']} ({v['policy']}): {state}, "
                      f"{v.get('quarantined_rows', 0)} rows quarantined; Data Docs {row['path']}/{v.get('data_docs')}")
            lab = row.get("labeled")
            if lab:
                lc, asg = lab["counts"], lab["assignments"]
                print(f"  {'':10}  labeled {lab['version_id']}: {lc['kept']} of {lc['input']} items labeled "
                      f"(Dawid-Skene) from {lab['hits']} HITs, {asg['submitted']} assignments ({asg['approved']} "
                      f"approved, {asg['rejected']} rejected on gold), {lab['blocked_workers']} workers blocked; "
                      f"gold accuracy {lab['gold']['accuracy']}, alpha {lab['alpha']}; simulated cost "
                      f"${lab['cost_usd']['approved_rewards_and_fees']}")
                print(f"  {'':10}  labels {json.dumps(lab['labels'])}; exports {lab['path']}/exports/")
        models = registered_models(home)
        for mv in models:
            acc = f"{mv['eval_accuracy']:.2f}" if mv["eval_accuracy"] is not None else "n/a"
            f1 = f"{mv['eval_macro_f1']:.2f}" if mv["eval_macro_f1"] is not None else "n/a"
            tps = f"{mv['tokens_per_s']:.0f}" if mv["tokens_per_s"] else "n/a"
            print(f"  model {mv['name']} version {mv['version']} ({mv['candidate']}): {mv['steps']} steps with "
                  f"DeepSpeed ZeRO-{mv['zero_stage']} on {len(mv['dataset_versions'])} labeled versions; "
                  f"validation accuracy {acc}, macro-F1 {f1}; median {tps} tokens/s; MLflow run {mv['run_id']}")
            if mv["decision"]:
                ev = eval_metrics(home, mv["eval_run_id"])
                ci = f" (95% CI {ev.get('macro_f1_ci_low', 0):.2f}..{ev.get('macro_f1_ci_high', 0):.2f})" if ev else ""
                print(f"  {'':10}  {EVALUATION_DAG_ID}: golden macro-F1 {mv['golden_macro_f1']}{ci}; gate "
                      f"{mv['decision'].upper()}; aliases {mv['aliases'] or 'none'}; report: MLflow run "
                      f"{mv['eval_run_id']} evaluation/report.html")
        rep = drift.get("report")
        if rep:
            verdict = (f"DRIFT ({', '.join(rep['breaches'])}; slices {', '.join(rep['drifted_slices']) or 'none'})"
                       if rep["drift"] else "no drift")
            print(f"  drift night {rep['night']}: {verdict}; {rep['documents'][1]} documents vs "
                  f"{rep['documents'][0]} of the champion's training data; golden {json.dumps(rep['golden'])}")
            print(f"  {'':10}  report {rep['html']}")
        pia = home / "privacy_impact_assessment.html"  # from the config and the manifests just written
        config = str(ROOT / "include" / "config" / "pipeline.yaml")
        run([str(VENV_BIN / "llmops"), "pia", "--config", config, "--out", str(pia)], af.env, check=False)
        audit = run([str(VENV_BIN / "llmops"), "audit", "--config", config, "--json"], af.env, check=False)
        events = json.loads(audit.stdout) if audit.returncode == 0 else []
        print(f"  privacy: impact assessment {pia}; audit trail: "
              + (", ".join(f"{e} {n}" for e, n in sorted(Counter(ev["event"] for ev in events).items())) or "empty")
              + " (llmops audit)")
        if models:
            print(f"demo: MLflow: {VENV_BIN / 'mlflow'} ui --backend-store-uri sqlite:///{home / 'mlflow' / 'mlflow.db'}")
        print(f"demo: dataset versions under {home / 'store' / 'datasets'}")
        print(f"demo: Airflow UI {af.base} (user admin, password {af.password()}); logs {af.log_path}")
        phase("summary")
        timings["total"] = round(time.monotonic() - t0, 1)
        (home / "demo_summary.json").write_text(json.dumps(
            {"runs": states, "annotation_runs": ann_states, "fine_tuning_runs": ft_states, "versions": summary,
             "models": models, "drift": drift, "pia": str(pia) if pia.exists() else None,
             "audit_events": [{k: ev[k] for k in ("event", "key", "at")} for ev in events], "timings": timings},
            indent=2))
        ok = all(states.get(d) == "success" for d in days) and all(r["version_id"] for r in summary)
        ok = ok and bool(ann_states) and set(ann_states.values()) == {"success"} and all(r.get("labeled") for r in summary)
        ok = ok and bool(ft_states) and set(ft_states.values()) == {"success"} and len(models) == 1
        ok = ok and any(k.startswith(EVALUATION_DAG_ID) for k in ft_states)
        ok = ok and bool(drift["runs"]) and set(drift["runs"].values()) == {"success"} and bool(drift["report"])
        print(f"demo: timings {json.dumps(timings)}")
        print(f"demo: {'OK' if ok else 'FAILED'} in {time.monotonic() - t0:.0f}s")
        if args.keep_running and ok:
            print("demo: Airflow keeps running; Ctrl-C to stop")
            with contextlib.suppress(KeyboardInterrupt):
                af.proc.wait()  # type: ignore[union-attr]
        return 0 if ok else 1
    finally:
        af.stop()
        server.shutdown()


def up(args: argparse.Namespace) -> int:
    home, days, server, env, af = start_local(args, "up")
    try:
        print(f"Airflow UI: {af.base}  user: admin  password: {af.password()}")
        print(f"LLMOPS_HOME={home}; sample partitions {days[0]} .. {days[-1]}; Ctrl-C to stop", flush=True)
        try:
            af.proc.wait()  # type: ignore[union-attr]
        except KeyboardInterrupt:
            print("up: Ctrl-C, stopping Airflow", flush=True)
    finally:
        af.stop()
        server.shutdown()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    for name, fn in (("demo", demo), ("up", up)):
        p = sub.add_parser(name)
        p.add_argument("--home", default=os.environ.get("LLMOPS_HOME", str(ROOT / ".llmops")))
        p.add_argument("--days", type=int, default=3)
        p.add_argument("--records-per-day", type=int, default=200)
        p.add_argument("--port", type=int, default=8080)
        p.add_argument("--timeout", type=float, default=900)
        p.add_argument("--keep-running", action="store_true")
        if name == "demo":
            p.add_argument("--max-steps", type=int, default=None,
                           help=f"max_steps of the {FINE_TUNING_DAG_ID} run (default: the config's)")
        p.set_defaults(func=fn)
    args = parser.parse_args(argv)
    # a terminated demo still stops Airflow's whole process group (the `finally` blocks); SIGINT
    # stops it too, also when a shell started the script in the background (which ignores SIGINT)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
