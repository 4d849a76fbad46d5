"""Decontamination: training data never holds an evaluation suite's golden items, and the runs and
reports say how many it held."""

from __future__ import annotations

import json

import pytest

from llmops.evaluation.golden import load_golden
from llmops.evaluation.promotion import contamination
from llmops.evaluation.report import markdown_summary, render_html
from llmops.evaluation.suites import load_suite
from llmops.training.decontam import GoldenIndex, decontaminate, golden_index


@pytest.fixture(scope="module")
def golden() -> list[dict]:
    rows, _ = load_golden("support_intents", "v1")
    return rows


def _training_rows(golden: list[dict]) -> list[dict]:
    a, b, c = golden[3], golden[60], golden[200]
    near = c["text"].upper().replace(".", "!").replace(",", "") + " thanks"  # casing, punctuation, a word more
    return [
        {"id": "t-exact", "text": "  " + a["text"].replace(" ", "  ") + " ", "label": a["label"]},
        {"id": "t-near", "text": near, "label": c["label"]},
        {"id": "t-own-1", "text": "The parcel from the warehouse in Lyon never left the depot, can you check?",
         "label": "shipping"},
        {"id": "t-own-2", "text": "Please close my account and delete my saved addresses.", "label": "account_access"},
        {"id": "t-half", "text": b["text"][: len(b["text"]) // 3] + " but the rest of this message is my own words",
         "label": b["label"]},
    ]


def test_exact_and_near_duplicates_of_golden_items_are_removed_and_counted(golden):
    index = golden_index([load_suite("support_intents"), load_suite("support_intents_generative")])
    kept, report = decontaminate(_training_rows(golden), index)
    assert [r["id"] for r in kept] == ["t-own-1", "t-own-2", "t-half"]
    assert {(r["id"], r["reason"], r["golden_id"]) for r in report["removed"]} == {
        ("t-exact", "exact", golden[3]["id"]), ("t-near", "near", golden[200]["id"])}
    assert report["rows_checked"] == 5 and report["rows_removed"] == 2 and report["by_reason"] == {"exact": 1, "near": 1}
    # the generative suite reads the same golden set: the same findings, not counted twice
    for name in ("support_intents", "support_intents_generative"):
        suite = report["suites"][name]
        assert suite["items"] == 240 and suite["golden_items_found"] == 2
        assert suite["contamination_rate"] == round(2 / 240, 4)
    # ids and counts only: no golden or training text in the report
    dumped = json.dumps(report)
    assert not any(r["text"][:30] in dumped for r in golden)


def test_ngram_overlap_is_an_option(golden):
    b = golden[60]
    words = b["text"].split()
    row = {"id": "t-quote", "text": "Context of my own first. " + " ".join(words[:13]) + " and then my own ending here.",
           "label": b["label"]}
    suites = [load_suite("support_intents")]
    assert decontaminate([row], golden_index(suites))[1]["rows_removed"] == 0  # not a near duplicate
    kept, report = decontaminate([row], golden_index(suites, ngram=13))
    assert not kept and report["removed"][0]["reason"] == "ngram" and report["removed"][0]["golden_id"] == b["id"]
    assert decontaminate([row], golden_index(suites, ngram=20))[1]["rows_removed"] == 0


def test_a_golden_item_shorter_than_the_ngram_is_found_whole():
    index = GoldenIndex(ngram=13, jaccard=0.8)
    index.suites["s"] = {"golden": "g-v1", "sha256": "-", "items": 1}
    index.add("s", "g1", "Where is my parcel?")
    rows = [{"id": "in", "text": "Hello team. Where is my parcel? It was due on Monday and the tracking is silent."},
            {"id": "out", "text": "Where is my other parcel? It was due on Monday."}]
    kept, report = decontaminate(rows, index)
    assert [r["id"] for r in kept] == ["out"] and report["removed"][0]["reason"] == "ngram"


def test_the_evaluation_report_states_the_contamination_rate():
    params = {"decontamination.rows_checked": "300", "decontamination.rows_removed": "4",
              "decontamination.by_reason": '{"near": 4}', "decontamination.support_intents.golden_items": "240",
              "decontamination.support_intents.golden_items_found": "3",
              "decontamination.support_intents.contamination_rate": "0.0125"}
    found = contamination(params, "support_intents")
    assert found["checked"] and found["golden_items_found"] == 3 and found["rows_removed"] == 4
    report = {"suite": {"name": "support_intents", "version": 1, "task": "classification", "primary": "accuracy"},
              "model": "models:/support-intent/3", "metrics": {"accuracy": {"value": 0.9, "ci": [0.85, 0.94]}},
              "contamination": found}
    page = render_html(report)
    assert "Training data contamination" in page and "0.0125" in page and "removed before the split" in page
    assert "3/240 golden items (rate 0.0125)" in markdown_summary(report)
    assert contamination({"splits": "{}"}, "support_intents") == {"checked": False}
    report["contamination"] = {"checked": False}
    assert "Not recorded" in render_html(report) and "not recorded" in markdown_summary(report)
