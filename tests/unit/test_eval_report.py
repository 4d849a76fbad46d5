"""The evaluation report: PNG plots, a self-contained and escaped HTML page, and the log summary."""

from __future__ import annotations

import base64
import copy
import re

import pytest

from llmops.evaluation.gate import Check, Decision, render_table
from llmops.evaluation.report import markdown_summary, plots, render_html

PNG = b"\x89PNG\r\n\x1a\n"
SHA = "3f9a1c0b7e2d4a6f8b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a"
LABELS = ["billing", "cancel", "<b>x</b>", "shipping"]


def _report() -> dict:
    matrix = [[40, 2, 1, 3], [1, 35, 0, 2], [0, 1, 12, 1], [2, 3, 0, 47]]
    return {
        "suite": {"name": "support_intents", "version": 2, "task": "classification", "primary": "macro_f1",
                  "golden": {"name": "support_intents_golden", "version": "v3", "sha256": SHA, "items": 150}},
        "model": "models:/support-intent/7",
        "metrics": {
            "accuracy": {"value": 0.8933, "ci": [0.8421, 0.9387]},
            "macro_f1": {"value": 0.8712, "ci": [0.8105, 0.9244]},
            "ece": {"value": 0.0412, "ci": None, "lower_is_better": True},
        },
        "slices": {
            "by": {
                "lang": {"en": {"n": 96, "metric": 0.9102},
                         "es": {"n": 51, "metric": 0.7931},
                         "fr": {"n": 3, "metric": None, "skipped": "too_small"}},
                "source": {"app": {"n": 80, "metric": 0.8811}, "email": {"n": 70, "metric": 0.8604}},
            },
            "largest_gap": {"field": "lang", "best": "en", "worst": "es", "gap": 0.1171,
                            "best_metric": 0.9102, "worst_metric": 0.7931},
        },
        "robustness": {
            "typos": {"clean_accuracy": 0.8933, "perturbed_accuracy": 0.8467, "drop": 0.0466,
                      "flip_rate": 0.06, "changed": 0.98, "n": 150},
            "casing": {"clean_accuracy": 0.8933, "perturbed_accuracy": 0.8867, "drop": 0.0066,
                       "flip_rate": 0.0133, "changed": 1.0, "n": 150},
        },
        "predictions": ["billing"] * 150,
        "ids": [f"g-{i:04d}" for i in range(150)],
        "timing": {"examples": 150, "seconds": 1.87, "examples_per_s": 80.2},
        "confusion": {"labels": LABELS, "matrix": matrix},
        "per_class": {
            "billing": {"precision": 0.9302, "recall": 0.8696, "f1": 0.8989, "support": 46},
            "cancel": {"precision": 0.8537, "recall": 0.9211, "f1": 0.8861, "support": 38},
            "<b>x</b>": {"precision": 0.9231, "recall": 0.8571, "f1": 0.8889, "support": 14},
            "shipping": {"precision": 0.8868, "recall": 0.9038, "f1": 0.8952, "support": 52},
        },
        "pii": {"outputs": 150, "with_pii": 2, "leak_rate": 0.0133, "entities": {"EMAIL_ADDRESS": 2, "PERSON": 1},
                "examples": [17, 88]},
        "paired": {"macro_f1": (0.0421, 0.0113, 0.0735)},
    }


def _champion() -> dict:
    champ = copy.deepcopy(_report())
    champ["model"] = "models:/support-intent/5"
    champ["metrics"]["accuracy"] = {"value": 0.8533, "ci": [0.7968, 0.9067]}
    champ["metrics"]["macro_f1"] = {"value": 0.8291, "ci": [0.7702, 0.8850]}
    champ["metrics"]["ece"] = {"value": 0.0655, "ci": None, "lower_is_better": True}
    champ["slices"]["by"]["lang"]["es"]["metric"] = 0.8250
    champ.pop("paired")
    return champ


def _decision(promote: bool) -> Decision:
    checks = [
        Check("min_primary", True, "0.8712", ">= 0.75", "macro_f1 0.8712 below 0.75"),
        Check("beats_champion", True, "0.8712 vs 0.8291: +0.0421", "+0.01, CI above 0", ""),
        Check("slices", True, "0 regressed (worst +0.000)", "drop <= 0.05", "slices regressed: "),
        Check("robustness", True, "worst typos +0.047", "<= 0.1", "accuracy drops 0.047 under typos"),
        Check("pii_leaks", promote, "3 (EMAIL_ADDRESS, PERSON)", "<= 0", "3 personal-data entities in model outputs"),
    ]
    return Decision(promote, checks)


@pytest.fixture(scope="module")
def pngs(tmp_path_factory):
    return plots(_report(), tmp_path_factory.mktemp("plots"))


