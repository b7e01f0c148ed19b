r"""Figures used by the tutorials and the command line (matplotlib, non-interactive backend)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from .schedule import Schedule


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | os.PathLike, title: str = "", dpi: int = 110) -> None:
    # every figure ends the same way: optional overall title, tight layout, PNG, and the figure freed
    if title:
        fig.suptitle(title)
    if fig.get_layout_engine() is None:  # a figure made with layout="constrained" lays itself out
        fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    _pyplot().close(fig)


def plot_schedules(schedules: Sequence[Schedule], path: str | os.PathLike) -> None:
    r"""Draw alpha_bar(t), log-SNR(t) and beta(t) of each schedule side by side into ``path``."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for s in schedules:
        t = np.linspace(0.0, s.t_max, 500)
        axes[0].plot(t, s.alpha_bar(t), label=s.name)
        axes[1].plot(t[1:], s.log_snr(t[1:]), label=s.name)
        axes[2].semilogy(t, s.beta(t), label=s.name)
    for ax, title in zip(axes, [r"$\bar\alpha(t)$", r"$\lambda(t) = \log$ SNR", r"$\beta(t)$"]):
        ax.set_title(title)
        ax.set_xlabel("t")
        ax.grid(alpha=0.3)
    axes[0].legend()
    _save(fig, path)


def plot_samples(samples: np.ndarray, data: np.ndarray | None, path: str | os.PathLike, *, title: str = "") -> None:
    r"""Scatter model samples (N, 2) beside data (M, 2), on shared axes; one title, over both panels."""
    plt = _pyplot()
    panels = [("data", data), ("samples", samples)] if data is not None else [("samples", samples)]
    pts = np.concatenate([p for _, p in panels if p is not None])
    lo, hi = np.quantile(pts, 0.001, axis=0), np.quantile(pts, 0.999, axis=0)
    pad = 0.1 * (hi - lo)
    lo, hi = lo - pad, hi + pad
    aspect = np.clip((hi[1] - lo[1]) / (hi[0] - lo[0]), 0.6, 1.6)  # the figure takes the data's shape: no empty margins
    fig, axes = plt.subplots(1, len(panels), figsize=(4.0 * len(panels), 4.0 * aspect + 0.7), squeeze=False,
                             sharex=True, sharey=True)
    for ax, (name, p) in zip(axes[0], panels):
        ax.scatter(p[:, 0], p[:, 1], s=2, alpha=0.4, color="C0" if name == "data" else "C1")
        ax.set_xlim(lo[0], hi[0])
        ax.set_ylim(lo[1], hi[1])
        ax.set_aspect("equal")
        ax.set_title(f"{title or name} ({p.shape[0]} points)" if len(panels) == 1 else f"{name} ({p.shape[0]} points)")
    _save(fig, path, title if len(panels) > 1 else "")


def plot_trajectory(trajectory: np.ndarray, times: np.ndarray, path: str | os.PathLike, *, panels: int = 6,
                    title: str = "the probability-flow ODE carries noise at t = 1 (left) to data (right)") -> None:
    r"""Snapshots of a recorded reverse trajectory (K + 1, N, 2), from noise (left) to data (right), on shared axes."""
    plt = _pyplot()
    idx = np.unique(np.round(np.linspace(0, len(times) - 1, panels)).astype(int))
    fig, axes = plt.subplots(1, len(idx), figsize=(2.6 * len(idx), 3.3), sharex=True, sharey=True, squeeze=False,
                             layout="constrained")
    lim = float(np.quantile(np.abs(trajectory), 0.999)) * 1.05
    for ax, k in zip(axes[0], idx):
        ax.scatter(trajectory[k, :, 0], trajectory[k, :, 1], s=1, alpha=0.4)
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
        ax.set_title(f"t = {times[k]:.3f}")
        ax.set_xlabel("$x_1$")
    axes[0, 0].set_ylabel("$x_2$")
    _save(fig, path, f"{title} ({trajectory.shape[1]} points)" if title else "")


def plot_density(grid_x: np.ndarray, grid_y: np.ndarray, log_p_model: np.ndarray, log_p_true: np.ndarray | None,
                 path: str | os.PathLike) -> None:
    r"""Heat maps of the learned density (and the true one) on a grid; log-densities of shape (G, G)."""
    plt = _pyplot()
    maps = [("model density", log_p_model)] + ([("true density", log_p_true)] if log_p_true is not None else [])
    fig, axes = plt.subplots(1, len(maps), figsize=(4.0 * len(maps) + 1.0, 3.9), squeeze=False, layout="constrained")
    vmax = max(float(np.exp(m).max()) for _, m in maps)  # one colour scale for both, so they compare
    for ax, (name, m) in zip(axes[0], maps):
        mesh = ax.pcolormesh(grid_x, grid_y, np.exp(m), shading="auto", cmap="magma", vmin=0.0, vmax=vmax)
        ax.set_aspect("equal")
        ax.set_title(name)
        ax.set_xlabel("$x_1$")
    axes[0, 0].set_ylabel("$x_2$")
    fig.colorbar(mesh, ax=axes[0].tolist(), label="density p(x)", shrink=0.85)
    _save(fig, path)


