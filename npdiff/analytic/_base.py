r"""What every analytic oracle shares: time handling, Tweedie's formula and the denoiser protocol.

An oracle knows its noised marginal :math:`q_t` in closed form. Subclasses implement one
private method, ``_evaluate(x, sqrt_ab, alpha_bar, sigma2)``, returning for a checked batch

* ``log_prob`` (B,): :math:`\log q_t(x)`,
* ``score`` (B, D): :math:`\nabla_x \log q_t(x)`,
* ``laplacian`` (B,): :math:`\Delta_x \log q_t(x) = \mathrm{tr}\,\nabla_x^2 \log q_t(x)`,

and everything public follows from these three. For the optional Jacobian of eps (the denoiser
protocol's ``eps_jvp`` and ``eps_vjp``) they implement ``_hvp(x, sqrt_ab, alpha_bar, sigma2, v)``,
returning the score and the Hessian-vector products :math:`\nabla_x^2\log q_t(x)\,v` (B, T, D) of
T tangents per point (:mod:`npdiff.analytic._kernels` derives the mixture's Hessian):

.. math::
    \epsilon(x, t) = -\sigma(t)\,\nabla\log q_t(x),\qquad
    \mathrm{tr}\frac{\partial\epsilon}{\partial x} = -\sigma(t)\,\Delta\log q_t(x),\qquad
    \frac{\partial\epsilon}{\partial x} = -\sigma(t)\,\nabla^2\log q_t(x),\qquad
    \mathbb E[x_0 \mid x_t = x] = \frac{x + \sigma^2(t)\,\nabla\log q_t(x)}{\sqrt{\bar\alpha(t)}}

(the first is the noise-prediction parameterization, Ho et al. 2020, Eq. 11 with
Song et al. 2021, Eq. 17; the last is Tweedie's formula, Efron 2011, Eq. 2.8, for
:math:`x_t = \sqrt{\bar\alpha}\,x_0 + \sigma\,\epsilon`).

Where :math:`\sigma(t) = 0` (t = 0 for ``vp_linear`` and ``cosine``) the marginal is the
clean data distribution. Subclasses whose clean density is smooth (Gaussian data) define
everything there; the others set ``_needs_noise`` and raise a ``ValueError`` instead of
returning an infinite or undefined number. Tweedie's ``x0_mean`` also raises where
:math:`\bar\alpha(t) < 10^{-16}` (``cosine`` beyond its ``t_max``), where :math:`x_t` carries
no information about :math:`x_0` that float64 can resolve.

**Labels.** A mixture oracle built with a label per component (``labels``, ints 0..C-1) is a
conditional denoiser (:mod:`npdiff.denoiser`): with :math:`\pi_y` the total weight of label y,
the class-conditional :math:`q_t(x \mid y)` is the mixture of that label's components with
their weights divided by :math:`\pi_y`, the unconditional :math:`q_t(x) = \sum_y \pi_y q_t(x\mid y)`
is the whole mixture, and every public method takes ``y`` (None: unconditional; one int or
one per point). Bayes' rule gives the exact posterior classifier at every noise level,

.. math::
    \log q_t(y \mid x) = \log\pi_y + \log q_t(x \mid y) - \log q_t(x),\qquad
    \nabla_x\log q_t(y \mid x) = \nabla\log q_t(x\mid y) - \nabla\log q_t(x)

(the responsibilities summed per label), with the Laplacian the same difference: what
classifier guidance (:mod:`npdiff.guidance`) needs, in closed form.
"""

from __future__ import annotations

import numpy as np

from .._check import InputOverflowError, as_batch, as_generator, as_labels, as_times, positive_int
from ..denoiser import as_tangents
from ..schedule import Schedule
from ._validate import as_component_labels, check_has_labels, check_noise, check_tweedie

#: beyond this |x| the squares of a distance overflow float64 (D (2e150)^2 stays finite up to D ~ 10^6): every method
#: but ``log_prob`` (whose answer there is a log-density the checks below judge) refuses such x at the door, the same
#: way whether the kernels run compiled or as Python (which round the overflow differently)
X_LIMIT = 1e150


# far from the data the kernels' squares overflow and their tails cancel; :func:`_representable` judges the result
def _far() -> np.errstate:
    return np.errstate(over="ignore", invalid="ignore", divide="ignore")


def _representable(x: np.ndarray, what: str, *arrays: np.ndarray, log: bool = False) -> None:
    r"""Refuse what float64 cannot represent: far from the data the closed forms lose to rounding (a difference
    of erfc tails, a log-sum-exp of overflowing squares). A log-density (``log``) of -inf is an answer; NaN or
    +inf is not, nor a score, Laplacian or Hessian product that is not finite. Each array is (B, ...)."""
    bad = np.zeros(x.shape[0], dtype=bool)
    for a in arrays:
        ok = ~np.isnan(a) & (a != np.inf) if log else np.isfinite(a)
        bad |= ~ok.reshape(a.shape[0], -1).all(axis=1)
    if bad.any():
        raise InputOverflowError(f"the oracle's {what} is not representable in float64 at x with |x| up to "
                                 f"{np.abs(x[bad]).max():.3g}; x must lie nearer the data")


