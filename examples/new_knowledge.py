#!/usr/bin/env python3
"""new_knowledge — MoRA's continual-pretraining claim in a small transformer, through the Python binding.

The paper's claim (Jiang et al. 2024, §5.2): MoRA's high-rank update learns new knowledge better than
LoRA's at the same number of trainable parameters. Here, at a size that runs on a CPU in minutes:

1. A world of facts. E entities with made-up names; each has A attributes (city, job, colour, ...)
   drawn from small value lists, written as sentences ("the city of vadoli is tarsen."). A
   character-level tokenizer (the corpus's own characters; nothing is downloaded).
2. Pretraining. A transformers LlamaForCausalLM built from a LlamaConfig (random start) learns the old
   facts with every parameter trained (AdamW, full batch), until it recalls them (reported).
3. New knowledge. Every entity gets a new attribute whose value is random hex, UUID-like ("the code
   of vadoli is 3fa9c1d2."). The pretrained model is adapted on the new facts (with --replay K, plus K
   old facts drawn afresh at every step, as continual pretraining mixes in general text), every linear
   layer of every block (q, k, v, o, gate, up, down) carrying the adapter, with each method at equal
   trainable parameters (LoRA rank r; MoRA's r̂ from r):
     lora          B·A (PEFT's start: A kaiming-uniform, B = 0, alpha = r)
     relora        ReLoRA: lora merged into the weights and restarted every K steps (A drawn again,
                   B = 0, AdamW's state reset, the learning rate re-warmed over K/5 steps)
     mora-rope     libmora.apply_mora(op="rope")
     mora-share    libmora.apply_mora(op="share")
     remora-rope   ReMoRA: MoRA merged every K steps (MoRALinear.merge), M = 0, state reset, re-warmed
     remora-share  the same, the sharing type cycling share -> group -> group-tile -> share-interleave
4. Measured per method and seed: the new facts' exact match (every character of the value right, which
   is what greedy decoding would produce) and character accuracy (teacher-forced, on the value's
   characters), the old facts' exact match after adaptation (retention; forgetting = before − after),
   and the wall-clock time of the adaptation. Mean ± sample sd over the seeds (each draws the new
   values and the adapters' start; the pretrained model is one, seed 0).

    python3 examples/new_knowledge.py --out out/new-knowledge          # the experiment (minutes)
    python3 examples/new_knowledge.py --quick --out /tmp/nk             # the check pytest runs (seconds)

--pretrained FILE keeps the pretrained model there (with the settings that made it) and loads it when
the settings match, so several adaptation runs share one pretraining.

Writes DIR/report.md (the tables, the command, commit, machine), DIR/summary.csv (every run) and
DIR/curves.csv (loss against step). Exit status 0; 1 when a check fails (--quick: a method whose
loss on the new facts did not fall by 10 %, libmora's layers disagreeing with eager PyTorch, ReLoRA's
or ReMoRA's merge changing the model's output); 2 on a usage error.
"""
import argparse
import copy
import csv
import math
import os
import platform
import statistics
import subprocess
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

import libmora

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
METHODS = ["lora", "relora", "mora-rope", "mora-share", "remora-rope", "remora-share"]
SHARE_CYCLE = ["share", "group", "group-tile", "share-interleave"]  # ReMoRA's cycle, as the reference trainer's
ATTRIBUTES = {
    "city": ["tarsen", "olmir", "quent", "belava", "sorin", "daskel", "miro", "fenwa"],
    "job": ["baker", "pilot", "tailor", "miner", "judge", "nurse", "smith", "poet"],
    "colour": ["red", "blue", "green", "amber", "violet", "grey", "white", "black"],
    "pet": ["cat", "dog", "owl", "goat", "eel", "crow", "mole", "yak"],
}
SYLLABLES = ["va", "do", "li", "ke", "ru", "mo", "sa", "ti", "ne", "po", "ga", "lu", "ze", "fi", "ba", "ro"]


# ---- the world and its text ----

def make_world(entities, attributes, seed):
    g = torch.Generator().manual_seed(seed)
    names, seen = [], set()
    while len(names) < entities:
        k = 2 + int(torch.randint(0, 2, (1,), generator=g))
        name = "".join(SYLLABLES[int(i)] for i in torch.randint(0, len(SYLLABLES), (k,), generator=g))
        if name not in seen:
            seen.add(name)
            names.append(name)
    attrs = list(ATTRIBUTES)[:attributes]
    facts = []  # (prefix, value): the sentence is prefix + value + "."
    for name in names:
        for a in attrs:
            values = ATTRIBUTES[a]
            facts.append((f"the {a} of {name} is ", values[int(torch.randint(0, len(values), (1,), generator=g))]))
    return names, facts


