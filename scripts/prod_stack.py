"""The production topology on one machine, without containers: Airflow on PostgreSQL with the
CeleryExecutor (Redis broker), an MLflow tracking server (PostgreSQL backend, artifacts in S3)
and a real S3 server (SeaweedFS), each a separate process, as ``docker/docker-compose.yml``
runs them in containers.

    python scripts/prod_stack.py up [--home DIR]     # start everything, print the URLs, Ctrl-C stops

It needs a PostgreSQL server (``--postgres``, default ``postgresql://postgres@127.0.0.1:5432``)
and a Redis server (``--redis``, default ``redis://127.0.0.1:6379``). It creates its own two
databases and uses one empty Redis database index; ``stop()`` drops the databases and empties
that index again, so the servers are left as they were found. Every component runs in its own
process group, so one can be killed and restarted (what the end-to-end test does to the
scheduler and a Celery worker mid-chain).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from local_airflow import ROOT, VENV_BIN, free_port, serve_folder

BUCKET = "llmops"
STORE_CONN_ID = "llmops_store"
ADMIN = "admin"


@dataclass
class Component:
    """One server process in its own process group, with its log file."""

    name: str
    cmd: list[str]
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as fh:
            fh.write(f"\n--- start {time.strftime('%H:%M:%S')}: {' '.join(self.cmd[:4])}\n".encode())
            self.proc = subprocess.Popen(self.cmd, env=self.env, stdout=fh, stderr=subprocess.STDOUT,
                                         start_new_session=True, cwd=str(ROOT))

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL the whole process group, task processes and launched trainings included (a lost node)."""
        if self.proc is None:
            return
        pgid = self.proc.pid
        _kill_tree(pgid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)

    def stop(self, timeout: float = 20) -> None:
        if not self.alive():
            self.kill()  # also reaps children left behind by an exited leader
            return
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        self.kill()

    def tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


def _kill_tree(pid: int, sig: int) -> None:
    """Signal every descendant of ``pid`` (a training started in its own session included)."""
    try:
        import psutil
    except ImportError:
        return
    with contextlib.suppress(psutil.Error):
        for child in psutil.Process(pid).children(recursive=True):
            with contextlib.suppress(psutil.Error):
                child.send_signal(sig)


def _wait_http(url: str, timeout: float, ok: Any = None, comp: Component | None = None) -> Any:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if comp is not None and comp.proc is not None and comp.proc.poll() is not None:
            raise RuntimeError(f"{comp.name} exited ({comp.proc.returncode}):\n{comp.tail()}")
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                body = resp.read()
            value = json.loads(body) if body[:1] in (b"{", b"[") else body
            if ok is None or ok(value):
                return value
            last = str(value)[:300]
        except (urllib.error.URLError, OSError, ValueError) as exc:
            last = str(exc)
        time.sleep(1)
    tail = f"\n{comp.tail()}" if comp is not None else ""
    raise TimeoutError(f"{url} not ready after {timeout:.0f}s (last: {last}){tail}")


def _merge(base: dict[str, Any], changes: dict[str, Any]) -> None:
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


def _fernet_key() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()


