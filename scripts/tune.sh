#!/usr/bin/env bash
# The main job: installs what is missing, builds libmora — the whole library (build/libmora.so and
# libmora.a) and every tool (mora-gen, mora-tune, mora-bench, mora-adamw-bench, mora-cpu-bench) — and
# runs mora-tune with the arguments given on the best backend here (CUDA, then HIP, then OpenCL on a
# GPU, else libmora's cpu path).
#   bash scripts/tune.sh --dims 4096 --rank 256
# The winners land in the kernels cache (~/.cache/mora, or $MORA_CACHE_DIR), where layers find them.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
build=${MORA_BUILD_DIR:-build}
cmake -S . -B "$build" >/dev/null
cmake --build "$build" -j"$(nproc)" --target mora mora_static mora-gen mora-tune mora-bench mora-adamw-bench \
  mora-cpu-bench >/dev/null
[ $# -gt 0 ] || set -- --dims 4096 --rank 256
exec "$build/mora-tune" "$@"
