r"""Noise schedules: one continuous-time forward process and its discretizations.

The forward process is defined once, in continuous time :math:`t \in [0, 1]`:

.. math:: q(x_t \mid x_0) = \mathcal N\big(\sqrt{\bar\alpha(t)}\, x_0,\; (1 - \bar\alpha(t)) I\big)

A schedule is the function :math:`\bar\alpha(t)` (``alpha_bar``; diffusers calls its
discrete values ``alphas_cumprod``). Everything else follows from it:

* ``beta(t) = -d/dt log alpha_bar(t)``, the rate of the VP SDE (Song et al. 2021, Eq. 11);
* ``sigma(t) = sqrt(1 - alpha_bar(t))``, the noise standard deviation;
* ``log_snr(t) = log(alpha_bar / (1 - alpha_bar))`` (Kingma et al. 2021, Sec. 3.2: lambda = log SNR).

The symbols follow the notation page of the book, docs/notation.rst: :math:`\lambda` (``log_snr``)
is always the log-SNR, never half of it.

A discrete DDPM chain of T steps (Ho et al. 2020) is derived by :meth:`Schedule.discretize`;
the posterior :math:`q(x_s \mid x_t, x_0)` of any pair s < t (its variance :math:`\tilde\beta` and
mean coefficients :math:`c_1, c_2`) is :func:`posterior_coefficients`, the one formula the chain,
:func:`npdiff.forward.q_posterior` and the few-step trajectory all read.

**Indexing convention of the discrete chain.** Every array of a
:class:`DiscreteSchedule` has length ``T + 1`` and is indexed by the paper's t:
index 0 is clean data (``alpha_bar[0] == 1``, ``betas[0] == 0``) and index T is the
noisiest step, so ``alpha_bar[t]`` reads exactly like Ho et al. (2020). Entries at
index 0 that the paper leaves undefined are set to the value the limit gives and
are documented with each array.

References: Ho et al. 2020 (DDPM); Nichol & Dhariwal 2021 (cosine schedule);
Song et al. 2021 (VP SDE); Kingma et al. 2021 (VDM, log-SNR).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np

from ._check import as_betas, as_chain_times, as_kept_steps, as_times, one_of, positive_int, real_scalar

__all__ = [
    "Cosine",
    "DiscreteSchedule",
    "LogSNRLinear",
    "Schedule",
    "VPLinear",
    "cosine",
    "ddpm_linear",
    "log_snr_linear",
    "posterior_coefficients",
    "schedule_from_config",
    "vp_linear",
]


class Schedule(ABC):
    r"""A continuous-time variance-preserving noise schedule.

    Subclasses define :meth:`_log_alpha_bar`, :meth:`_beta` and :meth:`config`; everything
    else is derived here in a numerically stable way (``expm1`` near t = 0). The public
    methods check their times; the underscored ones take times already checked (float64),
    so the solvers' loops call those.

    Attributes
    ----------
    t_max : float
        The largest time continuous-time methods (ODE, SDE, likelihood, training)
        may use. 1.0 unless the schedule is singular at t = 1.
    max_beta : float
        Upper clip for the betas of :meth:`discretize` (1.0 means no clipping).

    Examples
    --------
    >>> import numpy as np
    >>> s = vp_linear()
    >>> print(np.round(s.alpha_bar(np.array([0.0, 0.5, 1.0])), 4), np.round(s.log_snr(0.5), 4))
    [1.     0.0791 0.    ] -2.4551
    """

    name: str = "schedule"
    t_max: float = 1.0
    max_beta: float = 1.0

    # -- to be provided by subclasses (t already checked, float64) ------------------
    @abstractmethod
    def _log_alpha_bar(self, t: np.ndarray) -> np.ndarray:
        r""":math:`\log\bar\alpha(t)`."""

    @abstractmethod
    def _beta(self, t: np.ndarray) -> np.ndarray:
        r""":math:`\beta(t)`."""

    @abstractmethod
    def config(self) -> dict[str, Any]:
        r"""A JSON-serializable description; :func:`schedule_from_config` inverts it."""

    def _sigma(self, t: np.ndarray) -> np.ndarray:
        return np.sqrt(-np.expm1(self._log_alpha_bar(t)) + 0.0)  # + 0.0: sigma(0) = +0, not -0

    def _log_snr(self, t: np.ndarray) -> np.ndarray:
        log_ab = self._log_alpha_bar(t)
        with np.errstate(divide="ignore"):  # +inf where sigma(t) = 0: the exact value, documented in log_snr
            return log_ab - np.log(-np.expm1(log_ab))

    # -- public, vectorized -----------------------------------------------------
    def log_alpha_bar(self, t: object) -> np.ndarray:
        r"""``log alpha_bar(t)`` for t in [0, 1] (float or array, same shape out)."""
        return self._log_alpha_bar(as_times(t))

    def alpha_bar(self, t: object) -> np.ndarray:
        r"""Signal fraction :math:`\bar\alpha(t)` of :math:`q(x_t|x_0)` (``alphas_cumprod``)."""
        return np.exp(self._log_alpha_bar(as_times(t)))

    def sigma(self, t: object) -> np.ndarray:
        r"""Noise std :math:`\sigma(t) = \sqrt{1 - \bar\alpha(t)}`, via ``expm1`` for small t."""
        return self._sigma(as_times(t))

    def beta(self, t: object) -> np.ndarray:
        r""":math:`\beta(t) = -\frac{d}{dt}\log\bar\alpha(t)` (Song et al. 2021, Eq. 11)."""
        return self._beta(as_times(t))

    def log_snr(self, t: object) -> np.ndarray:
        r""":math:`\lambda(t) = \log\frac{\bar\alpha(t)}{1-\bar\alpha(t)}` (Kingma et al. 2021, Sec. 3.2).

        ``+inf`` where :math:`\sigma(t) = 0` (t = 0 on ``vp_linear`` and ``cosine``): the SNR of clean data.
        """
        return self._log_snr(as_times(t))

    def discretize(self, T: int, *, t_end: float = 1.0, clip: bool = True) -> DiscreteSchedule:
        r"""The DDPM chain of T steps: :math:`\bar\alpha_i = \bar\alpha(i\,t_{end}/T)`, :math:`\bar\alpha_0 = 1`.

        .. math:: \beta_i = \min\Big(1 - \frac{\bar\alpha_i}{\bar\alpha_{i-1}},\; \beta_{\max}\Big)

        (Nichol & Dhariwal 2021, Eq. 17 and the clip below it), then ``alpha_bar`` is
        recomputed as the cumulative product of ``1 - beta``, so with clipping the
        chain's last ``alpha_bar`` differs from the continuous one (cosine: ~2.4e-9
        instead of 0). The defaults give the classic tables (``t_end = 1``, clipped).

        Samplers and bounds that call a continuous-time denoiser use
        ``t_end = self.t_max, clip=False`` instead (see :func:`npdiff.reverse.chain_for`):
        then ``alpha_bar[i] == alpha_bar(times[i])`` exactly, so the chain and the
        denoiser agree on the noise level at every step.
        """
        T = positive_int(T, "T")
        t_end = real_scalar(t_end, "t_end", lo=0.0, hi=1.0, lo_open=True)
        times = np.arange(T + 1) * (t_end / T)  # (T+1,)
        times[-1] = t_end
        betas = self._chain_betas(times)  # (T,)
        if np.any(1.0 - betas >= 1.0):  # steps of t_end / T too short to add noise in float64
            raise ValueError(f"t_end / T = {t_end / T:.3g} is too small: some steps add no noise in float64 "
                             f"(smallest beta {betas.min():.3g}); use fewer steps or a larger t_end")
        if clip:
            betas = np.minimum(betas, self.max_beta)
        return DiscreteSchedule(betas, times=times, name=f"{self.name}[T={T}]")

    def chain_betas(self, times: object) -> np.ndarray:
        r"""The betas of the chain through increasing times :math:`0 = t_0 < t_1 < \dots < t_T`.

        .. math:: \beta_i = 1 - \frac{\bar\alpha(t_i)}{\bar\alpha(t_{i-1})}, \qquad \bar\alpha_0 = 1

        by ``expm1`` of the log-ratio, so close times keep their digits. :meth:`discretize` takes it at
        the uniform times :math:`i\,t_{end}/T`; a sampler's chain on a time grid takes it at the grid's.

        Parameters
        ----------
        times : (T + 1,) array
            Increasing times in [0, 1]; ``times[0]`` stands for clean data whatever it is.

        Returns
        -------
        (T,) float64 betas.

        Examples
        --------
        >>> from npdiff.schedule import vp_linear
        >>> s = vp_linear()
        >>> bool(np.allclose(s.chain_betas(np.linspace(0, 1, 11)), s.discretize(10, clip=False).betas[1:]))
        True
        """
        times = as_times(times, name="times")
        if times.ndim != 1 or times.size < 2 or np.any(np.diff(times) <= 0):
            raise ValueError(f"times must be an increasing 1-D array of at least 2 times, got {np.asarray(times)!r}")
        return self._chain_betas(times)

    def _chain_betas(self, times: np.ndarray) -> np.ndarray:
        log_ab = self._log_alpha_bar(times)  # (T+1,)
        log_ab[0] = 0.0  # index 0 is clean data by definition, whatever alpha_bar(0) is
        return -np.expm1(log_ab[1:] - log_ab[:-1])  # (T,) 1 - alpha_bar_i / alpha_bar_{i-1}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items() if k != "kind")
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Schedule) and self.config() == other.config()

    def __hash__(self) -> int:
        return hash(json.dumps(self.config(), sort_keys=True))


class VPLinear(Schedule):
    r"""The VP SDE with linear :math:`\beta(t)` (Song et al. 2021, Eq. 11 and Appendix C).

    .. math::
        \beta(t) = \beta_{\min} + t(\beta_{\max} - \beta_{\min}),\qquad
        \log\bar\alpha(t) = -\beta_{\min} t - \tfrac12 (\beta_{\max} - \beta_{\min}) t^2

    With the defaults (0.1, 20) its discretization at T = 1000 is close to DDPM's
    ``linspace(1e-4, 0.02, 1000)`` table (not equal, since log(1 - beta) is not -beta).

    Parameters
    ----------
    beta_min : float
        :math:`\beta(0) > 0`.
    beta_max : float
        :math:`\beta(1) \ge \beta_{\min}`.

    Examples
    --------
    >>> VPLinear(0.1, 20.0).config()
    {'kind': 'vp_linear', 'beta_min': 0.1, 'beta_max': 20.0}
    """

    name = "vp_linear"

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0) -> None:
        self.beta_min = real_scalar(beta_min, "beta_min", lo=0.0, lo_open=True)
        self.beta_max = real_scalar(beta_max, "beta_max", lo=0.0, lo_open=True)
        if self.beta_max < self.beta_min:
            raise ValueError(f"beta_max must be >= beta_min, got beta_min={beta_min}, beta_max={beta_max}")

    def _log_alpha_bar(self, t: np.ndarray) -> np.ndarray:
        return -(self.beta_min * t + 0.5 * (self.beta_max - self.beta_min) * t**2)

    def _beta(self, t: np.ndarray) -> np.ndarray:
        return self.beta_min + t * (self.beta_max - self.beta_min)

    def config(self) -> dict[str, Any]:
        return {"kind": self.name, "beta_min": self.beta_min, "beta_max": self.beta_max}


class Cosine(Schedule):
    r"""The cosine schedule (Nichol & Dhariwal 2021, Eq. 17).

    .. math::
        \bar\alpha(t) = \frac{f(t)}{f(0)},\qquad f(t) = \cos^2\Big(\frac{t + s}{1 + s}\cdot\frac{\pi}{2}\Big),
        \qquad \beta(t) = \frac{\pi}{1+s}\tan\Big(\frac{t + s}{1 + s}\cdot\frac{\pi}{2}\Big)

    It is singular at t = 1 (alpha_bar = 0, beta infinite: returned as exactly 0 and +inf,
    log_alpha_bar and log_snr as -inf, through :math:`\cos x = \sin(\pi/2 - x)`), so continuous-time
    methods stop at ``t_max = 1 - 1e-3`` (alpha_bar(t_max) ~ 2.4e-6, beta(t_max) ~ 2e3),
    where q(x_t) differs from N(0, I) by a KL of order 1e-6 per unit of :math:`|x_0|^2`.
    The discrete chain instead clips its betas at ``max_beta`` (0.999 as in the paper).

    Parameters
    ----------
    s : float
        The offset s > 0 that keeps :math:`\beta` small near t = 0.
    max_beta : float
        The clip of the discrete chain's betas, in (0, 1).

    Examples
    --------
    >>> import numpy as np
    >>> c = Cosine()
    >>> print(c.t_max, np.round(c.alpha_bar(np.array([0.0, 0.5, 1.0])), 4), np.round(c.beta(0.5), 4))
    0.999 [1.     0.4938 0.    ] 3.1558
    """

    name = "cosine"
    t_max = 1.0 - 1e-3

    def __init__(self, s: float = 0.008, max_beta: float = 0.999) -> None:
        self.s = real_scalar(s, "s", lo=0.0, lo_open=True)
        self.max_beta = real_scalar(max_beta, "max_beta", lo=0.0, hi=1.0, lo_open=True, hi_open=True)

    def _co_angle(self, t: np.ndarray) -> np.ndarray:
        # pi/2 minus the angle, (1 - t)/(1 + s) pi/2: exactly 0 at t = 1, where cos(angle) would round to 6e-17
        return (1.0 - t) / (1.0 + self.s) * (np.pi / 2)

    def _log_alpha_bar(self, t: np.ndarray) -> np.ndarray:
        # Near t = 1: cos(angle) = sin(pi/2 - angle), no cancellation, and alpha_bar(1) = 0 exactly.
        # Near t = 0 the two logs of numbers close to 1 would cancel (5e-10 relative error at t = 1e-5);
        # there cos(a0 + d) / cos(a0) = 1 - 2 sin^2(d/2) - tan(a0) sin(d), with d = t pi / (2 (1 + s)), via log1p.
        t = np.asarray(t, dtype=np.float64)
        with np.errstate(divide="ignore"):
            far = 2.0 * (np.log(np.sin(self._co_angle(t))) - np.log(np.sin(self._co_angle(np.float64(0.0)))))
        d = t / (1.0 + self.s) * (np.pi / 2)
        tan0 = np.tan(self.s / (1.0 + self.s) * (np.pi / 2))
        near = 2.0 * np.log1p(-(2.0 * np.sin(0.5 * d) ** 2 + tan0 * np.sin(d)))
        return np.where(t < 0.5, near, far)

    def _beta(self, t: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore"):  # +inf at t = 1, the singularity
            return np.pi / (1.0 + self.s) / np.tan(self._co_angle(t))

    def config(self) -> dict[str, Any]:
        return {"kind": self.name, "s": self.s, "max_beta": self.max_beta}


class LogSNRLinear(Schedule):
    r"""Log-SNR linear in time (Kingma et al. 2021, Sec. 3.2, fixed rather than learned).

    .. math::
        \lambda(t) = \lambda_{\max} + t(\lambda_{\min} - \lambda_{\max}),\qquad
        \bar\alpha(t) = \mathrm{sigmoid}(\lambda(t)),\qquad
        \beta(t) = \mathrm{sigmoid}(-\lambda(t))\,(\lambda_{\max} - \lambda_{\min})

    Unlike the other two, :math:`\bar\alpha(0) = \mathrm{sigmoid}(\lambda_{\max}) < 1`:
    at t = 0 a little noise (std ~ 6.7e-3 with the defaults) is already present.
    The discrete chain still starts from clean data, ``alpha_bar[0] = 1``.

    Parameters
    ----------
    log_snr_max : float
        :math:`\lambda(0)`.
    log_snr_min : float
        :math:`\lambda(1) < \lambda(0)`.

    Examples
    --------
    >>> import numpy as np
    >>> s = LogSNRLinear()
    >>> print(np.round(s.log_snr(np.array([0.0, 0.5, 1.0])), 4), np.round(s.sigma(0.0), 4))
    [ 10.   0. -10.] 0.0067
    """

    name = "log_snr_linear"

    def __init__(self, log_snr_max: float = 10.0, log_snr_min: float = -10.0) -> None:
        self.log_snr_max = real_scalar(log_snr_max, "log_snr_max")
        self.log_snr_min = real_scalar(log_snr_min, "log_snr_min")
        if not self.log_snr_min < self.log_snr_max:
            raise ValueError(f"log_snr_min must be < log_snr_max, got log_snr_min={log_snr_min}, log_snr_max={log_snr_max}")

    def _log_snr(self, t: np.ndarray) -> np.ndarray:
        return self.log_snr_max + t * (self.log_snr_min - self.log_snr_max)

    def _log_alpha_bar(self, t: np.ndarray) -> np.ndarray:
        return -np.logaddexp(0.0, -self._log_snr(t))  # log sigmoid(lambda)

    def _beta(self, t: np.ndarray) -> np.ndarray:
        return np.exp(-np.logaddexp(0.0, self._log_snr(t))) * (self.log_snr_max - self.log_snr_min)

    def config(self) -> dict[str, Any]:
        return {"kind": self.name, "log_snr_max": self.log_snr_max, "log_snr_min": self.log_snr_min}


def vp_linear(beta_min: float = 0.1, beta_max: float = 20.0) -> VPLinear:
    r"""The VP-linear schedule of Song et al. 2021 (see :class:`VPLinear`).

    Examples
    --------
    >>> vp_linear()
    VPLinear(beta_min=0.1, beta_max=20.0)
    """
    return VPLinear(beta_min, beta_max)


def cosine(s: float = 0.008, max_beta: float = 0.999) -> Cosine:
    r"""The cosine schedule of Nichol & Dhariwal 2021 (see :class:`Cosine`).

    Examples
    --------
    >>> cosine()
    Cosine(s=0.008, max_beta=0.999)
    """
    return Cosine(s, max_beta)


def log_snr_linear(log_snr_max: float = 10.0, log_snr_min: float = -10.0) -> LogSNRLinear:
    r"""The log-SNR-linear schedule (see :class:`LogSNRLinear`).

    Examples
    --------
    >>> log_snr_linear()
    LogSNRLinear(log_snr_max=10.0, log_snr_min=-10.0)
    """
    return LogSNRLinear(log_snr_max, log_snr_min)


_KINDS = {"vp_linear": VPLinear, "cosine": Cosine, "log_snr_linear": LogSNRLinear}


def schedule_from_config(config: dict[str, Any]) -> Schedule:
    r"""Rebuild a continuous schedule from :meth:`Schedule.config`.

    Parameters
    ----------
    config : dict
        A schedule's ``config()``: its ``kind`` and its constructor's arguments.

    Returns
    -------
    Schedule

    Examples
    --------
    >>> schedule_from_config(cosine().config()) == cosine()
    True
    """
    if not isinstance(config, dict) or "kind" not in config:
        raise ValueError(f"schedule config must be a dict with a 'kind' key, got {config!r}")
    kind = one_of(config["kind"], "schedule kind", tuple(sorted(_KINDS)))
    args = {k: v for k, v in config.items() if k != "kind"}
    try:
        return _KINDS[kind](**args)
    except TypeError as exc:
        raise ValueError(f"schedule config for {kind!r} has unexpected keys: {sorted(args)}") from exc


def posterior_coefficients(log_alpha_bar_s: np.ndarray, log_alpha_ts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Variance and mean coefficients of the posterior :math:`q(x_s \mid x_t, x_0)` of a pair s < t.

    .. math::
        q(x_s \mid x_t, x_0) = \mathcal N(c_1 x_0 + c_2 x_t,\ \tilde\beta I),\qquad
        \tilde\beta = \frac{(1 - \alpha_{t|s})(1 - \bar\alpha_s)}{1 - \bar\alpha_t},\quad
        c_1 = \frac{\sqrt{\bar\alpha_s}\,(1 - \alpha_{t|s})}{1 - \bar\alpha_t},\quad
        c_2 = \frac{\sqrt{\alpha_{t|s}}\,(1 - \bar\alpha_s)}{1 - \bar\alpha_t}

    with :math:`\alpha_{t|s} = \bar\alpha_t / \bar\alpha_s` (Kingma et al. 2021, Sec. 3.3; Ho et al. 2020,
    Eq. 7 for neighbouring steps, where :math:`1 - \alpha_{t|s} = \beta_t`). Every :math:`1 - \cdot` is an
    ``expm1`` of a log, so close pairs (s -> t, where :math:`1 - \bar\alpha_t/\bar\alpha_s` would cancel)
    and small times keep their digits. The formula on arrays its callers checked: the chain, the
    continuous posterior :func:`npdiff.forward.q_posterior` and the few-step trajectory read it.

    Parameters
    ----------
    log_alpha_bar_s : (...) array
        :math:`\log\bar\alpha_s \le 0`.
    log_alpha_ts : (...) array broadcasting against ``log_alpha_bar_s``
        :math:`\log\alpha_{t|s} = \log\bar\alpha_t - \log\bar\alpha_s < 0`.

    Returns
    -------
    beta_tilde : (...) array
        :math:`\tilde\beta`, exactly 0 where :math:`\bar\alpha_s = 1`.
    c1 : (...) array
        The coefficient of :math:`x_0`, exactly 1 where :math:`\bar\alpha_s = 1`.
    c2 : (...) array
        The coefficient of :math:`x_t`.

    Examples
    --------
    The first step of the classic DDPM table, :math:`\beta_1 = 10^{-4}`, then :math:`\beta_2`:

    >>> import numpy as np
    >>> b1, b2 = 1e-4, 1.0199e-4
    >>> beta_tilde, c1, c2 = posterior_coefficients(np.log1p(-b1), np.log1p(-b2))
    >>> print(f"{beta_tilde:.6e} {c1:.6f} {c2:.6f}")
    5.049515e-05 0.504926 0.495074
    """
    one_m_ats = -np.expm1(log_alpha_ts)  # 1 - alpha_{t|s}, the pair's beta
    one_m_ab_s = -np.expm1(log_alpha_bar_s) + 0.0  # + 0.0: beta_tilde = +0, not -0, where alpha_bar_s = 1
    one_m_ab_t = -np.expm1(log_alpha_bar_s + log_alpha_ts)
    beta_tilde = one_m_ats * one_m_ab_s / one_m_ab_t
    c1 = np.exp(0.5 * log_alpha_bar_s) * one_m_ats / one_m_ab_t
    c2 = np.exp(0.5 * log_alpha_ts) * one_m_ab_s / one_m_ab_t
    return beta_tilde, c1, c2


