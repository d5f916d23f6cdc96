#!/usr/bin/env bash
# test_bench.sh BUILD_DIR — mora-bench end to end on one tiny shape: --help and usage errors (exit 2),
# then a run on OpenCL with --json, --csv, --md (and --plot when gnuplot is installed) whose files
# must be well-formed, with every variant measured, verified, and its ratio to the tuned kernel
# present and positive; a run on the cpu backend; and the plot skipped cleanly without gnuplot.
# Exits 77 when no OpenCL platform is available.
set -u
build=$1
bench=$build/mora-bench
fails=0 checks=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export MORA_CACHE_DIR=$tmp/cache

fail() { fails=$((fails + 1)); echo "FAILED: $*"; }
expect_status() { # expect_status STATUS DESCRIPTION COMMAND...
  checks=$((checks + 1))
  "${@:3}" >"$tmp/out" 2>&1; local got=$?
  if [ "$got" -ne "$1" ]; then
    fail "$2: exit status $got, want $1"; sed 's/^/  | /' "$tmp/out" | tail -20
  fi
}

if ! "$build/mora-gen" --dims 8 --rhat 4 --op share --check >"$tmp/probe" 2>&1; then
  if grep -qiE "could not be loaded|no OpenCL platform|device\(s\)" "$tmp/probe"; then
    echo "SKIP: no OpenCL platform: $(head -c 300 "$tmp/probe")"; exit 77
  fi
fi

expect_status 0 "mora-bench --help" "$bench" --help
grep -q "Usage: mora-bench" "$tmp/out" || fail "--help prints no usage"
expect_status 2 "an unknown option" "$bench" --frobnicate
expect_status 2 "a bad --kinds item" "$bench" --dims 64 --rank 4 --kinds fwd,sideways
grep -q "sideways" "$tmp/out" || fail "the --kinds error names the bad item"
expect_status 2 "a bad --baselines item" "$bench" --dims 64 --rank 4 --baselines blas9000
expect_status 2 "a negative --budget-ms" "$bench" --dims 64 --rank 4 --budget-ms -5
expect_status 2 "an unknown backend" "$bench" --dims 64 --rank 4 --backend abacus
expect_status 2 "--rank without --dims" "$bench" --rank 4
expect_status 2 "a shape the op cannot take" "$bench" --dims 64 --dims-out 8 --rhat 16 --op group

tiny=(--dims 64 --dims-out 48 --rank 4 --tokens 64 --budget-ms 15 --min-reps 3)
plot=()
have_gnuplot=0
if command -v gnuplot >/dev/null 2>&1; then have_gnuplot=1; plot=(--plot "$tmp/r.png"); fi
expect_status 0 "mora-bench on OpenCL with every output" "$bench" --backend opencl "${tiny[@]}" \
  --json "$tmp/r.json" --csv "$tmp/r.csv" --md "$tmp/r.md" "${plot[@]}"
cp "$tmp/out" "$tmp/run.txt"
grep -q "fwd *tuned" "$tmp/run.txt" || fail "the terminal table has no tuned fwd row"

checks=$((checks + 1))
python3 - "$tmp" "$have_gnuplot" <<'EOF' || fail "the OpenCL run's files"
import csv, json, sys
tmp, have_gnuplot = sys.argv[1], sys.argv[2] == "1"
errors = []
d = json.load(open(f"{tmp}/r.json"))
for key in ("command", "date", "commit", "machine", "backend", "device", "roofline", "shapes"):
    if key not in d: errors.append(f"json: no '{key}'")
if d.get("backend") != "opencl": errors.append(f"json: backend {d.get('backend')!r}")
roof = d["roofline"]
for key in ("bandwidth_gbs", "peak_gflops"):
    if not (isinstance(roof.get(key), (int, float)) and roof[key] > 0): errors.append(f"json: roofline {key} = {roof.get(key)!r}")
