"""libmora's plans on torch tensors: contexts per device, a plan cache, and the forward / backward /
merge calls on the tensors' storage, registered as torch.library custom ops (opaque to torch.compile,
with fake implementations) where torch has torch.library.custom_op, else as a torch.autograd.Function.

CPU tensors run on libmora's cpu backend with host pointers (tensor.data_ptr()). CUDA (and ROCm, where
torch.version.hip is set) tensors run on a context made on the tensor's device around torch's primary
context, adopting torch's current stream for every call (mora_context_set_stream): UNTESTED here (no GPU).
"""
from __future__ import annotations

import ctypes
import os
import threading

import torch

from . import _lib
from ._lib import call

_DTYPES = {torch.float32: _lib.MORA_F32, torch.float16: _lib.MORA_F16, torch.bfloat16: _lib.MORA_BF16}
_MAX_TOKENS_LIMIT = (1 << 31) - 1


def mora_dtype(dtype: torch.dtype) -> int:
    try:
        return _DTYPES[dtype]
    except KeyError:
        raise TypeError(f"dtype={dtype}: libmora takes float32, float16 or bfloat16 activations") from None


class _Context:
    """One libmora context (cpu, or one CUDA/HIP device) and the plans made on it."""

    def __init__(self, kind: str, device_index: int):
        self.kind, self.device_index = kind, device_index
        self.lock = threading.RLock()  # set_stream + launch, plan creation and destruction
        self.plans: dict = {}
        handle = ctypes.c_void_p()
        if kind == "cpu":
            call("mora_context_create", b"cpu", 0, ctypes.byref(handle))
        elif kind == "cuda":
            stream = torch.cuda.current_stream(device_index).cuda_stream
            call("mora_context_create_cuda", None, device_index, ctypes.c_void_p(stream), ctypes.byref(handle))
        elif kind == "hip":
            stream = torch.cuda.current_stream(device_index).cuda_stream
            call("mora_context_create_hip", device_index, ctypes.c_void_p(stream), ctypes.byref(handle))
        else:
            raise ValueError(f"backend {kind!r}")
        self.handle = handle

    def adopt_current_stream(self) -> None:
        """Makes the context launch on torch's current stream of its device (GPU contexts)."""
        if self.kind != "cpu":
            stream = torch.cuda.current_stream(self.device_index).cuda_stream
            call("mora_context_set_stream", self.handle, ctypes.c_void_p(stream))

    def plan(self, shape: tuple, dtype: int, n: int, merge_dtype: int | None = None):
        """The cached plan for (shape, dtype) whose max_tokens covers n tokens (a backward needs it; the
        GPU kernels' parameters are chosen for its bucket); a larger n replaces it by one for the next
        power of two >= n. Merge plans are separate (merge only, max_tokens 1)."""
        key = (shape, dtype, merge_dtype)
        entry = self.plans.get(key)
        if entry is not None and (merge_dtype is not None or n <= entry[1]):
            return entry[0]
        want = 1 if merge_dtype is not None else min(_MAX_TOKENS_LIMIT, 1 << max(0, int(n) - 1).bit_length())
        if entry is not None:
            want = max(want, entry[1])
        s = _lib.mora_shape(*shape)
        options = _lib.mora_plan_options()
        if merge_dtype is not None:
            options.calls = _lib.PLAN_MERGE
            options.merge_dtypes = 1 << merge_dtype
        else:
            options.calls = _lib.PLAN_FORWARD | _lib.PLAN_BACKWARD
        handle = ctypes.c_void_p()
        call("mora_plan_create", self.handle, ctypes.byref(s), dtype, want, ctypes.byref(options), ctypes.byref(handle))
        if entry is not None:  # the old plan's kernels may still be queued on the stream
            if self.kind != "cpu":
                call("mora_synchronize", self.handle)
            _lib.lib().mora_plan_destroy(entry[0])
        self.plans[key] = (handle, want)
        return handle


_contexts: dict = {}
_contexts_lock = threading.Lock()


