"""Shared helpers: the device the tests run on (LIBMORA_TEST_DEVICE, default cpu), relative errors, and
a summary of the largest relative error per dtype and quantity at the end of the run."""
from __future__ import annotations

import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

DEVICE = torch.device(os.environ.get("LIBMORA_TEST_DEVICE", "cpu"))
TOL = {torch.float32: 1e-5, torch.bfloat16: 1e-2, torch.float16: 3e-3}
_worst: dict = {}
_notes: list = []


def rel_err(out: torch.Tensor, ref: torch.Tensor) -> float:
    """‖out − ref‖ / ‖ref‖ in float64; NaN or Inf anywhere gives inf (never passes)."""
    out64, ref64 = out.detach().double().cpu(), ref.detach().double().cpu()
    if not torch.isfinite(out64).all():
        return float("inf")
    den = ref64.norm().item()
    num = (out64 - ref64).norm().item()
    return num / den if den > 0 else num


def record(what: str, dtype, err: float) -> None:
    key = (what, str(dtype).replace("torch.", ""))
    _worst[key] = max(_worst.get(key, 0.0), err)


def note(line: str) -> None:
    _notes.append(line)


def pytest_terminal_summary(terminalreporter):
    import libmora
    from libmora import _lib
    terminalreporter.write_line(f"libmora package {os.path.dirname(libmora.__file__)}, library {_lib.loaded_path} "
                                f"({_lib.version() if _lib.loaded_path else 'not loaded'}), torch {torch.__version__}")
    if _worst:
        terminalreporter.write_line(f"libmora vs float64 eager reference on {DEVICE}: largest relative error")
        for (what, dtype), err in sorted(_worst.items()):
            terminalreporter.write_line(f"  {what:<12} {dtype:<9} {err:.3e}")
    for line in _notes:
        terminalreporter.write_line(line)


@pytest.fixture
def device():
    return DEVICE
