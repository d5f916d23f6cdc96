"""libmora in the transformers workflow, on the CPU with a tiny LLaMA built from a LlamaConfig (random
init, nothing downloaded), its 7 projections adapted: transformers.Trainer through libmora.hf.MoRATrainer
(adapter-only checkpoints; resume equals an uninterrupted run), gradient checkpointing, torch.compile
(inductor), merge_and_unload + save_pretrained + from_pretrained, print_trainable_parameters."""
from __future__ import annotations

import json
import os

import pytest
import torch

transformers = pytest.importorskip("transformers", reason="transformers is not installed (scripts/python-test.sh "
                                                          "installs it from PyPI)")
from transformers import LlamaConfig, LlamaForCausalLM, TrainingArguments  # noqa: E402

import libmora  # noqa: E402
from libmora.checkpoint import CONFIG_FILE, MODEL_FILE, OPTIMIZER_FILE  # noqa: E402
from libmora.hf import MoRATrainer  # noqa: E402
from test_peft_workflow import check_reference_config  # noqa: E402

if os.environ.get("LIBMORA_TEST_DEVICE", "cpu") != "cpu":
    pytest.skip("the transformers tests run on the CPU only", allow_module_level=True)

ALL7 = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
VOCAB, SEQ = 96, 16


def tiny_llama(seed: int = 0) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2 * SEQ)
    return LlamaForCausalLM(config).eval()


def adapted(seed: int = 0, nonzero: bool = False) -> LlamaForCausalLM:
    model = libmora.apply_mora(tiny_llama(seed), target_modules=ALL7, r=4, op="rope")
    if nonzero:
        g = torch.Generator().manual_seed(seed + 1)
        with torch.no_grad():
            for _, m in libmora.mora_layers(model):
                m.M.copy_(torch.randn(m.rhat, m.rhat, generator=g) * 0.05)
    return model


class Counting(torch.utils.data.Dataset):
    """Sequences that count up (mod the vocabulary) from a random start: the next token is learnable."""

    def __init__(self, n: int = 32):
        g = torch.Generator().manual_seed(11)
        starts = torch.randint(0, VOCAB, (n,), generator=g)
        self.rows = [(s + torch.arange(SEQ)) % VOCAB for s in starts]

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        return {"input_ids": self.rows[i], "labels": self.rows[i]}


def args(out, **kw) -> TrainingArguments:
    base = dict(output_dir=str(out), max_steps=6, per_device_train_batch_size=4, learning_rate=2e-2,
                lr_scheduler_type="linear", warmup_steps=1, logging_steps=1, save_steps=3, save_strategy="steps",
                report_to=[], use_cpu=True, dataloader_num_workers=0, seed=7, disable_tqdm=True)
    base.update(kw)
    return TrainingArguments(**base)


def checkpointing_on(model) -> bool:
    return getattr(model, "is_activation_checkpointing", None) or model.is_gradient_checkpointing


# transformers 5 renamed gradient checkpointing to activation checkpointing (the old names warn)
CHECKPOINTING_ARG = ("activation_checkpointing" if "activation_checkpointing" in TrainingArguments.__dataclass_fields__
                     else "gradient_checkpointing")


def ms(model):
    return [m.M.detach().clone() for _, m in libmora.mora_layers(model)]


def test_trainer_checkpoints_the_adapter_and_resumes_exactly(tmp_path, capsys):
    model = adapted()
    libmora.print_trainable_parameters(model)
    printed = capsys.readouterr().out
    trainable, total = libmora.trainable_parameters(model)
    assert f"trainable params: {trainable:,d} || all params: {total:,d}" in printed
    assert trainable == sum(m.rhat ** 2 for _, m in libmora.mora_layers(model)) and len(libmora.mora_layers(model)) == 14

    trainer = MoRATrainer(model=model, args=args(tmp_path / "full"), train_dataset=Counting())
    result = trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert len(losses) == 6 and all(l == l for l in losses) and losses[-1] < losses[0], losses
    full = ms(model)
    assert all(M.abs().sum() > 0 for M in full)  # every M trained (gradients reached all 14 layers)
    assert result.global_step == 6

    # a checkpoint holds the adapter (the reference's layout), the Trainer's optimizer and RNG state, no model
    ckpt = tmp_path / "full" / "checkpoint-3"
    files = set(os.listdir(ckpt))
    assert {MODEL_FILE, CONFIG_FILE, OPTIMIZER_FILE, "optimizer.pt", "scheduler.pt", "trainer_state.json"} <= files
    assert not any(f.startswith("model") and f.endswith(".safetensors") for f in files), files
    with open(ckpt / CONFIG_FILE) as f:
        check_reference_config(json.load(f))

    # resume from checkpoint-3 in a fresh model: steps 4..6 end where the uninterrupted run ended
    fresh = adapted()
    resumed = MoRATrainer(model=fresh, args=args(tmp_path / "resumed"), train_dataset=Counting())
    resumed.train(resume_from_checkpoint=str(ckpt))
    assert resumed.state.global_step == 6
    for a, b in zip(ms(fresh), full):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-7), (a - b).abs().max()

    # save_model: the adapter; libmora.from_pretrained on the plain model gives the trained model's logits
    trainer.save_model(str(tmp_path / "final"))
    again = libmora.from_pretrained(tiny_llama(), str(tmp_path / "final"))
    ids = Counting()[0]["input_ids"][None]
    with torch.no_grad():
        assert torch.equal(again(input_ids=ids).logits, model(input_ids=ids).logits)


