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

import contextlib
import json
import logging
import math
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

from llmops.config import expand_vars
from llmops.training.args import TrainConfig

__all__ = ["exit_code", "latest_checkpoint", "run_training", "single_process_env"]

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


class _Stop:
    """Set by SIGTERM (Airflow's kill, a pod eviction, the launcher forwarding it)."""

    requested = False

    @classmethod
    def install(cls) -> None:
        def handler(signum: int, frame: Any) -> None:
            log.warning("signal %d: saving a checkpoint at the end of this step, then exiting", signum)
            cls.requested = True

        signal.signal(signal.SIGTERM, handler)

    @classmethod
    @contextlib.contextmanager
    def scope(cls) -> Any:
        """The handler installed by a training stays until ``run_training`` returns; then the process's
        own SIGTERM handler is back (a process that trains in-process, e.g. a test runner, still stops
        on SIGTERM afterwards) and no request is left over for its next training."""
        main = threading.current_thread() is threading.main_thread()
        before = signal.getsignal(signal.SIGTERM) if main else None
        cls.requested = False
        try:
            yield
        finally:
            cls.requested = False
            if main and before is not None:
                signal.signal(signal.SIGTERM, before)


@contextlib.contextmanager
def _extension_build_env() -> Any:
    """One build of DeepSpeed's JIT op (its CPU shared-memory communication op, ~1 min of C++) per
    environment: the op is built into and loaded from ``<venv>/torch-extensions`` – the folder the
    Airflow launcher gives its trainings – by the environment's own ``ninja``, whatever the caller's
    ``PATH``. Otherwise an in-process or shell run builds it again under ``~/.cache``, and a run whose
    ``PATH`` finds another ninja version than the last build's (the system's vs the venv's: their build
    logs are incompatible) rebuilds it from scratch. A ``TORCH_EXTENSIONS_DIR`` already set is kept;
    the environment is restored afterwards."""
    saved = {k: os.environ.get(k) for k in ("TORCH_EXTENSIONS_DIR", "PATH")}
    bindir = Path(sys.executable).parent
    in_venv = sys.prefix != sys.base_prefix
    if in_venv and "TORCH_EXTENSIONS_DIR" not in os.environ:
        os.environ["TORCH_EXTENSIONS_DIR"] = str(Path(sys.executable).parents[1] / "torch-extensions")
    path = os.environ.get("PATH", "")
    if in_venv and (bindir / "ninja").is_file() and path.split(os.pathsep)[0] != str(bindir):
        os.environ["PATH"] = os.pathsep.join(p for p in (str(bindir), path) if p)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _stop_callback() -> Any:
    from transformers import TrainerCallback

    class StopOnSignalCallback(TrainerCallback):
        """After SIGTERM, every rank saves a checkpoint at the same step and training stops."""

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> Any:
            stop = _Stop.requested
            if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # ranks agree on the step (the save is collective)
                import torch
                import torch.distributed as dist

                if dist.is_initialized():
                    flag = torch.tensor([1 if stop else 0])
                    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
                    stop = bool(flag.item())
            if stop:
                _Stop.requested = True
                control.should_save = True
                control.should_training_stop = True
            return control

    return StopOnSignalCallback()



# A resumed run may train longer or checkpoint differently; anything else would mix two trainings.
_MAY_CHANGE_ON_RESUME = {"output_dir", "max_steps", "epochs", "save_steps", "save_total_limit", "logging_steps"}


def _check_run_folder(out: Path, cfg: TrainConfig) -> None:
    """A run folder belongs to one training config: resuming with another one would mix two runs."""
    import hashlib

    fingerprint = {"model": cfg.model.model_dump(mode="json"), "data": cfg.data.model_dump(mode="json"),
                   "train": cfg.train.model_dump(mode="json", exclude=_MAY_CHANGE_ON_RESUME)}
    digest = hashlib.sha256(json.dumps(fingerprint, sort_keys=True).encode()).hexdigest()
    marker = out / "run_config.json"
    if marker.exists():
        old = json.loads(marker.read_text())
        if old.get("hash") != digest:
            changed = sorted(f"{sec}.{k}" for sec in fingerprint for k in fingerprint[sec]
                             if old.get("config", {}).get(sec, {}).get(k) != fingerprint[sec][k])
            raise ValueError(f"run folder {out} holds a training with another config (changed: "
                             f"{', '.join(changed) or 'unknown'}); use a new train.output_dir")
    elif int(os.environ.get("RANK", "0")) == 0:
        marker.write_text(json.dumps({"hash": digest, "config": fingerprint}, indent=2, sort_keys=True, default=str))


