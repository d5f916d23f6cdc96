#!/usr/bin/env bash
# Installs what libmora needs to build, test and tune, using Debian's packages, only when missing.
# Sourced or run by scripts/test.sh and scripts/tune.sh; safe to run again.
set -euo pipefail

packages=(
  cmake gcc g++ make pkg-config            # build
  ocl-icd-libopencl1 ocl-icd-opencl-dev opencl-headers pocl-opencl-icd clinfo  # OpenCL on PoCL (CPU)
  libjansson-dev                           # kernels-cache records, checkpoints (JSON)
  openmpi-bin libopenmpi-dev               # the data-parallel example and its test
  libopenblas-dev                          # required: the cpu backend's GEMMs (and mora-bench's baseline)
  libdnnl2 libblis4-openmp                 # optional GEMM providers the tuner times beside OpenBLAS (dlopen()ed)
  libbenchmark-dev                         # Google Benchmark micro-benchmarks
  gnuplot-nox                              # mora-bench --plot, examples/memorize
  liblapacke-dev                           # examples/memorize: singular values of ΔW (optional there)
  libamdhip64-dev hipcc rocm-device-libs libamd-comgr-dev  # hiprtc: HIP kernels compiled without a GPU
  clang-14 libclang-rt-14-dev              # the fuzzers (tests/fuzz/run.sh: libFuzzer, ASan, UBSan)
  oclgrind                                 # the tuner under Oclgrind: invalid accesses, data races (test_oclgrind)
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The CUDA toolkit (NVRTC, headers) is optional: found under CUDA_PATH or /usr/local/cuda when present.
if [ -z "${CUDA_PATH:-}" ] && [ -d /usr/local/cuda ]; then export CUDA_PATH=/usr/local/cuda; fi
