"""`dag.test()` of llm_drift_nightly over three nights (a backfill's runs: each its own window):
quiet nights write a report and request nothing; the night with an injected topic and language
shift alerts through the file notifier, triggers labeling of its drifted slice and, as items of
that night were labeled since the champion's training, retraining; each once."""

from __future__ import annotations

import json
from pathlib import Path

import pendulum
import pytest

from tests._drift_data import make_rows
from tests.dags.test_llm_evaluation import _register

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
NIGHTS = ["2026-11-20", "2026-11-21", "2026-11-22"]
SHIFTED = "2026-11-22"


@pytest.fixture()
def pipeline(tmp_path: Path, monkeypatch):
    """A labeled version (the champion's training data), one curated partition per night (the last
    one shifted) and a champion whose version carries that lineage."""
    from mlflow import MlflowClient

    from llmops.annotation.jobs import labeled_schema
    from llmops.config import load_config
    from llmops.records import Record
    from llmops.stages import open_config_store
    from llmops.versions import VersionWriter

    monkeypatch.setenv("LLMOPS_HOME", str(tmp_path))
    cfg = load_config(ROOT / "include/config/pipeline.yaml")
    store = open_config_store(cfg)
    rows = []
    for r in make_rows(300, 1):
        rows.append({"id": r["id"], "text": r["text"], "source": r["source"], "lang": r["lang"], "created_at": None,
                     "meta": json.dumps(r["meta"]), "pii": [], "label": r["meta"]["topic"], "label_confidence": 0.9,
                     "agreement": 1.0, "n_votes": 3, "votes": "{}", "prelabel": None, "method": "dawid_skene"})
    writer = VersionWriter(cfg.dataset, "labeled", schema=labeled_schema())
    writer.counts.input = 260
    writer.add_rows(rows[:260])
    labeled = writer.finish(store, partition="2026-11-01")["id"]
    # items of the shifted night labeled since the champion's training: scored, and a reason to retrain now
    writer = VersionWriter(cfg.dataset, "labeled", schema=labeled_schema())
    writer.counts.input = 40
    writer.add_rows([{**r, "id": f"late-{r['id']}"} for r in rows[260:]])
    writer.finish(store, partition=SHIFTED)
    shift = {"en": ["billing", "shipping", "account"], "es": ["gardening"]}
    for k, night in enumerate(NIGHTS):
        made = make_rows(300, 100 + k, **({"es_share": 0.6, "topics": shift} if night == SHIFTED else {}))
        writer = VersionWriter(cfg.dataset, "curated")
        writer.counts.input = len(made)
        writer.add_records([Record(r["id"], r["text"], r["source"], r["lang"], meta=r["meta"]) for r in made])
        writer.finish(store, partition=night)
    uri = f"sqlite:///{tmp_path}/mlflow/mlflow.db"
    (tmp_path / "mlflow").mkdir()
    version = _register(tmp_path, uri, "champion")
    client = MlflowClient(tracking_uri=uri)
    client.set_model_version_tag("support-intent", version, "llmops.dataset_versions", labeled)
    client.set_registered_model_alias("support-intent", "champion", version)
    return cfg, store, client


