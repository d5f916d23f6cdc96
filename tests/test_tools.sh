#!/usr/bin/env bash
# test_tools.sh BUILD_DIR — the command-line tools end to end: --help, usage errors (exit 2),
# mora-gen's source and --check on OpenCL, and mora-tune twice on a small shape (the second run must
# answer from the cache). Exits 77 when no OpenCL platform is available.
set -u
build=$1
fails=0 checks=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export MORA_CACHE_DIR=$tmp/cache

check() { # check DESCRIPTION COMMAND...: the command must succeed
  checks=$((checks + 1))
  if ! "${@:2}" >"$tmp/out" 2>&1; then
    fails=$((fails + 1)); echo "FAILED: $1"; sed 's/^/  | /' "$tmp/out" | tail -20
  fi
}
expect_status() { # expect_status STATUS DESCRIPTION COMMAND...
  checks=$((checks + 1))
  "${@:3}" >"$tmp/out" 2>&1; local got=$?
  if [ "$got" -ne "$1" ]; then
    fails=$((fails + 1)); echo "FAILED: $2: exit status $got, want $1"; sed 's/^/  | /' "$tmp/out" | tail -20
  fi
}

if ! "$build/mora-gen" --dims 8 --rhat 4 --op share --check >"$tmp/probe" 2>&1; then
  if grep -qiE "could not be loaded|no OpenCL platform|device\(s\)" "$tmp/probe"; then
    echo "SKIP: no OpenCL platform: $(head -c 300 "$tmp/probe")"; exit 77
  fi
fi

for tool in mora-gen mora-tune; do
  expect_status 0 "$tool --help" "$build/$tool" --help
  grep -q "Usage: $tool" "$tmp/out" || { fails=$((fails + 1)); echo "FAILED: $tool --help prints no usage"; }
  expect_status 2 "$tool without arguments" "$build/$tool"
  expect_status 2 "$tool --dims abc" "$build/$tool" --dims abc --rank 8
  grep -q -- "--dims=abc" "$tmp/out" || { fails=$((fails + 1)); echo "FAILED: $tool names the bad --dims value"; }
  expect_status 2 "$tool with an unknown option" "$build/$tool" --dims 64 --rank 8 --frobnicate
  expect_status 2 "$tool with a shape the op cannot take" "$build/$tool" --dims 64 --dims-out 8 --rhat 16 --op group
  grep -q "rhat=16" "$tmp/out" || { fails=$((fails + 1)); echo "FAILED: $tool gives the library's sentence"; }
done

check "mora-gen prints the source" "$build/mora-gen" --dims 4096 --rank 8 --op rope --kind fwd --dtype bf16
grep -q "KERNEL void mora_fwd" "$tmp/out" && grep -q "#define RHAT 256" "$tmp/out" ||
  { fails=$((fails + 1)); echo "FAILED: mora-gen source lacks the kernel or the shape"; }
expect_status 2 "mora-gen --param of another kind" "$build/mora-gen" --dims 64 --rank 8 --param DM_SPLIT=2
for kind in fwd bwd_dx bwd_dm merge; do
  check "mora-gen --check $kind on OpenCL" "$build/mora-gen" --dims 50 --dims-out 37 --rhat 8 --op rope --kind $kind --dtype f16 --check
done

check "mora-tune first run" "$build/mora-tune" --dims 64 --dims-out 48 --rank 4 --budget 20 --max-candidates 4
grep -q "tuned" "$tmp/out" || { fails=$((fails + 1)); echo "FAILED: first mora-tune run tuned nothing"; }
check "mora-tune second run" "$build/mora-tune" --dims 64 --dims-out 48 --rank 4 --budget 20 --max-candidates 4
grep -q "answered from the kernels cache" "$tmp/out" || { fails=$((fails + 1)); echo "FAILED: second run not from the cache"; cat "$tmp/out"; }
checks=$((checks + 1))
"$build/mora-tune" --dims 64 --dims-out 48 --rank 4 --json --kinds fwd >"$tmp/json" 2>/dev/null  # stdout alone
python3 -c "import json,sys; d=json.load(open('$tmp/json')); assert d['kinds'][0]['source']=='cache'" 2>/dev/null ||
  { fails=$((fails + 1)); echo "FAILED: --json output is not the expected JSON"; cat "$tmp/json"; }

echo "$((checks - fails)) passed, $fails failed"
[ "$fails" -eq 0 ]
