"""``python -m llmops.training --config FILE`` (what ``deepspeed -m`` and ``torchrun -m`` launch)."""

from __future__ import annotations

import argparse
import json
import logging
import os
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


def leave_world() -> bool:
    """End a launcher-made world before the interpreter exits: wait for every rank, then destroy the
    process group. A worker that exits with the group alive can abort in its communication threads'
    destructors ("terminate called without an active exception", SIGABRT) after its work is done,
    and the launcher then fails the whole run. True when there was a world to leave."""
    try:
        import torch.distributed as dist
    except ImportError:
        return False
    if not (dist.is_available() and dist.is_initialized()):
        return False
    try:
        dist.barrier()
    except Exception as exc:  # a rank that is gone: the group is still destroyed below
        logging.getLogger(__name__).warning("leaving the process group without a barrier: %s", exc)
    from llmops.training.train import destroy_world

    return destroy_world()


if __name__ == "__main__":
    code = main()
    if leave_world():
        # the work and its outputs are complete and flushed; skip the interpreter's teardown of native
        # threads and extension modules, the other place a finished worker can abort
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    raise SystemExit(code)
