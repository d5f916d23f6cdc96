"""A PEFT user's workflow on libmora: adapters the MoRA reference's PEFT fork loads (its LoraConfig's
fields, held as data in tests/fixtures/mora-reference/lora_config_fields.json, read from its source at
the commit named there), a folder the reference wrote (the fixture) loaded here, from_pretrained,
merge_and_unload / unload, and the refusals that replace silent surprises."""
from __future__ import annotations

import ctypes
import json
import os
import warnings

import pytest
import torch

import libmora
from libmora import _lib
from libmora.checkpoint import CONFIG_FILE, MODEL_FILE, read_safetensors
from conftest import DEVICE
from mora_eager import mora_eager

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "fixtures", "mora-reference")
with open(os.path.join(FIXTURES, "lora_config_fields.json")) as _f:
    SPEC = json.load(_f)
FIELDS = SPEC["fields"]
REFERENCE_ADAPTER = os.path.join(FIXTURES, "adapter")

# ---- the reference's LoraConfig(**json), as its dataclasses take it -----------------------------
# One checker per annotation written in its source (lora_config_fields.json "type"); an annotation
# without a checker here fails the test, so a changed list cannot pass unchecked.
_is_str_list = lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v)  # noqa: E731
_is_int = lambda v: isinstance(v, int) and not isinstance(v, bool)  # noqa: E731
CHECKERS = {
    "Optional[dict]": lambda v: v is None or isinstance(v, dict),
    "Optional[str]": lambda v: v is None or isinstance(v, str),
    "Optional[Union[str, PeftType]]": lambda v: v is None or v in ("PROMPT_TUNING", "MULTITASK_PROMPT_TUNING",
                                                                    "P_TUNING", "PREFIX_TUNING", "LORA", "ADALORA",
                                                                    "ADAPTION_PROMPT", "IA3", "LOHA", "LOKR", "OFT",
                                                                    "POLY"),
    "Optional[Union[str, TaskType]]": lambda v: v is None or v in ("SEQ_CLS", "SEQ_2_SEQ_LM", "CAUSAL_LM",
                                                                    "TOKEN_CLS", "QUESTION_ANS", "FEATURE_EXTRACTION"),
    "bool": lambda v: isinstance(v, bool),
    "int": _is_int,
    "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "Optional[Union[list[str], str]]": lambda v: v is None or isinstance(v, str) or _is_str_list(v),
    'Literal["none", "all", "lora_only"]': lambda v: v in ("none", "all", "lora_only"),
    "Optional[list[str]]": lambda v: v is None or _is_str_list(v),
    'bool | Literal["gaussian", "loftq"]': lambda v: isinstance(v, bool) or v in ("gaussian", "loftq"),
    "Optional[Union[list[int], int]]": lambda v: v is None or _is_int(v) or (isinstance(v, list) and all(map(_is_int, v))),
    "Union[LoftQConfig, dict]": lambda v: isinstance(v, dict),
}


def reference_accepts(config: dict) -> None:
    """Raises what LoraConfig(**config) of the reference would (an unexpected keyword is its TypeError),
    or an AssertionError for a value its annotation or __post_init__ would not take."""
    unexpected = sorted(set(config) - set(FIELDS))
    if unexpected:
        raise TypeError(f"LoraConfig.__init__() got an unexpected keyword argument {unexpected[0]!r}")
    for key, value in config.items():
        check = CHECKERS[FIELDS[key]["type"]]
        assert check(value), f"{key}={value!r} is not a {FIELDS[key]['type']}"
    # its __post_init__
    if isinstance(config.get("target_modules"), str):
        assert config.get("layers_to_transform") is None and config.get("layers_pattern") is None
    if config.get("use_dora"):
        assert not config.get("megatron_config") and config.get("init_lora_weights") != "loftq"
    if config.get("init_lora_weights") == "loftq":
        assert config.get("loftq_config")


def check_reference_config(config: dict) -> None:
    """Exactly the reference's fields, accepted by its LoraConfig, the values it writes for a MoRA adapter."""
    assert sorted(config) == sorted(FIELDS)
    reference_accepts(config)
    for key, field in FIELDS.items():
        if key not in SPEC["adapter_dependent"]:
            assert config[key] == field["mora_saved"], key


