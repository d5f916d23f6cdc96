"""The experiments under examples/ that run on the Python binding, in their --quick modes: each checks
itself (libmora's layers against eager PyTorch, merges that keep the output, every method training)
and exits 1 when a check fails; here they must exit 0 and write their report with a row per method."""
import os
import subprocess
import sys

import pytest

pytest.importorskip("transformers", reason="transformers is not installed (scripts/python-test.sh installs it)")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
METHODS = ["lora", "relora", "mora-rope", "mora-share", "remora-rope", "remora-share"]


def test_new_knowledge_quick(tmp_path):
    out = tmp_path / "nk"
    run = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "new_knowledge.py"), "--quick", "--out", str(out)],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, f"new_knowledge --quick failed ({run.returncode}):\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    report = (out / "report.md").read_text()
    for method in METHODS:
        assert f"| {method} |" in report, f"report.md has no row for {method}"
    assert "check: MoRALinear against" in run.stdout and "merge keeps the logits" in run.stdout
    rows = (out / "summary.csv").read_text().splitlines()
    assert len(rows) == 1 + len(METHODS), rows


def test_new_knowledge_usage_errors():
    script = os.path.join(ROOT, "examples", "new_knowledge.py")
    for bad in (["--methods", "lora,sideways"], ["--attributes", "9"], ["--hidden", "33"]):
        run = subprocess.run([sys.executable, script, *bad], capture_output=True, text=True, timeout=300)
        assert run.returncode == 2, (bad, run.returncode, run.stderr[-500:])
        assert bad[0] in run.stderr, (bad, run.stderr[-500:])
