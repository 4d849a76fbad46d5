"""Test-wide setup: an isolated Airflow home and LLMOps home, offline guards, shared fixtures.

Environment variables are set at import time, before anything imports Airflow, so every test
(and every subprocess it starts) uses a throw-away SQLite metadata DB and object store.
"""

from __future__ import annotations

import functools
import http.server
import ipaddress
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest_plugins = ["tests._fixtures_training"]

ROOT = Path(__file__).resolve().parents[1]
_TMP = Path(tempfile.mkdtemp(prefix="llmops-tests-"))

os.environ.update(
    {
        "AIRFLOW_HOME": str(_TMP / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "True",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_TMP}/airflow/airflow.db",
        "LLMOPS_HOME": str(_TMP / "home"),
        "LLMOPS_PROJECT_DIR": str(ROOT),
        "TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS": "",
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "GX_ANALYTICS_ENABLED": "False",
    }
)
# Two pytest-xdist workers share two cores: one OpenMP thread per process (and per subprocess a test
# starts), or torch's spinning threads make small tensor ops many times slower under load.
os.environ.setdefault("OMP_NUM_THREADS", "1")
(_TMP / "airflow").mkdir(parents=True, exist_ok=True)
(_TMP / "home").mkdir(parents=True, exist_ok=True)


# --------------------------------------------------------------------------- offline guard
_real_connect = socket.socket.connect


def _is_local(address: object) -> bool:
    if not isinstance(address, tuple):
        return True  # unix sockets
    host = str(address[0])
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _guarded_connect(self: socket.socket, address: object) -> None:
    if not _is_local(address):
        raise OSError(f"test tried to reach the network: {address!r} (tests must run offline)")
    return _real_connect(self, address)  # type: ignore[arg-type]


socket.socket.connect = _guarded_connect  # type: ignore[method-assign]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(_TMP, ignore_errors=True)


# --------------------------------------------------------------------------- order and distribution
#: Test files that start real Airflow servers (standalone, or the production stack).
SERVER_FILES = ("tests/integration/test_scheduler_e2e.py", "tests/integration/test_production_e2e.py")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The longest tiers first (``scheduler``, then ``slow``), each in collection order, so that under
    pytest-xdist the long tests start at once and short ones fill the gaps at the end."""
    def tier(item: pytest.Item) -> int:
        return 0 if item.get_closest_marker("scheduler") else 1 if item.get_closest_marker("slow") else 2

    first = {}  # file -> its earliest tier: the tests of a file stay together
    for item in items:
        first[item.path] = min(first.get(item.path, 2), tier(item))
    items.sort(key=lambda item: first[item.path])


def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    """``make test`` runs 2 pytest-xdist workers: each test file runs on one worker (its module fixtures
    are built once), and the files in ``SERVER_FILES`` run on one worker one after the other (two full
    Airflow stacks at once would share 2 cores), while the other worker runs the rest. Work units go
    out in collection order (``--no-loadscope-reorder``): the server tests first."""
    from xdist.scheduler import LoadScopeScheduling

    class FileScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return "servers" if path in SERVER_FILES else path

    return FileScheduling(config, log)


# --------------------------------------------------------------------------- the suite's time budget
#: What the whole suite may take on the CI machine kind (2 cores) before every later landing is at
#: risk; measured by the runner from its session start, reported, never a failure.
SUITE_BUDGET_S = float(os.environ.get("LLMOPS_TEST_BUDGET_S", 25 * 60))
_SESSION_T0 = time.monotonic()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int,
                            config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):  # an xdist worker: the controller reports
        return
    elapsed = time.monotonic() - _SESSION_T0
    budget = SUITE_BUDGET_S
    if elapsed > budget:
        terminalreporter.write_sep("!", f"WARNING: the test suite took {elapsed / 60:.1f} min, over its "
                                        f"{budget / 60:.0f}-minute budget", red=True, bold=True)
        terminalreporter.write_line("WARNING: look at the slowest tests above; a suite past the budget puts every "
                                    "later CI run at risk (LLMOPS_TEST_BUDGET_S sets the budget)", red=True)
    else:
        terminalreporter.write_line(f"test suite time {elapsed / 60:.1f} min (budget {budget / 60:.0f} min)")


# --------------------------------------------------------------------------- fixtures
def _process_state_left_behind(accelerate_before: set[str]) -> list[str]:
    """Process-wide state that code under test must release (a later test in the same process
    would inherit it): an exported MLflow tracking URI, a torch.distributed process group,
    ``ACCELERATE_*`` variables and the Hugging Face DeepSpeed config a Trainer installs."""
    leaks = []
    if os.environ.get("MLFLOW_TRACKING_URI"):
        leaks.append(f"MLFLOW_TRACKING_URI={os.environ['MLFLOW_TRACKING_URI']!r}")
    added = sorted(k for k in os.environ if k.startswith("ACCELERATE_") and k not in accelerate_before)
    if added:
        leaks.append(f"environment variables {added}")
    torch = sys.modules.get("torch")
    dist = getattr(torch, "distributed", None) if torch is not None else None
    if dist is not None and dist.is_available() and dist.is_initialized():
        leaks.append("an initialized torch.distributed process group")
    hf_ds = sys.modules.get("transformers.integrations.deepspeed")
    if hf_ds is not None and hf_ds.deepspeed_config() is not None:
        leaks.append("the Hugging Face DeepSpeed config (transformers.integrations.deepspeed)")
    return leaks


def _release_process_state(accelerate_before: set[str]) -> None:
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    for key in [k for k in os.environ if k.startswith("ACCELERATE_") and k not in accelerate_before]:
        del os.environ[key]
    if "mlflow" in sys.modules:
        sys.modules["mlflow"].set_tracking_uri(None)
    torch = sys.modules.get("torch")
    dist = getattr(torch, "distributed", None) if torch is not None else None
    if dist is not None and dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    hf_ds = sys.modules.get("transformers.integrations.deepspeed")
    if hf_ds is not None:
        hf_ds.unset_hf_deepspeed_config()


@pytest.fixture(autouse=True)
def _clean_process_state() -> Iterator[None]:
    """Every test starts without MLFLOW_TRACKING_URI (``mlflow.set_tracking_uri`` exports it to the
    process and its children) and must leave the process as it found it: a test that leaves a
    tracking URI, a process group, ``ACCELERATE_*`` variables or a DeepSpeed config behind fails
    here (and the state is released, so the next test is not affected). Tests that set these
    themselves use ``monkeypatch`` (undone before this check) or clean up."""
    saved_uri = os.environ.pop("MLFLOW_TRACKING_URI", None)
    accelerate_before = {k for k in os.environ if k.startswith("ACCELERATE_")}
    yield
    leaks = _process_state_left_behind(accelerate_before)
    _release_process_state(accelerate_before)
    if saved_uri is not None:
        os.environ["MLFLOW_TRACKING_URI"] = saved_uri
    assert not leaks, f"the test left process-wide state behind: {'; '.join(leaks)}"


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def sample_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The seeded sample corpus (small), generated once per session."""
    from llmops.sampledata import generate

    out = tmp_path_factory.mktemp("sample")
    generate(out, seed=7, records_per_day=120, days=("2026-11-25", "2026-11-26"))
    return out


