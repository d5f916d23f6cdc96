"""MoRALinear (a frozen nn.Linear plus MoRA's trainable M) and apply_mora (PEFT-style replacement)."""
from __future__ import annotations

import torch
from torch import nn

from . import _lib, _ops


class MoRALinear(nn.Module):
    """y = base(x) + decomp(M · comp(x)), M an r̂ x r̂ float32 nn.Parameter starting at zero.

    base: the nn.Linear to adapt (frozen here: its weight and bias stop requiring grad).
    r: the LoRA rank whose parameter count MoRA keeps; r̂ = floor(sqrt((d_in + d_out)·r) + 0.5),
       made even for rope (mora_shape_make). rhat: give r̂ directly instead (r is then only recorded).
    op: "truncate" "share" "group" "group-tile" "share-interleave" "reshape" "rope", or a type id.
    dtype: the activation dtype the MoRA path runs in (None: the base output's dtype, so autocast works).
    backend: "auto" (the tensors' device decides), "cpu", "cuda" or "hip".
    """

    def __init__(self, base: nn.Linear, r: int = 8, op="rope", dtype: torch.dtype | None = None,
                 backend: str = "auto", rhat: int | None = None):
        super().__init__()
        if not isinstance(base, nn.Linear):
            raise TypeError(f"base: {type(base).__name__}, expected torch.nn.Linear")
        self.base = base
        for p in base.parameters():
            p.requires_grad_(False)
        self.in_features, self.out_features = base.in_features, base.out_features
        self.op = _lib.op_id(op)
        self.r = int(r)
        if rhat is None:
            s = _lib.shape_make(self.in_features, self.out_features, self.r, self.op)
        else:
            s = _lib.shape_check(self.in_features, self.out_features, int(rhat), self.op)
        self.rhat = int(s.rhat)
        if dtype is not None:
            _ops.mora_dtype(dtype)
        self.dtype, self.backend = dtype, backend
        self.scale = 1.0
        self.merged = False
        self.M = nn.Parameter(torch.zeros(self.rhat, self.rhat, dtype=torch.float32, device=base.weight.device))

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, r={self.r}, rhat={self.rhat}, "
                f"op={_lib.OP_NAMES[self.op]}, merged={self.merged}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.base(x)
        if self.merged:
            return y
        dtype = self.dtype or y.dtype
        out = _ops.mora_apply(x.to(dtype), self.M, y.to(dtype), self.rhat, self.op, self.scale, self.backend)
        return out.to(y.dtype)

    @torch.no_grad()
    def merge(self) -> None:
        """base.weight += ΔW (its own dtype and row stride); forward then runs the base alone."""
        if not self.merged:
            _ops.merge_impl(self.base.weight, self.M.detach(), self.rhat, self.op, +self.scale, self.backend)
            self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        """base.weight -= ΔW: back to the frozen base plus the adapter."""
        if self.merged:
            _ops.merge_impl(self.base.weight, self.M.detach(), self.rhat, self.op, -self.scale, self.backend)
            self.merged = False

    def delta_weight(self) -> torch.Tensor:
        """ΔW (d_out x d_in, float32): the merge applied to zeros."""
        W = torch.zeros(self.out_features, self.in_features, dtype=torch.float32, device=self.M.device)
        with torch.no_grad():
            _ops.merge_impl(W, self.M.detach(), self.rhat, self.op, self.scale, self.backend)
        return W


def _matches(name: str, targets) -> bool:
    if isinstance(targets, str):  # PEFT: a string is a full-match regular expression
        import re
        return re.fullmatch(targets, name) is not None
    return any(name == t or name.endswith("." + t) for t in targets)


def apply_mora(model: nn.Module, target_modules=("q_proj", "v_proj"), r: int = 8, op="rope",
               dtype: torch.dtype | None = None, backend: str = "auto") -> nn.Module:
    """Replaces every nn.Linear whose module path matches target_modules by a MoRALinear around it, as
    PEFT does: a list matches a name equal to an entry or ending in "." + entry; a string is a regular
    expression over the whole path. Every other parameter of the model is frozen. Returns the model."""
    found = [(name, module) for name, module in model.named_modules()
             if isinstance(module, nn.Linear) and not isinstance(module, MoRALinear) and _matches(name, target_modules)]
    if not found:
        raise ValueError(f"target_modules={target_modules!r}: no nn.Linear of the model matches")
    adapters = {id(m.M) for _, m in mora_layers(model)}
    for p in model.parameters():  # everything but the adapters (of this call and earlier ones) is frozen
        if id(p) not in adapters:
            p.requires_grad_(False)
    for name, module in found:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, MoRALinear(module, r=r, op=op, dtype=dtype, backend=backend))
    return model


def mora_layers(model: nn.Module):
    """[(module path, MoRALinear)] in model order."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, MoRALinear)]
