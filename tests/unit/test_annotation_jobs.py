"""The annotation stage functions on a real store: privacy checks, export idempotency against the
MTurk service model (Stubber), budget, review/QC idempotency on the local crowd, extensions."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.stub import ANY, Stubber

from llmops.annotation import jobs
from llmops.annotation.backends import MTurkBackend
from llmops.annotation.hits import BudgetExceededError
from llmops.annotation.items import load_candidates
from llmops.annotation.localcrowd import LocalCrowd

DAG = "llm_annotation"
DAY = "2026-11-25"


class Clock:
    def __init__(self, t: float = 1_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def _prepare(cfg, store, manifest, redactor):
    return jobs.prepare_job(cfg, store=store, curated_version_id=manifest["id"], partition=DAY, dag_id=DAG,
                            redactor=redactor)


def _mturk_client():
    return boto3.client("mturk", region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")


# --------------------------------------------------------------------------- privacy
def test_export_refused_without_pii_redaction_in_the_manifest(curated_factory, redactor):
    cfg, store, manifest = curated_factory(10, privacy=False)
    with pytest.raises(jobs.PIIGuardError, match="no record of PII redaction"):
        _prepare(cfg, store, manifest, redactor)
    assert store.list("annotations/") == []


def test_second_pii_scan_blocks_with_ids_not_text(curated_factory, redactor):
    leaked = "Please call me back at 212-555-0187 or write to jane.roe@example.org about my refund"
    cfg, store, manifest = curated_factory(12, extra_texts={"leaky-1": leaked},
                                           overrides={"annotation": {"selection": {"size": 13}}})
    with pytest.raises(jobs.PIIGuardError) as err:
        _prepare(cfg, store, manifest, redactor)
    msg = str(err.value)
    assert "leaky-1" in msg and "EMAIL_ADDRESS" in msg and "PHONE_NUMBER" in msg
    assert "jane.roe" not in msg and "212-555" not in msg
    assert store.list("annotations/") == []  # nothing planned, nothing exported


def test_exclude_policy_quarantines_the_flagged_item(curated_factory, redactor):
    leaked = "My card 4111 1111 1111 1111 was charged twice for the same order, please refund"
    cfg, store, manifest = curated_factory(12, extra_texts={"leaky-1": leaked}, overrides={
        "annotation": {"selection": {"size": 13}, "pii_rescan": "exclude", "local": {"delay_s": [0, 0]}}})
    plan = _prepare(cfg, store, manifest, redactor)
    assert plan["excluded_pii"] == 1 and plan["items"] == 12
    items = store.read_bytes(f"annotations/{cfg.dataset}/jobs/{plan['job_id']}/items.jsonl").decode()
    assert "4111" not in items
    crowd = LocalCrowd(store, cfg.annotation.local, labels=cfg.annotation.task.labels, clock=Clock())
    jobs.export_job(cfg, store=store, job_id=plan["job_id"], backend=crowd)
    jobs.review_job(cfg, store=store, job_id=plan["job_id"], backend=crowd)
    m = jobs.publish_labels(cfg, store=store, job_id=plan["job_id"], producer={"kind": "test"})
    assert m["counts"]["input"] == 13
    assert m["counts"]["by_reason"]["quarantined"]["pii_rescan"] == 1
    assert m["annotation"]["pii_scan"]["excluded"] == ["leaky-1"]


def test_candidates_holding_a_golden_item_are_never_sent_to_the_crowd(curated_factory, redactor):
    from llmops.evaluation.golden import load_golden

    golden, _ = load_golden("support_intents", "v1")
    cfg, store, manifest = curated_factory(12, extra_texts={"gold-copy": golden[5]["text"]}, overrides={
        "annotation": {"selection": {"size": 13}, "local": {"delay_s": [0, 0]}},
        "training": {"decontamination": {"enabled": True}}})
    candidates = load_candidates(store, manifest, pool=100, seed=0)
    _, near = jobs._without_golden_items(cfg, [it for it in candidates if it.id != "gold-copy"])
    plan = _prepare(cfg, store, manifest, redactor)
    # the copy, and the messages the factory wrote that are near duplicates of golden items
    assert plan["excluded_golden"] == 1 + len(near) and plan["items"] == 12 - len(near)
    items = store.read_bytes(f"annotations/{cfg.dataset}/jobs/{plan['job_id']}/items.jsonl").decode()
    assert "gold-copy" not in items
    crowd = LocalCrowd(store, cfg.annotation.local, labels=cfg.annotation.task.labels, clock=Clock())
    jobs.export_job(cfg, store=store, job_id=plan["job_id"], backend=crowd)
    jobs.review_job(cfg, store=store, job_id=plan["job_id"], backend=crowd)
    m = jobs.publish_labels(cfg, store=store, job_id=plan["job_id"], producer={"kind": "test"})
    assert m["annotation"]["decontamination"] == {"excluded": 1 + len(near),
                                                  "by_reason": {"exact": 1, **({"near": len(near)} if near else {})}}
    # turned off, the item is a candidate like any other
    off = cfg.model_copy(update={"training": cfg.training.model_copy(update={
        "decontamination": cfg.training.decontamination.model_copy(update={"enabled": False})})})
    kept, excluded = jobs._without_golden_items(off, load_candidates(store, manifest, pool=100, seed=0))
    assert excluded == {} and "gold-copy" in {it.id for it in kept}


# --------------------------------------------------------------------------- export on MTurk
def test_export_creates_each_hit_once_with_its_token(curated_factory, redactor):
    cfg, store, manifest = curated_factory(20, overrides={"annotation": {"backend": "mturk"}})
    plan = _prepare(cfg, store, manifest, redactor)
    batches = json.loads(store.read_bytes(f"annotations/{cfg.dataset}/jobs/{plan['job_id']}/plan.json"))["batches"]
    assert len({b["token"] for b in batches}) == len(batches) == plan["hits"]
    client = _mturk_client()
    with Stubber(client) as stub:
        stub.add_response("create_hit_type", {"HITTypeId": "TYPE1"}, None)
        for n, b in enumerate(batches):
            stub.add_response("create_hit_with_hit_type",
                              {"HIT": {"HITId": f"HIT{n}", "HITTypeId": "TYPE1", "HITGroupId": "GROUP1"}},
                              {"HITTypeId": "TYPE1", "MaxAssignments": 3, "LifetimeInSeconds": ANY, "Question": ANY,
                               "RequesterAnnotation": f"llmops:{b['token']}", "UniqueRequestToken": b["token"]})
        out = jobs.export_job(cfg, store=store, job_id=plan["job_id"], backend=MTurkBackend(client))
        stub.assert_no_pending_responses()
    assert out["created_now"] == len(batches) and out["worker_url"].startswith("https://workersandbox.mturk.com/")
    # a retry or a backfill of the task: the ledger has every HIT, so not a single API call is made
    with Stubber(client) as stub:
        again = jobs.export_job(cfg, store=store, job_id=plan["job_id"], backend=MTurkBackend(client))
    assert again["created_now"] == 0 and again["hits"] == len(batches)
    ledger = jobs.read_ledger(store, cfg.dataset, plan["job_id"])
    assert sorted(h["hit_id"] for h in ledger["hits"].values()) == sorted(f"HIT{n}" for n in range(len(batches)))


def test_export_crash_midway_resumes_without_duplicates(curated_factory, redactor):
    from llmops.annotation.backends import CrowdError

    cfg, store, manifest = curated_factory(20, overrides={"annotation": {"backend": "mturk"}})
    plan = _prepare(cfg, store, manifest, redactor)
    client = _mturk_client()
    with Stubber(client) as stub:
        stub.add_response("create_hit_type", {"HITTypeId": "TYPE1"}, None)
        stub.add_response("create_hit_with_hit_type", {"HIT": {"HITId": "HIT0", "HITTypeId": "TYPE1", "HITGroupId": "G"}})
        stub.add_client_error("create_hit_with_hit_type", service_error_code="RequestError", http_status_code=400,
                              service_message="Insufficient funds")
        with pytest.raises(CrowdError, match="Insufficient funds"):
            jobs.export_job(cfg, store=store, job_id=plan["job_id"], backend=MTurkBackend(client))
    assert len(jobs.read_ledger(store, cfg.dataset, plan["job_id"])["hits"]) == 1
    with Stubber(client) as stub:  # the retry: no new HIT type, only the missing HITs
        for n in range(1, plan["hits"]):
            stub.add_response("create_hit_with_hit_type",
                              {"HIT": {"HITId": f"HIT{n}", "HITTypeId": "TYPE1", "HITGroupId": "G"}})
        out = jobs.export_job(cfg, store=store, job_id=plan["job_id"], backend=MTurkBackend(client))
        stub.assert_no_pending_responses()
    assert out["created_now"] == plan["hits"] - 1
    assert len(jobs.read_ledger(store, cfg.dataset, plan["job_id"])["hits"]) == plan["hits"]


def test_over_budget_fails_before_any_api_call(curated_factory, redactor):
    cfg, store, manifest = curated_factory(20, overrides={"annotation": {"backend": "mturk",
                                                                          "mturk": {"budget_usd": "1.00"}}})
    plan = _prepare(cfg, store, manifest, redactor)
    client = _mturk_client()
    with Stubber(client), pytest.raises(BudgetExceededError) as err:  # no response queued: any call fails
        jobs.export_job(cfg, store=store, job_id=plan["job_id"], backend=MTurkBackend(client))
    msg = str(err.value)
    assert f"{plan['hits']} HITs x 3 assignments" in msg and "budget_usd=$1.00" in msg and "No HIT was created" in msg
    assert jobs.read_ledger(store, cfg.dataset, plan["job_id"])["hits"] == {}


# --------------------------------------------------------------------------- review and QC
def test_review_rejects_only_gold_failures_and_is_idempotent(curated_factory, redactor):
    truth: dict[str, str] = {}
    cfg, store, manifest = curated_factory(40, truth=truth, overrides={"annotation": {
        # honest workers that rarely miss a gold item: only the spammers fall below 50% on gold
        "selection": {"size": 40}, "local": {"workers": 8, "spammers": 2, "delay_s": [1, 2], "accuracy": [0.97, 1.0]},
        "qc": {"bonus_usd": "0.02", "bonus_min_gold_accuracy": 0.9, "block_after_rejections": 2}}})
    clock = Clock()
    crowd = LocalCrowd(store, cfg.annotation.local, labels=cfg.annotation.task.labels, truth=truth, clock=clock)
    plan = _prepare(cfg, store, manifest, redactor)
    jobs.export_job(cfg, store=store, job_id=plan["job_id"], backend=crowd, now=clock.t)
    assert not jobs.job_progress(store, cfg.dataset, plan["job_id"], crowd)["done"]
    clock.t += 5
    assert jobs.job_progress(store, cfg.dataset, plan["job_id"], crowd)["done"]

    out = jobs.review_job(cfg, store=store, job_id=plan["job_id"], backend=crowd)
    assert out["approved"] + out["rejected"] == out["assignments"] == 3 * plan["hits"]
    assert out["rejected"] > 0 and out["blocked_now"], "spammers fail the gold items"
    answers = [json.loads(line) for line in store.read_bytes(
        f"annotations/{cfg.dataset}/jobs/{plan['job_id']}/answers.jsonl").decode().splitlines()]
    items = {json.loads(line)["id"]: json.loads(line) for line in store.read_bytes(
        f"annotations/{cfg.dataset}/jobs/{plan['job_id']}/items.jsonl").decode().splitlines()}
    for a in answers:
        gold_wrong = [i for i, lab in a["answers"].items() if items[i]["gold"] and lab != items[i]["gold"]]
        if a["action"] == "reject":
            assert gold_wrong, "an assignment is rejected only for wrong gold answers"
            assert a["worker_id"].endswith("S"), "only the simulated spammers are rejected here"
    calls = list(crowd.calls)
    assert any(c.startswith("bonus:") for c in calls)

    again = jobs.review_job(cfg, store=store, job_id=plan["job_id"], backend=crowd)
    assert crowd.calls == calls, "a second review approves, rejects, pays and blocks nothing"
    assert (again["approved"], again["rejected"]) == (out["approved"], out["rejected"])

    m = jobs.publish_labels(cfg, store=store, job_id=plan["job_id"], producer={"kind": "test"})
    assert m["counts"]["input"] == 40 == m["counts"]["kept"] + m["counts"]["quarantined"]
    assert m["annotation"]["cost_usd"]["bonuses"] != "0"
    assert all(w.startswith("w_") for w in m["annotation"]["workers"])
    assert "SIMW" not in json.dumps(m)


def test_deadline_extension_adds_time_and_assignments_once(curated_factory, redactor):
    cfg, store, manifest = curated_factory(10, overrides={"annotation": {
        "selection": {"size": 10}, "local": {"delay_s": [100, 200]},
        "wait": {"deadline_s": 50, "on_deadline": "extend", "extend_by_s": 3600, "extra_assignments": 1}}})
    clock = Clock()
    crowd = LocalCrowd(store, cfg.annotation.local, labels=cfg.annotation.task.labels, clock=clock)
    plan = _prepare(cfg, store, manifest, redactor)
    jobs.export_job(cfg, store=store, job_id=plan["job_id"], backend=crowd, now=clock.t)
    clock.t += 60
    before = jobs.job_progress(store, cfg.dataset, plan["job_id"], crowd)
    assert before["submitted"] == 0 and clock.t > before["deadline"]
    entry = jobs.extend_job(cfg, store=store, job_id=plan["job_id"], backend=crowd, extension=1, now=clock.t)
    assert len(entry["hits"]) == plan["hits"] and entry["deadline"] == clock.t + 3600
    after = jobs.job_progress(store, cfg.dataset, plan["job_id"], crowd)
    assert after["expected"] == before["expected"] + plan["hits"] and after["deadline"] == entry["deadline"]
    calls = list(crowd.calls)
    assert jobs.extend_job(cfg, store=store, job_id=plan["job_id"], backend=crowd, extension=1) == entry
    assert crowd.calls == calls
    clock.t += 400
    assert jobs.job_progress(store, cfg.dataset, plan["job_id"], crowd)["done"]


def test_several_curated_versions_make_one_job_covering_every_partition(curated_factory, redactor):
    from llmops.versions import latest_for_partition

    overrides = {"annotation": {"selection": {"size": 6}, "local": {"delay_s": [0, 0]}}}
    cfg, store, first = curated_factory(12, overrides=overrides, partition="2026-11-25")
    _, _, second = curated_factory(12, overrides=overrides, partition="2026-11-26")
    plan = jobs.prepare_job(cfg, store=store, curated_version_id=[second["id"], first["id"]], partition="2026-11-26",
                            dag_id=DAG, redactor=redactor)
    assert plan["items"] == 12 and plan["curated_versions"] == sorted([first["id"], second["id"]])
    again = jobs.prepare_job(cfg, store=store, curated_version_id=[first["id"], second["id"]], partition="2026-11-26",
                             dag_id=DAG, redactor=redactor)
    assert again["job_id"] == plan["job_id"]  # order of the events does not matter
    crowd = jobs.make_backend(cfg, store)
    jobs.export_job(cfg, store=store, job_id=plan["job_id"], backend=crowd)
    jobs.review_job(cfg, store=store, job_id=plan["job_id"], backend=crowd)
    m = jobs.publish_labels(cfg, store=store, job_id=plan["job_id"], producer={"kind": "test"})
    assert m["parents"] == sorted([first["id"], second["id"]])
    assert latest_for_partition(store, cfg.dataset, "labeled", "2026-11-25") == m["id"]
    assert latest_for_partition(store, cfg.dataset, "labeled", "2026-11-26") == m["id"]


def test_review_after_a_deadline_expires_the_unfinished_hits_once(curated_factory, redactor):
    cfg, store, manifest = curated_factory(10, overrides={"annotation": {
        "selection": {"size": 10}, "local": {"delay_s": [10, 1000]}}})
    clock = Clock()
    crowd = LocalCrowd(store, cfg.annotation.local, labels=cfg.annotation.task.labels, clock=clock)
    plan = _prepare(cfg, store, manifest, redactor)
    jobs.export_job(cfg, store=store, job_id=plan["job_id"], backend=crowd, now=clock.t)
    clock.t += 400  # some assignments are in, others are not (the wait proceeded on its deadline)
    progress = jobs.job_progress(store, cfg.dataset, plan["job_id"], crowd)
    assert 0 < progress["submitted"] < progress["expected"]
    out = jobs.review_job(cfg, store=store, job_id=plan["job_id"], backend=crowd)
    assert out["assignments"] == progress["submitted"] and out["hits_expired"] == progress["hits"] - progress["hits_done"]
    calls = list(crowd.calls)
    clock.t += 5000  # late workers can no longer submit to expired HITs
    assert jobs.job_progress(store, cfg.dataset, plan["job_id"], crowd)["submitted"] == progress["submitted"]
    jobs.review_job(cfg, store=store, job_id=plan["job_id"], backend=crowd)
    assert crowd.calls == calls


def test_a_focused_job_labels_only_the_drifted_slice(curated_factory, redactor):
    overrides = {"annotation": {"selection": {"size": 8}}}
    cfg, store, manifest = curated_factory(40, overrides=overrides)  # every 4th record is Spanish
    plain = _prepare(cfg, store, manifest, redactor)
    focused = jobs.prepare_job(cfg, store=store, curated_version_id=manifest["id"], partition=DAY, dag_id=DAG,
                               redactor=redactor, focus={"lang": ["es"]})
    assert focused["job_id"] != plain["job_id"] and focused["focus"] == {"lang": ["es"]}
    prefix = jobs.job_prefix(cfg.dataset, focused["job_id"])
    items = [json.loads(line) for line in store.read_bytes(f"{prefix}/items.jsonl").decode().splitlines()]
    chosen = [it for it in items if not it.get("gold")]
    assert chosen and all(it["lang"] == "es" for it in chosen)
    assert focused["items"] == len(chosen) <= 10  # only 10 Spanish records exist
    with pytest.raises(ValueError, match="focus field 'topic'"):
        jobs.prepare_job(cfg, store=store, curated_version_id=manifest["id"], partition=DAY, dag_id=DAG,
                         redactor=redactor, focus={"topic": ["x"]})
