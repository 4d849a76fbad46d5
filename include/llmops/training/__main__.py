"""``python -m llmops.training --config FILE`` (what ``deepspeed -m`` and ``torchrun -m`` launch)."""

from __future__ import annotations

import argparse
import json
import logging
import sys


def main(argv: list[str] | None = None) -> int:
    from llmops.config import ConfigError
    from llmops.training.args import load_train_config, parse_train_config

    parser = argparse.ArgumentParser(prog="llmops.training", description="Fine-tune a model on a labeled version.")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", help="training YAML (model, data, train, tracking sections)")
    source.add_argument("--config-json", help="the same config as one JSON string (pods without the file)")
    parser.add_argument("--local_rank", "--local-rank", type=int, default=None, help=argparse.SUPPRESS)  # deepspeed launcher
    args = parser.parse_args(argv)
    try:
        if args.config_json is not None:
            try:
                data = json.loads(args.config_json)
            except ValueError as exc:
                raise ConfigError(f"--config-json is not JSON: {exc}") from None
            cfg = parse_train_config(data if isinstance(data, dict) else {}, origin="--config-json")
        else:
            cfg = load_train_config(args.config)
    except ConfigError as exc:
        print(f"llmops train: error: {exc}", file=sys.stderr)
        return 2
    from llmops.training.train import exit_code, run_training

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    summary = run_training(cfg)
    print(json.dumps({k: summary.get(k) for k in ("global_step", "resumed_from", "model_dir", "mlflow", "stopped")},
                     default=str), flush=True)
    return exit_code(summary)


if __name__ == "__main__":
    raise SystemExit(main())
