"""The seeded sample corpus: determinism, file formats, ground truth and the planted problems."""

from __future__ import annotations

import csv
import difflib
import json
import re
import time
import unicodedata
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from llmops.sampledata import (
    CITIES,
    FIRST,
    INTENTS,
    LAST,
    PII_TYPES,
    generate,
    iban_ok,
    iter_short_docs,
    luhn_ok,
    make_iban,
    shingle_jaccard,
    write_jsonl,
)

CARD = re.compile(r"\b(?:\d{4}[ -]?){3}\d{4}\b")
IBAN = re.compile(r"\b(?:DE|ES)\d{20,22}\b", re.IGNORECASE)
SSN = re.compile(r"\b(\d{3})-(\d{2})-(\d{4})\b")
EMAIL = re.compile(r"[\w.+-]+@([\w-]+(?:\.[\w-]+)+)", re.IGNORECASE)
PHONE = re.compile(r"\(\d{3}\) \d{3}-\d{4}|\+1 \d{3}-\d{3}-\d{4}")
IPV4 = re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}\b")
URL = re.compile(r"https://[\w./-]+", re.IGNORECASE)
PATTERNS = {"CREDIT_CARD": CARD, "IBAN_CODE": IBAN, "US_SSN": SSN, "EMAIL_ADDRESS": EMAIL,
            "PHONE_NUMBER": PHONE, "IP_ADDRESS": IPV4, "URL": URL}
ISO_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


# --------------------------------------------------------------------------- helpers
def _all_files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _summary(root: Path) -> dict[str, Any]:
    return json.loads((root / "sample_manifest.json").read_text(encoding="utf-8"))


