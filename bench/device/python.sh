#!/usr/bin/env bash
# The Python binding on a GPU machine (called by the device run; also runnable by hand):
#   1. libmora.so with the CUDA backend: $MORA_BUILD_DIR, else build-gpu (bench/device/run.sh's build),
#      configured and built here when absent;
#   2. pytest python/tests on CUDA tensors (LIBMORA_TEST_DEVICE=cuda; the DDP test stays on the CPU, gloo);
#   3. bench/python/bench_moralinear.py on CUDA: bf16, 8192 tokens, d = 4096 with r = 8 rope and r = 256
#      share, adapter path and the whole layer, against the eager PyTorch MoRA (the goal: >= 3x faster).
# Needs torch with CUDA and pytest already installed on the machine (the device machine reaches no
# package index): without them it says so and exits 77 (not run), without a CUDA device likewise.
# Results go to $OUT (or bench/results/gpu-run/): python-pytest-cuda.log, python-cuda-bf16.md.
#   bash bench/device/python.sh
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
out=${OUT:-bench/results/gpu-run}
mkdir -p "$out"
py=${PYTHON:-python3}
started=$(date +%s)
stage() { echo; echo "=== [python $(( $(date +%s) - started ))s] $*"; }

stage "torch"
if ! "$py" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 3)" 2>/dev/null; then
  "$py" -c "import torch; print('torch', torch.__version__, 'cuda available:', torch.cuda.is_available())" 2>&1 | tail -1
  echo "python: NOT RUN: needs torch with a usable CUDA device"
  exit 77
fi
"$py" -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda, torch.cuda.get_device_name(0))"

stage "libmora.so (CUDA backend)"
build=${MORA_BUILD_DIR:-build-gpu}
[ -z "${CUDA_PATH:-}" ] && [ -d /usr/local/cuda ] && export CUDA_PATH=/usr/local/cuda
if [ ! -f "$build/CMakeCache.txt" ]; then
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DMORA_WITH_CUDA=ON -DMORA_WITH_OPENCL=OFF -DMORA_WITH_HIP=OFF \
    -DMORA_BUILD_TESTS=OFF -DMORA_BUILD_TOOLS=OFF >"$out/python-build.log" 2>&1 || { tail -20 "$out/python-build.log"; exit 1; }
fi
cmake --build "$build" --target mora -j"$(nproc)" >>"$out/python-build.log" 2>&1 || { tail -20 "$out/python-build.log"; exit 1; }
export LIBMORA_LIBRARY="$PWD/$build/libmora.so"
export PYTHONPATH="$PWD/python${PYTHONPATH:+:$PYTHONPATH}"  # the package from this checkout (no pip needed)
echo "LIBMORA_LIBRARY=$LIBMORA_LIBRARY"

status=0
stage "pytest on CUDA tensors"
if "$py" -c "import pytest" 2>/dev/null; then
  LIBMORA_TEST_DEVICE=cuda timeout 300 "$py" -m pytest python/tests -q -rs -p no:cacheprovider --maxfail=10 \
    2>&1 | tee "$out/python-pytest-cuda.log" | tail -40
  status=${PIPESTATUS[0]}
  echo "pytest exit status $status"
else
  echo "pytest: NOT RUN (pytest is not installed on this machine)"
  status=77
fi

stage "bench: MoRALinear vs eager, bf16, 8192 tokens"
timeout 240 "$py" bench/python/bench_moralinear.py --device cuda --dtype bf16 --tokens 8192 --reps 7 --with-base \
  --md "$out/python-cuda-bf16.md" || status=1
[ -f "$out/python-cuda-bf16.md" ] && cat "$out/python-cuda-bf16.md"
exit "$status"