def test_the_field_list_is_the_reference_source():
    assert len(SPEC["commit"]) == 40 and "kongds/MoRA" in SPEC["repository"]
    assert len(FIELDS) == 25 and set(SPEC["adapter_dependent"]) <= set(FIELDS)
    assert set(f["type"] for f in FIELDS.values()) <= set(CHECKERS)
    # the checker refuses what the reference refuses: the old 'library' key, a wrong type
    with pytest.raises(TypeError, match="'library'"):
        reference_accepts({"r": 8, "library": "libmora 0.2.0"})
    with pytest.raises(AssertionError):
        reference_accepts({"r": 2.5})
    with pytest.raises(AssertionError):
        reference_accepts({"bias": "some"})


# ---- models --------------------------------------------------------------------------------------

def llama_like(layers: int = 2, hidden: int = 64, inter: int = 128) -> torch.nn.Module:
    """Module paths as in transformers' LlamaForCausalLM (model.layers.N.self_attn.q_proj, ...)."""
    torch.manual_seed(3)
    root = torch.nn.Module()
    root.model = torch.nn.Module()
    root.model.layers = torch.nn.ModuleList()
    for _ in range(layers):
        block = torch.nn.Module()
        block.self_attn = torch.nn.Module()
        for p in ("q_proj", "k_proj", "v_proj", "o_proj"):
            setattr(block.self_attn, p, torch.nn.Linear(hidden, hidden, bias=False))
        block.mlp = torch.nn.Module()
        block.mlp.gate_proj = torch.nn.Linear(hidden, inter, bias=False)
        block.mlp.up_proj = torch.nn.Linear(hidden, inter, bias=False)
        block.mlp.down_proj = torch.nn.Linear(inter, hidden, bias=False)
        root.model.layers.append(block)
    root.lm_head = torch.nn.Linear(hidden, 32, bias=False)
    return root.to(DEVICE)


def run(model, x):
    """The sum of every adapted layer's output (and the head's): a function of every M."""
    out = model.lm_head(x)
    for block in model.model.layers:
        for name in ("q_proj", "k_proj", "v_proj", "o_proj"):
            out = out + getattr(block.self_attn, name)(x).sum()
        h = block.mlp.up_proj(x) * block.mlp.gate_proj(x)
        out = out + block.mlp.down_proj(h).sum()
    return out


def randomise(model, seed=5):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, m in libmora.mora_layers(model):
            m.M.copy_((torch.randn(m.rhat, m.rhat, generator=g) / m.rhat).to(m.M.device))


ALL7 = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


# ---- 1. adapters the reference loads, and the reference's adapters here ---------------------------

def test_saved_config_is_the_references(tmp_path):
    model = llama_like()
    libmora.apply_mora(model, target_modules=ALL7, r=4, op="rope")
    randomise(model)
    libmora.save_adapter(model, str(tmp_path / "a"))
    with open(tmp_path / "a" / CONFIG_FILE) as f:
        config = json.load(f)
    check_reference_config(config)
    assert config["r"] == 4 and config["mora_type"] == 6 and config["target_modules"] == ALL7
    assert config["rank_pattern"] == {} and config["base_model_name_or_path"] == ""
    _, meta = read_safetensors(str(tmp_path / "a" / MODEL_FILE))
    assert meta["libmora.version"] == libmora.version() and meta["libmora.ops"] == ",".join(["6"] * 14)
    assert meta["libmora.step"] == "0" and meta["format"] == "pt"


def test_c_writer_writes_the_same_config(tmp_path):
    """mora_adapter_save of a C adapter with the same layers writes the same adapter_config.json."""
    model = llama_like(layers=1)
    libmora.apply_mora(model, target_modules=["q_proj", "v_proj"], r=4, op="rope")
    libmora.apply_mora(model, target_modules=["down_proj"], r=2, op="rope", extend=True)
    libmora.save_adapter(model, str(tmp_path / "py"))
    layers = libmora.mora_layers(model)
    lib = _lib.lib()
    ctx, handle = ctypes.c_void_p(), ctypes.c_void_p()
    _lib.call("mora_context_create", b"cpu", 0, ctypes.byref(ctx))
    descs = (_lib.mora_adapter_layer_desc * len(layers))()
    names = [n.encode() for n, _ in layers]
    for d, name, (_, m) in zip(descs, names, layers):
        d.name, d.d_in, d.d_out, d.lora_rank, d.rhat, d.op = name, m.in_features, m.out_features, m.r, 0, m.op
        d.dtype = d.w_dtype = _lib.MORA_F32
    try:
        _lib.call("mora_adapter_create", ctx, descs, len(layers), 16, None, ctypes.byref(handle))
        _lib.call("mora_adapter_save", handle, str(tmp_path / "c").encode())
    finally:
        if handle:
            lib.mora_adapter_destroy(handle)
        lib.mora_context_destroy(ctx)
    with open(tmp_path / "py" / CONFIG_FILE) as f:
        py = json.load(f)
    with open(tmp_path / "c" / CONFIG_FILE) as f:
        c = json.load(f)
    check_reference_config(py)
    check_reference_config(c)
    assert py == c
    assert py["rank_pattern"] == {"model.layers.0.mlp.down_proj": 2} and py["target_modules"] == ["q_proj", "v_proj",
                                                                                                  "down_proj"]


