"""Erasure of a data subject across the whole pipeline, on the real stage functions: two daily
partitions collected and curated (subject index written), a labeled version from the local crowd,
a model fine-tuned with DeepSpeed on it and registered in MLflow, an open annotation job; then
``erase`` – and nothing in the store or MLflow's artifacts holds the subject any more."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DAYS = ("2026-11-25", "2026-11-26")
EMAIL, PHONE, NAME, CUSTOMER = "jane.roe@example.org", "+1 212-555-0187", "Jane Roe", "CUST-77141"
SUBJECT_TEXTS = {
    "2026-11-25": [
        f"Hi, this is {NAME}. My refund for the broken blender never arrived, write to me at {EMAIL} please.",
        f"I was charged twice on my last invoice, please call me back at {PHONE} as soon as you can.",
    ],
    "2026-11-26": [
        f"Hello again, {NAME} here: the parcel is late and the courier never came. Reach me at {EMAIL}.",
        # the same message twice: the copy is set aside as a duplicate, with its original text
        f"My password reset link does not work and I am locked out of my account, contact {EMAIL} thanks.",
        f"My password reset link does not work and I am locked out of my account, contact {EMAIL} thanks.",
    ],
}
OTHER = "Please help, the courier left my package at the wrong door and nobody answers the phone line."


def _landing(home: Path) -> None:
    from llmops.sampledata import INTENTS, _message

    for day in DAYS:
        rng = random.Random(day)
        rows = [{"id": f"{day}-{i:03d}", "text": _message(rng, "en", INTENTS[i % len(INTENTS)], []),
                 "created_at": f"{day}T10:{i % 60:02d}:00Z", "customer_id": f"CUST-{1000 + i}"} for i in range(24)]
        rows.append({"id": f"{day}-other", "text": OTHER + f" ({day})", "created_at": f"{day}T11:00:00Z",
                     "customer_id": "CUST-5"})
        for j, text in enumerate(SUBJECT_TEXTS[day]):
            rows.append({"id": f"{day}-subject-{j}", "text": text, "created_at": f"{day}T12:0{j}:00Z",
                         "customer_id": CUSTOMER})
        folder = home / "landing" / f"dt={day}"
        folder.mkdir(parents=True)
        (folder / "tickets.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def _config(home: Path):
    from llmops.config import parse_config

    return parse_config({
        "base_dir": str(home),
        "storage": {"root": str(home / "store")},
        "sources": [{"name": "tickets", "kind": "files", "paths": ["landing/dt={partition}/tickets.jsonl"],
                     "meta_fields": ["customer_id"]}],
        "curation": {"filters": {"languages": ["en"]}},
        "annotation": {"selection": {"size": 40, "strategy": "random"},
                       "local": {"truth_path": None, "delay_s": [1, 2]}},
        "training": {"registered_model": "support-intent",
                     "tracking": {"tracking_uri": f"sqlite:///{home}/mlflow/mlflow.db",
                                  "artifact_location": str(home / "mlflow" / "artifacts"), "experiment": "ft"}},
        "privacy": {"subject_index": {"key": f"file:{home}/secrets/subject.key", "fields": ["customer_id"]}},
    })


def _strings(path: Path) -> str:
    """Everything readable in a file: a Parquet file's cells, any other file's bytes as text."""
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return json.dumps(pq.read_table(path).to_pylist(), default=str, ensure_ascii=False)
    return path.read_bytes().decode("utf-8", "ignore")


def _leaks(folder: Path, needles: list[str]) -> dict[str, list[str]]:
    out = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        text = _strings(path).casefold()
        hit = [n for n in needles if n.casefold() in text]
        if hit:
            out[str(path.relative_to(folder))] = hit
    return out


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


class Clock:
    def __init__(self) -> None:
        import time

        self.t = time.time()

    def __call__(self) -> float:
        return self.t


@pytest.mark.slow
@pytest.mark.usefixtures("one_torch_thread")
def test_erasure_removes_the_subject_everywhere_flags_the_model_and_a_second_run_changes_nothing(
        tmp_path, monkeypatch, tiny_training, mlflow_db, redactor):
    from mlflow import MlflowClient

    from llmops.annotation import jobs
    from llmops.annotation.localcrowd import LocalCrowd
    from llmops.privacy.audit import read_events
    from llmops.privacy.erasure import erase, erasure_record
    from llmops.privacy.subjects import read_index
    from llmops.stages import collect_raw, curate_version, make_redactor, open_config_store
    from llmops.versions import latest_for_partition, read_manifest

    home = tmp_path / "home"
    monkeypatch.setenv("LLMOPS_HOME", str(home))
    _landing(home)
    cfg = _config(home)
    store = open_config_store(cfg)
    red = make_redactor(cfg)

    # -- the pipeline: two partitions, a labeled version, a trained and registered model ---------
    curated = []
    for day in DAYS:
        raw = collect_raw(cfg, store=store, partition=day, producer={"kind": "test"})
        curated.append(curate_version(cfg, store=store, raw_version_id=raw["id"], partition=day,
                                      producer={"kind": "test"}, redactor=red))
    assert all(m["privacy"]["subject_index"]["entries"] > 0 for m in curated)
    index = [row for _, rows in read_index(store, cfg.dataset) for row in rows]
    assert not any(EMAIL in json.dumps(r) or CUSTOMER in json.dumps(r) for r in index), "keys, not identifiers"
    assert any(r[2] == "quarantine" for r in index), "the duplicate set aside is indexed too"

    clock = Clock()
    crowd = LocalCrowd(store, cfg.annotation.local, labels=cfg.annotation.task.labels, clock=clock)
    plan = jobs.prepare_job(cfg, store=store, curated_version_id=[m["id"] for m in curated], partition=DAYS[1],
                            dag_id="llm_annotation", redactor=redactor)
    jobs.export_job(cfg, store=store, job_id=plan["job_id"], backend=crowd, now=clock.t)
    clock.t += 5
    jobs.review_job(cfg, store=store, job_id=plan["job_id"], backend=crowd)
    labeled = jobs.publish_labels(cfg, store=store, job_id=plan["job_id"], producer={"kind": "test"})
    subject_ids = {f"{d}-subject-{j}" for d in DAYS for j in range(len(SUBJECT_TEXTS[d]))}
    labeled_subject = {r["id"] for r in _rows(store, labeled)} & subject_ids
    assert labeled_subject, "the subject's messages were labeled"
    # the labeled version holds them as labels or, short of votes or agreement, in its quarantine
    labeled_subject |= {r["id"] for r in _rows(store, labeled, which="quarantine_files")} & subject_ids

    # the labels are kept by content (no text) for the next jobs; the subject's are among them
    label_index = f"annotations/{cfg.dataset}/label_index/"
    assert labeled_subject & {json.loads(line)["record_id"] for k in store.list(label_index)
                              for line in store.read_bytes(k).decode().splitlines()}

    # a second annotation job, still open (a new version of the task: every item is labeled again):
    # its HITs hold the subject's items
    v2 = cfg.model_copy(update={"annotation": cfg.annotation.model_copy(update={
        "task": cfg.annotation.task.model_copy(update={"version": "2"})})})
    open_plan = jobs.prepare_job(v2, store=store, curated_version_id=[m["id"] for m in curated],
                                 partition=DAYS[1], dag_id="llm_annotation_relabel", redactor=redactor)
    jobs.export_job(v2, store=store, job_id=open_plan["job_id"], backend=crowd, now=clock.t)

    # the training the launcher runs (here in this process: one training is what matters, not its process)
    from llmops.training.args import parse_train_config
    from llmops.training.train import run_training

    tracking = cfg.training.tracking
    mlflow_db(home / "mlflow" / "mlflow.db")
    for key in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):  # a one-process world
        monkeypatch.delenv(key, raising=False)
    trained = run_training(parse_train_config({
        "model": {"name_or_path": str(tiny_training.model_dir), "max_length": 32},
        "data": {"storage_root": str(home / "store"), "versions": [labeled["id"]]},
        "train": {"output_dir": str(tmp_path / "run"), "max_steps": 2, "save_steps": 2, "per_device_batch_size": 8,
                  "deepspeed": "zero2", "learning_rate": 1e-3},
        "tracking": {"tracking_uri": tracking.tracking_uri, "artifact_location": tracking.artifact_location,
                     "experiment": tracking.experiment, "registered_model": "support-intent",
                     "run_key": "test/train"}}))
    client = MlflowClient(tracking_uri=tracking.tracking_uri)
    run_id = trained["mlflow"]["run_id"]
    # an evaluation-style artifact with examples of the (redacted) data
    examples = tmp_path / "errors.jsonl"
    examples.write_text("".join(json.dumps({"id": r["id"], "text": r["text"], "label": r["label"]}) + "\n"
                                for r in _rows(store, labeled)))
    client.log_artifact(run_id, str(examples), "evaluation")
    run = client.get_run(run_id)
    logged = json.dumps([run.data.params, run.data.tags]).casefold()
    assert not [n for n in (EMAIL, PHONE, NAME, CUSTOMER) if n.casefold() in logged], "no PII in params or tags"

    # what must go: identifiers, and every form of the subject's text the pipeline stored
    curated_texts = [r["text"] for m in curated for r in _rows(store, m) if r["id"] in subject_ids]
    needles = [EMAIL, PHONE, NAME, CUSTOMER, *(t for d in DAYS for t in SUBJECT_TEXTS[d]), *curated_texts]
    artifacts = home / "mlflow" / "artifacts"
    assert _leaks(home / "store", needles) and _leaks(artifacts, needles), "the check finds the planted data"
    others_before = sum(1 for m in curated for r in _rows(store, m) if r["id"] not in subject_ids)

    # -- erase ----------------------------------------------------------------------------------
    out = erase(cfg, store=store, request_id="DSR-2026-0001", subjects=[EMAIL, PHONE, CUSTOMER],
                mlflow_client=client, backend_factory=lambda: crowd)
    assert out["changed"]
    assert _leaks(home / "store", needles) == {}
    assert _leaks(artifacts, needles) == {}

    # counts: 5 planted records in raw (one raw version per day), 4 kept + 1 duplicate in curated
    assert out["removed"] == {"raw": 5, "curated": 5, "labeled": len(labeled_subject)}
    assert out["records"] == 5
    # the kept ones' keys left the dedup index that later partitions are checked against
    assert out["dedup_index_removed"] == 4
    for day, m in zip(DAYS, curated, strict=True):
        successor_id = latest_for_partition(store, cfg.dataset, "curated", day)
        assert successor_id != m["id"]
        new = read_manifest(store, cfg.dataset, "curated", successor_id)
        n = len(SUBJECT_TEXTS[day])
        assert new["parents"] == [m["id"]] and new["erasure"]["request_id"] == "DSR-2026-0001"
        assert new["erasure"]["removed"]["records"] == n
        assert new["counts"]["input"] == m["counts"]["input"] - n
        c = new["counts"]
        assert c["input"] == c["kept"] + c["duplicates"] + c["filtered"] + c["quarantined"]
        old = read_manifest(store, cfg.dataset, "curated", m["id"])
        assert old["superseded_by"] == successor_id and old["erasures"][0]["removed"]["records"] == n
        assert sum(f["rows"] for f in old["files"]) == old["counts"]["kept"] == c["kept"]
        assert "jane" not in json.dumps(new).casefold() and "jane" not in json.dumps(old).casefold()
    assert sum(1 for d in DAYS for r in _rows(store, read_manifest(
        store, cfg.dataset, "curated", latest_for_partition(store, cfg.dataset, "curated", d)))) == others_before
    assert latest_for_partition(store, cfg.dataset, "labeled", DAYS[0]) == out["retrain"][0]

    # the model trained on the labeled version is flagged, and the promotion gate refuses it
    mv = client.get_model_version("support-intent", trained["mlflow"]["version"])
    assert mv.tags["llmops.privacy.erasure"] == "DSR-2026-0001"
    assert mv.tags["llmops.privacy.retrain_required"] == "true"
    assert out["model_versions_flagged"] == [{"name": "support-intent", "version": str(mv.version)}]
    from llmops.evaluation.promotion import apply

    assert apply(cfg, str(mv.version))["changed"] is False
    assert not client.get_registered_model("support-intent").aliases

    # the open job's HITs holding the subject's items expired; the published job's are untouched
    ledger = jobs.read_ledger(store, cfg.dataset, open_plan["job_id"])
    assert out["hits_cancelled"] == len(ledger["cancelled"]) > 0
    for entry in ledger["cancelled"]:
        hit = json.loads(store.read_bytes(f"{crowd.prefix}/hits/{entry['hit_id']}.json"))
        assert hit["expires_at"] <= clock.t
    assert not any(set(r[1] for r in rows) & subject_ids for _, rows in read_index(store, cfg.dataset))
    # the labels bought for the subject's items left the label index
    assert not subject_ids & {json.loads(line)["record_id"] for k in store.list(label_index)
                              for line in store.read_bytes(k).decode().splitlines()}

    # -- the same request again: nothing changes, one audit event, one run in the record ---------
    before = _digest(home / "store"), _digest(artifacts)
    calls = list(crowd.calls)
    again = erase(cfg, store=store, request_id="DSR-2026-0001", subjects=[EMAIL, PHONE, CUSTOMER],
                  mlflow_client=client, backend_factory=lambda: crowd)
    assert again["changed"] is False and again["versions"] == [] and again["hits_cancelled"] == 0
    assert (_digest(home / "store"), _digest(artifacts)) == before
    assert crowd.calls == calls
    events = read_events(store, event="erasure")
    assert len(events) == 1 and events[0]["details"]["records"] == 5
    assert len(erasure_record(store, "DSR-2026-0001")["runs"]) == 1
    assert EMAIL not in json.dumps(events) and EMAIL not in json.dumps(erasure_record(store, "DSR-2026-0001"))


def _rows(store, manifest, which: str = "files"):
    from llmops.versions import iter_batches

    return [row for batch in iter_batches(store, manifest, which=which) for row in batch.to_pylist()]
