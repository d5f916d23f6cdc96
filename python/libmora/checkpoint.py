"""Adapter checkpoints in the files libmora's C runtime reads and writes (docs/training.md), which are
the MoRA reference's PEFT layout:

  adapter_model.safetensors  base_model.model.<name>.lora_A.weight and .lora_B.weight = M (F32 r̂ x r̂)
                             per layer; __metadata__: format "pt", libmora.ops (each layer's type id,
                             comma-separated, in model order), libmora.step, libmora.version
  adapter_config.json        exactly the fields of the reference's LoraConfig, with the values its
                             save_pretrained writes for a MoRA adapter (as train/checkpoint.c's
                             write_config; tests/fixtures/mora-reference/lora_config_fields.json)
  optimizer.safetensors      <name>.exp_avg and <name>.exp_avg_sq (only with an Adam/AdamW optimizer);
                             __metadata__: libmora.step

safetensors is written and read here (u64 little-endian header length, JSON header padded with spaces
to a multiple of 8, raw little-endian row-major data).
"""
from __future__ import annotations

import ctypes
import json
import os
import struct
import sys
import tempfile

import torch

from . import _lib
from .layer import MoRALinear, _entry_matches, _replace, adaptable_linears, mora_layers

MODEL_FILE = "adapter_model.safetensors"
CONFIG_FILE = "adapter_config.json"
OPTIMIZER_FILE = "optimizer.safetensors"
_ST_DTYPES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1,
              "U16": 2, "U32": 4, "U64": 8}


class CheckpointError(ValueError):
    pass


def _atomic_write(path: str, data: bytes) -> None:
    folder = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def safetensors_bytes(tensors: dict, metadata: dict | None = None) -> bytes:
    """{name: float32 tensor} (any device) -> the file's bytes."""
    header, chunks, offset = {}, [], 0
    for name, t in tensors.items():
        t = t.detach().to("cpu", torch.float32).contiguous()
        raw = ctypes.string_at(t.data_ptr(), t.numel() * 4) if t.numel() else b""
        if sys.byteorder != "little":
            raise NotImplementedError("safetensors writing on a big-endian host")
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(chunks)


def read_safetensors(path: str):
    """-> ({name: (dtype, shape, bytes, data offset)}, metadata); every structural rule checked, naming the file."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise CheckpointError(f"{path}: {len(data)} bytes: too short for a safetensors header length")
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8:
        raise CheckpointError(f"{path}: header length {n} exceeds the file's {len(data)} bytes")
    try:
        header = json.loads(data[8:8 + n].decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: the header is not JSON ({e})") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: the header is not a JSON object")
    body = data[8 + n:]
    metadata = header.pop("__metadata__", {}) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise CheckpointError(f"{path}: __metadata__ is not an object of strings")
    tensors, spans = {}, []
    for name, t in header.items():
        if not isinstance(t, dict) or not isinstance(t.get("dtype"), str) or not isinstance(t.get("shape"), list) \
                or not isinstance(t.get("data_offsets"), list) or len(t["data_offsets"]) != 2:
            raise CheckpointError(f"{path}: tensor {name!r}: needs dtype, shape and data_offsets [begin, end]")
        size = _ST_DTYPES.get(t["dtype"])
        if size is None:
            raise CheckpointError(f"{path}: tensor {name!r}: unknown dtype {t['dtype']!r}")
        b, e = t["data_offsets"]
        if not (isinstance(b, int) and isinstance(e, int) and 0 <= b <= e <= len(body)):
            raise CheckpointError(f"{path}: tensor {name!r}: data_offsets outside the {len(body)} bytes of data")
        count = 1
        for d in t["shape"]:
            if not isinstance(d, int) or d < 0:
                raise CheckpointError(f"{path}: tensor {name!r}: shape {t['shape']} is not a list of sizes")
            count *= d
        if count * size != e - b:
            raise CheckpointError(f"{path}: tensor {name!r}: {e - b} bytes for shape {t['shape']} of {t['dtype']}")
        tensors[name] = (t["dtype"], tuple(t["shape"]), body[b:e], b)
        if e > b:
            spans.append((b, e, name))
    spans.sort()
    for (b0, e0, n0), (b1, e1, n1) in zip(spans, spans[1:]):
        if b1 < e0:
            raise CheckpointError(f"{path}: tensors {n0!r} and {n1!r} overlap")
    return tensors, metadata


def _f32(path: str, tensors: dict, name: str, rhat: int) -> bytes:
    if name not in tensors:
        raise CheckpointError(f"{path}: tensor {name!r} is missing")
    dtype, shape, raw = tensors[name][:3]
    if dtype != "F32":
        raise CheckpointError(f"{path}: tensor {name!r}: dtype {dtype}, expected F32")
    if shape != (rhat, rhat):
        raise CheckpointError(f"{path}: tensor {name!r}: shape {list(shape)}, the model's layer has r̂ = {rhat}")
    return raw


def _tensor(raw: bytes, rhat: int) -> torch.Tensor:
    return torch.frombuffer(bytearray(raw), dtype=torch.float32).reshape(rhat, rhat)


def _adam_state(optimizer, layers):
    """{name: (exp_avg, exp_avg_sq)} and the step, from a torch Adam/AdamW's state of each M."""
    state, step = {}, 0
    for name, m in layers:
        s = optimizer.state.get(m.M, {})
        if "exp_avg" not in s or "exp_avg_sq" not in s:
            raise CheckpointError(f"optimizer: no exp_avg / exp_avg_sq for {name}.M (an Adam or AdamW that has "
                                  "stepped is needed)")
        state[name] = (s["exp_avg"], s["exp_avg_sq"])
        step = int(s["step"].item() if torch.is_tensor(s["step"]) else s["step"])
    return state, step


