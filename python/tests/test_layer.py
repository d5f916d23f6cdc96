"""MoRALinear's forward, dx and dM against the float64 eager reference (mora_eager.py, written from
docs/operators.md), for every operator, dtype and awkward shape; strided inputs; finite differences; merge."""
from __future__ import annotations

import warnings

import pytest
import torch

import libmora
from libmora import _ops
from conftest import DEVICE, TOL, note, rel_err, record
from mora_eager import OPS, mora_eager, rhat_for

pytestmark = pytest.mark.filterwarnings("ignore:MoRALinear.*exceeds min")  # d_in < r̂, on purpose

# (d_in, d_out, r or None, r̂ or None): non-divisible by r̂, d_in < r̂, d_out != d_in, both ways
SHAPES = [(64, 48, 4, None), (20, 96, None, 32), (96, 40, 3, None), (50, 130, None, 14), (33, 33, 2, None)]
DTYPES = [torch.float32, torch.bfloat16, torch.float16]


def fits(op: str, d_in: int, d_out: int, rhat: int) -> bool:
    return {"truncate": rhat <= min(d_in, d_out), "group": rhat <= min(d_in, d_out), "group-tile": rhat <= d_in,
            "share-interleave": rhat <= d_out, "rope": rhat % 2 == 0}.get(op, True)


def cases():
    for d_in, d_out, r, rhat in SHAPES:
        for op in OPS:
            rh = rhat if rhat is not None else rhat_for(d_in, d_out, r, op)
            if fits(op, d_in, d_out, rh):
                yield pytest.param(d_in, d_out, rh, op, id=f"{op}-{d_in}x{d_out}-rhat{rh}")


def random_m(rhat: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(rhat, rhat, generator=g) / rhat ** 0.5).to(DEVICE)


def run_libmora(x, M, d_out, rhat, op, dy):
    """y, dx, dM from the custom op (y_base = 0)."""
    x = x.detach().clone().requires_grad_(True)
    M = M.detach().clone().requires_grad_(True)
    y_base = torch.zeros(*x.shape[:-1], d_out, dtype=x.dtype, device=x.device)
    y = libmora.mora_apply(x, M, y_base, rhat, OPS[op])
    dx, dM = torch.autograd.grad(y, (x, M), dy)
    return y, dx, dM


def run_reference(x, M, d_out, op, dy):
    x64 = x.detach().double().requires_grad_(True)
    M64 = M.detach().double().requires_grad_(True)
    y = mora_eager(x64, M64, d_out, op)
    dx, dM = torch.autograd.grad(y, (x64, M64), dy.double())
    return y, dx, dM


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: str(d).replace("torch.", ""))
@pytest.mark.parametrize("d_in,d_out,rhat,op", list(cases()))
def test_against_eager_reference(d_in, d_out, rhat, op, dtype):
    g = torch.Generator().manual_seed(d_in * 1000 + d_out)
    n = 37
    x = torch.randn(n, d_in, generator=g).to(DEVICE, dtype)
    dy = torch.randn(n, d_out, generator=g).to(DEVICE, dtype)
    M = random_m(rhat)
    y, dx, dM = run_libmora(x, M, d_out, rhat, op, dy)
    ry, rdx, rdM = run_reference(x, M, d_out, op, dy)
    assert y.dtype == dtype and dx.dtype == dtype and dM.dtype == torch.float32
    for what, out, ref in (("forward", y, ry), ("dx", dx, rdx), ("dM", dM, rdM)):
        err = rel_err(out, ref)
        record(what, dtype, err)
        assert err <= TOL[dtype], f"{what}: relative error {err:.3e} > {TOL[dtype]:.0e}"


