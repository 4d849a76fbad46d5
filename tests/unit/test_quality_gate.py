"""Great Expectations gates: suites from files, custom expectations, policies, Data Docs."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from llmops.quality.gate import GateFailedError, make_docs_offline, run_gate
from llmops.quality.suites import SuiteError, SuiteSpec, load_suite

pytestmark = pytest.mark.slow

PARAMS = {"languages": ["en", "es"], "sources": ["mail", "chat"], "min_chars": 5, "max_chars": 200,
          "max_input_chars": 1000, "labels": ["billing", "refund"], "min_agreement": 0.6, "min_rows": 1}


def _curated(n: int = 6) -> pd.DataFrame:
    return pd.DataFrame({
        "id": [f"r{i}" for i in range(n)],
        "text": [f"message number {i} about a <EMAIL_ADDRESS> refund" for i in range(n)],
        "source": ["mail", "chat"] * (n // 2),
        "lang": ["en"] * n,
    })


def test_project_suites_load_and_resolve():
    for name in ("raw", "curated", "labeled", "eval"):
        spec = load_suite(name)
        assert spec.name == name and spec.version >= 1 and spec.expectations
        resolved = spec.resolved(PARAMS)
        assert all(not (isinstance(v, str) and v.startswith("$")) for _, kw in resolved for v in kw.values())


def test_suite_errors_are_clear(tmp_path: Path):
    with pytest.raises(SuiteError, match="not found"):
        load_suite("nope")
    bad = tmp_path / "bad.yaml"
    bad.write_text("suite: x\nexpectations:\n  - [1, 2]\n")
    with pytest.raises(SuiteError, match=r"expectations\[0\]"):
        load_suite(str(bad))
    spec = SuiteSpec("x", 1, [("expect_column_values_to_be_in_set", {"column": "lang", "value_set": "$nope"})])
    with pytest.raises(SuiteError, match=r"\$nope"):
        spec.resolved(PARAMS)


def test_clean_data_passes_and_docs_are_offline(tmp_path: Path):
    out = run_gate(_curated(), load_suite("curated"), PARAMS, policy="fail", docs_dir=tmp_path / "docs")
    assert out.success and not out.failed and out.evaluated == 7
    entry = out.manifest_entry()
    assert entry["suite"] == "curated" and entry["gx_run_id"] and entry["failed_expectations"] == 0
    pages = list((tmp_path / "docs").rglob("*.html"))
    assert pages and (tmp_path / "docs" / "index.html").exists()
    for page in pages:
        html = page.read_text()
        assert "https://" not in re_src(html), page
    assert make_docs_offline(tmp_path / "docs") == 0  # idempotent


def test_the_docs_index_lists_each_validation_in_a_browser(tmp_path: Path):
    """GX's own index is drawn by the JavaScript that offline docs leave out: the published index is
    plain HTML listing each validation, and its link opens a result page that renders."""
    import shutil

    from playwright.sync_api import sync_playwright

    run_gate(_bad(), load_suite("curated"), PARAMS, policy="warn", docs_dir=tmp_path / "docs")
    index = (tmp_path / "docs" / "index.html").read_text()
    assert "<script" not in index and "Clear Filters" not in index and "FAILED" in index and "3 of 7" in index
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (scripts/setup_browser.sh installs it)")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.goto((tmp_path / "docs" / "index.html").as_uri())
            rows = page.locator("tbody tr")
            assert rows.count() == 1
            cells = rows.first.locator("td").all_inner_texts()
            assert (cells[0], cells[2], cells[3]) == ("curated", "FAILED", "3 of 7") and cells[1].endswith(" UTC")
            page.get_by_role("link", name="validation result").click()
            page.wait_for_load_state()
            text = page.inner_text("body")
            assert "Expectation Validation Result" in text and "Unsuccessful Expectations" in text
            assert "expect_column_values_to_be_unique" in text or "unique" in text
            assert "jane.doe@example.com" not in text  # the scrubbed result: no text values
        finally:
            browser.close()


def re_src(html: str) -> str:
    """What a browser loads by itself: every src, and the href of <link> tags (not <a> links)."""
    import re

    srcs = re.findall(r"\bsrc=\"([^\"]*)\"", html)
    links = re.findall(r"<link\b[^>]*href=\"([^\"]*)\"", html)
    return " ".join(srcs + links)


def _bad() -> pd.DataFrame:
    df = _curated(6)
    df.loc[1, "text"] = "contact me at jane.doe@example.com please"  # residual PII
    df.loc[2, "lang"] = "fr"  # language not allowed
    df.loc[3, "id"] = "r0"  # duplicate id (r0 and r3 both fail uniqueness)
    return df


def test_fail_policy_names_each_expectation():
    with pytest.raises(GateFailedError) as err:
        run_gate(_bad(), load_suite("curated"), PARAMS, policy="fail")
    lines = str(err.value).splitlines()
    assert lines[0].startswith("quality gate 'curated' failed (fail)")
    body = "\n".join(lines[1:])
    assert "expect_no_residual_pii(text): 1 unexpected of 6" in body
    assert "expect_column_values_to_be_in_set(lang): 1 unexpected of 6" in body
    assert "expect_column_values_to_be_unique(id): 2 unexpected of 6" in body
    assert "jane.doe@example.com" not in str(err.value)  # suspected PII never echoed


def test_warn_policy_records_and_continues():
    out = run_gate(_bad(), load_suite("curated"), PARAMS, policy="warn")
    assert not out.success and len(out.failed) == 3
    assert out.manifest_entry()["quarantined_rows"] == 0


def test_quarantine_policy_selects_exactly_the_failing_rows():
    out = run_gate(_bad(), load_suite("curated"), PARAMS, policy="quarantine")
    assert sorted(out.row_reasons) == [0, 1, 2, 3]
    assert out.row_reasons[1] == "gx:expect_no_residual_pii"
    assert out.row_reasons[2] == "gx:expect_column_values_to_be_in_set"
    assert out.manifest_entry()["quarantined_rows"] == 4


def test_quarantine_cannot_fix_table_level_failures():
    empty = _curated(2).iloc[0:0]
    with pytest.raises(GateFailedError, match="expect_table_row_count_to_be_between"):
        run_gate(empty, load_suite("curated"), PARAMS, policy="quarantine")


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("my card <CREDIT_CARD> was charged, mail <EMAIL_ADDRESS>, ssn ***********", True),
        ("call (415) 736-4821 tomorrow", False),
        ("card 4111 1111 1111 1111", False),
        ("iban DE89370400440532013000", False),
        ("from 203.0.113.9", False),
        ("ssn 536-22-1234", False),
        ("order 12345 costs 19.99 EUR, version 1.2.3", True),
    ],
)
def test_no_residual_pii_expectation(text: str, ok: bool):
    spec = SuiteSpec("pii", 1, [("expect_no_residual_pii", {})])
    out = run_gate(pd.DataFrame({"text": [text]}), spec, {}, policy="warn")
    assert out.success is ok


def test_label_agreement_expectation():
    spec = SuiteSpec("labels", 1, [("expect_label_agreement_at_least", {"min_value": 0.7})])
    df = pd.DataFrame({"agreement": [1.0, 0.8, 0.66, 0.7]})
    out = run_gate(df, spec, {}, policy="quarantine")
    assert list(out.row_reasons) == [2] and out.row_reasons[2] == "gx:expect_label_agreement_at_least"
    assert run_gate(df.iloc[[0, 1, 3]], spec, {}, policy="fail").success


def test_data_docs_never_show_text_values(tmp_path: Path):
    out = run_gate(_bad(), load_suite("curated"), PARAMS, policy="warn", docs_dir=tmp_path / "docs")
    assert not out.success
    html = " ".join(p.read_text() for p in (tmp_path / "docs").rglob("*.html"))
    assert "expect_column_values_to_be_unique" in html or "unique" in html
    assert "jane.doe@example.com" not in html
    assert "jane.doe@example.com" not in str(out.manifest_entry())


# --------------------------------------------------------------------------- in the pipeline
def test_curated_version_carries_validation_and_docs(tmp_path: Path, redactor):
    import json

    from llmops.config import load_config
    from llmops.stages import curate_paths

    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(json.dumps({"id": f"m{i}", "text": f"My parcel number {i} has not arrived yet, "
                                         "please send it again to my home address soon."}) for i in range(5)))
    m = curate_paths([src], tmp_path / "v", load_config(None), redactor=redactor)
    (entry,) = m["validations"]
    assert entry["suite"] == "curated" and entry["policy"] == "quarantine" and entry["success"] is True
    assert entry["evaluated_expectations"] == 7 and entry["gx_run_id"]
    assert (tmp_path / "v" / entry["data_docs"]).exists()


def test_version_writer_quarantine_moves_exactly_the_failing_rows(tmp_path: Path):
    from llmops.config import load_config
    from llmops.quality.apply import gate_writer
    from llmops.records import Record
    from llmops.storage import LocalStore
    from llmops.versions import VersionWriter, iter_batches

    cfg = load_config(None, overrides={"sources": [{"name": "s", "kind": "files", "paths": ["x"]}]})
    w = VersionWriter("ds", "curated", rows_per_file=3)
    texts = ["a clean message about my order", "write to bob@example.com now please", "another clean message",
             "un mensaje limpio sobre mi pedido", "card 4111 1111 1111 1111 was charged", "the last clean one"]
    w.counts.input = len(texts)
    w.add_records([Record(id=f"r{i}", text=t, source="s", lang="en") for i, t in enumerate(texts)])
    entry = gate_writer(w, cfg, "curated")
    assert entry is not None and entry["success"] is False and entry["quarantined_rows"] == 2
    m = w.finish(LocalStore(tmp_path))
    assert m["counts"]["kept"] == 4 and m["counts"]["quarantined"] == 2
    assert m["counts"]["by_reason"]["quarantined"] == {"gx:expect_no_residual_pii": 2}
    kept = [r["id"] for b in iter_batches(LocalStore(tmp_path), m) for r in b.to_pylist()]
    moved = [r for b in iter_batches(LocalStore(tmp_path), m, which="quarantine_files") for r in b.to_pylist()]
    assert kept == ["r0", "r2", "r3", "r5"] and sorted(r["id"] for r in moved) == ["r1", "r4"]
    assert all(r["stage"] == "gate" for r in moved)
    assert m["validations"][0]["unexpected"][0]["expectation"] == "expect_no_residual_pii"


def test_fail_policy_in_cli_gives_one_line(tmp_path: Path):
    import subprocess
    import sys

    cfg = tmp_path / "strict.yaml"
    cfg.write_text("curation:\n  pii: {enabled: false}\nquality:\n  curated: {suite: curated, policy: fail}\n")
    src = tmp_path / "in.jsonl"
    src.write_text('{"id": "1", "text": "please write to me at someone@example.com about the refund"}\n')
    out = tmp_path / "v"
    res = subprocess.run([str(Path(sys.executable).parent / "llmops"), "curate", str(src), "--out", str(out),
                          "--config", str(cfg)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 1 and len(res.stderr.strip().splitlines()) == 1
    assert "quality gate 'curated' failed (fail)" in res.stderr
    assert "expect_no_residual_pii(text): 1 unexpected of 1" in res.stderr
    assert "someone@example.com" not in res.stderr and not out.exists()


def test_results_logged_to_the_active_mlflow_run(tmp_path: Path):
    import mlflow

    from llmops.quality.gate import log_to_mlflow

    assert log_to_mlflow({"suite": "x", "success": True, "failed_expectations": 0, "rows": 1}) is False
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    try:
        out = run_gate(_bad(), load_suite("curated"), PARAMS, policy="warn", docs_dir=tmp_path / "docs")
        exp = mlflow.create_experiment("gates", artifact_location=(tmp_path / "artifacts").as_uri())
        with mlflow.start_run(experiment_id=exp) as run:
            assert log_to_mlflow(out.manifest_entry(), out.docs_dir) is True
        got = mlflow.get_run(run.info.run_id)
        arts = [a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id, "quality/curated")]
    finally:
        mlflow.set_tracking_uri(None)  # the fluent URI is process-wide
    assert got.data.metrics["gx.curated.success"] == 0.0 and got.data.metrics["gx.curated.failed_expectations"] == 3
    assert "quality/curated/validation.json" in arts and "quality/curated/data_docs" in arts