def new_facts(names, hex_chars, seed):
    g = torch.Generator().manual_seed(1000 + seed)
    return [(f"the code of {name} is ", "".join("0123456789abcdef"[int(i)] for i in
                                                torch.randint(0, 16, (hex_chars,), generator=g))) for name in names]


class CharTokenizer:
    """One id per character of the corpus; id 0 pads."""

    def __init__(self, texts):
        chars = sorted(set("".join(texts)) | set("0123456789abcdef."))
        self.ids = {c: i + 1 for i, c in enumerate(chars)}
        self.vocab = len(chars) + 1

    def encode(self, s):
        return [self.ids[c] for c in s]


def batch_of(tok, facts, length):
    """ids (n x length, padded with 0), the loss mask (every real next token), and the value's positions:
    value_mask[i, t] = 1 where the prediction at t is of a value character (teacher-forced)."""
    n = len(facts)
    ids = torch.zeros(n, length, dtype=torch.long)
    mask = torch.zeros(n, length - 1)
    value_mask = torch.zeros(n, length - 1)
    for i, (prefix, value) in enumerate(facts):
        seq = tok.encode(prefix + value + ".")
        assert len(seq) <= length, (prefix, value, length)
        ids[i, :len(seq)] = torch.tensor(seq)
        mask[i, :len(seq) - 1] = 1
        p = len(prefix)
        value_mask[i, p - 1:p - 1 + len(value)] = 1  # the prediction at position t is of token t + 1
    return ids, mask, value_mask


def lm_loss(model, ids, mask):
    logits = model(input_ids=ids).logits[:, :-1]
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1), reduction="none")
    return (loss * mask.reshape(-1)).sum() / mask.sum()


@torch.no_grad()
def recall(model, ids, value_mask):
    """(exact match: every value character right; character accuracy over the value characters)"""
    model.eval()
    pred = model(input_ids=ids).logits[:, :-1].argmax(-1)
    model.train()
    right = (pred == ids[:, 1:]).float() * value_mask
    per_fact = right.sum(1) == value_mask.sum(1)
    return per_fact.float().mean().item(), (right.sum() / value_mask.sum()).item()


def schedule(step, steps, since_reset, every):
    warm = max(1, steps // 20)
    f = (step + 1) / warm if step < warm else 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, steps - warm)))
    if every:  # the re-warm-up after every merge
        rewarm = max(1, every // 5)
        if since_reset < rewarm:
            f *= (since_reset + 1) / rewarm
    return f


# ---- the model and the adapters ----

def make_llama(vocab, hidden, layers, length, seed):
    from transformers import LlamaConfig, LlamaForCausalLM
    heads = max(1, hidden // 32)
    cfg = LlamaConfig(hidden_size=hidden, intermediate_size=int(hidden * 11008 / 4096), num_hidden_layers=layers,
                      num_attention_heads=heads, num_key_value_heads=heads, vocab_size=vocab,
                      max_position_embeddings=length, tie_word_embeddings=False)
    torch.manual_seed(seed)
    return LlamaForCausalLM(cfg)


class LoRALinear(nn.Module):
    """y = base(x) + (alpha / r)·x·Aᵀ·Bᵀ, PEFT's LoRA (A kaiming-uniform(a = √5), B = 0, alpha = r)."""

    def __init__(self, base, r, generator):
        super().__init__()
        self.base, self.r, self.scale, self.generator = base, r, 1.0, generator
        for p in base.parameters():
            p.requires_grad_(False)
        self.A = nn.Parameter(torch.empty(r, base.in_features))
        self.B = nn.Parameter(torch.zeros(base.out_features, r))
        self.restart()

    @torch.no_grad()
    def restart(self):
        bound = 1 / math.sqrt(self.base.in_features)  # kaiming_uniform_(a = sqrt 5) on (r, d_in)
        self.A.copy_(torch.rand(self.A.shape, generator=self.generator) * 2 * bound - bound)
        self.B.zero_()

    @torch.no_grad()
    def merge_restart(self):
        self.base.weight += self.scale * self.B @ self.A
        self.restart()

    def forward(self, x):
        return self.base(x) + F.linear(F.linear(x, self.A), self.B) * self.scale


def adapt(model, method, r, seed):
    """Freezes the model and puts the method's adapter on every target linear; returns the adapter modules."""
    for p in model.parameters():
        p.requires_grad_(False)
    if method in ("lora", "relora"):
        g = torch.Generator().manual_seed(seed)
        found = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear) and n.split(".")[-1] in TARGETS]
        layers = []
        for name, lin in found:
            parent = model.get_submodule(name.rsplit(".", 1)[0])
            layer = LoRALinear(lin, r, g)
            setattr(parent, name.rsplit(".", 1)[1], layer)
            layers.append(layer)
        return layers
    op = method.split("-")[1]
    libmora.apply_mora(model, target_modules=TARGETS, r=r, op=op)
    return [m for _, m in libmora.mora_layers(model)]


