r"""Guidance: a denoiser of the plain protocol built out of a conditional one.

**Classifier-free guidance** (Ho & Salimans 2022, Eq. 6) mixes the conditional and the
unconditional predictions of one conditional denoiser (:mod:`npdiff.denoiser`) with a weight
:math:`w \ge 0`:

.. math::
    \tilde\epsilon(x, t) = (1 + w)\,\epsilon(x, t, y) - w\,\epsilon(x, t, \varnothing),
    \qquad\text{i.e.}\qquad
    \nabla\log\tilde q_t = \nabla\log q_t(x \mid y) + w\,\nabla_x\log q_t(y \mid x)

(with :math:`\epsilon = -\sigma\nabla\log q_t` and Bayes' rule). **Classifier guidance**
(Dhariwal & Nichol 2021, Algorithm 2 and Eq. 14, written for eps) adds the input gradient of a
classifier of noisy inputs to an unconditional denoiser with a scale :math:`s \ge 0`:

.. math:: \tilde\epsilon(x, t) = \epsilon(x, t) - s\,\sigma(t)\,\nabla_x\log p_\phi(y \mid x, t),

which for the exact classifier :math:`q_t(y \mid x)` and s = 1 is the exact conditional
:math:`\epsilon(x, t, y)`. Both are linear in the predictions, so the exact divergence is the
same combination of divergences (for the classifier, :math:`-s\sigma\,\Delta_x\log p_\phi`),
and DDPM, DDIM, the ODE and SDE samplers and the exact ODE likelihood run on a guided field
with no code of their own. The optional Jacobian of eps (``eps_jvp``, ``eps_vjp``:
:mod:`npdiff.denoiser`) is the same combination of the parts' Jacobians, where the parts have them
(``has_eps_jvp`` says; for classifier guidance the classifier must answer
``class_log_prob_hvp(x, t, y, v)``, the Hessian of :math:`\log p_\phi(y \mid x, t)` times tangents, as
the labelled oracles do; it is symmetric, so it serves the VJP too).

What a guided field samples is not the "sharpened conditional"
:math:`p_w(x \mid y) \propto p(x \mid y)^{1+w} p(x)^{-w}` it is often said to: the guided score
at time t is the score of :math:`q_t(x \mid y)^{1+w} q_t(x)^{-w}`, a tilt of the noised
marginals, and noising does not commute with the power, so these are not the marginals of any
one diffusion of :math:`p_w` (Bradley & Nakkiran 2024; Chidambaram et al. 2024), and the ODE
and DDPM samplers of the same field sample different distributions. Tutorial 8 and
``docs/measurements/guidance.md`` give the exact numbers (:class:`npdiff.analytic.TiltedTarget` is the
quadrature of :math:`p_w`).

A classifier for :func:`classifier_guided` answers ``class_log_prob_grad(x, t, y)`` (B, D) and,
for the exact divergence, ``class_log_prob_grad_and_laplacian(x, t, y)``; the labelled oracles
(:mod:`npdiff.analytic`) and :class:`npdiff.nn.classifier.NoisyClassifier` do.

A prompt model (:class:`npdiff.nn.prompt_mlp.PromptMLP`) is guided by the same :class:`ClassifierFree`,
with a prompt for y and the **empty prompt** as the unconditional model (GLIDE, Nichol et al. 2022, Sec. 3.2).
"""

from __future__ import annotations

import numpy as np

from ._check import as_batch, real_scalar
from ._validate import (
    as_guidance_label,
    as_guidance_prompt,
    check_classifier,
    check_classifier_answer,
    check_conditional,
    check_hessian,
    check_label_count,
    check_laplacian,
    check_prompt_count,
)
from .data.prompts import DIGIT_VOCABULARY, Vocabulary
from .denoiser import Denoiser, as_tangents, call_eps, call_eps_and_divergence, call_eps_jvp, call_eps_vjp
from .denoiser import has_eps_jvp as answers_eps_jvp
from .denoiser import has_eps_vjp as answers_eps_vjp

__all__ = ["ClassifierFree", "ClassifierGuided", "classifier_guided", "guided"]


