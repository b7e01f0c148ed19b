r"""Training speed of npdiff's MLP against the same model in PyTorch (CPU), steps per second.

    python benchmarks/train_speed.py                 # batch sizes 32, 256, 4096
    python benchmarks/train_speed.py --batch 256 --seconds 1.0 --pairs 5

Both sides train the default 2D model (tiny-diffusion's: sinusoidal embeddings of 1000 t and
of 25 x_d, 128 wide, 3 residual GELU blocks), float32, eps-prediction with plain MSE, t ~
U(1e-5, 1) under the VP-linear schedule, AdamW (lr 1e-3, betas 0.9/0.999, eps 1e-8, no weight
decay), global-norm clipping at 1.0 and an EMA of the weights (0.999, with the same warm-up),
on minibatches drawn with replacement from one fixed array of 8gaussians points. A step is
everything: drawing the batch, noising it, forward, backward, clip, update, EMA. npdiff's
step is :meth:`npdiff.train.Trainer.train_step`, the code users run.

PyTorch is optional (never a dependency of npdiff); it is imported only if installed, runs
with ``torch.set_num_threads`` equal to the BLAS threads numpy uses (threadpoolctl), and
uses its fastest AdamW on CPU (``fused=True``; ``--torch-adamw foreach`` or ``loop`` for the
others). The two are measured in alternating windows (npdiff, PyTorch, npdiff, ...); the script
prints the median and range of each side's steps per second and of the per-pair ratio (a
neighbour's burst hits both windows of a pair).

Run it on an idle machine: with another job on one of the 2 cores, every 2-thread matmul
waits for its descheduled second thread, and both libraries slow down 10-20 fold (seen here:
npdiff 45 -> 2.3 steps/s at batch 4096). ``--threads 1`` is far less sensitive to neighbours.

The matmul fraction is the time the step's own matmuls take when replayed alone (same
shapes, same buffers, same call sequence, recorded from one step) over the step's time:
the share of the step that is BLAS, the physical floor of this design. The figures go to
``benchmarks/results/train_speed.json``.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from functools import partial

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from _common import summary, write_results

import npdiff.nn.fast.network as fast_network
from npdiff.nn import MLPConfig
from npdiff.nn.model import DiffusionMLP
from npdiff.schedule import vp_linear
from npdiff.train import TrainConfig, Trainer

CENTRES = 4.0 * np.array([(np.cos(k * np.pi / 4), np.sin(k * np.pi / 4)) for k in range(8)]) / 1.414


def eight_gaussians(n: int, rng: np.random.Generator) -> np.ndarray:
    return CENTRES[rng.integers(0, 8, n)] + (0.5 / 1.414) * rng.standard_normal((n, 2))


def blas_threads() -> tuple[int, str]:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return os.cpu_count() or 1, "unknown (threadpoolctl not installed)"
    info = [i for i in threadpool_info() if i["user_api"] == "blas" and "scipy_openblas64_" in i["filepath"]]
    info = info or [i for i in threadpool_info() if i["user_api"] == "blas"]
    if not info:
        return os.cpu_count() or 1, "unknown"
    i = info[0]
    return int(i["num_threads"]), f"{i['internal_api']} {i.get('version')} ({i.get('architecture')})"


# -- npdiff ---------------------------------------------------------------------------------------


def npdiff_trainer(batch: int, data: np.ndarray) -> Trainer:
    rng = np.random.default_rng(0)
    model = DiffusionMLP(MLPConfig(), vp_linear(), rng=rng)
    cfg = TrainConfig(steps=10**6, batch_size=batch, lr=1e-3, clip_norm=1.0, ema_decay=0.999, t_min=1e-5)
    return Trainer(model, data, cfg, rng)


class _MatmulRecorder:
    r"""Stands in for numpy inside the fast path (npdiff.nn.fast.network) for one step, recording every matmul call."""

    def __init__(self) -> None:
        self.calls: list[tuple[np.ndarray, np.ndarray, np.ndarray | None]] = []

    def matmul(self, a, b, out=None):
        self.calls.append((a, b, out))
        return np.matmul(a, b, out=out)

    def __getattr__(self, name):
        return getattr(np, name)


def record_matmuls(trainer: Trainer) -> list[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
    rec = _MatmulRecorder()
    fast_network.np = rec
    try:
        trainer.train_step()
    finally:
        fast_network.np = np
    return rec.calls


def replay(calls: list) -> None:
    for a, b, out in calls:
        np.matmul(a, b, out=out)


# -- PyTorch ----------------------------------------------------------------------------------------


def torch_stepper(batch: int, data: np.ndarray, threads: int, adamw: str):
    import math

    import torch
    from torch import nn

    torch.set_num_threads(threads)
    torch.manual_seed(0)

    class SinEmb(nn.Module):
        def __init__(self, size: int, scale: float) -> None:
            super().__init__()
            half = size // 2
            self.scale = scale
            self.register_buffer("freq", torch.exp(-math.log(1e4) * torch.arange(half) / (half - 1)))

        def forward(self, s):
            phase = (self.scale * s)[:, None] * self.freq[None, :]
            return torch.cat([torch.sin(phase), torch.cos(phase)], dim=-1)

    class Block(nn.Module):
        def __init__(self, h: int) -> None:
            super().__init__()
            self.ff = nn.Linear(h, h)
            self.act = nn.GELU()

        def forward(self, x):
            return x + self.act(self.ff(x))

    class MLP(nn.Module):
        def __init__(self, h: int = 128, depth: int = 3, emb: int = 128) -> None:
            super().__init__()
            self.t_emb, self.x_emb = SinEmb(emb, 1000.0), SinEmb(emb, 25.0)
            layers = [nn.Linear(3 * emb, h), nn.GELU()] + [Block(h) for _ in range(depth)] + [nn.Linear(h, 2)]
            self.net = nn.Sequential(*layers)

        def forward(self, x, t):
            return self.net(torch.cat([self.x_emb(x[:, 0]), self.x_emb(x[:, 1]), self.t_emb(t)], dim=-1))

    model = MLP()
    params = list(model.parameters())
    ema = [p.detach().clone() for p in params]
    kw = {"fused": {"fused": True}, "foreach": {"foreach": True}, "loop": {"foreach": False}}[adamw]
    opt = torch.optim.AdamW(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, **kw)
    x_all = torch.from_numpy(data.astype(np.float32))
    n_data = x_all.shape[0]
    state = {"step": 0}

    def step() -> float:
        idx = torch.randint(0, n_data, (batch,))
        x0 = x_all[idx]
        t = torch.rand(batch) * (1.0 - 1e-5) + 1e-5
        eps = torch.randn(batch, 2)
        log_ab = -(0.1 * t + 0.5 * (20.0 - 0.1) * t * t)  # vp_linear
        xt = torch.exp(0.5 * log_ab)[:, None] * x0 + torch.sqrt(-torch.expm1(log_ab))[:, None] * eps
        loss = torch.mean((model(xt, t) - eps) ** 2)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        state["step"] += 1
        s = state["step"]
        decay = min(0.999, (1 + s) / (10 + s))
        with torch.no_grad():
            torch._foreach_lerp_(ema, params, 1.0 - decay)
        return loss.item()

    return step


# -- timing ---------------------------------------------------------------------------------------


def window(step, seconds: float) -> float:
    n, t0 = 0, time.perf_counter()
    while True:
        step()
        n += 1
        dt = time.perf_counter() - t0
        if dt >= seconds:
            return n / dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, nargs="*", default=[32, 256, 4096])
    ap.add_argument("--seconds", type=float, default=0.3, help="length of one timing window")
    ap.add_argument("--pairs", type=int, default=8, help="alternating windows per side")
    ap.add_argument("--torch-adamw", choices=["fused", "foreach", "loop"], default="fused")
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--threads", type=int, default=None,
                    help="limit numpy's BLAS and Numba to this many threads (threadpoolctl); torch gets the same")
    args = ap.parse_args()

    if args.threads is not None:
        import numba
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.threads, user_api="blas")
        numba.set_num_threads(args.threads)
    threads, blas = blas_threads()
    try:
        if args.no_torch:
            raise ImportError
        import torch

        torch_version = torch.__version__
    except ImportError:
        torch_version = None
    print(f"cpu: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; numpy {np.__version__}, "
          f"BLAS {blas}, {threads} threads")
    print(f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')} "
          f"OPENBLAS_L2_SIZE={os.environ.get('OPENBLAS_L2_SIZE', '(unset)')}")
    if torch_version:
        print(f"torch {torch_version}, set_num_threads({threads}), AdamW {args.torch_adamw}")
    else:
        print("torch not installed: npdiff only")
    data = eight_gaussians(100_000, np.random.default_rng(1))
    rows = []
    for batch in args.batch:
        trainer = npdiff_trainer(batch, data)
        ours = trainer.train_step
        theirs = torch_stepper(batch, data, threads, args.torch_adamw) if torch_version else None
        warm = max(0.2, args.seconds / 4)
        window(ours, warm)  # compile (first time) and warm caches
        if theirs:
            window(theirs, warm)
        calls = record_matmuls(trainer)
        rates_ours, rates_theirs, rates_mm = [], [], []
        for _ in range(args.pairs):  # alternate: a pair's two windows see the same neighbours
            rates_ours.append(window(ours, args.seconds))
            if theirs:
                rates_theirs.append(window(theirs, args.seconds))
            rates_mm.append(window(partial(replay, calls), args.seconds / 2))
        share = np.median(rates_ours) / np.median(rates_mm)  # (seconds of matmul per step) / (seconds per step)
        line = f"batch {batch}: npdiff {summary(rates_ours)} steps/s"
        if theirs:
            line += (f", torch {summary(rates_theirs)} steps/s, ratio per pair "
                     f"{summary(np.array(rates_ours) / np.array(rates_theirs))}x")
        print(f"{line}; matmul share {100 * share:.0f}% ({len(calls)} matmuls/step)", flush=True)
        ratio = np.array(rates_ours) / np.array(rates_theirs) if theirs else None
        rows.append({"batch": batch, "npdiff": float(np.median(rates_ours)), "npdiff_min": float(np.min(rates_ours)),
                     "npdiff_max": float(np.max(rates_ours)),
                     "torch": float(np.median(rates_theirs)) if theirs else None,
                     "torch_min": float(np.min(rates_theirs)) if theirs else None,
                     "torch_max": float(np.max(rates_theirs)) if theirs else None,
                     "ratio": float(np.median(ratio)) if theirs else None,
                     "ratio_min": float(np.min(ratio)) if theirs else None,
                     "ratio_max": float(np.max(ratio)) if theirs else None,
                     "matmul_share": float(share)})
    write_results("train_speed", rows, torch=bool(torch_version),
                  notes={"unit": "steps per second", "pairs": args.pairs, "seconds": args.seconds,
                         "torch_adamw": args.torch_adamw if torch_version else None})


if __name__ == "__main__":
    main()
