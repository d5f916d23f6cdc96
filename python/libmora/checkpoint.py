"""Adapter checkpoints in the files libmora's C runtime reads and writes (docs/training.md), which are
the MoRA reference's PEFT layout:

  adapter_model.safetensors  base_model.model.<name>.lora_A.weight and .lora_B.weight = M (F32 r̂ x r̂)
                             per layer; __metadata__: format "pt", libmora.ops (each layer's type id,
                             comma-separated, in model order), libmora.step, libmora.version
  adapter_config.json        the fields train/checkpoint.c's write_config writes
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
from .layer import MoRALinear, mora_layers

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
    """-> ({name: (dtype, shape, bytes)}, metadata); every structural rule checked, naming the file."""
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
        tensors[name] = (t["dtype"], tuple(t["shape"]), body[b:e])
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
    dtype, shape, raw = tensors[name]
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


def save_adapter(model: torch.nn.Module, folder: str, optimizer: torch.optim.Optimizer | None = None) -> None:
    """Writes the model's MoRA layers to `folder` (created if missing) as libmora's C runtime does
    (mora_adapter_save); with an Adam/AdamW optimizer, optimizer.safetensors too (its moments and step)."""
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
    targets = []
    for name, _ in layers:  # the last component of each name, once each (as write_config)
        module = name.rpartition(".")[2]
        if module not in targets:
            targets.append(module)
    first = layers[0][1]
    config = {"peft_type": "LORA", "use_mora": True, "mora_type": first.op, "r": first.r, "lora_alpha": first.r,
              "lora_dropout": 0.0, "target_modules": targets, "bias": "none", "task_type": "CAUSAL_LM",
              "fan_in_fan_out": False, "inference_mode": False, "init_lora_weights": True,
              "base_model_name_or_path": None, "revision": None, "library": f"libmora {version}"}
    _atomic_write(os.path.join(folder, CONFIG_FILE), json.dumps(config, indent=2, sort_keys=True).encode())


def load_adapter(model: torch.nn.Module, folder: str, optimizer: torch.optim.Optimizer | None = None,
                 strict: bool = True) -> None:
    """Reads a folder written by save_adapter, mora_adapter_save or the MoRA reference into the model's
    MoRA layers. Checks every tensor's dtype and shape against the layer's r̂ and that lora_A equals
    lora_B; each layer's type comes from libmora.ops (or the config's mora_type). strict: a MoRA tensor
    of the file that no layer takes is an error. Changes nothing unless every check passed. With an
    optimizer and an optimizer.safetensors, its Adam/AdamW moments and step are set too."""
    layers = mora_layers(model)
    if not layers:
        raise ValueError("load_adapter: the model has no MoRALinear layers (apply_mora first)")
    path = os.path.join(folder, MODEL_FILE)
    tensors, meta = read_safetensors(path)
    staged = []
    for name, m in layers:
        na, nb = f"base_model.model.{name}.lora_A.weight", f"base_model.model.{name}.lora_B.weight"
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
    if "libmora.ops" in meta:
        try:
            types = [int(v) for v in meta["libmora.ops"].split(",")]
        except ValueError:
            types = []
        if len(types) != len(layers) or not all(0 <= t < 7 for t in types):
            raise CheckpointError(f"{path}: __metadata__ libmora.ops={meta['libmora.ops']!r}: expected "
                                  f"{len(layers)} type ids")
    else:
        cpath = os.path.join(folder, CONFIG_FILE)
        try:
            with open(cpath) as f:
                config = json.load(f)
        except (OSError, json.JSONDecodeError) as e:
            raise CheckpointError(f"{cpath}: {e}") from None
        if config.get("use_mora") is not True:
            raise CheckpointError(f"{cpath}: \"use_mora\" is not true: not a MoRA adapter")
        t = config.get("mora_type")
        if not isinstance(t, int) or isinstance(t, bool) or not 0 <= t < 7:
            raise CheckpointError(f"{cpath}: \"mora_type\" is not a type id 0..6")
        types = [t] * len(layers)
    for (name, m), t in zip(layers, types):
        try:
            _lib.shape_check(m.in_features, m.out_features, m.rhat, t)
        except _lib.MoraError as e:
            raise CheckpointError(f"{path}: layer {name!r}: type {t} does not fit its shape ({e.message})") from None
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
    with torch.no_grad():
        for (name, m), M, t in zip(layers, staged, types):
            if m.merged:
                raise CheckpointError(f"layer {name!r} is merged: unmerge() before loading")
        for (name, m), M, t in zip(layers, staged, types):
            m.M.copy_(M.to(m.M.device))
            m.op = t
        if opt_staged is not None:
            for (name, m), (m1, m2) in zip(layers, opt_staged):
                s = optimizer.state[m.M]
                s["exp_avg"] = m1.to(m.M.device)
                s["exp_avg_sq"] = m2.to(m.M.device)
                s["step"] = torch.tensor(float(step))
