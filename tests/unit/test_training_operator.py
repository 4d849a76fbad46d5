"""DeepSpeedTrainOperator's launcher path: the training log streams into the task log, and a
killed task (on_kill) makes the training save a checkpoint and stop; the try fails clearly."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow


def test_on_kill_checkpoints_and_the_try_fails_with_a_resumable_error(tmp_path, tiny_model_and_data, monkeypatch):
    from llmops.config import load_config
    from llmops.storage import LocalStore
    from llmops.training.plan import build_train_config
    from llmops.training.runfolder import RunFolder
    from llmops_airflow.operators.training import DeepSpeedTrainOperator

    model_dir, store_root, version = tiny_model_and_data
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
    ckpts = sorted(Path(folder.path).glob("checkpoint-*"))
    assert ckpts and (ckpts[-1] / "trainer_state.json").exists()
    step = int(ckpts[-1].name.split("-")[1])
    assert 3 <= step < 2000
