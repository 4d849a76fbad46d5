"""The recall floors of ``curation.pii.min_recall`` hold where it matters: on a labelled multilingual
file fed through ``llmops curate`` with the shipped config, counted on the curated text itself.

The file is the PII benchmark's multilingual set (``benchmarks/bench_pii.py``: English and Spanish
support messages, names of many origins, phone numbers as ten countries write them, every card
brand, IBANs, e-mails, IPs, SSNs, and order numbers, amounts and dates that are not personal data).
A planted value counts as leaked when any of its words of 3+ letters (names) or groups of 4+ digits
or letters (numbers, addresses) is left whole in that record's curated text."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest
import yaml

from tests._cli_runner import run_llmops
from tests._modules import load_file

pytestmark = pytest.mark.slow


def _own_set(root: Path, n: int, seed: int) -> list:
    return load_file(root / "benchmarks/bench_pii.py", "bench_pii").own_set(n, seed)


def _pieces(value: str, entity: str) -> list[str]:
    if entity == "PERSON":
        return [w for w in re.findall(r"[^\W\d_]+", value) if len(w) >= 3]
    return [w for w in re.findall(r"[^\W_]+", value) if len(w) >= 4]


def test_curated_text_meets_the_recall_floors(root: Path, tmp_path: Path, capfd):
    samples = _own_set(root, 400, seed=11)
    src = tmp_path / "labelled.jsonl"
    src.write_text("".join(json.dumps({"id": f"r{i}", "text": s.text}, ensure_ascii=False) + "\n"
                           for i, s in enumerate(samples)))
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("curation:\n  dedup: {near: {enabled: false}}\n")  # templated messages are near-duplicates
    out = tmp_path / "v"
    res = run_llmops(capfd, "curate", str(src), "--out", str(out), "--config", str(cfg))
    assert res.returncode == 0, res.stderr

    import pyarrow.parquet as pq

    m = json.loads((out / "manifest.json").read_text())
    c = m["counts"]
    assert c["input"] == len(samples) == c["kept"] + c["duplicates"] + c["filtered"] + c["quarantined"]
    assert c["kept"] >= 0.9 * len(samples), c  # the floors are about kept records: most must be kept
    curated = {}
    for f in m["files"]:
        t = pq.read_table(out / f["path"])
        curated.update(zip(t.column("id").to_pylist(), t.column("text").to_pylist(), strict=True))

    planted, leaked, examples = Counter(), Counter(), []
    for i, s in enumerate(samples):
        text = curated.get(f"r{i}")
        if text is None:
            continue
        for start, end, entity in s.spans:
            value = s.text[start:end]
            planted[entity] += 1
            if any(re.search(rf"(?<![^\W_]){re.escape(p)}(?![^\W_])", text) for p in _pieces(value, entity)):
                leaked[entity] += 1
                examples.append((entity, value))
    from llmops.config import PIIConfig

    shipped = yaml.safe_load((root / "include/config/pipeline.yaml").read_text())["curation"]["pii"]
    floors = PIIConfig.model_validate(shipped).min_recall
    recall = {e: 1 - leaked[e] / n for e, n in planted.items()}
    assert set(recall) >= {"PERSON", "PHONE_NUMBER", "CREDIT_CARD", "EMAIL_ADDRESS", "IBAN_CODE", "IP_ADDRESS", "US_SSN"}
    below = {e: round(r, 3) for e, r in recall.items() if r < floors[e]}
    assert not below, (below, planted, examples[:20])