@pytest.fixture(scope="session")
def redactor():
    """The default Presidio redactor (loads the spaCy pipeline once: ~10 s)."""
    from llmops.config import PIIConfig
    from llmops.privacy.pii import PIIRedactor

    return PIIRedactor(PIIConfig())


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture()
def serve_dir() -> Iterator[object]:
    """Start a static HTTP server on 127.0.0.1 for a folder; returns a function folder -> base URL."""
    servers: list[http.server.ThreadingHTTPServer] = []

    def start(folder: Path, handler: type[http.server.BaseHTTPRequestHandler] | None = None) -> str:
        h = handler or functools.partial(_QuietHandler, directory=str(folder))
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), h)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
        return f"http://127.0.0.1:{srv.server_address[1]}"

    yield start
    for srv in servers:
        srv.shutdown()
        srv.server_close()


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated SQLite metadata DB for tests that run DAGs in-process (``dag.test()``)."""
    airflow = Path(sys.executable).parent / "airflow"
    subprocess.run([str(airflow), "db", "migrate"], check=True, capture_output=True, text=True,
                   env=dict(os.environ))
    return Path(os.environ["AIRFLOW_HOME"])


@pytest.fixture()
def s3_client(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """A boto3 S3 client against moto's in-process S3 (dummy credentials, no network)."""
    import boto3
    from moto import mock_aws

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        yield boto3.client("s3")


@pytest.fixture()
def curated_factory(tmp_path: Path, redactor):
    """Writes a small curated version (support messages from several sources and languages,
    redacted like the curate stage does) into a local store; returns (cfg, store, manifest).
    ``extra_texts`` adds records exactly as given (not redacted)."""
    import random

    from llmops.config import parse_config
    from llmops.records import Record
    from llmops.sampledata import INTENTS, _message
    from llmops.stages import open_config_store, privacy_summary
    from llmops.storage import LocalStore
    from llmops.versions import VersionWriter

    def make(n: int = 40, *, overrides: dict | None = None, extra_texts: dict[str, str] | None = None,
             privacy: bool = True, truth: dict[str, str] | None = None, partition: str = "2026-11-25",
             prefix: str = "rec"):
        # the messages come from the templates the golden set was written from, so some are near
        # duplicates of golden items: decontamination is off unless a test turns it on
        data = {"storage": {"root": str(tmp_path / "store")},
                "annotation": {"selection": {"size": min(n, 20)}, "local": {"truth_path": None}},
                "training": {"decontamination": {"enabled": False}}}
        for key, value in (overrides or {}).items():
            section = data.setdefault(key, {})
            if isinstance(value, dict):
                for k2, v2 in value.items():
                    if isinstance(v2, dict) and isinstance(section.get(k2), dict):
                        section[k2] = {**section[k2], **v2}
                    else:
                        section[k2] = v2
            else:
                data[key] = value
        cfg = parse_config(data)
        store = open_config_store(cfg)
        assert isinstance(store, LocalStore)
        rng = random.Random(f"{prefix}:{partition}")
        records = []
        for i in range(n):
            lang = "es" if i % 4 == 0 else "en"
            intent = INTENTS[i % len(INTENTS)]
            rid = f"{prefix}-{partition}-{i:04d}"
            if truth is not None:
                truth[rid] = intent
            text = redactor.redact(_message(rng, lang, intent, []), lang).text
            records.append(Record(rid, text, ["email", "chat", "forum"][i % 3], lang,
                                  meta={"tier": "gold" if i % 5 else "free"}))
        for rid, text in (extra_texts or {}).items():
            records.append(Record(rid, text, "email", "en"))
        writer = VersionWriter(cfg.dataset, "curated", extra={"privacy": privacy_summary(cfg)} if privacy else {})
        writer.counts.input = len(records)
        writer.add_records(records)
        return cfg, store, writer.finish(store, partition=partition)

    return make