def _truth(root: Path) -> list[dict[str, Any]]:
    lines = (root / "ground_truth/labels.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def _email_objects(path: Path) -> list[Any]:
    """Every line of a JSONL file that decodes and parses (malformed ones are skipped)."""
    out = []
    for line in path.read_bytes().splitlines():
        try:
            out.append(json.loads(line.decode("utf-8")))
        except (UnicodeDecodeError, json.JSONDecodeError):
            continue
    return out


def _usable(text: object) -> bool:
    return isinstance(text, str) and text != "" and len(text) <= 40_000


def _texts(root: Path) -> dict[str, str]:
    """id -> text of every usable record in every source, read the way a consumer would."""
    texts: dict[str, str] = {}
    for day in _summary(root)["days"]:
        land = root / "landing" / f"dt={day}"
        for obj in _email_objects(land / "email_tickets.jsonl"):
            if isinstance(obj, dict) and _usable(obj.get("text")):
                texts[obj["id"]] = obj["text"]
        with (land / "chat_logs.csv").open(newline="", encoding="utf-8") as fh:
            texts.update({row["id"]: row["text"] for row in csv.DictReader(fh) if _usable(row["text"])})
        for row in pq.read_table(land / "forum_posts.parquet").to_pylist():
            if _usable(row["text"]):
                texts[row["id"]] = row["text"]
        page: str | None = "page-1.json"
        while page:
            payload = json.loads((root / "api" / f"dt={day}" / page).read_text(encoding="utf-8"))
            texts.update({item["id"]: item["body"] for item in payload["items"]})
            page = payload["next"]
    lines: dict[str, list[bytes]] = {}
    for entry in _truth(root):  # call notes have no ids: join on (file, line)
        if "txt_line" in entry:
            file, line = entry["txt_line"]["file"], entry["txt_line"]["line"]
            lines.setdefault(file, (root / file).read_bytes().split(b"\n"))
            texts[entry["id"]] = lines[file][line - 1].decode("utf-8")
    import datasets

    for row in datasets.load_from_disk(str(root / "hf/product_reviews")):
        texts[row["id"]] = row["text"]
    return texts


def _canon(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


# --------------------------------------------------------------------------- determinism
def test_same_seed_gives_identical_bytes_and_another_seed_differs(tmp_path: Path):
    a = generate(tmp_path / "a", seed=1, records_per_day=60, days=("2026-11-25",))
    b = generate(tmp_path / "b", seed=1, records_per_day=60, days=("2026-11-25",))
    c = generate(tmp_path / "c", seed=2, records_per_day=60, days=("2026-11-25",))
    files_a = _all_files(tmp_path / "a")
    assert a == b and files_a == _all_files(tmp_path / "b")  # the HF dataset included
    assert any(name.startswith("hf/product_reviews/") for name in files_a)
    files_c = _all_files(tmp_path / "c")
    assert a != c and files_a.keys() == files_c.keys()
    assert all(files_a[k] != files_c[k] for k in files_a if k.startswith("landing/"))


def test_adding_a_day_does_not_change_earlier_days(tmp_path: Path):
    generate(tmp_path / "one", seed=3, records_per_day=40, days=("2026-11-25",))
    generate(tmp_path / "two", seed=3, records_per_day=40, days=("2026-11-25", "2026-11-26"))
    one, two = _all_files(tmp_path / "one"), _all_files(tmp_path / "two")
    for name in one:
        if "dt=2026-11-25" in name:
            assert one[name] == two[name], name


def test_bad_arguments_are_rejected(tmp_path: Path):
    with pytest.raises(ValueError):
        generate(tmp_path, records_per_day=5)
    with pytest.raises(ValueError):
        generate(tmp_path, days=("25/11/2026",))
    with pytest.raises(ValueError):
        generate(tmp_path, days=())


# --------------------------------------------------------------------------- formats
def test_landing_files_parse_with_the_expected_fields(sample_dir: Path):
    summary = _summary(sample_dir)
    shares: Counter[str] = Counter()
    multiline_csv = quoted_csv = 0
    for day in summary["days"]:
        land = sample_dir / "landing" / f"dt={day}"
        assert sorted(p.name for p in land.iterdir()) == [
            "call_notes.txt", "chat_logs.csv", "email_tickets.jsonl", "forum_posts.parquet"]

        emails = [o for o in _email_objects(land / "email_tickets.jsonl")
                  if isinstance(o, dict) and isinstance(o.get("text"), str)]
        for obj in emails:
            assert set(obj) == {"id", "text", "created_at", "customer_tier", "channel"}
            assert obj["channel"] == "email" and obj["customer_tier"] in {"gold", "silver", "bronze"}
            assert ISO_UTC.match(obj["created_at"]) and obj["created_at"].startswith(day)
            assert obj["id"].startswith(f"email-{day}-")
        shares["email"] += len(emails)

        with (land / "chat_logs.csv").open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            rows = list(reader)
        assert reader.fieldnames == ["id", "text", "created_at", "agent", "channel"]
        assert all(r["channel"] == "chat" and ISO_UTC.match(r["created_at"]) for r in rows)
        assert sum(1 for r in rows if r["text"] == "") == 1
        multiline_csv += sum(1 for r in rows if "\n" in r["text"])
        quoted_csv += sum(1 for r in rows if '"' in r["text"] and "," in r["text"])
        shares["chat"] += len(rows) - 1

        table = pq.read_table(land / "forum_posts.parquet")
        assert table.schema.names == ["id", "text", "created_at", "thread", "channel"]
        assert all(t == pa.string() for t in table.schema.types)
        forum = table.to_pylist()
        assert sum(1 for r in forum if r["text"] is None) == 1
        shares["forum"] += len(forum) - 1

        notes = (land / "call_notes.txt").read_bytes().decode("utf-8").split("\n")
        assert notes[-1] == "" and all(line.strip() for line in notes[:-1])  # one record per line
        assert not any(c in line for line in notes for c in "\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029\x00")
        shares["notes"] += len(notes) - 1
        assert summary["files"][f"landing/dt={day}/call_notes.txt"] == len(notes) - 1
    assert multiline_csv and quoted_csv  # the CSV really needs quoting
    total = sum(shares.values())
    for channel, share in {"email": 0.40, "chat": 0.25, "forum": 0.20, "notes": 0.15}.items():
        assert abs(shares[channel] / total - share) < 0.05, (channel, shares)


def test_api_pages_chain_and_use_their_own_field_names(sample_dir: Path):
    for day in _summary(sample_dir)["days"]:
        folder, page, items = sample_dir / "api" / f"dt={day}", "page-1.json", []
        seen = []
        while page:
            seen.append(page)
            payload = json.loads((folder / page).read_text(encoding="utf-8"))
            assert set(payload) == {"items", "next"} and len(payload["items"]) <= 10
            items += payload["items"]
            page = payload["next"]
        assert seen == sorted(p.name for p in folder.iterdir()) or len(seen) == len(list(folder.iterdir()))
        assert len(items) == round(0.15 * 120)
        for item in items:
            assert set(item) == {"id", "body", "posted_at", "lang_hint"}
            assert item["lang_hint"] in {"en", "es"} and item["posted_at"].startswith(day)
            assert item["id"].startswith(f"api-{day}-")


def test_hf_dataset_loads(sample_dir: Path):
    import datasets

    ds = datasets.load_from_disk(str(sample_dir / "hf/product_reviews"))
    assert ds.num_rows == 100 and ds.column_names == ["id", "text", "created_at", "rating"]
    assert ds.features["rating"].dtype == "int64" and set(ds["rating"]) <= {1, 2, 3, 4, 5}
    assert len(set(ds["id"])) == 100 and all(ISO_UTC.match(t) for t in ds["created_at"])


# --------------------------------------------------------------------------- ground truth and counts
def test_ground_truth_has_one_entry_per_usable_record(sample_dir: Path):
    truth, texts = _truth(sample_dir), _texts(sample_dir)
    ids = [t["id"] for t in truth]
    assert len(ids) == len(set(ids)) and set(ids) == set(texts)
    for t in truth:
        assert set(t) >= {"id", "label", "lang", "pii_types", "dup_of", "near_dup_of", "kind"}
        assert set(t["pii_types"]) <= set(PII_TYPES)
        if t["kind"] in ("valid", "dup", "near"):
            assert t["label"] in INTENTS and t["lang"] in {"en", "es"}
        else:
            assert t["kind"] == "lowq" and (t["label"] is None or t["label"] in INTENTS) and not t["pii_types"]
        if t["channel"] == "notes":
            assert t["txt_line"]["file"] == f"landing/dt={t['day']}/call_notes.txt" and t["txt_line"]["line"] >= 1
        else:
            assert "txt_line" not in t


def test_summary_counts_match_ground_truth_and_files(sample_dir: Path):
    summary, truth = _summary(sample_dir), _truth(sample_dir)
    kinds = Counter(t["kind"] for t in truth)
    planted = summary["planted"]
    assert planted["valid"] == kinds["valid"] and planted["exact_duplicates"] == kinds["dup"]
    assert planted["near_duplicates"] == kinds["near"] and planted["low_quality_or_foreign"] == kinds["lowq"]
    assert planted["pii_records"] == sum(1 for t in truth if t["pii_types"])
    assert planted["ground_truth_records"] == len(truth)
    assert planted["malformed"] == sum(d["malformed"] for d in summary["by_day"].values()) == 2 * 9
    for day in summary["days"]:
        day_truth = [t for t in truth if t["day"] == day and t["channel"] != "reviews"]
        by_day = summary["by_day"][day]
        assert by_day["exact_duplicates"] == sum(1 for t in day_truth if t["kind"] == "dup") == round(0.05 * 120)
        assert by_day["near_duplicates"] == sum(1 for t in day_truth if t["kind"] == "near") == round(0.05 * 120)
        assert by_day["low_quality_or_foreign"] == round(0.04 * 120)
        lines = (sample_dir / "landing" / f"dt={day}" / "email_tickets.jsonl").read_bytes().splitlines()
        assert summary["files"][f"landing/dt={day}/email_tickets.jsonl"] == len(lines)
        assert summary["files"][f"landing/dt={day}/forum_posts.parquet"] == pq.read_metadata(
            sample_dir / "landing" / f"dt={day}" / "forum_posts.parquet").num_rows
        # every PII type is planted every day
        assert {p for t in day_truth for p in t["pii_types"]} == set(PII_TYPES)
    valid = [t for t in truth if t["kind"] == "valid"]
    assert 0.2 < sum(1 for t in valid if t["pii_types"]) / len(valid) < 0.4
    assert 0.15 < sum(1 for t in valid if t["lang"] == "es") / len(valid) < 0.35
    assert set(Counter(t["label"] for t in valid)) == set(INTENTS)


def test_summary_scales_with_records_per_day(tmp_path: Path):
    s = generate(tmp_path, seed=5, records_per_day=400, days=("2026-11-25",))
    day = s["by_day"]["2026-11-25"]
    assert day["exact_duplicates"] == 20 and day["near_duplicates"] == 20 and day["low_quality_or_foreign"] == 16
    assert day["malformed"] == 12 and sum(day["malformed_by_file"].values()) == 12
    assert sum(v for k, v in s["files"].items() if k.startswith("api/")) == 60
    assert json.loads((tmp_path / "sample_manifest.json").read_text()) == s


# --------------------------------------------------------------------------- planted problems
def test_exact_duplicates_differ_only_in_whitespace_case_or_normal_form(sample_dir: Path):
    truth, texts = _truth(sample_dir), _texts(sample_dir)
    by_id = {t["id"]: t for t in truth}
    variants = Counter()
    for t in truth:
        if t["kind"] != "dup":
            continue
        dup, src = texts[t["id"]], texts[t["dup_of"]]
        src_t = by_id[t["dup_of"]]
        assert src_t["kind"] == "valid" and (t["label"], t["lang"]) == (src_t["label"], src_t["lang"])
        assert _canon(dup) == _canon(src)
        variants[t["dup_variant"]] += 1
        if t["dup_variant"] == "whitespace":
            assert dup != src and dup.strip() == src.strip()
        elif t["dup_variant"] == "case":
            assert dup != src and dup in (src.lower(), src.upper())
        elif t["dup_variant"] == "nfd":
            assert dup != src and unicodedata.normalize("NFC", dup) == src
    assert variants["identical"] and variants["whitespace"] and variants["case"] and variants["nfd"]
    assert any(by_id[t["dup_of"]]["channel"] != t["channel"] for t in truth if t["kind"] == "dup")


def test_near_duplicates_are_similar_but_not_exact(sample_dir: Path):
    truth, texts = _truth(sample_dir), _texts(sample_dir)
    near = [t for t in truth if t["kind"] == "near"]
    assert near
    for t in near:
        a, b = texts[t["id"]], texts[t["near_dup_of"]]
        assert _canon(a) != _canon(b) and shingle_jaccard(a, b) >= 0.85
        ops = [op for op in difflib.SequenceMatcher(None, b.split(), a.split()).get_opcodes() if op[0] != "equal"]
        assert 1 <= len(ops) <= 3 and sum(max(i2 - i1, j2 - j1) for _, i1, i2, j1, j2 in ops) <= 3


def test_low_quality_bait(sample_dir: Path):
    truth, texts = _truth(sample_dir), _texts(sample_dir)
    bait = [t for t in truth if t["kind"] == "lowq"]
    assert {t["bait"] for t in bait} == {"short", "symbols", "repeated", "control", "foreign"}
    for t in bait:
        text = texts[t["id"]]
        if t["bait"] == "short":
            assert len(text) < 12
        elif t["bait"] == "symbols":
            assert not any(c.isalnum() for c in text)
        elif t["bait"] == "repeated":
            parts = text.split("\n") if "\n" in text else [text]
            assert len(text.split()) >= 16 and (len(parts) >= 8 or len(set(text.split())) <= 3)
        elif t["bait"] == "control":
            assert any(c in text for c in "\x00\x07\x1b") and t["label"] in INTENTS
        else:
            assert t["lang"] in {"fr", "de"} and t["label"] in INTENTS


def test_malformed_records_really_are(sample_dir: Path):
    truth_ids = {t["id"] for t in _truth(sample_dir)}
    for day in _summary(sample_dir)["days"]:
        raw = (sample_dir / "landing" / f"dt={day}" / "email_tickets.jsonl").read_bytes().splitlines()
        problems: Counter[str] = Counter()
        for line in raw:
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError:
                problems["invalid_utf8"] += 1
                assert b"\xff\xfe" in line
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError:
                problems["truncated"] += 1
                continue
            if not isinstance(obj, dict):
                problems["not_an_object"] += 1
            elif "text" not in obj:
                problems["missing_text"] += 1
            elif obj["text"] is None:
                problems["null_text"] += 1
            elif not isinstance(obj["text"], str):
                problems["number_text"] += 1
                assert obj["text"] == 12345
            elif len(obj["text"]) > 40_000:
                problems["oversized"] += 1
            else:
                continue
            if isinstance(obj, dict):
                assert obj["id"] not in truth_ids  # never labelled: curation must quarantine it
        assert problems == dict.fromkeys(("invalid_utf8", "truncated", "not_an_object", "missing_text",
                                          "null_text", "number_text", "oversized"), 1)


def test_planted_pii_values_are_valid_and_listed(sample_dir: Path):
    truth, texts = _truth(sample_dir), _texts(sample_dir)
    names = {f"{f} {la}".casefold() for f in FIRST for la in LAST}
    cities = {unicodedata.normalize("NFC", c).casefold() for cs in CITIES.values() for c in cs}
    seen: Counter[str] = Counter()
    for t in truth:
        text = unicodedata.normalize("NFC", texts[t["id"]])
        folded = text.casefold()
        for kind, rx in PATTERNS.items():
            found = rx.findall(text)
            # the ground truth lists exactly the pattern-detectable PII each text carries
            assert bool(found) == (kind in t["pii_types"]), (kind, t, text)
            seen[kind] += len(found)
        for card in CARD.findall(text):
            assert luhn_ok(card), card
        for iban in IBAN.findall(text):
            assert iban_ok(iban), iban
        for area, group, serial in SSN.findall(text):
            assert area not in ("000", "666") and not area.startswith("9") and group != "00" and serial != "0000"
        for domain in EMAIL.findall(text):
            assert domain.lower() in {"example.com", "example.org", "mail.example.net"}
        if "PERSON" in t["pii_types"]:
            assert any(n in folded for n in names), text
        if "LOCATION" in t["pii_types"]:
            assert any(c in folded for c in cities), text
    assert all(seen[k] for k in PATTERNS)


def test_checksum_helpers():
    assert luhn_ok("4111 1111 1111 1111") and luhn_ok("5555-5555-5555-4444")
    assert not luhn_ok("4111 1111 1111 1112") and not luhn_ok("1234")
    assert iban_ok("DE89 3704 0044 0532 0130 00") and iban_ok("ES9121000418450200051332")
    assert not iban_ok("DE88370400440532013000") and not iban_ok("DE00370400440532013000")
    assert make_iban("DE", "370400440532013000") == "DE89370400440532013000"
    assert make_iban("ES", "21000418450200051332") == "ES9121000418450200051332"


# --------------------------------------------------------------------------- short docs for benchmarks
def test_short_docs_are_fast_deterministic_and_planted():
    n = 20_000
    t = time.perf_counter()
    docs = list(iter_short_docs(n, seed=3))
    elapsed = time.perf_counter() - t
    assert elapsed < 2.0, f"{n / elapsed:.0f} docs/s"  # ~70k docs/s on a laptop core
    assert len(docs) == n and docs == list(iter_short_docs(n, seed=3))
    assert docs != list(iter_short_docs(n, seed=4))
    assert all(set(d) == {"id", "text", "created_at"} for d in docs) and len({d["id"] for d in docs}) == n
    texts = [d["text"] for d in docs]
    assert 0.03 < 1 - len(set(texts)) / n < 0.08  # ~5% exact repeats
    with_pii = sum(1 for x in texts if any(rx.search(x) for rx in PATTERNS.values()))
    assert 0.04 < with_pii / n < 0.15  # ~10% carry PII (7 of the 9 types are pattern-detectable)
    assert all(8 <= len(x.split()) <= 60 for x in texts)


def test_write_jsonl_round_trips(tmp_path: Path):
    docs = list(iter_short_docs(50, seed=1))
    path = tmp_path / "nested" / "docs.jsonl"
    assert write_jsonl(path, docs) == 50
    assert [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] == docs
