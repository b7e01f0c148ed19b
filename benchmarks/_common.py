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


def mean_se(v: np.ndarray) -> tuple[float, float]:
    r"""The mean of per-item figures v (n,) and its standard error, std (ddof = 1) / sqrt(n)."""
    return float(v.mean()), float(v.std(ddof=1) / np.sqrt(v.size))


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


# -- results files ------------------------------------------------------------------------------------
RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def cpu_model() -> str:
    r"""The CPU's model name from ``/proc/cpuinfo`` (the platform's processor string elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def versions(torch: bool = False) -> dict:
    r"""The versions of what the figures depend on: Python, numpy, scipy, numba (and torch if it was used)."""
    import numba
    import scipy

    out = {"python": platform.python_version(), "numpy": np.__version__, "scipy": scipy.__version__,
           "numba": numba.__version__}
    if torch:
        import torch as _t

        out["torch"] = _t.__version__
    return out


def thread_settings() -> dict:
    r"""BLAS library, its version and threads (threadpoolctl), npdiff's worker threads, the BLAS variables set."""
    out: dict = {"cores": os.cpu_count(), "npdiff_threads": threads()}
    try:
        from threadpoolctl import threadpool_info

        out["pools"] = [{k: i.get(k) for k in ("user_api", "internal_api", "version", "architecture", "num_threads")}
                        for i in threadpool_info()]
    except ImportError:
        out["pools"] = []
    out["env"] = {k: os.environ[k] for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                                             "NPDIFF_THREADS", "NUMBA_NUM_THREADS") if k in os.environ}
    return out


def command_line() -> str:
    r"""The command that reproduces the run: ``python benchmarks/NAME.py ARGS`` from the repository root."""
    import shlex

    script = os.path.relpath(os.path.abspath(sys.argv[0]), os.path.join(os.path.dirname(RESULTS), ".."))
    return " ".join(["python", script.replace(os.sep, "/")] + [shlex.quote(a) for a in sys.argv[1:]])


def write_results(name: str, rows: list[dict], *, columns: list[str] | None = None, notes: dict | None = None,
                  torch: bool = False, directory: str | None = None) -> str:
    r"""Write ``benchmarks/results/NAME.json``: the figures as rows of named columns, and their provenance.

    Parameters
    ----------
    name : str
        The file's stem (the name the docs' ``results-table`` directive takes).
    rows : list of dict
        One dict per table row, the same keys in every row (JSON numbers, strings or null).
    columns : list of str, optional
        The columns in their order (default: the first row's keys).
    notes : dict, optional
        Settings of the run that the figures depend on (sizes, tolerances), kept beside them.
    torch : bool
        Whether PyTorch was used (its version is then recorded).
    directory : str, optional
        Where to write (default ``benchmarks/results``).

    Returns
    -------
    str
        The path written.
    """
    import json

    if not rows:
        raise ValueError(f"write_results({name!r}): no rows to write")
    columns = list(columns or rows[0])
    missing = [(i, c) for i, r in enumerate(rows) for c in columns if c not in r]
    if missing:
        raise ValueError(f"write_results({name!r}): rows lack columns {missing[:5]}")
    doc = {
        "name": name,
        "command": command_line(),
        "date": time.strftime("%Y-%m-%d"),
        "cpu": cpu_model(),
        "versions": versions(torch),
        "threads": thread_settings(),
        "columns": columns,
        "rows": [{c: _plain(r[c]) for c in columns} for r in rows],
        "notes": {k: _plain(v) for k, v in (notes or {}).items()},
    }
    directory = directory or RESULTS
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, f"{name}.json")
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    os.replace(tmp, path)  # a reader never sees half a file
    print(f"wrote {os.path.relpath(path)}", file=sys.stderr)
    return path


def _plain(v):
    r"""NumPy scalars and arrays as JSON's numbers and lists; NaN and inf as null."""
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, np.ndarray):
        return [_plain(a) for a in v.tolist()]
    if isinstance(v, (list, tuple)):
        return [_plain(a) for a in v]
    if isinstance(v, float) and not np.isfinite(v):
        return None
    return v
