r"""Speed and memory of npdiff's U-Net against the same network in PyTorch (CPU), one thread each.

    python benchmarks/unet_speed.py                        # everything below, batches 16, 64, 256
    python benchmarks/unet_speed.py --only conv train --batch 64 --pairs 5

Four measurements, each npdiff and PyTorch in alternating windows (npdiff, PyTorch, npdiff, ...) so
that a neighbour's burst hits both windows of a pair; each figure is the median of its windows with
their range, and each ratio is taken per pair:

- ``conv``: one 3x3 convolution (zero padding 1) of a batch of 8x8 images, 32 -> 32 channels, forward
  and backward (weights and input), float32: npdiff's reference layer (:mod:`npdiff.nn.unet.conv`, im2col
  and one matrix multiply each way) against ``torch.nn.functional.conv2d`` with autograd, and the
  share of the machine's own sgemm rate it reaches (a 512 x 512 x 512 float32 product through the same
  BLAS, measured in the same run): that share is the limit any im2col convolution could reach here.
- ``train``: training steps per second, the whole step (batch, noise, forward, backward, clipping, AdamW,
  EMA), float32, the default U-Net of the digits recipe on 8x8 digits, at each ``--batch``. npdiff's
  step is :meth:`npdiff.train.Trainer.train_step`, the code users run; PyTorch's is the same network
  (``benchmarks/_torch_unet.py``) with its fused AdamW, the same clipping and EMA.
- ``divergence``: evaluations per second of eps and its exact divergence (the trace of the 64 x 64
  Jacobian), float64 as the likelihood runs it, on a batch of 8 images: npdiff's
  ``eps_and_divergence`` (64 tangents in one batched forward-mode pass) against ``torch.func.jvp`` under
  ``torch.func.vmap`` over the 64 unit tangents.
- ``memory``: peak memory of training (``--memory-steps`` steps at the largest batch) and of the exact
  likelihood (``--memory-evals`` evaluations of eps and its divergence at the likelihood's chunk of 60
  images), each in a fresh process: the peak resident set (``VmHWM``), and the peak of the arrays
  Python and NumPy allocated (``tracemalloc``; Numba's own allocations are not traced).

Before timing, the script checks that the PyTorch network with npdiff's weights computes the same eps
(float64, to 1e-5). One thread each: numpy's BLAS and Numba through threadpoolctl, PyTorch through
``torch.set_num_threads(1)``. The figures go to ``benchmarks/results/unet_speed.json`` (``conv``,
``train`` and ``divergence`` rows) and ``benchmarks/results/unet_memory.json``.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from _common import machine_facts, summary, write_results  # noqa: E402

from npdiff.nn.unet.conv import conv3x3, conv3x3_backward  # noqa: E402

PARTS = ("conv", "train", "divergence", "memory")


def window(fn, seconds: float) -> float:
    r"""Calls of ``fn`` per second over one window of at least ``seconds``."""
    n, t0 = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        dt = time.perf_counter() - t0
        if dt >= seconds:
            return n / dt


def alternating(ours, theirs, pairs: int, seconds: float) -> tuple[np.ndarray, np.ndarray]:
    r"""Rates of ``ours`` and ``theirs`` in ``pairs`` alternating windows (after one warm-up window each)."""
    window(ours, seconds / 2)
    if theirs is not None:
        window(theirs, seconds / 2)
    mine, peer = [], []
    for _ in range(pairs):
        mine.append(window(ours, seconds))
        if theirs is not None:
            peer.append(window(theirs, seconds))
    return np.array(mine), np.array(peer)


def row(part: str, size: int, unit: str, mine: np.ndarray, peer: np.ndarray, **extra) -> dict:
    r"""One results row: medians and ranges of both sides and of the per-pair ratio npdiff / PyTorch."""
    ratio = mine / peer if peer.size else np.array([np.nan])
    peer = peer if peer.size else np.array([np.nan])
    out = {"part": part, "batch": size, "unit": unit,
           "npdiff": np.median(mine), "npdiff_min": mine.min(), "npdiff_max": mine.max(),
           "torch": np.median(peer), "torch_min": peer.min(), "torch_max": peer.max(),
           "ratio": np.median(ratio), "ratio_min": ratio.min(), "ratio_max": ratio.max(),
           "share": None, "sgemm_gflops": None, "gflops": None}
    out.update(extra)
    return out


# -- the machine's sgemm rate and one convolution -----------------------------------------------------
def sgemm_gflops(seconds: float, n: int = 512) -> float:
    r"""GFLOP/s of one float32 n x n x n matrix product through numpy's BLAS (2 n^3 flops)."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, n), dtype=np.float32), rng.standard_normal((n, n), dtype=np.float32)
    out = np.empty((n, n), np.float32)
    return window(lambda: np.matmul(a, b, out=out), seconds) * 2 * n**3 / 1e9


