r"""Latent diffusion: a KL autoencoder and a denoiser of the protocol on its scaled latent, with an honest bound.

Rombach et al. (2022) run the diffusion model on the latent of an autoencoder instead of on the
pixels: the denoiser then works in d dimensions instead of D, so each of its evaluations is cheaper,
and sampling decodes once at the end. :class:`LatentDiffusion` composes an
:class:`~npdiff.nn.autoencoder.Autoencoder` and any denoiser of :mod:`npdiff.denoiser` (an oracle or a
trained network) on the **scaled** latent :math:`u = s z` (s the autoencoder's ``scale_factor``).

**Likelihood** (Vahdat et al. 2021, LSGM, Eq. 2; Kingma & Welling 2014, Eq. 3): for any q(z | x),

.. math::
    -\log P(x) \le \mathbb E_{q(z\mid x)}\big[-\log p(x\mid z) + \log q(z\mid x) - \log p(z)\big],
    \qquad \log p(z) = \log p_u(s z) + d\log s,

with :math:`p(x\mid z)` the autoencoder's categorical decoder over the K levels (a probability, not a
density), :math:`q(z\mid x)` its Gaussian encoder, and :math:`p_u` the diffusion model's density of the
scaled latent by the exact probability-flow ODE (:func:`npdiff.likelihood.ode_log_likelihood`, Song
et al. 2021, Eq. 39); :math:`d\log s` is the log-Jacobian of :math:`z \mapsto s z`. The expectation is
estimated with ``draws`` samples of z per image (their mean: each is an unbiased estimate of the bound).

The result is a bound on the **discrete** probability of the image, a code length, in bits per pixel
:math:`/(D\ln 2)`. The pixel models' bits/dim (:mod:`npdiff.likelihood.images`) are for dequantized data
(the density of :math:`x + u`, u uniform in a bin), which is itself an upper bound on the same discrete
:math:`-\log_2 P(x)/D` (Theis et al. 2016, Sec. 3.1): the two figures bound one quantity and compare directly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._check import as_generator, check_tolerances, flow_time, one_of, positive_int
from .denoiser import check_denoiser
from .gaussian import log_normal_diag_unchecked
from .likelihood.ode import ode_log_likelihood
from .nn.autoencoder import Autoencoder
from .sample import FAST_SAMPLERS, SampleResult, ddim_sample, ddpm_sample, fast_sample

__all__ = ["LATENT_SAMPLERS", "LatentBound", "LatentDiffusion"]

#: the samplers :meth:`LatentDiffusion.sample` runs on the latent
LATENT_SAMPLERS = ("ddpm", "ddim", *(s for s in FAST_SAMPLERS if s != "ddim"))


@dataclass
class LatentBound:
    r"""The terms of the bound of :meth:`LatentDiffusion.bound_bits_per_dim`, per image, in nats (means over the draws).

    Attributes
    ----------
    reconstruction : (B,) :math:`-\log p(x\mid z)`, the decoder's code length.
    log_q : (B,) :math:`\log q(z\mid x)`, the encoder's log-density at its own sample (minus the entropy, on average).
    log_prior : (B,) :math:`\log p(z) = \log p_u(s z) + d\log s`, the diffusion's exact ODE log-density.
    total : (B,) ``reconstruction + log_q - log_prior``, the bound on :math:`-\log P(x)`.
    bpd : (B,) ``total / (D ln 2)``, bits per pixel.
    D : pixels per image. draws : samples of z per image. nfe : denoiser evaluations of the ODE solves.
    """

    reconstruction: np.ndarray
    log_q: np.ndarray
    log_prior: np.ndarray
    total: np.ndarray
    bpd: np.ndarray
    D: int
    draws: int
    nfe: int

    @property
    def kl_bpd(self) -> np.ndarray:
        r"""(B,) ``(log_q - log_prior) / (D ln 2)``: the latent's share of the bound, in bits per pixel."""
        return (self.log_q - self.log_prior) / (self.D * np.log(2.0))

    @property
    def reconstruction_bpd(self) -> np.ndarray:
        r"""(B,) ``reconstruction / (D ln 2)``."""
        return self.reconstruction / (self.D * np.log(2.0))