@dataclass
class ProdStack:
    home: Path
    postgres: str = "postgresql://postgres@127.0.0.1:5432"
    redis: str = "redis://127.0.0.1:6379"
    prefix: str = field(default_factory=lambda: f"llmops_{os.getpid()}_{secrets.token_hex(3)}")
    components: dict[str, Component] = field(default_factory=dict)
    extra_dag_folders: list[Path] = field(default_factory=list)
    extra_env: dict[str, str] = field(default_factory=dict)
    #: merged into the pipeline config the stack writes (section -> key -> value, nested dicts merged)
    config_overrides: dict[str, Any] = field(default_factory=dict)
    #: schedulers running at once (high availability: they share the work through row locks in PostgreSQL)
    schedulers: int = 1
    redis_db: int | None = None
    created_dbs: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.home = Path(self.home).resolve()
        self.logs = self.home / "logs"
        self.s3_key = "llmops" + secrets.token_hex(4)
        self.s3_secret = secrets.token_urlsafe(24)
        self.admin_password = secrets.token_urlsafe(12)
        self.fernet_key = _fernet_key()
        self.api_port = free_port()
        self.mlflow_port = free_port()
        self.s3_port = free_port()
        self.api = f"http://127.0.0.1:{self.api_port}"
        self.mlflow = f"http://127.0.0.1:{self.mlflow_port}"
        self.s3 = f"http://127.0.0.1:{self.s3_port}"
        self.airflow_db = f"{self.prefix}_airflow"
        self.mlflow_db = f"{self.prefix}_mlflow"
        self._support_api: Any = None
        self.support_api_url = ""

    # -- shared services: own databases, own Redis index ------------------------------------------
    def _pg(self, db: str = "postgres") -> Any:
        import psycopg2

        conn = psycopg2.connect(f"{self.postgres}/{db}")
        conn.autocommit = True
        return conn

    def _create_databases(self) -> None:
        with contextlib.closing(self._pg()) as conn, conn.cursor() as cur:
            for db in (self.airflow_db, self.mlflow_db):
                cur.execute(f'CREATE DATABASE "{db}"')
                self.created_dbs.append(db)

    def _drop_databases(self) -> None:
        with contextlib.closing(self._pg()) as conn, conn.cursor() as cur:
            for db in list(self.created_dbs):
                cur.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
                self.created_dbs.remove(db)

    def _claim_redis_db(self) -> int:
        """The highest empty database index (0 is left to other users)."""
        import redis

        for index in range(15, 0, -1):
            if redis.Redis.from_url(f"{self.redis}/{index}").dbsize() == 0:
                return index
        raise RuntimeError(f"no empty Redis database index on {self.redis}")

    def _release_redis_db(self) -> None:
        import redis

        if self.redis_db is not None:
            redis.Redis.from_url(f"{self.redis}/{self.redis_db}").flushdb()
            self.redis_db = None

    # -- processes ---------------------------------------------------------------------------------
    def _add(self, name: str, cmd: list[str], env: dict[str, str]) -> Component:
        comp = Component(name, cmd, env, self.logs / f"{name}.log")
        self.components[name] = comp
        comp.start()
        return comp

    def _base_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MLFLOW", "AWS_"))}
        env.update({"PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}", "PYTHONWARNINGS": "ignore",
                    "TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS": "", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
                    "TRANSFORMERS_OFFLINE": "1", "LLMOPS_HOME": str(self.home), "LLMOPS_PROJECT_DIR": str(ROOT)})
        return env

    def start_s3(self) -> None:
        data = self.home / "seaweedfs"
        data.mkdir(parents=True, exist_ok=True)
        ports = {"master.port": free_port(), "volume.port": free_port(), "filer.port": free_port(),
                 "webdav.port": free_port(), "admin.port": free_port(), "debug.port": free_port()}
        cmd = [str(VENV_BIN / "weed"), "mini", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
               f"-s3.port={self.s3_port}", f"-bucket={BUCKET}", "-s3.port.iceberg=0", "-s3.port.lance=0",
               "-admin.ui=false", "-webdav=false"]
        cmd += [f"-{k}={v}" for k, v in ports.items() if k not in ("webdav.port", "admin.port")]
        env = self._base_env() | {"AWS_ACCESS_KEY_ID": self.s3_key, "AWS_SECRET_ACCESS_KEY": self.s3_secret}
        self._add("seaweedfs", cmd, env)

    def wait_s3(self) -> None:
        comp = self.components["seaweedfs"]
        deadline = time.monotonic() + 90
        client = self.s3_client()
        while True:
            if not comp.alive():
                raise RuntimeError(f"seaweedfs exited:\n{comp.tail()}")
            try:
                if BUCKET in [b["Name"] for b in client.list_buckets().get("Buckets", [])]:
                    return
            except Exception as exc:  # not up yet
                last = str(exc)
            else:
                last = "bucket not created yet"
            if time.monotonic() > deadline:
                raise TimeoutError(f"S3 on {self.s3} not ready: {last}\n{comp.tail()}")
            time.sleep(1)

    def s3_client(self, **kw: Any) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client("s3", endpoint_url=self.s3, aws_access_key_id=kw.get("key", self.s3_key),
                            aws_secret_access_key=kw.get("secret", self.s3_secret), region_name="us-east-1",
                            config=Config(retries={"max_attempts": 2}, connect_timeout=3, read_timeout=30))

    def start_mlflow(self) -> None:
        env = self._base_env() | {"AWS_ACCESS_KEY_ID": self.s3_key, "AWS_SECRET_ACCESS_KEY": self.s3_secret,
                                  "MLFLOW_S3_ENDPOINT_URL": self.s3, "AWS_DEFAULT_REGION": "us-east-1",
                                  "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        cmd = [str(VENV_BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(self.mlflow_port),
               "--backend-store-uri", f"postgresql+psycopg2://{self.postgres.split('://', 1)[1]}/{self.mlflow_db}",
               "--artifacts-destination", f"s3://{BUCKET}/mlflow", "--serve-artifacts", "--workers", "1"]
        self._add("mlflow", cmd, env)

    def wait_mlflow(self) -> None:
        _wait_http(f"{self.mlflow}/health", 180, comp=self.components["mlflow"])

    def airflow_env(self) -> dict[str, str]:
        af = self.home / "airflow"
        pg = self.postgres.split("://", 1)[1]
        env = self._base_env()
        env.update({
            "AIRFLOW_HOME": str(af),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CORE__PARALLELISM": "8",
            "AIRFLOW__CORE__FERNET_KEY": self.fernet_key,
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://{pg}/{self.airflow_db}",
            "AIRFLOW__CELERY__BROKER_URL": f"{self.redis}/{self.redis_db}",
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql://{pg}/{self.airflow_db}",
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2",
            # longer than the longest task (training: 24 h), or the broker hands it to a second worker
            "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT": "90000",
            # auth on: one admin with a generated password, nobody is an admin by default
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(af / "passwords.json"),
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
            "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.api_port),
            "AIRFLOW__API__BASE_URL": self.api,
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.api}/execution/",
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "True",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(free_port()),
            # a task whose worker vanished is failed (and retried) within a minute, not after five
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "30",
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
            # a restarted scheduler adopts the tasks of the one it replaced within half a minute: it
            # looks every 20 s, and a scheduler whose heartbeat is 20 s old counts as gone
            "AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL": "20",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_THRESHOLD": "20",
            "LLMOPS_CONFIG": str(self.home / "pipeline.yaml"),
            "LLMOPS_SUPPORT_API": self.support_api_url,
        })
        if self.extra_dag_folders:  # more DAG bundles beside the project's DAGs folder
            bundles = [{"name": "dags-folder", "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
                        "kwargs": {"path": str(ROOT / "dags"), "refresh_interval": 30}}]
            bundles += [{"name": f"extra-{i}", "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
                         "kwargs": {"path": str(folder), "refresh_interval": 30}}
                        for i, folder in enumerate(self.extra_dag_folders)]
            env["AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST"] = json.dumps(bundles)
        return env | self.extra_env

    def write_config(self) -> Path:
        """The project's pipeline config with the production settings: the dataset store and the
        MLflow artifacts in S3 through an Airflow connection, the tracking server."""
        cfg = yaml.safe_load((ROOT / "include/config/pipeline.yaml").read_text())
        cfg["storage"] = {"root": f"s3://{BUCKET}/store", "conn_id": STORE_CONN_ID}
        cfg["training"]["tracking"] = {"tracking_uri": self.mlflow, "artifact_location": None}
        cfg["training"]["checkpoint_sync_s"] = 10
        _merge(cfg, self.config_overrides)
        path = self.home / "pipeline.yaml"
        path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        return path

    def airflow(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        out = subprocess.run([str(VENV_BIN / "airflow"), *args], env=self.env, text=True, capture_output=True,
                             check=False, cwd=str(ROOT))
        if check and out.returncode:
            tail = "\n".join((out.stdout + out.stderr).strip().splitlines()[-15:])
            raise RuntimeError(f"airflow {' '.join(args[:3])} exited {out.returncode}:\n{tail}")
        return out

    def prepare_airflow(self) -> None:
        """The metadata DB, the store's connection and ``airflow_settings.yaml`` (the ``gpu`` pool)."""
        self.env = self.airflow_env()
        af = Path(self.env["AIRFLOW_HOME"])
        af.mkdir(parents=True, exist_ok=True)
        (af / "passwords.json").write_text(json.dumps({ADMIN: self.admin_password}))
        (af / "passwords.json").chmod(0o600)
        self.airflow("db", "migrate")
        # the store's keys are a connection in the metadata DB, encrypted with the Fernet key
        self.airflow("connections", "add", STORE_CONN_ID, "--conn-json", json.dumps({
            "conn_type": "aws", "login": self.s3_key, "password": self.s3_secret,
            "extra": {"endpoint_url": self.s3, "region_name": "us-east-1"}}))
        # the project's connections, pools and variables, as `make settings` applies them
        out = subprocess.run([sys.executable, str(ROOT / "scripts" / "apply_airflow_settings.py"),
                              str(ROOT / "airflow_settings.yaml")], env=self.env, capture_output=True, text=True)
        if out.returncode:
            raise RuntimeError(f"apply_airflow_settings failed:\n{out.stderr[-2000:]}")

    def start_airflow(self) -> None:
        for name in ("api-server", "dag-processor", "scheduler", "triggerer", "worker"):
            self.start_component(name)
        for n in range(2, self.schedulers + 1):
            self.start_component(f"scheduler-{n}")
        self.wait_healthy()
        self.airflow("dags", "reserialize")

    def start_component(self, name: str) -> Component:
        cmd = {"api-server": ["api-server", "--port", str(self.api_port), "--host", "127.0.0.1"],
               "scheduler": ["scheduler"], "dag-processor": ["dag-processor"], "triggerer": ["triggerer"],
               "worker": ["celery", "worker", "--queues", "default", "--concurrency", "2",
                          "--celery-hostname", f"worker-{secrets.token_hex(2)}@%h"]}.get(name)
        env = self.env
        if cmd is None and name.startswith("scheduler-"):  # another scheduler: its own health-check port
            cmd, env = ["scheduler"], {**self.env, "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(free_port())}
        if cmd is None:
            raise ValueError(f"unknown component {name!r}")
        return self._add(name, [str(VENV_BIN / "airflow"), *cmd], env)

    def health(self) -> dict[str, str | None]:
        with urllib.request.urlopen(f"{self.api}/api/v2/monitor/health", timeout=10) as resp:
            data = json.load(resp)
        return {k: (v or {}).get("status") for k, v in data.items()}

    def wait_healthy(self, timeout: float = 180) -> None:
        want = ("metadatabase", "scheduler", "dag_processor", "triggerer")
        _wait_http(f"{self.api}/api/v2/monitor/health", timeout, comp=self.components["api-server"],
                   ok=lambda h: self._all_alive() and all((h.get(k) or {}).get("status") == "healthy" for k in want))

    def _all_alive(self) -> bool:
        for comp in self.components.values():
            if comp.proc is not None and comp.proc.poll() is not None:
                raise RuntimeError(f"{comp.name} exited ({comp.proc.returncode}):\n{comp.tail()}")
        return True

    # -- REST API ----------------------------------------------------------------------------------
    def token(self) -> str:
        req = urllib.request.Request(f"{self.api}/auth/token", method="POST",
                                     data=json.dumps({"username": ADMIN, "password": self.admin_password}).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            return str(json.load(resp)["access_token"])

    def rest(self, method: str, path: str, body: Any = None, token: str | None = None) -> Any:
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"{self.api}/api/v2/{path.lstrip('/')}", data=data, method=method,
                                     headers=headers)
        with urllib.request.urlopen(req, timeout=60) as resp:
            raw = resp.read()
        return json.loads(raw) if raw else None

    # -- whole stack -------------------------------------------------------------------------------
    def start(self, *, support_api_folder: Path | None = None) -> ProdStack:
        self.home.mkdir(parents=True, exist_ok=True)
        try:
            if support_api_folder is not None:
                self._support_api, self.support_api_url = serve_folder(support_api_folder)
            self._create_databases()
            self.redis_db = self._claim_redis_db()
            self.write_config()
            self.start_s3()
            self.start_mlflow()
            self.prepare_airflow()  # while S3 and MLflow start
            self.wait_s3()
            self.wait_mlflow()
            self.start_airflow()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        order = ["worker", "scheduler", *[f"scheduler-{n}" for n in range(2, self.schedulers + 1)], "triggerer",
                 "dag-processor", "api-server", "mlflow", "seaweedfs"]
        for name in order + [n for n in self.components if n not in order]:
            comp = self.components.get(name)
            if comp is not None:
                comp.stop()
        if self._support_api is not None:
            self._support_api.shutdown()
            self._support_api = None
        with contextlib.suppress(Exception):
            self._release_redis_db()
        self._drop_databases()

    def urls(self) -> dict[str, str]:
        return {"airflow": self.api, "mlflow": self.mlflow, "s3": self.s3}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="start the stack with the sample corpus; Ctrl-C stops and cleans up")
    up.add_argument("--home", default=str(ROOT / ".llmops-prod"))
    up.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432")
    up.add_argument("--redis", default="redis://127.0.0.1:6379")
    up.add_argument("--days", type=int, default=2)
    args = parser.parse_args(argv)
    from local_airflow import prepare, sample_days

    home = Path(args.home).resolve()
    shutil.rmtree(home / "airflow", ignore_errors=True)
    days = sample_days(args.days)
    prepare(home, days, 100)
    stack = ProdStack(home, postgres=args.postgres, redis=args.redis)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    stack.start(support_api_folder=home / "api")
    try:
        print(f"Airflow {stack.api} (user {ADMIN}, password {stack.admin_password}); MLflow {stack.mlflow}; "
              f"S3 {stack.s3} (bucket {BUCKET}); logs {stack.logs}; sample partitions {days[0]} .. {days[-1]}")
        with contextlib.suppress(KeyboardInterrupt):
            while all(c.alive() for c in stack.components.values()):
                time.sleep(2)
    finally:
        stack.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
