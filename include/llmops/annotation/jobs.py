"""The annotation stage as plain functions (what the Airflow tasks call), around one *job*:
the items of one curated version chosen for labeling in one DAG run.

    prepare_job   select items, check privacy (manifest + second PII scan), plan HIT batches
    export_job    check the budget, create the HIT type and one HIT per batch (idempotent)
    job_progress  how many assignments are in (the sensor and trigger poll this)
    extend_job    on a deadline: extend the HITs / add assignments
    review_job    parse answers, approve/reject by gold, bonuses, block repeat offenders
    publish_labels aggregate (Dawid-Skene / majority) into a ``labeled`` dataset version

A job's files live under ``annotations/<dataset>/jobs/<job_id>/``: ``items.jsonl`` (the items,
redacted text), ``plan.json`` (batches, tokens, cost), ``ledger.json`` (every HIT id, every
assignment and what was done to it) and ``answers.jsonl``. The ledger is written after each side
effect, so a retried task continues where the last try stopped and repeats nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from llmops.annotation.aggregate import aggregate, gold_accuracy, krippendorff_alpha, majority_vote
from llmops.annotation.answers import parse_answers
from llmops.annotation.backends import CrowdBackend
from llmops.annotation.hits import (
    batch_key,
    check_budget,
    estimate_cost,
    hit_type_request,
    render_question,
    request_token,
)
from llmops.annotation.items import Item, iter_items, load_gold, sample_items
from llmops.annotation.labelindex import (
    LabelEntry,
    item_key,
    label_set_hash,
    load_index,
    record_job,
    relabel_reason,
    task_ref,
)
from llmops.annotation.qc import decide, worker_ref
from llmops.annotation.selection import plan_batches, select
from llmops.config import PipelineConfig, config_hash
from llmops.records import Quarantined
from llmops.versions import VersionWriter, partition_key, read_manifest

__all__ = ["PIIGuardError", "export_job", "extend_job", "job_id_for", "job_progress", "labeled_schema",
           "make_backend", "prepare_job", "publish_labels", "read_ledger", "review_job"]

log = logging.getLogger(__name__)


class PIIGuardError(RuntimeError):
    """Export refused: the data did not pass PII redaction (the message names item ids, never text)."""


# --------------------------------------------------------------------------- job files
def job_prefix(dataset: str, job_id: str) -> str:
    return f"annotations/{dataset}/jobs/{job_id}"


def _read_json(store: Any, key: str, default: Any = None) -> Any:
    return json.loads(store.read_bytes(key)) if store.exists(key) else default


def _write_json(store: Any, key: str, value: Any) -> None:
    store.write_bytes(key, json.dumps(value, indent=1, sort_keys=True, default=str).encode())


def read_ledger(store: Any, dataset: str, job_id: str) -> dict[str, Any]:
    ledger = _read_json(store, f"{job_prefix(dataset, job_id)}/ledger.json")
    if ledger is None:
        raise FileNotFoundError(f"annotation job {job_id} has no ledger; run the select task first")
    return dict(ledger)


def _save_ledger(store: Any, ledger: dict[str, Any]) -> None:
    ledger["updated_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    _write_json(store, f"{job_prefix(ledger['dataset'], ledger['job_id'])}/ledger.json", ledger)


def _read_items(store: Any, dataset: str, job_id: str) -> list[Item]:
    raw = store.read_bytes(f"{job_prefix(dataset, job_id)}/items.jsonl").decode("utf-8")
    return [Item.from_json(json.loads(line)) for line in raw.splitlines() if line.strip()]


def _read_carried(store: Any, dataset: str, job_id: str) -> list[tuple[Item, LabelEntry]]:
    key = f"{job_prefix(dataset, job_id)}/carried.jsonl"
    if not store.exists(key):
        return []
    out = []
    for line in store.read_bytes(key).decode("utf-8").splitlines():
        if line.strip():
            data = json.loads(line)
            out.append((Item.from_json(data["item"]), LabelEntry.from_json(data["label"])))
    return out


def _version_list(curated: str | Sequence[str]) -> list[str]:
    ids = [curated] if isinstance(curated, str) else list(curated)
    ids = sorted({v.strip() for v in ids if v and v.strip()})
    if not ids:
        raise ValueError("no curated version given")
    return ids


def unlabeled_curated(cfg: PipelineConfig, store: Any) -> list[tuple[str, str]]:
    """``(partition, version id)`` of every partition's current curated version that is neither the
    parent of a labeled version nor in an annotation job under way (exported, reviewed or published;
    jobs with a ``focus`` label only a slice and do not count), oldest partition first.

    What the asset-triggered ``llm_annotation`` labels: the state of the store, not only the events
    that started the run, so an event the scheduler dropped or delivered twice neither loses a day nor
    labels one twice. An erasure successor counts as labeled when the version it replaced was."""
    from llmops.versions import latest_versions

    covered: set[str] = set()
    prefix = f"datasets/{cfg.dataset}/labeled/versions/"
    for key in store.list(prefix):
        if key.endswith("/manifest.json"):
            covered.update(json.loads(store.read_bytes(key)).get("parents", []))
    for key in store.list(f"annotations/{cfg.dataset}/jobs/"):
        if key.endswith("/ledger.json"):
            ledger = json.loads(store.read_bytes(key))
            if ledger.get("status") in ("exported", "reviewed", "published") and not ledger.get("focus"):
                covered.update(ledger.get("curated_versions", []))
    pending = []
    for partition, version in latest_versions(store, cfg.dataset, "curated").items():
        if version in covered:
            continue
        parents = read_manifest(store, cfg.dataset, "curated", version).get("parents", [])
        if any(p in covered for p in parents if p.startswith("curated-")):
            continue
        pending.append((partition, version))
    return pending


def job_id_for(dag_id: str, partition: str, curated: str | Sequence[str], cfg: PipelineConfig,
               focus: dict[str, list[str]] | None = None) -> str:
    """Same DAG, partition, curated version(s), focus and annotation settings -> same job (and HITs)."""
    a = cfg.annotation
    versions = _version_list(curated)
    basis: dict[str, Any] = {"dag_id": dag_id, "partition": partition, "curated": versions[0] if len(versions) == 1 else versions,
             "backend": a.backend,
             "task": config_hash(a.task), "selection": config_hash(a.selection),
             "mturk": config_hash(a.mturk) if a.backend == "mturk" else None}
    if focus:
        basis["focus"] = {k: sorted(map(str, v)) for k, v in sorted(focus.items())}
    if a.relabel != type(a.relabel)():
        basis["relabel"] = config_hash(a.relabel)
    return "job-" + hashlib.sha256(json.dumps(basis, sort_keys=True).encode()).hexdigest()[:16]


def make_backend(cfg: PipelineConfig, store: Any, mturk_client: Any | None = None) -> CrowdBackend:
    """The configured crowd: the local simulation, or MTurk with a boto3 ``mturk`` client (in
    Airflow it comes from :class:`~llmops_airflow.hooks.mturk.MTurkHook`)."""
    a = cfg.annotation
    if a.backend == "local":
        from llmops.annotation.localcrowd import LocalCrowd

        return LocalCrowd(store, a.local, labels=a.task.labels, prefix=f"crowd/local/{cfg.dataset}")
    from llmops.annotation.backends import MTurkBackend

    if mturk_client is None:
        raise ValueError("backend mturk needs a boto3 mturk client (MTurkHook(aws_conn_id=...).conn)")
    return MTurkBackend(mturk_client, sandbox=a.mturk.sandbox)


# --------------------------------------------------------------------------- prepare
def _check_privacy(manifest: dict[str, Any]) -> None:
    privacy = manifest.get("privacy") or {}
    if manifest.get("stage") != "curated" or not privacy.get("pii_redaction"):
        raise PIIGuardError(
            f"version {manifest.get('id')} ({manifest.get('stage')}) has no record of PII redaction "
            "(manifest privacy.pii_redaction); only curated versions written with curation.pii.enabled: true "
            "can be exported for annotation"
        )


def _in_focus(item: Item, focus: dict[str, list[str]]) -> bool:
    for field, values in focus.items():
        value = (item.meta or {}).get(field[5:]) if field.startswith("meta.") else getattr(item, field, None)
        if str(value) not in {str(v) for v in values}:
            return False
    return True


def prepare_job(cfg: PipelineConfig, *, store: Any, curated_version_id: str | Sequence[str], partition: str,
                dag_id: str, redactor: Any | None = None, focus: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """Select the items, check them for PII a second time and plan the HIT batches.

    Several curated versions (the asset events batched into one run, a backfill) make one job:
    ``selection.size`` items per version, drawn from all of them together. ``focus`` (e.g.
    ``{"lang": ["es"]}``, from a drift report's drifted slices) keeps only candidates in those
    slices; an item must match every field.
    """
    a = cfg.annotation
    versions = _version_list(curated_version_id)
    manifests = [read_manifest(store, cfg.dataset, "curated", v) for v in versions]
    for manifest in manifests:
        _check_privacy(manifest)
    for field in focus or {}:
        if field not in ("lang", "source") and not field.startswith("meta."):
            raise ValueError(f"focus field {field!r}: use lang, source or meta.<key>")
    job_id = job_id_for(dag_id, partition, versions, cfg, focus)
    prefix = job_prefix(cfg.dataset, job_id)
    existing = _read_json(store, f"{prefix}/plan.json")
    if existing is not None:
        log.info("annotation job %s already planned; reusing it", job_id)
        return dict(existing["summary"])

    # Labels bought before for the same content and task are carried forward and never bought
    # again, unless annotation.relabel makes an item due (those are all bought). selection.size is
    # per partition: a partition whose earlier curated version was labeled buys only for content
    # that version did not hold, at the rate it was sampled then (a re-curation of unchanged text
    # buys nothing); a focus job buys its full size in its slice.
    ref = task_ref(a.task)
    index = load_index(store, cfg.dataset, ref)
    labeled_parents = None if focus else _labeled_curated(cfg, store)
    before: dict[str, tuple[Item, LabelEntry]] = {}
    seen: set[str] = set()
    quota = 0
    shares: dict[str, Any] = {}
    candidates: list[Item] = []
    for manifest in manifests:  # one pass over each version: keys, earlier labels and the candidate sample
        earlier = [] if labeled_parents is None else [
            m for m in labeled_parents.get(manifest.get("partition") or "", []) if m["id"] != manifest["id"]]
        old_keys = _content_keys(store, earlier, ref)
        n_new = kept_here = 0

        def fresh(manifest: dict[str, Any] = manifest, old_keys: set[str] = old_keys) -> Iterator[Item]:
            nonlocal n_new, kept_here
            for it in iter_items(store, manifest):
                key = item_key(it.text, ref)
                entry = index.get(key)
                if entry is not None and it.id not in before:
                    before[it.id] = (it, entry)
                    kept_here += relabel_reason(entry, a.task.labels, a.relabel) is None
                old = key in old_keys  # content the partition's labeled version held: sampled then
                n_new += not old
                if not old and it.id not in before and it.id not in seen:
                    seen.add(it.id)
                    yield it

        for it in sample_items(fresh(), pool=a.selection.candidate_pool, seed=a.selection.seed):
            if not focus or _in_focus(it, focus):
                candidates.append(it)
        if earlier:
            n_old = max(m["counts"]["kept"] for m in earlier)
            share = min(a.selection.size, math.ceil(a.selection.size * n_new / max(1, n_old)))
            shares[manifest["id"]] = {"labeled_before_as": sorted(m["id"] for m in earlier), "new_content": n_new,
                                      "earlier_records": n_old, "quota": share}
        else:
            # labels this version's content already has (e.g. reposts labeled in another partition) count
            share = a.selection.size if focus else max(0, a.selection.size - kept_here)
        quota += share
    relabel = {i: r for i, (_, e) in before.items()
               if (r := relabel_reason(e, a.task.labels, a.relabel)) is not None}
    due = [it for i, (it, _) in sorted(before.items()) if i in relabel and (not focus or _in_focus(it, focus))]
    if focus:
        log.info("annotation job %s: %d candidates in focus %s", job_id, len(candidates), focus)
    candidates, excluded_golden = _without_golden_items(cfg, candidates)
    due, golden_due = _without_golden_items(cfg, due)
    excluded_golden.update(golden_due)
    if excluded_golden:
        log.warning("annotation job %s: %d candidates hold a golden evaluation item and are not labeled",
                    job_id, len(excluded_golden))
    if quota and candidates:
        chosen, stats = select(candidates, a.selection.model_copy(update={"size": quota}))
    else:
        chosen, stats = [], {"strategy": a.selection.strategy, "strategy_used": "none", "candidates": len(candidates),
                             "selected": 0, "strata": {}}
    chosen = [*due, *chosen]
    stats.update(labeled_before=len(before), relabel=len(due), quota=quota,
                 **({"partitions_labeled_before": shares} if shares else {}))
    chosen_ids = {it.id for it in chosen}
    # not chosen: the earlier label carries over, unless it is no longer in the label set
    carried_items, golden_carried = _without_golden_items(cfg, [
        it for i, (it, _) in sorted(before.items())
        if i not in chosen_ids and relabel.get(i) != "label_not_in_label_set"])
    excluded_golden.update(golden_carried)
    carried = [(it, before[it.id][1]) for it in carried_items]
    relabeled = {i: r for i, r in relabel.items() if i in chosen_ids}
    if before or shares:
        log.info("annotation job %s: %d items of these versions were labeled before: %d labels carried forward, "
                 "%d bought again (%s); %d new items to buy (quota %d)", job_id, len(before), len(carried),
                 len(relabeled), dict(Counter(relabeled.values())), len(chosen) - len(relabeled), quota)
    gold = load_gold(a.selection.gold.path, a.task.labels)

    scan_items = [*chosen, *gold]
    flagged: dict[str, list[str]] = {}
    if scan_items:
        if redactor is None:
            from llmops.stages import make_redactor

            redactor = make_redactor(cfg)
        if redactor is None:
            raise PIIGuardError("the export PII scan needs curation.pii.enabled: true")
        for it, found in zip(scan_items, redactor.scan_batch([it.text for it in scan_items],
                                                             [it.lang for it in scan_items]), strict=True):
            if found:
                flagged[it.id] = sorted(found)
    if flagged:
        listing = ", ".join(f"{i} ({'/'.join(t)})" for i, t in sorted(flagged.items())[:20])
        more = f" and {len(flagged) - 20} more" if len(flagged) > 20 else ""
        if a.pii_rescan == "fail":
            raise PIIGuardError(f"export blocked: {len(flagged)} items still show PII in the export scan: "
                                f"{listing}{more}. Fix the redaction config (curation.pii) and re-curate, "
                                "or set annotation.pii_rescan: exclude")
        log.warning("export PII scan: %s items excluded: %s%s", len(flagged), listing, more)
    chosen = [it for it in chosen if it.id not in flagged]
    gold = [g for g in gold if g.id not in flagged]

    batches = plan_batches(chosen, gold, items_per_hit=a.mturk.items_per_hit, gold_rate=a.selection.gold.rate,
                           seed=job_id)
    used_gold = {it.id for b in batches for it in b if it.gold is not None}
    items = [*chosen, *[g for g in gold if g.id in used_gold]]
    cost = estimate_cost(len(batches), a.mturk.assignments, a.mturk.reward_usd,
                         bonus_per_assignment=a.qc.bonus_usd)
    plan = {
        "job_id": job_id, "dag_id": dag_id, "partition": partition, "dataset": cfg.dataset,
        "curated_versions": versions,
        "curated_partitions": {m["id"]: m.get("partition") for m in manifests},
        "batches": [{"key": batch_key(b), "token": request_token(dag_id, partition, batch_key(b)),
                     "items": [it.id for it in b]} for b in batches],
        "excluded_pii": flagged,
        "excluded_golden": excluded_golden,
        "carried": {it.id: e.job_id for it, e in carried},
        "relabel": relabeled,
        "cost_estimate": cost.as_dict(),
        "selection": stats,
    }
    summary = {"job_id": job_id, "curated_versions": versions, "partition": partition,
               "items": len(chosen), "gold_items": len(used_gold), "hits": len(batches),
               "excluded_pii": len(flagged), "excluded_golden": len(excluded_golden),
               "carried": len(carried), "relabeled": len(relabeled),
               "strategy_used": stats["strategy_used"],
               "cost_estimate_usd": str(cost.total_usd), **({"focus": focus} if focus else {})}
    plan["summary"] = summary
    store.write_bytes(f"{prefix}/items.jsonl",
                      "".join(json.dumps(it.to_json(), ensure_ascii=False) + "\n" for it in items).encode())
    store.write_bytes(f"{prefix}/carried.jsonl", "".join(
        json.dumps({"item": it.to_json(), "label": e.to_json()}, ensure_ascii=False) + "\n" for it, e in carried).encode())
    ledger: dict[str, Any] = {"job_id": job_id, "dataset": cfg.dataset, "dag_id": dag_id, "partition": partition,
              "curated_versions": versions, "backend": a.backend, **({"focus": focus} if focus else {}),
              "sandbox": a.mturk.sandbox if a.backend == "mturk" else None, "status": "planned",
              "hit_type_id": None, "hits": {}, "assignments": {}, "extensions": [], "blocked": {}}
    _save_ledger(store, ledger)
    _write_json(store, f"{prefix}/plan.json", plan)  # last: its presence means "prepared"
    log.info("annotation job %s: %s items + %s gold in %s HITs (strategy %s), estimated $%s; %s labels carried "
             "forward", job_id, summary["items"], summary["gold_items"], summary["hits"], summary["strategy_used"],
             cost.total_usd, summary["carried"])
    return summary


def _labeled_curated(cfg: PipelineConfig, store: Any) -> dict[str, list[dict[str, Any]]]:
    """Partition -> manifests of its curated versions that are parents of a labeled version of this
    task (name and version)."""
    ref = task_ref(cfg.annotation.task)
    parents: set[str] = set()
    for key in store.list(f"datasets/{cfg.dataset}/labeled/versions/"):
        if key.endswith("/manifest.json"):
            labeled = json.loads(store.read_bytes(key))
            ann = labeled.get("annotation") or {}
            if (ann.get("carry_forward") or {}).get("task", f"{ann.get('task')}@1") != ref:
                continue
            parents.update(p for p in labeled.get("parents", []) if p.startswith("curated-"))
    out: dict[str, list[dict[str, Any]]] = {}
    for vid in sorted(parents):
        try:
            m = read_manifest(store, cfg.dataset, "curated", vid)
        except FileNotFoundError:
            continue
        out.setdefault(m.get("partition") or "", []).append(m)
    return out


def _content_keys(store: Any, manifests: Sequence[dict[str, Any]], ref: str) -> set[str]:
    """The content keys of every record of ``manifests`` (streamed)."""
    return {item_key(it.text, ref) for m in manifests for it in iter_items(store, m)}


def _without_golden_items(cfg: PipelineConfig, candidates: list[Item]) -> tuple[list[Item], dict[str, Any]]:
    """``candidates`` without those that hold a golden item of ``evaluation.suites`` (the training
    stage's rule, ``training.decontamination``), and ``{id: {suite, golden_id, reason}}`` of those."""
    decon = cfg.training.decontamination
    if not (decon.enabled and cfg.evaluation.suites and candidates):
        return candidates, {}
    from llmops.evaluation.promotion import suites_dir
    from llmops.training.decontam import decontaminate, index_for

    index = index_for(cfg.evaluation.suites, suites_dir(cfg), ngram=decon.ngram, jaccard=decon.jaccard)
    _, report = decontaminate([{"id": it.id, "text": it.text} for it in candidates], index)
    excluded = {r["id"]: {"suite": r["suite"], "golden_id": r["golden_id"], "reason": r["reason"]}
                for r in report["removed"]}
    return [it for it in candidates if it.id not in excluded], excluded


# --------------------------------------------------------------------------- export
def export_job(cfg: PipelineConfig, *, store: Any, job_id: str, backend: CrowdBackend,
               now: float | None = None) -> dict[str, Any]:
    """Create the HITs of a planned job. The budget is checked before any call; HITs already in
    the ledger are skipped and every create carries the batch's ``UniqueRequestToken``."""
    a = cfg.annotation
    prefix = job_prefix(cfg.dataset, job_id)
    plan = _read_json(store, f"{prefix}/plan.json")
    if plan is None:
        raise FileNotFoundError(f"annotation job {job_id} was not prepared; run the select task first")
    ledger = read_ledger(store, cfg.dataset, job_id)
    cost = estimate_cost(len(plan["batches"]), a.mturk.assignments, a.mturk.reward_usd,
                         bonus_per_assignment=a.qc.bonus_usd)
    check_budget(cost, a.mturk.budget_usd)
    items = {it.id: it for it in _read_items(store, cfg.dataset, job_id)}
    todo = [b for b in plan["batches"] if b["key"] not in ledger["hits"]]
    if todo:
        if not ledger.get("hit_type_id"):
            ledger["hit_type_id"] = backend.create_hit_type(hit_type_request(a.task, a.mturk))
            _save_ledger(store, ledger)
        for batch in todo:
            batch_items = [items[i] for i in batch["items"]]
            fields = {f"item_{n}": it.id for n, it in enumerate(batch_items)}
            created = backend.create_hit(
                hit_type_id=ledger["hit_type_id"], question=render_question(batch_items, a.task), token=batch["token"],
                max_assignments=a.mturk.assignments, lifetime_s=a.mturk.lifetime_s,
                items=[{"field": f, "id": i, "gold": items[i].gold, "prelabel": items[i].prelabel}
                       for f, i in fields.items()])
            ledger["hits"][batch["key"]] = {**created, "token": batch["token"], "fields": fields,
                                            "max_assignments": a.mturk.assignments}
            _save_ledger(store, ledger)  # after every HIT: a crash here loses nothing
            log.info("HIT %s created (%s items)", created["hit_id"], len(fields))
    if ledger["hits"] and (todo or not ledger.get("exported_at")):  # a job of carried labels sends nothing
        from llmops.privacy.audit import record_event

        record_event(store, "annotation_export", event_key=job_id, details={
            "job_id": job_id, "backend": ledger["backend"], "sandbox": ledger.get("sandbox"),
            "hits": len(ledger["hits"]), "items": len(items), "assignments_per_hit": a.mturk.assignments,
            "curated_versions": ledger["curated_versions"], "cost_estimate_usd": str(cost.total_usd)})
    if not ledger.get("exported_at"):
        start = now if now is not None else time.time()
        ledger["exported_at"] = start
        ledger["deadline"] = start + min(a.wait.deadline_s, a.mturk.lifetime_s)
        ledger["cost_estimate"] = cost.as_dict()
        ledger["status"] = "exported"
        _save_ledger(store, ledger)
    group = next(iter(ledger["hits"].values()))["group_id"] if ledger["hits"] else ""
    out = {"job_id": job_id, "hits": len(ledger["hits"]), "created_now": len(todo),
           "hit_type_id": ledger["hit_type_id"], "hit_group_id": group,
           "worker_url": backend.worker_url(group) if group else "", "deadline": ledger["deadline"],
           "cost_estimate_usd": str(cost.total_usd)}
    log.info("annotation job %s: %s HITs (%s new), HIT group %s", job_id, out["hits"], len(todo), group)
    return out


# --------------------------------------------------------------------------- wait
def job_progress(store: Any, dataset: str, job_id: str, backend: CrowdBackend) -> dict[str, Any]:
    """Assignments expected vs submitted (any review status), per job."""
    ledger = read_ledger(store, dataset, job_id)
    expected = submitted = done_hits = 0
    for hit in ledger["hits"].values():
        n = len(backend.list_assignments(hit["hit_id"]))
        expected += hit["max_assignments"]
        submitted += min(n, hit["max_assignments"])
        done_hits += int(n >= hit["max_assignments"])
    # a job whose every item was labeled before posts no HIT: done once exported
    nothing = not ledger["hits"] and ledger.get("status") in ("exported", "reviewed", "published")
    return {"job_id": job_id, "hits": len(ledger["hits"]), "hits_done": done_hits, "expected": expected,
            "submitted": submitted, "done": nothing or (expected > 0 and submitted >= expected),
            "deadline": ledger.get("deadline")}


def extend_job(cfg: PipelineConfig, *, store: Any, job_id: str, backend: CrowdBackend, extension: int,
               now: float | None = None) -> dict[str, Any]:
    """Extension number ``extension`` (1, 2, ...): extend HITs that are short of answers and add
    ``wait.extra_assignments`` to them. Recorded in the ledger; repeating a number does nothing."""
    a = cfg.annotation
    ledger = read_ledger(store, cfg.dataset, job_id)
    done = {e["n"]: e for e in ledger["extensions"]}
    if extension in done:
        return dict(done[extension])
    now = now if now is not None else time.time()
    new_deadline = now + a.wait.extend_by_s
    expire_at = datetime.fromtimestamp(new_deadline, UTC)
    extended = []
    for hit in ledger["hits"].values():
        if len(backend.list_assignments(hit["hit_id"])) >= hit["max_assignments"]:
            continue
        backend.extend_hit(hit["hit_id"], expire_at)
        if a.wait.extra_assignments:
            backend.add_assignments(hit["hit_id"], a.wait.extra_assignments, token=f"{hit['token'][:56]}-x{extension}")
            hit["max_assignments"] += a.wait.extra_assignments
        extended.append(hit["hit_id"])
    entry = {"n": extension, "at": now, "deadline": new_deadline, "hits": extended,
             "extra_assignments": a.wait.extra_assignments}
    ledger["extensions"].append(entry)
    ledger["deadline"] = new_deadline
    _save_ledger(store, ledger)
    log.info("annotation job %s: extension %s of %s HITs until %s", job_id, extension, len(extended), expire_at)
    return entry


# --------------------------------------------------------------------------- review
def _collect(store: Any, cfg: PipelineConfig, ledger: dict[str, Any], backend: CrowdBackend) -> list[dict[str, Any]]:
    labels = cfg.annotation.task.labels
    out = []
    for hit in ledger["hits"].values():
        for asg in backend.list_assignments(hit["hit_id"]):
            fields = parse_answers(asg.answer_xml, labels)
            answers = {hit["fields"][f]: lab for f, lab in fields.items() if f in hit["fields"]}
            out.append({"assignment_id": asg.assignment_id, "worker_id": asg.worker_id, "hit_id": hit["hit_id"],
                        "status": asg.status, "submit_time": asg.submit_time, "answers": answers})
    return sorted(out, key=lambda a: a["assignment_id"])


def review_job(cfg: PipelineConfig, *, store: Any, job_id: str, backend: CrowdBackend) -> dict[str, Any]:
    """Approve/reject every submitted assignment by the QC policy, pay bonuses, block repeat
    offenders. Each action is recorded in the ledger before the next one, and an assignment that
    is no longer ``Submitted`` (reviewed earlier, auto-approved) is never reviewed again."""
    a = cfg.annotation
    ledger = read_ledger(store, cfg.dataset, job_id)
    items = {it.id: it for it in _read_items(store, cfg.dataset, job_id)}
    gold = {i: it.gold for i, it in items.items() if it.gold is not None}
    collected = _collect(store, cfg, ledger, backend)
    votes = [(i, asg["worker_id"], lab) for asg in collected for i, lab in asg["answers"].items()]
    worker_gold = gold_accuracy(votes, gold)
    decisions = {d.assignment_id: d for d in decide(collected, gold, worker_gold, a.qc)}

    registry_key = f"annotations/{cfg.dataset}/workers.json"
    registry = _read_json(store, registry_key, {})
    for asg in collected:
        aid = asg["assignment_id"]
        entry = ledger["assignments"].setdefault(aid, {"worker_id": asg["worker_id"], "hit_id": asg["hit_id"]})
        d = decisions[aid]
        if entry.get("action") is None:
            if asg["status"] == "Submitted":
                if d.action == "approve":
                    backend.approve(aid)
                else:
                    backend.reject(aid, d.feedback or a.qc.feedback)
                entry.update(action=d.action, reason=d.reason, by="llmops")
            else:  # reviewed outside this job (auto-approval, a person): keep what happened
                entry.update(action="approve" if asg["status"] == "Approved" else "reject",
                             reason=f"already {asg['status']}", by="external")
            _save_ledger(store, ledger)
        if entry["action"] == "reject":
            w = registry.setdefault(asg["worker_id"], {"rejected": [], "blocked": False})
            if aid not in w["rejected"]:
                w["rejected"].append(aid)
        if entry["action"] == "approve" and d.bonus > 0 and not entry.get("bonus_usd"):
            backend.send_bonus(worker_id=asg["worker_id"], assignment_id=aid, amount=d.bonus,
                               reason="High accuracy on control items. Thank you!",
                               token=hashlib.sha256(f"bonus:{job_id}:{aid}".encode()).hexdigest()[:64])
            entry["bonus_usd"] = str(d.bonus)
            _save_ledger(store, ledger)
    blocked_now = []
    if a.qc.block_after_rejections:
        for worker, w in sorted(registry.items()):
            if not w["blocked"] and len(w["rejected"]) >= a.qc.block_after_rejections:
                backend.block_worker(worker, a.qc.block_reason)
                w["blocked"] = True
                ledger["blocked"][worker] = len(w["rejected"])
                blocked_now.append(worker)
                _write_json(store, registry_key, registry)
                _save_ledger(store, ledger)
    _write_json(store, registry_key, registry)
    # HITs still short of answers (the wait ended on its deadline): expire them now, so no more
    # work is accepted (and paid for) that this job would never use
    in_by_hit = Counter(asg["hit_id"] for asg in collected)
    expired = ledger.setdefault("expired", [])
    for hit in ledger["hits"].values():
        if in_by_hit[hit["hit_id"]] < hit["max_assignments"] and hit["hit_id"] not in expired:
            backend.extend_hit(hit["hit_id"], datetime.fromtimestamp(0, UTC))
            expired.append(hit["hit_id"])
            _save_ledger(store, ledger)
    answers_key = f"{job_prefix(cfg.dataset, job_id)}/answers.jsonl"
    store.write_bytes(answers_key, "".join(json.dumps({**asg, "action": ledger["assignments"][asg["assignment_id"]]["action"]},
                                                      sort_keys=True) + "\n" for asg in collected).encode())
    ledger["status"] = "reviewed"
    ledger["worker_gold"] = worker_gold
    _save_ledger(store, ledger)
    actions = Counter(ledger["assignments"][asg["assignment_id"]]["action"] for asg in collected)
    out = {"job_id": job_id, "assignments": len(collected), "approved": actions["approve"],
           "rejected": actions["reject"], "blocked_now": [worker_ref(w) for w in blocked_now],
           "bonuses": sum(1 for e in ledger["assignments"].values() if e.get("bonus_usd")),
           "hits_expired": len(expired),
           "workers": len({asg["worker_id"] for asg in collected})}
    log.info("review of %s: %s", job_id, out)
    return out


# --------------------------------------------------------------------------- publish
def labeled_schema() -> Any:
    import pyarrow as pa

    from llmops.records import record_schema

    return pa.schema([
        *record_schema(),
        pa.field("label", pa.string()),
        pa.field("label_confidence", pa.float64()),
        pa.field("agreement", pa.float64()),
        pa.field("n_votes", pa.int64()),
        pa.field("votes", pa.string()),
        pa.field("prelabel", pa.string()),
        pa.field("method", pa.string()),
        pa.field("label_job", pa.string()),  # the annotation job whose crowd gave the label
    ])


def _exports(frames: list[Any], kinds: list[str], task: str) -> dict[str, bytes]:
    rows = [r for df in frames for r in df.to_dict(orient="records")]
    out: dict[str, bytes] = {}
    if "jsonl" in kinds:
        out["exports/labels.jsonl"] = "".join(
            json.dumps({k: r[k] for k in ("id", "text", "lang", "source", "label", "label_confidence", "agreement")},
                       ensure_ascii=False) + "\n" for r in rows).encode()
    if "label_studio" in kinds:
        tasks = [{"id": n, "data": {"text": r["text"], "record_id": r["id"], "lang": r["lang"]},
                  "annotations": [{"result": [{"from_name": task, "to_name": "text", "type": "choices",
                                               "value": {"choices": [r["label"]]}}],
                                   "meta": {"confidence": r["label_confidence"], "votes": json.loads(r["votes"])}}]}
                 for n, r in enumerate(rows, start=1)]
        out["exports/label_studio.json"] = json.dumps(tasks, ensure_ascii=False, indent=1).encode()
    return out


def publish_labels(cfg: PipelineConfig, *, store: Any, job_id: str, producer: dict[str, Any]) -> dict[str, Any]:
    """Aggregate the reviewed answers into a ``labeled`` version (parent: the curated version),
    gated by the ``labeled`` suite. Every selected item ends in the version or its quarantine."""
    from llmops.quality.apply import gate_writer

    a = cfg.annotation
    prefix = job_prefix(cfg.dataset, job_id)
    ledger = read_ledger(store, cfg.dataset, job_id)
    plan = _read_json(store, f"{prefix}/plan.json")
    items = {it.id: it for it in _read_items(store, cfg.dataset, job_id)}
    raw_answers = store.read_bytes(f"{prefix}/answers.jsonl").decode() if store.exists(f"{prefix}/answers.jsonl") else ""
    collected = [json.loads(line) for line in raw_answers.splitlines() if line.strip()]
    used = [asg for asg in collected if not (a.aggregation.exclude_rejected and asg["action"] == "reject")]
    votes = [(i, asg["worker_id"], lab) for asg in used for i, lab in asg["answers"].items()]
    gold = {i: it.gold for i, it in items.items() if it.gold is not None}
    labels, skills = aggregate(votes, a.task.labels, a.aggregation.method)
    mv = majority_vote(votes, a.task.labels)
    targets = [it for it in items.values() if it.gold is None]

    carried = _read_carried(store, cfg.dataset, job_id)

    writer = VersionWriter(cfg.dataset, "labeled", parents=ledger["curated_versions"], producer=producer,
                           config_hash=config_hash(a), rows_per_file=cfg.curation.rows_per_file,
                           schema=labeled_schema())
    try:
        writer.counts.input = len(targets) + len(plan["excluded_pii"]) + len(carried)
        writer.add_quarantined([Quarantined(source="annotation", location=job_id, reason="pii_rescan", stage="annotate",
                                            id=i, detail="PII found by the export scan: " + "/".join(t))
                                for i, t in sorted(plan["excluded_pii"].items())])
        rows: list[dict[str, Any]] = []
        missing: list[Quarantined] = []
        for it in sorted(targets, key=lambda x: x.id):
            lab = labels.get(it.id)
            if lab is None or lab.n_votes < a.aggregation.min_votes:
                missing.append(Quarantined(source=it.source, location=job_id, stage="annotate", id=it.id,
                                           reason="no_labels" if lab is None else "too_few_votes",
                                           detail=f"{0 if lab is None else lab.n_votes} votes", raw=it.text))
                continue
            rows.append({
                "id": it.id, "text": it.text, "source": it.source, "lang": it.lang, "created_at": it.created_at,
                "meta": json.dumps(it.meta, sort_keys=True, ensure_ascii=False), "pii": list(it.pii),
                "label": lab.label, "label_confidence": round(lab.confidence, 6), "agreement": round(lab.agreement, 6),
                "n_votes": lab.n_votes, "votes": json.dumps(dict(sorted(lab.votes.items()))),
                "prelabel": it.prelabel, "method": a.aggregation.method, "label_job": job_id,
            })
        bought = list(rows)
        for it, e in carried:  # labels bought by an earlier job for the same content: with their provenance
            rows.append({
                "id": it.id, "text": it.text, "source": it.source, "lang": it.lang, "created_at": it.created_at,
                "meta": json.dumps(it.meta, sort_keys=True, ensure_ascii=False), "pii": list(it.pii),
                "label": e.label, "label_confidence": e.label_confidence, "agreement": e.agreement,
                "n_votes": e.n_votes, "votes": json.dumps(dict(sorted(e.votes.items()))),
                "prelabel": None, "method": e.method, "label_job": e.job_id,
            })
        rows.sort(key=lambda r: r["id"])
        writer.add_rows(rows)
        writer.add_quarantined(missing)
        gate_writer(writer, cfg, "labeled", labels=list(a.task.labels), min_agreement=a.aggregation.min_agreement)
        for path, data in _exports(list(writer.staged_frames()), list(a.exports), a.task.name).items():
            writer.add_file(path, data)

        statuses = Counter(asg["action"] for asg in collected)
        mturk = a.mturk
        per_assignment = mturk.reward_usd + max(Decimal("0.01"), (mturk.reward_usd * Decimal("0.2")).quantize(Decimal("0.01")))
        bonuses = sum((Decimal(e["bonus_usd"]) for e in ledger["assignments"].values() if e.get("bonus_usd")), Decimal(0))
        all_votes = [(i, asg["worker_id"], lab) for asg in collected for i, lab in asg["answers"].items()]
        golds = gold_accuracy(all_votes, gold)
        gold_answers = sum(s["answered"] for s in golds.values())
        writer.extra["annotation"] = {
            "job_id": job_id, "backend": ledger["backend"], "sandbox": ledger["sandbox"], "task": a.task.name,
            "labels": list(a.task.labels), "curated_versions": ledger["curated_versions"],
            "hit_type_id": ledger["hit_type_id"], "hits": sorted(h["hit_id"] for h in ledger["hits"].values()),
            "assignments": {"submitted": len(collected), "approved": statuses["approve"],
                            "rejected": statuses["reject"], "used_in_vote": len(used)},
            "workers": {worker_ref(w): {"gold": golds.get(w), "ds_accuracy": skills.get(w)}
                        for w in sorted({asg["worker_id"] for asg in collected})},
            "blocked_workers": sorted(worker_ref(w) for w in ledger["blocked"]),
            "gold": {"items": len(gold), "answers": gold_answers,
                     "accuracy": round(sum(s["correct"] for s in golds.values()) / gold_answers, 4) if gold_answers else None},
            "aggregation": {
                "method": a.aggregation.method,
                "krippendorff_alpha": krippendorff_alpha(votes, a.task.labels),
                "mean_confidence": round(sum(r["label_confidence"] for r in rows) / len(rows), 4) if rows else None,
                "majority_vote_disagreements": sum(1 for r in rows if r["id"] in mv and mv[r["id"]].label != r["label"]),
            },
            "label_distribution": dict(sorted(Counter(r["label"] for r in rows).items())),
            "selection": plan["selection"],
            "pii_scan": {"excluded": sorted(plan["excluded_pii"])},
            # candidates holding a golden evaluation item, never sent to the crowd (llmops.training.decontam)
            "decontamination": {"excluded": len(plan.get("excluded_golden", {})),
                                "by_reason": dict(Counter(e["reason"] for e in plan.get("excluded_golden", {}).values()))},
            "cost_usd": {"estimate": ledger.get("cost_estimate"),
                         "approved_rewards_and_fees": str(per_assignment * statuses["approve"]),
                         "bonuses": str(bonuses)},
            "extensions": len(ledger["extensions"]),
            "exports": sorted(_exports([], list(a.exports), a.task.name)),
            # labels of items labeled before (same content, task name and version): not bought again
            "carry_forward": {"bought": len(bought), "carried": len(carried),
                       "carried_from": dict(sorted(Counter(e.job_id for _, e in carried).items())),
                       "relabeled": dict(Counter(plan.get("relabel", {}).values())),
                       "task": task_ref(a.task)},
        }
        manifest = writer.finish(store, partition=ledger["partition"])
    except BaseException:
        writer.abort()
        raise
    ref = task_ref(a.task)
    at = manifest.get("created_at") or datetime.now(UTC).isoformat(timespec="seconds")
    record_job(store, cfg.dataset, ref, job_id, [
        LabelEntry(key=item_key(r["text"], ref), record_id=r["id"], label=r["label"],
                   label_confidence=r["label_confidence"], agreement=r["agreement"], n_votes=r["n_votes"],
                   votes=json.loads(r["votes"]), method=r["method"], job_id=job_id, labeled_version=manifest["id"],
                   label_set=label_set_hash(a.task.labels), published_at=at)
        for r in bought])
    for covered in sorted({p for p in plan.get("curated_partitions", {}).values() if p} - {ledger["partition"]}):
        # every partition whose curated version was labeled here points at this labeled version
        store.write_bytes(partition_key(cfg.dataset, "labeled", covered), json.dumps(
            {"version_id": manifest["id"], "partition": covered, "producer": producer}, indent=2, sort_keys=True).encode())
    ledger["status"] = "published"
    ledger["labeled_version"] = manifest["id"]
    _save_ledger(store, ledger)
    return manifest

