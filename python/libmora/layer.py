"""MoRALinear (a frozen nn.Linear plus MoRA's trainable M), apply_mora (PEFT-style replacement by module
name), and the way back: merge_and_unload / unload (plain nn.Linear modules again)."""
from __future__ import annotations

import operator
import re
import warnings

import torch
from torch import nn

from . import _lib, _ops


def positive_int(name: str, value) -> int:
    """value as an int >= 1, or a ValueError naming the argument: no float (2.5, or 2.0), no bool."""
    if isinstance(value, bool):
        raise ValueError(f"{name}={value!r}: must be a positive integer (a bool is not a rank)")
    try:
        v = operator.index(value)  # ints and integer-like objects (numpy ints); never a float
    except TypeError:
        raise ValueError(f"{name}={value!r}: must be a positive integer, not {type(value).__name__}") from None
    if v < 1:
        raise ValueError(f"{name}={v}: must be a positive integer (>= 1)")
    return v


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
        self.r = positive_int("r", r)
        if rhat is None:
            s = _lib.shape_make(self.in_features, self.out_features, self.r, self.op)
        else:
            s = _lib.shape_check(self.in_features, self.out_features, positive_int("rhat", rhat), self.op)
        self.rhat = int(s.rhat)
        smaller = min(self.in_features, self.out_features)
        if self.rhat > smaller:
            full = self.in_features * self.out_features
            more = (f"M's {self.rhat ** 2} parameters are more than the full {self.out_features} x "
                    f"{self.in_features} matrix's {full}" if self.rhat ** 2 > full else
                    f"M has {self.rhat ** 2} parameters (the full matrix {full})")
            warnings.warn(f"MoRALinear({self.in_features} -> {self.out_features}, r={self.r}, op="
                          f"{_lib.OP_NAMES[self.op]}): r̂ = {self.rhat} exceeds min(d_in, d_out) = {smaller}, the "
                          f"largest rank ΔW can have; {more}.",
                          UserWarning, stacklevel=2)
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

    @torch.no_grad()
    def merge_and_unload(self) -> nn.Linear:
        """The base nn.Linear with ΔW merged into its weight (merged now if it was not): the layer to put
        back in place of this one (libmora.merge_and_unload does so for a whole model)."""
        self.merge()
        return self.base

    @torch.no_grad()
    def unload(self) -> nn.Linear:
        """The base nn.Linear with its original weight W0 (unmerged first if it was merged)."""
        self.unmerge()
        return self.base

    def delta_weight(self) -> torch.Tensor:
        """ΔW (d_out x d_in, float32): the merge applied to zeros."""
        W = torch.zeros(self.out_features, self.in_features, dtype=torch.float32, device=self.M.device)
        with torch.no_grad():
            _ops.merge_impl(W, self.M.detach(), self.rhat, self.op, self.scale, self.backend)
        return W


def _matches(name: str, targets) -> bool:
    if isinstance(targets, str):  # PEFT: a string is a full-match regular expression
        return re.fullmatch(targets, name) is not None
    return any(name == t or name.endswith("." + t) for t in targets)


def _entry_matches(name: str, entry: str) -> bool:
    return name == entry or name.endswith("." + entry)


def adaptable_linears(model: nn.Module):
    """[(module path, nn.Linear)] in model order: the Linear modules apply_mora may adapt (not the
    frozen bases inside MoRALinear layers)."""
    inner = {id(m.base) for _, m in mora_layers(model)}
    return [(name, module) for name, module in model.named_modules()
            if isinstance(module, nn.Linear) and id(module) not in inner]


