"""`llmops pii-eval`: precision, recall and F2 of the configured redactor on a labelled sample,
exit 1 below the configured minimums, figures kept for the privacy impact assessment."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmops.privacy.pii_eval import LabeledSample, check_minimums, evaluate, load_labeled
from tests._cli_runner import run_llmops

pytestmark = pytest.mark.slow


def _row(text: str, *values: tuple[str, str], lang: str | None = None) -> dict:
    spans = []
    for value, entity in values:
        start = text.index(value)
        spans.append({"start": start, "end": start + len(value), "entity": entity})
    return {"text": text, "spans": spans, **({"lang": lang} if lang else {})}


ROWS = [
    _row("Hi, this is John Smith, call me on (212) 736-4821.", ("John Smith", "PERSON"), ("(212) 736-4821", "PHONE_NUMBER")),
    _row("Mail jane.doe@example.com about card 4111 1111 1111 1111.", ("jane.doe@example.com", "EMAIL_ADDRESS"),
         ("4111 1111 1111 1111", "CREDIT_CARD")),
    _row("Me llamo Xiomara Quispe, mi teléfono es 612 34 56 78.", ("Xiomara Quispe", "PERSON"),
         ("612 34 56 78", "PHONE_NUMBER"), lang="es"),
    # a phone number written in words escapes every recognizer: a leak the figures must show
    _row("My number is five five five, zero one nine nine.", ("five five five, zero one nine nine", "PHONE_NUMBER")),
    _row("Nothing personal here, the blender arrived broken.", ),
]


def _write(tmp_path: Path, rows: list[dict]) -> Path:
    path = tmp_path / "labeled.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return path


def test_figures_per_entity(redactor, tmp_path: Path):
    samples, digest = load_labeled(_write(tmp_path, ROWS))
    assert len(samples) == 5 and len(digest) == 64
    result = evaluate(redactor, samples)
    e = result["entities"]
    assert result["spans"] == 7
    assert e["PERSON"]["recall"] == 1.0 and e["EMAIL_ADDRESS"]["recall"] == 1.0
    assert e["PHONE_NUMBER"]["labelled"] == 3 and e["PHONE_NUMBER"]["removed"] == 2
    assert e["PHONE_NUMBER"]["recall"] == pytest.approx(0.6667)
    assert e["CREDIT_CARD"]["precision"] == 1.0
    p, r = e["PHONE_NUMBER"]["precision"], e["PHONE_NUMBER"]["recall"]
    assert e["PHONE_NUMBER"]["f2"] == pytest.approx(5 * p * r / (4 * p + r), abs=1e-4)


def test_a_partly_redacted_span_is_a_leak_and_a_stray_finding_costs_precision():
    from types import SimpleNamespace as F

    class Fixed:  # a redactor with known findings: the scoring rules alone
        entities = ["PERSON", "PHONE_NUMBER"]

        def findings_batch(self, texts, langs):
            return [[F(entity_type="PERSON", start=0, end=4), F(entity_type="PHONE_NUMBER", start=10, end=16),
                     F(entity_type="PERSON", start=28, end=32)]]

    text = "Jane Roe, +1 555 0100 or at Acme"  # labelled: the name and the phone number, each whole
    assert (text[0:4], text[10:16], text[28:32]) == ("Jane", "+1 555", "Acme")
    sample = LabeledSample(text, [(0, 8, "PERSON"), (10, 21, "PHONE_NUMBER")])
    e = evaluate(Fixed(), [sample])["entities"]
    assert e["PERSON"]["removed"] == 0, "'Roe' is left: a leak"
    assert e["PHONE_NUMBER"]["removed"] == 0, "'0100' is left"
    assert (e["PERSON"]["found"], e["PERSON"]["found_labelled"], e["PERSON"]["precision"]) == (2, 1, 0.5)
    assert e["PHONE_NUMBER"]["precision"] == 1.0  # it touches the labelled number
    covered = LabeledSample("Jane Roe", [(0, 8, "PERSON")])

    class Whole(Fixed):
        def findings_batch(self, texts, langs):
            return [[F(entity_type="LOCATION", start=0, end=4), F(entity_type="PERSON", start=5, end=8)]]

    # removed whole, by findings of any type (what matters is that nothing is left)
    assert evaluate(Whole(), [covered])["entities"]["PERSON"]["recall"] == 1.0


def test_minimums_name_the_entity_and_the_key():
    from llmops.config import PIIConfig

    cfg = PIIConfig(min_recall={"PHONE_NUMBER": 0.97, "*": 0.5}, min_precision={"*": 0.85})
    result = {"entities": {"PHONE_NUMBER": {"recall": 0.6667, "precision": 1.0},
                           "PERSON": {"recall": 1.0, "precision": 0.8},
                           "LOCATION": {"recall": None, "precision": 0.2}}}
    assert check_minimums(result, cfg) == [
        "PHONE_NUMBER recall 0.667 < 0.97 (pii.min_recall)",
        "PERSON precision 0.800 < 0.85 (pii.min_precision)",
        "LOCATION precision 0.200 < 0.85 (pii.min_precision)",
    ]
    with pytest.raises(ValueError, match="between 0 and 1"):
        PIIConfig(min_recall={"PERSON": 1.5})


@pytest.mark.parametrize(("line", "needle"), [
    ("not json", ":1: not JSON"),
    ('{"spans": []}', ":1: each line must be an object with a string `text`"),
    ('{"text": "abc", "spans": [{"start": 2, "end": 9, "entity": "PERSON"}]}', ":1: spans[0] needs integer"),
])
def test_a_malformed_file_names_the_line(tmp_path: Path, line: str, needle: str):
    path = tmp_path / "bad.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(ValueError, match=needle.replace("[", r"\[").replace("]", r"\]")):
        load_labeled(path)


def test_the_command_exits_by_the_minimums_and_the_assessment_shows_the_figures(tmp_path: Path, capfd):
    store = tmp_path / "store"
    labeled = _write(tmp_path, ROWS)
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"storage: {{root: {store}}}\n")
    res = run_llmops(capfd, "pii-eval", "--labeled", str(labeled), "--config", str(cfg))
    assert res.returncode == 1, res.stderr  # phone recall 0.667 < 0.97 (the shipped minimum)
    assert "BELOW MINIMUM: PHONE_NUMBER recall 0.667 < 0.97 (pii.min_recall)" in res.stdout
    for value in ("John Smith", "612 34 56 78", "jane.doe"):
        assert value not in res.stdout  # figures, never text
    kept = json.loads((store / "privacy/pii_eval/latest.json").read_text())
    assert kept["passed"] is False and kept["labeled"]["file"] == "labeled.jsonl"
    assert "John" not in json.dumps(kept)

    res = run_llmops(capfd, "pia", "--config", str(cfg))
    assert "| Redaction measured (llmops pii-eval) | BELOW MINIMUMS" in res.stdout
    assert "PHONE_NUMBER recall 0.67" in res.stdout and "Redaction measured below its minimums" in res.stdout

    cfg.write_text(f"storage: {{root: {store}}}\ncuration:\n  pii:\n    min_recall: {{PHONE_NUMBER: 0.6}}\n")
    res = run_llmops(capfd, "pii-eval", "--labeled", str(labeled), "--config", str(cfg), "--json")
    assert res.returncode == 0, res.stdout
    out = json.loads(res.stdout)
    assert out["passed"] is True and out["entities"]["PHONE_NUMBER"]["recall"] == pytest.approx(0.6667)

    res = run_llmops(capfd, "pii-eval", "--labeled", str(tmp_path / "missing.jsonl"), "--config", str(cfg))
    assert res.returncode == 2 and res.stderr.startswith("llmops: error:") and "not found" in res.stderr
