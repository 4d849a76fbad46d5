"""`dag.test()` of llm_annotation on the local simulated crowd: select -> export -> deferred wait
(trigger run inline) -> review -> publish, on a curated version of the sample corpus."""

from __future__ import annotations

import json
from pathlib import Path

import pendulum
import pytest
import yaml

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def dag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(ROOT / "dags")).get_dag("llm_annotation")


@pytest.fixture()
def curated(sample_dir: Path, tmp_path: Path, monkeypatch):
    """A config (file sources only) with its store under tmp_path, and one curated partition."""
    from llmops.config import load_config
    from llmops.stages import collect_raw, curate_version, open_config_store

    data = yaml.safe_load((ROOT / "include/config/pipeline.yaml").read_text())
    data["sources"] = [s for s in data["sources"] if s["kind"] == "files"]
    data["storage"] = {"root": str(tmp_path / "store")}
    data["annotation"]["selection"]["size"] = 30
    data["annotation"]["wait"]["poll_interval_s"] = 1
    # 3 of 5 workers per HIT: the two spammers answer in most HITs whatever the selected items are
    data["annotation"]["local"].update(workers=5, spammers=2)
    cfg_path = tmp_path / "pipeline.yaml"
    cfg_path.write_text(yaml.safe_dump(data))
    monkeypatch.setenv("LLMOPS_HOME", str(sample_dir))
    cfg = load_config(cfg_path)
    store = open_config_store(cfg)
    day = json.loads((sample_dir / "sample_manifest.json").read_text())["days"][0]
    raw = collect_raw(cfg, store=store, partition=day, producer={"kind": "test"})
    cur = curate_version(cfg, store=store, raw_version_id=raw["id"], partition=day, producer={"kind": "test"})
    return cfg_path, cfg, store, cur, day


def _run(dag, conf):
    dr = dag.test(logical_date=pendulum.parse("2026-11-27T12:00:00Z"), run_conf=conf)
    return dr, {ti.task_id: ti.state for ti in dr.get_task_instances()}


def test_dag_test_produces_a_labeled_version(airflow_db, dag, curated):
    from airflow.models.asset import AssetEvent
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    from llmops.versions import latest_for_partition, read_manifest

    cfg_path, cfg, store, cur, day = curated
    dr, states = _run(dag, {"config_path": str(cfg_path), "curated_version": cur["id"]})
    assert dr.state == "success", states

    vid = latest_for_partition(store, cfg.dataset, "labeled", day)
    m = read_manifest(store, cfg.dataset, "labeled", vid)
    assert m["parents"] == [cur["id"]]
    ann = m["annotation"]
    assert ann["backend"] == "local" and len(ann["hits"]) >= 6
    assert m["counts"]["input"] == 30 == m["counts"]["kept"] + m["counts"]["quarantined"]
    assert ann["assignments"]["submitted"] == 3 * len(ann["hits"])
    assert ann["gold"]["items"] >= 6 and ann["gold"]["answers"] >= 3 * 6
    # the honest workers (accuracy 0.75..0.95) are right on the control items; the job's overall
    # figure also counts the two spammers, whose favourite answer may or may not be the truth
    from llmops.annotation.qc import worker_ref

    honest = [ann["workers"][ref]["gold"] for ref in (worker_ref(f"SIMW{i:04d}H") for i in range(3))
              if ref in ann["workers"] and ann["workers"][ref]["gold"]]
    answered = sum(g["answered"] for g in honest)
    assert answered >= 6 and sum(g["correct"] for g in honest) / answered > 0.6, honest
    assert ann["blocked_workers"] or ann["assignments"]["rejected"], "the two spammers must be caught"
    assert [v["suite"] for v in m["validations"]] == ["labeled"]
    prefix = f"datasets/{cfg.dataset}/labeled/versions/{vid}"
    assert store.exists(f"{prefix}/exports/labels.jsonl") and store.exists(f"{prefix}/exports/label_studio.json")
    ls = json.loads(store.read_bytes(f"{prefix}/exports/label_studio.json"))
    assert len(ls) == m["counts"]["kept"] and ls[0]["annotations"][0]["result"][0]["value"]["choices"][0] in ann["labels"]

    with create_session() as session:
        events = session.scalars(select(AssetEvent).where(AssetEvent.source_run_id == dr.run_id)).all()
        assert [e.extra["version_id"] for e in events] == [vid]
        xcoms = session.scalars(select(XComModel).where(XComModel.run_id == dr.run_id)).all()
        payload = json.dumps([x.value for x in xcoms], default=str)
        assert "SIMW" not in payload  # worker ids stay in the ledger, never in XComs

    # a second run of the same request is the same job: no new HIT, no second review, same version
    ledger_key = f"annotations/{cfg.dataset}/jobs/{ann['job_id']}/ledger.json"
    hits_before = sorted(store.list(f"crowd/local/{cfg.dataset}/hits/"))
    reviews_before = {k: store.read_bytes(k) for k in store.list(f"crowd/local/{cfg.dataset}/reviews/")}
    dr2, states2 = _run(dag, {"config_path": str(cfg_path), "curated_version": cur["id"]})
    assert dr2.state == "success", states2
    assert sorted(store.list(f"crowd/local/{cfg.dataset}/hits/")) == hits_before
    assert {k: store.read_bytes(k) for k in store.list(f"crowd/local/{cfg.dataset}/reviews/")} == reviews_before
    assert latest_for_partition(store, cfg.dataset, "labeled", day) == vid
    assert json.loads(store.read_bytes(ledger_key))["labeled_version"] == vid

    # `llmops annotate` on the same curated version is the same job too: same version, no new HIT
    out = _annotate(["--curated", cur["id"], "--config", str(cfg_path), "--json"])
    assert out["job_id"] == ann["job_id"] and out["labeled_version"] == vid
    assert sorted(store.list(f"crowd/local/{cfg.dataset}/hits/")) == hits_before
    assert {k: store.read_bytes(k) for k in store.list(f"crowd/local/{cfg.dataset}/reviews/")} == reviews_before