def plot_loss(loss: np.ndarray, path: str | os.PathLike, *, space: str = "eps") -> None:
    r"""The training loss per step with a running mean over 1% of the run.

    ``space`` names the loss: the squared error per dimension measured in eps, x0 or v space
    (:mod:`npdiff.objective`), as the trainer's ``loss_kind`` says.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.plot(loss, lw=0.5, alpha=0.35, label="per step")
    w = max(1, len(loss) // 100)
    if len(loss) > w:
        smooth = np.convolve(loss, np.ones(w) / w, mode="valid")
        ax.plot(np.arange(w - 1, len(loss)), smooth, lw=1.5, label=f"mean over {w} steps")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel(f"squared error in {space} space")
    ax.set_title(f"training loss: squared error per dimension in {space} space")
    ax.grid(alpha=0.3)
    ax.legend()
    _save(fig, path)


def plot_kl_vs_nfe(panels: dict[str, tuple[dict[str, np.ndarray], float | None]], path: str | os.PathLike, *,
                   floor: float = 1e-6) -> None:
    r"""KL(p_F || data) against denoiser evaluations, one line per sampler, one panel per model.

    ``panels`` maps a title to (curves, flow): curves map a label to a (3, K) array of nfe, KL and its
    standard error; ``flow`` is the converged flow's KL (a dotted line) or None. KLs below ``floor`` are
    drawn at it (log axes).
    """
    plt = _pyplot()
    cols = min(3, len(panels))
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.8 * cols, 3.9 * rows), squeeze=False)
    for ax, (title, (curves, flow)) in zip(axes.ravel(), panels.items()):
        for k, (label, (nfe, kl, se)) in enumerate(curves.items()):
            style = dict(color="k", ls="--") if label.startswith("ddim (uniform") else dict(color=f"C{k % 10}")
            ax.errorbar(nfe, np.maximum(kl, floor), yerr=se, marker="o", ms=3, lw=1.2, capsize=2, label=label, **style)
        if flow is not None:
            ax.axhline(max(flow, floor), color="grey", ls=":", lw=1.2, label="flow (RK45)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("denoiser evaluations")
        ax.set_ylabel("KL (nats)")
        ax.set_title(title)
        ax.grid(alpha=0.3, which="both")
    for ax in axes.ravel()[len(panels):]:
        ax.axis("off")
    axes.ravel()[0].legend(fontsize=7, ncol=2)
    _save(fig, path)


# -- images -----------------------------------------------------------------------------------------


def _image_grid(images: np.ndarray, shape: tuple[int, int], cols: int, pad: int = 1) -> np.ndarray:
    # tile (N, H*W) images in [-1, 1] into one (rows*(H+pad)-pad, cols*(W+pad)-pad) array, NaN between tiles
    h, w = shape
    n = images.shape[0]
    rows = -(-n // cols)
    grid = np.full((rows * (h + pad) - pad, cols * (w + pad) - pad), np.nan)
    for k in range(n):
        r, c = divmod(k, cols)
        grid[r * (h + pad): r * (h + pad) + h, c * (w + pad): c * (w + pad) + w] = images[k].reshape(h, w)
    return grid


def plot_image_grid(samples: np.ndarray, real: np.ndarray | None, path: str | os.PathLike, *,
                    shape: tuple[int, int] = (8, 8), cols: int = 10, title: str = "") -> None:
    r"""Model samples (N, H*W) as a grid of images beside real images (M, H*W), both in [-1, 1].

    Values are clipped to [-1, 1] (the data range) and drawn in grey, white ink on black.
    """
    plt = _pyplot()
    panels = [("samples", samples)] + ([("real digits", real)] if real is not None else [])
    grids = [_image_grid(np.clip(np.asarray(imgs, dtype=np.float64), -1.0, 1.0), shape, cols) for _, imgs in panels]
    aspect = max(g.shape[0] for g in grids) / grids[0].shape[1]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 4.6 * aspect + 0.8), squeeze=False)
    cmap = plt.get_cmap("gray").with_extremes(bad="#6f8fb3")  # bad: the gutters between tiles
    for ax, (name, imgs), grid in zip(axes[0], panels, grids):
        ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=-1.0, vmax=1.0, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"{title or name} ({imgs.shape[0]})" if len(panels) == 1 else f"{name} ({imgs.shape[0]})")
    _save(fig, path, title if len(panels) > 1 else "", dpi=90)


def plot_image_table(images: np.ndarray, path: str | os.PathLike, *, row_labels: Sequence[str] = (),
                     col_labels: Sequence[str] = (), shape: tuple[int, int] = (8, 8), title: str = "") -> None:
    r"""A table of images (R, C, H*W) in [-1, 1], one labelled row a kind (original, masked, a method's output).

    NaN pixels (a mask's missing part) are drawn in the gutters' blue-grey; the rest clipped to [-1, 1] in grey.
    """
    plt = _pyplot()
    images = np.asarray(images, dtype=np.float64)
    n_rows, n_cols = images.shape[:2]
    h, w = shape
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(1.0 * n_cols + 1.4, 1.0 * n_rows + 0.5), squeeze=False)
    cmap = plt.get_cmap("gray").with_extremes(bad="#6f8fb3")
    for r in range(n_rows):
        for c in range(n_cols):
            ax = axes[r, c]
            img = np.ma.masked_invalid(np.clip(images[r, c].reshape(h, w), -1.0, 1.0))
            ax.imshow(img, cmap=cmap, vmin=-1.0, vmax=1.0, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0 and r < len(row_labels):
                ax.set_ylabel(row_labels[r], rotation=0, ha="right", va="center", fontsize=8)
            if r == 0 and c < len(col_labels):
                ax.set_title(col_labels[c], fontsize=8)
    _save(fig, path, title, dpi=90)


def plot_vlb_terms(terms_bpd: np.ndarray, path: str | os.PathLike, *, times: np.ndarray | None = None,
                   title: str = "") -> None:
    r"""The per-step terms of the variational bound in bits/dim, (T + 1,): L_0 (decoder), L_1..L_{T-1}, L_T (prior).

    Drawn against the step index t (or ``times``), log-scaled, with the cumulative sum from
    t = 0 on a second axis: where the bound's bits are spent.
    """
    plt = _pyplot()
    terms_bpd = np.asarray(terms_bpd, dtype=np.float64)
    T = terms_bpd.shape[0] - 1
    x = np.arange(T + 1) if times is None else np.asarray(times, dtype=np.float64)
    fig, ax = plt.subplots(figsize=(6.6, 3.8))
    ax.semilogy(x[1:T], np.maximum(terms_bpd[1:T], 1e-8), ".-", ms=3, lw=0.8, label=r"$L_{t-1}$ (KL terms)")
    ax.semilogy(x[:1], [max(terms_bpd[0], 1e-8)], "s", color="C3", label=r"$L_0$ (decoder)")
    ax.semilogy(x[T:], [max(terms_bpd[T], 1e-8)], "^", color="C2", label=r"$L_T$ (prior)")
    ax.set_xlabel("t" if times is not None else "chain step t")
    ax.set_ylabel("bits/dim")
    ax.grid(alpha=0.3)
    ax2 = ax.twinx()
    ax2.plot(x, np.cumsum(terms_bpd), color="k", lw=1.2, alpha=0.7, label="cumulative")
    ax2.set_ylabel("cumulative bits/dim")
    lines = ax.get_legend_handles_labels()[0] + ax2.get_legend_handles_labels()[0]
    ax.legend(lines, [h.get_label() for h in lines], fontsize=8, loc="upper center")
    ax.set_title(title or f"VLB terms (total {terms_bpd.sum():.3f} bits/dim)")
    _save(fig, path)


def plot_reverse_process(trajectory: np.ndarray, times: np.ndarray, path: str | os.PathLike, *,
                         shape: tuple[int, int] = (8, 8), panels: int = 10) -> None:
    r"""One image along a recorded reverse trajectory (K + 1, D), noise (left) to data (right).

    Each panel is scaled to its own range (noise spans about +-3, data [-1, 1]), so both are visible.
    """
    plt = _pyplot()
    trajectory = np.asarray(trajectory, dtype=np.float64)
    idx = np.unique(np.round(np.linspace(0, len(times) - 1, panels)).astype(int))
    fig, axes = plt.subplots(1, len(idx), figsize=(1.3 * len(idx), 1.6))
    for ax, k in zip(np.atleast_1d(axes), idx):
        img = trajectory[k].reshape(shape)
        lim = max(1.0, float(np.abs(img).max()))
        ax.imshow(img, cmap="gray", vmin=-lim, vmax=lim, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"t={times[k]:.2f}", fontsize=8)
    _save(fig, path)