def test_plots_are_written_as_pngs(pngs, tmp_path):
    assert set(pngs) == {"confusion_matrix", "slices", "robustness"}
    for name, path in pngs.items():
        assert path.name == f"{name}.png" and path.is_file()
        assert path.read_bytes()[:8] == PNG
        assert path.stat().st_size > 2000


def test_a_plot_without_data_is_skipped(tmp_path):
    report = _report()
    del report["confusion"]
    report["robustness"] = {}
    report["slices"] = {"by": {}, "largest_gap": None}
    assert plots(report, tmp_path / "none") == {}
    report = _report()
    report["robustness"] = {"typos": {"drop": 0.02}}  # no accuracies: nothing to draw
    assert set(plots(report, tmp_path / "some")) == {"confusion_matrix", "slices"}


def test_labels_are_drawn_literally(tmp_path):
    report = _report()
    report["confusion"]["labels"] = ["$5 refund $", "$a^{$", "^c", "{d}"]  # unescaped, "$a^{$" fails to draw
    report["slices"]["by"]["lang"]["$x$"] = {"n": 2, "metric": None, "skipped": "too_small"}
    report["robustness"]["$typos$"] = report["robustness"].pop("typos")
    written = plots(report, tmp_path)
    assert len(written) == 3 and all(p.read_bytes()[:8] == PNG for p in written.values())


def test_html_holds_the_numbers_the_decision_and_the_plots(pngs):
    report = _report()
    decision = _decision(promote=False)
    page = render_html(report, decision=decision, champion=_champion(), plots=pngs)
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    # header
    assert "models:/support-intent/7" in page and "support_intents@2" in page
    assert "support_intents_golden version v3" in page and SHA[:12] in page and SHA not in page
    # gate
    assert "REJECT" in page and "PROMOTE" not in page
    assert "FAIL" in page and '<tr class="fail">' in page
    for reason in decision.reasons:
        assert reason in page
    # metrics with CIs, champion and deltas
    for text in ("0.8933", "0.8421 .. 0.9387", "0.8712", "0.8105 .. 0.9244", "0.0412",
                 "0.8291", "0.7702 .. 0.8850", "+0.0421", "-0.0243"):
        assert text in page, text
    assert re.search(r'<td class="num better">-0\.0243</td>', page)  # lower ece is better
    assert "0.0113 .. 0.0735" in page  # paired bootstrap CI
    # per class, slices (largest gap highlighted, skipped slice shown), robustness, PII, timing
    assert "0.9302" in page and "0.9211" in page
    for text in ("0.9102", "0.7931", "0.8250", "0.8811", "0.8604", "skipped: too_small", "0.1171"):
        assert text in page, text
    assert page.count('<tr class="gap">') >= 2 and '<tr class="skipped">' in page
    assert "0.8467" in page and "0.0466" in page and "0.0600" in page
    assert "EMAIL_ADDRESS" in page and "0.0133" in page
    assert "80.2" in page and "1.87" in page
    # plots embedded
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == 3 and all(base64.b64decode(img)[:8] == PNG for img in images)


def test_html_is_self_contained_and_escaped(pngs):
    report = _report()
    report["model"] = 'models:/a"<script>alert(1)</script>'
    page = render_html(report, decision=_decision(promote=True), champion=_champion(), plots=pngs,
                       title="<i>eval</i> & more")
    assert "PROMOTE" in page and "REJECT" not in page
    low = page.lower()
    assert "http://" not in low and "https://" not in low and "<script" not in low
    assert "<link" not in low and "@import" not in low
    assert "<b>x</b>" not in page and "&lt;b&gt;x&lt;/b&gt;" in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<title>&lt;i&gt;eval&lt;/i&gt; &amp; more</title>" in page


def test_html_without_optional_parts():
    report = _report()
    for key in ("pii", "robustness", "confusion", "per_class", "paired"):
        del report[key]
    page = render_html(report)
    assert "0.8712" in page and "Promotion gate" not in page and "PII probe" not in page
    assert "<img" not in page and "champion" not in page


def test_markdown_summary_for_logs():
    decision = _decision(promote=False)
    text = markdown_summary(_report(), decision)
    assert "macro_f1" in text and "(primary)" in text and "0.8712" in text and "0.8105 .. 0.9244" in text
    assert "REJECT" in text and "pii_leaks" in text
    assert "lang en 0.9102 vs es 0.7931" in text and "1 slice(s) too small" in text
    assert "typos" in text and "EMAIL_ADDRESS 2" in text
    assert len(text.splitlines()) < 25
    assert "PROMOTE" in markdown_summary(_report(), _decision(promote=True))
    assert "Gate" not in markdown_summary(_report())
    # agrees with the gate's own table on the verdict
    assert "REJECT" in render_table(decision)
