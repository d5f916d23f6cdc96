#!/usr/bin/env bash
# ThreadSanitizer on the threading contract: builds test_threads with -fsanitize=thread in its own
# build folder and runs it on the cpu and OpenCL (PoCL) backends; any report fails the run.
#   bash scripts/tsan.sh            (MORA_TSAN_BUILD_DIR: the build folder, default build-tsan)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
build=${MORA_TSAN_BUILD_DIR:-build-tsan}
cmake -S . -B "$build" -DMORA_SANITIZE=thread -DMORA_WITH_CUDA=OFF -DMORA_WITH_HIP=OFF -DMORA_WERROR="${MORA_WERROR:-OFF}" >/dev/null
cmake --build "$build" -j"$(nproc)" --target test_threads
# a single-threaded OpenBLAS: the cpu backend's own workers then run (a multi-threaded OpenBLAS syncs
# its threads through flags TSan cannot see; tests/tsan-openblas.supp names it, should one start)
export OPENBLAS_NUM_THREADS=1
export TSAN_OPTIONS="halt_on_error=1 exitcode=66 suppressions=$PWD/tests/tsan-openblas.supp ${TSAN_OPTIONS:-}"
export MORA_CACHE_DIR=off
for backend in cpu opencl; do
  status=0
  "$build/tests/test_threads" "$backend" 20 || status=$?
  case $status in
    0) echo "tsan: test_threads $backend: no report" ;;
    77) echo "tsan: test_threads $backend: skipped (backend absent)" ;;
    *) echo "tsan: test_threads $backend FAILED (exit $status)"; exit 1 ;;
  esac
done
