#!/usr/bin/env bash
# DeepSpeed ZeRO-2 bf16 throughput and MFU of a ~1.1B-parameter model on one GPU (about 5 minutes
# on an H100/H200, most of it model construction). Needs the project's venv on a CUDA machine.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
"$PY" benchmarks/gpu_train_throughput.py --zero 2 --micro-batch "${MICRO_BATCH:-8}" --seq "${SEQ:-2048}" \
  --steps "${STEPS:-30}" --out benchmarks/results/gpu_training.json "$@"
