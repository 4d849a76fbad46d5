"""The HTML reports (evaluation, drift, privacy impact assessment) come from the Jinja2 templates in
include/templates: autoescaped, replaceable one by one from LLMOPS_TEMPLATES_DIR, and a missing
template is an error that names it."""

from __future__ import annotations

import re
from pathlib import Path

import jinja2
import pytest

from llmops import templates
from llmops.drift.report import render_html as drift_html
from llmops.evaluation.gate import Check, Decision
from llmops.evaluation.report import render_html as eval_html
from llmops.privacy.pia import render_html as pia_html
from tests._drift_data import make_rows

SCRIPT = '<script>alert("x")</script>'
ESCAPED = "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;"


def _eval_report(model: str = "models:/support-intent/7") -> dict:
    return {
        "suite": {"name": "support_intents", "version": 2, "task": "classification", "primary": "macro_f1",
                  "golden": {"name": "golden", "version": "v3", "sha256": "ab" * 32, "items": 150}},
        "model": model,
        "metrics": {"macro_f1": {"value": 0.8712, "ci": [0.81, 0.92]}, "accuracy": {"value": 0.9, "ci": None}},
        "slices": {"by": {"lang": {"en": {"n": 96, "metric": 0.91}, SCRIPT: {"n": 3, "metric": None,
                                                                              "skipped": "too_small"}}}},
        "per_class": {SCRIPT: {"precision": 0.9, "recall": 0.8, "f1": 0.85, "support": 14}},
        "confusion": {"labels": ["billing", SCRIPT], "matrix": [[5, 1], [0, 4]]},
        "pii": {"outputs": 10, "with_pii": 1, "leak_rate": 0.1, "entities": {"EMAIL_ADDRESS": 1}},
        "explanations": {"method": "integrated gradients", "steps": 8, "withheld": 0, "examples": [
            {"id": "g-1", "reasons": ["error"], "label": "billing", "prediction": SCRIPT,
             "tokens": ["my", " <b>", SCRIPT], "scores": [0.2, -0.5, 1.0], "delta": 0.01}]},
        "timing": {"examples": 10, "seconds": 0.5, "examples_per_s": 20.0},
    }


@pytest.fixture(scope="module")
def drift_report() -> dict:
    from llmops.drift.detect import analyze
    from llmops.drift.settings import DriftConfig

    cfg = DriftConfig.model_validate({"slices": ["lang"], "min_slice_size": 30})
    analysis = analyze(make_rows(200, 1), make_rows(200, 2, es_share=0.6), cfg)
    return {"night": "2026-12-03", "dataset": "support_messages",
            "window": {"first": "2026-11-27", "last": "2026-12-03", "curated_versions": {"2026-12-03": "c"}},
            "champion": {"version": "7"}, "reference_documents": 200, "current_documents": 200,
            "analysis": analysis, "breaches": analysis["breaches"], "drift": analysis["drift"],
            "performance": {"suites": {"support_intents": {"metric": "macro_f1", "value": 0.8, "at_promotion": 0.87,
                                                           "drop": 0.07, "breach": True}}},
            "drifted_slices": analysis["drifted_slices"], "trend": []}


def _pia_report() -> dict:
    return {"title": "Privacy impact assessment: support_messages", "generated_at": "2026-12-03T06:00:00+00:00",
            "sections": [{"title": "Scope", "text": ["Dataset `support_messages`.", f"Purpose: {SCRIPT}",
                                                     f"Key `{SCRIPT}`."]},
                         {"title": "Data sources", "text": [], "tables": [
                             {"columns": ["source", "kind"], "rows": [["tickets", SCRIPT], ["mail", 3]]}]}]}


