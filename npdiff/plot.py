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
