"""An eager PyTorch MoRA written from the math of docs/operators.md (the reference's `_apply_mora`,
with those definitions where they differ: wrap-around padding, uneven group runs, rope angles in
float32 or better). Every operation is a plain differentiable torch op, so autograd gives dx and dM.

    mora_eager(x, M, d_out, op)   x (..., d_in), M (r̂, r̂) -> decomp(M · comp(x)) (..., d_out)

Computed in M's dtype promoted with x's (tests pass float64 for the oracle)."""
from __future__ import annotations

import math

import torch

OPS = {"truncate": 0, "share": 1, "group": 2, "group-tile": 3, "share-interleave": 4, "reshape": 5, "rope": 6}


def rhat_for(d_in: int, d_out: int, r: int, op: str) -> int:
    rhat = int(math.floor(math.sqrt((d_in + d_out) * r) + 0.5))
    if op == "rope" and rhat % 2:
        rhat -= 1
    return rhat


def group_ids(d: int, rhat: int, device=None) -> torch.Tensor:
    """Run id of each of d positions: r̂ runs, the first d mod r̂ of length d//r̂ + 1."""
    q, rem = divmod(d, rhat)
    lengths = [q + 1] * rem + [q] * (rhat - rem)
    return torch.repeat_interleave(torch.arange(rhat, device=device), torch.tensor(lengths, device=device))


def rope_cos_sin(blocks: int, rhat: int, device=None):
    """cos θ, sin θ (blocks, r̂) in the rotate-half layout, θ_{t,i} = t / 10000^(2i/r̂), float64."""
    h = rhat // 2
    i = torch.arange(h, dtype=torch.float64, device=device)
    t = torch.arange(blocks, dtype=torch.float64, device=device)
    theta = torch.outer(t, 1.0 / torch.pow(torch.tensor(10000.0, dtype=torch.float64), 2 * i / rhat))
    theta = torch.cat([theta, theta], dim=-1)
    return theta.cos(), theta.sin()


def comp(x: torch.Tensor, rhat: int, op: str) -> torch.Tensor:
    """x (n, d_in) -> c (n, r̂) or (n, B, r̂) for reshape / rope."""
    n, d_in = x.shape
    blocks = -(-d_in // rhat)
    if op == "truncate":
        return x[:, :rhat]
    if op in ("group", "group-tile"):
        gid = group_ids(d_in, rhat, x.device)
        return torch.zeros(n, rhat, dtype=x.dtype, device=x.device).index_add(1, gid, x)
    # wrap-around padding: x_pad[p] = x[p mod d_in]
    x_pad = x if blocks * rhat == d_in else x[:, torch.arange(blocks * rhat, device=x.device) % d_in]
    v = x_pad.reshape(n, blocks, rhat)
    if op in ("share", "share-interleave"):
        return v.sum(dim=1)
    if op == "reshape":
        return v
    if op == "rope":
        cos, sin = rope_cos_sin(blocks, rhat, x.device)
        cos, sin = cos.to(x.dtype), sin.to(x.dtype)
        h = rhat // 2
        rotated = torch.cat([-v[..., h:], v[..., :h]], dim=-1)
        return v * cos + rotated * sin
    raise ValueError(op)


def decomp(h: torch.Tensor, d_out: int, rhat: int, op: str) -> torch.Tensor:
    """h (n, r̂) or (n, B, r̂) -> y (n, d_out). Tiling by repeat and slicing, as the reference does."""
    n = h.shape[0]
    if op == "truncate":
        return torch.cat([h[:, :min(rhat, d_out)], h.new_zeros(n, max(0, d_out - rhat))], dim=1)
    if op in ("share", "group-tile"):
        if d_out <= rhat:
            return h[:, :d_out]
        return h.repeat(1, -(-d_out // rhat))[:, :d_out]
    if op in ("group", "share-interleave"):
        if d_out % rhat == 0:
            return h.repeat_interleave(d_out // rhat, dim=1)
        return h[:, group_ids(d_out, rhat, h.device)]
    flat = h.reshape(n, -1)
    if flat.shape[1] >= d_out:
        return flat[:, :d_out]
    return flat.repeat(1, -(-d_out // flat.shape[1]))[:, :d_out]


def mora_eager(x: torch.Tensor, M: torch.Tensor, d_out: int, op: str) -> torch.Tensor:
    rhat = M.shape[0]
    lead = x.shape[:-1]
    x2 = x.reshape(-1, x.shape[-1])
    dtype = torch.promote_types(x.dtype, M.dtype)
    c = comp(x2.to(dtype), rhat, op)
    h = c @ M.to(dtype).t()  # M like nn.Linear(r̂, r̂).weight: h = M c
    return decomp(h, d_out, rhat, op).reshape(*lead, d_out)


class EagerMoRALinear(torch.nn.Module):
    """The eager baseline layer: base(x) + mora_eager(x, M) with M cast to the activation dtype (as the
    reference's lora_A does in the model's dtype)."""

    def __init__(self, base: torch.nn.Linear, rhat: int, op: str):
        super().__init__()
        self.base, self.op = base, op
        for p in base.parameters():
            p.requires_grad_(False)
        self.M = torch.nn.Parameter(torch.zeros(rhat, rhat, device=base.weight.device))

    def forward(self, x):
        return self.base(x) + mora_eager(x, self.M.to(x.dtype), self.base.out_features, self.op)
