#!/usr/bin/env bash
# memorize-capacity.sh — capacity curves of the UUID task (issue 23): character accuracy against the
# number of pairs N, for each method and rank, each at one learning rate, with the trainable-parameter
# count in the plot's legend. Runs build/examples/memorize once per (method, rank, N) and collects the
# rows of their summary.csv files into OUT/capacity.csv, then plots OUT/capacity_r<r>.png (gnuplot).
#
#   examples/memorize-capacity.sh [--build DIR] [--out DIR] [--ns 256,512,1024,2048] [--ranks 8,32]
#       [--seeds 1] [--steps 1000] [--jobs 2] [--lr METHOD[:R]=LR ...] [--quick]
#
# --lr METHOD=LR sets a method's learning rate at every rank, --lr METHOD:R=LR at rank R only (later
# options win). Defaults: each method's best in the 3-seed sweeps of docs/results/memorize — r = 8 from
# N = 512 (lora 3e-2, relora 3e-2, mora-rope 1e-1, mora-share 1e-2, remora-share 3e-2, remora-rope
# 3e-1), every other r from r = 32, N = 1536 (lora 1e-2, relora 1e-2, mora-rope 3e-2, mora-share 1e-2,
# remora-share 1e-2, remora-rope 3e-2). --jobs runs that many memorize processes at once (one core each).
# --quick: two small N, one rank, 60 steps (the check ctest runs). Exit status: 0; 1 when a run
# fails; 2 on a usage error.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$here/../build out=capacity-out ns=256,512,1024,2048 ranks=8,32 seeds=1 steps=1000 jobs=2 quick=0
methods=(lora relora mora-rope mora-share remora-rope remora-share)
# lr[METHOD] at any rank, lr[METHOD:R] at rank R (looked up first)
declare -A lr=([lora]=1e-2 [relora]=1e-2 [mora-rope]=3e-2 [mora-share]=1e-2 [remora-rope]=3e-2 [remora-share]=1e-2
               [lora:8]=3e-2 [relora:8]=3e-2 [mora-rope:8]=1e-1 [mora-share:8]=1e-2 [remora-rope:8]=3e-1 [remora-share:8]=3e-2)
lr_of() { local k="$1:$2"; if [[ -n ${lr[$k]+x} ]]; then echo "${lr[$k]}"; else echo "${lr[$1]}"; fi; }
usage() { sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-2}"; }
while (($#)); do
  case $1 in
    --build) build=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --ns) ns=$2; shift 2 ;;
    --ranks) ranks=$2; shift 2 ;;
    --seeds) seeds=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    --lr) key=${2%%=*}; v=${2#*=}; m=${key%%:*}
          [[ $2 == *=* && -n ${lr[$m]+x} && $v =~ ^[0-9.eE+-]+$ && ( $key == "$m" || ${key#*:} =~ ^[1-9][0-9]*$ ) ]] ||
            { echo "memorize-capacity: --lr $2: METHOD=LR or METHOD:R=LR, METHOD one of ${methods[*]}" >&2; exit 2; }
          if [[ $key == "$m" ]]; then for k in "${!lr[@]}"; do [[ $k == "$m:"* ]] && unset "lr[$k]"; done; fi
          lr[$key]=$v; shift 2 ;;
    --quick) quick=1; ns=48,96 ranks=8 steps=60; shift ;;
    -h|--help) usage 0 ;;
    *) echo "memorize-capacity: unknown option '$1'" >&2; usage 2 ;;
  esac
done
[[ $jobs =~ ^[1-9][0-9]*$ ]] || { echo "memorize-capacity: --jobs $jobs: a positive integer" >&2; exit 2; }
memorize=$build/examples/memorize
[ -x "$memorize" ] || { echo "memorize-capacity: $memorize not found (build first, or --build DIR)" >&2; exit 2; }
mkdir -p "$out/runs"
extra=()
((quick)) && extra=(--width 64 --depth 1)

# one memorize run per (method, rank, N), --jobs at a time
pids=() failed=0
for r in ${ranks//,/ }; do
  for n in ${ns//,/ }; do
    for m in "${methods[@]}"; do
      dir=$out/runs/${m}_r${r}_n${n}
      OPENBLAS_NUM_THREADS=1 "$memorize" --tasks uuid --methods "$m" --ranks "$r" --n "$n" --lrs "$(lr_of "$m" "$r")" \
        --seeds "$seeds" --steps "$steps" --extend-edges 0 "${extra[@]}" --out "$dir" >"$dir.log" 2>&1 &
      pids+=($!)
      if ((${#pids[@]} >= jobs)); then wait "${pids[0]}" || failed=1; pids=("${pids[@]:1}"); fi
    done
  done
done
for p in "${pids[@]}"; do wait "$p" || failed=1; done
((failed)) && { echo "memorize-capacity: a run failed (see $out/runs/*.log)" >&2; exit 1; }

# capacity.csv: method, r, N, params, lr, mean and sd of the final accuracy over the seeds
python3 - "$out" <<'PY'
import csv, glob, os, statistics, sys
out = sys.argv[1]
rows = {}
for path in glob.glob(os.path.join(out, "runs", "*", "summary.csv")):
    n = int(path.split("_n")[-1].split(os.sep)[0])
    for r in csv.DictReader(open(path)):
        rows.setdefault((r["method"], int(r["r"]), n), []).append(r)
with open(os.path.join(out, "capacity.csv"), "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["method", "r", "n", "params", "lr", "seeds", "accuracy_mean", "accuracy_sd"])
    for (m, r, n), rs in sorted(rows.items()):
        acc = [float(x["final_metric"]) for x in rs]
        w.writerow([m, r, n, rs[0]["params"], rs[0]["lr"], len(rs), f"{statistics.fmean(acc):.6f}",
                    f"{statistics.stdev(acc) if len(acc) > 1 else 0:.6f}"])
PY
echo "memorize-capacity: $out/capacity.csv"

if command -v gnuplot >/dev/null 2>&1; then
  for r in ${ranks//,/ }; do
    plot=""
    i=0
    for m in "${methods[@]}"; do
      i=$((i + 1))
      grep "^$m,$r," "$out/capacity.csv" | awk -F, '{print $3, $7, $8}' >"$out/capacity_r${r}_$m.dat"
      params=$(grep -m1 "^$m,$r," "$out/capacity.csv" | cut -d, -f4)
      plot+="${plot:+, }'capacity_r${r}_$m.dat' using 1:2:3 with yerrorlines lw 2 lc $i title '$m ($params params, lr $(lr_of "$m" "$r"))'"
    done
    (cd "$out" && gnuplot -e "set terminal pngcairo size 900,560 noenhanced; set output 'capacity_r$r.png';
      set logscale x 2; set xlabel 'pairs N'; set ylabel 'character accuracy after $steps steps'; set yrange [0:1.02];
      set grid; set key bottom left; set title 'UUID memorisation capacity, r = $r (seeds $seeds)'; plot $plot")
    echo "memorize-capacity: $out/capacity_r$r.png"
  done
else
  echo "memorize-capacity: gnuplot is not installed (Debian: gnuplot-nox): no plots"
fi
