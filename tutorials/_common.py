r"""What the tutorial chapters share: the command line, where figures go, how numbers are shown.

Every chapter is run the same way, from the repository root::

    python tutorials/01_forward_process.py            # the full chapter
    python tutorials/01_forward_process.py --quick    # a fast run (seconds), as the tests do
    python tutorials/01_forward_process.py --out DIR  # figures into DIR instead of tutorials/out/

Figures are PNG files (and one GIF) named after their chapter, ``01_*.png``, ``02_*.png`` ...
Key numbers are printed one per line as ``name = value  (comment)`` so that a reader can
compare them with the text and the tests can parse them.

This file is plumbing, not a chapter; the one thing in it about diffusion is
:func:`toy_model_recipe`, the model that chapters 4 and 5 both train, kept here so the two agree.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO_ROOT / "tutorials" / "out"

# One BLAS thread (unless the reader says otherwise), set before NumPy loads; the chapters therefore take
# NumPy from here (``from _common import np``). Their matrices are small (a batch of 256 points through 64
# units): OpenBLAS's threads then cost more than they save, and on a busy 2-core machine they made training
# and the likelihood ODE ten times slower.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

# Run from a fresh clone without installing: put the repository on the path if npdiff is not importable.
try:  # pragma: no cover - depends on how the reader installed npdiff
    import npdiff  # noqa: F401
except ImportError:  # pragma: no cover
    sys.path.insert(0, str(REPO_ROOT))

import matplotlib  # noqa: E402

matplotlib.use("Agg")  # files only, never a window: the chapters also run on servers and in CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

__all__ = ["Chapter", "np", "plt", "toy_model_recipe"]


class Chapter:
    r"""One chapter's run: its arguments, its output folder, its clock and its printed numbers.

    Parameters
    ----------
    number : the chapter number (prefix of every file it writes).
    title : shown on the first line of the output.
    argv : command-line arguments (default: ``sys.argv[1:]``).
    """

    def __init__(self, number: int, title: str, argv: list[str] | None = None) -> None:
        parser = argparse.ArgumentParser(description=f"npdiff tutorial, chapter {number}: {title}")
        parser.add_argument("--quick", action="store_true", help="a fast run with fewer points and steps (seconds)")
        parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"folder for the figures (default {DEFAULT_OUT})")
        parser.add_argument("--seed", type=int, default=0, help="seed of every random draw in the chapter (default 0)")
        self.args = parser.parse_args(argv)
        self.number = number
        self.quick: bool = self.args.quick
        self.out: Path = self.args.out
        self.out.mkdir(parents=True, exist_ok=True)
        self.seed: int = self.args.seed
        self._t0 = time.perf_counter()
        mode = "quick run" if self.quick else "full run"
        print(f"npdiff tutorial {number:02d}: {title} ({mode}, seed {self.seed})")

    def rng(self, stream: int) -> np.random.Generator:
        r"""A Generator for one named part of the chapter: same seed and stream, same numbers."""
        return np.random.default_rng([self.seed, self.number, stream])

    def pick(self, quick: object, full: object) -> object:
        r"""``quick`` in a quick run, ``full`` otherwise."""
        return quick if self.quick else full

    def path(self, name: str) -> Path:
        r"""Where the file ``NN_name`` of this chapter goes."""
        return self.out / f"{self.number:02d}_{name}"

    def save(self, fig: matplotlib.figure.Figure, name: str, dpi: int = 110) -> Path:
        r"""Write ``fig`` as ``NN_name.png`` into the output folder, close it, say where it went."""
        path = self.path(f"{name}.png")
        fig.savefig(path, dpi=dpi)
        plt.close(fig)
        rel = os.path.relpath(path)
        print(f"figure: {path if rel.startswith('..') else rel}")
        return path

    @staticmethod
    def section(title: str) -> None:
        r"""A heading in the printed output."""
        print(f"\n-- {title} " + "-" * max(0, 66 - len(title)))

    @staticmethod
    def show(name: str, value: float, note: str = "") -> float:
        r"""Print one key number as ``name = value  (note)``; refuse a NaN or infinity (a bug, not a result)."""
        value = float(value)
        if not math.isfinite(value):
            raise FloatingPointError(f"{name} is {value}: the chapter has a bug")
        text = f"{value:.6g}" if value == 0 or 1e-3 <= abs(value) < 1e5 else f"{value:.3e}"
        print(f"  {name} = {text}" + (f"  ({note})" if note else ""))
        return value

    def done(self) -> None:
        print(f"\nchapter {self.number:02d} done in {time.perf_counter() - self._t0:.1f} s")


def toy_model_recipe(quick: bool):
    r"""The MLP and training settings of chapters 4 and 5: npdiff's ``"2d"`` recipe, smaller when quick.

    Returns (MLPConfig, dict of TrainConfig fields, schedule).
    """
    from npdiff.nn import MLPConfig
    from npdiff.recipes import recipe

    model_kw, train_kw, schedule = recipe("2d")
    if quick:  # a small network and a short run: seconds, at the price of a looser fit
        model_kw.update(width=64, depth=2, emb_dim=32)
        train_kw.update(steps=4000, lr=1e-2)  # 2,000 steps at 3e-3 still blur the 8 modes into a ring
    return MLPConfig(dim=2, **model_kw), train_kw, schedule


# =============================================================================================
# Helpers of chapters 5-8 (gallery cells): keep a figure open for the page, say where it went
# =============================================================================================


def save_figure(ch: Chapter, fig: matplotlib.figure.Figure, name: str, dpi: int = 110) -> Path:
    r"""Write ``fig`` as ``NN_name.png`` into the chapter's folder and leave it open.

    A cell that ends with its figure still open shows it on the site (sphinx-gallery's
    matplotlib scraper takes the figures open at the end of a cell); a plain run leaves it open
    on the Agg backend, which costs nothing. The printed path is the file's name only: it sits in
    the folder given by ``--out``.
    """
    path = ch.path(f"{name}.png")
    fig.savefig(path, dpi=dpi)
    print(f"figure: {path.name}")
    return path


def show_png(path: Path, dpi: int = 110) -> matplotlib.figure.Figure:
    r"""A figure that shows a PNG written by library code (which saves and closes its own figures)."""
    img = plt.imread(path)
    fig = plt.figure(figsize=(img.shape[1] / dpi, img.shape[0] / dpi), dpi=dpi)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.imshow(img, interpolation="nearest")
    ax.axis("off")
    return fig


def paired_gap(log_p_true: np.ndarray, log_p_model: np.ndarray) -> tuple[float, float]:
    r"""The mean over points of ``log_p_true - log_p_model``, and its standard error."""
    d = np.asarray(log_p_true) - np.asarray(log_p_model)
    return float(d.mean()), float(d.std(ddof=1) / np.sqrt(d.size))


def mean_se(values: np.ndarray, ddof: int = 1) -> tuple[float, float]:
    r"""The mean of ``values`` and its standard error ``std / sqrt(n)`` (``ddof`` as NumPy's)."""
    values = np.asarray(values)
    return float(values.mean()), float(values.std(ddof=ddof) / np.sqrt(values.size))


def tile_images(images: np.ndarray, cols: int, side: int = 8) -> np.ndarray:
    r"""(N, side*side) images as one array of tiles, ``cols`` across, NaN in the one-pixel gutters."""
    rows = -(-images.shape[0] // cols)
    step = side + 1
    grid = np.full((rows * step - 1, cols * step - 1), np.nan)
    for k, img in enumerate(images):
        r, c = divmod(k, cols)
        grid[step * r: step * r + side, step * c: step * c + side] = img.reshape(side, side)
    return grid


def kl_note(r) -> str:
    r"""The note printed beside a sampler's KL (a ``npdiff.likelihood.SamplerKL``): its error,
    and "not estimable" where the sampler folds space (some det dF/dz <= 0), since there the
    change of variables counts one preimage only and the figure is not a KL."""
    note = f"+- {r.se_cv:.1g}"
    if r.density.folded:
        note += f"; not estimable: the map folds {r.density.folded} of {r.terms.size} points"
    return note


def require_close(got: np.ndarray, want: np.ndarray, what: str, tol: float = 1e-12) -> None:
    r"""Stop the chapter if ``got`` and ``want`` differ by more than ``tol`` (relative and absolute)."""
    if not np.allclose(got, want, rtol=tol, atol=tol):
        worst = float(np.max(np.abs(np.asarray(got) - np.asarray(want))))
        raise AssertionError(f"{what}: off by {worst:.3g}, more than {tol:g}: the chapter has a bug")