@torch.no_grad()
def merge_restart(method, layers, optimizer):
    """ReLoRA / ReMoRA: merge the update into the frozen weights, restart the adapter, reset AdamW's state."""
    for layer in layers:
        if isinstance(layer, LoRALinear):
            layer.merge_restart()
            params = [layer.A, layer.B]
        else:
            layer.merge()            # base.weight += ΔW
            layer.merged = False
            layer.M.zero_()
            if method == "remora-share":  # the next sharing type the layer's shape allows
                name = libmora._lib.OP_NAMES[layer.op]
                i = SHARE_CYCLE.index(name) if name in SHARE_CYCLE else -1
                for step in range(1, len(SHARE_CYCLE) + 1):
                    candidate = libmora._lib.op_id(SHARE_CYCLE[(i + step) % len(SHARE_CYCLE)])
                    try:
                        libmora._lib.shape_check(layer.in_features, layer.out_features, layer.rhat, candidate)
                    except Exception:
                        continue
                    layer.op = candidate
                    break
            params = [layer.M]
        for p in params:
            optimizer.state.pop(p, None)


def trainable(model):
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# ---- the experiment ----

def pretrain_settings(args, tok, length):
    """What a pretrained model depends on (a cached one is used only when all of them match)."""
    return dict(vocab=tok.vocab, hidden=args.hidden, layers=args.layers, length=length, entities=args.entities,
                attributes=args.attributes, steps=args.pretrain_steps, lr=args.pretrain_lr, clip=args.clip,
                torch=str(torch.__version__))