def context_for(device: torch.device, backend: str = "auto") -> _Context:
    if device.type == "cpu":
        kind = "cpu"
    elif device.type == "cuda":
        kind = "hip" if getattr(torch.version, "hip", None) else "cuda"
    else:
        raise TypeError(f"device {device}: libmora runs on CPU tensors (cpu backend) and CUDA / ROCm tensors")
    if backend not in ("auto", kind):
        raise ValueError(f"backend={backend!r}: tensors on {device} run on libmora's {kind!r} backend "
                         f"(host pointers need 'cpu', torch's CUDA memory needs 'cuda' or, on ROCm, 'hip')")
    index = device.index if device.index is not None else (torch.cuda.current_device() if kind != "cpu" else 0)
    key = (kind, index)
    ctx = _contexts.get(key)
    if ctx is None:
        with _contexts_lock:
            ctx = _contexts.get(key)
            if ctx is None:
                ctx = _contexts[key] = _Context(kind, index)
    return ctx


def _rows(t: torch.Tensor, width: int):
    """t (..., width) as n rows: (2-D tensor, row stride). A 2-D view with unit last stride and
    non-overlapping rows is passed as it is (its row stride to libmora); anything else is copied."""
    t2 = t.reshape(-1, width)
    n = t2.shape[0]
    if n > 0 and width > 0 and (t2.stride(1) != 1 or (n > 1 and t2.stride(0) < width)):
        t2 = t2.contiguous()
    ld = t2.stride(0) if n > 1 else width
    return t2, ld


def _check_m(M: torch.Tensor, x: torch.Tensor, rhat: int) -> torch.Tensor:
    if M.dtype != torch.float32 or tuple(M.shape) != (rhat, rhat):
        raise TypeError(f"M: {M.dtype} {tuple(M.shape)}, expected float32 ({rhat}, {rhat})")
    if M.device != x.device:
        raise ValueError(f"M is on {M.device}, x on {x.device}")
    return M if M.is_contiguous() else M.contiguous()


def forward_impl(x, M, y_base, rhat: int, op: int, scale: float, backend: str):
    """y = y_base + scale · decomp(M · comp(x)) (a new tensor)."""
    d_in, d_out = x.shape[-1], y_base.shape[-1]
    if x.dtype != y_base.dtype:
        raise TypeError(f"x is {x.dtype}, y_base {y_base.dtype}: one activation dtype")
    dtype = mora_dtype(x.dtype)
    M = _check_m(M, x, rhat)
    x2, ldx = _rows(x, d_in)
    n = x2.shape[0]
    y = torch.empty((n, d_out), dtype=x.dtype, device=x.device)
    y.copy_(y_base.reshape(n, d_out))
    if n > 0:
        ctx = context_for(x.device, backend)
        with ctx.lock:
            # n too: a plan's parameters are chosen for its max_tokens bucket (GPU kernels)
            plan = ctx.plan((d_in, d_out, rhat, op), dtype, n)
            ctx.adopt_current_stream()
            call("mora_forward", plan, M.data_ptr(), x2.data_ptr(), ldx, y.data_ptr(), d_out, n, scale)
    return y.view(y_base.shape)


def backward_impl(x, M, dy, rhat: int, op: int, scale: float, backend: str, need_dx: bool, need_dM: bool):
    """(dx, dM) of the forward above for the output gradient dy, each into a fresh zero tensor (dM
    float32), or an empty tensor where not needed."""
    d_in, d_out = x.shape[-1], dy.shape[-1]
    dtype = mora_dtype(x.dtype)
    M = _check_m(M, x, rhat)
    if dy.dtype != x.dtype:
        dy = dy.to(x.dtype)
    dx = torch.zeros(x.shape, dtype=x.dtype, device=x.device) if need_dx else x.new_empty((0,))
    dM = torch.zeros((rhat, rhat), dtype=torch.float32, device=x.device) if need_dM else M.new_empty((0,))
    x2, ldx = _rows(x, d_in)
    dy2, lddy = _rows(dy, d_out)
    n = x2.shape[0]
    if n > 0 and (need_dx or need_dM):
        ctx = context_for(x.device, backend)
        with ctx.lock:
            plan = ctx.plan((d_in, d_out, rhat, op), dtype, n)
            ctx.adopt_current_stream()
            call("mora_backward", plan, M.data_ptr(), x2.data_ptr(), ldx, dy2.data_ptr(), lddy,
                 dx.data_ptr() if need_dx else None, d_in, dM.data_ptr() if need_dM else None, n, scale)
    return dx, dM


