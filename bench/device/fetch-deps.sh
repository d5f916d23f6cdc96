#!/usr/bin/env bash
# Run HERE (a machine that reaches Debian's archive) before a GPU run: downloads the packages the GPU
# machine lacks — it reaches no package registry — into .devdeps/ (ignored by git). The device run
# names .devdeps in `carry`, and bench/device/run.sh unpacks them there.
#   jansson   required by libmora (kernels-cache records)
#   OpenBLAS  optional (mora-bench's CPU baselines; not used on the GPU)
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p .devdeps
cd .devdeps
apt-get download libjansson4 libjansson-dev >/dev/null
ls -l