def test_partial_targets_are_written_as_full_paths(tmp_path):
    """Only layer 0's q_proj adapted: "q_proj" would make the reference adapt layer 1's too."""
    model = llama_like()
    libmora.apply_mora(model, target_modules=r"model\.layers\.0\.self_attn\.q_proj", r=4)
    libmora.save_adapter(model, str(tmp_path / "a"))
    with open(tmp_path / "a" / CONFIG_FILE) as f:
        config = json.load(f)
    check_reference_config(config)
    assert config["target_modules"] == ["model.layers.0.self_attn.q_proj"]


def fixture_m(layer: int, rhat: int) -> torch.Tensor:
    """tests/fixtures/mora-reference/make_adapter.py's M."""
    i = torch.arange(rhat).view(-1, 1)
    j = torch.arange(rhat).view(1, -1)
    return (((i * 7 + j * 3 + layer * 5) % 11 - 5).float() / 64.0)


def test_the_references_adapter_loads():
    """The fixture (the reference's layout, no libmora metadata): from_pretrained adapts exactly its
    layers with mora_type 6 and their r̂; load_adapter into an apply_mora'd model takes it too."""
    with open(os.path.join(REFERENCE_ADAPTER, CONFIG_FILE)) as f:
        check_reference_config(json.load(f))  # the fixture is what the field list says
    model = llama_like(layers=1)
    libmora.from_pretrained(model, REFERENCE_ADAPTER)
    layers = libmora.mora_layers(model)
    assert [(n, m.rhat, m.op, m.r) for n, m in layers] == [("model.layers.0.self_attn.q_proj", 22, 6, 4),
                                                           ("model.layers.0.mlp.down_proj", 28, 6, 4)]
    for k, (_, m) in enumerate(layers):
        assert torch.equal(m.M.detach().cpu(), fixture_m(k, m.rhat))
    assert [n for n, p in model.named_parameters() if p.requires_grad] == [f"{n}.M" for n, _ in layers]
    # the same through apply_mora with the config's r and op (r̂ as the reference derives it)
    other = llama_like(layers=1)
    libmora.apply_mora(other, target_modules=["q_proj", "down_proj"], r=4, op="rope")
    libmora.load_adapter(other, REFERENCE_ADAPTER)
    for (_, a), (_, b) in zip(libmora.mora_layers(other), layers):
        assert torch.equal(a.M, b.M)
    # its ΔW is the eager MoRA's of that M
    q = layers[0][1]
    eye = torch.eye(64, dtype=torch.float64)
    assert torch.allclose(q.delta_weight().double().cpu(), mora_eager(eye, q.M.detach().double().cpu(), 64, "rope").T,
                          atol=1e-6)


def test_an_adapter_of_another_operator_is_refused():
    """A rope adapter into share layers: refused naming both operators, whether r̂ agrees (r = 2 at 64 x 64:
    16 for both) or not (r = 4: rope 22, share 23); nothing changes."""
    for r in (2, 4):
        model = llama_like(layers=1)
        libmora.apply_mora(model, target_modules=["q_proj", "down_proj"], r=r, op="share")
        with pytest.raises(libmora.CheckpointError) as e:
            libmora.load_adapter(model, REFERENCE_ADAPTER)
        assert "rope (6)" in str(e.value) and "share (1)" in str(e.value)
        assert all(m.op == 1 and not m.M.any() for _, m in libmora.mora_layers(model))


