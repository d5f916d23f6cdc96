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


def test_new_knowledge_replay_and_pretrained_cache(tmp_path):
    """--replay mixes old facts in; --pretrained keeps the pretrained model and a second run loads it and
    gets the same numbers (the adaptation is deterministic given the model and the seed)."""
    script = os.path.join(ROOT, "examples", "new_knowledge.py")
    cache = tmp_path / "pre.pt"
    common = ["--quick", "--methods", "lora,mora-rope", "--replay", "4", "--pretrained", str(cache)]
    first = subprocess.run([sys.executable, script, *common, "--out", str(tmp_path / "a")],
                           capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert cache.exists() and "loaded from" not in first.stdout
    second = subprocess.run([sys.executable, script, *common, "--out", str(tmp_path / "b")],
                            capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert f"pretrained model loaded from {cache}" in second.stdout, second.stdout[-2000:]
    assert "4 old facts replayed" in (tmp_path / "b" / "report.md").read_text()
    drop = lambda path: [row.rsplit(",", 1)[0] for row in path.read_text().splitlines()]  # all but the seconds
    assert drop(tmp_path / "a" / "summary.csv") == drop(tmp_path / "b" / "summary.csv")
    bad = subprocess.run([sys.executable, script, "--quick", "--replay", "999"], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "--replay 999" in bad.stderr, bad.stderr[-500:]