def _target_modules(model: torch.nn.Module, layers) -> list:
    """The last component of each layer's name, once each (as the C writer), when those names select
    exactly the adapted layers; else every adapted layer's full path (PEFT matches a list entry equal to
    a module's path), so that the reference adapts the same layers, no more."""
    short = []
    for name, _ in layers:
        module = name.rpartition(".")[2]
        if module not in short:
            short.append(module)
    adapted = {name for name, _ in layers}
    selected = {name for name, _ in adaptable_linears(model) if any(_entry_matches(name, t) for t in short)}
    return short if selected <= adapted else [name for name, _ in layers]


def _reference_rhat(d_in: int, d_out: int, r: int, op: int) -> int:
    """The r̂ the MoRA reference derives from r (its LoraLayer.update_layer)."""
    rhat = int(((d_in + d_out) * r) ** 0.5 + 0.5)
    return rhat // 2 * 2 if op == 6 else rhat


def adapter_config(model: torch.nn.Module, layers=None) -> dict:
    """adapter_config.json's content for the model's MoRA layers (see the module's docstring)."""
    layers = layers if layers is not None else mora_layers(model)
    first = layers[0][1]
    name_or_path = getattr(model, "name_or_path", "")
    return {
        # PeftConfigMixin, PeftConfig
        "auto_mapping": None, "base_model_name_or_path": name_or_path if isinstance(name_or_path, str) else "",
        "revision": None, "peft_type": "LORA", "task_type": "CAUSAL_LM", "inference_mode": True,
        # LoraConfig
        "r": first.r, "target_modules": _target_modules(model, layers), "lora_alpha": first.r, "lora_dropout": 0.0,
        "fan_in_fan_out": False, "bias": "none", "use_rslora": False, "modules_to_save": None,
        "init_lora_weights": True, "layers_to_transform": None, "layers_pattern": None,
        "rank_pattern": {name: m.r for name, m in layers if m.r != first.r}, "alpha_pattern": {},
        "megatron_config": None, "megatron_core": "megatron.core", "loftq_config": {}, "use_dora": False,
        "use_mora": True, "mora_type": first.op,
    }