def conv_part(torch, batch: int, pairs: int, seconds: float, C: int = 32, H: int = 8) -> dict:
    r"""One 3x3 convolution C -> C on (batch, C, H, H), forward and backward: npdiff's layer against PyTorch's."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, C, H, H), dtype=np.float32)
    W = (rng.standard_normal((C, C, 3, 3)) / np.sqrt(9 * C)).astype(np.float32)
    b = np.zeros(C, np.float32)
    dy = rng.standard_normal((batch, C, H, H), dtype=np.float32)

    def ours() -> None:
        _, cols = conv3x3(x, W, b)
        conv3x3_backward(dy, cols, W, x.shape)

    theirs = None
    if torch is not None:
        xt, Wt = torch.from_numpy(x).requires_grad_(True), torch.from_numpy(W).requires_grad_(True)
        bt, dyt = torch.from_numpy(b).requires_grad_(True), torch.from_numpy(dy)

        def theirs() -> None:
            y = torch.nn.functional.conv2d(xt, Wt, bt, padding=1)
            torch.autograd.grad(y, (xt, Wt, bt), dyt)

        y_np, _ = conv3x3(x, W, b)
        y_t = torch.nn.functional.conv2d(xt, Wt, bt, padding=1).detach().numpy()
        assert np.abs(y_np - y_t).max() < 1e-4, "npdiff's and PyTorch's convolutions differ"
    sgemm = sgemm_gflops(seconds)
    mine, peer = alternating(ours, theirs, pairs, seconds)
    sgemm = max(sgemm, sgemm_gflops(seconds))  # before and after: the better of two windows
    flops = 3 * 2 * batch * H * H * C * 9 * C  # forward, weight gradient, input gradient: one product each
    gflops = np.median(mine) * flops / 1e9
    r = row("conv", batch, "forward + backward per second", mine, peer, share=gflops / sgemm, sgemm_gflops=sgemm,
            gflops=gflops)
    print(f"conv 3x3 {C}->{C} on {batch}x{C}x{H}x{H}: npdiff {summary(mine)}/s ({gflops:.1f} GFLOP/s, "
          f"{100 * gflops / sgemm:.0f}% of sgemm's {sgemm:.1f} GFLOP/s)"
          + (f", torch {summary(peer)}/s, ratio per pair {summary(mine / peer)}x" if peer.size else ""), flush=True)
    return r


# -- training ---------------------------------------------------------------------------------------------
def digits_train() -> np.ndarray:
    r"""The 1,437 training digits (N, 64) on the 17 levels mapped to [-1, 1]."""
    from npdiff.data.images import digits

    return np.asarray(digits().train, dtype=np.float64)


def npdiff_step(batch: int, data: np.ndarray):
    r"""npdiff's training step (:meth:`npdiff.train.Trainer.train_step`) on the default U-Net, eps-prediction."""
    from npdiff.nn.unet import UNetConfig
    from npdiff.nn.unet.model import DiffusionUNet
    from npdiff.schedule import vp_linear
    from npdiff.train import TrainConfig, Trainer

    rng = np.random.default_rng(0)
    model = DiffusionUNet(UNetConfig(), vp_linear(), rng=rng)
    cfg = TrainConfig(steps=10**7, batch_size=batch, lr=1e-4, clip_norm=1.0, ema_decay=0.999, t_min=1e-5)
    return Trainer(model, data, cfg, rng).train_step


