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

__all__ = [
    "Chapter",
    "central_difference",
    "corner_note",
    "draw_density",
    "max_gradient_error",
    "max_relative_error",
    "np",
    "plt",
    "relative_max_error",
    "save_animation",
    "scatter_panel",
    "show_memorization",
    "show_moments",
    "show_posterior_regression",
    "show_sampler_quality",
    "show_standard_normal",
    "toy_model_recipe",
]


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
        r"""Write ``fig`` as ``NN_name.png`` into the output folder and say which file it is.

        The figure stays open: in the gallery, sphinx-gallery's matplotlib scraper shows the figures
        open at the end of a code cell (and closes them), so each figure appears right after the cell
        that draws it. The printed name is the file's name inside the ``--out`` folder.
        """
        path = self.path(f"{name}.png")
        fig.savefig(path, dpi=dpi)
        print(f"figure: {path.name}")
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


# -- checking helpers of chapters 1-4: the comparisons, so that a chapter's cells show the math ------------


def central_difference(f, x: np.ndarray, direction: np.ndarray, h: float) -> np.ndarray:
    r"""The derivative of ``f`` at ``x`` along ``direction``, ``(f(x + h d) - f(x - h d)) / 2h``.

    Exact up to :math:`O(h^2)` plus the rounding error of ``f`` over ``2h``.
    """
    return (f(x + h * direction) - f(x - h * direction)) / (2 * h)


def max_relative_error(a: np.ndarray, b: np.ndarray, floor: float = 1.0) -> float:
    r"""``max |a - b| / (floor + |b|)``: relative where ``b`` is large, absolute where it is small."""
    return float(np.max(np.abs(a - b) / (floor + np.abs(b))))


def relative_max_error(a: np.ndarray, b: np.ndarray) -> float:
    r"""``max |a - b| / max |b|``: the largest error on the scale of the reference ``b``."""
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def max_gradient_error(loss, params: list[np.ndarray], grads: list[np.ndarray], h: float, floor: float,
                       coords: np.ndarray | None = None) -> float:
    r"""Largest ``|central difference - g_i| / max(floor, |g_i|)`` over the weights of ``params``.

    ``loss(params)`` is evaluated with one weight moved by ``+h`` and ``-h`` at a time (in place, then
    restored); ``grads`` is the hand-written gradient, one array per entry of ``params``; ``coords``
    restricts the check to these indices of each array (default: every weight).
    """
    worst = 0.0
    for p, g in zip(params, grads):
        for i in np.ndindex(p.shape) if coords is None else coords:
            old = p[i]
            p[i] = old + h
            up = loss(params)
            p[i] = old - h
            down = loss(params)
            p[i] = old
            worst = max(worst, abs((up - down) / (2 * h) - g[i]) / max(floor, abs(g[i])))
    return worst


def show_moments(name: str, mean_err: float, var_ratio: float, n: int) -> None:
    r"""Print how far the sample mean and variance of ``x_t`` are from the closed form (chapter 1)."""
    Chapter.show(f"{name}: max |mean(x_t) - sqrt(ab) mean(x_0)|", mean_err, f"Monte Carlo error ~ {1 / np.sqrt(n):.2g}")
    Chapter.show(f"{name}: max var(x_t) / (ab var(x_0) + 1 - ab)", var_ratio, "1 up to Monte Carlo error")


def show_standard_normal(label: str, z: np.ndarray) -> None:
    r"""Print the mean, variance and correlation of the two coordinates of ``z`` (n, 2): 0, 1 and 0."""
    Chapter.show(f"{label}: mean", z.mean(), "0 up to Monte Carlo error")
    Chapter.show(f"{label}: variance", z.var(), "1 up to Monte Carlo error")
    Chapter.show(f"{label}: correlation of the 2 coordinates", np.corrcoef(z.T)[0, 1], "0: the noise is isotropic")


