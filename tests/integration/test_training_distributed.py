"""Real DeepSpeed on CPU across two processes (torchrun, gloo): ZeRO-2 and ZeRO-3 runs of a tiny
model are killed with SIGKILL (launcher and both workers, a lost node) after a checkpoint,
relaunched, resume from their newest checkpoint and finish at the planned step; under ZeRO-3 each
rank saved its own partition, and either way the consolidated model (ZeRO-3 weights gathered)
loads with ``from_pretrained``. Resuming a ZeRO-2 checkpoint in one process (after a finished run
and after SIGTERM) is tested in tests/unit/test_training.py.
"""

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

LABELS = ["billing", "refund", "shipping"]  # the labels of the tiny_training fixture


def _write_config(tmp_path: Path, tiny_training, stage: str, *, max_steps: int, save_steps: int) -> Path:
    model_dir, store, version = tiny_training
    cfg = {"model": {"name_or_path": str(model_dir), "max_length": 32},
           "data": {"storage_root": str(store), "versions": [version]},
           "train": {"output_dir": str(tmp_path / "run"), "max_steps": max_steps, "save_steps": save_steps,
                     "save_total_limit": 3, "per_device_batch_size": 4, "deepspeed": stage, "learning_rate": 1e-3}}
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _launch(cfg_path: Path, log: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")}
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


def _checkpoints(run_dir: Path) -> list[int]:
    return [int(p.name.split("-")[1]) for p in run_dir.glob("checkpoint-*") if (p / "trainer_state.json").exists()]


def _final_model_loads(result: dict) -> None:
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(result["model_dir"], local_files_only=True)
    assert model.config.id2label == dict(enumerate(sorted(LABELS)))
    assert all(p.numel() > 0 for p in model.parameters())  # ZeRO-3 weights were gathered, not left partitioned


#: The kill follows the first complete checkpoint within a poll (50 ms) and a process-tree walk; the
#: 25 steps and 5 checkpoint saves still ahead take seconds even on an idle machine, so it lands mid-run.
STEPS, SAVE_STEPS = 30, 5


@pytest.mark.parametrize("stage", ["zero2", "zero3"])
def test_two_process_run_survives_sigkill_and_resumes(tmp_path, tiny_training, stage):
    cfg_path = _write_config(tmp_path, tiny_training, stage, max_steps=STEPS, save_steps=SAVE_STEPS)
    run_dir, log = tmp_path / "run", tmp_path / "train.log"
    proc = _launch(cfg_path, log)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and proc.poll() is None and not _checkpoints(run_dir):
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed:\n" + log.read_text()[-4000:]
    _kill_tree(proc)  # the launcher and both workers, without warning (a lost node)
    done = _checkpoints(run_dir)
    assert done, "no checkpoint within 10 minutes:\n" + log.read_text()[-4000:]
    killed_at = max(done)
    time.sleep(2)
    assert killed_at < STEPS and not (run_dir / "train_result.json").exists()
    assert not any(c > killed_at + SAVE_STEPS for c in _checkpoints(run_dir)), "a worker survived"

    start = log.stat().st_size
    proc = _launch(cfg_path, log)
    assert proc.wait(timeout=900) == 0, log.read_text()[-4000:]
    resumed_log = log.read_text()[start:]
    # both workers left the world cleanly: none aborted in its teardown after finishing
    assert "terminate called" not in resumed_log and "SIGABRT" not in resumed_log, resumed_log[-4000:]
    assert resumed_log.count(f'"global_step": {STEPS}') == 2, resumed_log[-4000:]
    result = json.loads((run_dir / "train_result.json").read_text())
    assert result["global_step"] == STEPS and result["world_size"] == 2
    assert result["resumed_from"] is not None and int(result["resumed_from"].split("-")[1]) >= killed_at
    assert result["deepspeed"] == (2 if stage == "zero2" else 3)
    if stage == "zero3":  # each rank saved its own partition of the optimizer state
        last = run_dir / f"checkpoint-{STEPS}" / f"global_step{STEPS}"
        assert len(list(last.glob("zero_pp_rank_*_optim_states.pt"))) == 2
    _final_model_loads(result)