def torch_step(torch, batch: int, data: np.ndarray):
    r"""The same step in PyTorch: the same network, fused AdamW, clipping, EMA with the same warm-up."""
    from _torch_unet import TorchUNet

    from npdiff.nn.unet import UNetConfig
    from npdiff.schedule import vp_linear

    torch.manual_seed(0)
    net = TorchUNet(UNetConfig(), vp_linear(), dtype=torch.float32)
    params = list(net.parameters())
    ema = [p.detach().clone() for p in params]
    opt = torch.optim.AdamW(params, lr=1e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, fused=True)
    x_all = torch.from_numpy(data.astype(np.float32))
    state = {"step": 0}

    def step() -> float:
        x0 = x_all[torch.randint(0, x_all.shape[0], (batch,))]
        t = torch.rand(batch) * (1.0 - 1e-5) + 1e-5
        eps = torch.randn(batch, x_all.shape[1])
        log_ab = -(0.1 * t + 0.5 * (20.0 - 0.1) * t * t)  # vp_linear
        xt = torch.exp(0.5 * log_ab)[:, None] * x0 + torch.sqrt(-torch.expm1(log_ab))[:, None] * eps
        loss = torch.mean((net(xt, t) - eps) ** 2)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        state["step"] += 1
        s = state["step"]
        with torch.no_grad():
            torch._foreach_lerp_(ema, params, 1.0 - min(0.999, (1 + s) / (10 + s)))
        return loss.item()

    return step


def train_part(torch, batch: int, pairs: int, seconds: float, data: np.ndarray) -> dict:
    mine, peer = alternating(npdiff_step(batch, data), torch_step(torch, batch, data) if torch else None, pairs, seconds)
    print(f"train batch {batch}: npdiff {summary(mine)} steps/s"
          + (f", torch {summary(peer)} steps/s, ratio per pair {summary(mine / peer)}x" if peer.size else ""), flush=True)
    return row("train", batch, "steps per second", mine, peer)


# -- the exact divergence ----------------------------------------------------------------------------------
def test_model(seed: int = 0):
    r"""The default U-Net with weights away from ADM's zero initialization (every branch active), float64."""
    from npdiff.nn.unet import UNetConfig
    from npdiff.nn.unet.model import DiffusionUNet
    from npdiff.schedule import vp_linear

    cfg = UNetConfig()
    rng = np.random.default_rng(seed)
    params = cfg.init_params(rng, np.float64) + 0.05 * rng.standard_normal(cfg.n_params)
    return DiffusionUNet(cfg, vp_linear(), params)


def divergence_part(torch, batch: int, pairs: int, seconds: float) -> dict:
    model = test_model()
    rng = np.random.default_rng(1)
    x, t = rng.standard_normal((batch, model.dim)), rng.uniform(0.05, 1.0, batch)
    theirs = None
    if torch is not None:
        from _torch_unet import check_same_function, eps_and_divergence, peer_of

        peer = peer_of(model, torch.float64)
        err = check_same_function(model, peer, np.random.default_rng(2))
        xt, tt = torch.from_numpy(x), torch.from_numpy(t)
        with torch.no_grad():
            _, div_t = eps_and_divergence(peer, xt, tt)
        _, div_np = model.eps_and_divergence(x, t)
        div_err = float(np.abs(div_np - div_t.numpy()).max())
        assert div_err < 1e-6 * max(1.0, float(np.abs(div_np).max())), f"divergences differ by {div_err:.2e}"
        print(f"same function: eps differs by {err:.1e}, the exact divergence by {div_err:.1e} (float64)", flush=True)

        def theirs() -> None:
            with torch.no_grad():
                eps_and_divergence(peer, xt, tt)

    mine, peer_rates = alternating(lambda: model.eps_and_divergence(x, t), theirs, pairs, seconds)
    mine, peer_rates = mine * batch, peer_rates * batch  # images per second
    print(f"exact divergence, batch {batch} (float64): npdiff {summary(mine)} images/s"
          + (f", torch.func.jvp+vmap {summary(peer_rates)} images/s, ratio per pair {summary(mine / peer_rates)}x"
             if peer_rates.size else ""), flush=True)
    return row("divergence", batch, "images per second (eps and exact divergence, float64)", mine, peer_rates)