@pytest.mark.parametrize("layout", ["row-slice", "transposed", "3d-permuted", "expanded-dy"])
def test_strided_inputs(layout):
    d_in, d_out, op = 72, 56, "rope"
    rhat = rhat_for(d_in, d_out, 4, op)
    g = torch.Generator().manual_seed(3)
    M = random_m(rhat, 1)
    if layout == "row-slice":  # a 2-D view with unit last stride: passed with its row stride (no copy)
        x = torch.randn(29, d_in + 11, generator=g).to(DEVICE)[:, 5:5 + d_in]
        assert x.stride() == (d_in + 11, 1)
    elif layout == "transposed":  # last stride != 1: made contiguous
        x = torch.randn(d_in, 29, generator=g).to(DEVICE).t()
    elif layout == "3d-permuted":
        x = torch.randn(7, 3, d_in, generator=g).to(DEVICE).permute(1, 0, 2)
    else:
        x = torch.randn(29, d_in, generator=g).to(DEVICE)
    dy = torch.randn(*x.shape[:-1], d_out, generator=g).to(DEVICE)
    if layout == "expanded-dy":  # rows 0 apart: must be copied, not passed with ld = 0
        dy = torch.randn(1, d_out, generator=g).to(DEVICE).expand(29, d_out)
    y, dx, dM = run_libmora(x, M, d_out, rhat, op, dy)
    ry, rdx, rdM = run_reference(x, M, d_out, op, dy)
    assert y.shape == ry.shape and dx.shape == x.shape
    for what, out, ref in (("forward", y, ry), ("dx", dx, rdx), ("dM", dM, rdM)):
        err = rel_err(out, ref)
        record(what, torch.float32, err)
        assert err <= 1e-5, f"{layout} {what}: {err:.3e}"