def _finished(out: Path, cfg: TrainConfig) -> dict[str, Any] | None:
    result = out / "train_result.json"
    if result.exists() and (out / "final").is_dir():
        summary: dict[str, Any] = json.loads(result.read_text())
        planned = summary.get("planned_steps")
        if summary.get("global_step") == planned and (cfg.train.epochs is not None or planned == cfg.train.max_steps):
            return summary
    return None


def run_training(cfg: TrainConfig, *, run_key: str | None = None) -> dict[str, Any]:
    with _Stop.scope():
        return _run_training(cfg, run_key=run_key)


def _run_training(cfg: TrainConfig, *, run_key: str | None) -> dict[str, Any]:
    import torch

    from llmops.models import resolve_model_path
    from llmops.storage import open_store
    from llmops.training import tracking
    from llmops.training.data import load_labeled_rows, split_rows

    # 1. arguments, the process world, the run folder
    on_gpu = torch.cuda.is_available()
    bf16 = bool(on_gpu and torch.cuda.is_bf16_supported())
    ds_config = cfg.deepspeed_config(bf16=bf16)
    own_world = ds_config is not None and "RANK" not in os.environ and "OMPI_COMM_WORLD_RANK" not in os.environ
    saved_env = {k: os.environ.get(k) for k in _WORLD_ENV}
    saved_accelerate = {k: v for k, v in os.environ.items() if k.startswith("ACCELERATE_")}
    if ds_config is not None:
        single_process_env()
    try:
        rank, world_size = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
        out = Path(expand_vars(cfg.train.output_dir)).expanduser().resolve()
        out.mkdir(parents=True, exist_ok=True)
        _check_run_folder(out, cfg)
        run_key = run_key or cfg.tracking.run_key or str(out)
        track = rank == 0 and tracking.tracking_uri(cfg.tracking) is not None
        run_id = tracking.open_run(cfg, run_key) if track else None

        summary = _finished(out, cfg)
        if summary is not None:  # a retry after the training itself had finished: publish only
            log.info("training in %s already reached step %d; not training again", out, summary["global_step"])
        else:
            monitor = tracking.system_metrics(cfg, run_id) if run_id is not None else None
            try:
                with _extension_build_env():
                    summary = _train(cfg, out, ds_config=ds_config, bf16=bf16, run_id=run_id,
                                     world_size=world_size, resolve=resolve_model_path, load_rows=load_labeled_rows,
                                     split=split_rows, store=open_store(expand_vars(cfg.data.storage_root)))
            except BaseException:
                if run_id is not None:
                    _end_run(cfg, run_id, "FAILED")
                raise
            finally:
                if monitor is not None:
                    monitor.finish()
            if summary.get("stopped"):
                return summary
    finally:  # also when the run folder or MLflow refused to start
        _release_world(own_world, saved_env, saved_accelerate)

    # 7. MLflow: configs, curves, the model (transformers flavor), one registry version
    if run_id is not None:
        config_file = out / "train_config.json"
        config_file.write_text(cfg.model_dump_json(indent=2))
        ds_file = out / "deepspeed_config.json"
        ds_file.write_text(json.dumps(ds_config, indent=2, sort_keys=True)) if ds_config else None
        tags = {"llmops.dataset": cfg.data.dataset, "llmops.dataset_versions": ",".join(cfg.data.versions),
                "llmops.base_model": cfg.model.name_or_path, "llmops.task": cfg.model.task,
                "llmops.run_key": run_key, **cfg.tracking.tags}
        summary["mlflow"] = tracking.publish_model(
            cfg, run_id, out / "final", tags=tags,
            artifacts=[config_file, ds_file, out / "train_result.json", out / "training_curves.png"])
        if rank == 0:
            (out / "train_result.json").write_text(json.dumps(summary, indent=2, sort_keys=True))
        _end_run(cfg, run_id, "FINISHED")
    return summary


