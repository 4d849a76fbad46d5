from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from llmops.sampledata import INTENTS, generate, iban_ok, iter_short_docs, luhn_ok


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and "hf" not in p.parts}


def test_deterministic_per_seed(tmp_path: Path):
    a = generate(tmp_path / "a", seed=1, records_per_day=60, days=("2026-11-25",))
    b = generate(tmp_path / "b", seed=1, records_per_day=60, days=("2026-11-25",))
    c = generate(tmp_path / "c", seed=2, records_per_day=60, days=("2026-11-25",))
    assert a == b and _files(tmp_path / "a") == _files(tmp_path / "b")
    assert _files(tmp_path / "a") != _files(tmp_path / "c") and a != c


def test_layout_parses_and_ground_truth_matches(sample_dir: Path):
    summary = json.loads((sample_dir / "sample_manifest.json").read_text())
    day = summary["days"][0]
    land = sample_dir / "landing" / f"dt={day}"
    with (land / "chat_logs.csv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert rows and set(rows[0]) == {"id", "text", "created_at", "agent", "channel"}
    assert any(r["text"] == "" for r in rows)
    forum = pq.read_table(land / "forum_posts.parquet").to_pylist()
    assert any(r["text"] is None for r in forum)
    page = json.loads((sample_dir / "api" / f"dt={day}" / "page-1.json").read_text())
    assert page["items"] and {"id", "body", "posted_at"} <= set(page["items"][0])
    import datasets

    assert datasets.load_from_disk(str(sample_dir / "hf/product_reviews")).num_rows == 100
    truth = [json.loads(x) for x in (sample_dir / "ground_truth/labels.jsonl").read_text().splitlines()]
    assert len({t["id"] for t in truth}) == len(truth)
    assert {t["label"] for t in truth if t["kind"] == "valid"} <= set(INTENTS)
    kinds = {k: sum(1 for t in truth if t["kind"] == k) for k in ("valid", "dup", "near", "lowq")}
    assert kinds == {"valid": summary["planted"]["valid"], "dup": summary["planted"]["exact_duplicates"],
                     "near": summary["planted"]["near_duplicates"],
                     "lowq": summary["planted"]["low_quality_or_foreign"]}
    assert kinds["dup"] > 0 and kinds["near"] > 0 and summary["planted"]["pii_records"] > 0
    ids = {t["id"] for t in truth}
    assert all(t["dup_of"] in ids for t in truth if t["kind"] == "dup")
    assert all(t["near_dup_of"] in ids for t in truth if t["kind"] == "near")


def test_malformed_lines_really_are(sample_dir: Path):
    day = json.loads((sample_dir / "sample_manifest.json").read_text())["days"][0]
    raw = (sample_dir / "landing" / f"dt={day}" / "email_tickets.jsonl").read_bytes().splitlines()
    failures = {"json": 0, "utf8": 0}
    for line in raw:
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            failures["utf8"] += 1
            continue
        try:
            json.loads(text)
        except json.JSONDecodeError:
            failures["json"] += 1
    assert failures == {"json": 1, "utf8": 1}


def test_planted_numbers_are_valid(sample_dir: Path):
    import re

    text = " ".join(p.read_text(encoding="utf-8", errors="replace")
                    for p in (sample_dir / "landing").rglob("*.jsonl"))
    cards = re.findall(r"\b(?:\d{4} ){3}\d{4}\b", text)
    ibans = re.findall(r"\b(?:DE|ES)\d{20,22}\b", text)
    assert cards and ibans
    assert all(luhn_ok(c) for c in cards) and all(iban_ok(i) for i in ibans)
    assert not luhn_ok("4111 1111 1111 1112") and not iban_ok("DE00370400440532013000")


@pytest.mark.parametrize("n", [5000])
def test_short_docs_fast_and_deterministic(n: int):
    t = time.perf_counter()
    docs = list(iter_short_docs(n, seed=3))
    assert time.perf_counter() - t < 2.0
    assert len(docs) == n and docs == list(iter_short_docs(n, seed=3))
    texts = [d["text"] for d in docs]
    assert 0.02 < 1 - len(set(texts)) / n < 0.10  # ~5% exact repeats
