#!/usr/bin/env bash
# The test command: installs what is missing, configures, builds and runs every ctest suite.
#   bash scripts/test.sh                 (MORA_WERROR=ON treats warnings as errors, as CI does;
#                                         MORA_CMAKE_ARGS adds configure options)
# Suites whose backend is absent here (CUDA/HIP devices) are reported as skipped, with the reason.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
build=${MORA_BUILD_DIR:-build}
# shellcheck disable=SC2086
cmake -S . -B "$build" -DMORA_WERROR="${MORA_WERROR:-OFF}" -DMORA_BUILD_TESTS=ON ${MORA_CMAKE_ARGS:-}
cmake --build "$build" -j"$(nproc)"
ctest --test-dir "$build" -j"$(nproc)" --output-on-failure
