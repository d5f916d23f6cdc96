#!/usr/bin/env python3
"""bench_cpu_path — libmora's cpu path, as shipped, against the eager PyTorch MoRA it replaces and
against HF PEFT LoRA: the per-layer table and the training step of a small transformers Llama.

    pip install torch transformers peft       # PyPI; peft only for the LoRA column
    cmake -S . -B build && cmake --build build
    LIBMORA_LIBRARY=build/libmora.so PYTHONPATH=python \\
        python3 bench/python/bench_cpu_path.py --tune 20 --md bench/results/cpu-path-<machine>.md

Parts (--parts, default layers,llama):
  layers  (1) the adapter path y = y_base + decomp(M·comp(x)), forward + backward (dx and dM), y_base
          computed outside the timing, f32, d = 4096, n = 1024: rope r = 8 and share r = 256;
          (2) a small layer, d = 256, n = 128, rope r = 8, the whole layer forward + backward: the
          frozen base alone, the eager MoRA, libmora's MoRALinear and a LoRA r = 8 written as PEFT
          runs it (base(x) + B(A(x))·s), so the adapter overhead is each row minus the base's.
  llama   one AdamW step (forward, loss, backward, optimizer) of a transformers LlamaForCausalLM built
          from a config with random weights (nothing downloaded): 4 sequences of 128 tokens, the 7
          projections of every layer adapted (q k v o gate up down), everything else frozen. Rows:
          libmora MoRA (rope r = 8 and share r = 8, apply_mora), the eager MoRA reference
          (ReferenceMoRA below: the operations of the reference PEFT fork's _apply_mora) and PEFT's
          LoRA r = 8 (get_peft_model), at equal trainable parameters (r̂² = r·(d_in + d_out)).

As shipped: the script sets no OPENBLAS_* / OMP_* / MKL_* variable, and refuses to run when one is
set (--allow-env to measure anyway; the report then lists them). torch runs --threads threads
(default: every core the process may use); libmora its defaults, or what `mora-tune` chose: --tune S
runs the installed tool (`--mora-tune`, default build/mora-tune) for every shape and token count the
run times, S seconds each, before anything is timed (records already in the kernels cache are
answered from it in milliseconds).

Fairness: every variant is checked against the others before timing (outputs and gradients of the
layers, the first loss and M's gradient of the Llama rows); the variants are interleaved within
every round, alternating their order, with a pause between them (idle OpenMP threads stop
spinning); each figure is the median over --rounds rounds of the mean of an inner loop of ~0.2 s."""
from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "python"))  # the package, when not pip-installed

SHIPPED_VARIABLES = ("OPENBLAS_", "GOTO", "OMP_", "MKL_", "KMP_", "GOMP_", "DNNL_", "ONEDNN_", "BLIS_")


def env_set_by_hand():
    return sorted(k for k in os.environ if k.startswith(SHIPPED_VARIABLES))


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0], epilog=__doc__.split("\n\n", 2)[2],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parts", default="layers,llama", help="comma-separated: layers, llama (default both)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (default: the cores this process may use)")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds; the median is reported (default 5)")
    ap.add_argument("--llama", default="256:4,1024:2",
                    help="comma-separated hidden:layers of the Llama configs (default 256:4,1024:2)")
    ap.add_argument("--vocab", type=int, default=4096,
                    help="the Llama vocabulary (default 4096: at 32000, Llama's, the LM head's GEMMs dominate a "
                         "hidden-256 step and hide the adapters)")
    ap.add_argument("--tune", type=float, default=0.0,
                    help="run mora-tune for every timed shape first, this many seconds each (default 0: no)")
    ap.add_argument("--mora-tune", default=os.path.join(ROOT, "build", "mora-tune"), help="the mora-tune to run")
    ap.add_argument("--allow-env", action="store_true", help="run although OPENBLAS_*/OMP_*/... variables are set")
    ap.add_argument("--md", help="write the report here (Markdown)")
    ap.add_argument("--note", default="", help="a sentence for the report")
    args = ap.parse_args(argv)
    args.parts = [p for p in args.parts.split(",") if p]
    for p in args.parts:
        if p not in ("layers", "llama"):
            ap.error(f"--parts: {p!r} is not a part (layers, llama)")
    try:
        args.llama = [tuple(int(v) for v in spec.split(":")) for spec in args.llama.split(",") if spec]
        if not args.llama or any(len(c) != 2 or c[0] < 8 or c[1] < 1 for c in args.llama):
            raise ValueError
    except ValueError:
        ap.error(f"--llama {args.llama!r}: expected hidden:layers pairs, e.g. 256:4,1024:2 (hidden >= 8)")
    if args.rounds < 1:
        ap.error(f"--rounds {args.rounds}: at least 1")
    if args.threads < 0:
        ap.error(f"--threads {args.threads}: at least 1 (0: the default)")
    return args