def _warn_if_reference_differs(layers) -> None:
    """What the MoRA reference would read differently from this adapter (it has one mora_type for all
    layers and derives r̂ from r): said once, as a warning; libmora itself loads the folder as saved."""
    import warnings
    ops = sorted({m.op for _, m in layers})
    problems = []
    if len(ops) > 1:
        problems.append(f"its layers have {len(ops)} operators ({', '.join(_lib.op_text(o) for o in ops)}), the "
                        f"reference's config one (mora_type = {layers[0][1].op} for every layer)")
    odd = [(name, m) for name, m in layers if _reference_rhat(m.in_features, m.out_features, m.r, m.op) != m.rhat]
    if odd:
        name, m = odd[0]
        problems.append(f"{len(odd)} layer(s) have an r̂ the reference does not derive from their r (e.g. {name!r}: "
                        f"r̂ = {m.rhat}, the reference's for r = {m.r} is "
                        f"{_reference_rhat(m.in_features, m.out_features, m.r, m.op)})")
    if problems:
        warnings.warn("save_adapter: the MoRA reference's PeftModel.from_pretrained cannot load this adapter as it "
                      "is: " + "; ".join(problems) + ". libmora (load_adapter, from_pretrained, the C runtime) loads "
                      "it as saved.", UserWarning, stacklevel=3)


def save_adapter(model: torch.nn.Module, folder: str, optimizer: torch.optim.Optimizer | None = None) -> None:
    """Writes the model's MoRA layers to `folder` (created if missing) as libmora's C runtime does
    (mora_adapter_save), in the MoRA reference's PEFT layout; with an Adam/AdamW optimizer,
    optimizer.safetensors too (its moments and step). Warns when the reference would read the adapter
    differently (several operators, or an r̂ given that its r does not give)."""
    layers = mora_layers(model)
    if not layers:
        raise ValueError("save_adapter: the model has no MoRALinear layers (apply_mora first)")
    os.makedirs(folder, exist_ok=True)
    step = 0
    state = None
    if optimizer is not None:
        state, step = _adam_state(optimizer, layers)
    version = _lib.version()
    ops = ",".join(str(m.op) for _, m in layers)
    model_tensors = {}
    for name, m in layers:
        model_tensors[f"base_model.model.{name}.lora_A.weight"] = m.M
        model_tensors[f"base_model.model.{name}.lora_B.weight"] = m.M
    meta = {"format": "pt", "libmora.ops": ops, "libmora.step": str(step), "libmora.version": version}
    _atomic_write(os.path.join(folder, MODEL_FILE), safetensors_bytes(model_tensors, meta))
    if state is not None:
        opt = {}
        for name, (m1, m2) in state.items():
            opt[f"{name}.exp_avg"], opt[f"{name}.exp_avg_sq"] = m1, m2
        _atomic_write(os.path.join(folder, OPTIMIZER_FILE), safetensors_bytes(opt, {"libmora.step": str(step)}))
    config = adapter_config(model, layers)
    _atomic_write(os.path.join(folder, CONFIG_FILE), json.dumps(config, indent=2, sort_keys=True).encode())
    _warn_if_reference_differs(layers)


def _read_config(folder: str) -> dict:
    cpath = os.path.join(folder, CONFIG_FILE)
    try:
        with open(cpath) as f:
            config = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{cpath}: {e}") from None
    if not isinstance(config, dict):
        raise CheckpointError(f"{cpath}: not a JSON object")
    if config.get("use_mora") is not True:
        raise CheckpointError(f"{cpath}: \"use_mora\" is not true: not a MoRA adapter (a plain LoRA is PEFT's)")
    return config


def _file_layers(path: str, tensors: dict) -> list:
    """The names of the layers a model file holds (base_model.model.<name>.lora_A.weight), in the order
    of their data: the order its writer held them in, which libmora.ops follows."""
    prefix, suffix = "base_model.model.", ".lora_A.weight"
    held = [(t[3], name[len(prefix):-len(suffix)]) for name, t in tensors.items()
            if name.startswith(prefix) and name.endswith(suffix)]
    return [name for _, name in sorted(held)]