def show_posterior_regression(slope: float, intercept: float, resid_var: float, c_t: float, c0x0: float,
                              var_post: float, xt: np.ndarray) -> None:
    r"""Print the least-squares fit of x_s on x_t against the closed-form posterior (chapter 2).

    ``c_t`` and ``c0x0`` are the closed form's coefficient of x_t and its term in x_0, ``var_post`` its
    variance; ``xt`` (n, 1) the regressor. Each line gives three standard errors of least squares:
    Var[slope] = s^2 / (n Var x_t), Var[intercept] = s^2 (1 + mean^2 / Var x_t) / n, and the relative
    standard error of a Gaussian sample variance, sqrt(2 / n).
    """
    n = xt.shape[0]
    var_xt, mean_xt = xt.var(), xt.mean()
    se_slope = np.sqrt(resid_var / (n * var_xt)) / abs(c_t)
    se_icpt = np.sqrt(resid_var * (1.0 + mean_xt**2 / var_xt) / n)
    se_var = np.sqrt(2.0 / n)
    Chapter.show("regression slope / closed-form coefficient of x_t", slope / c_t, f"1 within 3 se = {3 * se_slope:.2g}")
    Chapter.show("regression intercept - closed-form c_0 x_0", intercept - c0x0, f"0 within 3 se = {3 * se_icpt:.2g}")
    Chapter.show("residual variance / closed-form posterior variance", resid_var / var_post,
                 f"1 within 3 se = {3 * se_var:.2g}")


def show_sampler_quality(name: str, label: str, res, data, ref: np.ndarray, count_support: bool) -> str:
    r"""Print how close a sampler's result ``res`` is to ``data`` (chapter 3); return a note for its panel.

    The energy distance to the reference set ``ref``, and either the share of samples where the data's
    density is positive (``count_support``, for a set such as the checkerboard whose density is 0 off its
    squares) or the mean true log-density of the samples plus the entropy (0 for a right sampler).
    """
    from npdiff import metrics

    Chapter.show(f"{name}: {label} energy distance to data", metrics.energy_distance(res.x, ref),
                 f"{res.nfe} evaluations")
    if count_support:
        on = np.mean(np.isfinite(data.log_prob(res.x)))
        Chapter.show(f"{name}: {label} fraction of samples on the squares", on, "1 for data")
        return f"on squares {on:.1%}"
    mean, se = metrics.mean_log_density(res.x, data)
    Chapter.show(f"{name}: {label} mean log p(samples) + H", mean + data.entropy,
                 f"0 within ~{3 * se:.2g}; H = {data.entropy:.4f}")
    return f"mean log p + H = {mean + data.entropy:+.3f}"


def show_memorization(label: str, dist: np.ndarray, nearest: np.ndarray, n_train: int) -> None:
    r"""Print how many samples are copies of a training point (chapter 3).

    ``dist`` (n,) is each sample's distance to its nearest training point, ``nearest`` (n,) that point's index.
    """
    Chapter.show(f"{label}: median distance to the nearest training point", np.median(dist))
    Chapter.show(f"{label}: fraction within 1e-3 of a training point", np.mean(dist < 1e-3))
    Chapter.show(f"{label}: distinct training points reached", np.unique(nearest[dist < 1e-3]).size,
                 f"of N = {n_train}")


# -- drawing helpers: the styling every 2-D panel shares ------------------------------------------------------


def draw_density(ax, density: np.ndarray, lim: float, points: np.ndarray | None = None, **imshow) -> None:
    r"""A square panel: ``density`` (G, G) on [-lim, lim]^2 as an image, ``points`` (n, 2) as black dots.

    ``imshow`` overrides the colour map (blue from 0) or sets a ``norm``.
    """
    style = {"cmap": "Blues"} | ({} if "norm" in imshow else {"vmin": 0}) | imshow
    ax.imshow(density, extent=(-lim, lim, -lim, lim), origin="lower", **style)
    if points is not None:
        ax.scatter(points[:, 0], points[:, 1], s=1.5, c="k", alpha=0.5, linewidths=0)
    ax.set(xlim=(-lim, lim), ylim=(-lim, lim), xticks=[], yticks=[], aspect="equal")


