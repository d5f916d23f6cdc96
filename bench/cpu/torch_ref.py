#!/usr/bin/env python3
"""Eager PyTorch MoRA (the math of docs/operators.md, written the way the reference PEFT fork runs it) against
libmora's cpu backend, on the same inputs, interleaved, several rounds, same thread count.

libmora is driven through ctypes, two ways (--via):
  plan   build/libmora-cpu-shim.so: the cpu plan interface (runtime/cpu_kernels.h) with --threads
         workers and the default tile (default; so both sides use the same thread count)
  api    build/libmora.so's public API: a "cpu" context, a plan, mora_forward / mora_backward on
         the same buffers, i.e. the path a user takes (default tile, one worker per online core,
         whatever --threads says)
Both sides are checked against a float64 evaluation of the same torch code (y, dx, dM relative
errors) before anything is timed.

    pip install torch            # CPU wheels from PyPI (the default wheel works; it runs on the CPU)
    python3 bench/cpu/torch_ref.py --build build --op rope --rank 8
    python3 bench/cpu/torch_ref.py --build build --op share --rank 256 --threads 1

OpenBLAS threads: libmora's workers each call sgemm, so this script sets OPENBLAS_NUM_THREADS=1 before
loading libmora (--openblas-threads to change it; the library itself never changes it). torch uses
--threads threads (MKL/OpenMP), libmora --threads workers (--via plan).
"""
import argparse
import ctypes
import math
import os
import statistics
import sys
import time

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("--build", default="build", help="the build folder (libmora.so, libmora-cpu-shim.so)")
ap.add_argument("--via", default="plan", choices=["plan", "api"])
ap.add_argument("--op", default="rope", choices=["rope", "share"])
ap.add_argument("--dims", type=int, default=4096)
ap.add_argument("--rank", type=int, default=8)
ap.add_argument("--tokens", type=int, default=1024)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (torch, libmora, torch, libmora, ...)")
ap.add_argument("--reps", type=int, default=5, help="timed repetitions per kind per round (median)")
ap.add_argument("--openblas-threads", type=int, default=1)
args = ap.parse_args()

os.environ["OPENBLAS_NUM_THREADS"] = str(args.openblas_threads)  # read by OpenBLAS when libmora loads
import torch  # noqa: E402

torch.set_num_threads(args.threads)
lib = ctypes.CDLL(os.path.abspath(os.path.join(args.build, "libmora.so")))


class Shape(ctypes.Structure):
    _fields_ = [("d_in", ctypes.c_int64), ("d_out", ctypes.c_int64), ("rhat", ctypes.c_int64), ("op", ctypes.c_int)]


OPS = {"share": 1, "rope": 6}
vp = ctypes.c_void_p
lib.mora_last_error.restype = ctypes.c_char_p
lib.mora_shape_make.argtypes = [ctypes.POINTER(Shape), ctypes.c_int64, ctypes.c_int64, ctypes.c_int64, ctypes.c_int]
lib.mora_context_create.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(vp)]
lib.mora_plan_create.argtypes = [vp, ctypes.POINTER(Shape), ctypes.c_int, ctypes.c_int64, vp, ctypes.POINTER(vp)]
lib.mora_forward.argtypes = [vp, vp, vp, ctypes.c_int64, vp, ctypes.c_int64, ctypes.c_int64, ctypes.c_float]
lib.mora_backward.argtypes = [vp, vp, vp, ctypes.c_int64, vp, ctypes.c_int64, vp, ctypes.c_int64, vp, ctypes.c_int64,
                              ctypes.c_float]


def ok(status):
    if status != 0:
        sys.exit(f"libmora: status {status}: {lib.mora_last_error().decode()}")


shape = Shape()
ok(lib.mora_shape_make(ctypes.byref(shape), args.dims, args.dims, args.rank, OPS[args.op]))
d_in, d_out, rhat, n = shape.d_in, shape.d_out, shape.rhat, args.tokens
ctx, layer = vp(), vp()  # --via api: the context and the plan
if args.via == "api":
    ok(lib.mora_context_create(b"cpu", 0, ctypes.byref(ctx)))
    ok(lib.mora_plan_create(ctx, ctypes.byref(shape), 0, n, None, ctypes.byref(layer)))
else:
    shim = ctypes.CDLL(os.path.abspath(os.path.join(args.build, "libmora-cpu-shim.so")))
    shim.shim_create.restype = vp
    shim.shim_create.argtypes = [ctypes.POINTER(Shape), ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int64]
    shim.shim_forward.argtypes = [vp, vp, vp, vp, ctypes.c_int64, ctypes.c_float]
    shim.shim_backward.argtypes = [vp, vp, vp, vp, vp, vp, ctypes.c_int64]
    plan = shim.shim_create(ctypes.byref(shape), 0, args.threads, 0, 0, n)  # OpenBLAS, the packed pipeline
    if not plan:
        sys.exit(f"libmora: cpu plan: {lib.mora_last_error().decode()}")