def _file_types(folder: str, path: str, tensors: dict, meta: dict) -> dict:
    """{layer name: type id} for every layer of the file: from libmora.ops, else the config's mora_type."""
    held = _file_layers(path, tensors)
    if "libmora.ops" in meta:
        try:
            types = [int(v) for v in meta["libmora.ops"].split(",")]
        except ValueError:
            types = []
        if len(types) != len(held) or not all(0 <= t < 7 for t in types):
            raise CheckpointError(f"{path}: __metadata__ libmora.ops={meta['libmora.ops']!r}: expected "
                                  f"{len(held)} type ids (one per lora_A tensor)")
        return dict(zip(held, types))
    config = _read_config(folder)
    t = config.get("mora_type")
    if not isinstance(t, int) or isinstance(t, bool) or not 0 <= t < 7:
        raise CheckpointError(f"{os.path.join(folder, CONFIG_FILE)}: \"mora_type\" is not a type id 0..6")
    return {name: t for name in held}


def load_adapter(model: torch.nn.Module, folder: str, optimizer: torch.optim.Optimizer | None = None,
                 strict: bool = True) -> None:
    """Reads a folder written by save_adapter, mora_adapter_save or the MoRA reference into the model's
    MoRA layers. Checks that each layer's operator is the file's (from libmora.ops, or the config's
    mora_type), every tensor's dtype and shape against the layer's r̂, and that lora_A equals lora_B.
    strict: a MoRA tensor of the file that no layer takes is an error. Changes nothing unless every
    check passed. With an optimizer and an optimizer.safetensors, its Adam/AdamW moments and step are
    set too. (libmora.from_pretrained makes the layers from the folder instead.)"""
    layers = mora_layers(model)
    if not layers:
        raise ValueError("load_adapter: the model has no MoRALinear layers (apply_mora first, or "
                         "libmora.from_pretrained(model, folder), which adapts the model as the folder says)")
    path = os.path.join(folder, MODEL_FILE)
    tensors, meta = read_safetensors(path)
    types = _file_types(folder, path, tensors, meta)
    staged = []
    for name, m in layers:
        na, nb = f"base_model.model.{name}.lora_A.weight", f"base_model.model.{name}.lora_B.weight"
        if name in types and types[name] != m.op:
            raise CheckpointError(f"{path}: layer {name!r}: the adapter's operator is {_lib.op_text(types[name])}, "
                                  f"the model's layer has {_lib.op_text(m.op)}; apply_mora with "
                                  f"op={_lib.OP_NAMES[types[name]]!r}, or libmora.from_pretrained(model, folder)")
        if na in tensors and tensors[na][1] != (m.rhat, m.rhat) and len(tensors[na][1]) == 2:
            got = tensors[na][1][0]
            raise CheckpointError(f"{path}: tensor {na!r}: r̂ = {got} ({list(tensors[na][1])}), the model's layer "
                                  f"has r̂ = {m.rhat} (r = {m.r}, op {_lib.op_text(m.op)}); adapt it with the "
                                  f"adapter's r (adapter_config.json) or rhat={got}, or use libmora.from_pretrained")
        a, b = _f32(path, tensors, na, m.rhat), _f32(path, tensors, nb, m.rhat)
        if a != b:
            raise CheckpointError(f"{path}: tensors {na!r} and {nb!r} differ; MoRA stores the one M twice")
        staged.append(_tensor(a, m.rhat))
    if strict:
        taken = {f"base_model.model.{name}.lora_{ab}.weight" for name, _ in layers for ab in "AB"}
        extra = sorted(set(tensors) - taken)
        if extra:
            raise CheckpointError(f"{path}: tensors no MoRA layer of the model takes: {extra[:5]}"
                                  f"{' ...' if len(extra) > 5 else ''} (strict=False ignores them)")
    opt_staged, step = None, 0
    opath = os.path.join(folder, OPTIMIZER_FILE)
    if optimizer is not None and os.path.exists(opath):
        otensors, ometa = read_safetensors(opath)
        opt_staged = [(_tensor(_f32(opath, otensors, f"{name}.exp_avg", m.rhat), m.rhat),
                       _tensor(_f32(opath, otensors, f"{name}.exp_avg_sq", m.rhat), m.rhat)) for name, m in layers]
        text = meta.get("libmora.step", ometa.get("libmora.step", "0"))
        if not text.isdigit():
            raise CheckpointError(f"{path}: __metadata__ libmora.step={text!r} is not a step count")
        step = int(text)
    for name, m in layers:
        if m.merged:
            raise CheckpointError(f"layer {name!r} is merged: unmerge() before loading")
    with torch.no_grad():
        for (name, m), M in zip(layers, staged):
            m.M.copy_(M.to(m.M.device))
        if opt_staged is not None:
            for (name, m), (m1, m2) in zip(layers, opt_staged):
                s = optimizer.state[m.M]
                s["exp_avg"] = m1.to(m.M.device)
                s["exp_avg_sq"] = m2.to(m.M.device)
                s["step"] = torch.tensor(float(step))