def _labels_for(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    # one label for the batch, or one per point: then the batch must be the one the labels were given for
    check_label_count(y, x)
    return np.full(x.shape[0], int(y)) if y.ndim == 0 else y


class ClassifierFree:
    r"""The classifier-free guided denoiser of :func:`guided` (module docstring).

    Attributes: ``denoiser`` (the conditional denoiser), ``y`` (int64: a label () or labels (B,) of a
    label model; token ids (L,) or (B, L) of a prompt model), ``w``, ``schedule`` and ``dim`` (the denoiser's),
    ``prompt`` (whether y is a prompt: the denoiser has no labels).
    """

    def __init__(self, denoiser: Denoiser, y: np.ndarray, w: float) -> None:
        self.denoiser, self.y, self.w = denoiser, y, w
        self.schedule = denoiser.schedule
        self.dim = getattr(denoiser, "dim", None)
        self.prompt = getattr(denoiser, "num_classes", 0) == 0  # labels () or (B,) and prompts (L,) are told apart here

    def _y_for(self, x: np.ndarray) -> np.ndarray:
        if self.prompt:  # one prompt (L,) for the batch, or one per point (B, L) for exactly this batch
            check_prompt_count(self.y, x)
            return self.y
        return _labels_for(self.y, x)

    def eps(self, x: object, t: float | np.ndarray) -> np.ndarray:
        r""":math:`(1 + w)\,\epsilon(x, t, y) - w\,\epsilon(x, t, \varnothing)`, (B, D)."""
        x = as_batch(x, "x", dim=self.dim)
        eps_y = call_eps(self.denoiser, x, t, self._y_for(x))  # (B, D)
        if self.w == 0.0:  # the conditional itself, without an unconditional evaluation
            return eps_y
        return (1.0 + self.w) * eps_y - self.w * call_eps(self.denoiser, x, t)

    def eps_and_divergence(self, x: object, t: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        r"""The guided eps (B, D) and its exact divergence, the same combination of divergences (B,)."""
        x = as_batch(x, "x", dim=self.dim)
        eps_y, div_y = call_eps_and_divergence(self.denoiser, x, t, self._y_for(x))
        if self.w == 0.0:
            return eps_y, div_y
        eps_0, div_0 = call_eps_and_divergence(self.denoiser, x, t)
        return (1.0 + self.w) * eps_y - self.w * eps_0, (1.0 + self.w) * div_y - self.w * div_0

    @property
    def has_eps_jvp(self) -> bool:
        r"""Whether :meth:`eps_jvp` can answer: the conditional denoiser has ``eps_jvp``."""
        return answers_eps_jvp(self.denoiser)

    @property
    def has_eps_vjp(self) -> bool:
        r"""Whether :meth:`eps_vjp` can answer: the conditional denoiser has ``eps_vjp``."""
        return answers_eps_vjp(self.denoiser)

    def eps_jvp(self, x: object, t: float | np.ndarray, v: object) -> tuple[np.ndarray, np.ndarray]:
        r"""The guided eps (B, D) and its Jacobian times v (B, K, D): :math:`(1 + w) J_y v - w J_\varnothing v`."""
        x = as_batch(x, "x", dim=self.dim)
        eps_y, jvp_y = call_eps_jvp(self.denoiser, x, t, v, self._y_for(x))
        if self.w == 0.0:
            return eps_y, jvp_y
        eps_0, jvp_0 = call_eps_jvp(self.denoiser, x, t, v)
        return (1.0 + self.w) * eps_y - self.w * eps_0, (1.0 + self.w) * jvp_y - self.w * jvp_0

    def eps_vjp(self, x: object, t: float | np.ndarray, u: object) -> tuple[np.ndarray, np.ndarray]:
        r"""The guided eps (B, D) and :math:`u^\top J` (B, D), the same combination."""
        x = as_batch(x, "x", dim=self.dim)
        eps_y, vjp_y = call_eps_vjp(self.denoiser, x, t, u, self._y_for(x))
        if self.w == 0.0:
            return eps_y, vjp_y
        eps_0, vjp_0 = call_eps_vjp(self.denoiser, x, t, u)
        return (1.0 + self.w) * eps_y - self.w * eps_0, (1.0 + self.w) * vjp_y - self.w * vjp_0

    def __repr__(self) -> str:
        return f"ClassifierFree({self.denoiser!r}, y={self.y.tolist()}, w={self.w:g})"


class ClassifierGuided:
    r"""The classifier-guided denoiser of :func:`classifier_guided` (module docstring).

    Attributes: ``denoiser``, ``classifier``, ``y``, ``scale``, ``schedule``, ``dim``.
    """

    def __init__(self, denoiser: Denoiser, classifier: object, y: np.ndarray, scale: float) -> None:
        self.denoiser, self.classifier, self.y, self.scale = denoiser, classifier, y, scale
        self.schedule = denoiser.schedule
        self.dim = getattr(denoiser, "dim", None)

    def _sigma(self, x: np.ndarray, t: float | np.ndarray) -> np.ndarray:
        return np.broadcast_to(np.asarray(self.schedule.sigma(np.asarray(t, dtype=np.float64))), (x.shape[0],))  # (B,)

    def eps(self, x: object, t: float | np.ndarray) -> np.ndarray:
        r""":math:`\epsilon(x, t) - s\,\sigma(t)\,\nabla_x\log p_\phi(y \mid x, t)`, (B, D)."""
        x = as_batch(x, "x", dim=self.dim)
        eps = call_eps(self.denoiser, x, t)  # (B, D)
        return eps - self.scale * self._sigma(x, t)[:, None] * self._grad(x, t)

    def _grad(self, x: np.ndarray, t: float | np.ndarray) -> np.ndarray:
        grad = self.classifier.class_log_prob_grad(x, t, _labels_for(self.y, x))  # (B, D)
        return check_classifier_answer(grad, x.shape, "class_log_prob_grad")

    def eps_and_divergence(self, x: object, t: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        r"""The guided eps (B, D) and its exact divergence :math:`\mathrm{tr}\,\partial\epsilon/\partial x
        - s\sigma\,\Delta_x\log p_\phi(y \mid x, t)` (B,)."""
        x = as_batch(x, "x", dim=self.dim)
        check_laplacian(self.classifier)
        eps, div = call_eps_and_divergence(self.denoiser, x, t)
        grad, lap = self.classifier.class_log_prob_grad_and_laplacian(x, t, _labels_for(self.y, x))
        grad = check_classifier_answer(grad, x.shape, "class_log_prob_grad")  # (B, D)
        lap = check_classifier_answer(lap, x.shape[:1], "Laplacian")  # (B,)
        sigma = self._sigma(x, t)  # (B,)
        return eps - self.scale * sigma[:, None] * grad, div - self.scale * sigma * lap

    @property
    def has_eps_jvp(self) -> bool:
        r"""Whether :meth:`eps_jvp` can answer: the denoiser has ``eps_jvp`` and the classifier ``class_log_prob_hvp``."""
        return answers_eps_jvp(self.denoiser) and callable(getattr(self.classifier, "class_log_prob_hvp", None))

    @property
    def has_eps_vjp(self) -> bool:
        r"""Whether :meth:`eps_vjp` can answer: the denoiser has ``eps_vjp`` and the classifier ``class_log_prob_hvp``."""
        return answers_eps_vjp(self.denoiser) and callable(getattr(self.classifier, "class_log_prob_hvp", None))

    def _classifier_hvp(self, x: np.ndarray, t: float | np.ndarray, v: np.ndarray) -> np.ndarray:
        check_hessian(self.classifier)
        hv = self.classifier.class_log_prob_hvp(x, t, _labels_for(self.y, x), v)[1]
        return check_classifier_answer(hv, v.shape, "class_log_prob_hvp")  # (B, K, D)

    def eps_jvp(self, x: object, t: float | np.ndarray, v: object) -> tuple[np.ndarray, np.ndarray]:
        r"""The guided eps (B, D) and its Jacobian times v (B, K, D): :math:`J v - s\sigma\,\nabla_x^2\log p_\phi\,v`."""
        x = as_batch(x, "x", dim=self.dim)
        vk = as_tangents(v, x)  # (B, K, D)
        hv = self._classifier_hvp(x, t, vk)
        eps, jvp = call_eps_jvp(self.denoiser, x, t, vk)
        grad = self._grad(x, t)
        sigma = self._sigma(x, t)  # (B,)
        jvp = jvp - self.scale * sigma[:, None, None] * hv
        return eps - self.scale * sigma[:, None] * grad, (jvp[:, 0] if np.ndim(v) == 2 else jvp)

    def eps_vjp(self, x: object, t: float | np.ndarray, u: object) -> tuple[np.ndarray, np.ndarray]:
        r"""The guided eps (B, D) and :math:`u^\top J - s\sigma\,\nabla_x^2\log p_\phi\,u` (the Hessian is symmetric)."""
        x = as_batch(x, "x", dim=self.dim)
        u = as_tangents(u, x, "u", one=True)  # (B, 1, D)
        hu = self._classifier_hvp(x, t, u)[:, 0]
        eps, vjp = call_eps_vjp(self.denoiser, x, t, u[:, 0])
        grad = self._grad(x, t)
        sigma = self._sigma(x, t)
        return eps - self.scale * sigma[:, None] * grad, vjp - self.scale * sigma[:, None] * hu

    def __repr__(self) -> str:
        return f"ClassifierGuided({self.denoiser!r}, {self.classifier!r}, y={self.y.tolist()}, scale={self.scale:g})"


def guided(denoiser: object, y: object, w: float, vocabulary: Vocabulary = DIGIT_VOCABULARY) -> ClassifierFree:
    r"""Classifier-free guidance of a conditional denoiser (Ho & Salimans 2022, Eq. 6).

    A label model (``num_classes`` > 0) is steered towards a class; a prompt model (``vocab_size`` > 0, such as
    :class:`npdiff.nn.prompt_mlp.PromptMLP`) towards a prompt, its unconditional model being the empty prompt
    (GLIDE, Nichol et al. 2022, Sec. 3.2): :math:`(1 + w)\,\epsilon(x, t, \text{prompt}) - w\,\epsilon(x, t, \text{""})`.

    Parameters
    ----------
    denoiser : a conditional denoiser (``eps(x, t, y)``, ``y=None`` its unconditional model).
    y : for a label model, the label: one int for every point, or (B,) ints (then the guided denoiser
        serves batches of exactly B points, e.g. a sampler's n). For a prompt model, the prompt: a string
        (``"bold seven slanted right"``) or token ids (L,) for every point, or B strings or ids (B, L), one per point.
    w : guidance weight >= 0; 0 is the conditional model itself.
    vocabulary : the words of string prompts (:data:`npdiff.data.prompts.DIGIT_VOCABULARY`); unused for labels and ids.

    Returns
    -------
    :class:`ClassifierFree`, a denoiser of the plain protocol: ``eps(x, t)``,
    ``eps_and_divergence(x, t)``, ``schedule``.

    Raises
    ------
    ValueError (or TypeError) naming ``y``: a prompt given to a label model, a label to a prompt model, a word
    outside the vocabulary (with the nearest word), a prompt longer than the model reads.
    """
    C = check_conditional(denoiser)
    w = real_scalar(w, "w", lo=0.0)
    if C == 0:
        return ClassifierFree(denoiser, as_guidance_prompt(y, denoiser, vocabulary), w)
    return ClassifierFree(denoiser, as_guidance_label(y, C, type(denoiser).__name__), w)


def classifier_guided(denoiser: object, classifier: object, y: object, scale: float) -> ClassifierGuided:
    r"""Classifier guidance (Dhariwal & Nichol 2021, Algorithm 2 and Eq. 14 in eps form).

    Parameters
    ----------
    denoiser : a denoiser (its unconditional prediction is guided).
    classifier : a classifier of noisy inputs with ``num_classes``, ``class_log_prob_grad(x, t, y)``
        and the denoiser's schedule (a labelled oracle, or :class:`npdiff.nn.classifier.NoisyClassifier`).
    y : int or (B,) array of ints
        The label.
    scale : float
        s >= 0.

    Returns
    -------
    :class:`ClassifierGuided`, a denoiser of the plain protocol.
    """
    C = check_classifier(denoiser, classifier)
    return ClassifierGuided(denoiser, classifier, as_guidance_label(y, C), real_scalar(scale, "scale", lo=0.0))
