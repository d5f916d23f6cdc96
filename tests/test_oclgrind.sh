#!/usr/bin/env bash
# test_oclgrind.sh BUILD_DIR — the whole tuner (every candidate compiled, verified against the float64
# reference, timed) on the Oclgrind OpenCL simulator, which checks each work-item's memory accesses
# (OCLGRIND_CHECK_API, OCLGRIND_DATA_RACES): any invalid read or write, data race, or API error it
# reports fails the test. A small shape that does not divide evenly (d_in 40, d_out 27, r̂ 8, 37 tokens)
# so the tile edges are exercised. Run with the default compile threads (1 on Oclgrind, whose compiler
# is not thread-safe) and with an explicit --compile-threads 1. The test is about memory safety, not
# speed: the budget is wide and --max-spread accepts any timing spread, so a loaded machine (parallel
# ctest, a sanitizer build) cannot turn a kind into "noisy" (declared defaults, no record) and fail it.
# Exits 77 when Oclgrind is not installed.
set -u
build=$1
tune=$build/mora-tune
icd=/usr/lib/oclgrind/liboclgrind-rt-icd.so
fails=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

fail() { fails=$((fails + 1)); echo "FAILED: $*"; }

if ! command -v oclgrind >/dev/null 2>&1 || [ ! -f "$icd" ]; then
  echo "SKIP: Oclgrind is not installed (package oclgrind: $icd)"; exit 77
fi

# Only Oclgrind is visible to the ICD loader in this test.
mkdir -p "$tmp/vendors"
echo "$icd" >"$tmp/vendors/oclgrind.icd"
export OCL_ICD_VENDORS=$tmp/vendors OCLGRIND_CHECK_API=1 OCLGRIND_DATA_RACES=1

tune_once() { # tune_once NAME EXTRA_ARGS...
  local name=$1
  "$tune" --backend opencl --dims 40 --dims-out 27 --rhat 8 --op rope --tokens 37 --budget 600 \
    --max-spread 1e6 --max-candidates 6 --cache-dir "" --json "${@:2}" >"$tmp/$name.json" 2>"$tmp/$name.err"
  local rc=$?
  if [ "$rc" -ne 0 ]; then
    fail "$name: mora-tune exit status $rc"; tail -20 "$tmp/$name.err" | sed 's/^/  | /'; return
  fi
  grep -q '"device": "Oclgrind' "$tmp/$name.json" || fail "$name: the device is not Oclgrind"
  local tuned
  tuned=$(grep -c '"source": "tuned"' "$tmp/$name.json")
  if [ "$tuned" -ne 4 ]; then
    fail "$name: $tuned of the 4 kinds tuned"; grep -E '"(kind|source|candidates|rejected|failed)"' "$tmp/$name.json" | sed 's/^/  | /'
  fi
  grep -qE '"rejected": [1-9]' "$tmp/$name.json" && fail "$name: candidates rejected by the reference check"
  grep -qE '"failed": [1-9]' "$tmp/$name.json" && fail "$name: candidates failed to build or run"
  if grep -qiE "invalid (read|write)|data race|error detected|uninitiali[sz]ed|out of bounds" "$tmp/$name.err"; then
    fail "$name: Oclgrind reported errors"; grep -iE -m 10 "invalid|race|error|uninit|bounds" "$tmp/$name.err" | sed 's/^/  | /'
  fi
}

tune_once default_threads
tune_once one_thread --compile-threads 1

if [ "$fails" -ne 0 ]; then echo "$fails check(s) failed"; exit 1; fi
echo "OK: the tuner ran clean under Oclgrind (4 kinds, both compile-thread settings)"
