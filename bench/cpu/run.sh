#!/usr/bin/env bash
# The measurements behind bench/results/cpu-fast-epyc-2cores.md, in one go (about 4 minutes on 2 quiet cores):
#   bash bench/cpu/run.sh [build-dir]  > out.txt
# Each step prints the load first: a step measured while other jobs ran says so. OPENBLAS_CORETYPE is
# left as the environment has it, except for the peak (unset there, with OPENBLAS_L2_SIZE).
set -uo pipefail
B=${1:-build}
step() { echo; echo "## $* — $(date -u +%FT%TZ), load: $(cut -d' ' -f1-3 /proc/loadavg)"; }
step "FMA peak and OpenBLAS 2048^3 (OPENBLAS_CORETYPE, OPENBLAS_L2_SIZE unset)"
env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$B"/mora-cpu-bench --peak
for ct in "${OPENBLAS_CORETYPE:-}" Haswell; do
  step "pipeline vs bare sgemm, OPENBLAS_CORETYPE=${ct:-autodetected}"
  for shape in "--op rope --rank 8" "--op share --rank 256"; do
    for ob in 1 2; do
      OPENBLAS_CORETYPE=$ct "$B"/mora-cpu-bench $shape --dims 4096 --tokens 1024 --threads 2 --ob-threads $ob --reps 9 --stat min | tail -1
    done
  done
done
step "tile sweep (threads 1 and 2), fastest of 5"
"$B"/mora-cpu-bench --op rope --rank 8 --sweep --reps 5 --stat min | tail -n +3
"$B"/mora-cpu-bench --op share --rank 256 --sweep --reps 5 --stat min | tail -n +3
for thr in 2 1; do for shape in "--op rope --rank 8" "--op share --rank 256"; do
  step "eager PyTorch vs libmora ($shape, $thr threads each)"
  python3 bench/cpu/torch_ref.py --build "$B" $shape --dims 4096 --tokens 1024 --threads $thr --rounds 3 --reps 5 2>&1 |
    grep -v -e UserWarning -e "_conversion_method_template"
done; done