def test_gradient_checkpointing_gives_the_same_gradients():
    ids = torch.stack([Counting()[i]["input_ids"] for i in range(4)])
    grads = []
    for checkpointing in (False, True):
        model = adapted(nonzero=True).train()
        if checkpointing:
            enable = getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable
            enable()
            assert checkpointing_on(model)
        model(input_ids=ids, labels=ids).loss.backward()
        grads.append([m.M.grad.clone() for _, m in libmora.mora_layers(model)])
    for a, b in zip(*grads):
        assert a.abs().sum() > 0 and torch.allclose(a, b, rtol=1e-5, atol=1e-8), (a - b).abs().max()


def test_trainer_with_gradient_checkpointing(tmp_path):
    plain, checkpointed = adapted(), adapted()
    MoRATrainer(model=plain, args=args(tmp_path / "a", max_steps=2, save_strategy="no"),
                train_dataset=Counting()).train()
    MoRATrainer(model=checkpointed, args=args(tmp_path / "b", max_steps=2, save_strategy="no",
                                              **{CHECKPOINTING_ARG: True}), train_dataset=Counting()).train()
    assert checkpointing_on(checkpointed)
    for a, b in zip(ms(plain), ms(checkpointed)):
        assert a.abs().sum() > 0 and torch.allclose(a, b, rtol=1e-4, atol=1e-7), (a - b).abs().max()


def test_torch_compile_inductor():
    """torch.compile (inductor, on the CPU) of the adapted LLaMA: libmora's custom ops stay opaque nodes;
    logits and every M's gradient equal eager mode's."""
    if not libmora.CUSTOM_OP:
        pytest.skip("torch has no torch.library.custom_op here: libmora runs as an autograd.Function")
    model = adapted(nonzero=True)
    ids = torch.stack([Counting()[i]["input_ids"] for i in range(2)])
    out = model(input_ids=ids, labels=ids)
    out.loss.backward()
    eager = [m.M.grad.clone() for _, m in libmora.mora_layers(model)]
    model.zero_grad()
    compiled = torch.compile(model, backend="inductor")
    out2 = compiled(input_ids=ids, labels=ids)
    out2.loss.backward()
    assert torch.allclose(out2.logits, out.logits, rtol=1e-5, atol=1e-5)
    for (_, m), g in zip(libmora.mora_layers(model), eager):
        assert torch.allclose(m.M.grad, g, rtol=1e-4, atol=1e-7), (m.M.grad - g).abs().max()


def test_merge_and_unload_then_save_pretrained_round_trips(tmp_path):
    model = adapted(nonzero=True)
    ids = Counting()[1]["input_ids"][None]
    with torch.no_grad():
        want = model(input_ids=ids).logits
    merged = libmora.merge_and_unload(model)
    assert not libmora.mora_layers(merged)
    assert type(merged.model.layers[0].self_attn.q_proj) is torch.nn.Linear
    merged.save_pretrained(str(tmp_path / "merged"))
    loaded, info = LlamaForCausalLM.from_pretrained(str(tmp_path / "merged"), output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info.get("mismatched_keys"), info
    with torch.no_grad():
        got = loaded.eval()(input_ids=ids).logits
    assert torch.allclose(got, want, rtol=1e-5, atol=1e-5), (got - want).abs().max()
    with torch.no_grad():  # and the merge really moved the weights (ΔW ≠ 0)
        assert not torch.allclose(tiny_llama()(input_ids=ids).logits, want, atol=1e-4)