def test_an_adapter_of_another_rhat_names_both():
    model = llama_like(layers=1)
    libmora.apply_mora(model, target_modules=["q_proj", "down_proj"], r=8, op="rope")
    with pytest.raises(libmora.CheckpointError, match=r"r̂ = 22 .*the model's layer has r̂ = 32 \(r = 8"):
        libmora.load_adapter(model, REFERENCE_ADAPTER)


def test_from_pretrained_round_trip_with_rank_pattern_and_ops(tmp_path):
    model = llama_like()
    libmora.apply_mora(model, target_modules=["q_proj", "v_proj"], r=4, op="rope")
    libmora.apply_mora(model, target_modules=["up_proj"], r=2, op="share", extend=True)
    randomise(model)
    with pytest.warns(UserWarning, match="2 operators"):
        libmora.save_adapter(model, str(tmp_path / "a"))
    x = torch.randn(5, 64).to(DEVICE)
    with torch.no_grad():
        want = run(model, x)
    fresh = llama_like()
    libmora.from_pretrained(fresh, str(tmp_path / "a"))
    assert [(n, m.r, m.rhat, m.op) for n, m in libmora.mora_layers(fresh)] == \
        [(n, m.r, m.rhat, m.op) for n, m in libmora.mora_layers(model)]
    with torch.no_grad():
        assert torch.equal(run(fresh, x), want)
    with pytest.raises(ValueError, match="already adapted"):
        libmora.from_pretrained(fresh, str(tmp_path / "a"))


def test_from_pretrained_refuses_layers_the_model_lacks(tmp_path):
    model = llama_like(layers=2)
    libmora.apply_mora(model, target_modules=["q_proj"], r=4)
    libmora.save_adapter(model, str(tmp_path / "a"))
    small = llama_like(layers=1)
    with pytest.raises(libmora.CheckpointError, match="model.layers.1.self_attn.q_proj"):
        libmora.from_pretrained(small, str(tmp_path / "a"))
    assert not libmora.mora_layers(small)
    assert all(p.requires_grad for p in small.parameters())  # left as it was


# ---- 2. merge_and_unload / unload -----------------------------------------------------------------

def test_merge_and_unload_gives_a_plain_model(tmp_path):
    model = llama_like()
    plain_keys = sorted(model.state_dict())
    w0 = {k: v.clone() for k, v in model.state_dict().items()}
    libmora.apply_mora(model, target_modules=ALL7, r=4, op="rope")
    randomise(model)
    x = torch.randn(7, 64).to(DEVICE)
    with torch.no_grad():
        want = run(model, x)
    libmora.merge_and_unload(model)
    assert not libmora.mora_layers(model)
    assert all(type(m) is torch.nn.Linear for n, m in model.named_modules() if n.endswith("_proj"))
    assert sorted(model.state_dict()) == plain_keys  # q_proj.weight again, no .base. / .M
    with torch.no_grad():
        got = run(model, x)
    assert torch.allclose(got, want, rtol=1e-5, atol=1e-5), (got - want).abs().max()
    # the state dict of the merged model loads into a fresh plain model: the same outputs
    torch.save(model.state_dict(), tmp_path / "merged.pt")
    fresh = llama_like()
    fresh.load_state_dict(torch.load(tmp_path / "merged.pt"), strict=True)
    with torch.no_grad():
        assert torch.equal(run(fresh, x), got)
    assert not torch.equal(fresh.model.layers[0].self_attn.q_proj.weight, w0["model.layers.0.self_attn.q_proj.weight"])
    assert all(p.requires_grad is False for p in model.parameters())  # frozen as they were while adapted


def test_unload_restores_w0():
    model = llama_like(layers=1)
    w0 = {k: v.clone() for k, v in model.state_dict().items()}
    libmora.apply_mora(model, target_modules=ALL7, r=4, op="share")
    randomise(model)
    model.model.layers[0].self_attn.q_proj.merge()  # merged or not, unload gives W0 back
    libmora.unload(model)
    assert not libmora.mora_layers(model)
    state = model.state_dict()
    assert sorted(state) == sorted(w0)
    for k in w0:
        assert torch.allclose(state[k], w0[k], atol=1e-6), k
    libmora.apply_mora(model, target_modules=["q_proj"], r=4)  # a plain model again: may be adapted anew


# ---- 5. clear words instead of silence -------------------------------------------------------------

