"""Subject index, erasure by pseudonym, retention, the audit trail and the PIA report, on real stage
runs (collect + curate with Presidio's pattern recognizers) in a local store, through ``llmops``."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest
import yaml

from llmops.cli import main

OLD, NEW = "2026-11-01", "2026-11-25"
EMAIL = "lena.berg@example.com"
TEXTS = [
    "I was charged twice for order 1182, please refund the second payment to my card soon.",
    "The parcel never arrived and the tracking page says delivered, where is my package now?",
    "I cannot log in since the update, the reset e-mail never comes to my inbox at all.",
    "Please call me back at 212-555-0143 about the refund I asked for last week, thank you.",
    "Write to me at sam.hill@example.com when the replacement part is in stock again.",
    f"Hi, my account is locked and I need the invoice for March, reach me at {EMAIL} please.",
    f"Hi, my account is locked and I need the invoice for March, reach me at {EMAIL} please.",
    "Short",
]


def _setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, privacy: dict | None = None,
           pii: dict | None = None) -> tuple[Path, object, object]:
    from llmops.config import load_config
    from llmops.stages import collect_raw, curate_version, open_config_store

    home = tmp_path / "home"
    monkeypatch.setenv("LLMOPS_HOME", str(home))
    for day in (OLD, NEW):
        folder = home / "landing" / f"dt={day}"
        folder.mkdir(parents=True)
        (folder / "t.jsonl").write_text("".join(json.dumps({"id": f"{day}-{i}", "text": t}) + "\n"
                                                for i, t in enumerate(TEXTS)))
    config = tmp_path / "pipeline.yaml"
    config.write_text(yaml.safe_dump({
        "base_dir": str(home), "storage": {"root": str(home / "store")},
        "sources": [{"name": "t", "kind": "files", "paths": ["landing/dt={partition}/t.jsonl"]}],
        # the same messages on both days: each day keeps its own (no dedup against earlier days)
        "curation": {"filters": {"languages": []}, "dedup": {"near": {"enabled": False}, "history": {"enabled": False}},
                     "pii": {"spacy_model": "blank", **(pii or {})}},
        "quality": {"enabled": False},
        "privacy": privacy or {},
        "training": {"tracking": {"tracking_uri": f"sqlite:///{home}/mlflow.db",
                                  "artifact_location": str(home / "artifacts")}},
    }))
    cfg = load_config(config)
    store = open_config_store(cfg)
    for day in (OLD, NEW):
        raw = collect_raw(cfg, store=store, partition=day, producer={"kind": "test"})
        curate_version(cfg, store=store, raw_version_id=raw["id"], partition=day, producer={"kind": "test"})
    return config, cfg, store


def _current(store, cfg, stage):
    from llmops.versions import latest_versions, read_manifest

    return [read_manifest(store, cfg.dataset, stage, v) for v in sorted(set(latest_versions(store, cfg.dataset, stage).values()))]


def _table(markdown: str, header: str) -> list[list[str]]:
    lines = markdown.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {header} |"))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip("|").split("|")])
    return rows


def test_pia_numbers_match_the_manifests(tmp_path, monkeypatch, capsys):
    config, cfg, store = _setup(tmp_path, monkeypatch)
    assert main(["erase", "--request-id", "DSR-1", "--subject", EMAIL, "--config", str(config)]) == 0
    out = tmp_path / "pia.md"
    assert main(["pia", "--config", str(config), "--out", str(out)]) == 0
    report = out.read_text()

    stages = {row[0]: row for row in _table(report, "stage")}
    for stage in ("raw", "curated"):
        manifests = _current(store, cfg, stage)
        row = stages[stage]
        assert int(row[1]) == 2 and int(row[2]) == len(manifests) == 2
        assert int(row[3]) == sum(m["counts"]["input"] for m in manifests)
        assert int(row[4]) == sum(m["counts"]["kept"] for m in manifests)
        assert int(row[5]) == sum(m["counts"][k] for m in manifests for k in ("duplicates", "filtered", "quarantined"))
        if stage == "curated":
            assert int(row[6]) == sum(m["pii"]["records"] for m in manifests) > 0
            assert int(row[7]) == sum(m["privacy"]["subject_index"]["entries"] for m in manifests) > 0
    # the erasure removed the subject's records: the current versions are the successors
    assert int(stages["curated"][3]) == 2 * (len(TEXTS) - 2)
    entities = {row[0]: row for row in _table(report, "entity type")}
    expected: Counter[str] = Counter()
    for m in _current(store, cfg, "curated"):
        expected.update(m["pii"]["entities"])
    assert {e: int(r[2]) for e, r in entities.items()} == dict(expected)
    assert expected["EMAIL_ADDRESS"] >= 2 and expected["PHONE_NUMBER"] == 2
    safeguards = {row[0]: row for row in _table(report, "safeguard")}
    assert safeguards["Erasure"][1] == "1 requests" and safeguards["Erasure"][2] == "4 records erased"
    assert "erasure 1" in safeguards["Audit trail"][2]
    assert "Raw partitions hold unredacted text with no retention limit" in report
    assert "Local simulated crowd" in report and EMAIL not in report

    html_out = tmp_path / "pia.html"
    assert main(["pia", "--config", str(config), "--out", str(html_out)]) == 0
    page = html_out.read_text()
    assert page.startswith("<!doctype html>")
    assert f"<td>curated</td><td>2</td><td>2</td><td>{stages['curated'][3]}</td>" in page


def test_erasure_by_pseudonym_through_the_subject_index(tmp_path, monkeypatch, capsys):
    from llmops.privacy.subjects import read_index
    from llmops.versions import iter_batches

    monkeypatch.setenv("LLMOPS_TEST_HMAC", "k" * 32)
    # pseudonymised e-mail addresses; the index shares the pseudonym key (subject_index.key: null)
    config, cfg, store = _setup(tmp_path, monkeypatch, privacy={"subject_index": {"key": None}},
                                pii={"operators": {"EMAIL_ADDRESS": "pseudonymize"},
                                     "pseudonym_key": "env:LLMOPS_TEST_HMAC"})
    texts = [r["text"] for m in _current(store, cfg, "curated") for b in iter_batches(store, m) for r in b.to_pylist()]
    pseudonyms = {p for t in texts for p in re.findall(r"<EMAIL_ADDRESS_[0-9a-f]{12}>", t)}
    assert len(pseudonyms) == 2  # sam.hill and lena.berg, the same pseudonym in both partitions
    lena = next(p for p in pseudonyms if any(p in t and "invoice for March" in t for t in texts))
    subjects = tmp_path / "subjects.txt"
    subjects.write_text(lena + "\n")
    assert main(["erase", "--request-id", "DSR-2", "--subjects-file", str(subjects), "--config", str(config),
                 "--json"]) == 0
    out = _json_out(capsys)
    # per partition: the kept message and its exact duplicate (quarantined), in raw and curated
    assert out["removed"] == {"raw": 4, "curated": 4, "labeled": 0} and out["records"] == 4
    left = [r["text"] for m in _current(store, cfg, "curated") for b in iter_batches(store, m) for r in b.to_pylist()]
    assert not any(lena in t for t in left) and any("sam" not in t and "<EMAIL_ADDRESS_" in t for t in left)
    assert not any(r[1].endswith(("-5", "-6")) for _, rows in read_index(store, cfg.dataset) for r in rows)

    assert main(["erase", "--request-id", "DSR-2", "--subject", lena, "--config", str(config)]) == 0
    assert "nothing left to erase" in capsys.readouterr().out
    # subject keys made from the raw address (no address in the request) find sam.hill's records
    (tmp_path / "sam.txt").write_text("sam.hill@example.com\n")
    assert main(["subject-keys", "--subjects-file", str(tmp_path / "sam.txt"), "--config", str(config)]) == 0
    keys = [line for line in capsys.readouterr().out.splitlines() if re.fullmatch(r"[A-Z_.a-z]+:[0-9a-f]{64}", line)]
    assert len(keys) == len(cfg.privacy.subject_index.entities) and any(k.startswith("EMAIL_ADDRESS:") for k in keys)
    assert main(["erase", "--request-id", "DSR-2b", "--config", str(config), "--json",
                 *(a for k in keys for a in ("--subject", k))]) == 0
    res = _json_out(capsys)
    # two records, each in two versions per stage since DSR-2: the purged old one and its successor
    assert res["records"] == 2 and res["removed"] == {"raw": 4, "curated": 4, "labeled": 0}
    assert sorted(v["successor"] is None for v in res["versions"]) == [False] * 4 + [True] * 4
    assert main(["audit", "--config", str(config), "--event", "erasure"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if "  erasure " in line]
    by_request = {line.split()[2]: line for line in lines}
    assert len(lines) == 2 and "records=4" in by_request["DSR-2"] and "records=2" in by_request["DSR-2b"]


def test_erasure_errors_name_the_fix(tmp_path, monkeypatch, capsys):
    config, cfg, store = _setup(tmp_path, monkeypatch, privacy={"subject_index": {"enabled": False}})
    assert main(["erase", "--request-id", "bad id!", "--subject", EMAIL, "--config", str(config)]) == 2
    assert "request_id must be" in capsys.readouterr().err
    assert main(["erase", "--request-id", "DSR-3", "--subject", "<EMAIL_ADDRESS_0123456789ab>",
                 "--config", str(config)]) == 2
    assert "pseudonyms need the subject index" in capsys.readouterr().err
    assert main(["subject-keys", "--subjects-file", "/nonexistent", "--config", str(config)]) == 2
    # without an index, a raw identifier is still found in the unredacted text
    assert main(["erase", "--request-id", "DSR-3", "--subject", EMAIL, "--config", str(config), "--json"]) == 0
    assert _json_out(capsys)["removed"]["curated"] == 4


def test_retention_removes_old_data_once_and_audits_it(tmp_path, monkeypatch, capsys):
    from llmops.privacy.audit import read_events
    from llmops.stages import curate_version
    from llmops.versions import iter_batches, latest_for_partition, read_manifest

    config, cfg, store = _setup(tmp_path, monkeypatch,
                                privacy={"retention": {"raw_days": 10, "quarantine_days": 5}})
    raw_old = read_manifest(store, cfg.dataset, "raw", latest_for_partition(store, cfg.dataset, "raw", OLD))
    raw_new = read_manifest(store, cfg.dataset, "raw", latest_for_partition(store, cfg.dataset, "raw", NEW))
    cur_old = read_manifest(store, cfg.dataset, "curated", latest_for_partition(store, cfg.dataset, "curated", OLD))
    assert cur_old["counts"]["duplicates"] == 1 and cur_old["counts"]["filtered"] == 1

    assert main(["retention", "--today", "2026-11-28", "--config", str(config)]) == 0
    assert "raw versions 1, quarantines 1" in capsys.readouterr().out
    old = read_manifest(store, cfg.dataset, "raw", raw_old["id"])
    assert old["retention"]["policy"] == "raw_days=10" and old["counts"] == raw_old["counts"]
    prefix = f"datasets/{cfg.dataset}/raw/versions/{raw_old['id']}"
    assert store.list(prefix) == [f"{prefix}/manifest.json"]
    with pytest.raises(FileNotFoundError, match="removed on .* by the retention policy"):
        list(iter_batches(store, old))
    with pytest.raises(FileNotFoundError, match="retention policy"):
        curate_version(cfg, store=store, raw_version_id=raw_old["id"], partition=OLD, producer={"kind": "test"})
    assert len(list(iter_batches(store, raw_new))) == 1  # 3 days old: kept
    cur = read_manifest(store, cfg.dataset, "curated", cur_old["id"])
    assert [f["rows"] for f in cur["quarantine_files"]] == [0] and cur["counts"] == cur_old["counts"]
    assert len(list(iter_batches(store, cur))) >= 1  # the curated data itself stays

    before = {k: store.read_bytes(k) for k in store.list("")}
    assert main(["retention", "--today", "2026-11-28", "--config", str(config)]) == 0
    assert {k: store.read_bytes(k) for k in store.list("")} == before
    events = read_events(store, event="retention")
    # raw quarantines nothing here; the curated version set aside the duplicate and "Short"
    assert len(events) == 1 and events[0]["details"]["records"] == {"raw": len(TEXTS), "quarantine": 2,
                                                                    "annotation_items": 0}


def test_retention_deletes_published_annotation_exports(tmp_path, monkeypatch):
    import time
    from datetime import UTC, datetime, timedelta

    from llmops.annotation import jobs
    from llmops.annotation.localcrowd import LocalCrowd
    from llmops.config import load_config
    from llmops.privacy.retention import enforce_retention
    from llmops.stages import make_redactor
    from llmops.versions import latest_for_partition

    config, cfg, store = _setup(tmp_path, monkeypatch, privacy={"retention": {"annotation_days": 30}})
    cfg = load_config(config, overrides={"annotation": {"selection": {"size": 10, "strategy": "random"},
                                                        "local": {"truth_path": None, "delay_s": [1, 1]}}})
    clock = [time.time()]
    crowd = LocalCrowd(store, cfg.annotation.local, labels=cfg.annotation.task.labels, clock=lambda: clock[0])
    plan = jobs.prepare_job(cfg, store=store, curated_version_id=latest_for_partition(store, cfg.dataset, "curated", NEW),
                            partition=NEW, dag_id="llm_annotation", redactor=make_redactor(cfg))
    jobs.export_job(cfg, store=store, job_id=plan["job_id"], backend=crowd, now=clock[0])
    clock[0] += 5
    jobs.review_job(cfg, store=store, job_id=plan["job_id"], backend=crowd)
    jobs.publish_labels(cfg, store=store, job_id=plan["job_id"], producer={"kind": "test"})
    items = f"annotations/{cfg.dataset}/jobs/{plan['job_id']}/items.jsonl"
    n_items = len(store.read_bytes(items).splitlines())

    today = datetime.now(UTC).date()
    assert enforce_retention(cfg, store=store, today=today + timedelta(days=30))["changed"] is False
    out = enforce_retention(cfg, store=store, today=today + timedelta(days=31))
    assert out["annotation_jobs"] == [plan["job_id"]] and out["records"]["annotation_items"] == n_items
    assert not store.exists(items)
    assert jobs.read_ledger(store, cfg.dataset, plan["job_id"])["status"] == "published"  # payments record stays


def test_an_erasure_that_crashed_midway_is_finished_by_its_retry_with_the_right_counts(tmp_path, monkeypatch):
    import llmops.privacy.erasure as erasure
    from llmops.privacy.audit import read_events
    from llmops.versions import iter_batches

    config, cfg, store = _setup(tmp_path, monkeypatch)
    real = erasure._rewrite
    calls = []

    def crash_on_the_third(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise OSError("worker lost")
        return real(*args, **kwargs)

    monkeypatch.setattr(erasure, "_rewrite", crash_on_the_third)
    with pytest.raises(OSError, match="worker lost"):
        erasure.erase(cfg, store=store, request_id="DSR-4", subjects=[EMAIL])
    assert erasure.erasure_record(store, "DSR-4") is None and read_events(store) == []
    monkeypatch.setattr(erasure, "_rewrite", real)

    out = erasure.erase(cfg, store=store, request_id="DSR-4", subjects=[EMAIL])
    assert out["changed"] and len(out["versions"]) == 2  # the two versions the crash left
    record = erasure.erasure_record(store, "DSR-4")
    # per partition: the message and its duplicate, in raw and in curated; 4 versions in all
    assert record["removed"] == {"raw": 4, "curated": 4, "labeled": 0} and len(record["versions"]) == 4
    [event] = read_events(store, event="erasure")
    assert event["details"]["removed"] == record["removed"] and event["details"]["records"] == 4
    for stage in ("raw", "curated"):
        for m in _current(store, cfg, stage):
            rows = [r for b in iter_batches(store, m) for r in b.to_pylist()]
            assert not any(EMAIL in (r.get("text") or "") for r in rows)
            assert m.get("erasure", {}).get("request_id") == "DSR-4"


def test_the_scrubber_removes_the_subject_and_nothing_else():
    from llmops.privacy.erasure import Scrubber

    s = Scrubber(ids={"123", "r-7"})
    assert s.add_identifier("ann@x.org") and not s.add_identifier("42")
    s.add_text("My parcel never came & the courier lied")
    # word boundaries: another address that ends the same way stays
    new, n = s.scrub("notes.md", b"mail ann@x.org or joann@x.org")
    assert new == b"mail [erased] or joann@x.org" and n == 1
    # a plain text file is never cut by record ids (a tokenizer's vocab.txt holds "123")
    assert s.scrub("vocab.txt", b"[PAD]\n123\nparcel\n") == (None, 0)
    # CSV: rows by the id column or by text; the header stays
    csv = b'id,text\n123,fine\nr-8,"write to ANN@X.ORG"\nr-9,123 apples\n'
    assert s.scrub("rows.csv", csv) == (b"id,text\nr-9,123 apples\n", 2)
    # HTML and JSON: the escaped forms of the text go too; JSON stays valid JSON
    page = b"<td>My parcel never came &amp; the courier lied</td><td>other</td>"
    assert s.scrub("docs/index.html", page)[0] == b"<td>[erased]</td><td>other</td>"
    doc = json.dumps({"examples": ["My parcel never came & the courier lied", "ok"], "n": 123}).encode()
    new, n = s.scrub("validation.json", doc)
    assert json.loads(new) == {"examples": ["[erased]", "ok"], "n": 123} and n == 1
    # JSON lines: a row of the subject's record (by id) or with their text goes; the rest stays
    lines = b'{"id": "r-7", "text": "x"}\n{"id": "r-8", "text": "hi ann@x.org"}\n{"id": "r-9", "text": "y"}\n'
    assert s.scrub("items.jsonl", lines) == (b'{"id": "r-9", "text": "y"}\n', 2)
    assert s.scrub("weights.safetensors", b"ann@x.org") == (None, 0)


def test_erasure_on_an_s3_store(tmp_path, monkeypatch, s3_client, capsys):
    """The same request against S3 (moto): successors and purged versions are S3 objects, and no
    object holds the subject's address afterwards."""
    import pyarrow.parquet as pq

    s3_client.create_bucket(Bucket="llmops")
    monkeypatch.setenv("LLMOPS_HOME", str(tmp_path / "home"))
    config, cfg, store = _setup(tmp_path, monkeypatch)  # a local run first, for the expected counts
    assert main(["erase", "--request-id", "DSR-5", "--subject", EMAIL, "--config", str(config), "--json"]) == 0
    local = _json_out(capsys)

    data = yaml.safe_load(config.read_text())
    data["storage"] = {"root": "s3://llmops/store"}
    data["base_dir"] = str(tmp_path / "home")
    config.write_text(yaml.safe_dump(data))
    from llmops.config import load_config
    from llmops.stages import collect_raw, curate_version, open_config_store

    cfg = load_config(config)
    store = open_config_store(cfg)
    for day in (OLD, NEW):
        raw = collect_raw(cfg, store=store, partition=day, producer={"kind": "test"})
        curate_version(cfg, store=store, raw_version_id=raw["id"], partition=day, producer={"kind": "test"})

    def holding_the_address() -> list[str]:
        out = []
        for key in store.list(""):
            body = store.read_bytes(key)
            if key.endswith(".parquet"):
                import io

                body = json.dumps(pq.read_table(io.BytesIO(body)).to_pylist(), default=str).encode()
            if EMAIL.encode() in body:
                out.append(key)
        return out

    assert holding_the_address()
    assert main(["erase", "--request-id", "DSR-5", "--subject", EMAIL, "--config", str(config), "--json"]) == 0
    out = _json_out(capsys)
    assert out["removed"] == local["removed"] == {"raw": 4, "curated": 4, "labeled": 0}
    assert holding_the_address() == []
    assert main(["erase", "--request-id", "DSR-5", "--subject", EMAIL, "--config", str(config), "--json"]) == 0
    assert _json_out(capsys)["changed"] is False


def _json_out(capsys) -> dict:
    """The JSON document ``--json`` printed last (Airflow's log lines may share stdout in a test)."""
    out = capsys.readouterr().out
    start = 0 if out.startswith("{") else out.rindex("\n{\n") + 1
    return json.loads(out[start:])
