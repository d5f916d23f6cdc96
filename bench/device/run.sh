#!/usr/bin/env bash
# The prepared GPU check for a lent NVIDIA machine (one H200 here), in one run of about 5 minutes:
#   1. build libmora with the CUDA backend (NVRTC + driver API);
#   2. the correctness suites on the GPU: every op × kind × dtype against the float64 reference
#      (ctest backend_cuda_*), plus the tuner's tests where they apply;
#   3. mora-bench on the GPU: fwd / bwd_dx / bwd_dm / merge timed with CUDA events (warm-up, median,
#      4 buffer sets cycled so inputs do not sit in L2) for 4096→4096 (r = 8 and 256),
#      4096→11008 and 11008→4096 (r = 8), ops rope and share, bf16, 8192 tokens, against the
#      measured copy bandwidth, the untuned defaults, the naive kernel and cuBLAS's reshaped GEMM
#      (cublasGemmStridedBatchedEx, dlopen()ed);
#   4. a short table last: time, GB/s, GFLOP/s and the ratio to the bandwidth floor per row.
# Results go to $OUT (the device tool brings them back) or bench/results/gpu-run/ otherwise.
#
# Before the run, here: bash bench/device/fetch-deps.sh; then the device tool's run with
#   carry: [".devdeps"], command: "bash bench/device/run.sh", timeout_s: 480.
# Without a CUDA device it builds and runs the CPU-side parts (fake-driver and NVRTC compile suites,
# a tiny mora-bench on OpenCL) and says so.
set -uo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:-bench/results/gpu-run}
mkdir -p "$out"
log="$out/device-run.log"
exec > >(tee "$log") 2>&1
started=$(date +%s)
stage() { echo; echo "=== [$(( $(date +%s) - started ))s] $*"; }

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
  echo "unpacked $(ls .devdeps/*.deb | wc -l) carried packages into $root"
fi
[ -z "${CUDA_PATH:-}" ] && [ -d /usr/local/cuda ] && export CUDA_PATH=/usr/local/cuda

stage "build (CUDA backend)"
build=build-gpu
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DMORA_WITH_CUDA=ON -DMORA_WITH_OPENCL=OFF -DMORA_WITH_HIP=OFF \
  -DMORA_BUILD_TESTS=ON >"$out/build.log" 2>&1 &&
  cmake --build "$build" -j"$(nproc)" >>"$out/build.log" 2>&1 || { tail -40 "$out/build.log"; echo "BUILD FAILED"; exit 1; }
echo "built"

export MORA_CACHE_DIR=off  # the suites and timings use the shipped database / defaults, not an old cache
if ! "$build/mora-gen" --dims 64 --rank 4 --backend cuda >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
  stage "no CUDA device here: the CPU-side parts only"
  ctest --test-dir "$build" -R "fake|compile_cuda|codegen|reference" -j"$(nproc)" --output-on-failure | tail -15
  [ -x "$build/mora-bench" ] && timeout 120 "$build/mora-bench" --dims 64 --rank 4 --tokens 32 --backend cpu --quiet | tail -12
  echo "no GPU: the GPU stages were not run"
  exit 0
fi

stage "correctness on the GPU (every op x kind x dtype against the float64 reference)"
timeout 200 ctest --test-dir "$build" -R "backend_cuda|runtime_api|test_cache|test_codegen" -j4 --output-on-failure \
  >"$out/ctest.log" 2>&1
ctest_status=$?
grep -E "tests passed|Failed|Passed|\*\*\*" "$out/ctest.log" | tail -20

stage "timing (mora-bench, bf16, 8192 tokens, rope then share)"
for op in rope share; do
  timeout 150 "$build/mora-bench" --backend cuda --op "$op" --dtype bf16 --tokens 8192 --budget-ms 150 \
    --json "$out/bench-$op.json" --md "$out/bench-$op.md" --quiet >"$out/bench-$op.txt" 2>&1 ||
    echo "mora-bench --op $op: exit $? (see bench-$op.txt)"
done

stage "summary"
python3 - "$out" <<'PY'
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
echo "ctest exit status: $ctest_status; total $(( $(date +%s) - started )) s"