def pretrain(args, tok, old, length, log):
    settings = pretrain_settings(args, tok, length)
    if args.pretrained and os.path.exists(args.pretrained):
        saved = torch.load(args.pretrained, weights_only=True)
        if saved.get("settings") == settings:
            model = make_llama(tok.vocab, args.hidden, args.layers, length, seed=0)
            model.load_state_dict(saved["state"])
            log(f"pretrained model loaded from {args.pretrained} (pretraining took {saved['seconds']:.0f} s)")
            return model, saved["seconds"]
        log(f"{args.pretrained}: made with other settings ({saved.get('settings')}); pretraining again")
    model = make_llama(tok.vocab, args.hidden, args.layers, length, seed=0)
    ids, mask, vmask = batch_of(tok, old, length)
    opt = torch.optim.AdamW(model.parameters(), lr=args.pretrain_lr, weight_decay=0.0)
    t0 = time.perf_counter()
    for step in range(args.pretrain_steps):
        for group in opt.param_groups:
            group["lr"] = args.pretrain_lr * schedule(step, args.pretrain_steps, 0, 0)
        loss = lm_loss(model, ids, mask)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
        opt.step()
        if step % max(1, args.pretrain_steps // 10) == 0 or step == args.pretrain_steps - 1:
            em, ca = recall(model, ids, vmask)
            log(f"pretrain step {step}: loss {loss.item():.4f}, old facts exact {em:.3f}, chars {ca:.3f}")
    seconds = time.perf_counter() - t0
    if args.pretrained:
        tmp = args.pretrained + ".tmp"
        torch.save({"settings": settings, "state": model.state_dict(), "seconds": seconds}, tmp)
        os.replace(tmp, args.pretrained)  # whole or absent
    return model, seconds


def run_method(args, base, tok, old, new, length, method, seed, curves):
    model = copy.deepcopy(base)
    layers = adapt(model, method, args.rank, seed)
    params = trainable(model)
    ids, mask, vmask = batch_of(tok, new, length)
    old_ids, old_mask, old_vmask = batch_of(tok, old, length)
    replay = torch.Generator().manual_seed(2000 + seed)  # which old facts each step mixes in
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=args.lr, weight_decay=0.0)
    every = args.merge_every if method.startswith("re") else 0
    first = None
    since = 0
    t0 = time.perf_counter()
    for step in range(args.steps):
        for group in opt.param_groups:
            group["lr"] = args.lr * schedule(step, args.steps, since, every)
        if args.replay:
            pick = torch.randperm(len(old), generator=replay)[:args.replay]
            loss = lm_loss(model, torch.cat([ids, old_ids[pick]]), torch.cat([mask, old_mask[pick]]))
        else:
            loss = lm_loss(model, ids, mask)
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], args.clip)
        opt.step()
        since += 1
        if step % max(1, args.steps // 50) == 0:  # the loss of this step's batch, the new facts' recall after it
            curves.writerow([method, seed, step, f"{loss.item():.6f}", f"{recall(model, ids, vmask)[1]:.6f}"])
        if every and (step + 1) % every == 0 and step + 1 < args.steps:
            merge_restart(method, layers, opt)
            since = 0
    seconds = time.perf_counter() - t0
    with torch.no_grad():
        final = lm_loss(model, ids, mask).item()
    em, ca = recall(model, ids, vmask)
    old_em, old_ca = recall(model, old_ids, old_vmask)
    return dict(method=method, seed=seed, params=params, first_loss=first, final_loss=final, new_exact=em,
                new_chars=ca, old_exact=old_em, old_chars=old_ca, seconds=seconds)


# ---- the checks (--quick) ----

def check_layers(log):
    """libmora's MoRALinear against eager PyTorch: y = base(x) + ΔW·x with ΔW from delta_weight()."""
    torch.manual_seed(3)
    lin = nn.Linear(40, 24)
    worst = 0.0
    for op in ("rope", "share"):
        layer = libmora.MoRALinear(copy.deepcopy(lin), r=4, op=op)
        with torch.no_grad():
            layer.M.normal_()
        x = torch.randn(7, 40)
        want = lin(x) + x @ layer.delta_weight().T
        worst = max(worst, ((layer(x) - want).abs().max() / want.abs().max()).item())
    log(f"check: MoRALinear against base(x) + ΔW·x: worst relative difference {worst:.2e}")
    return worst < 1e-5


def check_merges(args, base, tok, new, length, log):
    """A merge and restart (ReLoRA, ReMoRA) keeps the model's output: the logits before and after."""
    ids, _, _ = batch_of(tok, new, length)
    ok = True
    for method in ("relora", "remora-rope", "remora-share"):
        model = copy.deepcopy(base)
        layers = adapt(model, method, args.rank, 0)
        with torch.no_grad():
            for p in model.parameters():
                if p.requires_grad:
                    p.normal_(std=0.02)
            before = model(input_ids=ids).logits
            opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad])
            merge_restart(method, layers, opt)
            after = model(input_ids=ids).logits
        diff = ((after - before).abs().max() / before.abs().max()).item()
        log(f"check: {method}'s merge keeps the logits: relative difference {diff:.2e}")
        ok &= diff < 1e-4
    return ok


# ---- reporting ----

def mean_sd(values):
    m = statistics.fmean(values)
    return m, (statistics.stdev(values) if len(values) > 1 else 0.0)


def fmt(values):
    m, sd = mean_sd(values)
    return f"{m:.3f} ± {sd:.3f}" if len(values) > 1 else f"{m:.3f}"


def shell(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=10).stdout.strip()
    except Exception:
        return ""


