r"""The fixed reverse variances measured with exact denoisers: the figures of docs/variances.md.

    python benchmarks/variances.py                   # all three tables (a few minutes on one core)
    python benchmarks/variances.py --only vlb        # one table: vlb, ddpm or ddim
    python benchmarks/variances.py --n 2000 --seed 1

Every figure comes from an analytic oracle, so it measures the discretization and the choice of
variance, never a network:

- ``vlb``: the gap of the mean variational bound (:func:`npdiff.likelihood.vlb`) over the true
  entropy of a 5-D Gaussian, by T, for the fixed variances ``"large"`` (beta_t) and ``"small"``
  (beta_tilde_t), and for ``"large"`` with improved-diffusion's ``fixedlarge`` substitution
  (beta_tilde_2 instead of beta_1 as the decoder's variance at t = 1). The substitution changes
  only the decoder term L_0; it is evaluated on its own draw of x_1, so its row is the "large" row
  plus a paired difference of two decoders.
- ``ddpm``: the mean log-density (under the true density) of ancestral samples of 8gaussians
  minus its expectation under the data, -H, at T = 1000, for both variances, with the same
  starting noise and noise stream for both (a paired comparison).
- ``ddim``: the same for DDIM with eta = 0 (deterministic) by number of steps.

Each line prints the estimate and its standard error over the points.
"""

from __future__ import annotations

import argparse
import os
import sys

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from npdiff.analytic import GaussianData  # noqa: E402
from npdiff.data import toy2d  # noqa: E402
from npdiff.forward import q_sample_discrete  # noqa: E402
from npdiff.gaussian import log_normal_diag  # noqa: E402
from npdiff.likelihood import vlb  # noqa: E402
from npdiff.reverse import chain_for, p_mean_variance  # noqa: E402
from npdiff.sample import ddim_sample, ddpm_sample  # noqa: E402

STEPS_T = (10, 30, 100, 300, 1000)


def gaussian_5d(seed: int = 1) -> tuple[GaussianData, float]:
    r"""A 5-D Gaussian with a random full covariance :math:`AA^\top/5 + 0.1 I` and its entropy in nats."""
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(5, 5))
    cov = A @ A.T / 5 + 0.1 * np.eye(5)
    return GaussianData(np.zeros(5), cov), 0.5 * float(np.linalg.slogdet(2 * np.pi * np.e * cov)[1])


def _mean_se(v: np.ndarray) -> str:
    return f"{v.mean():+.3f} +- {v.std(ddof=1) / np.sqrt(v.size):.3f}"


def table_vlb(n: int, seed: int) -> None:
    oracle, H = gaussian_5d()
    x = oracle.sample(n, np.random.default_rng(seed))
    print(f"vlb: gap of the mean bound over the entropy H = {H:.4f} nats, 5-D Gaussian, {n} points")
    print(f"{'T':>6}  {'large':>16}  {'small':>16}  {'large, fixedlarge at t=1':>26}")
    for T in STEPS_T:
        rng = np.random.default_rng(seed + T)
        large = vlb(oracle, x, T, rng=rng, variance="large").total - H
        small = vlb(oracle, x, T, rng=np.random.default_rng(seed + T), variance="small").total - H
        chain = chain_for(oracle.schedule, T)
        x1 = q_sample_discrete(x, 1, rng.standard_normal(x.shape), chain)
        mean, _, _ = p_mean_variance(oracle, x1, 1, chain)  # the decoder's mean at t = 1
        substitute = chain.posterior_variance[2] if T >= 2 else chain.betas[1]
        delta = log_normal_diag(x, mean, np.log(chain.betas[1])) - log_normal_diag(x, mean, np.log(substitute))
        print(f"{T:>6}  {_mean_se(large):>16}  {_mean_se(small):>16}  {_mean_se(large + delta):>26}")


def table_ddpm(n: int, seed: int) -> None:
    data = toy2d.load("8gaussians")
    oracle, H = data.oracle(), data.entropy
    x_T = np.random.default_rng(seed).standard_normal((n, 2))
    print(f"ddpm: mean log p(sample) + H on 8gaussians (H = {H:.4f}), T = 1000, {n} samples, same noise for both")
    gap = {}
    for variance in ("large", "small"):
        x = ddpm_sample(oracle, None, np.random.default_rng(seed + 1), x_T=x_T, variance=variance).x
        gap[variance] = data.log_prob(x) + H
        print(f"  {variance:>5}: {_mean_se(gap[variance])}")
    print(f"  small - large, paired: {_mean_se(gap['small'] - gap['large'])}")


def table_ddim(n: int, seed: int) -> None:
    data = toy2d.load("8gaussians")
    oracle, H = data.oracle(), data.entropy
    x_T = np.random.default_rng(seed).standard_normal((n, 2))
    print(f"ddim: mean log p(sample) + H on 8gaussians (H = {H:.4f}), eta = 0, T = 1000, {n} samples, same x_T")
    for steps in (50, 100, 250, 1000):
        x = ddim_sample(oracle, None, np.random.default_rng(seed + 1), x_T=x_T, steps=steps).x
        print(f"  {steps:>5} steps: {_mean_se(data.log_prob(x) + H)}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", choices=("vlb", "ddpm", "ddim"), help="print one table")
    p.add_argument("--n", type=int, default=20_000, help="points or samples per figure")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    tables = {"vlb": table_vlb, "ddpm": table_ddpm, "ddim": table_ddim}
    for name, table in tables.items():
        if args.only in (None, name):
            table(args.n, args.seed)


if __name__ == "__main__":
    main()
