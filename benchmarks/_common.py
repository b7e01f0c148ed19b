r"""Shared set-up of the benchmarks: a briefly trained default model, thread counts, timing."""

from __future__ import annotations

import ast
import dataclasses
import os
import platform
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from npdiff.data import toy2d
from npdiff.nn import MLPConfig
from npdiff.nn.fast.workers import threads
from npdiff.recipes import recipe
from npdiff.train import TrainConfig, train

MODEL_FIELDS = {f.name for f in dataclasses.fields(MLPConfig)} - {"dim"}
TRAIN_FIELDS = {f.name for f in dataclasses.fields(TrainConfig)}


def split_overrides(pairs: list[str]) -> tuple[dict, dict]:
    r"""``--set`` values ``["width=256", "lr=2e-3"]`` -> (MLPConfig overrides, TrainConfig overrides); unknown fields exit."""
    model_kw, train_kw = {}, {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep:
            raise SystemExit(f"--set wants FIELD=VALUE, got {pair!r}")
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = text  # a bare word such as gelu or cosine
        if key not in MODEL_FIELDS | TRAIN_FIELDS:
            raise SystemExit(f"unknown field {key!r}; model: {sorted(MODEL_FIELDS)}, training: {sorted(TRAIN_FIELDS)}")
        (model_kw if key in MODEL_FIELDS else train_kw)[key] = value
    return model_kw, train_kw


def trained_default_model(steps: int, seed: int = 0, **overrides):
    r"""The default 2d recipe's model trained for ``steps`` on 8gaussians (realistic stiffness)."""
    model_kw, train_kw, schedule = recipe("2d")
    model_kw.update(overrides)
    train_kw["steps"] = steps
    model, _ = train(MLPConfig(dim=2, **model_kw), toy2d.load("8gaussians"), rng=seed, schedule=schedule,
                     progress=False, **train_kw)
    return model


def blas_threads() -> int:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return os.cpu_count() or 1
    info = [i for i in threadpool_info() if i["user_api"] == "blas"]
    return int(info[0]["num_threads"]) if info else (os.cpu_count() or 1)


def torch_or_none():
    if os.environ.get("NPDIFF_NO_TORCH"):
        return None
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(cores_used())
    return torch


def cores_used() -> int:
    r"""Threads npdiff may use: its BLAS threads or its worker threads (``NPDIFF_THREADS``), whichever is more.

    The PyTorch peer gets the same count, so neither side has more cores than the other.
    """
    return max(blas_threads(), threads())


def machine_facts() -> str:
    r"""Cores, CPU, numpy and its BLAS with its threads, npdiff's worker threads, PyTorch if installed."""
    blas = "unknown BLAS"
    try:
        from threadpoolctl import threadpool_info

        info = [i for i in threadpool_info() if i["user_api"] == "blas"]
        if info:
            blas = f"{info[0]['internal_api']} {info[0].get('version')} ({info[0].get('architecture')})"
    except ImportError:
        pass
    torch = torch_or_none()
    peer = f"torch {torch.__version__} with {torch.get_num_threads()} thread(s)" if torch else "torch not installed"
    return (f"{os.cpu_count()} cores ({platform.processor() or platform.machine()}); numpy {np.__version__}, {blas} "
            f"with {blas_threads()} thread(s); npdiff worker threads {threads()}; {peer}; "
            f"{time.strftime('%Y-%m-%d %H:%M')}")


def load() -> str:
    r"""The 1-minute load average: above ~0.5 on an otherwise idle machine, something else competes for the cores."""
    return f"{os.getloadavg()[0]:.2f}"


def summary(values) -> str:
    r"""``median (min-max)`` of a list of figures."""
    v = np.asarray(values, dtype=np.float64)

    def fmt(a: float) -> str:
        return f"{a:.0f}" if abs(a) >= 100 else f"{a:.3g}"

    return f"{fmt(np.median(v))} ({fmt(v.min())}-{fmt(v.max())})"


def alternate(ours, theirs, pairs: int) -> tuple[list, list, list]:
    r"""Run ``ours()`` and ``theirs()`` in alternation, ``pairs`` times each; each returns a figure (seconds).

    Returns the figures of each side and, per pair of neighbouring runs, the ratio theirs / ours (so a burst
    of a neighbouring process hits both sides of a pair). ``theirs`` may be None (npdiff only).
    """
    mine, peer, ratio = [], [], []
    for _ in range(pairs):
        mine.append(ours())
        if theirs is not None:
            peer.append(theirs())
            ratio.append(peer[-1] / mine[-1])
    return mine, peer, ratio


def timed(fn):
    r"""``fn`` as a callable that returns its wall time in seconds (and keeps its last result in ``.out``)."""

    def run() -> float:
        t0 = time.perf_counter()
        run.out = fn()
        return time.perf_counter() - t0

    run.out = None
    return run


def best_time(fn, repeats: int) -> tuple[float, object]:
    r"""Best wall time of ``repeats`` calls (on a shared machine the slow runs time the neighbours)."""
    best, out = np.inf, None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out