_WORLD_ENV = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def destroy_world() -> bool:
    """Destroy this process's process group, if there is one: through DeepSpeed when it made the
    group, so the groups it cloned and cached go too (a next training in the process would otherwise
    broadcast on a group of the destroyed world). True when there was one."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return False
    ds_comm = sys.modules.get("deepspeed.comm.comm")
    if ds_comm is not None and getattr(ds_comm, "cdb", None) is not None:
        ds_comm.destroy_process_group()
    else:
        dist.destroy_process_group()
    return True


def _release_world(own: bool, saved_env: dict[str, str | None], saved_accelerate: dict[str, str]) -> None:
    """Drop the process-wide state a training leaves behind: the Trainer's DeepSpeed config (under
    ZeRO-3 it would partition every model built afterwards, e.g. the one MLflow logs), accelerate's
    shared state and its ``ACCELERATE_*`` variables (``ACCELERATE_USE_DEEPSPEED`` would make the next
    Trainer of the process use DeepSpeed) and, for a one-process world this run made up, the process
    group (with the groups DeepSpeed cached from it) and its env."""
    for key in [k for k in os.environ if k.startswith("ACCELERATE_") and k not in saved_accelerate]:
        del os.environ[key]
    os.environ.update(saved_accelerate)
    with contextlib.suppress(ImportError):
        from transformers.integrations.deepspeed import unset_hf_deepspeed_config

        unset_hf_deepspeed_config()
    with contextlib.suppress(ImportError, AttributeError):
        from accelerate.state import AcceleratorState

        AcceleratorState._reset_state(reset_partial_state=True)
    if not own:
        return
    destroy_world()
    for key, value in saved_env.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def _end_run(cfg: TrainConfig, run_id: str, status: str) -> None:
    from llmops.training.tracking import _client

    _client(cfg.tracking).set_terminated(run_id, status=status)


def _train(cfg: TrainConfig, out: Path, *, ds_config: dict[str, Any] | None, bf16: bool, run_id: str | None,
           world_size: int, resolve: Any, load_rows: Any, split: Any, store: Any) -> dict[str, Any]:
    import torch
    from datasets import Dataset, disable_progress_bars
    from transformers import (
        AutoModelForCausalLM,
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        PrinterCallback,
        Trainer,
        TrainingArguments,
        set_seed,
    )
    from transformers.utils import logging as hf_logging

    from llmops.training import sft, tracking

    hf_logging.disable_progress_bar()  # no tqdm bars in task logs
    disable_progress_bars()
    set_seed(cfg.train.seed)

    # 2. data: the labeled versions, split deterministically and stratified by label
    rows = load_rows(store, cfg.data.dataset, cfg.data.versions)
    decontamination = _decontaminate(cfg, rows)
    if decontamination is not None:
        rows = decontamination.pop("kept")
    splits = split(rows, validation=cfg.data.validation_fraction, test=cfg.data.test_fraction, seed=cfg.data.seed)
    labels = sorted({r["label"] for r in rows})
    label2id = {lab: i for i, lab in enumerate(labels)}

    # 3. tokenizer and model (local files only: nothing is downloaded), LoRA adapters if asked
    base = resolve(cfg.model.name_or_path)
    tok = AutoTokenizer.from_pretrained(base, local_files_only=True)
    if cfg.model.task == "classification":
        model = AutoModelForSequenceClassification.from_pretrained(
            base, local_files_only=True, num_labels=len(labels), id2label=dict(enumerate(labels)),
            label2id=label2id, ignore_mismatched_sizes=True)

        def encode(part: list[dict[str, Any]]) -> Dataset:
            ds = Dataset.from_dict({"text": [r["text"] for r in part], "label": [label2id[r["label"]] for r in part]})
            return ds.map(lambda b: tok(b["text"], truncation=True, max_length=cfg.model.max_length), batched=True,
                          remove_columns=["text"])

        collator: Any = DataCollatorWithPadding(tok)

        def metrics_fn(pred: Any) -> dict[str, float]:
            from sklearn.metrics import accuracy_score, f1_score

            guess = pred.predictions.argmax(-1)
            return {"accuracy": float(accuracy_score(pred.label_ids, guess)),
                    "macro_f1": float(f1_score(pred.label_ids, guess, average="macro", zero_division=0))}

        compute_metrics: Any = metrics_fn
    else:  # sft: causal LM, prompt tokens masked from the loss
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        model = AutoModelForCausalLM.from_pretrained(base, local_files_only=True)

        def encode(part: list[dict[str, Any]]) -> Dataset:
            return Dataset.from_dict(sft.encode_sft(part, tok, max_length=cfg.model.max_length,
                                                    template=cfg.model.prompt_template))

        collator = sft.sft_collator(tok)
        compute_metrics = None  # eval loss (perplexity) only; generation quality is evaluation's job
    if cfg.model.lora is not None:
        lora = cfg.model.lora
        model = sft.apply_lora(model, r=lora.r, alpha=lora.alpha, dropout=lora.dropout,
                               target_modules=lora.target_modules, task=cfg.model.task)
    train_ds, val_ds = encode(splits["train"]), encode(splits["validation"])
    n_params = sum(p.numel() for p in model.parameters())
    max_steps = cfg.train.max_steps
    if cfg.train.epochs is not None:  # epochs -> a fixed step count, so a resumed run ends at the same step
        per_step = cfg.train.per_device_batch_size * cfg.train.gradient_accumulation_steps * world_size
        max_steps = max(1, math.ceil(cfg.train.epochs * math.ceil(len(train_ds) / per_step)))

    # 4. the Trainer, with DeepSpeed when configured
    args = TrainingArguments(
        output_dir=str(out),
        max_steps=max_steps,
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
        use_cpu=not torch.cuda.is_available(),
        deepspeed=ds_config,
        include_num_input_tokens_seen=True,
        report_to=[],
        disable_tqdm=True,
    )
    client = tracking._client(cfg.tracking) if run_id is not None else None
    progress = tracking.TrackingCallback(run_id, client, n_params=n_params, world_size=world_size)
    trainer = Trainer(model=model, args=args, train_dataset=train_ds, eval_dataset=val_ds, processing_class=tok,
                      data_collator=collator, compute_metrics=compute_metrics,
                      callbacks=[progress, _stop_callback()])
    trainer.remove_callback(PrinterCallback)  # the progress line above says it once, readably
    if run_id is not None and trainer.is_world_process_zero():
        params = tracking.flat_params({"model": cfg.model.model_dump(), "data": cfg.data.model_dump(),
                                       "train": cfg.train.model_dump(), "deepspeed": ds_config or {}})
        params.update({"code_version": tracking.code_version(), "world_size": str(world_size),
                       "n_params": str(n_params), "splits": json.dumps({k: len(v) for k, v in splits.items()})})
        if decontamination is not None:
            params.update(decontamination_params(decontamination))
        tracking.log_params_once(client, run_id, params)

    # 5. train, resuming from the newest checkpoint of this run folder (a retried task)
    _Stop.install()
    resume = latest_checkpoint(out)
    if resume is not None:
        log.info("resuming from %s", resume)
    result = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    if _Stop.requested:
        log.warning("stopped at step %d after a signal; checkpoint saved in %s", trainer.state.global_step, out)
        if run_id is not None:
            _end_run(cfg, run_id, "KILLED")
        return {"stopped": True, "global_step": trainer.state.global_step}

    # 6. evaluate and save an ordinary save_pretrained folder (ZeRO-3 weights gathered, LoRA merged)
    metrics = trainer.evaluate() if len(val_ds) else {}
    final = out / "final"
    if cfg.model.lora is not None:
        trainer.save_model(str(out / "adapter"))
        if trainer.is_world_process_zero():
            heads = ({"num_labels": len(labels), "id2label": dict(enumerate(labels)), "label2id": label2id}
                     if cfg.model.task == "classification" else {})
            sft.merge_lora(out / "adapter", final, task=cfg.model.task, base_model=base, **heads)
    else:
        trainer.save_model(str(final))
    summary = {
        "global_step": trainer.state.global_step,
        "planned_steps": max_steps,
        "resumed_from": resume.name if resume else None,
        "train_loss": result.training_loss,
        "eval": {k: float(v) for k, v in metrics.items() if isinstance(v, int | float)},
        "splits": {k: len(v) for k, v in splits.items()},
        "labels": labels,
        "task": cfg.model.task,
        "lora": cfg.model.lora is not None,
        "deepspeed": (ds_config or {}).get("zero_optimization", {}).get("stage"),
        "bf16": bf16,
        "world_size": world_size,
        "n_params": n_params,
        "dataset_versions": list(cfg.data.versions),
        "model_dir": str(final),
        "decontamination": decontamination,
    }
    if trainer.is_world_process_zero():
        (out / "train_result.json").write_text(json.dumps(summary, indent=2, sort_keys=True))
        tracking.curves_png(progress.history, out / "training_curves.png")
        if client is not None and metrics:
            from mlflow.entities import Metric

            ts = int(time.time() * 1000)
            client.log_batch(run_id, metrics=[Metric(k.replace("eval_", "eval/", 1), float(v), ts,
                                                     trainer.state.global_step)
                                              for k, v in metrics.items()
                                              if k.startswith("eval_") and isinstance(v, int | float)])
    return summary


def _decontaminate(cfg: TrainConfig, rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Remove the rows that hold a golden item of ``data.decontaminate.suites``: the report (ids and
    counts, no texts) with the kept rows under ``kept``; None when no suite is configured."""
    spec = cfg.data.decontaminate
    if not spec.suites:
        return None
    from llmops.training.decontam import decontaminate, index_for

    index = index_for(spec.suites, spec.suites_dir, ngram=spec.ngram, jaccard=spec.jaccard)
    kept, report = decontaminate(rows, index)
    for name, suite in report["suites"].items():
        log.info("decontamination: %d of %d golden items of %s found in the training data (rate %.4f)",
                 suite["golden_items_found"], suite["items"], name, suite["contamination_rate"])
    if report["rows_removed"]:
        log.warning("decontamination: %d of %d rows removed before the split (%s)", report["rows_removed"],
                    report["rows_checked"], ", ".join(f"{k} {v}" for k, v in report["by_reason"].items()))
    if not kept:
        raise ValueError(f"decontamination: every one of the {len(rows)} rows of {list(cfg.data.versions)} holds a "
                         f"golden item of {spec.suites}; nothing is left to train on")
    report["removed"] = report["removed"][:1000]  # ids; the counts above are complete
    return {**report, "kept": kept}


def decontamination_params(report: dict[str, Any]) -> dict[str, str]:
    """The MLflow params of a decontamination report: counts and rates, per suite."""
    out = {"decontamination.rows_checked": str(report["rows_checked"]),
           "decontamination.rows_removed": str(report["rows_removed"]),
           "decontamination.by_reason": json.dumps(report["by_reason"], sort_keys=True),
           "decontamination.jaccard": str(report["jaccard"]), "decontamination.ngram": str(report["ngram"])}
    for name, suite in report["suites"].items():
        out[f"decontamination.{name}.golden_items"] = str(suite["items"])
        out[f"decontamination.{name}.golden_items_found"] = str(suite["golden_items_found"])
        out[f"decontamination.{name}.contamination_rate"] = str(suite["contamination_rate"])
    return out


def exit_code(summary: dict[str, Any]) -> int:
    """143 (terminated) when a signal stopped the run, so launchers and Airflow see a failed try."""
    return 128 + signal.SIGTERM if summary.get("stopped") else 0

