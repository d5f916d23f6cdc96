#!/usr/bin/env bash
# The Python binding's tests: builds libmora if needed, installs torch, pytest, transformers, accelerate
# and scikit-build-core only when missing (PyPI), `pip install ./python` (which builds libmora again with
# CMake through scikit-build-core and bundles that libmora.so in the package), then `pytest python/tests`
# on the CPU with LIBMORA_LIBRARY set to the build's libmora.so (test_packaging checks the bundled one
# and that LIBMORA_LIBRARY overrides it). Exits non-zero on any failure, error, or skipped test (a
# skipped test is not a pass; MORA_PYTHON_ALLOW_SKIPS=1 accepts skips, still listing them).
#   bash scripts/python-test.sh            (after scripts/test.sh, or alone: it configures and builds then)
# Environment: MORA_BUILD_DIR (default build), PYTHON (default python3), MORA_TORCH_PIP_ARGS (extra pip
# arguments for installing torch, e.g. an --index-url of CPU wheels), LIBMORA_TEST_DEVICE (default cpu).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${MORA_BUILD_DIR:-build}
py=${PYTHON:-python3}

# 1. libmora.so: through scripts/tune.sh, as the README's quick start does (it reuses scripts/test.sh's
# build, brings it up to date, or configures one), which must leave the whole library and every tool
if [ ! -f "$build/CMakeCache.txt" ]; then
  bash scripts/setup.sh
  cmake -S . -B "$build" -DMORA_WERROR="${MORA_WERROR:-OFF}" >/dev/null
fi
MORA_BUILD_DIR="$build" bash scripts/tune.sh --help >/dev/null
for f in libmora.so libmora.a mora-gen mora-tune mora-bench mora-adamw-bench mora-cpu-bench; do
  [ -e "$build/$f" ] || { echo "python-test: scripts/tune.sh did not build $build/$f" >&2; exit 1; }
done
lib="$(cd "$build" && pwd)/libmora.so"

# 2. torch, pytest, transformers (+ accelerate, which its Trainer needs) and the package's build backend,
# each only when missing (pip: PyPI)
pip_install() { "$py" -m pip install --disable-pip-version-check -q "$@"; }
if ! "$py" -c "import torch" >/dev/null 2>&1; then
  echo "python-test: installing torch"
  # shellcheck disable=SC2086
  pip_install torch ${MORA_TORCH_PIP_ARGS:-}
fi
for module_package in pytest:pytest transformers:transformers accelerate:accelerate scikit_build_core:scikit-build-core; do
  module=${module_package%%:*} package=${module_package#*:}
  "$py" -c "import $module" >/dev/null 2>&1 || { echo "python-test: installing $package"; pip_install "$package"; }
done

# 3. the package, from this checkout: pip builds libmora (CMake, through scikit-build-core, already here:
# no build isolation) and bundles libmora.so in it
pip_install --no-build-isolation --no-deps --force-reinstall ./python
rm -rf python/build python/*.egg-info

# 4. the tests, run against the installed package; the junit report counts skips
report=$(mktemp -t libmora-pytest-XXXXXX.xml)
trap 'rm -f "$report"' EXIT
status=0
# from the checkout's root, so `import libmora` finds the installed package, not python/libmora
LIBMORA_LIBRARY="$lib" "$py" -m pytest python/tests -q -rs -p no:cacheprovider --junitxml="$report" || status=$?
if [ "$status" -ne 0 ]; then
  echo "python-test: FAILED (pytest exit status $status)" >&2
  exit "$status"
fi
skipped=$("$py" - "$report" <<'PY'
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
suites = [root] if root.tag == "testsuite" else list(root)
print(sum(int(s.get("skipped", 0)) for s in suites))
PY
)
if [ "$skipped" -ne 0 ] && [ "${MORA_PYTHON_ALLOW_SKIPS:-0}" != 1 ]; then
  echo "python-test: FAILED: $skipped test(s) skipped (listed above); a skip is not a pass" >&2
  exit 1
fi
echo "python-test: passed${skipped:+ ($skipped skipped)}"
