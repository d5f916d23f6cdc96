"""save_adapter / load_adapter against libmora's C runtime (mora_adapter_load / mora_adapter_save through
ctypes): Python saves, a C adapter made with the same layers loads the folder and holds the same M (and
AdamW state); the C side saves and Python loads it back. Plus the loader's refusals."""
from __future__ import annotations

import ctypes
import json
import os

import pytest
import torch

import libmora
from libmora import _lib
from libmora.checkpoint import CONFIG_FILE, MODEL_FILE, OPTIMIZER_FILE, read_safetensors, safetensors_bytes
from conftest import DEVICE

pytestmark = pytest.mark.filterwarnings("ignore:save_adapter. the MoRA reference")  # mixed ops, on purpose

LAYERS = [("model.layers.0.self_attn.q_proj", 64, 64), ("model.layers.0.self_attn.v_proj", 64, 40),
          ("model.layers.0.mlp.up_proj", 64, 150), ("model.layers.1.self_attn.q_proj", 64, 64)]


class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = torch.nn.ModuleList()
        for i in range(2):
            layer = torch.nn.Module()
            layer.self_attn = torch.nn.Module()
            layer.self_attn.q_proj = torch.nn.Linear(64, 64)
            layer.self_attn.v_proj = torch.nn.Linear(64, 40)
            layer.mlp = torch.nn.Module()
            layer.mlp.up_proj = torch.nn.Linear(64, 150)
            self.layers.append(layer)


def make_plain():
    torch.manual_seed(1)
    root = torch.nn.Module()
    root.model = Block()
    return root.to(DEVICE)


def make_model():
    root = make_plain()
    libmora.apply_mora(root, target_modules=["q_proj", "v_proj"], r=4, op="rope")
    libmora.apply_mora(root, target_modules=r"model\.layers\.0\.mlp\.up_proj", r=4, op="share", extend=True)
    # layer 1's v_proj and up_proj are adapted too, so the C adapter below needs every adapted layer
    return root.to(DEVICE)


class CAdapter:
    """A C mora_adapter (cpu backend) with the Python model's MoRA layers, in model order."""

    def __init__(self, model):
        self.lib = _lib.lib()
        self.layers = libmora.mora_layers(model)
        self.ctx = ctypes.c_void_p()
        _lib.call("mora_context_create", b"cpu", 0, ctypes.byref(self.ctx))
        descs = (_lib.mora_adapter_layer_desc * len(self.layers))()
        self._names = [name.encode() for name, _ in self.layers]
        for d, name, (_, m) in zip(descs, self._names, self.layers):
            d.name, d.d_in, d.d_out, d.lora_rank, d.rhat, d.op = name, m.in_features, m.out_features, m.r, 0, m.op
            d.dtype = d.w_dtype = _lib.MORA_F32
        self.handle = ctypes.c_void_p()
        _lib.call("mora_adapter_create", self.ctx, descs, len(self.layers), 16, None, ctypes.byref(self.handle))

    def arena(self, which: int) -> torch.Tensor:
        """The arena as a tensor over the C adapter's host memory (no copy)."""
        buf, count = ctypes.c_void_p(), ctypes.c_int64()
        _lib.call("mora_adapter_arena", self.handle, which, ctypes.byref(buf), ctypes.byref(count))
        return torch.frombuffer((ctypes.c_float * count.value).from_address(buf.value), dtype=torch.float32)

    def layer_view(self, which: int, index: int) -> torch.Tensor:
        info = _lib.mora_adapter_layer_info()
        _lib.call("mora_adapter_layer", self.handle, index, ctypes.byref(info))
        r = info.shape.rhat
        return self.arena(which)[info.offset:info.offset + r * r].view(r, r), info

    def close(self):
        self.lib.mora_adapter_destroy(self.handle)
        self.lib.mora_context_destroy(self.ctx)


def train(model, steps=3):
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    x = torch.randn(8, 64).to(DEVICE)
    for _ in range(steps):
        opt.zero_grad()
        # a loss that moves every M: match a constant target per layer
        loss = sum((m(x) - torch.ones(8, m.out_features, device=DEVICE)).square().mean()
                   for _, m in libmora.mora_layers(model))
        loss.backward()
        opt.step()
    return opt