blas = d.get("blas") is not None
kinds = d["shapes"][0]["kinds"]
if [k["kind"] for k in kinds] != ["fwd", "bwd_dx", "bwd_dm", "merge"]: errors.append("json: kinds " + str([k["kind"] for k in kinds]))
for k in kinds:
    name = k["kind"]
    for v, r in k["results"].items():
        if "WRONG" in r["note"] or "FAILED" in r["note"]: errors.append(f"{name}/{v}: {r['note']}")
    t = k["results"]["tuned"]
    if not (t["ok"] and t["ms"] > 0 and t["reps"] >= 3): errors.append(f"{name}: tuned not measured: {t}")
    if not (t["rel_error"] is not None and t["rel_error"] < 1e-5): errors.append(f"{name}: tuned not verified: {t['rel_error']}")
    if not (t["roofline_pct"] and t["roofline_pct"] > 0): errors.append(f"{name}: no % of roofline")
    expected = ["default", "naive"] + (["passes"] + (["gemm"] if name != "merge" else []) if blas else [])
    for v in expected:
        ratio = k["ratios"].get(v)
        if not (isinstance(ratio, (int, float)) and ratio > 0): errors.append(f"{name}: ratio {v} = {ratio!r}")
        if v != "gemm":
            e = k["results"][v]["rel_error"]
            if not (e is not None and e < 1e-5): errors.append(f"{name}: {v} not verified ({e!r})")
rows = list(csv.DictReader(open(f"{tmp}/r.csv")))
if len(rows) != 20: errors.append(f"csv: {len(rows)} rows, want 4 kinds x 5 variants")
for row in rows:
    if row["variant"] == "tuned" and not float(row["median_ms"]) > 0: errors.append(f"csv: tuned row {row}")
    if row["variant"] in ("default", "naive") and not float(row["tuned_speedup"] or 0) > 0:
        errors.append(f"csv: {row['kind']} {row['variant']}: tuned_speedup {row['tuned_speedup']!r}")
md = open(f"{tmp}/r.md").read()
for needle in ("# mora-bench report", "| commit |", "| CPU |", "| backend | opencl |", "mora-bench --backend opencl",
               "## Roofline", "## Results", "## Targets", "| fwd | tuned |"):
    if needle not in md: errors.append(f"md: missing {needle!r}")
if have_gnuplot:
    png = open(f"{tmp}/r.png", "rb").read(8)
    if png != b"\x89PNG\r\n\x1a\n": errors.append("plot: not a PNG")
    if "![" not in md: errors.append("md: the plot is not linked")
for e in errors: print("  " + e)
sys.exit(1 if errors else 0)
EOF

expect_status 0 "mora-bench on the cpu backend" "$bench" --backend cpu "${tiny[@]}" --kinds fwd,merge --json "$tmp/c.json"
checks=$((checks + 1))
python3 - "$tmp" <<'EOF' || fail "the cpu run's JSON"
import json, sys
d = json.load(open(sys.argv[1] + "/c.json"))
errors = []
kinds = d["shapes"][0]["kinds"]
if [k["kind"] for k in kinds] != ["fwd", "merge"]: errors.append("kinds " + str([k["kind"] for k in kinds]))
for k in kinds:
    t = k["results"]["tuned"]
    if not (t["ok"] and t["ms"] > 0 and t["rel_error"] is not None): errors.append(f"{k['kind']}: tuned {t}")
    if not k["results"]["naive"]["note"].startswith("n/a"): errors.append(f"{k['kind']}: naive should be n/a on cpu")
    if d.get("blas"):
        r = k["ratios"]["passes"]
        if not (isinstance(r, (int, float)) and r > 0): errors.append(f"{k['kind']}: passes ratio {r!r}")
for e in errors: print("  " + e)
sys.exit(1 if errors else 0)
EOF

# without gnuplot on PATH the plot is skipped with a message, and the run still succeeds
mkdir -p "$tmp/emptybin"
expect_status 0 "--plot without gnuplot" env PATH="$tmp/emptybin" "$bench" --backend cpu "${tiny[@]}" --kinds merge \
  --baselines none --plot "$tmp/none.png" --md "$tmp/none.md"
grep -q "gnuplot was not found" "$tmp/out" || fail "no message when gnuplot is missing"
[ ! -e "$tmp/none.png" ] || fail "a plot file appeared without gnuplot"
grep -q '| commit | `unknown` |' "$tmp/none.md" || fail "without git on PATH the commit should read unknown"

echo "$((checks - fails)) passed, $fails failed"
[ "$fails" -eq 0 ]