def _annotate(argv: list[str]) -> dict:
    import contextlib
    import io

    from llmops.cli import main

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["annotate", *argv]) == 0
    return json.loads(buf.getvalue())


def test_llmops_annotate_makes_the_job_the_dag_would_and_a_second_call_creates_nothing(airflow_db, dag, curated):
    """From the shell first: exported without waiting, followed with --status, then waited for,
    reviewed and published; called again it creates no HIT; the DAG on the same curated version
    then finds the same job and publishes the same labeled version."""
    from llmops.versions import latest_for_partition

    cfg_path, cfg, store, cur, day = curated
    base = ["--curated", cur["id"], "--config", str(cfg_path), "--json"]
    exported = _annotate([*base, "--no-wait"])
    assert exported["status"] == "exported" and exported["hits"] >= 6 and exported["labeled_version"] is None
    assert exported["assignments_expected"] == 3 * exported["hits"] and exported["deadline"]
    status = _annotate(["--status", exported["job_id"], "--config", str(cfg_path), "--json"])
    assert status["job_id"] == exported["job_id"] and status["cost_estimate_usd"] == exported["cost_estimate_usd"]
    hits = sorted(store.list(f"crowd/local/{cfg.dataset}/hits/"))
    assert len(hits) == exported["hits"]

    done = _annotate(base)
    vid = done["labeled_version"]
    assert done["job_id"] == exported["job_id"] and vid.startswith("labeled-")
    assert latest_for_partition(store, cfg.dataset, "labeled", day) == vid
    assert sorted(store.list(f"crowd/local/{cfg.dataset}/hits/")) == hits  # no HIT added
    again = _annotate(base)
    assert again["labeled_version"] == vid and sorted(store.list(f"crowd/local/{cfg.dataset}/hits/")) == hits
    after = _annotate(["--status", exported["job_id"], "--config", str(cfg_path), "--json"])
    assert after["status"] == "published" and after["labeled_version"] == vid
    assert after["assignments_approved"] > 0 and float(after["cost_so_far_usd"]) > 0

    dr, states = _run(dag, {"config_path": str(cfg_path), "curated_version": cur["id"]})
    assert dr.state == "success", states
    assert sorted(store.list(f"crowd/local/{cfg.dataset}/hits/")) == hits
    assert latest_for_partition(store, cfg.dataset, "labeled", day) == vid


def test_over_budget_fails_before_any_hit(airflow_db, dag, curated, tmp_path: Path):
    cfg_path, cfg, store, cur, _ = curated
    data = yaml.safe_load(cfg_path.read_text())
    data["annotation"]["mturk"]["budget_usd"] = "1.00"
    over = tmp_path / "over.yaml"
    over.write_text(yaml.safe_dump(data))
    dr, states = _run(dag, {"config_path": str(over), "curated_version": cur["id"]})
    assert states["select"] == "success" and states["export"] == "failed", states
    assert store.list(f"crowd/local/{cfg.dataset}/hits/") == []


def test_dag_shape_and_links(airflow_db, dag):
    from llmops_airflow.links import HitGroupLink
    from llmops_airflow.sensors.annotation import AnnotationSensor

    assert [t.task_id for t in dag.topological_sort()] == ["select", "export", "wait", "review", "publish",
                                                             "catch_up"]
    assert any(isinstance(link, HitGroupLink) for link in dag.get_task("export").operator_extra_links)
    wait = dag.get_task("wait")
    assert isinstance(wait, AnnotationSensor) and wait.deferrable
    assert [a.uri for a in dag.get_task("publish").outlets] == ["x-llmops://datasets/support_messages/labeled"]
    assert [a.uri for a in dag.timetable.asset_condition.objects] == ["x-llmops://datasets/support_messages/curated"]