# -- memory, each in a fresh process -----------------------------------------------------------------------
def measure_memory(kind: str, batch: int, repeats: int) -> dict:
    r"""Peak memory of ``repeats`` training steps or likelihood evaluations, in this (fresh) process."""
    import tracemalloc

    if kind == "train":
        work = npdiff_step(batch, digits_train())
    else:
        model = test_model()
        rng = np.random.default_rng(1)
        x, t = rng.standard_normal((batch, model.dim)), rng.uniform(0.05, 1.0, batch)

        def work() -> None:
            model.eps_and_divergence(x, t)

    work()  # compile and allocate once, outside the trace, so the trace sees the steady state too
    base = peak_rss_mb()
    tracemalloc.start()
    for _ in range(repeats):
        work()
    traced = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return {"rss_mb": peak_rss_mb(), "rss_after_first_mb": base, "traced_mb": traced}


def peak_rss_mb() -> float:
    r"""This process's peak resident set, MB: ``VmHWM`` of its own memory map.

    Not ``ru_maxrss``: Linux carries the parent's peak into a child across fork and exec, so a fresh
    process started by a benchmark that already trained would report the benchmark's peak.
    """
    with open("/proc/self/status", encoding="utf-8") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise OSError("no VmHWM in /proc/self/status")


def memory_rows(train_batch: int, steps: int, evals: int) -> list[dict]:
    rows = []
    for kind, batch, repeats in (("train", train_batch, steps), ("likelihood", 60, evals)):
        cmd = [sys.executable, os.path.abspath(__file__), "--measure-memory", kind, "--batch", str(batch),
               "--repeats", str(repeats)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
        m = json.loads(out)
        what = (f"{repeats} training steps, batch {batch}, float32" if kind == "train"
                else f"{repeats} evaluations of eps and its exact divergence, {batch} images, float64")
        print(f"memory, {what}: peak RSS {m['rss_mb']:.0f} MB, peak traced arrays {m['traced_mb']:.0f} MB", flush=True)
        rows.append({"work": kind, "what": what, "batch": batch, **m})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", nargs="*", choices=PARTS, default=list(PARTS))
    ap.add_argument("--batch", type=int, nargs="*", default=[16, 64, 256], help="training batches")
    ap.add_argument("--conv-batch", type=int, default=64, help="images of the convolution")
    ap.add_argument("--div-batch", type=int, default=8, help="images of one exact-divergence evaluation")
    ap.add_argument("--seconds", type=float, default=1.0, help="length of one timing window")
    ap.add_argument("--pairs", type=int, default=5, help="alternating windows per side")
    ap.add_argument("--memory-steps", type=int, default=5)
    ap.add_argument("--memory-evals", type=int, default=3)
    ap.add_argument("--measure-memory", choices=("train", "likelihood"), help=argparse.SUPPRESS)
    ap.add_argument("--repeats", type=int, default=3, help=argparse.SUPPRESS)
    ap.add_argument("--no-torch", action="store_true")
    args = ap.parse_args()

    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    import numba

    numba.set_num_threads(1)
    if args.measure_memory:
        print(json.dumps(measure_memory(args.measure_memory, args.batch[0], args.repeats)))
        return
    torch = None
    if not args.no_torch:
        try:
            import torch

            torch.set_num_threads(1)
        except ImportError:
            torch = None
    print(machine_facts(), flush=True)
    rows = []
    if "conv" in args.only:
        rows.append(conv_part(torch, args.conv_batch, args.pairs, args.seconds))
    if "train" in args.only:
        data = digits_train()
        rows += [train_part(torch, b, args.pairs, args.seconds, data) for b in args.batch]
    if "divergence" in args.only:
        rows.append(divergence_part(torch, args.div_batch, args.pairs, args.seconds))
    if rows:
        write_results("unet_speed", rows, torch=torch is not None,
                      notes={"pairs": args.pairs, "seconds": args.seconds, "threads": 1, "torch_adamw": "fused"})
    if "memory" in args.only:
        write_results("unet_memory", memory_rows(max(args.batch), args.memory_steps, args.memory_evals),
                      notes={"threads": 1})


if __name__ == "__main__":
    main()
