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
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_samples(samples: np.ndarray, data: np.ndarray | None, path: str | os.PathLike, *, title: str = "") -> None:
    r"""Scatter model samples (N, 2) beside data (M, 2), on shared axes."""
    plt = _pyplot()
    panels = [("data", data), ("samples", samples)] if data is not None else [("samples", samples)]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4.2), squeeze=False)
    pts = np.concatenate([p for _, p in panels if p is not None])
    lo, hi = np.quantile(pts, 0.001, axis=0), np.quantile(pts, 0.999, axis=0)
    pad = 0.1 * (hi - lo)
    for ax, (name, p) in zip(axes[0], panels):
        ax.scatter(p[:, 0], p[:, 1], s=2, alpha=0.4, color="C0" if name == "data" else "C1")
        ax.set_xlim(lo[0] - pad[0], hi[0] + pad[0])
        ax.set_ylim(lo[1] - pad[1], hi[1] + pad[1])
        ax.set_aspect("equal")
        ax.set_title(f"{name} ({p.shape[0]} points)")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_trajectory(trajectory: np.ndarray, times: np.ndarray, path: str | os.PathLike, *, panels: int = 6) -> None:
    r"""Snapshots of a recorded reverse trajectory (K + 1, N, 2), from noise (left) to data (right)."""
    plt = _pyplot()
    idx = np.unique(np.round(np.linspace(0, len(times) - 1, panels)).astype(int))
    fig, axes = plt.subplots(1, len(idx), figsize=(2.6 * len(idx), 2.8))
    lim = float(np.quantile(np.abs(trajectory), 0.999)) * 1.05
    for ax, k in zip(np.atleast_1d(axes), idx):
        ax.scatter(trajectory[k, :, 0], trajectory[k, :, 1], s=1, alpha=0.4)
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"t = {times[k]:.3f}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_density(grid_x: np.ndarray, grid_y: np.ndarray, log_p_model: np.ndarray, log_p_true: np.ndarray | None,
                 path: str | os.PathLike) -> None:
    r"""Heat maps of the learned density (and the true one) on a grid; log-densities of shape (G, G)."""
    plt = _pyplot()
    maps = [("model density", log_p_model)] + ([("true density", log_p_true)] if log_p_true is not None else [])
    fig, axes = plt.subplots(1, len(maps), figsize=(4.4 * len(maps), 4.2), squeeze=False)
    vmax = max(float(np.exp(m).max()) for _, m in maps)
    for ax, (name, m) in zip(axes[0], maps):
        ax.pcolormesh(grid_x, grid_y, np.exp(m), shading="auto", cmap="magma", vmin=0.0, vmax=vmax)
        ax.set_aspect("equal")
        ax.set_title(name)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_loss(loss: np.ndarray, path: str | os.PathLike) -> None:
    r"""The training loss per step with a running mean over 1% of the run."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.plot(loss, lw=0.5, alpha=0.35, label="per step")
    w = max(1, len(loss) // 100)
    if len(loss) > w:
        smooth = np.convolve(loss, np.ones(w) / w, mode="valid")
        ax.plot(np.arange(w - 1, len(loss)), smooth, lw=1.5, label=f"mean over {w} steps")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