def test_runs_label_what_the_store_says_is_unlabeled(airflow_db, dag, curated, sample_dir: Path):
    """Reconciliation, not event bookkeeping: a run labels every current curated version that is not
    labeled yet (one whose asset event was dropped too, apache/airflow#56050); a run whose versions
    another run handled skips; the catch-up task asks for one more run only while something is left."""
    from airflow.sdk.exceptions import DagRunTriggerException

    from llmops.annotation.jobs import unlabeled_curated
    from llmops.stages import collect_raw, curate_version
    from llmops.versions import latest_for_partition, read_manifest
    from llmops_airflow.operators.annotation import CatchUpOperator

    cfg_path, cfg, store, cur, day = curated
    day2 = json.loads((sample_dir / "sample_manifest.json").read_text())["days"][1]
    raw2 = collect_raw(cfg, store=store, partition=day2, producer={"kind": "test"})
    cur2 = curate_version(cfg, store=store, raw_version_id=raw2["id"], partition=day2, producer={"kind": "test"})
    assert unlabeled_curated(cfg, store) == [(day, cur["id"]), (day2, cur2["id"])]

    # what a run's last task does while versions are unlabeled: one more run, with an id from the versions
    catch_up = CatchUpOperator(task_id="catch_up", config_path=str(cfg_path), trigger_dag_id="llm_annotation")
    with pytest.raises(DagRunTriggerException) as more:
        catch_up.execute({})
    assert more.value.trigger_dag_id == "llm_annotation" and more.value.dag_run_id.startswith("catch_up__")
    assert more.value.conf == {"config_path": str(cfg_path)} and more.value.skip_when_already_exists

    # a run without a version or partition (what the triggered run is) labels both partitions in one job
    dr, states = _run(dag, {"config_path": str(cfg_path)})
    assert dr.state == "success" and states["publish"] == "success" and states["catch_up"] == "success", states
    vid = latest_for_partition(store, cfg.dataset, "labeled", day2)
    assert sorted(read_manifest(store, cfg.dataset, "labeled", vid)["parents"]) == sorted([cur["id"], cur2["id"]])
    assert unlabeled_curated(cfg, store) == []
    assert catch_up.execute({}) is None  # nothing left: no further run

    # a second run (an event another run already handled) does nothing and succeeds: no new HIT
    hits = sorted(store.list(f"crowd/local/{cfg.dataset}/hits/"))
    dr2, states2 = _run(dag, {"config_path": str(cfg_path)})
    assert dr2.state == "success", states2
    assert states2["select"] == "skipped" and states2["export"] == "skipped", states2
    assert sorted(store.list(f"crowd/local/{cfg.dataset}/hits/")) == hits

    # a curation-config change re-curates day 1 with the same text: a new curated version, which the
    # next run labels by carrying the labels forward: no HIT, no payment
    data = yaml.safe_load(cfg_path.read_text())
    data["curation"]["filters"]["min_chars"] -= 1  # no sample message is that short: same kept text
    cfg_path.write_text(yaml.safe_dump(data))
    from llmops.config import load_config

    cfg2 = load_config(cfg_path)
    raw1 = read_manifest(store, cfg.dataset, "curated", cur["id"])["parents"][0]
    recurated = curate_version(cfg2, store=store, raw_version_id=raw1, partition=day, producer={"kind": "test"})
    assert recurated["id"] != cur["id"] and recurated["counts"]["kept"] == cur["counts"]["kept"]
    assert unlabeled_curated(cfg2, store) == [(day, recurated["id"])]
    reviews = sorted(store.list(f"crowd/local/{cfg.dataset}/reviews/"))
    dr3, states3 = _run(dag, {"config_path": str(cfg_path)})
    assert dr3.state == "success" and states3["publish"] == "success", states3
    assert sorted(store.list(f"crowd/local/{cfg.dataset}/hits/")) == hits, "no HIT for labeled text"
    assert sorted(store.list(f"crowd/local/{cfg.dataset}/reviews/")) == reviews, "nothing approved or paid"
    carried = read_manifest(store, cfg.dataset, "labeled", latest_for_partition(store, cfg.dataset, "labeled", day))
    assert carried["parents"] == [recurated["id"]] and carried["annotation"]["hits"] == []
    assert carried["annotation"]["carry_forward"]["bought"] == 0
    assert carried["annotation"]["carry_forward"]["carried"] == carried["counts"]["input"] > 0
    assert unlabeled_curated(cfg2, store) == []
