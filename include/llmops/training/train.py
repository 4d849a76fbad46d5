"""Fine-tune a Hugging Face model on a labeled dataset version, with DeepSpeed.

    llmops train --config FILE
    python -m llmops.training --config FILE
    deepspeed --num_gpus N -m llmops.training --config FILE      (or torchrun --nproc_per_node N -m ...)

It reads top to bottom: arguments -> data (a labeled version, stratified splits) -> tokenizer and
model -> Trainer with the DeepSpeed config -> train (resuming from the newest checkpoint in the
run folder) -> evaluate -> save. The same file runs on a laptop CPU (fp32, one process) and on
GPUs under a launcher (bf16 where supported).
"""

from __future__ import annotations

import json
import logging
import os
import socket
from pathlib import Path
from typing import Any

from llmops.config import expand_vars
from llmops.training.args import TrainConfig

__all__ = ["latest_checkpoint", "run_training", "single_process_env"]

log = logging.getLogger(__name__)


def single_process_env() -> None:
    """Without a launcher, describe a one-process world (DeepSpeed would otherwise look for MPI)."""
    if "RANK" in os.environ or "OMPI_COMM_WORLD_RANK" in os.environ:
        return
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))


def latest_checkpoint(output_dir: Path) -> Path | None:
    """The newest complete ``checkpoint-N`` folder (one with trainer state) in ``output_dir``."""
    found = [p for p in output_dir.glob("checkpoint-*") if (p / "trainer_state.json").exists()]
    return max(found, key=lambda p: int(p.name.split("-")[-1])) if found else None


def run_training(cfg: TrainConfig) -> dict[str, Any]:
    import torch
    from datasets import Dataset
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        Trainer,
        TrainingArguments,
        set_seed,
    )

    from llmops.storage import open_store
    from llmops.training.data import load_labeled_rows, split_rows

    # 1. arguments and the process world
    on_gpu = torch.cuda.is_available()
    bf16 = bool(on_gpu and torch.cuda.is_bf16_supported())
    ds_config = cfg.deepspeed_config(bf16=bf16)
    if ds_config is not None:
        single_process_env()
    set_seed(cfg.train.seed)
    out = Path(expand_vars(cfg.train.output_dir))
    out.mkdir(parents=True, exist_ok=True)

    # 2. data: the labeled version, split deterministically and stratified by label
    store = open_store(expand_vars(cfg.data.storage_root))
    rows = load_labeled_rows(store, cfg.data.dataset, cfg.data.version)
    splits = split_rows(rows, validation=cfg.data.validation_fraction, test=cfg.data.test_fraction,
                        seed=cfg.data.seed)
    labels = sorted({r["label"] for r in rows})
    label2id = {lab: i for i, lab in enumerate(labels)}

    # 3. tokenizer and model (local files only: nothing is downloaded)
    if cfg.model.task != "classification":
        raise NotImplementedError("model.task: only `classification` is available in this version")
    tok = AutoTokenizer.from_pretrained(cfg.model.name_or_path, local_files_only=True)
    model = AutoModelForSequenceClassification.from_pretrained(
        cfg.model.name_or_path, local_files_only=True, num_labels=len(labels),
        id2label=dict(enumerate(labels)), label2id=label2id, ignore_mismatched_sizes=True)

    def encode(split: list[dict[str, Any]]) -> Dataset:
        ds = Dataset.from_dict({"text": [r["text"] for r in split], "label": [label2id[r["label"]] for r in split]})
        return ds.map(lambda b: tok(b["text"], truncation=True, max_length=cfg.model.max_length), batched=True,
                      remove_columns=["text"])

    train_ds, val_ds = encode(splits["train"]), encode(splits["validation"])

    # 4. the Trainer, with DeepSpeed when configured
    args = TrainingArguments(
        output_dir=str(out),
        max_steps=cfg.train.max_steps,
        per_device_train_batch_size=cfg.train.per_device_batch_size,
        per_device_eval_batch_size=cfg.train.per_device_batch_size,
        gradient_accumulation_steps=cfg.train.gradient_accumulation_steps,
        learning_rate=cfg.train.learning_rate,
        weight_decay=cfg.train.weight_decay,
        warmup_steps=cfg.train.warmup_steps,
        save_strategy="steps",
        save_steps=cfg.train.save_steps,
        save_total_limit=cfg.train.save_total_limit,
        logging_steps=cfg.train.logging_steps,
        seed=cfg.train.seed,
        data_seed=cfg.data.seed,
        bf16=bf16,
        use_cpu=not on_gpu,
        deepspeed=ds_config,
        report_to=[],
        disable_tqdm=True,
    )
    trainer = Trainer(model=model, args=args, train_dataset=train_ds, eval_dataset=val_ds, processing_class=tok)

    # 5. train, resuming from the newest checkpoint of this run folder (a retried task)
    resume = latest_checkpoint(out)
    if resume is not None:
        log.info("resuming from %s", resume)
    result = trainer.train(resume_from_checkpoint=str(resume) if resume else None)

    # 6. evaluate and save an ordinary save_pretrained folder (ZeRO-3 weights are gathered)
    metrics = trainer.evaluate() if len(val_ds) else {}
    final = out / "final"
    trainer.save_model(str(final))
    summary = {
        "global_step": trainer.state.global_step,
        "resumed_from": resume.name if resume else None,
        "train_loss": result.training_loss,
        "eval": {k: float(v) for k, v in metrics.items() if isinstance(v, int | float)},
        "splits": {k: len(v) for k, v in splits.items()},
        "labels": labels,
        "deepspeed": (ds_config or {}).get("zero_optimization", {}).get("stage"),
        "bf16": bf16,
        "world_size": int(os.environ.get("WORLD_SIZE", "1")),
        "model_dir": str(final),
    }
    if trainer.is_world_process_zero():
        (out / "train_result.json").write_text(json.dumps(summary, indent=2, sort_keys=True))
    return summary