def write_report(args, path, runs, pre, old_before, length, tok, wall):
    by = {m: [r for r in runs if r["method"] == m] for m in args.methods}
    lines = ["# New knowledge in a small transformer: LoRA, ReLoRA, MoRA and ReMoRA at equal parameters (generated)", ""]
    cpu = shell("grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'") or platform.processor() or "unknown CPU"
    here = os.path.dirname(os.path.abspath(__file__))
    commit = shell(f"git -C '{here}' rev-parse --short HEAD") or "unknown"
    lines += [f"- command: `{' '.join(sys.argv)}`",
              f"- commit: {commit}; date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; wall time {wall:.0f} s",
              f"- machine: {cpu}, {os.cpu_count()} cores online; torch {torch.__version__} ({torch.get_num_threads()} threads); "
              f"libmora {libmora.version()}",
              f"- world: {args.entities} entities x {args.attributes} attributes = {args.entities * args.attributes} old facts; "
              f"{args.entities} new facts (a {args.hex_chars}-character hex code each); character vocabulary {tok.vocab}, "
              f"sequences of {length}",
              f"- model: LlamaForCausalLM, hidden {args.hidden}, {args.layers} layers, pretrained on the old facts for "
              f"{args.pretrain_steps} steps (all parameters, lr {args.pretrain_lr}): old facts exact match "
              f"{old_before[0]:.3f}, characters {old_before[1]:.3f} ({pre:.0f} s)",
              f"- adaptation: the new facts only, full batch, {args.steps} steps, AdamW lr {args.lr} (weight decay 0), "
              f"warm-up 5 % then cosine, global gradient norm clipped to {args.clip}; rank r = {args.rank} on "
              f"{', '.join(TARGETS)} of every layer; ReLoRA / ReMoRA merge every {args.merge_every} steps; "
              + (f"{args.replay} old facts replayed in every step's batch (drawn afresh)" if args.replay else
                 "no replay of old facts"),
              f"- seeds: {', '.join(map(str, args.seeds))} (the new values and the adapters' start); mean ± sample sd",
              "",
              "| method | trainable params | new facts: exact match | new facts: characters | old facts after: exact "
              "match | old facts after: characters | forgetting (old exact, before − after) | final loss (new) | seconds |",
              "|---|---|---|---|---|---|---|---|---|"]
    for m in args.methods:
        rs = by[m]
        lines.append(f"| {m} | {rs[0]['params']:,} | {fmt([r['new_exact'] for r in rs])} | "
                     f"{fmt([r['new_chars'] for r in rs])} | {fmt([r['old_exact'] for r in rs])} | "
                     f"{fmt([r['old_chars'] for r in rs])} | "
                     f"{fmt([old_before[0] - r['old_exact'] for r in rs])} | {fmt([r['final_loss'] for r in rs])} | "
                     f"{fmt([r['seconds'] for r in rs])} |")
    lines += ["", "Orderings on the new facts' character accuracy (A > B only where A's mean − sd lies above B's "
              "mean + sd):", ""]
    if len(args.seeds) < 3:
        lines.append(f"- {len(args.seeds)} seed(s): no ordering is claimed (at least 3 are needed)")
    else:
        stats = sorted(((mean_sd([r["new_chars"] for r in by[m]]), m) for m in args.methods), reverse=True)
        sep = [f"{a} > {b}" for i, ((ma, sa), a) in enumerate(stats) for (mb, sb), b in stats[i + 1:] if ma - sa > mb + sb]
        tie = [f"{a} ≈ {b}" for i, ((ma, sa), a) in enumerate(stats) for (mb, sb), b in stats[i + 1:]
               if not ma - sa > mb + sb]
        lines.append(f"- separated: {', '.join(sep) or 'none'}")
        lines.append(f"- not separated: {', '.join(tie) or 'none'}")
    lines += ["", "Every run: `summary.csv`; curves (the loss, and the new facts' character accuracy): `curves.csv`.", ""]
    with open(path, "w") as f:
        f.write("\n".join(lines))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="The module docstring (head of this file) explains the experiment.")
    ap.add_argument("--quick", action="store_true", help="the check pytest runs: tiny sizes, seconds")
    ap.add_argument("--out", default="new-knowledge-out", help="the folder for report.md, summary.csv, curves.csv")
    ap.add_argument("--entities", type=int, help="entities (default 64; --quick 8)")
    ap.add_argument("--attributes", type=int, help=f"old attributes per entity, at most {len(ATTRIBUTES)} (default 3)")
    ap.add_argument("--hex-chars", type=int, default=8, help="characters of each new code (default 8)")
    ap.add_argument("--hidden", type=int, help="the Llama's hidden size (default 128; --quick 32)")
    ap.add_argument("--layers", type=int, help="its layers (default 2; --quick 1)")
    ap.add_argument("--pretrain-steps", type=int, help="full-batch pretraining steps (default 600; --quick 40)")
    ap.add_argument("--pretrain-lr", type=float, default=3e-3, help="pretraining learning rate (default 3e-3)")
    ap.add_argument("--steps", type=int, help="adaptation steps (default 300; --quick 30)")
    ap.add_argument("--lr", type=float, default=1e-2, help="adaptation learning rate (default 1e-2)")
    ap.add_argument("--rank", type=int, default=8, help="LoRA rank r; MoRA's r̂ keeps its parameter count (default 8)")
    ap.add_argument("--merge-every", type=int, help="ReLoRA / ReMoRA merge interval K (default steps / 6)")
    ap.add_argument("--clip", type=float, default=1.0, help="global gradient-norm clipping (default 1)")
    ap.add_argument("--seeds", default=None, help="comma-separated seeds (default 1,2,3; --quick 1)")
    ap.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated subset of {','.join(METHODS)}")
    ap.add_argument("--replay", type=int, default=0, help="old facts mixed into every adaptation step (default 0)")
    ap.add_argument("--pretrained", help="a file that keeps the pretrained model (loaded when its settings match)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    args = ap.parse_args()
    q = args.quick
    args.entities = args.entities or (8 if q else 64)
    args.attributes = args.attributes or (2 if q else 3)
    args.hidden = args.hidden or (32 if q else 128)
    args.layers = args.layers or (1 if q else 2)
    args.pretrain_steps = args.pretrain_steps or (40 if q else 600)
    args.steps = args.steps or (30 if q else 300)
    args.merge_every = args.merge_every or max(1, args.steps // 6)
    try:
        args.seeds = [int(s) for s in (args.seeds or ("1" if q else "1,2,3")).split(",")]
    except ValueError:
        ap.error(f"--seeds {args.seeds!r}: comma-separated integers")
    args.methods = args.methods.split(",")
    bad = [m for m in args.methods if m not in METHODS]
    if bad:
        ap.error(f"--methods: {', '.join(bad)}: not a method ({', '.join(METHODS)})")
    if not 1 <= args.attributes <= len(ATTRIBUTES):
        ap.error(f"--attributes {args.attributes}: 1 to {len(ATTRIBUTES)}")
    for name in ("entities", "hex_chars", "hidden", "layers", "pretrain_steps", "steps", "rank"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} {getattr(args, name)}: at least 1")
    if not 0 <= args.replay <= args.entities * args.attributes:
        ap.error(f"--replay {args.replay}: 0 to the number of old facts ({args.entities * args.attributes})")
    if args.hidden % 2:
        ap.error(f"--hidden {args.hidden}: even (rotary embeddings)")
    if args.threads:
        torch.set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)

    def log(msg):
        print(f"new_knowledge: {msg}", flush=True)

    start = time.perf_counter()
    names, old = make_world(args.entities, args.attributes, seed=0)
    news = {s: new_facts(names, args.hex_chars, s) for s in args.seeds}
    texts = [p + v + "." for p, v in old] + [p + v + "." for f in news.values() for p, v in f]
    tok = CharTokenizer(texts)
    length = max(len(t) for t in texts) + 1
    ok = True
    if q:
        ok &= check_layers(log)
    base, pre_seconds = pretrain(args, tok, old, length, log)
    old_ids, _, old_vmask = batch_of(tok, old, length)
    old_before = recall(base, old_ids, old_vmask)
    if q:
        ok &= check_merges(args, base, tok, news[args.seeds[0]], length, log)
    runs = []
    with open(os.path.join(args.out, "curves.csv"), "w", newline="") as fc:
        curves = csv.writer(fc)
        curves.writerow(["method", "seed", "step", "loss", "new_chars"])
        for method in args.methods:
            for seed in args.seeds:
                r = run_method(args, base, tok, old, news[seed], length, method, seed, curves)
                runs.append(r)
                log(f"{method:13s} seed {seed}: params {r['params']:,}, loss {r['first_loss']:.3f} -> {r['final_loss']:.3f}, "
                    f"new exact {r['new_exact']:.3f} chars {r['new_chars']:.3f}, old exact {r['old_exact']:.3f} "
                    f"(before {old_before[0]:.3f}), {r['seconds']:.1f} s")
                if not r["final_loss"] < 0.9 * r["first_loss"]:
                    log(f"{method} seed {seed}: the loss on the new facts did not fall by 10 %"
                        f"{': FAILED' if q else ' (noted)'}")
                    ok &= not q
    with open(os.path.join(args.out, "summary.csv"), "w", newline="") as fs:
        w = csv.DictWriter(fs, fieldnames=list(runs[0]))
        w.writeheader()
        w.writerows(runs)
    write_report(args, os.path.join(args.out, "report.md"), runs, pre_seconds, old_before, length, tok,
                 time.perf_counter() - start)
    log(f"report: {os.path.join(args.out, 'report.md')}{'' if ok else ' — a check FAILED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
