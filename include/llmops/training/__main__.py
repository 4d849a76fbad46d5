"""``python -m llmops.training --config FILE`` (what ``deepspeed -m`` and ``torchrun -m`` launch)."""

from __future__ import annotations

import argparse
import json
import sys


def main(argv: list[str] | None = None) -> int:
    from llmops.config import ConfigError
    from llmops.training.args import load_train_config

    parser = argparse.ArgumentParser(prog="llmops.training", description="Fine-tune a model on a labeled version.")
    parser.add_argument("--config", required=True, help="training YAML (model, data, train sections)")
    parser.add_argument("--local_rank", "--local-rank", type=int, default=None, help=argparse.SUPPRESS)  # deepspeed launcher
    args = parser.parse_args(argv)
    try:
        cfg = load_train_config(args.config)
    except ConfigError as exc:
        print(f"llmops train: error: {exc}", file=sys.stderr)
        return 2
    from llmops.training.train import run_training

    summary = run_training(cfg)
    print(json.dumps({k: summary[k] for k in ("global_step", "resumed_from", "model_dir")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