def select_targets(model: nn.Module, target_modules, what: str = "target_modules"):
    """The (name, nn.Linear) pairs target_modules selects, as PEFT selects them; an entry of a list that
    selects nothing is an error naming every such entry (PEFT itself only errors when none match)."""
    if isinstance(target_modules, str):
        targets = target_modules
    else:
        try:
            targets = list(target_modules)
        except TypeError:
            raise TypeError(f"{what}={target_modules!r}: a list of module names or a regular expression") from None
        if not targets or not all(isinstance(t, str) and t for t in targets):
            raise ValueError(f"{what}={target_modules!r}: a non-empty list of module names (or a regular expression)")
    linears = adaptable_linears(model)
    found = [(name, module) for name, module in linears if _matches(name, targets)]
    if isinstance(targets, str):
        if not found:
            raise ValueError(f"{what}={targets!r}: the regular expression matches no nn.Linear of the model "
                             f"(it must match the whole module path, e.g. {linears[0][0] if linears else 'none'!r})")
        return found
    missing = [t for t in targets if not any(_entry_matches(name, t) for name, _ in linears)]
    adapted = [t for t in missing if any(_entry_matches(name, t) for name, _ in mora_layers(model))]
    if adapted:
        raise ValueError(f"{what}: {', '.join(repr(t) for t in adapted)}: the model's layers of that name are "
                         f"MoRA layers already (libmora.unload(model) takes them out)")
    if missing:
        names = [name for name, _ in linears]
        short = sorted({n.rpartition(".")[2] for n in names})
        raise ValueError(f"{what}: {', '.join(repr(t) for t in missing)} match{'es' if len(missing) == 1 else ''} no "
                         f"nn.Linear of the model (an entry matches a module path equal to it or ending in "
                         f"'.' + it; the model's nn.Linear names: {', '.join(short[:20])}{' ...' if len(short) > 20 else ''})")
    return found


def apply_mora(model: nn.Module, target_modules=("q_proj", "v_proj"), r: int = 8, op="rope",
               dtype: torch.dtype | None = None, backend: str = "auto", extend: bool = False) -> nn.Module:
    """Replaces every nn.Linear whose module path matches target_modules by a MoRALinear around it, as
    PEFT does: a list matches a name equal to an entry or ending in "." + entry; a string is a regular
    expression over the whole path. Every other parameter of the model is frozen. Returns the model.

    Every entry of a list must match at least one nn.Linear (else a ValueError names those that do
    not). A model that already has MoRA layers is refused, unless extend=True adds more layers to it
    (e.g. with another op); libmora.unload(model) takes the adapters out again."""
    r = positive_int("r", r)
    op = _lib.op_id(op)
    existing = mora_layers(model)
    if existing and not extend:
        raise ValueError(f"apply_mora: the model is already adapted by libmora ({len(existing)} MoRA layer"
                         f"{'s' if len(existing) > 1 else ''}, e.g. {existing[0][0]!r}); pass extend=True to adapt "
                         f"more of its layers, or libmora.unload(model) / libmora.merge_and_unload(model) first")
    found = select_targets(model, target_modules)
    flags = [(p, p.requires_grad) for p in model.parameters()]
    try:  # every layer made before any is put in: a layer that cannot be made changes nothing
        made = [(name, MoRALinear(module, r=r, op=op, dtype=dtype, backend=backend)) for name, module in found]
    except BaseException:
        for p, flag in flags:  # MoRALinear froze the bases it was given
            p.requires_grad_(flag)
        raise
    adapters = {id(m.M) for _, m in existing}
    for p in model.parameters():  # everything but the adapters (of this call and earlier ones) is frozen
        if id(p) not in adapters:
            p.requires_grad_(False)
    for name, layer in made:
        _replace(model, name, layer)
    return model


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


def mora_layers(model: nn.Module):
    """[(module path, MoRALinear)] in model order."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, MoRALinear)]


def merge_and_unload(model: nn.Module) -> nn.Module:
    """Merges every MoRA layer's ΔW into its base weight and puts the base nn.Linear back in its place
    (PEFT's merge_and_unload): the model is then a plain model again — its state_dict has the original
    keys (q_proj.weight, not q_proj.base.weight), so model.save_pretrained / from_pretrained round-trip.
    The Ms are gone; save_adapter first to keep them. Returns the model."""
    for name, m in mora_layers(model):
        _replace(model, name, m.merge_and_unload())
    return model


def unload(model: nn.Module) -> nn.Module:
    """Puts every MoRA layer's base nn.Linear back with its original weight W0 (unmerged first where
    merged), dropping the adapters (PEFT's unload). Returns the model."""
    for name, m in mora_layers(model):
        _replace(model, name, m.unload())
    return model


def trainable_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable parameter count, all parameters), each parameter counted once."""
    seen, trainable, total = set(), 0, 0
    for p in model.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        total += p.numel()
        trainable += p.numel() if p.requires_grad else 0
    return trainable, total


def print_trainable_parameters(model: nn.Module) -> None:
    """Prints "trainable params: T || all params: A || trainable%: P", as PEFT's does."""
    trainable, total = trainable_parameters(model)
    print(f"trainable params: {trainable:,d} || all params: {total:,d} || trainable%: "
          f"{100 * trainable / total if total else 0:.4f}")
