"""Real DeepSpeed on CPU across two processes (torchrun, gloo): ZeRO-2 and ZeRO-3 runs of a tiny
model are killed with SIGKILL after their first checkpoint, resumed, and finish at the planned
step; the consolidated model loads with ``from_pretrained``."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow

LABELS = ["billing", "refund", "shipping"]  # the labels of the tiny_model_and_data fixture


def _launch(cfg_path: Path, log: Path) -> subprocess.Popen:
    env = dict(os.environ)
    env.setdefault("TORCH_EXTENSIONS_DIR", str(Path(sys.executable).parents[1] / "torch-extensions"))
    env["OMP_NUM_THREADS"] = "1"
    with log.open("a") as fh:  # a file, not a pipe: nobody reads while the run is going
        return subprocess.Popen(
            [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
             "-m", "llmops.training", "--config", str(cfg_path)],
            stdout=fh, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def _kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL the launcher and every process under it (torchrun starts workers in their own sessions)."""
    import psutil

    parent = psutil.Process(proc.pid)
    victims = [parent, *parent.children(recursive=True)]
    for p in victims:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.send_signal(signal.SIGKILL)
    psutil.wait_procs(victims, timeout=60)
    proc.wait(timeout=60)


@pytest.mark.parametrize("stage", ["zero2", "zero3"])
def test_two_process_run_survives_sigkill_and_resumes(tmp_path, tiny_model_and_data, stage):
    from transformers import AutoModelForSequenceClassification

    model_dir, store, version = tiny_model_and_data
    run_dir = tmp_path / "run"
    cfg = {"model": {"name_or_path": str(model_dir), "max_length": 32},
           "data": {"storage_root": str(store), "versions": [version]},
           "train": {"output_dir": str(run_dir), "max_steps": 120, "save_steps": 5, "save_total_limit": 3,
                     "per_device_batch_size": 4, "deepspeed": stage, "learning_rate": 1e-3}}
    cfg_path = tmp_path / "train.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))

    log = tmp_path / "train.log"
    proc = _launch(cfg_path, log)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and proc.poll() is None:
        if any((p / "trainer_state.json").exists() for p in run_dir.glob("checkpoint-*")):
            break
        time.sleep(0.2)
    assert proc.poll() is None, "the run ended before it could be killed:\n" + log.read_text()[-4000:]
    _kill_tree(proc)  # the launcher and both workers, without warning (a lost node)
    done = [int(p.name.split("-")[1]) for p in run_dir.glob("checkpoint-*") if (p / "trainer_state.json").exists()]
    assert done, "no checkpoint within 10 minutes:\n" + log.read_text()[-4000:]
    killed_at = max(done)
    time.sleep(2)
    assert killed_at < 120 and not (run_dir / "train_result.json").exists()
    assert not any(int(p.name.split("-")[1]) > killed_at + 5 for p in run_dir.glob("checkpoint-*")), "a worker survived"

    proc = _launch(cfg_path, log)
    assert proc.wait(timeout=900) == 0, log.read_text()[-4000:]
    result = json.loads((run_dir / "train_result.json").read_text())
    assert result["global_step"] == 120 and result["world_size"] == 2
    assert result["resumed_from"] is not None and int(result["resumed_from"].split("-")[1]) >= killed_at
    assert result["deepspeed"] == (2 if stage == "zero2" else 3)
    model = AutoModelForSequenceClassification.from_pretrained(result["model_dir"], local_files_only=True)
    assert model.config.id2label == dict(enumerate(sorted(LABELS)))
    assert all(p.numel() > 0 for p in model.parameters())  # ZeRO-3 weights were gathered, not left partitioned
