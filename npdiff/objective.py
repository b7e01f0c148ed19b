r"""The training objective: which times, which noisy inputs, which targets and which weights.

One training example (Ho et al. 2020, Alg. 1, in continuous time as in Kingma et al. 2021, Sec. 4):

.. math::
    x_0 \sim \text{data},\quad t \sim p(t),\quad \epsilon \sim \mathcal N(0, I),\quad
    x_t = \alpha_t x_0 + \sigma_t\epsilon,\qquad
    \ell = \frac{1}{D}\,w(t)\,\lVert \hat y(x_t, t) - y \rVert^2

with :math:`\alpha_t = \sqrt{\bar\alpha(t)}`, :math:`\sigma_t = \sqrt{1 - \bar\alpha(t)}`,
:math:`\hat y` what the network predicts (eps, x0 or v) and y the true value of that quantity
(:func:`npdiff.parameterization.prediction_target`).

**The weight** makes the loss the squared error measured in the space named by ``loss``,
whatever the network predicts. With :math:`\mathrm{SNR} = \alpha^2/\sigma^2` and :math:`x_t` fixed,
the errors of the three predictions are proportional (Kingma et al. 2021, Eq. 13 and App. E;
Salimans & Ho 2022, Sec. 4):

.. math::
    \lVert\epsilon - \hat\epsilon\rVert^2 = \mathrm{SNR}\,\lVert x_0 - \hat x_0\rVert^2,\qquad
    \lVert v - \hat v\rVert^2 = (1 + \mathrm{SNR})\,\lVert x_0 - \hat x_0\rVert^2

so with :math:`f_{\epsilon} = \mathrm{SNR}`, :math:`f_{x_0} = 1`, :math:`f_v = 1 + \mathrm{SNR}`,
:math:`w = f_{\text{loss}} / f_{\text{parameterization}}` (:func:`loss_weight`); e.g. an
x0-predicting network trained with ``loss="eps"`` minimizes exactly the eps-loss, and
``loss == parameterization`` gives w = 1 (the "simple" losses).

**The times** come from :math:`p(t) = (1 - f)\,\mathcal U(t_{\min}, t_{\max}) + f\,p_\lambda(t)`,
where :math:`p_\lambda` samples the log-SNR :math:`\lambda(t)` uniformly on
:math:`[\lambda(t_{\max}), \lambda(t_{\min})]`. Since :math:`d\lambda/dt = -\beta(t)/\sigma^2(t)` for a
VP schedule, :math:`p_\lambda(t) \propto \beta(t)/\sigma^2(t)`: exactly the importance sampling of
the likelihood weighting (Song, Durkan, Murray & Ermon 2021, Sec. 4 and Eq. 9). With
:math:`f = 1` and ``loss="eps"`` the expected loss is the continuous-time ELBO's denoising term
up to a constant factor (Kingma et al. 2021, Eq. 17, invariant to the schedule in
:math:`\lambda`: Sec. 5.1). Of each batch the first ``round(f B)`` times are drawn this way and
the rest uniformly (a stratified mixture).
"""

from __future__ import annotations

import math

import numpy as np

from ._check import as_batches, as_float_array, as_generator, as_times, one_of, positive_int, real_scalar
from ._validate import check_schedule
from .forward import q_sample_unchecked
from .parameterization import PREDICTIONS, prediction_target
from .schedule import Schedule

__all__ = ["LossSecondMomentTimes", "TimeSampler", "denoising_targets", "log_snr_times", "loss_weight", "noisy_batch"]


# -- the weight -----------------------------------------------------------------------------------
# log(f_loss / f_parameterization) as a function of lambda = log SNR, each written so that lambda = +-inf
# gives +-inf or 0, never inf - inf: f_eps = SNR, f_x0 = 1, f_v = 1 + SNR, so f_v / f_eps = 1 + 1/SNR.
_LOG_RATIO = {
    ("eps", "x0"): lambda lam: lam, ("x0", "eps"): lambda lam: -lam,
    ("v", "x0"): lambda lam: np.logaddexp(0.0, lam), ("x0", "v"): lambda lam: -np.logaddexp(0.0, lam),
    ("v", "eps"): lambda lam: np.logaddexp(0.0, -lam), ("eps", "v"): lambda lam: -np.logaddexp(0.0, -lam),
}