B = -(-d_in // rhat)
padded = B * rhat
h = rhat // 2


def rope_tables(dtype):
    inv_freq = 1.0 / (10000 ** (torch.arange(0, rhat, 2, dtype=torch.float64) / rhat))
    freqs = torch.outer(torch.arange(B, dtype=torch.float64), inv_freq)  # θ_{t,i} = t / 10000^(2i/r̂)
    emb = torch.cat([freqs, freqs], dim=-1)
    return emb.cos().to(dtype), emb.sin().to(dtype)


tables = {dt: rope_tables(dt) for dt in (torch.float32, torch.float64)}


def mora_delta(x, M):
    """decomp(M comp(x)) for the whole batch, eager, as docs/operators.md defines it."""
    xp = torch.cat([x, x[:, : padded - d_in]], dim=1) if padded > d_in else x  # wrap padding (padded < 2·d_in here)
    if args.op == "share":
        c = xp.view(n, B, rhat).sum(dim=1)
        hv = c @ M.t()
        return torch.cat([hv] * (-(-d_out // rhat)), dim=1)[:, :d_out]
    cos, sin = tables[x.dtype]
    xb = xp.view(n, B, rhat)
    rot = torch.cat([-xb[..., h:], xb[..., :h]], dim=-1)  # "rotate half"
    c = xb * cos + rot * sin
    hv = (c @ M.t()).reshape(n, padded)
    return hv[:, :d_out] if d_out <= padded else torch.cat([hv] * (-(-d_out // padded)), dim=1)[:, :d_out]


g = torch.Generator().manual_seed(1)
x = torch.rand(n, d_in, generator=g) * 2 - 1
dy = torch.rand(n, d_out, generator=g) * 2 - 1
M = (torch.rand(rhat, rhat, generator=g) * 2 - 1) * 0.01
dM_acc = torch.zeros(rhat, rhat)  # --via plan: dM accumulates here


def lib_forward(y):
    if args.via == "api":
        return lib.mora_forward(layer, M.data_ptr(), x.data_ptr(), d_in, y.data_ptr(), d_out, n, 1.0)
    return shim.shim_forward(plan, M.data_ptr(), x.data_ptr(), y.data_ptr(), n, 1.0)


def lib_backward(dx):
    if args.via == "api":
        return lib.mora_backward(layer, M.data_ptr(), x.data_ptr(), d_in, dy.data_ptr(), d_out, dx.data_ptr(), d_in,
                                 dM_acc.data_ptr(), n, 1.0)
    return shim.shim_backward(plan, M.data_ptr(), x.data_ptr(), dy.data_ptr(), dx.data_ptr(), dM_acc.data_ptr(), n)




def rel(a, ref):
    return float((a.double() - ref).norm() / ref.norm())


# ---- agreement on identical inputs, against float64 ----
x64, M64 = x.double().requires_grad_(), M.double().requires_grad_()
y64 = mora_delta(x64, M64)
y64.backward(dy.double())
xt, Mt = x.clone().requires_grad_(), M.clone().requires_grad_()
yt = mora_delta(xt, Mt)
yt.backward(dy)
y_lib, dx_lib, dM_lib = torch.zeros(n, d_out), torch.zeros(n, d_in), torch.zeros(rhat, rhat)
ok(lib_forward(y_lib))
ok(lib_backward(dx_lib))
dM_lib.copy_(dM_acc)  # both ways accumulate dM into dM_acc
workers = f"{args.threads} workers" if args.via == "plan" else f"{os.cpu_count()} workers (api)"
print(f"shape: {args.op} d_in={d_in} d_out={d_out} r̂={rhat} (rank {args.rank}) n={n} f32; "
      f"torch {torch.__version__} threads={torch.get_num_threads()}; libmora cpu {workers}, "
      f"OPENBLAS_NUM_THREADS={args.openblas_threads}")
print("relative error vs float64      y          dx         dM")
print(f"  torch eager f32          {rel(yt.detach(), y64.detach()):.2e}   {rel(xt.grad, x64.grad):.2e}   {rel(Mt.grad, M64.grad):.2e}")
print(f"  libmora cpu              {rel(y_lib, y64.detach()):.2e}   {rel(dx_lib, x64.grad):.2e}   {rel(dM_lib, M64.grad):.2e}")
worst = max(rel(y_lib, y64.detach()), rel(dx_lib, x64.grad), rel(dM_lib, M64.grad))
if not worst <= 1e-5:
    sys.exit(f"libmora disagrees with the float64 evaluation: {worst:.3g} > 1e-5")


# ---- timing, interleaved ----
def t_torch_fwd():
    with torch.no_grad():
        mora_delta(x, M)


def t_torch_fwdbwd():
    xr, Mr = x.detach().requires_grad_(), M.detach().requires_grad_()
    mora_delta(xr, Mr).backward(dy)


def t_lib_fwd():
    lib_forward(y_lib)


def t_lib_fwdbwd():
    lib_forward(y_lib)
    lib_backward(dx_lib)


def median_ms(fn):
    fn()  # warm-up
    ts = []
    for _ in range(args.reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    time.sleep(0.05)  # let the other side's idle threads stop spinning before switching
    return 1e3 * statistics.median(ts)


rows = []
for r in range(args.rounds):
    row = {"torch fwd": median_ms(t_torch_fwd), "libmora fwd": median_ms(t_lib_fwd),
           "torch fwd+bwd": median_ms(t_torch_fwdbwd), "libmora fwd+bwd": median_ms(t_lib_fwdbwd)}
    rows.append(row)
    print(f"round {r + 1}: " + "  ".join(f"{k} {v:.2f} ms" for k, v in row.items()) +
          f"  | speed-up fwd {row['torch fwd'] / row['libmora fwd']:.2f}x, fwd+bwd {row['torch fwd+bwd'] / row['libmora fwd+bwd']:.2f}x")
med = {k: statistics.median(rw[k] for rw in rows) for k in rows[0]}
print(f"median of rounds: torch fwd {med['torch fwd']:.2f} ms, libmora fwd {med['libmora fwd']:.2f} ms "
      f"({med['torch fwd'] / med['libmora fwd']:.2f}x); torch fwd+bwd {med['torch fwd+bwd']:.2f} ms, "
      f"libmora fwd+bwd {med['libmora fwd+bwd']:.2f} ms ({med['torch fwd+bwd'] / med['libmora fwd+bwd']:.2f}x)")