def merge_impl(W: torch.Tensor, M: torch.Tensor, rhat: int, op: int, sign: float, backend: str = "auto") -> None:
    """W (d_out x d_in, any of the three dtypes) += sign · ΔW, in place, through mora_merge."""
    d_out, d_in = W.shape
    w_dtype = mora_dtype(W.dtype)
    M = _check_m(M, W, rhat)
    target = W if (W.stride(1) == 1 and (d_out == 1 or W.stride(0) >= d_in)) else W.contiguous()
    ldw = target.stride(0) if d_out > 1 else d_in
    ctx = context_for(W.device, backend)
    with ctx.lock:
        plan = ctx.plan((d_in, d_out, rhat, op), w_dtype, 1, merge_dtype=w_dtype)
        ctx.adopt_current_stream()
        call("mora_merge", plan, M.data_ptr(), target.data_ptr(), ldw, w_dtype, float(sign))
    if target is not W:
        W.copy_(target)


# ---- registration: torch.library custom ops where available, else an autograd.Function ----

class _MoRAFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, M, y_base, rhat, op, scale, backend):
        ctx.save_for_backward(x, M)
        ctx.args = (rhat, op, scale, backend)
        return forward_impl(x, M, y_base, rhat, op, scale, backend)

    @staticmethod
    def backward(ctx, dy):
        x, M = ctx.saved_tensors
        need_dx, need_dM = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        dx, dM = backward_impl(x, M, dy, *ctx.args, need_dx, need_dM)
        return (dx if need_dx else None), (dM if need_dM else None), dy, None, None, None, None


CUSTOM_OP = False
if hasattr(torch, "library") and hasattr(torch.library, "custom_op") and hasattr(torch.library, "register_fake") \
        and os.environ.get("LIBMORA_NO_CUSTOM_OP", "") != "1":

    @torch.library.custom_op("libmora::forward", mutates_args=())
    def _forward_op(x: torch.Tensor, M: torch.Tensor, y_base: torch.Tensor, rhat: int, op: int, scale: float,
                    backend: str) -> torch.Tensor:
        return forward_impl(x, M, y_base, rhat, op, scale, backend)

    @_forward_op.register_fake
    def _(x, M, y_base, rhat, op, scale, backend):
        return torch.empty_like(y_base, memory_format=torch.contiguous_format)

    @torch.library.custom_op("libmora::backward", mutates_args=())
    def _backward_op(x: torch.Tensor, M: torch.Tensor, dy: torch.Tensor, rhat: int, op: int, scale: float,
                     backend: str, need_dx: bool, need_dM: bool) -> tuple[torch.Tensor, torch.Tensor]:
        return backward_impl(x, M, dy, rhat, op, scale, backend, need_dx, need_dM)

    @_backward_op.register_fake
    def _(x, M, dy, rhat, op, scale, backend, need_dx, need_dM):
        dx = torch.empty_like(x, memory_format=torch.contiguous_format) if need_dx else x.new_empty((0,))
        dM = M.new_empty((rhat, rhat)) if need_dM else M.new_empty((0,))
        return dx, dM

    def _setup_context(ctx, inputs, output):
        x, M, y_base, rhat, op, scale, backend = inputs
        ctx.save_for_backward(x, M)
        ctx.args = (rhat, op, scale, backend)

    def _backward(ctx, dy):
        x, M = ctx.saved_tensors
        need_dx, need_dM = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        dx, dM = _backward_op(x, M, dy, *ctx.args, need_dx, need_dM)
        return (dx if need_dx else None), (dM if need_dM else None), dy, None, None, None, None

    _forward_op.register_autograd(_backward, setup_context=_setup_context)
    CUSTOM_OP = True


def mora_apply(x, M, y_base, rhat: int, op: int, scale: float = 1.0, backend: str = "auto"):
    """y_base + scale · decomp(M · comp(x)), differentiable in x, M and y_base."""
    if CUSTOM_OP:
        return torch.ops.libmora.forward(x, M, y_base, rhat, op, float(scale), backend)
    return _MoRAFunction.apply(x, M, y_base, rhat, op, float(scale), backend)
