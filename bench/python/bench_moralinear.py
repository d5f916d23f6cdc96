#!/usr/bin/env python3
"""bench_moralinear — libmora's MoRALinear against the eager PyTorch MoRA (python/tests/mora_eager.py,
the reference's _apply_mora written from docs/operators.md), forward and forward + backward.

    LIBMORA_LIBRARY=build/libmora.so PYTHONPATH=python python3 bench/python/bench_moralinear.py \
        [--device cpu|cuda] [--dtype f32|bf16|f16] [--tokens 1024] [--shapes 4096:4096:8:rope,4096:4096:256:share]
        [--reps 7] [--threads 1] [--with-base] [--md report.md]

What is timed: the adapter path of one layer, y = y_base + decomp(M·comp(x)) with y_base = base(x)
computed once outside the timing (the frozen base GEMM is the same torch call in both and would hide
the difference; --with-base adds rows timing the whole layer, base GEMM included). "fwd" is the
forward alone; "fwd+bwd" is the forward plus backward with dx and dM (x and M require grad). Both
sides get the same torch thread count (--threads; default 1 on the CPU, since libmora's cpu backend
runs each call on the calling thread at this commit), the candidates are interleaved within every
repetition, and the median over --reps repetitions (each the mean of an inner loop sized to ~0.2 s)
is reported. On CUDA, times use torch.cuda.synchronize around the inner loop.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "python", "tests"))  # mora_eager: the eager reference
sys.path.insert(1, os.path.join(ROOT, "python"))  # the package, when not pip-installed

import torch  # noqa: E402

import libmora  # noqa: E402
from mora_eager import OPS, mora_eager  # noqa: E402

DTYPES = {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16}


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device, target_s=0.2):
    """Mean seconds of fn over an inner loop of ~target_s (at least one call)."""
    sync(device)
    t0 = time.perf_counter()
    fn()
    sync(device)
    one = time.perf_counter() - t0
    loops = max(1, min(1000, int(target_s / max(one, 1e-6))))
    t0 = time.perf_counter()
    for _ in range(loops):
        fn()
    sync(device)
    return (time.perf_counter() - t0) / loops


def case(d_in, d_out, r, op, n, dtype, device, reps, with_base):
    torch.manual_seed(0)
    base = torch.nn.Linear(d_in, d_out, bias=False).to(device, dtype)
    layer = libmora.MoRALinear(base, r=r, op=op)
    rhat = layer.rhat
    with torch.no_grad():
        layer.M.normal_(0, rhat ** -0.5)
    M = layer.M
    x = torch.randn(n, d_in, device=device, dtype=dtype)
    with torch.no_grad():
        y_base = base(x)
    dy = torch.randn(n, d_out, device=device, dtype=dtype)
    xg = x.detach().clone().requires_grad_(True)
    opid = OPS[op]

    def lib_fwd():
        with torch.no_grad():
            libmora.mora_apply(x, M, y_base, rhat, opid)

    def eager_fwd():
        with torch.no_grad():
            y_base + mora_eager(x, M.to(dtype), d_out, op)

    def lib_fwdbwd():
        xg.grad = None
        M.grad = None
        libmora.mora_apply(xg, M, y_base, rhat, opid).backward(dy)

    def eager_fwdbwd():
        xg.grad = None
        M.grad = None
        (y_base + mora_eager(xg, M.to(dtype), d_out, op)).backward(dy)

    def lib_layer():
        xg.grad = None
        M.grad = None
        layer(xg).backward(dy)

    def eager_layer():
        xg.grad = None
        M.grad = None
        (base(xg) + mora_eager(xg, M.to(dtype), d_out, op)).backward(dy)

    # sanity: both sides compute the same thing
    with torch.no_grad():
        a = libmora.mora_apply(x, M, y_base, rhat, opid).float()
        b = (y_base + mora_eager(x, M.to(dtype), d_out, op)).float()
    diff = ((a - b).norm() / b.norm()).item()

    pairs = [("fwd", lib_fwd, eager_fwd), ("fwd+bwd", lib_fwdbwd, eager_fwdbwd)]
    if with_base:
        pairs.append(("layer fwd+bwd (base GEMM incl.)", lib_layer, eager_layer))
    rows = []
    for name, lib_fn, eager_fn in pairs:
        lib_fn(), eager_fn()  # warm-up (plans created, allocator warmed)
        lt, et = [], []
        for rep in range(reps):  # interleaved, alternating which goes first
            order = [(lib_fn, lt), (eager_fn, et)] if rep % 2 == 0 else [(eager_fn, et), (lib_fn, lt)]
            for fn, acc in order:
                acc.append(timed(fn, device))
        rows.append(dict(shape=f"{d_in}→{d_out}", r=r, rhat=rhat, op=op, what=name, lib=statistics.median(lt),
                         eager=statistics.median(et), lib_all=lt, eager_all=et, diff=diff))
        print(f"{d_in}->{d_out} r={r} (r̂={rhat}) {op:<6} {name:<34} libmora {rows[-1]['lib'] * 1e3:9.3f} ms   "
              f"eager {rows[-1]['eager'] * 1e3:9.3f} ms   eager/libmora {rows[-1]['eager'] / rows[-1]['lib']:6.2f}x",
              flush=True)
    return rows


def machine(device):
    lines = []
    try:
        model = [l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")][0]
    except (OSError, IndexError):
        model = platform.processor()
    lines.append(f"CPU: {model}, {os.cpu_count()} logical cores; {platform.platform()}")
    if device.type == "cuda":
        lines.append(f"GPU: {torch.cuda.get_device_name(device)}")
    lines.append(f"torch {torch.__version__}, libmora {libmora.version()} (custom op: {libmora.CUSTOM_OP}), "
                 f"Python {platform.python_version()}")
    return lines


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="f32", choices=sorted(DTYPES))
    ap.add_argument("--tokens", type=int, default=1024)
    ap.add_argument("--shapes", default="4096:4096:8:rope,4096:4096:256:share",
                    help="comma-separated d_in:d_out:r:op")
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: 1 on cpu)")
    ap.add_argument("--with-base", action="store_true", help="also time the whole layer, base GEMM included")
    ap.add_argument("--md", help="write a Markdown report here")
    ap.add_argument("--note", default="", help="a sentence for the report (e.g. the machine's load)")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    threads = args.threads or (1 if device.type == "cpu" else torch.get_num_threads())
    torch.set_num_threads(threads)
    dtype = DTYPES[args.dtype]
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    try:  # the commit and tree state when the run starts
        commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short=12", "HEAD"], capture_output=True,
                                text=True).stdout.strip() or "unknown"
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()
    except OSError:
        commit, dirty = "unknown", ""
    load_start = os.getloadavg() if hasattr(os, "getloadavg") else None
    t_start = time.perf_counter()
    rows = []
    for spec in args.shapes.split(","):
        d_in, d_out, r, op = spec.split(":")
        rows += case(int(d_in), int(d_out), int(r), op, args.tokens, dtype, device, args.reps, args.with_base)
    if args.md:
        cmd = "python3 bench/python/bench_moralinear.py " + " ".join(argv if argv is not None else sys.argv[1:])
        out = [f"# MoRALinear (libmora) vs the eager PyTorch MoRA — {args.device}, {args.dtype}, {args.tokens} tokens",
               "", f"- command: `{cmd}`", f"- commit: `{commit}`{' (with uncommitted changes)' if dirty else ''}",
               f"- date: {started}", f"- torch threads: {threads} (both sides)"]
        out += [f"- {line}" for line in machine(device)]
        if load_start:
            end = os.getloadavg()
            out.append(f"- load average (1, 5, 15 min) at the start {load_start[0]:.2f} {load_start[1]:.2f} "
                       f"{load_start[2]:.2f}, at the end {end[0]:.2f} {end[1]:.2f} {end[2]:.2f}; run time "
                       f"{time.perf_counter() - t_start:.0f} s")
        if args.note:
            out.append(f"- note: {args.note}")
        out += ["", "Adapter path y = y_base + decomp(M·comp(x)) (y_base precomputed) unless the row says the base "
                "GEMM is included; median of the repetitions (each an inner-loop mean), libmora and eager interleaved.",
                "", "| shape | r | r̂ | op | timed | libmora ms | eager ms | eager / libmora | all libmora ms | "
                "all eager ms | rel. diff |", "|---|---|---|---|---|---|---|---|---|---|---|"]
        for w in rows:
            out.append(f"| {w['shape']} | {w['r']} | {w['rhat']} | {w['op']} | {w['what']} | {w['lib'] * 1e3:.3f} | "
                       f"{w['eager'] * 1e3:.3f} | **{w['eager'] / w['lib']:.2f}×** | "
                       f"{' '.join(f'{t * 1e3:.1f}' for t in w['lib_all'])} | "
                       f"{' '.join(f'{t * 1e3:.1f}' for t in w['eager_all'])} | {w['diff']:.1e} |")
        with open(args.md, "w") as f:
            f.write("\n".join(out) + "\n")
        print(f"wrote {args.md}")


if __name__ == "__main__":
    main()