args = parse_args(sys.argv[1:]) if __name__ == "__main__" else None
if args is not None and env_set_by_hand() and not args.allow_env:
    sys.exit(f"bench_cpu_path: {', '.join(env_set_by_hand())} set: this benchmark measures the machine as shipped; "
             "unset them, or pass --allow-env (the report lists them)")

import torch  # noqa: E402
from torch import nn  # noqa: E402

import libmora  # noqa: E402
from libmora import _lib  # noqa: E402

OPS = {"share": 1, "rope": 6}


def rhat_of(d_in, d_out, r, op):
    return int(_lib.shape_make(d_in, d_out, r, OPS[op]).rhat)


class ReferenceMoRA(nn.Module):
    """The eager MoRA as the reference PEFT fork runs it (its _apply_mora, types 1 = share and 6 = rope):
    wrap-padding by concatenation, a view into blocks, the rotation with cos/sin tables made on the first
    call, M as an nn.Linear(r̂, r̂) weight, decompression by concatenation and slicing."""

    def __init__(self, base: nn.Linear, rhat: int, op: str):
        super().__init__()
        self.base, self.rhat, self.op = base, rhat, op
        for p in base.parameters():
            p.requires_grad_(False)
        self.M = nn.Parameter(torch.zeros(rhat, rhat, device=base.weight.device))
        self.cos = self.sin = None

    def delta(self, x):
        d_in, d_out, r = self.base.in_features, self.base.out_features, self.rhat
        blocks = -(-d_in // r)
        if d_in % r:
            x = torch.cat([x, x[..., : r - d_in % r]], dim=-1)
        v = x.view(*x.shape[:-1], blocks, r)
        if self.op == "share":
            c = v.sum(dim=-2)
        else:
            if self.cos is None:
                inv_freq = 1.0 / (10000 ** (torch.arange(0, r, 2).float() / r))
                emb = torch.outer(torch.arange(blocks).float(), inv_freq)
                emb = torch.cat((emb, emb), dim=-1)
                self.cos, self.sin = emb.cos().to(x.dtype), emb.sin().to(x.dtype)
            c = v * self.cos + torch.cat((-v[..., r // 2:], v[..., : r // 2]), dim=-1) * self.sin
        h = nn.functional.linear(c, self.M.to(x.dtype))
        if self.op == "share":
            return torch.cat([h] * -(-d_out // r), dim=-1)[..., :d_out]
        h = h.reshape(*x.shape[:-1], -1)[..., :d_out]
        if h.shape[-1] < d_out:
            h = torch.cat([h] * -(-d_out // h.shape[-1]), dim=-1)[..., :d_out]
        return h

    def forward(self, x):
        return self.base(x) + self.delta(x)


class EagerLoRA(nn.Module):
    """LoRA as PEFT's Linear runs it without dropout: base(x) + B(A(x))·(alpha / r)."""

    def __init__(self, base: nn.Linear, r: int, alpha: float = 16.0):
        super().__init__()
        self.base, self.scale = base, alpha / r
        for p in base.parameters():
            p.requires_grad_(False)
        self.A = nn.Linear(base.in_features, r, bias=False)
        self.B = nn.Linear(r, base.out_features, bias=False)
        nn.init.normal_(self.B.weight, std=0.02)  # PEFT starts B at zero; nonzero here so dA is real work

    def forward(self, x):
        return self.base(x) + self.B(self.A(x)) * self.scale


def timed(fn, target_s=0.2):
    """Mean seconds of fn over an inner loop of ~target_s (at least one call)."""
    t0 = time.perf_counter()
    fn()
    one = time.perf_counter() - t0
    loops = max(1, min(1000, int(target_s / max(one, 1e-6))))
    t0 = time.perf_counter()
    for _ in range(loops):
        fn()
    return (time.perf_counter() - t0) / loops


def interleaved(fns: dict, rounds: int, pause_s=0.05):
    """{name: [seconds per round]}: every fn once per round, the order rotating between rounds."""
    for fn in fns.values():
        fn()  # warm-up: plans created, allocator warmed, tables made
    names = list(fns)
    out = {name: [] for name in names}
    for rnd in range(rounds):
        order = names[rnd % len(names):] + names[: rnd % len(names)]
        if rnd % 2:
            order.reverse()
        for name in order:
            time.sleep(pause_s)
            out[name].append(timed(fns[name]))
    return out


def rel(a, b):
    return float((a.double() - b.double()).norm() / max(b.double().norm(), 1e-30))


def mora_tune(d_in, d_out, r, op, tokens, seconds, log):
    cmd = [args.mora_tune, "--backend", "cpu", "--dims", str(d_in), "--dims-out", str(d_out), "--rank", str(r),
           "--op", op, "--tokens", str(tokens), "--budget", str(seconds), "--kinds", "fwd,bwd_dx,bwd_dm", "--quiet"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"bench_cpu_path: {' '.join(cmd)} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    log.append("`" + " ".join(os.path.relpath(c, ROOT) if c == args.mora_tune else c for c in cmd) + "`")
    print(f"tuned {d_in}->{d_out} r={r} {op} n={tokens}", flush=True)


# ---- part 1: layers ----

def big_layer(d, r, op, n, rounds):
    """The adapter path at d x d, fwd + bwd, y_base outside the timing: libmora vs the eager reference."""
    torch.manual_seed(0)
    base = nn.Linear(d, d, bias=False)
    lib_layer = libmora.MoRALinear(base, r=r, op=op)
    ref = ReferenceMoRA(base, lib_layer.rhat, op)
    with torch.no_grad():
        lib_layer.M.normal_(0, lib_layer.rhat ** -0.5)
        ref.M.copy_(lib_layer.M)
    x = torch.randn(n, d).requires_grad_(True)
    dy = torch.randn(n, d)
    with torch.no_grad():
        y_base = base(x)

    def lib_fn():
        x.grad = lib_layer.M.grad = None
        libmora.mora_apply(x, lib_layer.M, y_base, lib_layer.rhat, OPS[op]).backward(dy)

    def ref_fn():
        x.grad = ref.M.grad = None
        (y_base + ref.delta(x)).backward(dy)

    lib_fn()
    got = (libmora.mora_apply(x.detach(), lib_layer.M.detach(), y_base, lib_layer.rhat, OPS[op]), x.grad.clone(),
           lib_layer.M.grad.clone())
    ref_fn()
    want = ((y_base + ref.delta(x.detach())).detach(), x.grad.clone(), ref.M.grad.clone())
    diff = max(rel(a, b) for a, b in zip(got, want))
    if not diff < 1e-4:
        sys.exit(f"bench_cpu_path: libmora and the eager reference disagree at {d} {op} r={r}: {diff:.3g}")
    t = interleaved({"libmora": lib_fn, "eager": ref_fn}, rounds)
    return dict(shape=f"{d}→{d}", op=op, r=r, rhat=lib_layer.rhat, n=n, diff=diff, times=t)


def small_layer(d, r, n, rounds):
    """The whole layer, fwd + bwd (dx, and the adapter's gradients), at a small shape."""
    torch.manual_seed(0)
    base = nn.Linear(d, d, bias=False)
    lib_layer = libmora.MoRALinear(base, r=r, op="rope")
    ref = ReferenceMoRA(base, lib_layer.rhat, "rope")
    lora = EagerLoRA(base, r)
    with torch.no_grad():
        lib_layer.M.normal_(0, lib_layer.rhat ** -0.5)
        ref.M.copy_(lib_layer.M)
    x = torch.randn(n, d).requires_grad_(True)
    dy = torch.randn(n, d)

    def run(layer, params):
        def fn():
            x.grad = None
            for p in params:
                p.grad = None
            layer(x).backward(dy)
        return fn

    fns = {"base alone": run(base, []), "eager MoRA": run(ref, [ref.M]), "libmora": run(lib_layer, [lib_layer.M]),
           "LoRA (PEFT-style)": run(lora, [lora.A.weight, lora.B.weight])}
    with torch.no_grad():
        diff = rel(lib_layer(x), ref(x))
    if not diff < 1e-4:
        sys.exit(f"bench_cpu_path: libmora and the eager reference disagree at the small layer: {diff:.3g}")
    base.weight.requires_grad_(False)
    t = interleaved(fns, rounds)
    return dict(shape=f"{d}→{d}", op="rope", r=r, rhat=lib_layer.rhat, n=n, diff=diff, times=t)


# ---- part 2: the Llama step ----

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def llama(hidden, layers, vocab):
    from transformers import LlamaConfig, LlamaForCausalLM
    heads = max(1, hidden // 64)
    cfg = LlamaConfig(hidden_size=hidden, intermediate_size=int(hidden * 11008 / 4096), num_hidden_layers=layers,
                      num_attention_heads=heads, num_key_value_heads=heads, vocab_size=vocab,
                      max_position_embeddings=512)
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg)
    model.train()
    return model


def replace_linears(model, make):
    for name, module in list(model.named_modules()):
        if isinstance(module, nn.Linear) and name.split(".")[-1] in TARGETS:
            parent = model.get_submodule(name.rsplit(".", 1)[0])
            setattr(parent, name.rsplit(".", 1)[1], make(module))


def linear_shapes(model):
    return sorted({(m.in_features, m.out_features) for n, m in model.named_modules()
                   if isinstance(m, nn.Linear) and n.split(".")[-1] in TARGETS})


def llama_rows(hidden, layers, vocab, rounds, have_peft):
    import copy
    batch, seq = 4, 128
    torch.manual_seed(1)
    ids = torch.randint(0, vocab, (batch, seq))
    proto = llama(hidden, layers, vocab)
    variants = {}
    for op in ("rope", "share"):
        m = copy.deepcopy(proto)
        libmora.apply_mora(m, target_modules=TARGETS, r=8, op=op)
        variants[f"libmora MoRA {op}"] = m
        e = copy.deepcopy(proto)
        for p in e.parameters():
            p.requires_grad_(False)
        replace_linears(e, lambda lin, op=op: ReferenceMoRA(lin, rhat_of(lin.in_features, lin.out_features, 8, op), op))
        variants[f"eager MoRA {op}"] = e
    if have_peft:
        import peft
        cfg = peft.LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=TARGETS)
        variants["PEFT LoRA"] = peft.get_peft_model(copy.deepcopy(proto), cfg)
    # the same M in libmora's and the eager model (nonzero: zero would make dx trivially exact)
    torch.manual_seed(2)
    for op in ("rope", "share"):
        lib_ms = [mod.M for mod in variants[f"libmora MoRA {op}"].modules() if isinstance(mod, libmora.MoRALinear)]
        ref_ms = [mod.M for mod in variants[f"eager MoRA {op}"].modules() if isinstance(mod, ReferenceMoRA)]
        with torch.no_grad():
            for a, b in zip(lib_ms, ref_ms):
                a.normal_(0, 0.02 / math.sqrt(a.shape[0]))
                b.copy_(a)
    trainable = {name: sum(p.numel() for p in m.parameters() if p.requires_grad) for name, m in variants.items()}
    checks = {}
    for op in ("rope", "share"):  # the first loss and the gradients of the first adapted M agree
        got = []
        for name in (f"libmora MoRA {op}", f"eager MoRA {op}"):
            m = variants[name]
            m.zero_grad(set_to_none=True)
            loss = m(input_ids=ids, labels=ids).loss
            loss.backward()
            first = next(p for p in m.parameters() if p.requires_grad)
            got.append((loss.detach(), first.grad.clone()))
            m.zero_grad(set_to_none=True)
        checks[op] = max(rel(got[0][0], got[1][0]), rel(got[0][1], got[1][1]))
        if not checks[op] < 1e-3:
            sys.exit(f"bench_cpu_path: libmora's and the eager Llama ({op}) disagree: {checks[op]:.3g}")
    steps = {}
    for name, m in variants.items():
        opt = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-4)

        def step(m=m, opt=opt):
            opt.zero_grad(set_to_none=True)
            m(input_ids=ids, labels=ids).loss.backward()
            opt.step()
        steps[name] = step
    t = interleaved(steps, rounds, pause_s=0.1)
    return dict(hidden=hidden, layers=layers, tokens=batch * seq, shapes=linear_shapes(proto), trainable=trainable,
                checks=checks, times=t)


# ---- the report ----

def machine_lines():
    try:
        model = [l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")][0]
    except (OSError, IndexError):
        model = platform.processor() or "unknown"
    flags = ""
    try:
        words = next(l for l in open("/proc/cpuinfo") if l.startswith("flags")).split()
        flags = ", ".join(f for f in ("avx2", "avx512f", "avx512_bf16", "amx_tile") if f in words)
    except (OSError, StopIteration):
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    lib = _lib.lib()
    lines = [f"CPU: **{model}** ({flags}), {cores} cores for this process; {platform.platform()}",
             f"torch {torch.__version__} ({torch.get_num_threads()} threads; BLAS: "
             f"{'MKL' if torch.backends.mkl.is_available() else 'not MKL'}), Python {platform.python_version()}",
             f"libmora {libmora.version()} at {os.path.relpath(lib._name, ROOT) if hasattr(lib, '_name') else '?'}"]
    try:
        import transformers
        lines.append(f"transformers {transformers.__version__}")
        import peft
        lines[-1] += f", peft {peft.__version__}"
    except ImportError:
        pass
    return lines


def cpu_device_line():
    """The cpu device as libmora describes it: the GEMM providers, their versions and kernel sets."""
    import ctypes
    lib = _lib.lib()
    ctx = ctypes.c_void_p()
    lib.mora_context_create.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(ctypes.c_void_p)]
    if lib.mora_context_create(b"cpu", 0, ctypes.byref(ctx)) != 0:
        return "libmora cpu device: unavailable"
    lib.mora_context_device_name.restype = ctypes.c_char_p
    lib.mora_context_device_name.argtypes = [ctypes.c_void_p]
    name = lib.mora_context_device_name(ctx).decode()
    lib.mora_context_destroy.argtypes = [ctypes.c_void_p]
    lib.mora_context_destroy(ctx)
    return f"libmora cpu device: {name}"


def med(xs):
    return statistics.median(xs) * 1e3


def main():
    torch.set_num_threads(args.threads or (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                                           else os.cpu_count()))
    have_peft = True
    try:
        import peft  # noqa: F401
    except ImportError:
        have_peft = False
        print("peft is not installed (pip install peft): the PEFT LoRA rows are left out", file=sys.stderr)
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short=12", "HEAD"], capture_output=True,
                            text=True).stdout.strip() or "unknown"
    dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                           text=True).stdout.strip()
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    tuned = []
    big = [(4096, 8, "rope"), (4096, 256, "share")]
    if args.tune > 0:
        if "layers" in args.parts:
            for d, r, op in big:
                mora_tune(d, d, r, op, 1024, args.tune, tuned)
            mora_tune(256, 256, 8, "rope", 128, args.tune, tuned)
        if "llama" in args.parts:
            for hidden, layers in args.llama:
                for d_in, d_out in linear_shapes(llama(hidden, 1, 256)):
                    for op in ("rope", "share"):
                        mora_tune(d_in, d_out, 8, op, 512, args.tune, tuned)
    out = ["# libmora's cpu path as shipped vs eager PyTorch MoRA and PEFT LoRA", "",
           f"- command: `python3 bench/python/bench_cpu_path.py {' '.join(sys.argv[1:])}`",
           f"- commit: `{commit}`{' (with uncommitted changes)' if dirty else ''}; date: {started}"]
    out += [f"- {line}" for line in machine_lines()] + [f"- {cpu_device_line()}"]
    out.append(f"- variables set by hand: {', '.join(env_set_by_hand()) or 'none (as shipped)'}")
    if tuned:
        out.append(f"- tuned first ({len(tuned)} runs of mora-tune, {args.tune:g} s each), e.g. {tuned[0]}")
    else:
        out.append("- not tuned by this run (the kernels cache as it was, else the defaults)")
    if args.note:
        out.append(f"- note: {args.note}")
    if "layers" in args.parts:
        out += ["", "## Adapter path, forward + backward (f32, y_base outside the timing)", "",
                "| shape | op | r | r̂ | tokens | libmora ms | eager ms | speed-up | rounds libmora | rounds eager | "
                "rel. diff |", "|---|---|---|---|---|---|---|---|---|---|---|"]
        for d, r, op in big:
            row = big_layer(d, r, op, 1024, args.rounds)
            lt, et = row["times"]["libmora"], row["times"]["eager"]
            print(f"{row['shape']} {op} r={r}: libmora {med(lt):.2f} ms, eager {med(et):.2f} ms "
                  f"({med(et) / med(lt):.2f}x)", flush=True)
            out.append(f"| {row['shape']} | {op} | {r} | {row['rhat']} | {row['n']} | {med(lt):.2f} | {med(et):.2f} | "
                       f"**{med(et) / med(lt):.2f}×** | {' '.join(f'{v * 1e3:.1f}' for v in lt)} | "
                       f"{' '.join(f'{v * 1e3:.1f}' for v in et)} | {row['diff']:.1e} |")
        row = small_layer(256, 8, 128, args.rounds)
        base = med(row["times"]["base alone"])
        out += ["", f"## Small layer: {row['shape']}, rope r = 8 (r̂ = {row['rhat']}), {row['n']} tokens, the whole "
                "layer forward + backward", "", "| variant | ms | overhead over the base, ms | rounds |",
                "|---|---|---|---|"]
        for name, ts in row["times"].items():
            over = "—" if name == "base alone" else f"{med(ts) - base:.3f}"
            out.append(f"| {name} | {med(ts):.3f} | {over} | {' '.join(f'{v * 1e3:.3f}' for v in ts)} |")
            print(f"small layer {name}: {med(ts):.3f} ms", flush=True)
    if "llama" in args.parts:
        for hidden, layers in args.llama:
            row = llama_rows(hidden, layers, args.vocab, args.rounds, have_peft)
            shapes = ", ".join(f"{a}→{b}" for a, b in row["shapes"])
            out += ["", f"## Llama step: hidden {hidden}, {layers} layers, vocabulary {args.vocab}, "
                    f"{row['tokens']} tokens (4 × 128), AdamW", "",
                    f"Adapted: the 7 projections of every layer ({shapes}); agreement of libmora with the eager "
                    "reference (first loss and gradient, relative): " +
                    ", ".join(f"{op} {v:.1e}" for op, v in row["checks"].items()), "",
                    "| variant | trainable parameters | step ms | vs eager MoRA (same op) | vs PEFT LoRA | rounds |",
                    "|---|---|---|---|---|---|"]
            lora = med(row["times"]["PEFT LoRA"]) if "PEFT LoRA" in row["times"] else None
            for name, ts in row["times"].items():
                op = name.split()[-1]
                eager = row["times"].get(f"eager MoRA {op}")
                vs_eager = f"{med(eager) / med(ts):.2f}× faster" if name.startswith("libmora") and eager else "—"
                vs_lora = f"{med(ts) / lora:.2f}× its time" if lora and name != "PEFT LoRA" else "—"
                out.append(f"| {name} | {row['trainable'][name]:,} | {med(ts):.1f} | {vs_eager} | {vs_lora} | "
                           f"{' '.join(f'{v * 1e3:.0f}' for v in ts)} |")
                print(f"llama {hidden}/{layers} {name}: {med(ts):.1f} ms", flush=True)
    load1 = os.getloadavg()
    out.append("")
    out.append(f"Load average (1, 5, 15 min): {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f} at the start, "
               f"{load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f} at the end; {time.perf_counter() - t0:.0f} s in all.")
    text = "\n".join(out) + "\n"
    if args.md:
        with open(args.md, "w") as f:
            f.write(text)
        print(f"wrote {args.md}")
    else:
        print(text)


if __name__ == "__main__":
    main()
