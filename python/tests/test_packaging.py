"""The installed package: `pip install ./python` bundled a libmora.so built by CMake (scikit-build-core),
which the package loads when LIBMORA_LIBRARY is unset; LIBMORA_LIBRARY selects another build."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

import libmora

PACKAGE = os.path.dirname(os.path.abspath(libmora.__file__))
PROBE = "import libmora, libmora._lib as L; print(libmora.version()); print(L.loaded_path)"


def probe(env_library):
    env = {k: v for k, v in os.environ.items() if k != "LIBMORA_LIBRARY"}
    if env_library:
        env["LIBMORA_LIBRARY"] = env_library
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120,
                         cwd=os.path.dirname(PACKAGE))  # the installed package's folder, not the checkout's
    assert out.returncode == 0, out.stderr
    version, path = out.stdout.split()
    return version, path


def test_the_wheel_bundles_libmora():
    bundled = os.path.join(PACKAGE, "libmora.so")
    if not os.path.isfile(bundled):
        pytest.skip(f"{PACKAGE} holds no libmora.so: the package was not installed with pip install ./python")
    version, path = probe(None)
    assert version == libmora.EXPECTED_VERSION and os.path.samefile(path, bundled)


def test_LIBMORA_LIBRARY_selects_another_build():
    other = os.environ.get("LIBMORA_LIBRARY")
    if not other:
        pytest.skip("LIBMORA_LIBRARY is not set (scripts/python-test.sh sets it to the build's libmora.so)")
    version, path = probe(other)
    assert path == other and version == libmora.EXPECTED_VERSION


def test_a_LIBMORA_LIBRARY_that_does_not_load_is_an_error():
    """Not a quiet fall-back to the bundled library: the variable names the one the user wants."""
    with pytest.raises(AssertionError) as e:
        probe("/nonexistent/libmora.so")
    assert "LIBMORA_LIBRARY=/nonexistent/libmora.so" in str(e.value) and "LibraryNotFound" in str(e.value)
