"""Latent diffusion: the bound's prior term against a closed-form latent density, its terms, sampling, the doors."""

from __future__ import annotations

import numpy as np
import pytest

from npdiff.analytic import GaussianData
from npdiff.gaussian import log_normal_diag
from npdiff.latent import LatentDiffusion
from npdiff.likelihood import ode_log_likelihood
from npdiff.nn import MLPConfig
from npdiff.nn.autoencoder import Autoencoder, AutoencoderConfig
from npdiff.nn.model import DiffusionMLP
from npdiff.schedule import vp_linear

K, D, d = 5, 6, 3
AE = Autoencoder(AutoencoderConfig(dim=D, K=K, latent_dim=d, width=8, depth=1, scale_factor=1.7), rng=0)
# a Gaussian "diffusion model" of the scaled latent, whose density is known in closed form at every t
ORACLE = GaussianData(np.array([0.2, -0.1, 0.4]), np.array([0.8, 1.3, 0.6]), vp_linear())


def _images(n: int, seed: int = 0) -> np.ndarray:
    return 2.0 * np.random.default_rng(seed).integers(0, K, (n, D)) / (K - 1) - 1.0


def test_prior_term_is_the_closed_form_log_density_with_the_scale_jacobian():
    ld, x = LatentDiffusion(AE, ORACLE), _images(4)
    t_min = 1e-5
    bound = ld.bound_bits_per_dim(x, np.random.default_rng(1), t_min=t_min, rtol=1e-8, atol=1e-8)
    # the same draws of z ~ q(z | x)
    mu, log_var = AE.encode(x)
    z = mu + np.exp(0.5 * log_var) * np.random.default_rng(1).standard_normal(mu.shape)
    s = AE.config.scale_factor
    # the ODE's N(0, I) at t_max is not the oracle's q_{t_max} (alpha_bar(1) > 0 moves its mean by
    # sqrt(alpha_bar) m): take that known difference out, and the rest is exact
    x_end = ode_log_likelihood(ORACLE, s * z, t_min=t_min, rtol=1e-8, atol=1e-8).x_end
    prior_gap = log_normal_diag(x_end, 0.0, 0.0) - ORACLE.log_prob(x_end, ORACLE.schedule.t_max)
    exact = ORACLE.log_prob(s * z, t_min) + prior_gap + d * np.log(s)  # log p_u(s z) + d log s
    np.testing.assert_allclose(bound.log_prior, exact, rtol=0, atol=1e-6)
    # and the density of z itself, N(m / s, C / s^2), in closed form, within that gap
    direct = -0.5 * np.sum((z - ORACLE.mean / s) ** 2 / (np.diag(ORACLE.cov) / s**2)
                           + np.log(2 * np.pi * np.diag(ORACLE.cov) / s**2), axis=1)
    np.testing.assert_allclose(bound.log_prior, direct, atol=1e-2)
    assert np.abs(prior_gap).max() < 1e-2
    # the other terms, and their sum in bits per pixel
    np.testing.assert_allclose(bound.reconstruction, -AE.log_prob(x, z), rtol=1e-12)
    log_q = -0.5 * np.sum((z - mu) ** 2 / np.exp(log_var) + log_var + np.log(2 * np.pi), axis=1)
    np.testing.assert_allclose(bound.log_q, log_q, rtol=1e-12)
    np.testing.assert_allclose(bound.total, bound.reconstruction + bound.log_q - bound.log_prior, rtol=1e-12)
    np.testing.assert_allclose(bound.bpd, bound.total / (D * np.log(2.0)), rtol=1e-12)
    np.testing.assert_allclose(bound.kl_bpd + bound.reconstruction_bpd, bound.bpd, rtol=1e-12)
    assert bound.nfe > 0 and bound.draws == 1


def test_draws_average_the_terms():
    ld, x = LatentDiffusion(AE, ORACLE), _images(3)
    two = ld.bound_bits_per_dim(x, np.random.default_rng(2), draws=2, rtol=1e-7, atol=1e-7)
    g = np.random.default_rng(2)
    ones = [ld.bound_bits_per_dim(x, g, rtol=1e-7, atol=1e-7) for _ in range(2)]  # the same stream, one draw each
    np.testing.assert_allclose(two.total, (ones[0].total + ones[1].total) / 2, rtol=1e-9)


