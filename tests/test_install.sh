#!/usr/bin/env bash
# test_install — installs a build into a temporary prefix and uses it as a newcomer would: a project
# with find_package(mora), a program built with pkg-config, a project that add_subdirectory()s the
# source tree, all run; and the shared library exports only mora_ symbols (nm -D) under its SONAME.
#   usage: test_install.sh BUILD_DIR
set -euo pipefail
build=$(cd "$1" && pwd)
source_dir=$(cd "$(dirname "$0")/.." && pwd)
for tool in nm pkg-config cc; do
  command -v "$tool" >/dev/null || { echo "test_install: $tool is not installed"; exit 77; }
done
work=$(mktemp -d /tmp/mora-test-install-XXXXXX)
trap 'rm -rf "$work"' EXIT
prefix="$work/prefix"
failures=0
fail() { echo "FAILED: $*"; failures=$((failures + 1)); }

cmake --install "$build" --prefix "$prefix" >"$work/install.log" || { cat "$work/install.log"; exit 1; }
for f in include/mora.h include/mora_version.h; do [ -f "$prefix/$f" ] || fail "$f was not installed"; done
so=$(find "$prefix" -name 'libmora.so.*' -type f | head -n 1)
[ -n "$so" ] || fail "libmora.so.* was not installed"
[ -n "$(find "$prefix" -name libmora.a)" ] || fail "libmora.a was not installed"
[ -n "$(find "$prefix" -name moraConfig.cmake)" ] || fail "moraConfig.cmake was not installed"
[ -n "$(find "$prefix" -name moraConfigVersion.cmake)" ] || fail "moraConfigVersion.cmake was not installed"
pc=$(find "$prefix" -name mora.pc | head -n 1)
[ -n "$pc" ] || fail "mora.pc was not installed"
# every tool the README lists
for tool in mora-tune mora-bench mora-gen mora-adamw-bench mora-cpu-bench; do
  [ -x "$prefix/bin/$tool" ] || fail "bin/$tool was not installed"
done
# the Python wheel's component (libmora/libmora.so) is not part of a plain install
[ ! -e "$prefix/libmora" ] || fail "a plain install installed the Python wheel's libmora/ folder"
libdir=$(dirname "$so")

# 1. find_package(mora)
if cmake -S "$source_dir/tests/consumer" -B "$work/consumer" -DCMAKE_PREFIX_PATH="$prefix" \
     -DCMAKE_BUILD_RPATH="$libdir" >"$work/consumer.log" 2>&1 &&
   cmake --build "$work/consumer" >>"$work/consumer.log" 2>&1; then
  "$work/consumer/consumer" || fail "the find_package consumer did not run correctly"
else
  cat "$work/consumer.log"; fail "the find_package consumer did not build"
fi

# 2. pkg-config
export PKG_CONFIG_PATH="$(dirname "$pc")"
if flags=$(pkg-config --cflags --libs mora); then
  # shellcheck disable=SC2086
  if cc -o "$work/consumer-pc" "$source_dir/tests/consumer/main.c" $flags -lm -Wl,-rpath,"$libdir"; then
    "$work/consumer-pc" || fail "the pkg-config consumer did not run correctly"
  else
    fail "the pkg-config consumer did not build (flags: $flags)"
  fi
else
  fail "pkg-config --cflags --libs mora failed"
fi

# 3. add_subdirectory: the mora::mora alias, and no tools or tests of libmora's own
if cmake -S "$source_dir/tests/consumer-subdir" -B "$work/subdir" -DMORA_SOURCE_DIR="$source_dir" \
     -DMORA_WITH_CUDA=OFF -DMORA_WITH_HIP=OFF >"$work/subdir.log" 2>&1 &&
   cmake --build "$work/subdir" -j"$(nproc)" >>"$work/subdir.log" 2>&1; then
  "$work/subdir/consumer" || fail "the add_subdirectory consumer did not run correctly"
  [ ! -e "$work/subdir/libmora/mora-tune" ] || fail "add_subdirectory built libmora's tools"
  [ ! -e "$work/subdir/libmora/tests" ] || fail "add_subdirectory built libmora's tests"
else
  tail -n 30 "$work/subdir.log"; fail "the add_subdirectory consumer did not build"
fi

# 4. the exported surface: only mora_ symbols (the linker's own markers aside)
others=$(nm -D --defined-only "$so" | awk '{print $3}' | grep -v -E '^(mora_|_init$|_fini$|_edata$|_end$|__bss_start$)' || true)
[ -z "$others" ] || fail "libmora.so exports symbols without the mora_ prefix: $(echo $others | head -c 400)"
echo "exported: $(nm -D --defined-only "$so" | grep -c ' T mora_') mora_ functions"
soname=$(objdump -p "$so" | awk '/SONAME/ {print $2}')
[ "$soname" = "libmora.so.0" ] || fail "SONAME is '$soname', expected libmora.so.0"

if [ "$failures" -gt 0 ]; then echo "$failures failed"; exit 1; fi
echo "test_install: installed, consumed through find_package and pkg-config, surface checked"