@pytest.fixture
def rendered(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the templates rendered during the test."""
    names: list[str] = []
    original = templates.render

    def spy(name, context):
        names.append(name)
        return original(name, context)

    monkeypatch.setattr(templates, "render", spy)
    return names


def test_the_shipped_templates_are_next_to_the_package():
    assert templates.TEMPLATES_DIR.name == "templates" and templates.TEMPLATES_DIR.parent.name == "include"
    for name in ("_base.html.j2", "_macros.html.j2", "evaluation_report.html.j2", "drift_report.html.j2",
                 "pia.html.j2"):
        assert (templates.TEMPLATES_DIR / name).is_file(), name
    env = templates.environment()
    assert env.autoescape is True and env.undefined is jinja2.StrictUndefined
    assert templates.environment() is env  # cached


def test_the_shipped_templates_mark_nothing_safe():
    for path in templates.TEMPLATES_DIR.glob("*.j2"):
        text = path.read_text()
        assert not re.search(r"\|\s*safe\b|autoescape\s+false", text), path.name


def test_the_evaluation_report_renders_from_its_template(rendered):
    decision = Decision(False, [Check("pii_leaks", False, "1", "<= 0", f"1 leak {SCRIPT}")])
    page = eval_html(_eval_report(SCRIPT), decision=decision, champion=_eval_report(), title=f"eval {SCRIPT}")
    assert rendered == ["evaluation_report.html.j2"]
    assert page.startswith("<!DOCTYPE html>") and "td.num{text-align:right" in page  # _base.html.j2 and its CSS
    assert '<span class="verdict reject">REJECT</span>' in page and '<tr class="fail">' in page
    assert '<tr class="primary"><td>macro_f1 (primary)</td><td class="num">0.8712</td>' in page
    assert '<span class="tok" style="background:rgba(214,39,40,0.50)" title="-0.500"> &lt;b&gt;</span>' in page
    assert "<script" not in page.lower()
    # title and heading, model, the check's detail and reason, slice value, per-class label, confusion
    # header and row, prediction and token
    assert page.count(ESCAPED) == 11


def test_the_drift_report_renders_from_its_template(rendered, drift_report):
    report = {**drift_report, "dataset": SCRIPT, "night": f"night {SCRIPT}", "reference_name": SCRIPT}
    page = drift_html(report)
    assert rendered == ["drift_report.html.j2"]
    assert page.startswith("<!DOCTYPE html>") and "td.num{text-align:right" in page
    assert "<h2>Tests</h2>" in page and "<h2>Where: slices</h2>" in page and "<h2>Champion performance</h2>" in page
    assert '<td>support_intents (macro_f1)</td><td class="num">0.8000</td>' in page
    assert "<script" not in page.lower() and page.count(ESCAPED) == 4  # title, heading (2), reference
    assert f"<title>Drift night {ESCAPED}</title>" in page


def test_the_pia_renders_from_its_template(rendered):
    page = pia_html(_pia_report())
    assert rendered == ["pia.html.j2"]
    assert page.startswith("<!doctype html>")
    assert "<p>Dataset <code>support_messages</code>.</p>" in page
    assert f"<p>Key <code>{ESCAPED}</code>.</p>" in page and f"<td>{ESCAPED}</td>" in page
    assert "<td>mail</td><td>3</td>" in page
    assert "<script" not in page.lower() and page.count(ESCAPED) == 3


def test_a_template_in_the_override_folder_replaces_the_shipped_one(tmp_path, monkeypatch):
    (tmp_path / "evaluation_report.html.j2").write_text(
        '{% extends "_base.html.j2" %}{% block title %}Custom {{ title }}{% endblock %}'
        '{% block style %}{{ super() }}h1{color:teal}{% endblock %}'
        '{% block body %}<h1 class="custom">{{ header.model }}</h1>\n{% endblock %}')
    monkeypatch.setenv(templates.ENV_VAR, str(tmp_path))
    assert templates.search_path() == [tmp_path, templates.TEMPLATES_DIR]
    page = eval_html(_eval_report(SCRIPT), title="Eval")
    assert "<title>Custom Eval</title>" in page and f'<h1 class="custom">{ESCAPED}</h1>' in page
    assert "td.num{text-align:right" in page and "h1{color:teal}" in page  # the shipped base, extended
    assert "<h2>Metrics</h2>" not in page
    # the other reports still come from the shipped templates
    assert "<h2>Scope</h2>" in pia_html(_pia_report())
    monkeypatch.delenv(templates.ENV_VAR)
    assert "<h2>Metrics</h2>" in eval_html(_eval_report())


def test_a_missing_template_is_an_error_that_names_it(tmp_path, monkeypatch):
    with pytest.raises(jinja2.TemplateNotFound, match=r"'nope\.html\.j2' not found in search path"):
        templates.render("nope.html.j2", {})
    # the shipped folder without the PIA's template
    monkeypatch.setattr(templates, "TEMPLATES_DIR", tmp_path)
    with pytest.raises(jinja2.TemplateNotFound, match=rf"'pia\.html\.j2' not found in search path: '{tmp_path}'"):
        pia_html(_pia_report())
    # an override that extends a partial that is nowhere
    override = tmp_path / "override"
    override.mkdir()
    (override / "pia.html.j2").write_text('{% extends "_nowhere.html.j2" %}')
    monkeypatch.setenv(templates.ENV_VAR, str(override))
    with pytest.raises(jinja2.TemplateNotFound, match=r"'_nowhere\.html\.j2' not found"):
        pia_html(_pia_report())


def test_a_bad_override_folder_or_an_unknown_name_fails_loudly(tmp_path: Path, monkeypatch):
    monkeypatch.setenv(templates.ENV_VAR, str(tmp_path / "missing"))
    with pytest.raises(NotADirectoryError, match="LLMOPS_TEMPLATES_DIR=.*missing: no such folder"):
        pia_html(_pia_report())
    (tmp_path / "pia.html.j2").write_text("<h1>{{ title }}</h1>{{ no_such_value }}")
    monkeypatch.setenv(templates.ENV_VAR, str(tmp_path))
    with pytest.raises(jinja2.UndefinedError, match="no_such_value"):
        pia_html(_pia_report())
