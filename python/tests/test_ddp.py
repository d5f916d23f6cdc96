"""Data parallel is torch's: two processes under DistributedDataParallel (gloo, CPU, spawned) end with
the same M as one process trained on the union of their batches."""
from __future__ import annotations

import os
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import libmora
from conftest import note, rel_err

STEPS, BATCH, D_IN, D_HID, D_OUT = 5, 16, 40, 56, 24


def build():
    torch.manual_seed(11)
    model = torch.nn.Sequential(torch.nn.Linear(D_IN, D_HID), torch.nn.Tanh(), torch.nn.Linear(D_HID, D_OUT))
    libmora.apply_mora(model, target_modules=["0", "2"], r=4, op="rope")
    return model


def data():
    g = torch.Generator().manual_seed(12)
    xs = torch.randn(STEPS, BATCH, D_IN, generator=g)
    ys = torch.randn(STEPS, BATCH, D_OUT, generator=g)
    return xs, ys


def run(model, xs, ys):
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for x, y in zip(xs, ys):
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()  # a mean: DDP's gradient average matches
        opt.step()


def worker(rank, world, port, out):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        model = torch.nn.parallel.DistributedDataParallel(build())
        xs, ys = data()
        half = BATCH // world
        run(model, xs[:, rank * half:(rank + 1) * half], ys[:, rank * half:(rank + 1) * half])
        torch.save({n: m.M.detach().clone() for n, m in libmora.mora_layers(model.module)}, f"{out}.{rank}")
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_equals_union_of_batches(tmp_path):
    out = str(tmp_path / "M")
    mp.spawn(worker, args=(2, free_port(), out), nprocs=2, join=True)
    single = build()
    xs, ys = data()
    run(single, xs, ys)
    ranks = [torch.load(f"{out}.{r}") for r in range(2)]
    worst = 0.0
    for name, m in libmora.mora_layers(single):
        assert torch.equal(ranks[0][name], ranks[1][name]), f"{name}: the two ranks differ"
        assert m.M.abs().max() > 0
        err = rel_err(ranks[0][name], m.M)
        worst = max(worst, err)
        assert err <= 1e-5, f"{name}: DDP vs one process on the union: {err:.3e}"
    note(f"DDP (2 processes, gloo) vs one process on the union of the batches: relative difference of M {worst:.3e}")
