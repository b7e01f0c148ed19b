r"""The exact density of what a deterministic sampler samples, and its KL divergence to the data.

A deterministic sampler is a map F from its starting noise :math:`z \sim \mathcal N(0, I)` to a
sample :math:`x = F(z)`. Where F is a diffeomorphism (a flow and, for small enough steps, every
solver of it), the change of variables gives the exact log-density of its samples,

.. math::
    \log p_F(x) = \log\mathcal N(z; 0, I) - \log\big|\det \partial F/\partial z\big|,\qquad x = F(z),

and with the data's true log-density :math:`\log q` the exact divergence of the sampler from the data,

.. math::
    \mathrm{KL}(p_F\,\|\,q) = \mathbb E_{z}\big[\log p_F(F(z)) - \log q(F(z))\big],

estimated by its sample mean over the z given, with the standard error std / sqrt(N). The terms
:math:`\delta = \log p_F - \log q` are 0 for a sampler that transports N(0, I) exactly onto q, so
the standard error shrinks with the sampler's error. Since q is normalized and :math:`p_F > 0`,
:math:`\mathbb E_{p_F}[e^{-\delta}] = \int q = 1`, so

.. math:: \mathrm{KL}(p_F\,\|\,q) = \mathbb E_{p_F}\big[\delta + e^{-\delta} - 1\big]

too, a control variate whose terms are :math:`\ge 0` and of order :math:`\delta^2/2`: for a good
sampler its standard error is far smaller (measured in ``docs/measurements/samplers.md``); the mean of
:math:`e^{-\delta}` itself checks the whole computation (it must be 1 within its error).

**The Jacobian.** Every fixed-grid solver of :func:`~npdiff.sample.fast_sample` is, step by
step, linear in the state and in the denoiser's answers, with coefficients that depend only on the
grid's times. So a denoiser that carries tangent rows beside the points (:class:`TangentDenoiser`:
for the point rows it returns eps, for the tangent rows the Jacobian-vector product
:math:`(\partial\epsilon/\partial x)\,v` at the matching point, the protocol's optional ``eps_jvp``)
makes the solver carry :math:`\partial F/\partial z\;v` along in the same run: with the D unit
tangents, the exact Jacobian of the whole map, in float64 and with no step size (forward-mode
differentiation of the solver, as in Chen et al. 2018's continuous version). :class:`FastSampler`
is such a sampler: a callable z -> F(z) that also answers ``jvp`` and ``jacobian`` (:class:`SolverMap`
does the same for any fixed-grid solver given as ``run(denoiser, z)``). An adaptive
solver (RK45 chooses its steps from the state, so its map is not the fixed composition the
tangents differentiate) or any other callable gets central differences in float64 instead, the
sampler called once on the stacked points :math:`[z, z \pm h e_1, \dots, z \pm h e_D]` so that an
adaptive solver takes the same steps for a point and its neighbours; the result says which
(``SamplerDensity.jacobian``), and ``jacobian="tangents"`` refuses a map that has no tangents.

**Folds.** The map of a flow preserves orientation (:math:`\det\partial F/\partial z > 0`
everywhere); a sampler whose steps are too large can fold space, mapping two starting points onto
one sample. There the change of variables counts one preimage only and
:math:`\log p_F` is not the density of the samples, and the KL estimate is biased with no
warning from its standard error. So :func:`sampler_kl` calls a result **not estimable**
(``estimable = False``, a ``reason``, and ``kl`` raising :class:`KLNotEstimableError`) when

* any sample has :math:`\det\partial F/\partial z \le 0` (the folded share is reported), or
* the self-normalization fails: :math:`|\mathbb E[q/p_F] - 1|` exceeds 3 of its standard errors
  (plus :math:`10^{-9}` for rounding), which the identity above forbids for a correct density.

:func:`sampler_log_density_at` runs the change of variables the other way, at given samples x,
solving :math:`F(z) = x` by Newton's method from a starting guess (e.g. the exact flow's
encoding of x, ``ode_log_likelihood(...).x_end``); with it the paired gap
:math:`\log q(x) - \log p_F(x)` on test points estimates :math:`\mathrm{KL}(q\,\|\,p_F)`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .._check import as_batch, as_batches, one_of, positive_int, real_scalar
from ..denoiser import as_denoiser_batch, as_tangents, call_eps_jvp, check_denoiser, has_eps_jvp
from ..gaussian import log_normal_diag_unchecked
from ..sample import fast_sample
from ._validate import (
    as_log_q_values,
    check_fast_sampler_options,
    check_log_q,
    check_nonsingular,
    check_one_time,
    check_sampler,
    check_sampler_output,
    check_tangent_rows,
)

# step halvings of the damped Newton iteration: 2^-30 of a step is no step
_HALVINGS = 30
# the self-normalization check allows this much beside its 3 standard errors: the rounding of terms ~1e-12
_RATIO_ROUNDING = 1e-9
# rows (points times 1 + tangents) of one tangent run: bounds the solver's (rows, D) states
_TANGENT_ROWS = 1 << 16
JACOBIANS = ("auto", "tangents", "central")

__all__ = ["JACOBIANS", "FastSampler", "KLNotEstimableError", "SamplerDensity", "SamplerKL", "SolverMap",
           "TangentDenoiser", "sampler_kl", "sampler_log_density", "sampler_log_density_at"]


class KLNotEstimableError(ValueError):
    r"""A KL was asked of a :class:`SamplerKL` that is not estimable (its ``reason`` says why)."""


@dataclass
class SamplerDensity:
    r"""The change of variables of a deterministic sampler, per point.

    Attributes
    ----------
    z : (N, D) the starting noise.
    x : (N, D) the samples F(z).
    log_p : (N,) :math:`\log p_F(x) = ` ``prior - log_det``, nats (one preimage's: not a density where F folds).
    prior : (N,) :math:`\log\mathcal N(z; 0, I)`.
    log_det : (N,) :math:`\log|\det\partial F/\partial z|`.
    folded : how many points have :math:`\det\partial F/\partial z \le 0` (F folds space there).
    residual : (N,) :math:`\max_i |F(z)_i - x_i|` for :func:`sampler_log_density_at` (0 otherwise).
    jacobian : how the Jacobian was taken: ``"tangents"`` (exact) or ``"central differences, h=..."``.
    """

    z: np.ndarray
    x: np.ndarray
    log_p: np.ndarray
    prior: np.ndarray
    log_det: np.ndarray
    folded: int
    residual: np.ndarray
    jacobian: str = "tangents"

    @property
    def folded_share(self) -> float:
        r"""The share of the points where F folds, in [0, 1]."""
        return self.folded / self.z.shape[0]


class SamplerKL:
    r"""The exact :math:`\mathrm{KL}(p_F\,\|\,q)` of a sampler and its standard error, in nats, or "not estimable".

    Its four estimates are properties that raise :class:`KLNotEstimableError` when the KL is not
    estimable: ``kl``, the mean of ``terms`` (``inf`` if q is 0 at a sample); ``se``,
    ``std(terms) / sqrt(N)`` (``inf`` with an infinite KL); ``kl_cv``, the control-variate
    estimate, the mean of :math:`\delta + e^{-\delta} - 1` (module docstring); ``se_cv``, its
    standard error.

    Attributes
    ----------
    estimable : False when F folds at a sample or the self-normalization fails (module docstring).
    reason : why not ("" when estimable).
    folded_share : the share of the samples where :math:`\det\partial F/\partial z \le 0`.
    ratio : the mean of :math:`e^{-\delta} = q / p_F`, 1 in expectation.
    ratio_se : its standard error.
    terms : (N,) :math:`\delta = \log p_F(x) - \log q(x)` at each sample (paired: subtract two samplers'
        terms on the same z to compare them).
    density : the :class:`SamplerDensity` behind it.

    ``str()`` gives ``"0.0131 +- 0.0004"`` or ``"not estimable (folded 12%)"``; ``float()`` the KL, or raises.
    """

    def __init__(self, terms: np.ndarray, density: SamplerDensity) -> None:
        self.terms, self.density = terms, density
        with np.errstate(over="ignore"):  # e^{-delta} beyond float64 (p_F below q by e^709): an infinite estimate
            ratio = np.exp(-terms)  # (N,) q / p_F
        self._kl, self._kl_cv = _mean_se(terms), _mean_se(terms + (ratio - 1.0))
        self.ratio, self.ratio_se = _mean_se(ratio)
        self.folded_share = density.folded_share
        self.reason = _not_estimable_reason(density, self._kl[0], self.ratio, self.ratio_se)
        self.estimable = not self.reason

    def _checked(self, pair: tuple[float, float], i: int) -> float:
        if not self.estimable:
            raise KLNotEstimableError(f"the sampler's KL is not estimable: {self.reason}")
        return pair[i]

    kl = property(lambda self: self._checked(self._kl, 0), doc="The KL estimate (raises when not estimable).")
    se = property(lambda self: self._checked(self._kl, 1), doc="Its standard error (raises when not estimable).")
    kl_cv = property(lambda self: self._checked(self._kl_cv, 0), doc="The control-variate KL (raises likewise).")
    se_cv = property(lambda self: self._checked(self._kl_cv, 1), doc="Its standard error (raises likewise).")

    def __float__(self) -> float:
        return self.kl_cv

    def short(self) -> str:
        r"""What a table prints: the control-variate KL and its error, or ``not estimable (...)``."""
        if self.estimable:
            return f"{self.kl_cv:.3g} +- {self.se_cv:.1g}"
        if self.density.folded:
            return f"not estimable (folded {100 * self.folded_share:.3g}%)"
        return f"not estimable (E[q/p_F] - 1 at {(self.ratio - 1.0) / self.ratio_se:+.1f} se)"

    __str__ = short

    def __repr__(self) -> str:
        return f"SamplerKL({self.short()}, N={self.terms.size}, jacobian={self.density.jacobian!r})"


def _not_estimable_reason(density: SamplerDensity, kl: float, ratio: float, ratio_se: float) -> str:
    # module docstring, "Folds": a fold, or E[q/p_F] away from 1 by more than 3 of its standard errors
    if density.folded:
        return (f"folded: det dF/dz <= 0 at {density.folded} of {density.z.shape[0]} samples "
                f"({100 * density.folded_share:.3g}%), where the change of variables counts one preimage only")
    if kl == np.inf:  # q = 0 at a sample where p_F > 0: the KL is infinite, and that is its value
        return ""
    if abs(ratio - 1.0) > 3.0 * ratio_se + _RATIO_ROUNDING:
        away = f"{(ratio - 1.0) / ratio_se:+.1f} standard errors" if ratio_se > 0 else "every sample alike"
        return (f"self-normalization failed: E[q/p_F] - 1 = {ratio - 1.0:.3g} +- {ratio_se:.2g} "
                f"({away}; 0 for a correct density)")
    return ""


class TangentDenoiser:
    r"""A denoiser whose batch carries K tangent rows per point (module docstring, "The Jacobian").

    A batch of (1 + K) N rows is N points followed by K blocks of N tangent rows (block k holds the
    k-th tangent of every point). ``eps`` returns eps at the points and, in the tangent rows, the
    Jacobian-vector products :math:`(\partial\epsilon/\partial x)\,v` at the matching point (the
    wrapped denoiser's ``eps_jvp``). Fed to a solver whose steps are linear in the state and in eps
    with coefficients that depend on the time only, the tangent rows of its output are
    :math:`\partial F/\partial z\;v` exactly.

    Parameters
    ----------
    denoiser : a denoiser with ``eps_jvp`` (:func:`npdiff.denoiser.has_eps_jvp`).
    n_tangents : K >= 1.
    """

    def __init__(self, denoiser: object, n_tangents: int) -> None:
        check_denoiser(denoiser)
        if not has_eps_jvp(denoiser):
            raise TypeError(f"exact sampler Jacobians need the denoiser's eps_jvp; {type(denoiser).__name__} has none "
                            "(use central differences: jacobian='central')")
        self.denoiser, self.n_tangents = denoiser, positive_int(n_tangents, "n_tangents")
        self.schedule = denoiser.schedule
        self.dim = getattr(denoiser, "dim", None)

    def eps(self, x: object, t: float | np.ndarray) -> np.ndarray:
        r"""eps at the points and :math:`(\partial\epsilon/\partial x)\,v` in the tangent rows, ((1 + K) N, D)."""
        x = as_batch(x, "x", dim=self.dim)
        K = self.n_tangents
        N, D = check_tangent_rows(x.shape[0], K), x.shape[1]
        t = check_one_time(t)  # a fixed-grid solver: one time for the whole batch
        v = x[N:].reshape(K, N, D).transpose(1, 0, 2)  # (N, K, D)
        eps, jvp = call_eps_jvp(self.denoiser, x[:N], t, v)
        return np.concatenate([eps, jvp.transpose(1, 0, 2).reshape(K * N, D)])

    def eps_and_divergence(self, x: object, t: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        r"""Not defined: the tangent rows are not points."""
        raise TypeError("a TangentDenoiser carries tangent rows; it has no divergence (use the wrapped denoiser)")


class SolverMap:
    r"""The map :math:`z \mapsto F(z)` of a fixed-grid solver run on a denoiser, with its exact Jacobian by tangents.

    Parameters
    ----------
    denoiser : the denoiser the solver runs on (with ``eps_jvp`` for :meth:`jvp` and :meth:`jacobian`).
    run : ``run(denoiser, z) -> x``, the solver from the noise z (N, D) to its samples (N, D). It must take
        every step as a linear combination of the states and of ``denoiser.eps`` at one time per call,
        with coefficients that depend on the times only (every solver of :mod:`npdiff.sample` on a fixed
        grid; not the adaptive RK45, nor a map that clips), so that run on :class:`TangentDenoiser` its
        tangent rows are the exact :math:`\partial F/\partial z\;v` (module docstring).
    """

    def __init__(self, denoiser: object, run: Callable[[object, np.ndarray], np.ndarray]) -> None:
        check_denoiser(denoiser)
        self.denoiser, self.run = denoiser, check_sampler(run)

    def __call__(self, z: np.ndarray) -> np.ndarray:
        r"""The samples F(z) (N, D) of the starting noise z (N, D)."""
        return self.run(self.denoiser, z)

    def jvp(self, z: object, v: object) -> tuple[np.ndarray, np.ndarray]:
        r"""F(z) (N, D) and :math:`\partial F/\partial z\;v` for v (N, K, D) (or (N, D)): K tangents per point, exact.

        One run of the solver on :class:`TangentDenoiser`'s stacked rows (module docstring), in blocks
        of points so that the states stay below ~65,000 rows.
        """
        z = as_denoiser_batch(self.denoiser, z, "z")
        vk = as_tangents(v, z)  # (N, K, D)
        (N, K, D), wrapped = vk.shape, TangentDenoiser(self.denoiser, vk.shape[1])
        x, jv = np.empty((N, D)), np.empty((N, K, D))
        step = max(1, _TANGENT_ROWS // (1 + K))
        for i in range(0, N, step):
            sl = slice(i, min(N, i + step))
            n = sl.stop - sl.start
            rows = np.concatenate([z[sl], vk[sl].transpose(1, 0, 2).reshape(K * n, D)])  # ((1 + K) n, D)
            out = check_sampler_output(self.run(wrapped, rows), rows, "the solver")
            x[sl], jv[sl] = out[:n], out[n:].reshape(K, n, D).transpose(1, 0, 2)
        return x, (jv[:, 0] if np.ndim(v) == 2 else jv)

    def jacobian(self, z: object) -> tuple[np.ndarray, np.ndarray]:
        r"""F(z) (N, D) and the exact Jacobian (N, D, D), J[n, i, j] = dF_i / dz_j, by the D unit tangents."""
        z = as_denoiser_batch(self.denoiser, z, "z")
        N, D = z.shape
        x, jv = self.jvp(z, np.broadcast_to(np.eye(D), (N, D, D)))  # jv[n, j] = J e_j, the j-th column
        return x, jv.transpose(0, 2, 1)


class FastSampler(SolverMap):
    r"""The map :math:`z \mapsto F(z)` of :func:`~npdiff.sample.fast_sample`, with its exact Jacobian by tangents.

    Parameters
    ----------
    denoiser : the denoiser the sampler runs on (with ``eps_jvp`` for :meth:`jvp` and :meth:`jacobian`).
    sampler : one of :data:`~npdiff.sample.FAST_SAMPLERS`.
    nfe : its budget of evaluations.
    **options : the other keyword arguments of :func:`~npdiff.sample.fast_sample` (``grid``, ``t_min``,
        ``denoise``, ...), all but ``n``, ``rng``, ``x_T`` and ``record``.

    Every sampler of ``fast_sample`` is covered (all run on fixed grids); the adaptive RK45 flow of
    :func:`~npdiff.sample.ode_sample` is not (pass it as a plain callable: central differences).

    Examples
    --------
    >>> import numpy as np
    >>> from npdiff.analytic import GaussianData
    >>> F = FastSampler(GaussianData(np.zeros(2), 0.5), "dpmpp2m", 10, denoise=False)
    >>> x, J = F.jacobian(np.zeros((1, 2)))
    >>> print(J.shape)
    (1, 2, 2)
    """

    def __init__(self, denoiser: object, sampler: str = "dpmpp2m", nfe: int = 20, **options: object) -> None:
        self.sampler, self.nfe = sampler, nfe
        self.options = check_fast_sampler_options(options)  # the rest fast_sample checks at every run
        super().__init__(denoiser, self._run_fast)

    def _run_fast(self, denoiser: object, z: np.ndarray) -> np.ndarray:
        return fast_sample(denoiser, None, 0, sampler=self.sampler, nfe=self.nfe, x_T=z, **self.options).x

    def __repr__(self) -> str:
        opts = "".join(f", {k}={v!r}" for k, v in self.options.items())
        return f"FastSampler({self.denoiser!r}, {self.sampler!r}, nfe={self.nfe}{opts})"


def _run(sampler: Callable[[np.ndarray], np.ndarray], z: np.ndarray, name: str) -> np.ndarray:
    return check_sampler_output(sampler(z), z, name)


def _central_jacobian(sampler: Callable[[np.ndarray], np.ndarray], z: np.ndarray, h: float
                      ) -> tuple[np.ndarray, np.ndarray]:
    r"""F(z) (N, D) and its Jacobian (N, D, D), J[n, i, j] = dF_i / dz_j, by central differences."""
    N, D = z.shape
    steps = h * np.eye(D)  # (D, D)
    stacked = np.concatenate([z, *(z + steps[j] for j in range(D)), *(z - steps[j] for j in range(D))])  # (N(2D+1), D)
    out = _run(sampler, stacked, "sampler").reshape(2 * D + 1, N, D)
    J = ((out[1 : D + 1] - out[D + 1 :]) / (2.0 * h)).transpose(1, 2, 0)  # (N, D, D)
    return out[0], J


def _jacobian(sampler, z: np.ndarray, h: float, how: str) -> tuple[np.ndarray, np.ndarray, str]:
    r"""F(z), its Jacobian and how it was taken: tangents for a :class:`SolverMap` (unless ``how`` says central)."""
    if how == "tangents" or (how == "auto" and isinstance(sampler, SolverMap) and has_eps_jvp(sampler.denoiser)):
        if not isinstance(sampler, SolverMap):
            raise TypeError(f"jacobian='tangents' needs a SolverMap or FastSampler (a fixed-grid solver); "
                            f"{type(sampler).__name__} is a plain map (an adaptive solver, clipping, ...): "
                            "use jacobian='central'")
        x, J = sampler.jacobian(z)
        return check_sampler_output(x, z, "sampler"), J, "tangents"
    x, J = _central_jacobian(sampler, z, h)
    return x, J, f"central differences, h={h:g}"


def _density(z: np.ndarray, x: np.ndarray, J: np.ndarray, residual: np.ndarray, how: str) -> SamplerDensity:
    sign, log_det = np.linalg.slogdet(J)  # (N,) each
    check_nonsingular(sign)
    prior = log_normal_diag_unchecked(z, 0.0, 0.0)  # (N,) log N(z; 0, I)
    return SamplerDensity(z=z, x=x, log_p=prior - log_det, prior=prior, log_det=log_det,
                          folded=int(np.sum(sign <= 0.0)), residual=residual, jacobian=how)


def sampler_log_density(sampler: Callable[[np.ndarray], np.ndarray], z: object, *, h: float = 1e-6,
                        jacobian: str = "auto") -> SamplerDensity:
    r"""The exact log-density :math:`\log p_F(F(z))` of a deterministic sampler's samples (module docstring).

    Parameters
    ----------
    sampler : F: a :class:`FastSampler` or :class:`SolverMap` (exact Jacobian by tangents), or any callable taking (M, D) noise
        and returning (M, D) samples, deterministic and smooth in z (central differences), e.g. the RK45
        flow ``lambda z: ode_sample(model, None, rng, x_T=z, denoise=False).x``.
    z : (N, D) starting noise.
    h : the step of the central differences (the sampler's rounding error over h against h^2 times
        its third derivative; see ``docs/measurements/samplers.md``).
    jacobian : ``"auto"`` (tangents where the sampler has them), ``"tangents"`` (refuse a map without) or
        ``"central"``.

    Returns
    -------
    :class:`SamplerDensity` at the N points.
    """
    sampler, z = check_sampler(sampler), as_batch(z, "z")
    h = real_scalar(h, "h", lo=1e-12, hi=1.0)  # below ~1e-12, z + h rounds to z for |z| ~ 1e4
    how = one_of(jacobian, "jacobian", JACOBIANS)
    x, J, how = _jacobian(sampler, z, h, how)
    return _density(z, x, J, np.zeros(z.shape[0]), how)


def sampler_kl(sampler: Callable[[np.ndarray], np.ndarray], z: object, log_q: Callable[[np.ndarray], np.ndarray], *,
               h: float = 1e-6, jacobian: str = "auto") -> SamplerKL:
    r"""The exact :math:`\mathrm{KL}(p_F\,\|\,q) = \mathbb E_z[\log p_F(F(z)) - \log q(F(z))]` and its standard error.

    Parameters
    ----------
    sampler : F, as in :func:`sampler_log_density`.
    z : (N, D) starting noise, N >= 2, drawn from N(0, I) by the caller.
    log_q : the true log-density, a callable taking (N, D) points and returning (N,) values
        (e.g. ``oracle.log_prob(x, t_min)``, the data at the sampler's last noise level).
    h : the central differences' step (for a sampler without tangents).
    jacobian : as in :func:`sampler_log_density`.

    Returns
    -------
    :class:`SamplerKL`; not estimable where F folds or the self-normalization fails (module docstring,
    "Folds"): then ``estimable`` is False and asking for its ``kl`` raises :class:`KLNotEstimableError`.
    """
    sampler, z = check_sampler(sampler), as_batch(z, "z")
    log_q = check_log_q(log_q, z)
    density = sampler_log_density(sampler, z, h=h, jacobian=jacobian)
    lq = as_log_q_values(log_q(density.x), z.shape[0])  # (N,)
    return SamplerKL(density.log_p - lq, density)  # delta, +inf where q(x) = 0


def _mean_se(values: np.ndarray) -> tuple[float, float]:
    if np.any(np.isinf(values)):
        return np.inf, np.inf
    return float(values.mean()), float(values.std(ddof=1) / np.sqrt(values.size))


def sampler_log_density_at(sampler: Callable[[np.ndarray], np.ndarray], x: object, z0: object, *, h: float = 1e-6,
                           tol: float = 1e-10, max_iter: int = 20, jacobian: str = "auto") -> SamplerDensity:
    r""":math:`\log p_F(x)` at given samples: solve :math:`F(z) = x` by Newton's method from ``z0``, then change variables.

    .. math:: z_{k+1} = z_k - s_k\big(\partial F/\partial z\,(z_k)\big)^{-1}\,\big(F(z_k) - x\big)

    with the step :math:`s_k = 1, 1/2, 1/4, \dots`, the first that lowers the point's residual
    (damped Newton: a sampler of few steps bends space enough for a full step to overshoot).

    Parameters
    ----------
    sampler : F, as in :func:`sampler_log_density`.
    x : (N, D) samples, e.g. test points of the data.
    z0 : (N, D) a starting guess near the preimage, e.g. the probability flow's encoding of x.
    h : the central differences' step.
    tol : stop when every :math:`\max_i|F(z)_i - x_i|` is below it.
    max_iter : Newton iterations at most.
    jacobian : as in :func:`sampler_log_density`.

    Returns
    -------
    :class:`SamplerDensity` at the solution; its ``residual`` says how far F(z) stayed from x.
    """
    sampler = check_sampler(sampler)
    x, z = as_batches(x=x, z0=z0)
    z = z.copy()
    h = real_scalar(h, "h", lo=1e-12, hi=1.0)  # below ~1e-12, z + h rounds to z for |z| ~ 1e4
    tol = real_scalar(tol, "tol", lo=0.0, lo_open=True)
    max_iter = positive_int(max_iter, "max_iter", maximum=1000)
    how = one_of(jacobian, "jacobian", JACOBIANS)
    fz, J, how = _jacobian(sampler, z, h, how)
    res = np.max(np.abs(fz - x), axis=1)  # (N,) residuals
    for _ in range(max_iter):
        if res.max() < tol:
            break
        try:
            dz = np.linalg.solve(J, (fz - x)[:, :, None])[:, :, 0]  # (N, D) one Newton step per point
        except np.linalg.LinAlgError:
            raise FloatingPointError("the sampler's Jacobian became singular during Newton's iterations") from None
        # damped: halve a point's step until its residual falls (a full step can leap to another preimage)
        step = np.where(res >= tol, 1.0, 0.0)  # (N,) converged points stay
        for _ in range(_HALVINGS):
            z_try = z - step[:, None] * dz
            res_try = np.max(np.abs(_run(sampler, z_try, "sampler") - x), axis=1)
            worse = (step > 0.0) & (res_try >= res)
            if not worse.any():
                break
            step = np.where(worse, 0.5 * step, step)
        z = z_try
        fz, J, how = _jacobian(sampler, z, h, how)
        res = np.max(np.abs(fz - x), axis=1)
    return _density(z, fz, J, res, how)