def test_python_to_c_to_python(tmp_path):
    model = make_model()
    layers = libmora.mora_layers(model)
    assert [n for n, _ in layers] == ["model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.v_proj",
                                      "model.layers.0.mlp.up_proj", "model.layers.1.self_attn.q_proj",
                                      "model.layers.1.self_attn.v_proj"]
    opt = train(model)
    py_dir, c_dir = str(tmp_path / "py"), str(tmp_path / "c")
    libmora.save_adapter(model, py_dir, optimizer=opt)

    c = CAdapter(model)
    try:
        _lib.call("mora_adapter_load", c.handle, py_dir.encode())
        assert c.lib.mora_adapter_steps(c.handle) == 3
        for i, (name, m) in enumerate(layers):
            M_c, info = c.layer_view(_lib.ARENA_PARAMS, i)
            assert info.shape.op == m.op and info.shape.rhat == m.rhat
            assert torch.equal(M_c, m.M.detach().cpu()), name
            st = opt.state[m.M]
            assert torch.equal(c.layer_view(_lib.ARENA_EXP_AVG, i)[0], st["exp_avg"].cpu())
            assert torch.equal(c.layer_view(_lib.ARENA_EXP_AVG_SQ, i)[0], st["exp_avg_sq"].cpu())
        # the C side changes every M and its moments, then saves
        for which in (_lib.ARENA_PARAMS, _lib.ARENA_EXP_AVG, _lib.ARENA_EXP_AVG_SQ):
            for i in range(len(layers)):
                view = c.layer_view(which, i)[0]
                view.mul_(-0.5).add_(0.25)
        expected = [c.layer_view(_lib.ARENA_PARAMS, i)[0].clone() for i in range(len(layers))]
        expected_m = [c.layer_view(_lib.ARENA_EXP_AVG, i)[0].clone() for i in range(len(layers))]
        _lib.call("mora_adapter_save", c.handle, c_dir.encode())
    finally:
        c.close()

    # both sides wrote the same config and the same tensor set; target_modules aside: only layer 0's
    # up_proj is adapted, so Python (which sees the model) writes the full paths, which select exactly
    # the adapted layers, where C (which knows names only) writes the last components
    with open(os.path.join(py_dir, CONFIG_FILE)) as f:
        py_config = json.load(f)
    with open(os.path.join(c_dir, CONFIG_FILE)) as f:
        c_config = json.load(f)
    assert py_config.pop("target_modules") == [n for n, _ in layers]
    assert c_config.pop("target_modules") == ["q_proj", "v_proj", "up_proj"]
    assert py_config == c_config and len(py_config) == 24
    py_t, py_meta = read_safetensors(os.path.join(py_dir, MODEL_FILE))
    c_t, c_meta = read_safetensors(os.path.join(c_dir, MODEL_FILE))
    assert sorted(py_t) == sorted(c_t) and py_meta == c_meta
    assert sorted(read_safetensors(os.path.join(py_dir, OPTIMIZER_FILE))[0]) == \
        sorted(read_safetensors(os.path.join(c_dir, OPTIMIZER_FILE))[0])

    fresh = make_model()
    fresh_opt = torch.optim.AdamW([p for p in fresh.parameters() if p.requires_grad], lr=1e-2)
    libmora.load_adapter(fresh, c_dir, optimizer=fresh_opt)
    for (name, m), M, m1 in zip(libmora.mora_layers(fresh), expected, expected_m):
        assert torch.equal(m.M.detach().cpu(), M), name
        assert torch.equal(fresh_opt.state[m.M]["exp_avg"].cpu(), m1)
        assert fresh_opt.state[m.M]["step"].item() == 3
    # and the loaded optimizer steps (torch's AdamW takes the restored state)
    train(fresh, steps=1)


