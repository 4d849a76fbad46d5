"""Never paying twice for a label: items are keyed by content and task version; a re-curated
version of labeled text buys nothing and carries the labels forward with their provenance; the
budget counts only new items; ``annotation.relabel`` decides what is bought again."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from llmops.annotation import jobs
from llmops.annotation.hits import BudgetExceededError
from llmops.annotation.items import iter_items
from llmops.annotation.labelindex import item_key, load_index, task_ref
from llmops.annotation.localcrowd import LocalCrowd
from llmops.config import PipelineConfig
from llmops.records import Record
from llmops.versions import VersionWriter, iter_batches, latest_for_partition

DAG = "llm_annotation"
DAY = "2026-11-25"
FAST = {"annotation": {"selection": {"size": 6}, "local": {"delay_s": [0, 0]}}}


def _recurate(cfg: PipelineConfig, store: Any, manifest: dict[str, Any], *, config: str,
              extra: dict[str, str] | None = None, edit: dict[str, str] | None = None) -> dict[str, Any]:
    """The same partition curated again under another curation config: the same records (``edit``
    replaces some texts, ``extra`` adds records), a new version id."""
    from llmops.stages import privacy_summary

    records = []
    for it in iter_items(store, manifest):
        records.append(Record(it.id, (edit or {}).get(it.id, it.text), it.source, it.lang, meta=it.meta))
    for rid, text in (extra or {}).items():
        records.append(Record(rid, text, "email", "en"))
    writer = VersionWriter(cfg.dataset, "curated", config_hash=config, extra={"privacy": privacy_summary(cfg)})
    writer.counts.input = len(records)
    writer.add_records(records)
    out = writer.finish(store, partition=manifest["partition"])
    assert out["id"] != manifest["id"]
    return out


def _run_job(cfg: PipelineConfig, store: Any, versions: list[str], redactor: Any) -> tuple[dict, dict, LocalCrowd]:
    crowd = LocalCrowd(store, cfg.annotation.local, labels=cfg.annotation.task.labels, prefix="crowd/local/test")
    plan = jobs.prepare_job(cfg, store=store, curated_version_id=versions, partition=DAY, dag_id=DAG,
                            redactor=redactor)
    jobs.export_job(cfg, store=store, job_id=plan["job_id"], backend=crowd)
    assert jobs.job_progress(store, cfg.dataset, plan["job_id"], crowd)["done"]
    jobs.review_job(cfg, store=store, job_id=plan["job_id"], backend=crowd)
    labeled = jobs.publish_labels(cfg, store=store, job_id=plan["job_id"], producer={"kind": "test"})
    return plan, labeled, crowd


def _rows(store: Any, manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["id"]: r for b in iter_batches(store, manifest) for r in b.to_pylist()}


def test_a_recurated_version_of_labeled_text_buys_nothing_and_carries_the_labels(curated_factory, redactor):
    cfg, store, first = curated_factory(12, overrides=FAST)
    plan1, labeled1, crowd1 = _run_job(cfg, store, [first["id"]], redactor)
    assert plan1["items"] == 6 and plan1["hits"] > 0 and plan1["carried"] == 0
    rows1 = _rows(store, labeled1)
    assert len(rows1) == 6 and {r["label_job"] for r in rows1.values()} == {plan1["job_id"]}
    index = load_index(store, cfg.dataset, task_ref(cfg.annotation.task))
    assert len(index) == 6 and all(e.job_id == plan1["job_id"] for e in index.values())
    assert "text" not in json.dumps([e.to_json() for e in index.values()])  # keys and labels, no text
    assert not any(r["text"] in store.read_bytes(k).decode() for k in store.list("annotations/support_messages/label_index/")
                   for r in rows1.values())

    # a curation-config change: a new curated version of the same text
    second = _recurate(cfg, store, first, config="another-curation-config")
    assert jobs.unlabeled_curated(cfg, store) == [(DAY, second["id"])]
    plan2, labeled2, crowd2 = _run_job(cfg, store, [second["id"]], redactor)
    assert plan2["job_id"] != plan1["job_id"]
    assert plan2["items"] == 0 and plan2["hits"] == 0 and plan2["carried"] == 6
    assert plan2["cost_estimate_usd"] == "0.00"
    assert not [c for c in crowd2.calls if c[0] in ("create_hit_type", "create_hit", "approve", "send_bonus")]
    # the new labeled version has the same labels, with where they came from
    rows2 = _rows(store, labeled2)
    assert labeled2["parents"] == [second["id"]] and labeled2["id"] != labeled1["id"]
    assert {i: r["label"] for i, r in rows2.items()} == {i: r["label"] for i, r in rows1.items()}
    for i, r in rows2.items():
        assert r["label_job"] == plan1["job_id"] and r["votes"] == rows1[i]["votes"]
        assert r["agreement"] == rows1[i]["agreement"] and r["method"] == rows1[i]["method"]
    ann = labeled2["annotation"]
    assert ann["hits"] == [] and ann["assignments"]["submitted"] == 0
    assert ann["cost_usd"]["approved_rewards_and_fees"] == "0.00"
    assert ann["carry_forward"]["carried"] == 6 and ann["carry_forward"]["bought"] == 0
    assert ann["carry_forward"]["carried_from"] == {plan1["job_id"]: 6}
    c = labeled2["counts"]
    assert c["input"] == 6 and c["kept"] == 6
    assert latest_for_partition(store, cfg.dataset, "labeled", DAY) == labeled2["id"]
    assert jobs.unlabeled_curated(cfg, store) == []


def test_only_new_text_is_bought_and_the_budget_counts_only_it(curated_factory, redactor):
    cfg, store, first = curated_factory(12, overrides=FAST)
    plan1, labeled1, _ = _run_job(cfg, store, [first["id"]], redactor)
    labeled_ids = set(_rows(store, labeled1))
    unlabeled = sorted({it.id for it in iter_items(store, first)} - labeled_ids)
    # one labeled record's text changed in the re-curation (a new key): it is new content
    changed = sorted(labeled_ids)[0]
    second = _recurate(cfg, store, first, config="c2", edit={changed: "Where is my parcel? It was due on Monday."})
    # 6 labeled items per version; 5 labels carry over, so one item is bought: 1 item + 1 gold in one
    # HIT (3 x $0.12), which fits a budget that 6 items (2 HITs, $0.72) would not
    cheap = cfg.model_copy(update={"annotation": cfg.annotation.model_copy(update={
        "mturk": cfg.annotation.mturk.model_copy(update={"budget_usd": Decimal("0.40")})})})
    plan2, labeled2, crowd2 = _run_job(cheap, store, [second["id"]], redactor)
    assert plan2["carried"] == 5 and plan2["items"] == 1 and plan2["hits"] == 1
    assert Decimal(plan2["cost_estimate_usd"]) <= Decimal("0.40")
    new = json.loads(store.read_bytes(f"annotations/{cfg.dataset}/jobs/{plan2['job_id']}/plan.json"))
    bought = [i for b in new["batches"] for i in b["items"] if not i.startswith("gold:")]
    assert len(bought) == 1 and bought[0] in [*unlabeled, changed]
    rows2 = _rows(store, labeled2)
    assert rows2[bought[0]]["label_job"] == plan2["job_id"]
    assert sum(r["label_job"] == plan1["job_id"] for r in rows2.values()) == 5
    # the same budget is too small for a first labeling of a partition (6 items, 2 HITs)
    _, _, fresh = curated_factory(12, overrides=FAST, partition="2026-11-26", prefix="new")
    p = jobs.prepare_job(cheap, store=store, curated_version_id=fresh["id"], partition="2026-11-26", dag_id=DAG,
                         redactor=redactor)
    assert p["items"] == 6 and p["carried"] == 0
    with pytest.raises(BudgetExceededError):
        jobs.export_job(cheap, store=store, job_id=p["job_id"], backend=crowd2)


def test_relabel_policy_and_task_version_decide_what_is_bought_again(curated_factory, redactor):
    cfg, store, first = curated_factory(12, overrides=FAST)
    plan1, labeled1, _ = _run_job(cfg, store, [first["id"]], redactor)
    rows1 = _rows(store, labeled1)
    second = _recurate(cfg, store, first, config="c2")

    def plan_with(update: dict[str, Any]) -> dict[str, Any]:
        a = cfg.annotation.model_copy(update=update)
        c = cfg.model_copy(update={"annotation": a})
        return jobs.prepare_job(c, store=store, curated_version_id=second["id"], partition=DAY, dag_id=DAG,
                                redactor=redactor)

    # low agreement: those items are candidates again (bought if chosen, carried if not), the
    # others carry over and count toward the 6 labeled items per version
    low = {i for i, r in rows1.items() if r["agreement"] < 1.0}
    assert low, "the simulated crowd (with spammers) disagrees on some items"
    p = plan_with({"relabel": cfg.annotation.relabel.model_copy(update={"below_agreement": 1.0})})
    assert p["items"] == len(low) and p["carried"] + p["relabeled"] == 6 and p["relabeled"] <= len(low)
    # a label dropped from the label set: its items are never carried with it
    dropped = sorted({r["label"] for r in rows1.values()})[0]
    n_dropped = sum(r["label"] == dropped for r in rows1.values())
    labels = [lab for lab in cfg.annotation.task.labels if lab != dropped]
    sel = cfg.annotation.selection
    p = plan_with({"task": cfg.annotation.task.model_copy(update={"labels": labels}),  # the gold set uses every label
                   "selection": sel.model_copy(update={"gold": sel.gold.model_copy(update={"path": None})})})
    assert p["carried"] == 6 - n_dropped and p["items"] == n_dropped
    carried = store.read_bytes(f"annotations/{cfg.dataset}/jobs/{p['job_id']}/carried.jsonl").decode()
    assert f'"label": "{dropped}"' not in carried
    # a new task version: nothing carries over
    p = plan_with({"task": cfg.annotation.task.model_copy(update={"version": "2"})})
    assert p["carried"] == 0 and p["items"] == 6


def test_content_key_ignores_case_width_and_spacing_but_not_the_task_version():
    ref = "intent@1"
    assert item_key("Where is my  PARCEL?", ref) == item_key("where is my parcel?", ref)
    assert item_key("ｗhere is my parcel?", ref) == item_key("where is my parcel?", ref)  # NFKC
    assert item_key("where is my parcel?", ref) != item_key("where is my parcel!", ref)
    assert item_key("where is my parcel?", ref) != item_key("where is my parcel?", "intent@2")


def test_erasure_scrub_drops_the_erased_records_labels(curated_factory, redactor):
    from llmops.privacy.erasure import Scrubber

    cfg, store, first = curated_factory(12, overrides=FAST)
    plan1, labeled1, _ = _run_job(cfg, store, [first["id"]], redactor)
    (key,) = store.list(f"annotations/{cfg.dataset}/label_index/")
    victim = sorted(_rows(store, labeled1))[0]
    scrub = Scrubber()
    scrub.ids.add(victim)
    new, removed = scrub.scrub(key, store.read_bytes(key))
    assert removed == 1 and new is not None and victim not in new.decode()


def test_content_keys_on_text_from_other_languages_and_scripts():
    """Faker text in eight locales (Latin, Cyrillic, Arabic, Devanagari, CJK scripts): every distinct
    text gets its own key, and re-typed copies (case, spacing, compatibility forms) keep theirs."""
    import unicodedata

    from faker import Faker

    ref = "intent@1"
    texts: set[str] = set()
    for locale in ("en_US", "de_DE", "tr_TR", "ru_RU", "ar_EG", "hi_IN", "ja_JP", "zh_CN"):
        fake = Faker(locale)
        fake.seed_instance(7)
        texts.update(fake.paragraph(nb_sentences=2) for _ in range(250))
    canon = {" ".join(unicodedata.normalize("NFKC", t).casefold().split()) for t in texts}
    keys = {item_key(t, ref) for t in texts}
    scripts = {unicodedata.name(c).split()[0] for t in texts for c in t if c.isalpha()}
    assert len(texts) >= 1000 and {"LATIN", "CYRILLIC", "CJK", "HIRAGANA"} <= scripts, scripts
    assert len(keys) == len(canon)
    for t in sorted(texts)[::50]:
        retyped = "  " + unicodedata.normalize("NFKD", t.upper()).replace(" ", " \u3000 ") + "\n"
        assert item_key(retyped, ref) == item_key(t, ref), t