def test_three_nights_three_reports_and_the_shifted_night_requests_labels(airflow_db, pipeline, tmp_path):
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    cfg, store, client = pipeline
    dag = DagBag(dag_folder=str(ROOT / "dags")).get_dag("llm_drift_nightly")
    conf = {"config_path": str(ROOT / "include/config/pipeline.yaml")}
    states = {}
    for night in NIGHTS:  # the run after each night, as the schedule (or a backfill) creates it
        when = pendulum.parse(night).add(days=1, hours=2)
        dr = dag.test(logical_date=when, run_after=when, run_conf=conf)
        states[night] = {ti.task_id: ti.state for ti in dr.get_task_instances()}
        assert dr.state == "success", states[night]

    reports = {n: json.loads(store.read_bytes(f"drift/{cfg.dataset}/{n}/report.json")) for n in NIGHTS}
    for night, rep in reports.items():
        assert rep["night"] == night and rep["window"]["curated_versions"].keys() == {night}
        assert store.exists(f"drift/{cfg.dataset}/{night}/report.html")
    assert [rep["drift"] for rep in reports.values()] == [False, False, True], {
        n: r["breaches"] for n, r in reports.items()}
    shifted = reports[SHIFTED]
    checks = {b["check"] for b in shifted["breaches"]}
    assert {"embedding", "feature:lang"} <= checks
    assert "lang=es" in shifted["drifted_slices"]
    assert [t["night"] for t in shifted["trend"]] == NIGHTS  # the report plots the earlier nights too
    html = store.read_bytes(f"drift/{cfg.dataset}/{SHIFTED}/report.html").decode()
    assert "DRIFT" in html and "lang=es" in html and "data:image/png;base64," in html
    for text in ("semillas de tomate", "invoice"):
        assert text not in html and text not in json.dumps(shifted)  # numbers, never documents

    # the watchdog ran every night: everything published is recent, so nothing is overdue or triggered
    assert shifted["watchdog"] == {"max_age_hours": 36, "unlabeled": [], "unevaluated": [], "overdue": False}
    assert "Watchdog" in html and all(states[n]["catch_up_labels"] == "skipped" for n in NIGHTS)
    for night in NIGHTS[:2]:
        assert states[night]["alert"] == "success" and states[night]["request_labels"] == "skipped"
    assert states[SHIFTED]["request_labels"] == "success" and states[SHIFTED]["retrain"] == "success"
    assert shifted["performance"]["labeled"]["items"] == 40 and len(shifted["new_labeled_versions"]) == 1
    assert reports[NIGHTS[0]]["performance"]["labeled"] is None
    assert shifted["performance"]["suites"]["support_intents"]["metric"] == "macro_f1"
    alerts = [json.loads(line) for line in (tmp_path / "alerts" / "drift.jsonl").read_text().splitlines()]
    assert [a["night"] for a in alerts] == [SHIFTED] and "lang=es" in alerts[0]["text"]
    with create_session() as session:
        runs = session.scalars(select(DagRun).where(DagRun.dag_id == "llm_annotation",
                                                    DagRun.run_id.startswith("drift__"))).all()
        assert [(r.run_id, r.conf["partition"]) for r in runs] == [(f"drift__{SHIFTED}", SHIFTED)]
        focus = runs[0].conf["focus"]  # labeling goes where the data moved
        assert list(focus) == ["lang"] and "es" in focus["lang"]
        retrain = session.scalars(select(DagRun).where(DagRun.dag_id == "llm_fine_tuning",
                                                       DagRun.run_id.startswith("drift__"))).all()
        assert [r.run_id for r in retrain] == [f"drift__{SHIFTED}"]
    mlflow_runs = client.search_runs([client.get_experiment_by_name("llm_drift").experiment_id])
    assert sorted(r.data.tags["llmops.night"] for r in mlflow_runs) == NIGHTS
    assert {a.path for a in client.list_artifacts(shifted_run(mlflow_runs), "drift")} == {
        "drift/report.html", "drift/report.json"}

    # the shifted night again (a retry / cleared run): same report key, same MLflow run, no second
    # alert line, no second labeling run
    when = pendulum.parse(SHIFTED).add(days=1, hours=2)
    dr = dag.test(logical_date=when, run_after=when, run_conf=conf)
    assert dr.state == "success"
    assert len((tmp_path / "alerts" / "drift.jsonl").read_text().splitlines()) == 1
    with create_session() as session:
        for dag_id in ("llm_annotation", "llm_fine_tuning"):
            assert len(session.scalars(select(DagRun).where(DagRun.dag_id == dag_id,
                                                            DagRun.run_id.startswith("drift__"))).all()) == 1
    assert len(client.search_runs([client.get_experiment_by_name("llm_drift").experiment_id])) == 3


def shifted_run(runs):
    return next(r.info.run_id for r in runs if r.data.tags["llmops.night"] == SHIFTED)


def test_the_night_of_a_manual_run_without_a_logical_date():
    """A run triggered through the REST API or the CLI has no logical date and no data interval:
    it analyses the ``night`` param, else the day before it was triggered."""
    import importlib.util
    from types import SimpleNamespace

    spec = importlib.util.spec_from_file_location("drift_dag_module", ROOT / "dags" / "llm_drift_nightly.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    manual = {"dag_run": SimpleNamespace(run_after=pendulum.datetime(2026, 12, 5, 0, 44, tz="UTC")),
              "data_interval_end": None}
    assert str(module.night_of({"night": "2026-12-04"}, manual)) == "2026-12-04"
    assert str(module.night_of({"night": None}, manual)) == "2026-12-04"
    scheduled = {"data_interval_end": pendulum.datetime(2026, 12, 4, 2, tz="UTC"), "logical_date": None}
    assert str(module.night_of({}, scheduled)) == "2026-12-03"
