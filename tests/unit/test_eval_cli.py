"""`llmops evaluate` on a local model folder: report files and a readable summary."""

from __future__ import annotations

import json

import pytest

from tests._tiny_models import build_tiny_classifier

pytestmark = pytest.mark.slow


def test_llmops_evaluate_writes_the_report(tmp_path, capsys):
    from transformers import AutoModelForSequenceClassification

    from llmops.cli import main
    from llmops.evaluation.golden import load_golden

    rows, _ = load_golden("support_intents", "v1")
    labels = sorted({r["label"] for r in rows})
    folder = build_tiny_classifier(tmp_path / "clf", [r["text"] for r in rows], num_labels=len(labels))
    model = AutoModelForSequenceClassification.from_pretrained(folder)
    model.config.id2label = dict(enumerate(labels))
    model.config.label2id = {lab: i for i, lab in enumerate(labels)}
    model.save_pretrained(folder)

    assert main(["evaluate", "--model", str(folder), "--suite", "support_intents", "--out", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert "macro_f1" in out
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert report["suite"]["golden"]["items"] == 240 and set(report["robustness"]) == {
        "typos", "casing", "whitespace", "punctuation", "names"}
    m = report["metrics"]["macro_f1"]
    assert 0 <= m["ci"][0] <= m["value"] <= m["ci"][1] <= 1
    assert sum(map(sum, report["confusion"]["matrix"])) == 240
    ex = report["explanations"]
    errors = sum(1 for e in ex["examples"] if "error" in e["reasons"])
    assert errors == min(8, 240 - sum(report["confusion"]["matrix"][i][i] for i in range(6)))
    tagged = {r for e in ex["examples"] for r in e["reasons"]}
    assert {"slice lang=en", "slice lang=es", "slice source=chat", "slice source=email"} <= tagged
    assert all(len(e["tokens"]) == len(e["scores"]) > 0 for e in ex["examples"]) and ex["withheld"] == 0
    html = (tmp_path / "r" / "report.html").read_text()
    assert "support_intents" in html and "https://" not in html and "Why the model decided" in html
    assert main(["evaluate", "--model", str(folder), "--suite", "nope"]) == 2
    assert "available: ['support_intents', 'support_intents_generative']" in capsys.readouterr().err