def _rank_for(config: dict, name: str) -> int:
    """A layer's LoRA rank as the reference reads it: rank_pattern (a key equal to the layer's path, or a
    pattern the path ends in after a '.'), else r."""
    import re
    pattern = config.get("rank_pattern") or {}
    for key, value in pattern.items():
        try:
            hit = key == name or re.match(rf".*\.{key}$", name) is not None
        except re.error:
            hit = False
        if hit:
            return value
    return config.get("r", 8)


def from_pretrained(model: torch.nn.Module, folder: str, optimizer: torch.optim.Optimizer | None = None,
                    dtype: torch.dtype | None = None, backend: str = "auto", strict: bool = True) -> torch.nn.Module:
    """PEFT's PeftModel.from_pretrained(model, folder) for MoRA adapters: adapts every layer the folder
    holds (its adapter_model.safetensors' lora_A tensors), each with its own r̂ (the tensor's shape) and
    operator (libmora.ops, else the config's mora_type) and r (rank_pattern, else r), then loads the Ms
    (and, with an optimizer, its moments). Reads folders of save_adapter, mora_adapter_save and the MoRA
    reference's PEFT fork. A held layer that is no nn.Linear of the model is an error. Returns the model."""
    if mora_layers(model):
        raise ValueError("from_pretrained: the model is already adapted by libmora; load_adapter(model, folder) "
                         "loads into its layers, or libmora.unload(model) first")
    path = os.path.join(folder, MODEL_FILE)
    tensors, meta = read_safetensors(path)
    config = _read_config(folder)
    types = _file_types(folder, path, tensors, meta)
    if not types:
        raise CheckpointError(f"{path}: holds no base_model.model.<name>.lora_A.weight tensor: no MoRA layer")
    linears = dict(adaptable_linears(model))
    missing = [name for name in types if name not in linears]
    if missing:
        raise CheckpointError(f"{path}: the adapter holds layers that are no nn.Linear of the model: "
                              f"{missing[:5]}{' ...' if len(missing) > 5 else ''}")
    made = []
    flags = [(p, p.requires_grad) for name in types for p in linears[name].parameters()]  # MoRALinear freezes
    for name in [n for n in linears if n in types]:  # model order
        shape = tensors[f"base_model.model.{name}.lora_A.weight"][1]
        if len(shape) != 2 or shape[0] != shape[1] or shape[0] < 1:
            raise CheckpointError(f"{path}: tensor 'base_model.model.{name}.lora_A.weight': shape {list(shape)} is "
                                  "not a square M")
        r = _rank_for(config, name)
        try:
            layer = MoRALinear(linears[name], r=r, op=types[name], dtype=dtype, backend=backend, rhat=shape[0])
        except (_lib.MoraError, ValueError) as e:
            for p, flag in flags:
                p.requires_grad_(flag)
            raise CheckpointError(f"{path}: layer {name!r} ({linears[name].in_features} -> "
                                  f"{linears[name].out_features}): r̂ = {shape[0]}, op {_lib.op_text(types[name])}, "
                                  f"r = {r}: {e}") from None
        made.append((name, layer))
    for name, layer in made:
        _replace(model, name, layer)
    try:
        load_adapter(model, folder, optimizer=optimizer, strict=strict)
    except BaseException:
        for name, layer in made:  # as it was: plain nn.Linear modules
            _replace(model, name, layer.base)
        for p, flag in flags:
            p.requires_grad_(flag)
        raise
    adapters = {id(layer.M) for _, layer in made}
    for p in model.parameters():  # as apply_mora: only the Ms train
        if id(p) not in adapters:
            p.requires_grad_(False)
    return model