def test_encode_decode_and_sample():
    ld, x = LatentDiffusion(AE, ORACLE), _images(5)
    mu, _ = AE.encode(x)
    s = AE.config.scale_factor
    np.testing.assert_allclose(ld.encode(x), s * mu, rtol=1e-12)  # no rng: the scaled mean
    u = ld.encode(x, np.random.default_rng(3))
    np.testing.assert_array_equal(ld.decode(u), AE.decode(u / s))
    for sampler, steps in (("ddpm", 4), ("ddim", 4), ("dpmpp2m", 4)):
        res = ld.sample(6, np.random.default_rng(4), sampler=sampler, steps=steps)
        assert res.x.shape == (6, D) and res.nfe > 0
        AE.levels(res.x)  # on the levels
    a = ld.sample(3, np.random.default_rng(5), steps=3, decode="sample")
    b = ld.sample(3, np.random.default_rng(5), steps=3, decode="sample")
    np.testing.assert_array_equal(a.x, b.x)


def test_doors():
    with pytest.raises(TypeError, match="autoencoder"):
        LatentDiffusion(object(), ORACLE)
    with pytest.raises(TypeError, match="denoiser"):
        LatentDiffusion(AE, object())
    wrong = DiffusionMLP(MLPConfig(dim=4, width=8, depth=1, emb_dim=8), vp_linear(), rng=0)
    with pytest.raises(ValueError, match="denoiser must model the 3-dimensional latent"):
        LatentDiffusion(AE, wrong)
    ld = LatentDiffusion(AE, ORACLE)
    with pytest.raises(ValueError, match="levels"):
        ld.bound_bits_per_dim(_images(2) + 0.05, 0)
    with pytest.raises(ValueError, match="x must have 6 columns"):
        ld.bound_bits_per_dim(_images(2)[:, :4], 0)
    with pytest.raises(ValueError, match="u must have 3 columns"):
        ld.decode(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="sampler"):
        ld.sample(2, 0, sampler="euler-maruyama")
    with pytest.raises(ValueError, match="draws"):
        ld.bound_bits_per_dim(_images(2), 0, draws=0)


def test_a_guided_prompt_model_on_the_latent():
    # Stable Diffusion's two ideas together: a prompt model on the scaled latent, steered by classifier-free
    # guidance; guided() of a PromptMLP with dim = d is a denoiser of the plain protocol that LatentDiffusion runs
    from npdiff.data.prompts import MAX_WORDS, tokenize
    from npdiff.guidance import guided
    from npdiff.nn.prompt_mlp import PromptMLP, PromptMLPConfig
    from npdiff.sample import ddim_sample

    ae = Autoencoder(AutoencoderConfig(latent_dim=4, width=8, depth=1, scale_factor=1.3), rng=0)  # 64 pixels, 17 levels
    cfg = PromptMLPConfig(dim=4, width=16, depth=1, emb_dim=8, text_width=8, query_tokens=2)
    rng = np.random.default_rng(2)
    # random weights everywhere (an initialization may zero the output layer): eps(y) and eps(None) then differ
    model = PromptMLP(cfg, vp_linear(), params=0.3 * rng.standard_normal(cfg.n_params))
    ids = tokenize(["bold seven slanted right"], length=MAX_WORDS)[0]  # (L,)
    w = 2.0
    g = guided(model, ids, w)
    u, t = rng.standard_normal((5, 4)), 0.4
    eps_y, eps_0 = model.eps(u, t, ids[None].repeat(5, 0)), model.eps(u, t, None)
    assert np.abs(eps_y - eps_0).max() > 1e-6  # the prompt matters, so the next check can fail
    np.testing.assert_allclose(g.eps(u, t), (1 + w) * eps_y - w * eps_0, rtol=1e-12, atol=1e-12)
    ld = LatentDiffusion(ae, g)
    res = ld.sample(3, np.random.default_rng(3), sampler="ddim", steps=4)
    assert res.x.shape == (3, 64) and res.nfe == 4
    _, v = ae.levels(res.x)  # on the 17 levels
    assert v.min() >= 0 and v.max() <= 16
    # the samples are the decoded latents of the guided sampler: the conditioning reaches the latent sampler
    lat = ddim_sample(g, 3, np.random.default_rng(3), steps=4, T=1000).x  # (3, 4)
    np.testing.assert_array_equal(res.x, ae.decode(lat / ae.config.scale_factor))
    # and another prompt moves the latents from the same noise
    other = ddim_sample(guided(model, "thin one upright", w), 3, np.random.default_rng(3), steps=4).x
    assert np.abs(other - lat).max() > 1e-6
    # a prompt model of the wrong size is refused at the door
    with pytest.raises(ValueError, match="denoiser must model the 4-dimensional latent"):
        LatentDiffusion(ae, guided(PromptMLP(PromptMLPConfig(dim=5, width=16, depth=1, emb_dim=8, text_width=8,
                                                             query_tokens=2), vp_linear(), rng=0), ids, w))