def test_every_unmatched_target_is_named():
    model = llama_like()
    with pytest.raises(ValueError) as e:
        libmora.apply_mora(model, target_modules=["q_proj", "qproj", "vproj"], r=4)
    assert "'qproj', 'vproj' match no nn.Linear" in str(e.value) and "q_proj" in str(e.value)
    assert not libmora.mora_layers(model) and all(p.requires_grad for p in model.parameters())
    with pytest.raises(ValueError, match="regular expression matches no nn.Linear"):
        libmora.apply_mora(model, target_modules=r"layers\.9\..*", r=4)
    with pytest.raises(ValueError, match="non-empty list"):
        libmora.apply_mora(model, target_modules=[], r=4)


def test_a_layer_that_cannot_be_made_changes_nothing():
    """share-interleave needs r̂ <= d_out: at r = 30, q_proj (64 -> 64) gets r̂ = 62, down_proj
    (128 -> 64) r̂ = 76, which is refused; q_proj, made first, is not put in either."""
    model = llama_like(layers=1)
    with pytest.raises(libmora.MoraError, match="MORA_E_CONSTRAINT"):
        libmora.apply_mora(model, target_modules=["q_proj", "down_proj"], r=30, op="share-interleave")
    assert not libmora.mora_layers(model) and all(p.requires_grad for p in model.parameters())
    assert libmora.MoRALinear(torch.nn.Linear(64, 64), r=30, op="share-interleave").rhat == 62


def test_rank_must_be_a_positive_integer():
    for bad in (2.5, 2.0, "8", True, 0, -3):
        with pytest.raises(ValueError, match=r"^r=.*(positive integer)"):
            libmora.apply_mora(llama_like(layers=1), target_modules=["q_proj"], r=bad)
    with pytest.raises(ValueError, match=r"rhat=2.5"):
        libmora.MoRALinear(torch.nn.Linear(16, 16), rhat=2.5)

    class Index:  # an integer-like rank (numpy's ints, say) is an integer
        def __index__(self):
            return 1
    assert libmora.MoRALinear(torch.nn.Linear(16, 16), r=Index(), op="share").r == 1


def test_rhat_above_min_dimension_warns():
    with pytest.warns(UserWarning, match=r"r̂ = 566 exceeds min\(d_in, d_out\) = 16.*more than the full 16 x 16"):
        layer = libmora.MoRALinear(torch.nn.Linear(16, 16), r=10000, op="share")
    assert layer.rhat == 566
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        libmora.MoRALinear(torch.nn.Linear(64, 64), r=4, op="share")  # r̂ = 23: no warning


def test_applying_twice_is_refused():
    model = llama_like()
    libmora.apply_mora(model, target_modules=["q_proj"], r=4)
    with pytest.raises(ValueError, match="already adapted by libmora .2 MoRA layers"):
        libmora.apply_mora(model, target_modules=["v_proj"], r=4)
    with pytest.raises(ValueError, match="'q_proj': the model's layers of that name are MoRA layers already"):
        libmora.apply_mora(model, target_modules=["q_proj"], r=4, extend=True)
    libmora.apply_mora(model, target_modules=["v_proj"], r=4, op="share", extend=True)
    assert [m.op for _, m in libmora.mora_layers(model)] == [6, 1, 6, 1]


def test_op_names_are_case_insensitive():
    for name in ("ROPE", "Rope", " rope "):
        assert libmora.MoRALinear(torch.nn.Linear(32, 32), r=2, op=name).op == 6
    assert libmora.MoRALinear(torch.nn.Linear(32, 32), r=2, op="GROUP_TILE").op == 3
    with pytest.raises(libmora.MoraError, match="unknown operator"):
        libmora.MoRALinear(torch.nn.Linear(32, 32), r=2, op="rotary")


def test_print_trainable_parameters(capsys):
    model = llama_like()
    libmora.apply_mora(model, target_modules=["q_proj", "v_proj"], r=4, op="rope")
    trainable, total = libmora.trainable_parameters(model)
    assert trainable == 4 * 22 * 22  # two layers x two projections, r̂ = 22
    assert total == sum(p.numel() for p in model.parameters())
    libmora.print_trainable_parameters(model)
    out = capsys.readouterr().out
    assert out.strip() == f"trainable params: {trainable:,d} || all params: {total:,d} || trainable%: " \
                          f"{100 * trainable / total:.4f}"
