#!/usr/bin/env bash
# The prepared GPU check for a lent NVIDIA machine (one H200 here), in one run of about 5 minutes
# (at most about 10: every stage has a timeout):
#   1. build libmora with the CUDA backend (NVRTC + driver API);
#   2. the correctness suites on the GPU: every op × kind × dtype against the float64 reference
#      (ctest backend_cuda_*), plus the cache, codegen and spec-check suites and the cpu runtime API;
#   3. where compute-sanitizer exists: one small CUDA op suite (test_backend_ops cuda truncate) under
#      memcheck, then racecheck, each bounded by MORA_SANITIZER_SECONDS (90);
#   4. mora-bench on the GPU: fwd / bwd_dx / bwd_dm / merge timed with CUDA events (warm-up, median,
#      4 buffer sets cycled so inputs do not sit in L2) for 4096→4096 (r = 8 and 256),
#      4096→11008 and 11008→4096 (r = 8), ops rope and share, bf16, 8192 tokens, against the
#      measured copy bandwidth, the untuned defaults, the naive kernel and cuBLAS's reshaped GEMM
#      (cublasGemmStridedBatchedEx, dlopen()ed);
#   5. the optimizer's bandwidth (mora-adamw-bench) and the Python binding on CUDA tensors
#      (bench/device/python.sh: pytest and the MoRALinear bench; not run without torch+CUDA+pytest);
#   6. a short table last: time, GB/s, GFLOP/s and the ratio to the bandwidth floor per row, then a
#      RESULT line naming every stage that failed.
# Results go to $OUT (the device tool brings them back) or bench/results/gpu-run/ otherwise.
#
# Exit status: 0 everything ran on the GPU and passed; 1 the build, a suite, a sanitizer check or a
# benchmark failed (the RESULT line names them); 3 no CUDA device: the GPU stages did not run and
# nothing was measured (the CPU-side parts ran and passed; if one of them failed the status is 1).
#
# Before the run, here: bash bench/device/fetch-deps.sh; then the device tool's run with
#   carry: [".devdeps"], command: "bash bench/device/run.sh", timeout_s: 600.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
out=${OUT:-bench/results/gpu-run}
mkdir -p "$out"
log="$out/device-run.log"
exec > >(tee "$log") 2>&1
started=$(date +%s)
stage() { echo; echo "=== [$(( $(date +%s) - started ))s] $*"; }
failures=()
fail() { failures+=("$1"); echo "FAILED: $1"; }
# suites NAME SECONDS REGEX: runs the ctest suites matching REGEX (which must match at least one:
# a pattern that matches nothing in this build is a failure, not a pass), bounded by SECONDS.
suites() {
  local name=$1 seconds=$2 regex=$3 count status
  count=$(ctest --test-dir "$build" -N -R "$regex" | sed -n 's/^Total Tests: //p')
  if [ "${count:-0}" -eq 0 ]; then
    fail "$name: ctest -R '$regex' matches no suite in this build"
    return
  fi
  timeout "$seconds" ctest --test-dir "$build" -R "$regex" -j4 --no-tests=error --output-on-failure \
    >"$out/ctest-$name.log" 2>&1
  status=$?
  grep -E "tests passed|Failed|Passed|Skipped|\*\*\*" "$out/ctest-$name.log" | tail -25
  if [ $status -eq 124 ]; then fail "$name: did not finish within $seconds s (ctest-$name.log)"
  elif [ $status -ne 0 ]; then fail "$name: ctest exit $status (ctest-$name.log)"
  else echo "$name: $count suites passed (or skipped for an absent backend)"; fi
}
finish() { # finish STATUS-WHEN-ALL-PASSED
  echo
  if [ ${#failures[@]} -gt 0 ]; then
    echo "RESULT: FAILED (${#failures[@]}): $(printf '%s; ' "${failures[@]}")total $(( $(date +%s) - started )) s"
    exit 1
  fi
  echo "RESULT: $2; total $(( $(date +%s) - started )) s"
  exit "$1"
}

stage "machine"
date -u +%Y-%m-%dT%H:%M:%SZ
git rev-parse --short HEAD 2>/dev/null || echo "commit: unknown"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>/dev/null || echo "nvidia-smi: none"
nproc

stage "dependencies"
if ls .devdeps/*.deb >/dev/null 2>&1; then
  root=/tmp/mora-devroot
  mkdir -p "$root"
  for deb in .devdeps/*.deb; do dpkg -x "$deb" "$root" 2>/dev/null || (cd "$root" && ar p "$OLDPWD/$deb" data.tar.xz | tar xJ); done
  export CMAKE_PREFIX_PATH="$root/usr${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
  export LD_LIBRARY_PATH="$root/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  debs=(.devdeps/*.deb)
  echo "unpacked ${#debs[@]} carried packages into $root"
fi
[ -z "${CUDA_PATH:-}" ] && [ -d /usr/local/cuda ] && export CUDA_PATH=/usr/local/cuda

stage "build (CUDA backend)"
build="build-gpu"
if ! cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DMORA_WITH_CUDA=ON -DMORA_WITH_OPENCL=OFF -DMORA_WITH_HIP=OFF \
       -DMORA_BUILD_TESTS=ON >"$out/build.log" 2>&1 ||
   ! cmake --build "$build" -j"$(nproc)" >>"$out/build.log" 2>&1; then
  tail -40 "$out/build.log"
  fail "build (build.log)"
  finish 1 ""
fi
echo "built"

export MORA_CACHE_DIR=off  # the suites and timings use the shipped database / defaults, not an old cache
if ! "$build/mora-gen" --dims 64 --rank 4 --backend cuda >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
  stage "no CUDA device here: the CPU-side parts only"
  suites cpu-side 300 "fake|compile_cuda|codegen|spec_check|reference|test_cache$"
  if [ -x "$build/mora-bench" ]; then
    timeout 120 "$build/mora-bench" --dims 64 --rank 4 --tokens 32 --backend cpu --quiet | tail -12 ||
      fail "mora-bench on the cpu backend: exit $?"
  fi
  echo "NO GPU: no CUDA device here, so the GPU suites and timings did not run: nothing was measured."
  finish 3 "NO GPU (exit 3): CPU-side parts passed, nothing measured on a GPU"
fi

stage "correctness on the GPU (every op x kind x dtype against the float64 reference)"
suites gpu 200 "^(backend_cuda_|backend_fake_cuda|runtime_api_cpu$|test_cache$|test_codegen$|test_spec_check$)"

stage "compute-sanitizer: memcheck and racecheck on one small CUDA op suite"
sanitizer=$(command -v compute-sanitizer || true)
for candidate in "${CUDA_PATH:-/usr/local/cuda}/bin/compute-sanitizer" \
                 "${CUDA_PATH:-/usr/local/cuda}/compute-sanitizer/compute-sanitizer"; do
  [ -z "$sanitizer" ] && [ -x "$candidate" ] && sanitizer=$candidate
done
if [ -z "$sanitizer" ]; then
  echo "compute-sanitizer: not found on this machine; skipped (not a failure)"
else
  seconds=${MORA_SANITIZER_SECONDS:-90}
  for tool in memcheck racecheck; do
    timeout "$seconds" "$sanitizer" --tool "$tool" --error-exitcode 86 --print-limit 20 \
      "$build/tests/test_backend_ops" cuda truncate >"$out/sanitizer-$tool.log" 2>&1
    status=$?
    tail -5 "$out/sanitizer-$tool.log"
    case $status in
      0) echo "$tool: clean" ;;
      86) fail "compute-sanitizer $tool: errors reported (sanitizer-$tool.log)" ;;
      124) fail "compute-sanitizer $tool: did not finish within $seconds s (MORA_SANITIZER_SECONDS; sanitizer-$tool.log)" ;;
      *) fail "compute-sanitizer $tool: test_backend_ops cuda truncate exit $status (sanitizer-$tool.log)" ;;
    esac
  done
fi

stage "timing (mora-bench, bf16, 8192 tokens, rope then share)"
for op in rope share; do
  timeout 110 "$build/mora-bench" --backend cuda --op "$op" --dtype bf16 --tokens 8192 --budget-ms 150 \
    --json "$out/bench-$op.json" --md "$out/bench-$op.md" --quiet >"$out/bench-$op.txt" 2>&1 ||
    fail "mora-bench --op $op: exit $? (bench-$op.txt)"
done

stage "the optimizer: AdamW over a LLaMA-2-7B r = 8 adapter's arena (20 M floats) against a copy"
timeout 120 "$build/mora-adamw-bench" --backend cuda --blocks 32 --reps 20 >"$out/adamw.md" 2>&1 ||
  fail "mora-adamw-bench: exit $? (adamw.md)"
cat "$out/adamw.md"

stage "the Python binding on CUDA tensors (bench/device/python.sh)"
MORA_BUILD_DIR=$build timeout 180 bash bench/device/python.sh
case $? in
  0) echo "python: passed" ;;
  77) echo "python: not run (torch with CUDA or pytest missing on this machine): not a failure" ;;
  124) fail "python: did not finish within 180 s" ;;
  *) fail "python: bench/device/python.sh failed" ;;
esac

stage "summary"
python3 - "$out" <<'PY' || fail "summary table"
import json, os, sys
out = sys.argv[1]
rows = []
for op in ("rope", "share"):
    path = os.path.join(out, f"bench-{op}.json")
    if not os.path.exists(path):
        print(f"{op}: no results"); continue
    run = json.load(open(path))
    bw = run.get("roofline", {}).get("bandwidth_gbs") or -1
    for shape in run.get("shapes", []):
        for kind in shape.get("kinds", []):
            for name, m in kind.get("results", {}).items():
                if not m.get("ok"):
                    continue
                ms, gb = m["ms"], kind["bytes"] / 1e9
                floor_ms = 1e3 * gb / bw if bw and bw > 0 else float("nan")
                rows.append((shape["label"], kind["kind"], name, ms, gb / (ms / 1e3), kind["flops"] / 1e9 / (ms / 1e3), ms / floor_ms))
print(f"{'shape':34} {'kind':7} {'variant':8} {'ms':>9} {'GB/s':>8} {'GFLOP/s':>9} {'x floor':>8}")
for r in rows:
    print(f"{r[0][:34]:34} {r[1]:7} {r[2]:8} {r[3]:9.4f} {r[4]:8.1f} {r[5]:9.0f} {r[6]:8.2f}")
PY
finish 0 "PASSED on the GPU"