class AnalyticOracle:
    r"""Base class of the closed-form oracles (see the module docstring).

    Attributes
    ----------
    schedule : Schedule
        The forward process the data diffuses under.
    dim : int
        The data dimension D.
    """

    schedule: Schedule
    dim: int
    #: number of classes C (0: no labels); labelled mixtures set it with ``labels`` (module docstring)
    num_classes: int = 0
    #: (K,) the label of each component, or None
    labels: np.ndarray | None = None
    #: (C,) the total weight pi_y of each label
    class_weights: np.ndarray | None = None
    _by_label: list[AnalyticOracle] = ()  # one oracle per label: the mixture of that label's components
    #: True when the clean distribution has no smooth density (Dirac masses, boxes), so
    #: score, eps and divergence are undefined where sigma(t) = 0.
    _needs_noise: bool = False
    #: True when even log_prob is undefined where sigma(t) = 0 (Dirac masses).
    _log_prob_needs_noise: bool = False

    # -- to be provided by subclasses --------------------------------------------------
    def _evaluate(
        self, x: np.ndarray, sqrt_ab: np.ndarray, alpha_bar: np.ndarray, sigma2: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        raise NotImplementedError

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def _hvp(self, x: np.ndarray, sqrt_ab: np.ndarray, alpha_bar: np.ndarray, sigma2: np.ndarray, v: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError  # (score (B, D), the Hessian of log q_t times v (B, T, D))

    def _draw(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError  # (x (n, D), the component k (n,) of each point), for sample_labelled

    def _restrict(self, mask: np.ndarray) -> AnalyticOracle:
        raise NotImplementedError  # the mixture of the components in mask, weights renormalized

    # -- labels ------------------------------------------------------------------------
    def _set_labels(self, labels: object, weights: np.ndarray, keep: np.ndarray) -> None:
        r"""Store the labels of the kept components and build one oracle per label."""
        if labels is None:
            return
        lab = as_component_labels(labels, weights, keep)  # (K,) the kept components' labels
        pi = np.bincount(lab, weights=weights, minlength=int(lab.max()) + 1)  # (C,) total weight of each label
        self.labels, self.num_classes, self.class_weights = lab, pi.size, pi / pi.sum()
        self._by_label = [self._restrict(lab == c) for c in range(pi.size)]

    def _evaluate_given(self, x, sqrt_ab, alpha_bar, sigma2, y):
        r"""``_evaluate`` of q_t(x) (y None) or of q_t(x | y_b) point by point (y (B,) checked labels)."""
        if y is None:
            return self._evaluate(x, sqrt_ab, alpha_bar, sigma2)
        B = x.shape[0]
        log_prob, score, laplacian = np.empty(B), np.empty((B, self.dim)), np.empty(B)
        for c in np.unique(y):
            i = np.flatnonzero(y == c)  # the points of label c, evaluated by that label's mixture
            log_prob[i], score[i], laplacian[i] = self._by_label[c]._evaluate(x[i], sqrt_ab[i], alpha_bar[i], sigma2[i])
        return log_prob, score, laplacian

    def _hvp_given(self, x, sqrt_ab, alpha_bar, sigma2, v, y):
        r"""``_hvp`` of q_t(x) (y None) or of q_t(x | y_b) point by point, as ``_evaluate_given``."""
        if y is None:
            return self._hvp(x, sqrt_ab, alpha_bar, sigma2, v)
        score, hv = np.empty(x.shape), np.empty(v.shape)
        for c in np.unique(y):
            i = np.flatnonzero(y == c)
            score[i], hv[i] = self._by_label[c]._hvp(x[i], sqrt_ab[i], alpha_bar[i], sigma2[i], v[i])
        return score, hv

    def sample_labelled(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        r"""Draw n clean points and their labels: (x (n, D), y (n,) int64), by the same draws as ``sample``."""
        check_has_labels(self, "sample_labelled")
        x, k = self._draw(positive_int(n, "n"), as_generator(rng))
        return x, self.labels[k]

    def class_log_prob(self, x: object, t: object) -> np.ndarray:
        r"""The exact posterior classifier :math:`\log q_t(y \mid x)` for every class (module docstring).

        Returns (B, C) log-probabilities; each row's exponentials sum to 1.
        """
        x, sqrt_ab, alpha_bar, sigma2, _ = self._levels(x, t, None, "class_log_prob", needs_noise=self._needs_noise)
        check_has_labels(self, "class_log_prob")
        with _far():
            log_q = self._evaluate(x, sqrt_ab, alpha_bar, sigma2)[0]  # (B,)
            cols = [np.log(pi) + o._evaluate(x, sqrt_ab, alpha_bar, sigma2)[0]
                    for pi, o in zip(self.class_weights, self._by_label)]
            out = np.stack(cols, axis=1) - log_q[:, None]  # (B, C)
        _representable(x, "class_log_prob", out, log=True)
        return out

    def class_log_prob_grad_and_laplacian(self, x: object, t: object, y: object) -> tuple[np.ndarray, np.ndarray]:
        r""":math:`\nabla_x\log q_t(y\mid x)` (B, D) and :math:`\Delta_x\log q_t(y\mid x)` (B,) (module docstring)."""
        x, sqrt_ab, alpha_bar, sigma2, _ = self._levels(x, t, None, "class_log_prob_grad", needs_noise=self._needs_noise)
        check_has_labels(self, "class_log_prob_grad")
        if y is None:
            raise ValueError("y must be the class whose log-probability is differentiated, got None")
        y = as_labels(y, x.shape[0], self.num_classes)
        with _far():
            _, g_cond, lap_cond = self._evaluate_given(x, sqrt_ab, alpha_bar, sigma2, y)
            _, g, lap = self._evaluate(x, sqrt_ab, alpha_bar, sigma2)
        _representable(x, "class_log_prob_grad", g_cond - g, lap_cond - lap)
        return g_cond - g, lap_cond - lap

    def class_log_prob_hvp(self, x: object, t: object, y: object, v: object) -> tuple[np.ndarray, np.ndarray]:
        r""":math:`\nabla_x\log q_t(y\mid x)` (B, D) and its Hessian times K tangents per point, v (B, K, D).

        The Hessian is :math:`\nabla^2\log q_t(x\mid y) - \nabla^2\log q_t(x)` (module docstring), so
        the products are the difference of the two oracles' (B, K, D).
        """
        x, sqrt_ab, alpha_bar, sigma2, _ = self._levels(x, t, None, "class_log_prob_hvp", needs_noise=self._needs_noise)
        check_has_labels(self, "class_log_prob_hvp")
        if y is None:
            raise ValueError("y must be the class whose log-probability is differentiated, got None")
        y = as_labels(y, x.shape[0], self.num_classes)
        v = as_tangents(v, x)
        with _far():
            g_cond, hv_cond = self._hvp_given(x, sqrt_ab, alpha_bar, sigma2, v, y)
            g, hv = self._hvp(x, sqrt_ab, alpha_bar, sigma2, v)
        _representable(x, "class_log_prob_hvp", g_cond - g, hv_cond - hv)
        return g_cond - g, hv_cond - hv

    def class_log_prob_grad(self, x: object, t: object, y: object) -> np.ndarray:
        r""":math:`\nabla_x\log q_t(y\mid x) = \nabla\log q_t(x\mid y) - \nabla\log q_t(x)`, (B, D)."""
        return self.class_log_prob_grad_and_laplacian(x, t, y)[0]

    # -- shared ------------------------------------------------------------------------
    def _evaluate_checked(self, x, sqrt_ab, alpha_bar, sigma2, y, what):
        r"""``_evaluate_given`` with the outputs that ``what`` uses checked by :func:`_representable`."""
        with _far():
            log_prob, score, laplacian = self._evaluate_given(x, sqrt_ab, alpha_bar, sigma2, y)
        if what == "log_prob":
            _representable(x, what, log_prob, log=True)
        else:
            _representable(x, what, score, *((laplacian,) if what == "divergence" else ()))
        return log_prob, score, laplacian

    def _levels(self, x: object, t: object, y: object, what: str, *, needs_noise: bool):
        # the door of every public method: x (B, D), t, labels y (None or (B,) ints), and sigma(t) > 0 if needed
        x = as_batch(x, "x", dim=self.dim)
        t = as_times(t, x.shape[0])
        y = as_labels(y, x.shape[0], self.num_classes)
        if what != "log_prob" and np.abs(x).max() > X_LIMIT:
            raise InputOverflowError(f"x must satisfy |x| <= {X_LIMIT:g} for the oracle's {what}, where its squared "
                                     f"distances stay finite in float64; got |x| up to {np.abs(x).max():.3g}")
        log_ab = self.schedule.log_alpha_bar(t)  # (B,)
        alpha_bar = np.exp(log_ab)
        sigma2 = -np.expm1(log_ab)  # 1 - alpha_bar without cancellation at small t
        if needs_noise:
            check_noise(self, t, sigma2, what)
        return x, np.exp(0.5 * log_ab), alpha_bar, sigma2, y

    def log_prob(self, x: object, t: object, y: object = None) -> np.ndarray:
        r"""Log-density :math:`\log q_t(x)` of the noised marginal (:math:`\log q_t(x \mid y)` given labels).

        Parameters
        ----------
        x : (B, D) points. t : float or (B,) times in [0, 1].
        y : None, or class labels (an int, or (B,) ints) of a labelled oracle.

        Returns
        -------
        (B,) log-densities in nats.
        """
        x, sqrt_ab, alpha_bar, sigma2, y = self._levels(x, t, y, "log_prob", needs_noise=self._log_prob_needs_noise)
        return self._evaluate_checked(x, sqrt_ab, alpha_bar, sigma2, y, "log_prob")[0]

    def score(self, x: object, t: object, y: object = None) -> np.ndarray:
        r"""Score :math:`\nabla_x \log q_t(x)` (or of :math:`q_t(x \mid y)`), (B, D)."""
        x, sqrt_ab, alpha_bar, sigma2, y = self._levels(x, t, y, "score", needs_noise=self._needs_noise)
        return self._evaluate_checked(x, sqrt_ab, alpha_bar, sigma2, y, "score")[1]

    def x0_mean(self, x: object, t: object, y: object = None) -> np.ndarray:
        r"""The optimal denoiser :math:`\mathbb E[x_0 \mid x_t = x\,(, y)]` by Tweedie's formula, (B, D)."""
        x, sqrt_ab, alpha_bar, sigma2, y = self._levels(x, t, y, "x0_mean", needs_noise=self._needs_noise)
        check_tweedie(self, alpha_bar)
        score = self._evaluate_checked(x, sqrt_ab, alpha_bar, sigma2, y, "score")[1]
        return (x + sigma2[:, None] * score) / sqrt_ab[:, None]

    def eps(self, x: object, t: object, y: object = None) -> np.ndarray:
        r"""Optimal noise prediction :math:`\epsilon(x, t\,(, y)) = -\sigma(t)\nabla\log q_t(x\,(\mid y))`, (B, D)."""
        x, sqrt_ab, alpha_bar, sigma2, y = self._levels(x, t, y, "eps", needs_noise=self._needs_noise)
        score = self._evaluate_checked(x, sqrt_ab, alpha_bar, sigma2, y, "score")[1]
        return -np.sqrt(sigma2)[:, None] * score

    def eps_and_divergence(self, x: object, t: object, y: object = None) -> tuple[np.ndarray, np.ndarray]:
        r"""``eps`` and its exact divergence :math:`\mathrm{tr}\,\partial\epsilon/\partial x = -\sigma\,\Delta\log q_t`.

        Returns
        -------
        eps : (B, D). divergence : (B,).
        """
        x, sqrt_ab, alpha_bar, sigma2, y = self._levels(x, t, y, "eps_and_divergence", needs_noise=self._needs_noise)
        _, score, laplacian = self._evaluate_checked(x, sqrt_ab, alpha_bar, sigma2, y, "divergence")
        sigma = np.sqrt(sigma2)
        return -sigma[:, None] * score, -sigma * laplacian

    def eps_jvp(self, x: object, t: object, v: object, y: object = None) -> tuple[np.ndarray, np.ndarray]:
        r"""``eps`` and its Jacobian times K tangents per point, :math:`-\sigma\,\nabla^2\log q_t(x)\,v_{b,k}`.

        Parameters
        ----------
        x : (B, D) points.
        t : float or (B,) times in [0, 1].
        v : (B, K, D) tangents (one direction (B, D) is read as K = 1).
        y : None, or class labels of a labelled oracle.

        Returns
        -------
        eps : (B, D). jvp : (B, K, D) (the shape of ``v``).
        """
        x, sqrt_ab, alpha_bar, sigma2, y = self._levels(x, t, y, "eps_jvp", needs_noise=self._needs_noise)
        vk = as_tangents(v, x)  # (B, K, D)
        with _far():
            score, hv = self._hvp_given(x, sqrt_ab, alpha_bar, sigma2, vk, y)
        _representable(x, "eps_jvp", score, hv)
        sigma = np.sqrt(sigma2)
        jvp = -sigma[:, None, None] * hv
        return -sigma[:, None] * score, (jvp[:, 0] if np.ndim(v) == 2 else jvp)

    def eps_vjp(self, x: object, t: object, u: object, y: object = None) -> tuple[np.ndarray, np.ndarray]:
        r"""``eps`` and :math:`u^\top\partial\epsilon/\partial x` (B, D): the Hessian is symmetric, so it is ``eps_jvp`` of u."""
        x = as_batch(x, "x", dim=self.dim)
        return self.eps_jvp(x, t, as_tangents(u, x, "u", one=True)[:, 0], y)