@pytest.mark.parametrize("op", list(OPS))
def test_finite_differences(op):
    """torch.autograd.gradcheck on a tiny float32 layer (the map is bilinear, so central differences
    are exact up to float32 rounding: eps 1e-2, tolerance 1e-2)."""
    d_in, d_out, rhat = 10, 9, 4
    g = torch.Generator().manual_seed(5)
    x = torch.randn(3, d_in, generator=g).to(DEVICE).requires_grad_(True)
    M = random_m(rhat, 2).requires_grad_(True)
    yb = torch.randn(3, d_out, generator=g).to(DEVICE).requires_grad_(True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert torch.autograd.gradcheck(lambda a, b, c: libmora.mora_apply(a, b, c, rhat, OPS[op]), (x, M, yb),
                                        eps=1e-2, atol=1e-2, rtol=1e-2)


def test_function_fallback_equals_custom_op():
    """The torch.autograd.Function path (torch without torch.library.custom_op) gives the same bits."""
    d_in, d_out, rhat = 40, 30, 12
    x = torch.randn(9, d_in).to(DEVICE).requires_grad_(True)
    M = random_m(rhat).requires_grad_(True)
    yb = torch.randn(9, d_out).to(DEVICE)
    a = libmora.mora_apply(x, M, yb, rhat, 6)
    b = _ops._MoRAFunction.apply(x, M, yb, rhat, 6, 1.0, "auto")
    assert torch.equal(a, b)
    ga = torch.autograd.grad(a.square().sum(), (x, M))
    gb = torch.autograd.grad(b.square().sum(), (x, M))
    assert all(torch.equal(p, q) for p, q in zip(ga, gb))


@pytest.mark.skipif(not libmora.CUSTOM_OP, reason="this torch has no torch.library.custom_op")
def test_custom_op_opcheck_and_compile():
    """torch.library.opcheck (schema, fake tensors, autograd registration) and torch.compile with
    fullgraph=True (no graph break: the op is opaque) giving the eager result."""
    d_in, d_out, rhat = 24, 20, 8
    x = torch.randn(5, d_in).to(DEVICE).requires_grad_(True)
    M = random_m(rhat).requires_grad_(True)
    yb = torch.randn(5, d_out).to(DEVICE).requires_grad_(True)
    torch.library.opcheck(torch.ops.libmora.forward.default, (x, M, yb, rhat, 6, 1.0, "auto"))
    layer = libmora.MoRALinear(torch.nn.Linear(d_in, d_out), rhat=rhat, op="rope").to(DEVICE)
    with torch.no_grad():
        layer.M.copy_(M)
    compiled = torch.compile(layer, backend="aot_eager", fullgraph=True)
    xi = x.detach().requires_grad_(True)
    out = compiled(xi)
    out.square().sum().backward()
    ref = layer(x.detach())
    assert torch.allclose(out, ref, rtol=1e-6, atol=1e-6)
    assert layer.M.grad is not None and xi.grad is not None


@pytest.mark.parametrize("w_dtype", DTYPES, ids=lambda d: str(d).replace("torch.", ""))
@pytest.mark.parametrize("op,d_in,d_out,rhat", [("rope", 52, 44, None), ("share", 52, 44, None), ("group", 52, 44, None),
                                               ("reshape", 52, 44, None), ("rope", 20, 96, 32), ("share", 20, 96, 32)])
def test_merge_equals_forward(op, d_in, d_out, rhat, w_dtype):
    """merge(): base.weight += ΔW, so the merged base alone gives base(x) + mora(x); unmerge() restores.
    (rope with d_in < r̂ is where the reference's merge overwrites instead of adding: ours must add.)"""
    base = torch.nn.Linear(d_in, d_out).to(DEVICE, w_dtype)
    layer = libmora.MoRALinear(base, r=4, op=op, rhat=rhat)
    with torch.no_grad():
        layer.M.copy_(random_m(layer.rhat, 4))
    W0 = base.weight.detach().clone()
    x = torch.randn(11, d_in).to(DEVICE, w_dtype)
    with torch.no_grad():
        y_adapted = layer(x)
        layer.merge()
        y_merged = layer(x)
    # ΔW from the float64 reference, pushed through the identity: ΔW[:, c] = forward(e_c)
    dW = mora_eager(torch.eye(d_in, dtype=torch.float64), layer.M.detach().double().cpu(), d_out, op).t()
    err_w = rel_err(base.weight.detach().double().cpu() - W0.double().cpu(), dW)
    err_y = rel_err(y_merged, y_adapted)
    record("merge ΔW", w_dtype, err_w)
    record("merged y", w_dtype, err_y)
    if w_dtype == torch.float32:
        assert err_w <= 1e-5 and err_y <= 1e-5
    else:  # W0 + ΔW rounded to the weight's dtype: compare with W0's own rounding scale
        tol = {torch.bfloat16: 2 ** -8, torch.float16: 2 ** -11}[w_dtype]
        full = rel_err(base.weight.detach(), W0.double().cpu() + dW)
        assert full <= tol and err_y <= 4 * tol
    with torch.no_grad():
        layer.unmerge()
    back = rel_err(base.weight.detach(), W0)
    if w_dtype == torch.float32:
        assert back <= 1e-6
    else:  # two roundings of W0 + ΔW to the weight's dtype
        growth = 1 + dW.norm().item() / W0.double().norm().item()
        assert back <= 2 * tol * growth, (back, growth)


def test_apply_mora_and_training_loss_falls():
    """apply_mora by module name; 30 AdamW steps of a small two-layer model learning a teacher's adapter."""
    torch.manual_seed(0)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.up_proj = torch.nn.Linear(48, 80)
            self.down_proj = torch.nn.Linear(80, 24)
            self.head = torch.nn.Linear(24, 24)

        def forward(self, x):
            return self.down_proj(torch.nn.functional.gelu(self.up_proj(x)))

    student = Net().to(DEVICE)
    teacher = Net().to(DEVICE)
    teacher.load_state_dict(student.state_dict())
    libmora.apply_mora(student, target_modules=["up_proj", "down_proj"], r=4, op="rope")
    libmora.apply_mora(teacher, target_modules=["up_proj", "down_proj"], r=4, op="rope")
    names = [n for n, _ in libmora.mora_layers(student)]
    assert names == ["up_proj", "down_proj"] and isinstance(student.head, torch.nn.Linear)
    trainable = [n for n, p in student.named_parameters() if p.requires_grad]
    assert trainable == ["up_proj.M", "down_proj.M"]
    with torch.no_grad():
        for _, m in libmora.mora_layers(teacher):
            m.M.normal_(0, 0.3 / m.rhat ** 0.5)
    x = torch.randn(64, 48).to(DEVICE)
    with torch.no_grad():
        target = teacher(x)
    opt = torch.optim.AdamW([p for p in student.parameters() if p.requires_grad], lr=1e-2)
    losses = []
    for _ in range(30):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(student(x), target)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    note(f"training: loss {losses[0]:.4g} -> {losses[-1]:.4g} in 30 AdamW steps")
    assert losses[-1] < 0.2 * losses[0], losses


def test_plan_grows_with_tokens():
    layer = libmora.MoRALinear(torch.nn.Linear(30, 30), r=2, op="share").to(DEVICE)
    with torch.no_grad():
        layer.M.copy_(random_m(layer.rhat))
    for n in (3, 200, 5, 1000):
        x = torch.randn(n, 30).to(DEVICE).requires_grad_(True)
        layer(x).sum().backward()
        ref = mora_eager(x.detach().double(), layer.M.detach().double(), 30, "share")
        assert x.grad.shape == (n, 30) and torch.isfinite(ref).all()
    plans = [v for ctx in _ops._contexts.values() for k, v in ctx.plans.items() if k[0] == (30, 30, layer.rhat, 1)]
    assert plans and max(p[1] for p in plans) >= 1000


def test_errors_carry_status_and_message():
    with pytest.raises(libmora.MoraError) as e:
        libmora.MoRALinear(torch.nn.Linear(8, 8), rhat=12, op="group")
    assert e.value.status_name == "MORA_E_CONSTRAINT" and "12" in e.value.message
    with pytest.raises(TypeError):
        libmora.mora_apply(torch.randn(2, 8, dtype=torch.float64), torch.zeros(4, 4), torch.zeros(2, 8,
                           dtype=torch.float64), 4, 1)


def test_library_not_found_lists_the_paths(monkeypatch):
    from libmora import _lib
    monkeypatch.delenv("LIBMORA_LIBRARY", raising=False)  # set, it alone would be tried (test_packaging)
    monkeypatch.setattr(_lib, "_candidates", lambda: ["/nonexistent/libmora.so", "/also/not/here/libmora.so.0"])
    monkeypatch.setattr(_lib, "_lib", None)
    with pytest.raises(libmora.LibraryNotFound) as e:
        _lib.lib()
    assert "/nonexistent/libmora.so" in str(e.value) and "/also/not/here/libmora.so.0" in str(e.value)
    assert "LIBMORA_LIBRARY" in str(e.value)


def test_autocast_and_3d_batch():
    """Under torch.autocast (bf16) the MoRA path runs at the base output's dtype; (batch, seq, d) inputs."""
    if DEVICE.type not in ("cpu", "cuda"):
        raise AssertionError(f"unexpected test device {DEVICE}")
    base = torch.nn.Linear(64, 48).to(DEVICE)
    layer = libmora.MoRALinear(base, r=4, op="rope")
    with torch.no_grad():
        layer.M.copy_(random_m(layer.rhat, 9))
    x = torch.randn(2, 5, 64).to(DEVICE).requires_grad_(True)
    with torch.autocast(DEVICE.type, dtype=torch.bfloat16):
        y = layer(x)
    assert y.dtype == torch.bfloat16 and y.shape == (2, 5, 48)
    xb = x.detach().to(torch.bfloat16)
    ref = base.double()(xb.double()) + mora_eager(xb.double(), layer.M.detach().double(), 48, "rope")
    base.float()
    err = rel_err(y, ref)
    assert err <= 1e-2, err
    y.float().sum().backward()
    assert x.grad.dtype == torch.float32 and layer.M.grad.dtype == torch.float32