def loss_weight(log_snr: object, parameterization: str, loss: str) -> np.ndarray:
    r"""Per-example weight :math:`w = f_{\text{loss}}/f_{\text{parameterization}}` (module docstring).

    ``log_snr`` (B,) is :math:`\log(\bar\alpha/\sigma^2)`, +-inf allowed (t where sigma or alpha_bar
    is 0); returns (B,) float64, 0 or +inf where the ratio is (never NaN).
    """
    parameterization, loss = one_of(parameterization, "parameterization", PREDICTIONS), one_of(loss, "loss", PREDICTIONS)
    log_snr = as_float_array(log_snr, "log_snr", allow_inf=True)
    if loss == parameterization:
        return np.ones(np.shape(log_snr))
    return np.exp(_LOG_RATIO[(loss, parameterization)](log_snr))


# -- the noisy inputs and their targets -----------------------------------------------------------
def noisy_batch(x0: np.ndarray, t: np.ndarray, eps: np.ndarray, schedule: Schedule, parameterization: str,
                loss: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Network input :math:`x_t = \alpha x_0 + \sigma\epsilon` (Ho et al. 2020, Eq. 4), target and weight.

    x0, eps (B, D) float64, t (B,): unchecked, for the training loop, which checks its data
    once; :func:`denoising_targets` is the checked version.
    Returns x_t (B, D), the target (B, D) and the weight (B,) of :func:`loss_weight`.
    """
    xt = q_sample_unchecked(x0, t, eps, schedule)  # (B, D)
    log_alpha_bar = schedule.log_alpha_bar(t)  # (B,)
    alpha = np.exp(0.5 * log_alpha_bar)[:, None]  # (B, 1)
    sigma = np.sqrt(-np.expm1(log_alpha_bar))[:, None]  # (B, 1) via expm1: exact near t = 0
    target = prediction_target(parameterization, x0, eps, alpha, sigma)  # (B, D)
    if loss == parameterization:
        weight = np.ones(log_alpha_bar.shape[0])
    else:
        log_snr = log_alpha_bar - np.log(-np.expm1(log_alpha_bar))  # (B,)
        weight = np.exp(_LOG_RATIO[(loss, parameterization)](log_snr))
    return xt, target, weight


def denoising_targets(x0: object, t: object, eps: object, schedule: Schedule, parameterization: str,
                      loss: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Network input, regression target and weight of one batch: :func:`noisy_batch` with its inputs checked.

    x0, eps (B, D); t a float or (B,) times in [0, 1]. Returns x_t (B, D) (the draw of
    :func:`npdiff.forward.q_sample`), the target (B, D) and the weight (B,).
    """
    parameterization, loss = one_of(parameterization, "parameterization", PREDICTIONS), one_of(loss, "loss", PREDICTIONS)
    schedule, (x0, eps) = check_schedule(schedule), as_batches(x0=x0, eps=eps)
    t = as_times(t, x0.shape[0])
    return noisy_batch(x0, t, eps, schedule, parameterization, loss)


# -- the times ------------------------------------------------------------------------------------
# points of the table that inverts lambda(t): log t is smooth in lambda (~ -lambda - log beta_min at high SNR,
# ~0 near t = 1), so linear interpolation at this spacing (~0.006 in lambda) errs by ~1e-5 relative in t
_LOG_SNR_GRID = 4097


class TimeSampler:
    r"""Draws training times from :math:`p(t)` of the module docstring; checked once, at construction.

    Parameters
    ----------
    schedule : the continuous schedule (its ``t_max`` ends the range).
    t_min : the smallest time, in [0, t_max); > 0 when ``log_snr_fraction`` > 0 (lambda(0) is infinite).
    log_snr_fraction : f in [0, 1], the share of each batch drawn with uniform log-SNR.

    lambda(t) is inverted with a table of 4,097 points (relative error in t ~1e-5), built once.
    """

    def __init__(self, schedule: Schedule, t_min: float, log_snr_fraction: float) -> None:
        self.t_max = float(check_schedule(schedule).t_max)
        self.t_min = real_scalar(t_min, "t_min", lo=0.0, hi=self.t_max, hi_open=True)
        self.fraction = real_scalar(log_snr_fraction, "log_snr_fraction", lo=0.0, hi=1.0)
        if self.fraction > 0.0:
            self._table(schedule)

    def _table(self, schedule: Schedule) -> None:
        # t(lambda) on [t_min, t_max] by bisection at every grid point (lambda decreases in t)
        lam_hi, lam_lo = float(schedule.log_snr(self.t_min)), float(schedule.log_snr(self.t_max))
        if not (math.isfinite(lam_hi) and math.isfinite(lam_lo)) or not lam_lo < lam_hi:
            raise ValueError(f"log-SNR sampling of t needs a finite log-SNR range: lambda(t_min={self.t_min}) = {lam_hi}, "
                             f"lambda(t_max={self.t_max}) = {lam_lo} for {schedule!r}; raise t_min above 0")
        lam = np.linspace(lam_lo, lam_hi, _LOG_SNR_GRID)  # (G,) increasing, so t decreasing
        lo, hi = np.full(lam.shape, self.t_min), np.full(lam.shape, self.t_max)  # (G,) brackets of t(lambda)
        for _ in range(80):  # each halves the bracket: 2^-80 of [t_min, t_max] is below float64's resolution
            mid = 0.5 * (lo + hi)
            early = schedule.log_snr(mid) > lam  # lambda(mid) too high: t(lambda) lies later
            lo, hi = np.where(early, mid, lo), np.where(early, hi, mid)
        t = 0.5 * (lo + hi)
        t[0], t[-1] = self.t_max, self.t_min  # the ends exactly
        # log t when t > 0 (smooth in lambda); t itself if t_min = 0 with a finite lambda(0) (log_snr_linear)
        self._log = self.t_min > 0.0
        self._lam_lo, self._lam_hi = lam_lo, lam_hi
        self._lam, self._y = lam, (np.log(t) if self._log else t)  # (G,), (G,)
        # the mixture's CDF F(t) = (1 - f) (t - t_min) / (t_max - t_min) + f (lambda(t_min) - lambda(t)) / (range),
        # on the table's times (dense where lambda moves fast) and a uniform grid (dense where t does)
        tq = np.unique(np.concatenate([t, np.linspace(self.t_min, self.t_max, _LOG_SNR_GRID)]))  # (G',) increasing
        lam_q = np.clip(schedule.log_snr(tq), lam_lo, lam_hi)
        cdf = ((1.0 - self.fraction) * (tq - self.t_min) / (self.t_max - self.t_min)
               + self.fraction * (lam_hi - lam_q) / (lam_hi - lam_lo))  # (G',) strictly increasing
        self._cdf, self._cdf_y = cdf, (np.log(tq) if self._log else tq)

    def _from_log_snr(self, u: np.ndarray) -> np.ndarray:
        lam = self._lam_lo + u * (self._lam_hi - self._lam_lo)  # (k,) uniform log-SNR
        y = np.interp(lam, self._lam, self._y)  # (k,)
        return np.clip(np.exp(y) if self._log else y, self.t_min, self.t_max)

    def quantile(self, u: np.ndarray) -> np.ndarray:
        r"""The inverse CDF of :math:`p(t)`: times (k,) at levels u (k,) in [0, 1] (checked by the caller).

        u ~ U(0, 1) gives t ~ p(t) (unstratified); :class:`LossSecondMomentTimes` draws u by bins.
        """
        if self.fraction == 0.0:
            return self.t_min + u * (self.t_max - self.t_min)
        y = np.interp(u, self._cdf, self._cdf_y)  # (k,)
        return np.clip(np.exp(y) if self._log else y, self.t_min, self.t_max)

    def __call__(self, rng: np.random.Generator, n: int) -> np.ndarray:
        r"""n times (n,) float64 in [t_min, t_max], drawn from ``rng`` (the first ``round(f n)`` by log-SNR)."""
        if self.fraction == 0.0:  # the plain draw: t ~ U(t_min, t_max)
            return rng.uniform(self.t_min, self.t_max, n)
        u = rng.uniform(0.0, 1.0, n)  # (n,)
        k = round(self.fraction * n)  # the first k by log-SNR, the rest uniform in t
        return np.concatenate([self._from_log_snr(u[:k]), self.t_min + u[k:] * (self.t_max - self.t_min)])  # (n,)


class LossSecondMomentTimes:
    r"""Times drawn by the loss's second moment, importance-weighted (Nichol & Dhariwal 2021, Sec. 3.3).

    The base density :math:`p_0(t)` is that of a :class:`TimeSampler`. Its CDF maps t to
    :math:`u = F_0(t)`, uniform under :math:`p_0`, and [0, 1] is cut into K equal bins. Each bin keeps the
    last ``history`` per-example losses seen in it. Once every bin's history is full, a bin is drawn with

    .. math:: q_k \propto \sqrt{\mathbb E[L^2 \mid k]}

    (mixed with 0.001 of the uniform, as improved-diffusion does, so no bin starves), u uniform within it,
    :math:`t = F_0^{-1}(u)`, and the example's loss weighted by :math:`1/(K q_k)`. The objective's
    expectation is unchanged,

    .. math:: \mathbb E_q\Big[\frac{L}{K q_k}\Big] = \sum_k q_k \frac{\mathbb E[L \mid k]}{K q_k}
              = \frac1K\sum_k \mathbb E[L \mid k] = \mathbb E_{p_0}[L],

    and its second moment :math:`\frac{1}{K^2}\sum_k \mathbb E[L^2 \mid k]/q_k` is smallest over the
    simplex at :math:`q_k \propto \sqrt{\mathbb E[L^2 \mid k]}` (Lagrange: :math:`-\mathbb E[L^2|k]/q_k^2
    = \mu` for every k). The weight enters the loss linearly, so the gradient is the network's own
    backward with the per-example weight multiplied by :math:`1/(K q_k)`. Until every history is full,
    q is uniform and the weights are 1.

    Parameters
    ----------
    base : the :class:`TimeSampler` of :math:`p_0`.
    bins : K, the number of bins in u.
    history : losses kept per bin (10 in the paper).
    """

    def __init__(self, base: TimeSampler, bins: int, history: int = 10) -> None:
        if not isinstance(base, TimeSampler):
            raise TypeError(f"base must be a TimeSampler, got {type(base).__name__}")
        self.base = base
        self.bins = positive_int(bins, "bins", minimum=2)
        self.history = positive_int(history, "history")
        self.losses = np.zeros((self.bins, self.history))  # (K, k) ring buffers, newest at [k, count % history]
        self.count = np.zeros(self.bins, dtype=np.int64)  # (K,) losses seen per bin

    @property
    def full(self) -> bool:
        r"""Whether every bin has seen ``history`` losses (then q follows the losses)."""
        return bool(np.all(self.count >= self.history))

    def probabilities(self) -> np.ndarray:
        r"""The bin probabilities q (K,): uniform until :attr:`full`, then :math:`\propto\sqrt{E[L^2]}` (0.001 uniform)."""
        K = self.bins
        if not self.full:
            return np.full(K, 1.0 / K)
        root = np.sqrt(np.mean(self.losses**2, axis=1))  # (K,)
        if not np.all(np.isfinite(root)) or root.sum() <= 0.0:
            return np.full(K, 1.0 / K)
        return 0.999 * root / root.sum() + 0.001 / K

    def __call__(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        r"""n times (n,), their bins (n,) int and importance weights :math:`1/(K q_k)` (n,)."""
        q = self.probabilities()  # (K,)
        k = rng.choice(self.bins, size=n, p=q)  # (n,)
        u = (k + rng.uniform(0.0, 1.0, n)) / self.bins  # (n,) uniform within each drawn bin
        return self.base.quantile(u), k, 1.0 / (self.bins * q[k])

    def update(self, bins: np.ndarray, losses: np.ndarray) -> None:
        r"""Push the per-example losses (n,) of the examples drawn in ``bins`` (n,) into the histories."""
        bins, losses = np.asarray(bins, dtype=np.int64), np.asarray(losses, dtype=np.float64)
        if bins.shape != losses.shape or bins.ndim != 1:
            raise ValueError(f"bins and losses must be 1-D of one length, got shapes {bins.shape} and {losses.shape}")
        if bins.size and (bins.min() < 0 or bins.max() >= self.bins):
            raise ValueError(f"bins must lie in 0..{self.bins - 1}, got {bins.min()}..{bins.max()}")
        if not np.all(np.isfinite(losses)):
            raise ValueError("losses must be finite")
        for b in np.unique(bins):
            seen = losses[bins == b]
            new = seen[-self.history :]  # only the newest `history` can survive
            slots = (self.count[b] + seen.size - new.size + np.arange(new.size)) % self.history
            self.losses[b, slots] = new
            self.count[b] += seen.size


def log_snr_times(n: int, rng: np.random.Generator, schedule: Schedule, *, t_min: float = 1e-5,
                  log_snr_fraction: float = 1.0) -> np.ndarray:
    r"""Training times as the trainer draws them (module docstring): (n,) float64 in [t_min, t_max].

    The first ``round(log_snr_fraction * n)`` have uniform log-SNR,
    :math:`\lambda(t) \sim \mathcal U(\lambda(t_{\max}), \lambda(t_{\min}))`, i.e. density
    :math:`p(t) = \beta(t) / (\sigma^2(t)\,(\lambda(t_{\min}) - \lambda(t_{\max})))` (Song et al.
    2021, "Maximum likelihood training of score-based diffusion models", Sec. 4; Kingma et al.
    2021, Sec. 5.1); the rest are uniform on [t_min, t_max] (:class:`TimeSampler`).
    """
    n = positive_int(n, "n")
    rng = as_generator(rng)
    return TimeSampler(schedule, t_min, log_snr_fraction)(rng, n)
