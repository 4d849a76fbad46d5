"""DeepSpeedTrainOperator's launcher path: the training log streams into the task log, and a
killed task (on_kill) makes the training save a checkpoint and stop; the try fails clearly.

The training is ``python -m llmops.training``, the launcher's command on a CPU worker: SIGTERM makes it
print a summary saying it stopped, and exit with 143 (resuming from that checkpoint is tested in
tests/unit/test_training.py)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
import yaml

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]


def test_on_kill_checkpoints_and_the_try_fails_with_a_resumable_error(tmp_path, tiny_training, monkeypatch):
    from llmops.config import load_config
    from llmops.storage import LocalStore
    from llmops.training.plan import build_train_config
    from llmops.training.runfolder import RunFolder
    from llmops_airflow.operators.training import DeepSpeedTrainOperator

    model_dir, _, version = tiny_training
    store_root = tiny_training.copy_store(tmp_path / "store")  # the run folder goes onto the store
    cfg = load_config(None)
    cand = {"name": "tiny", "model": {"name_or_path": str(model_dir), "max_length": 32},
            "train": {"max_steps": 2000, "save_steps": 5000, "per_device_batch_size": 8, "deepspeed": "zero2"}}
    folder = RunFolder(LocalStore(store_root), "training/support_messages/runs/t", tmp_path / "cache")
    train_cfg = build_train_config(cfg, cand, versions=[version], output_dir=str(folder.path), key="t")
    data = train_cfg.model_dump(mode="json")
    data["data"]["storage_root"] = str(store_root)
    data["tracking"]["tracking_uri"] = None
    config_file = folder.path / "launch_config.yaml"
    config_file.write_text(yaml.safe_dump(data))

    op = DeepSpeedTrainOperator(task_id="train", candidate=cand, versions=[version])
    lines: list[str] = []
    def capture(msg: str, *args: object) -> None:
        lines.append(msg % args if args else msg)

    monkeypatch.setattr(op.log, "info", capture)
    monkeypatch.setattr(op.log, "warning", capture)
    op._grace_s = 120
    errors: list[BaseException] = []

    def run() -> None:
        try:
            op._run_local(cfg.training, config_file, folder)
        except BaseException as exc:
            errors.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    deadline = time.monotonic() + 300
    while not any(" step 3/2000" in line for line in lines) and worker.is_alive() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert any(" step 3/2000" in line for line in lines), "\n".join(lines[-30:])
    op.on_kill()
    worker.join(180)
    assert not worker.is_alive()
    (err,) = errors
    assert "stopped by SIGTERM after saving a checkpoint" in str(err)
    assert op._proc is not None and op._proc.returncode == 143, "\n".join(lines[-30:])
    ckpts = sorted(Path(folder.path).glob("checkpoint-*"))
    assert ckpts and (ckpts[-1] / "trainer_state.json").exists()
    step = int(ckpts[-1].name.split("-")[1])
    assert 3 <= step < 2000
    # the command's last line, streamed into the task log: it stopped, at the step of that checkpoint
    stopped = json.loads(next(line for line in reversed(lines) if line.startswith("{")))
    assert stopped["stopped"] and stopped["global_step"] == step and stopped["resumed_from"] is None