class LatentDiffusion:
    r"""An autoencoder and a denoiser on its scaled latent :math:`u = s z` (module docstring).

    Parameters
    ----------
    autoencoder : :class:`~npdiff.nn.autoencoder.Autoencoder` (its ``config.scale_factor`` is s).
    denoiser : any denoiser of the protocol whose data are the d-dimensional scaled latents; for prompts,
        a prompt model of dimension d steered by :func:`npdiff.guidance.guided` (``guided(model, prompt, w)``):
        the conditioning lives in the denoiser, so :meth:`sample` and :meth:`bound_bits_per_dim` take no y.
    """

    def __init__(self, autoencoder: Autoencoder, denoiser: object) -> None:
        if not isinstance(autoencoder, Autoencoder):
            raise TypeError(f"autoencoder must be an Autoencoder, got {type(autoencoder).__name__}")
        check_denoiser(denoiser)
        dim = getattr(denoiser, "dim", None)
        if dim is not None and dim != autoencoder.latent_dim:
            raise ValueError(f"denoiser must model the {autoencoder.latent_dim}-dimensional latent of the autoencoder, "
                             f"got a denoiser of dimension {dim}")
        self.autoencoder = autoencoder
        self.denoiser = denoiser
        self.scale_factor = float(autoencoder.config.scale_factor)

    @property
    def latent_dim(self) -> int:
        r"""d, the latent's size."""
        return self.autoencoder.latent_dim

    def encode(self, x: object, rng: np.random.Generator | int | None = None) -> np.ndarray:
        r"""Scaled latents :math:`s z` (B, d) of images x (B, D): z drawn from q(z | x) with ``rng``, or its mean without."""
        mu, log_var = self.autoencoder.encode(x)  # (B, d) each
        if rng is None:
            return self.scale_factor * mu
        z = mu + np.exp(0.5 * log_var) * as_generator(rng).standard_normal(mu.shape)  # (B, d)
        return self.scale_factor * z

    def decode(self, u: object, rng: np.random.Generator | int | None = None) -> np.ndarray:
        r"""Images (B, D) on the levels from scaled latents u (B, d).

        Unscaled, :math:`z = u / s`, then decoded: each pixel's most probable level, or a draw from its
        categorical with ``rng``.
        """
        u = self.autoencoder.check_latents(u, "u")
        return self.autoencoder.decode(u / self.scale_factor, rng)

    def sample(self, n: int, rng: np.random.Generator | int, *, sampler: str = "ddpm", steps: int = 1000,
               decode: str = "mode", progress: bool = False) -> SampleResult:
        r"""n images: latents by a sampler of :mod:`npdiff.sample` on the denoiser, then :meth:`decode`.

        Parameters
        ----------
        n : number of images. rng : the Generator (or int seed) for the sampler, then for the decoder's draws.
        sampler : ``"ddpm"`` (ancestral, fixed-large variance), ``"ddim"``, or a few-step solver of
            :func:`~npdiff.sample.fast_sample` (:data:`LATENT_SAMPLERS`).
        steps : the sampler's steps (for a few-step solver, its evaluations ``nfe``).
        decode : ``"mode"`` (each pixel's most probable level) or ``"sample"`` (a draw from the decoder).

        Returns
        -------
        :class:`~npdiff.sample.SampleResult` with ``x`` the (n, D) images and ``nfe`` the sampler's evaluations.
        """
        n, steps = positive_int(n, "n"), positive_int(steps, "steps")
        one_of(sampler, "sampler", LATENT_SAMPLERS)
        one_of(decode, "decode", ("mode", "sample"))
        rng = as_generator(rng)
        if sampler == "ddpm":
            res = ddpm_sample(self.denoiser, n, rng, steps=steps, T=max(steps, 1000), progress=progress)
        elif sampler == "ddim":
            res = ddim_sample(self.denoiser, n, rng, steps=steps, T=max(steps, 1000), progress=progress)
        else:
            res = fast_sample(self.denoiser, n, rng, sampler=sampler, nfe=steps, progress=progress)
        x = self.decode(res.x, rng if decode == "sample" else None)  # (n, D)
        return SampleResult(x=x, nfe=res.nfe)

    def bound_bits_per_dim(self, x: object, rng: np.random.Generator | int, *, draws: int = 1, t_min: float = 1e-5,
                           rtol: float = 1e-5, atol: float = 1e-5, batch_size: int | None = None,
                           progress: bool = False) -> LatentBound:
        r"""The bound on :math:`-\log P(x)` of the module docstring, per image, with its terms.

        Parameters
        ----------
        x : (B, D) images on the autoencoder's K levels.
        rng : the Generator (or int seed) for the draws of z ~ q(z | x).
        draws : samples of z per image (S); the terms are their means.
        t_min, rtol, atol, batch_size, progress : of :func:`~npdiff.likelihood.ode_log_likelihood` on the latents.

        Returns
        -------
        :class:`LatentBound`; ``bpd`` is the bound in bits per pixel (a discrete code length, module docstring).
        """
        ae = self.autoencoder
        x, _ = ae.levels(x)
        rng, draws = as_generator(rng), positive_int(draws, "draws")
        t_min = flow_time(check_denoiser(self.denoiser), t_min, "t_min", hi_open=True)
        rtol, atol = check_tolerances(rtol, atol)
        if batch_size is not None:
            positive_int(batch_size, "batch_size")
        B, d, s = x.shape[0], ae.latent_dim, self.scale_factor
        mu, log_var = ae.encode(x)  # (B, d)
        rec, log_q, log_prior, nfe = np.zeros(B), np.zeros(B), np.zeros(B), 0
        for _ in range(draws):
            z = mu + np.exp(0.5 * log_var) * rng.standard_normal((B, d))  # (B, d) z ~ q(z | x)
            rec -= ae.log_prob(x, z)
            log_q += log_normal_diag_unchecked(z, mu, log_var)
            ode = ode_log_likelihood(self.denoiser, s * z, t_min=t_min, rtol=rtol, atol=atol, batch_size=batch_size,
                                     progress=progress)
            log_prior += ode.log_p + d * np.log(s)  # the change of variables z -> s z
            nfe += ode.nfe
        rec, log_q, log_prior = rec / draws, log_q / draws, log_prior / draws
        total = rec + log_q - log_prior  # (B,) nats
        return LatentBound(reconstruction=rec, log_q=log_q, log_prior=log_prior, total=total,
                           bpd=total / (ae.config.dim * np.log(2.0)), D=ae.config.dim, draws=draws, nfe=nfe)

    def __repr__(self) -> str:
        return f"LatentDiffusion({self.autoencoder!r}, {type(self.denoiser).__name__}, scale_factor={self.scale_factor:.4g})"
