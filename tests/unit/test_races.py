"""Exactly-once under concurrency: two real processes (not threads sharing a client) run the same
step at the same moment - conditional creates in the store, a HIT export, a promotion."""

from __future__ import annotations

import json
import multiprocessing as mp
from pathlib import Path

import pytest

SPAWN = mp.get_context("spawn")


def _create_many(root: str, n: int, go, out) -> None:
    from llmops.storage import LocalStore

    store = LocalStore(root)
    go.wait(30)
    out.put([store.create_bytes(f"claims/{i:04d}.json", json.dumps({"by": mp.current_process().name}).encode())
             for i in range(n)])


def _race(target, *args):
    go, out = SPAWN.Event(), SPAWN.Queue()
    procs = [SPAWN.Process(target=target, args=(*args, go, out), name=f"racer-{i}") for i in range(2)]
    for p in procs:
        p.start()
    go.set()
    results = [out.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    return results


def test_two_processes_creating_the_same_keys_create_each_once(tmp_path: Path):
    a, b = _race(_create_many, str(tmp_path), 300)
    assert all(x != y for x, y in zip(a, b, strict=True)), "exactly one of the two created each key"
    from llmops.storage import LocalStore

    assert len(LocalStore(tmp_path).list("claims")) == 300
    assert not [p for p in (tmp_path / "claims").iterdir() if p.name.startswith(".tmp-")]


def test_s3_create_is_a_conditional_put(s3_client):
    from llmops.storage import S3Store

    s3_client.create_bucket(Bucket="llmops-race")
    store = S3Store("s3://llmops-race/p", s3_client)
    assert store.create_bytes("k.json", b"1") is True
    assert store.create_bytes("k.json", b"2") is False
    assert store.read_bytes("k.json") == b"1"


def _export(cfg_json: str, job_id: str, go, out) -> None:
    from llmops.annotation.jobs import export_job, make_backend
    from llmops.config import parse_config
    from llmops.stages import open_config_store

    cfg = parse_config(json.loads(cfg_json))
    store = open_config_store(cfg)
    go.wait(30)
    out.put(export_job(cfg, store=store, job_id=job_id, backend=make_backend(cfg, store)))


@pytest.mark.slow
def test_two_processes_exporting_the_same_job_create_each_hit_once(curated_factory, redactor):
    from llmops.annotation.jobs import prepare_job, read_ledger

    cfg, store, manifest = curated_factory(60)
    plan = prepare_job(cfg, store=store, curated_version_id=manifest["id"], partition="2026-11-25",
                       dag_id="llm_annotation", redactor=redactor)
    a, b = _race(_export, json.dumps(cfg.model_dump(mode="json")), plan["job_id"])
    hits = store.list(f"crowd/local/{cfg.dataset}/hits/")
    assert len(hits) == plan["hits"] >= 2, (plan, hits)
    ledger = read_ledger(store, cfg.dataset, plan["job_id"])
    assert ledger["status"] == "exported" and len(ledger["hits"]) == plan["hits"]
    assert sorted(h["hit_id"] for h in ledger["hits"].values()) == sorted(Path(k).stem for k in hits)


def _promote(cfg_json: str, version: str, go, out) -> None:
    from llmops.config import parse_config
    from llmops.evaluation.promotion import apply
    from llmops.stages import open_config_store

    cfg = parse_config(json.loads(cfg_json))
    go.wait(30)
    out.put(apply(cfg, version, store=open_config_store(cfg), owner=f"llm_evaluation/{mp.current_process().name}"))


def test_two_runs_promoting_the_same_version_move_the_alias_once(tmp_path: Path):
    from mlflow import MlflowClient

    from llmops.config import parse_config
    from llmops.privacy.audit import read_events
    from llmops.stages import open_config_store

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    cfg = parse_config({"storage": {"root": str(tmp_path / "store")},
                        "training": {"tracking": {"tracking_uri": uri}}})
    client = MlflowClient(tracking_uri=uri)
    name = cfg.training.registered_model
    client.create_registered_model(name)
    old = client.create_model_version(name, source=str(tmp_path / "m1")).version
    new = client.create_model_version(name, source=str(tmp_path / "m2")).version
    client.set_registered_model_alias(name, "champion", old)

    a, b = _race(_promote, json.dumps(cfg.model_dump(mode="json")), str(new))
    # one moved the aliases; the other found the move claimed, or (started later) already done
    assert [a["changed"], b["changed"]].count(True) == 1, (a, b)
    assert str(client.get_model_version_by_alias(name, "champion").version) == str(new)
    assert str(client.get_model_version_by_alias(name, "previous").version) == str(old)
    store = open_config_store(cfg)
    assert len(read_events(store, event="model_promotion")) == 1
    assert len(store.list(f"registry/{name}/promotions")) == 1
    # a retry later finds the version champion already: nothing moves, nothing is recorded again
    from llmops.evaluation.promotion import apply

    assert apply(cfg, str(new), store=store, owner="llm_evaluation/retry")["changed"] is False
    assert len(read_events(store, event="model_promotion")) == 1

    # the claim itself: a move another run claimed is left to it; the claiming run's retry goes on
    third = client.create_model_version(name, source=str(tmp_path / "m3")).version
    claim = f"registry/{name}/promotions/champion-{new}-to-{third}.json"
    assert store.create_bytes(claim, json.dumps({"owner": "llm_evaluation/run-a"}).encode())
    out = apply(cfg, str(third), store=store, owner="llm_evaluation/run-b")
    assert out["changed"] is False and out["claimed_elsewhere"] and out["champion"] == str(new)
    assert apply(cfg, str(third), store=store, owner="llm_evaluation/run-a")["changed"] is True
    assert str(client.get_model_version_by_alias(name, "champion").version) == str(third)
