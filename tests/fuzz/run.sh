#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz/ (clang, ASan + UBSan) in their own build folder and
# runs each for a short smoke, from the committed seed corpus; exits non-zero when any fuzzer finds a
# crash, a sanitizer report, a broken invariant or a leak. docs/fuzzing.md says how to run them long.
#   bash tests/fuzz/run.sh                    all five, MORA_FUZZ_SECONDS (20) each
#   bash tests/fuzz/run.sh record db          some of them
# Environment: MORA_FUZZ_SECONDS (per fuzzer), MORA_FUZZ_BUILD_DIR (build-fuzz), CC (clang-14, else
# clang). New inputs go to a scratch corpus in the build folder (the committed seeds stay as they
# are); a finding is written to <build>/fuzz/artifacts/ and its log is printed.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
seconds=${MORA_FUZZ_SECONDS:-20}
build=${MORA_FUZZ_BUILD_DIR:-build-fuzz}
cc=${CC:-}
if [ -z "$cc" ]; then
  if command -v clang-14 >/dev/null; then cc=clang-14; elif command -v clang >/dev/null; then cc=clang; fi
fi
if [ -z "$cc" ]; then
  echo "fuzz: no clang found (Debian: apt-get install clang-14 libclang-rt-14-dev)" >&2
  exit 1
fi
all=(record binary db shape codegen safetensors)
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=("${all[@]}")

mkdir -p "$build"
# The fuzz build needs no backend: the targets are parsers, the spec check and the code generator.
if ! cmake -S . -B "$build" -DCMAKE_C_COMPILER="$cc" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMORA_BUILD_FUZZERS=ON \
       -DMORA_BUILD_TESTS=OFF -DMORA_WERROR=ON -DMORA_WITH_OPENCL=OFF -DMORA_WITH_CUDA=OFF -DMORA_WITH_HIP=OFF \
       >"$build/fuzz-configure.log" 2>&1; then
  cat "$build/fuzz-configure.log" >&2
  echo "fuzz: configure failed" >&2
  exit 1
fi
if ! cmake --build "$build" -j"$(nproc)" --target "${targets[@]/#/fuzz_}" >"$build/fuzz-build.log" 2>&1; then
  tail -40 "$build/fuzz-build.log" >&2
  echo "fuzz: build failed" >&2
  exit 1
fi

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
mkdir -p "$build/fuzz/artifacts"
failed=0
for t in "${targets[@]}"; do
  exe="$build/fuzz/fuzz_$t"
  if [ ! -x "$exe" ]; then
    echo "fuzz: no target $t (known: ${all[*]})" >&2
    failed=1
    continue
  fi
  corpus="$build/fuzz/corpus-$t"
  mkdir -p "$corpus"
  log="$build/fuzz/$t.log"
  "$exe" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$build/fuzz/artifacts/$t-" "$corpus" "tests/fuzz/corpus/$t" >"$log" 2>&1
  rc=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  if [ $rc -ne 0 ]; then
    echo "fuzz_$t: FAILED (exit $rc, ${runs:-?} executions); log $log:" >&2
    grep -E "ERROR|runtime error|invariant broken|SUMMARY|Test unit written" "$log" | head -20 >&2
    failed=1
  else
    echo "fuzz_$t: ok, ${runs:-?} executions in ${seconds} s"
  fi
done
exit $failed