class DiscreteSchedule:
    r"""A discrete DDPM chain of T steps; every array has length T + 1, indexed by the paper's t.

    Built from ``betas`` for t = 1..T (Ho et al. 2020, Sec. 2). All arrays below are
    float64 of shape (T + 1,):

    ``betas``
        :math:`\beta_t`, with ``betas[0] = 0``.
    ``alphas``
        :math:`\alpha_t = 1 - \beta_t`.
    ``alpha_bar``
        :math:`\bar\alpha_t = \prod_{s \le t}\alpha_s` (``alphas_cumprod``), ``alpha_bar[0] = 1``.
    ``alpha_bar_prev``
        :math:`\bar\alpha_{t-1}` (``alphas_cumprod_prev``), with ``alpha_bar_prev[0] = 1``.
    ``log_alpha_bar``
        :math:`\log\bar\alpha_t = \sum_{s \le t}\log(1 - \beta_s)` (a sum of ``log1p``, so the ratio of
        two close steps, :math:`1 - \bar\alpha_r/\bar\alpha_s`, keeps its digits), ``log_alpha_bar[0] = 0``.
    ``posterior_variance``
        :math:`\tilde\beta_t = \frac{1-\bar\alpha_{t-1}}{1-\bar\alpha_t}\beta_t` (Ho et al. 2020, Eq. 7);
        0 at t = 1 (the posterior of x_0 given x_1 and x_0 is a point mass) and at t = 0.
    ``posterior_log_variance_clipped``
        :math:`\log\tilde\beta_t` with the t = 0 and t = 1 entries replaced by
        :math:`\log\tilde\beta_2`, as improved-diffusion does, so it is finite everywhere.
    ``posterior_mean_coef1``, ``posterior_mean_coef2``
        :math:`\tilde\mu_t = c_1 x_0 + c_2 x_t` with
        :math:`c_1 = \frac{\sqrt{\bar\alpha_{t-1}}\beta_t}{1-\bar\alpha_t}`,
        :math:`c_2 = \frac{\sqrt{\alpha_t}(1-\bar\alpha_{t-1})}{1-\bar\alpha_t}` (Ho et al. 2020, Eq. 7);
        at t = 0 they are set to (1, 0), the posterior's limit. All three come from
        :func:`posterior_coefficients` on neighbouring steps.
    ``times``
        The continuous time at which a continuous-time denoiser is called for each index
        (``i / T`` for a discretized schedule; the kept times after :meth:`respace`).

    Parameters
    ----------
    betas : (T,) array
        :math:`\beta_1, \dots, \beta_T` in (0, 1).
    times : (T + 1,) array or None
        The continuous times of indices 0..T, increasing from 0; None gives ``i / T``.
    name : str
        A label for ``repr``.

    Examples
    --------
    >>> import numpy as np
    >>> chain = DiscreteSchedule([0.1, 0.2])
    >>> print(len(chain), np.round(chain.alpha_bar, 4), np.round(chain.posterior_variance, 4))
    3 [1.   0.9  0.72] [0.     0.     0.0714]
    """

    def __init__(self, betas: object, *, times: object | None = None, name: str = "discrete") -> None:
        b = as_betas(betas)  # (T,)
        T = b.size
        self.T = T
        self.name = name
        self.betas = np.concatenate([[0.0], b])  # (T+1,)
        self.alphas = 1.0 - self.betas
        self.alpha_bar = np.cumprod(self.alphas)
        self.alpha_bar_prev = np.concatenate([[1.0], self.alpha_bar[:-1]])
        if times is None:
            times = np.arange(T + 1) / T
        self.times = as_chain_times(times, T)  # (T+1,)

        # log alpha_bar by a sum of log1p: no cancellation between neighbours near t = 0 (the pairs' 1 - ratio)
        self.log_alpha_bar = np.concatenate([[0.0], np.cumsum(np.log1p(-b))])  # (T+1,)
        # calculations for the posterior q(x_{t-1} | x_t, x_0), Ho et al. 2020, Eq. 7; index 0 has no step
        beta_tilde, c1, c2 = posterior_coefficients(self.log_alpha_bar[:-1], np.log1p(-b))  # (T,) each
        self.posterior_variance = np.concatenate([[0.0], beta_tilde])
        self.posterior_mean_coef1 = np.concatenate([[1.0], c1])
        self.posterior_mean_coef2 = np.concatenate([[0.0], c2])
        # beta_tilde_1 = 0: clip to beta_tilde_2 (improved-diffusion); with T = 1 fall back to beta_1
        floor = self.posterior_variance[2] if T >= 2 else self.betas[1]
        self.posterior_log_variance_clipped = np.log(np.concatenate([[floor, floor], self.posterior_variance[2:]]))

    def respace(self, steps: int | Sequence[int]) -> DiscreteSchedule:
        r"""A shorter chain keeping ``alpha_bar`` at a subset of steps (Nichol & Dhariwal 2021, Sec. 4).

        ``steps`` is a number K of steps (kept indices ``round(linspace(0, T, K + 1))``,
        evenly spaced, always including 0 and T) or an explicit increasing list of kept
        indices in 1..T (0 is added). The new betas are
        :math:`\beta'_j = 1 - \bar\alpha_{k_j} / \bar\alpha_{k_{j-1}}`.
        """
        if isinstance(steps, (int, np.integer)) and not isinstance(steps, bool):
            K = positive_int(steps, "steps", maximum=self.T)
            kept = np.round(np.linspace(0, self.T, K + 1)).astype(np.int64)
        else:
            kept = as_kept_steps(steps, self.T)  # (K+1,) with 0 in front
        log_ab = self.log_alpha_bar[kept]  # (K+1,)
        betas = -np.expm1(log_ab[1:] - log_ab[:-1])  # 1 - alpha_bar_k / alpha_bar_{k-1}, no cancellation near 0
        out = DiscreteSchedule(betas, times=self.times[kept], name=f"{self.name}[{kept.size - 1} steps]")
        out.kept = kept
        return out

    def __len__(self) -> int:
        return self.T + 1

    def __repr__(self) -> str:
        return f"DiscreteSchedule({self.name}, T={self.T}, alpha_bar_T={self.alpha_bar[-1]:.3e})"


def ddpm_linear(T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> DiscreteSchedule:
    r"""The classic DDPM table, ``betas = linspace(beta_start, beta_end, T)`` (Ho et al. 2020, Sec. 4).

    It has no continuous-time form (continuous-time denoisers use :func:`vp_linear`);
    it exists to compare numbers with other libraries step for step. Unlike
    improved-diffusion, the betas are not rescaled by 1000 / T.

    Parameters
    ----------
    T : int
        The number of steps.
    beta_start : float
        :math:`\beta_1`.
    beta_end : float
        :math:`\beta_T`.

    Returns
    -------
    DiscreteSchedule

    Examples
    --------
    >>> chain = ddpm_linear(1000)
    >>> print(chain.T, chain.betas[[1, 1000]], f"{chain.alpha_bar[-1]:.4e}")
    1000 [0.0001 0.02  ] 4.0358e-05
    """
    T = positive_int(T, "T")
    beta_start, beta_end = as_betas(beta_start, "beta_start", scalar=True), as_betas(beta_end, "beta_end", scalar=True)
    return DiscreteSchedule(np.linspace(beta_start, beta_end, T), name=f"ddpm_linear[T={T}]")
