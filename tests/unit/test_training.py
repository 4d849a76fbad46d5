"""Fine-tuning entry point: arguments, deterministic splits, and a real DeepSpeed (ZeRO-2, CPU)
run of a tiny local model that checkpoints and resumes to the planned step."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml

from llmops.config import ConfigError
from llmops.training.args import load_train_config
from llmops.training.data import split_rows

ROOT = Path(__file__).resolve().parents[2]
LABELS = ["billing", "refund", "shipping"]  # the labels of the tiny_model_and_data fixture


def test_split_is_deterministic_and_stratified():
    rows = [{"id": f"r{i}", "label": LABELS[i % 3]} for i in range(300)]
    a = split_rows(rows, validation=0.1, test=0.2, seed=1)
    b = split_rows(list(reversed(rows)), validation=0.1, test=0.2, seed=1)
    assert {k: [r["id"] for r in v] for k, v in a.items()} == {k: [r["id"] for r in v] for k, v in b.items()}
    assert {k: len(v) for k, v in a.items()} == {"train": 210, "validation": 30, "test": 60}
    assert Counter(r["label"] for r in a["test"]) == {"billing": 20, "refund": 20, "shipping": 20}
    assert not {r["id"] for r in a["train"]} & {r["id"] for r in a["test"]}
    c = split_rows(rows, validation=0.1, test=0.2, seed=2)
    assert [r["id"] for r in c["test"]] != [r["id"] for r in a["test"]]
    tiny = split_rows([{"id": "x", "label": "a"}], validation=0.5, test=0.5, seed=0)
    assert len(tiny["train"]) == 1  # every label keeps a training example


def test_config_errors_name_the_key(tmp_path):
    bad = tmp_path / "t.yaml"
    bad.write_text(yaml.safe_dump({"model": {"name_or_path": "m"}, "data": {"version": "v"},
                                   "train": {"output_dir": "o", "max_stepz": 3}}))
    with pytest.raises(ConfigError, match=r"train\.max_stepz: unknown key"):
        load_train_config(bad)
    bad.write_text(yaml.safe_dump({"model": {"name_or_path": "m"}, "train": {"output_dir": "o"}}))
    with pytest.raises(ConfigError, match=r"data: required key is missing"):
        load_train_config(bad)
    bad.write_text(yaml.safe_dump({"model": {"name_or_path": "m"}, "data": {"version": "v"},
                                   "train": {"output_dir": "o", "deepspeed": "zero9"}}))
    with pytest.raises(ConfigError, match="train.deepspeed"):
        load_train_config(bad).deepspeed_config(bf16=False)
    cfg = load_train_config(bad.parent / _ok(bad.parent))
    ds = cfg.deepspeed_config(bf16=False)
    assert ds["zero_optimization"]["stage"] == 3 and ds["bf16"] == {"enabled": False} and "optimizer" not in ds


def _ok(folder: Path) -> str:
    (folder / "ok.yaml").write_text(yaml.safe_dump({"model": {"name_or_path": "m"}, "data": {"version": "v"},
                                                    "train": {"output_dir": "o", "deepspeed": "zero3_offload"}}))
    return "ok.yaml"


def _train(tmp_path: Path, model_dir: Path, store: Path, version: str, max_steps: int) -> dict:
    cfg = {"model": {"name_or_path": str(model_dir), "max_length": 32},
           "data": {"storage_root": str(store), "version": version},
           "train": {"output_dir": str(tmp_path / "run"), "max_steps": max_steps, "save_steps": 2,
                     "per_device_batch_size": 8, "deepspeed": "zero2", "learning_rate": 1e-3}}
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(cfg))
    env = dict(os.environ)
    # DeepSpeed JIT-builds a small CPU communication op once (~1 min); keep it beside the venv
    env.setdefault("TORCH_EXTENSIONS_DIR", str(Path(sys.executable).parents[1] / "torch-extensions"))
    res = subprocess.run([sys.executable, "-m", "llmops.training", "--config", str(path)], capture_output=True,
                         text=True, env=env, timeout=900)
    assert res.returncode == 0, res.stderr[-4000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_deepspeed_zero2_on_cpu_checkpoints_and_resumes(tmp_path, tiny_model_and_data):
    from transformers import AutoModelForSequenceClassification

    model_dir, store, version = tiny_model_and_data
    first = _train(tmp_path, model_dir, store, version, max_steps=4)
    assert first["global_step"] == 4 and first["resumed_from"] is None
    result = json.loads((tmp_path / "run" / "train_result.json").read_text())
    assert result["deepspeed"] == 2 and result["splits"]["train"] > 0 and result["labels"] == sorted(LABELS)
    # a retried task with a larger budget continues from the newest checkpoint to the planned step
    second = _train(tmp_path, model_dir, store, version, max_steps=6)
    assert second["resumed_from"] == "checkpoint-4" and second["global_step"] == 6
    model = AutoModelForSequenceClassification.from_pretrained(second["model_dir"], local_files_only=True)
    assert model.config.id2label == dict(enumerate(sorted(LABELS)))
