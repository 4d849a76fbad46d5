"""Tokens/s and MFU of DeepSpeed ZeRO-2 bf16 training of a ~1.1B-parameter Llama-style causal LM
on one GPU (random weights built from a config: nothing is downloaded). Run it where a GPU is:

    benchmarks/gpu_train_throughput.sh            # or: python benchmarks/gpu_train_throughput.py --out ...

MFU = 6 x parameters x tokens/s / peak bf16 FLOP/s (dense; attention FLOPs not counted, so it is
a slight under-estimate). ``--peak-tflops`` defaults by GPU name (H100/H200 989, A100 312).
``--tiny --device cpu`` runs a small model on the CPU as a smoke test of the script itself.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from _common import write_result

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "include"))
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A10G": 125.0}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--micro-batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=2048)
    ap.add_argument("--zero", type=int, default=2, choices=[1, 2, 3])
    ap.add_argument("--peak-tflops", type=float, default=None)
    ap.add_argument("--tiny", action="store_true", help="a small model (smoke test)")
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/gpu_training.json"))
    args = ap.parse_args()

    import deepspeed
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from llmops.training.train import single_process_env

    single_process_env()  # no launcher: a one-process world (a launcher's RANK is kept)
    gpu = args.device == "cuda"
    if gpu and not torch.cuda.is_available():
        print("no CUDA device: run on a GPU machine, or pass --tiny --device cpu for a smoke test", file=sys.stderr)
        return 2
    if args.tiny:
        cfg = LlamaConfig(vocab_size=1024, hidden_size=128, intermediate_size=352, num_hidden_layers=2,
                          num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=args.seq)
    else:  # ~1.1B parameters (TinyLlama-like shape)
        cfg = LlamaConfig(vocab_size=32000, hidden_size=2048, intermediate_size=5632, num_hidden_layers=22,
                          num_attention_heads=32, num_key_value_heads=4, max_position_embeddings=args.seq)
    bf16 = gpu and torch.cuda.is_bf16_supported()
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg)
    model.gradient_checkpointing_enable()
    params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=gpu)  # no DeepSpeed JIT op build
    ds_cfg = {"train_micro_batch_size_per_gpu": args.micro_batch, "gradient_accumulation_steps": 1,
              "gradient_clipping": 1.0, "bf16": {"enabled": bf16}, "zero_optimization": {"stage": args.zero},
              "steps_per_print": 10**9}
    engine, _, _, _ = deepspeed.initialize(model=model, optimizer=opt, config=ds_cfg)
    device = engine.device
    g = torch.Generator(device="cpu").manual_seed(1)
    ids = torch.randint(0, cfg.vocab_size, (args.micro_batch, args.seq), generator=g).to(device)

    def sync() -> None:
        if gpu:
            torch.cuda.synchronize()

    start = 0.0
    for step in range(args.warmup + args.steps):
        if step == args.warmup:
            sync()
            start = time.perf_counter()
        loss = engine(input_ids=ids, labels=ids).loss
        engine.backward(loss)
        engine.step()
    sync()
    seconds = time.perf_counter() - start
    tokens_per_s = args.steps * args.micro_batch * args.seq / seconds
    name = torch.cuda.get_device_name(0) if gpu else "cpu"
    peak = args.peak_tflops or next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)
    result = {
        "device": name, "parameters": params, "zero_stage": args.zero, "bf16": bf16, "micro_batch": args.micro_batch,
        "seq": args.seq, "steps": args.steps, "seconds": round(seconds, 3), "tokens_per_s": round(tokens_per_s, 1),
        "tflops_per_s": round(6 * params * tokens_per_s / 1e12, 2),
        "mfu": round(6 * params * tokens_per_s / (peak * 1e12), 4) if peak and gpu else None,
        "peak_bf16_tflops": peak,
        "max_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if gpu else None,
        "final_loss": round(float(loss), 4),
    }
    return write_result(args.out, result)


if __name__ == "__main__":
    raise SystemExit(main())