def test_loader_refusals_change_nothing(tmp_path):
    model = make_model()
    train(model, steps=1)
    folder = str(tmp_path / "a")
    libmora.save_adapter(model, folder)
    assert not os.path.exists(os.path.join(folder, OPTIMIZER_FILE))
    tensors, meta = read_safetensors(os.path.join(folder, MODEL_FILE))

    def as_tensor(raw, shape):
        return torch.frombuffer(bytearray(raw), dtype=torch.float32).reshape(shape)

    other = make_model()
    before = [m.M.detach().clone() for _, m in libmora.mora_layers(other)]
    name_b = "base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight"
    cases = {
        "lora_A and lora_B": {k: (as_tensor(v[2], v[1]) + (k == name_b)) for k, v in tensors.items()},
        "shape": {k: (as_tensor(v[2], v[1])[:-1] if k == name_b else as_tensor(v[2], v[1])) for k, v in tensors.items()},
        "missing": {k: as_tensor(v[2], v[1]) for k, v in tensors.items() if k != name_b},
    }
    for expect, content in cases.items():
        bad = str(tmp_path / expect.replace(" ", "_"))
        os.makedirs(bad)
        with open(os.path.join(bad, MODEL_FILE), "wb") as f:
            f.write(safetensors_bytes(content, meta))
        with pytest.raises(libmora.CheckpointError) as e:
            libmora.load_adapter(other, bad)
        assert "v_proj" in str(e.value)
        # the C loader refuses the same file
        c = CAdapter(other)
        try:
            with pytest.raises(libmora.MoraError) as ce:
                _lib.call("mora_adapter_load", c.handle, bad.encode())
            assert ce.value.status_name == "MORA_E_IO"
        finally:
            c.close()
    for (_, m), M in zip(libmora.mora_layers(other), before):
        assert torch.equal(m.M.detach(), M)
    libmora.load_adapter(other, folder)
    for (_, a), (_, b) in zip(libmora.mora_layers(other), libmora.mora_layers(model)):
        assert torch.equal(a.M, b.M)


def test_reference_style_folder_without_libmora_metadata(tmp_path):
    """A folder as the MoRA reference writes it (no libmora.ops): the config's mora_type is every layer's.
    Loading it into layers of another operator is refused, naming both (nothing changes); from_pretrained
    on the plain model makes the folder's layers, with its operator and each tensor's r̂."""
    model = make_model()
    train(model, steps=1)
    folder = str(tmp_path / "ref")
    libmora.save_adapter(model, folder)
    tensors, _ = read_safetensors(os.path.join(folder, MODEL_FILE))
    content = {k: torch.frombuffer(bytearray(v[2]), dtype=torch.float32).reshape(v[1]) for k, v in tensors.items()}
    with open(os.path.join(folder, MODEL_FILE), "wb") as f:
        f.write(safetensors_bytes(content, {"format": "pt"}))
    config_path = os.path.join(folder, CONFIG_FILE)
    with open(config_path) as f:
        config = json.load(f)
    config["mora_type"] = 1  # share: fits every layer
    with open(config_path, "w") as f:
        json.dump(config, f)
    other = make_model()
    before = [m.M.detach().clone() for _, m in libmora.mora_layers(other)]
    with pytest.raises(libmora.CheckpointError, match=r"operator is share \(1\), the model's layer has rope \(6\)"):
        libmora.load_adapter(other, folder)
    assert all(torch.equal(m.M, M) for (_, m), M in zip(libmora.mora_layers(other), before))
    assert [m.op for _, m in libmora.mora_layers(other)] == [6, 6, 1, 6, 6]

    plain = make_plain()
    libmora.from_pretrained(plain, folder)
    layers = libmora.mora_layers(plain)
    assert [n for n, _ in layers] == [n for n, _ in libmora.mora_layers(model)]
    assert [m.op for _, m in layers] == [1] * 5
    for (_, a), (_, b) in zip(layers, libmora.mora_layers(model)):
        assert a.rhat == b.rhat and torch.equal(a.M, b.M)
    assert [n for n, p in plain.named_parameters() if p.requires_grad] == [f"{n}.M" for n, _ in layers]
    config["use_mora"] = False
    with open(config_path, "w") as f:
        json.dump(config, f)
    with pytest.raises(libmora.CheckpointError, match="use_mora"):
        libmora.load_adapter(other, folder)
