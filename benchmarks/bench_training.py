"""Training throughput on CPU: DeepSpeed (ZeRO-2, one process, torch AdamW) against a plain torch
loop on the same model, data and optimizer settings, measured in the same run.

    python benchmarks/bench_training.py [--steps 30] [--out benchmarks/results/training.json]

The model is a small BERT classifier built from a config (random weights, no download); batches
are fixed random token ids, so both paths do identical work. Tokens/s counts input tokens
(batch x sequence length) per optimizer step, after warm-up steps.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from _common import write_result

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "include"))


def build(seed: int = 0):  # type: ignore[no-untyped-def]
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=30522, hidden_size=256, num_hidden_layers=4, num_attention_heads=4,
                     intermediate_size=1024, num_labels=6, max_position_embeddings=256)
    return BertForSequenceClassification(cfg)


def batches(n: int, batch: int, seq: int):  # type: ignore[no-untyped-def]
    import torch

    g = torch.Generator().manual_seed(1)
    return [(torch.randint(0, 30522, (batch, seq), generator=g), torch.randint(0, 6, (batch,), generator=g))
            for _ in range(n)]


def torch_loop(data, warmup: int) -> float:  # type: ignore[no-untyped-def]
    import torch

    model = build()
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    start = 0.0
    for i, (ids, labels) in enumerate(data):
        if i == warmup:
            start = time.perf_counter()
        loss = model(input_ids=ids, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
    return time.perf_counter() - start


def deepspeed_loop(data, warmup: int, batch: int) -> float:  # type: ignore[no-untyped-def]
    import deepspeed
    import torch

    from llmops.training.train import single_process_env

    single_process_env()
    model = build()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    config = {"train_micro_batch_size_per_gpu": batch, "gradient_accumulation_steps": 1, "gradient_clipping": 1.0,
              "zero_optimization": {"stage": 2}, "bf16": {"enabled": False}, "steps_per_print": 10**9}
    engine, _, _, _ = deepspeed.initialize(model=model, optimizer=opt, config=config)
    engine.train()
    start = 0.0
    for i, (ids, labels) in enumerate(data):
        if i == warmup:
            start = time.perf_counter()
        loss = engine(input_ids=ids, labels=labels).loss
        engine.backward(loss)
        engine.step()
    return time.perf_counter() - start


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/training.json"))
    args = ap.parse_args()
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    data = batches(args.steps + args.warmup, args.batch, args.seq)
    tokens = args.steps * args.batch * args.seq
    t_torch = torch_loop(data, args.warmup)
    t_ds = deepspeed_loop(data, args.warmup, args.batch)
    params = sum(p.numel() for p in build().parameters())
    result = {
        "model": "BERT 4x256 classifier (random init)", "parameters": params, "steps": args.steps,
        "batch": args.batch, "seq": args.seq, "device": "cpu", "precision": "fp32",
        "tokens_per_s": {"torch_loop": round(tokens / t_torch, 1), "deepspeed_zero2": round(tokens / t_ds, 1)},
        "ratio_deepspeed_vs_torch": round(t_torch / t_ds, 3),
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0], "torch": torch.__version__},
    }
    return write_result(args.out, result)


if __name__ == "__main__":
    raise SystemExit(main())
