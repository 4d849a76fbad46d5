"""Fine-tuning entry point: arguments, deterministic splits, and real DeepSpeed (ZeRO-2, CPU) runs of
a tiny local model that checkpoint and resume to the planned step.

The trainings run in this process (``run_training``, what ``python -m llmops.training`` calls): the
command itself runs under the operator in tests/unit/test_training_operator.py, and across two
processes in tests/integration/test_training_distributed.py. The tiny model and its labeled version
are built once per session (``tiny_training``, tests/_fixtures_training.py)."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import pytest
import yaml

from llmops.config import ConfigError
from llmops.training.args import load_train_config
from llmops.training.data import split_rows

ROOT = Path(__file__).resolve().parents[2]
LABELS = ["billing", "refund", "shipping"]  # the labels of the tiny_training fixture
pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny models: tests/_fixtures_training.py
DIST_ENV = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


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
    bad.write_text(yaml.safe_dump({"model": {"name_or_path": "m"}, "data": {"versions": ["v"]},
                                   "train": {"output_dir": "o", "max_stepz": 3}}))
    with pytest.raises(ConfigError, match=r"train\.max_stepz: unknown key"):
        load_train_config(bad)
    bad.write_text(yaml.safe_dump({"model": {"name_or_path": "m"}, "train": {"output_dir": "o"}}))
    with pytest.raises(ConfigError, match=r"data: required key is missing"):
        load_train_config(bad)
    bad.write_text(yaml.safe_dump({"model": {"name_or_path": "m"}, "data": {"versions": ["v"]},
                                   "train": {"output_dir": "o", "deepspeed": "zero9"}}))
    with pytest.raises(ConfigError, match="train.deepspeed"):
        load_train_config(bad).deepspeed_config(bf16=False)
    cfg = load_train_config(bad.parent / _ok(bad.parent))
    ds = cfg.deepspeed_config(bf16=False)
    assert ds["zero_optimization"]["stage"] == 3 and ds["bf16"] == {"enabled": False} and "optimizer" not in ds


def _ok(folder: Path) -> str:
    (folder / "ok.yaml").write_text(yaml.safe_dump({"model": {"name_or_path": "m"}, "data": {"versions": ["v"]},
                                                    "train": {"output_dir": "o", "deepspeed": "zero3_offload"}}))
    return "ok.yaml"


def _no_launcher(monkeypatch: pytest.MonkeyPatch) -> None:
    """An in-process run describes a one-process world itself; undone after the test."""
    for key in DIST_ENV:
        monkeypatch.setenv(key, "")
        monkeypatch.delenv(key)


@pytest.mark.slow
def test_deepspeed_zero2_on_cpu_checkpoints_and_resumes(tmp_path, tiny_training, monkeypatch):
    from transformers import AutoModelForSequenceClassification

    from llmops.training.args import parse_train_config
    from llmops.training.train import run_training

    model_dir, store, version = tiny_training
    _no_launcher(monkeypatch)
    data = _config(tmp_path, model_dir, store, version, max_steps=4, save_steps=2)
    del data["tracking"]
    first = run_training(parse_train_config(data))
    assert first["global_step"] == 4 and first["resumed_from"] is None
    result = json.loads((tmp_path / "run" / "train_result.json").read_text())
    assert result["deepspeed"] == 2 and result["splits"]["train"] > 0 and result["labels"] == sorted(LABELS)
    # a retried task with a larger budget continues from the newest checkpoint to the planned step
    data["train"]["max_steps"] = 6
    second = run_training(parse_train_config(data))
    assert second["resumed_from"] == "checkpoint-4" and second["global_step"] == 6
    model = AutoModelForSequenceClassification.from_pretrained(second["model_dir"], local_files_only=True)
    assert model.config.id2label == dict(enumerate(sorted(LABELS)))


def _with_golden_items(tmp_path: Path, store: Path, n: int) -> tuple[Path, str]:
    """A copy of ``store`` with one more labeled version: ``n`` items of the support_intents golden set."""
    import shutil

    from llmops.annotation.jobs import labeled_schema
    from llmops.evaluation.golden import load_golden
    from llmops.storage import LocalStore
    from llmops.versions import VersionWriter

    copy = tmp_path / "store"
    shutil.copytree(store, copy)
    golden, _ = load_golden("support_intents", "v1")
    rows = [{"id": f"g{i}", "text": g["text"], "source": "email", "lang": "en", "created_at": None, "meta": "{}",
             "pii": [], "label": LABELS[i % 3], "label_confidence": 0.9, "agreement": 1.0, "n_votes": 3,
             "votes": "{}", "prelabel": None, "method": "dawid_skene"} for i, g in enumerate(golden[:n])]
    writer = VersionWriter("support_messages", "labeled", schema=labeled_schema())
    writer.counts.input = len(rows)
    writer.add_rows(rows)
    return copy, writer.finish(LocalStore(copy))["id"]


def _config(tmp_path: Path, model_dir: Path, store: Path, version: str, **train: object) -> dict:
    return {"model": {"name_or_path": str(model_dir), "max_length": 32},
            "data": {"storage_root": str(store), "versions": [version]},
            "train": {"output_dir": str(tmp_path / "run"), "max_steps": 6, "save_steps": 3,
                      "per_device_batch_size": 8, "deepspeed": "zero2", "learning_rate": 1e-3, **train},
            "tracking": {"tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}",
                         "artifact_location": str(tmp_path / "artifacts"), "experiment": "ft-test",
                         "registered_model": "support-intents", "run_key": "dag/run-1/train"}}


@pytest.mark.slow
def test_mlflow_one_run_and_one_version_across_retries(tmp_path, tiny_training, mlflow_db, monkeypatch):
    from mlflow import MlflowClient

    from llmops.training.args import parse_train_config
    from llmops.training.train import run_training

    model_dir, store, version = tiny_training
    _no_launcher(monkeypatch)
    mlflow_db(tmp_path / "mlflow.db")
    # a second labeled version that holds two items of the support_intents golden set: removed
    # before the split, counted in the run's params and in train_result.json
    store, contaminated = _with_golden_items(tmp_path, store, 2)
    data = _config(tmp_path, model_dir, store, version)
    data["data"]["versions"] = [version, contaminated]
    data["data"]["decontaminate"] = {"suites": ["support_intents"]}
    cfg = parse_train_config(data)
    first = run_training(cfg)
    assert first["decontamination"]["rows_removed"] == 2 and sum(first["splits"].values()) == 90
    assert first["decontamination"]["suites"]["support_intents"]["golden_items_found"] == 2
    # a retried task: the training is done, so it only re-publishes, into the same run and version
    second = run_training(cfg)
    assert first["mlflow"] == second["mlflow"] and first["mlflow"]["version"] == "1"
    client = MlflowClient(tracking_uri=cfg.tracking.tracking_uri)
    versions = client.search_model_versions("name = 'support-intents'")
    assert [str(v.version) for v in versions] == ["1"]
    mv = versions[0]
    assert mv.run_id == first["mlflow"]["run_id"] and mv.tags["llmops.dataset_versions"] == f"{version},{contaminated}"
    run = client.get_run(mv.run_id)
    assert run.info.status == "FINISHED" and run.data.tags["llmops.run_key"] == "dag/run-1/train"
    assert run.data.params["decontamination.rows_removed"] == "2"
    assert run.data.params["decontamination.support_intents.golden_items_found"] == "2"
    assert run.data.params["decontamination.support_intents.contamination_rate"] == str(round(2 / 240, 4))
    assert run.data.params["train.max_steps"] == "6" and run.data.params["deepspeed.zero_optimization.stage"] == "2"
    assert "code_version" in run.data.params
    steps = [m.step for m in client.get_metric_history(mv.run_id, "train/loss")]
    assert steps == sorted(set(steps)) and steps[-1] == 6  # one point per step, none twice
    assert client.get_metric_history(mv.run_id, "perf/tokens_per_s")
    arts = {a.path for a in client.list_artifacts(mv.run_id, "training")}
    assert {"training/train_config.json", "training/deepspeed_config.json", "training/training_curves.png",
            "training/train_result.json"} <= arts
    # the registered model loads with the transformers flavor and predicts one of the labels
    import mlflow

    from llmops.mlflow_uri import use_tracking_uri

    with use_tracking_uri(cfg.tracking.tracking_uri):
        pipe = mlflow.transformers.load_model(f"models:/support-intents/{mv.version}")
    assert pipe(["my parcel is late"])[0]["label"] in LABELS
    assert len(client.search_runs([run.info.experiment_id])) == 1


@pytest.mark.slow
def test_sigterm_saves_a_checkpoint_and_a_retry_resumes_to_the_planned_step(tmp_path, tiny_training, monkeypatch):
    """SIGTERM (Airflow's kill, a pod eviction): the step ends with a checkpoint, the summary says the run
    stopped and the exit code is 143; the retry resumes from that checkpoint, not from step 0. Here a real
    SIGTERM to this process, which trains in-process; the command the launcher runs, stopped by the
    operator's on_kill, in tests/unit/test_training_operator.py."""
    import logging
    import signal

    from llmops.training.args import parse_train_config
    from llmops.training.train import exit_code, run_training

    model_dir, store, version = tiny_training
    _no_launcher(monkeypatch)
    cfg = _config(tmp_path, model_dir, store, version, max_steps=400, save_steps=1000, logging_steps=1)
    del cfg["tracking"]
    unguarded: list[object] = []

    class SigtermAtStep3(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.getMessage().startswith("step 3/400"):
                if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, signal.SIG_IGN, None):
                    unguarded.append(signal.getsignal(signal.SIGTERM))  # would end the test process
                else:
                    os.kill(os.getpid(), signal.SIGTERM)

    progress = logging.getLogger("llmops.training.tracking")
    handler, level = SigtermAtStep3(), progress.level
    progress.addHandler(handler)
    progress.setLevel(logging.INFO)
    before = signal.getsignal(signal.SIGTERM)
    try:
        stopped = run_training(parse_train_config(cfg))
    finally:
        progress.removeHandler(handler)
        progress.setLevel(level)
    assert not unguarded, "no SIGTERM handler while training"
    assert signal.getsignal(signal.SIGTERM) is before  # the process's own handler is back
    assert exit_code(stopped) == 143
    assert stopped["stopped"] and 3 <= stopped["global_step"] < 400
    assert (tmp_path / "run" / f"checkpoint-{stopped['global_step']}" / "trainer_state.json").exists()
    # the retry continues from that checkpoint, not from step 0, and ends at the planned step
    cfg["train"]["max_steps"] = stopped["global_step"] + 4
    done = run_training(parse_train_config(cfg))
    assert done["resumed_from"] == f"checkpoint-{stopped['global_step']}"
    assert done["global_step"] == stopped["global_step"] + 4


def test_a_run_folder_refuses_another_config(tmp_path, tiny_training):
    from llmops.training.args import parse_train_config
    from llmops.training.train import _check_run_folder

    model_dir, store, version = tiny_training
    (tmp_path / "run").mkdir()
    _check_run_folder(tmp_path / "run", parse_train_config(_config(tmp_path, model_dir, store, version)))
    longer = parse_train_config(_config(tmp_path, model_dir, store, version, max_steps=60))
    _check_run_folder(tmp_path / "run", longer)  # training longer is a resume
    other = parse_train_config(_config(tmp_path, model_dir, store, version, learning_rate=0.5))
    with pytest.raises(ValueError, match=r"changed: train\.learning_rate"):
        _check_run_folder(tmp_path / "run", other)


@pytest.mark.slow
@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_sft_trains_a_causal_lm_to_answer_the_label(tmp_path, tiny_training, mlflow_db, monkeypatch, lora):
    """The sft task: a tiny causal LM learns to answer the label after the prompt (prompt tokens
    masked from the loss); with LoRA the adapters are merged into an ordinary model. Both are
    logged by MLflow as text-generation models and registered."""
    from mlflow import MlflowClient
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from llmops.training.args import parse_train_config
    from llmops.training.sft import generate_label
    from llmops.training.train import run_training
    from tests._tiny_models import build_tiny_causal_lm

    _, store, version = tiny_training
    _no_launcher(monkeypatch)
    mlflow_db(tmp_path / "mlflow.db")
    texts = [f"### Message:\nmessage {i}: charged twice invoice money back return parcel late courier\n"
             f"### Intent:\n{lab}" for i, lab in enumerate(LABELS * 10)]
    lm = build_tiny_causal_lm(tmp_path / "tiny-lm", texts)
    data = _config(tmp_path, lm, store, version, max_steps=40, learning_rate=1e-2, deepspeed=None)
    data["model"]["task"] = "sft"
    if lora:
        data["model"]["lora"] = {"r": 8, "alpha": 16, "dropout": 0.0}
    data["tracking"]["registered_model"] = "support-intent-sft"
    summary = run_training(parse_train_config(data))
    assert summary["task"] == "sft" and summary["lora"] is lora and summary["global_step"] == 40
    final = Path(summary["model_dir"])
    assert not (final / "adapter_config.json").exists()  # a plain causal LM folder (merged with LoRA)
    client = MlflowClient(tracking_uri=data["tracking"]["tracking_uri"])
    (mv,) = client.search_model_versions("name = 'support-intent-sft'")
    assert client.get_run(mv.run_id).data.params["model.task"] == "sft"
    losses = [m.value for m in sorted(client.get_metric_history(mv.run_id, "train/loss"), key=lambda m: m.step)]
    # the masked loss (label tokens only) falls; LoRA on a random base, with embeddings and head
    # frozen, learns more slowly than training every weight
    assert losses[-1] < (0.9 if lora else 0.5) * losses[0], losses
    if not lora:  # all weights trained: the model answers the intent
        model = AutoModelForCausalLM.from_pretrained(final, local_files_only=True)
        tok = AutoTokenizer.from_pretrained(final, local_files_only=True)
        words = {"billing": "charged twice invoice", "refund": "money back return", "shipping": "parcel late courier"}
        right = sum(generate_label(model, tok, f"message 7: {words[lab]}") == lab for lab in LABELS)
        assert right >= 2, "the fine-tuned LM should answer most intents"
