#!/usr/bin/env bash
# The suites under AddressSanitizer + UndefinedBehaviorSanitizer (docs/fuzzing.md): configures
# build-sanitize/ with -DMORA_SANITIZE=address,undefined (every backend, -Werror, as CI), builds,
# and runs every ctest suite except the long PoCL sweeps (backend_opencl_*, tuner_opencl) and the
# NVRTC / hiprtc compile suites (test_compile_cuda / _hip: 6-7 minutes each here under ASan, their
# time is in the vendors' compilers; the code generation they feed is fuzzed by fuzz_codegen): all
# of them run in the normal build. Any sanitizer report fails the run: UBSan halts on its first report, ASan's
# leak checker is on, and only leaks inside PoCL and the OpenCL ICD loader are suppressed
# (tests/lsan.supp names exactly those libraries).
#   bash scripts/sanitize.sh
# Environment: MORA_SANITIZE_BUILD_DIR (build-sanitize), MORA_SANITIZE_EXCLUDE (ctest -E regex of the
# suites left out), MORA_SANITIZE_TESTS (ctest -R regex of the suites run; default all).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${MORA_SANITIZE_BUILD_DIR:-build-sanitize}
# also left out: example_data_parallel (Open MPI's own leaks, in plugins it dlclose()s, cannot be named
# by a suppression) and test_install (it builds consumers without the sanitizer runtime)
exclude=${MORA_SANITIZE_EXCLUDE:-^(backend_opencl_|tuner_opencl$|test_compile_|example_data_parallel$|test_install$)}
[ -z "${CUDA_PATH:-}" ] && [ -d /usr/local/cuda ] && export CUDA_PATH=/usr/local/cuda
started=$(date +%s)
mkdir -p "$build"
log="$build/sanitize-build.log"
cmake -S . -B "$build" -DMORA_SANITIZE=address,undefined -DMORA_WERROR=ON -DMORA_BUILD_TESTS=ON \
  -DMORA_WITH_OPENCL=ON -DMORA_WITH_CUDA=ON -DMORA_WITH_HIP=ON >"$log" 2>&1 || {
  cat "$log" >&2
  exit 1
}
cmake --build "$build" -j"$(nproc)" >>"$log" 2>&1 || {
  tail -40 "$log" >&2
  exit 1
}
built=$(date +%s)
echo "sanitize: built in $((built - started)) s"
supp="$PWD/tests/lsan.supp"
# allocator_may_return_null: a failed allocation is NULL, as in production, so the tests that ask for
# SIZE_MAX bytes see the library's MORA_E_NO_MEMORY instead of ASan aborting
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:strict_string_checks=1:detect_stack_use_after_return=1:allocator_may_return_null=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
# OpenBLAS alone: LeakSanitizer's tracer crashes (signal 11 in StopTheWorld) at exit of a process
# where oneDNN's or BLIS's OpenMP team has run; their calls are covered by the normal build's suites
export MORA_GEMM_PROVIDERS=openblas
export LSAN_OPTIONS="suppressions=$supp:print_suppressions=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
# The OpenCL backend keeps the ICD loader loaded for the whole process (runtime/backend_opencl.c),
# so the loader's own leaks carry its name and tests/lsan.supp matches them.
args=(--test-dir "$build" -j"$(nproc)" --output-on-failure -E "$exclude")
[ -n "${MORA_SANITIZE_TESTS:-}" ] && args+=(-R "$MORA_SANITIZE_TESTS")
status=0
ctest "${args[@]}" || status=$?
echo "sanitize: tests in $(($(date +%s) - built)) s, total $(($(date +%s) - started)) s"
exit $status