def corner_note(ax, text: str, fontsize: float = 7) -> None:
    r"""A small note in the lower left corner of a panel."""
    ax.text(0.03, 0.03, text, transform=ax.transAxes, fontsize=fontsize, color="0.2")


def scatter_panel(ax, x: np.ndarray, title: str, color: str, note: str = "", lim: float = 4.2) -> None:
    r"""A square panel of the 2-D points ``x`` (n, 2) with a title and an optional note in its corner."""
    ax.scatter(x[:, 0], x[:, 1], s=1.0, alpha=0.5, c=color, linewidths=0)
    ax.set(xlim=(-lim, lim), ylim=(-lim, lim), xticks=[], yticks=[], aspect="equal")
    ax.set_title(title, fontsize=10)
    if note:
        ax.text(0.03, 0.03, note, transform=ax.transAxes, fontsize=7.5)


def save_animation(chapter: Chapter, flow, frames: np.ndarray, name: str, title: str, dot_size: float,
                   dpi: int, n_trails: int = 12):
    r"""Animate a recorded trajectory (``flow.trajectory`` (steps + 1, n, 2) at ``flow.times``) as a GIF.

    ``frames`` are the recorded states shown, in order; ``n_trails`` points leave a trail. The GIF goes to
    the chapter's output folder as ``NN_name``; the figure stays open (its last frame) and the animation
    is returned, so that a gallery can show either.
    """
    from matplotlib.animation import FuncAnimation, PillowWriter

    traj = flow.trajectory
    fig, ax = plt.subplots(figsize=(4.2, 4.2))
    trail_ids = np.arange(min(n_trails, traj.shape[1]))
    dots = ax.scatter(traj[0, :, 0], traj[0, :, 1], s=dot_size, c="k", alpha=0.6, linewidths=0)
    trails = [ax.plot([], [], lw=0.8, color="C3", alpha=0.8)[0] for _ in trail_ids]
    text = ax.set_title(f"{title}, t = 1.000", fontsize=10)  # a placeholder for tight_layout
    ax.set(xlim=(-4, 4), ylim=(-4, 4), xticks=[], yticks=[], aspect="equal")
    fig.tight_layout()

    def draw(k: int) -> list:
        f = frames[k]
        dots.set_offsets(traj[f])
        for line, i in zip(trails, trail_ids):
            line.set_data(traj[: f + 1, i, 0], traj[: f + 1, i, 1])
        text.set_text(f"{title}, t = {flow.times[f]:.3f}")
        return [dots, *trails, text]

    anim = FuncAnimation(fig, draw, frames=len(frames), blit=False)
    path = chapter.path(name)
    anim.save(path, writer=PillowWriter(fps=10), dpi=dpi)
    print(f"animation: {path.name}")
    return anim


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
    r"""The note printed beside a sampler's KL (a ``npdiff.likelihood.SamplerKL``): its error."""
    return f"+- {r.se_cv:.1g}"


def show_kl(name: str, r) -> float:
    r"""Print a sampler's KL (a ``npdiff.likelihood.SamplerKL``) and return it, or print "not estimable
    (...)" and return NaN where the map folds space (some det dF/dz <= 0: the change of variables counts
    one preimage only) or E[q/p_F] is not 1: there the figure would not be a KL."""
    if r.estimable:
        return Chapter.show(name, r.kl_cv, kl_note(r))
    print(f"  {name}: {r}")
    return float("nan")


def require_close(got: np.ndarray, want: np.ndarray, what: str, tol: float = 1e-12) -> None:
    r"""Stop the chapter if ``got`` and ``want`` differ by more than ``tol`` (relative and absolute)."""
    if not np.allclose(got, want, rtol=tol, atol=tol):
        worst = float(np.max(np.abs(np.asarray(got) - np.asarray(want))))
        raise AssertionError(f"{what}: off by {worst:.3g}, more than {tol:g}: the chapter has a bug")
