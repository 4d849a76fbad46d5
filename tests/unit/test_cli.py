"""`llmops curate` as a user runs it: exit codes, one-line errors, what lands in --out.

A real `llmops` process pays Presidio's imports (torch, transformers, spaCy: 10-50 s), so the real
console script runs where only a process shows the behaviour: a good run exits 0 (the one
expensive process), and user errors exit 2 with one `llmops: error:` line and no traceback (these
fail before Presidio is imported: about a second each). Everything else runs `llmops.cli.main`
in the test process (tests/_cli_runner.py), where imports and the spaCy pipeline are paid once.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests._cli_runner import run_llmops

pytestmark = pytest.mark.slow
LLMOPS = str(Path(sys.executable).parent / "llmops")


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    """A real `llmops` process."""
    return subprocess.run([LLMOPS, *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("cli")
    (d / "clean.jsonl").write_text("\n".join(json.dumps({"id": f"c{i}", "text": t}) for i, t in enumerate([
        "My parcel has not arrived yet and the tracking page shows nothing new.",
        "The blender I bought last week stopped working after two uses.",
        "Hola, quiero devolver las zapatillas porque la talla es demasiado pequeña.",
    ])) + "\n")
    (d / "broken.jsonl").write_bytes(
        b'{"id": "b1", "text": "A perfectly fine support message about a late delivery."}\n'
        b'{"id": "b2", "text": "trunc\n'
        b'{"id": "b3", "text": null}\n'
        b'{"id": "b4", "text": "bad \xff bytes in this support message"}\n'
        b'{"id": "b5", "text": ["a", "list"]}\n'
    )
    (d / "pii.csv").write_text(
        "id,text\n"
        'p1,"Please call me back on (415) 736-4821 or write to jane.roe@example.com about the refund, '
        'the card I used for this order was 4111 1111 1111 1111, thank you very much for the help."\n'
        'p2,"My name is John Smith and I live in Boston, my SSN is 536-22-1234."\n'
    )
    (d / "notes.txt").write_text("first note about a refund that never arrived\nsecond note about a broken lamp\n")
    return d


def test_clean_input(inputs: Path, tmp_path: Path):
    """A real process, the default config (Presidio and the spaCy pipeline): a good run exits 0."""
    out = tmp_path / "v"
    res = _run("curate", str(inputs / "clean.jsonl"), str(inputs / "notes.txt"), "--out", str(out))
    assert res.returncode == 0, res.stderr
    m = json.loads((out / "manifest.json").read_text())
    assert m["counts"]["input"] == 5 and m["counts"]["kept"] == 5
    assert m["id"] in res.stdout and "input 5 = kept 5" in res.stdout
    assert (out / m["files"][0]["path"]).exists() and (out / m["quarantine_files"][0]["path"]).exists()


def test_malformed_input_is_quarantined_not_fatal(inputs: Path, tmp_path: Path, capfd):
    out = tmp_path / "v"
    res = run_llmops(capfd, "curate", str(inputs / "broken.jsonl"), "--out", str(out), "--json")
    assert res.returncode == 0, res.stderr
    m = json.loads(res.stdout)
    assert m["counts"]["kept"] == 1 and m["counts"]["quarantined"] == 4
    assert m["counts"]["by_reason"]["quarantined"] == {"invalid_utf8": 1, "malformed_json": 1, "non_string_text": 1,
                                                       "null_text": 1}


def test_pii_bearing_input_is_redacted(inputs: Path, tmp_path: Path, capfd):
    import pyarrow.parquet as pq

    out = tmp_path / "v"
    res = run_llmops(capfd, "curate", str(inputs / "pii.csv"), "--out", str(out))
    assert res.returncode == 0, res.stderr
    m = json.loads((out / "manifest.json").read_text())
    text = " ".join(pq.read_table(out / m["files"][0]["path"]).column("text").to_pylist())
    for secret in ("736-4821", "jane.roe@example.com", "4111", "John Smith", "Boston", "536-22-1234"):
        assert secret not in text
        assert secret not in res.stdout and secret not in json.dumps(m)
    assert m["pii"]["entities"]["EMAIL_ADDRESS"] == 1 and m["pii"]["entities"]["PERSON"] == 1


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--config", "{cfg}"], "curation.filters.min_charz: unknown key. did you mean 'min_chars'?"),
        (["--config", "/nonexistent.yaml"], "does not exist"),
    ],
)
def test_bad_config_one_line_exit_2(inputs: Path, tmp_path: Path, args: list[str], needle: str):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("curation:\n  filters:\n    min_charz: 5\n")
    res = _run("curate", str(inputs / "clean.jsonl"), "--out", str(tmp_path / "v"),
               *[a.format(cfg=cfg) for a in args])
    assert res.returncode == 2
    assert "Traceback" not in res.stderr and res.stderr.startswith("llmops: error:")
    assert needle in res.stderr
    assert not (tmp_path / "v").exists()


def test_missing_input(tmp_path: Path):
    """A real process: one line on stderr, exit 2."""
    res = _run("curate", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "v"))
    assert res.returncode == 2 and "no such file or folder" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert res.stderr.startswith("llmops: error:") and "Traceback" not in res.stderr
    assert not (tmp_path / "v").exists()


def test_occupied_out(inputs: Path, tmp_path: Path, capfd):
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "precious.txt").write_text("keep me")
    res = run_llmops(capfd, "curate", str(inputs / "clean.jsonl"), "--out", str(occupied))
    assert res.returncode == 2 and "not empty" in res.stderr
    assert res.stderr.startswith("llmops: error:") and len(res.stderr.strip().splitlines()) == 1
    assert (occupied / "precious.txt").read_text() == "keep me"


def test_rerun_replaces_version_in_place(inputs: Path, tmp_path: Path, capfd, monkeypatch):
    import spacy

    out = tmp_path / "v"
    first = run_llmops(capfd, "curate", str(inputs / "clean.jsonl"), "--out", str(out), "--json")
    # the second run in the same process reuses the loaded spaCy pipeline (llmops.privacy.pii)
    monkeypatch.setattr(spacy, "load", lambda *a, **k: pytest.fail("spaCy pipeline loaded again"))
    second = run_llmops(capfd, "curate", str(inputs / "clean.jsonl"), "--out", str(out), "--json")
    assert first.returncode == second.returncode == 0, second.stderr
    assert json.loads(first.stdout)["id"] == json.loads(second.stdout)["id"]
