"""Inpainting by a mask-conditioned model (GLIDE): the training masks, and the sampler on an exact conditional oracle.

The oracle answers eps(x_t, t | y * m, m) of a correlated Gaussian exactly: with x1 = a known, x ~ N(mu_c, Sigma_c),
mu_c = (a, rho a), Sigma_c = diag(0, 1 - rho^2); with nothing known, the Gaussian itself. The sampler must then draw
x2 with the conditional's mean and variance.
"""

import numpy as np
import pytest

from npdiff.analytic import GaussianData
from npdiff.data.masked import MaskedPairs, mask_context
from npdiff.edit import inpaint_model_sample
from npdiff.schedule import vp_linear

VP, RHO = vp_linear(), 0.8


class GaussianInpainter:
    """x ~ N(0, [[1, rho], [rho, 1]]); eps = sigma (ab S + sigma^2 I)^-1 (x - sqrt(ab) mu) with the row's (mu, S)."""

    dim, context_dim, schedule = 2, 4, VP

    def _moments(self, c):
        known1 = c[:, 2] == 1.0  # (B,) rows with x1 known; the others are unconditional
        a = c[:, 0]
        mu = np.where(known1[:, None], np.stack([a, RHO * a], axis=1), 0.0)  # (B, 2)
        S = np.where(known1[:, None, None], np.array([[0.0, 0.0], [0.0, 1 - RHO**2]]), np.array([[1.0, RHO], [RHO, 1.0]]))
        return mu, S

    def eps(self, x, t, y):
        t = np.broadcast_to(np.asarray(t, dtype=float), (x.shape[0],))
        ab = np.exp(VP.log_alpha_bar(t))[:, None, None]
        sigma2 = 1.0 - ab
        mu, S = self._moments(y)
        A = ab * S + sigma2 * np.eye(2)  # (B, 2, 2)
        return np.sqrt(sigma2[:, :, 0]) * np.linalg.solve(A, (x - np.sqrt(ab[:, :, 0]) * mu)[:, :, None])[:, :, 0]

    def eps_and_divergence(self, x, t, y):
        raise NotImplementedError  # the sampler never asks for it


def test_training_masks_know_0_to_d_minus_1_coordinates_uniformly():
    rng = np.random.default_rng(0)
    pairs = MaskedPairs(lambda n, r: r.standard_normal((n, 3)), 3)
    x, c = pairs.sample(30000, rng)
    m = c[:, 3:]
    np.testing.assert_array_equal(c[:, :3], x * m)
    k = m.sum(axis=1)
    np.testing.assert_allclose(np.bincount(k.astype(int), minlength=3) / k.size, [1 / 3] * 3, atol=0.01)
    np.testing.assert_allclose(m.mean(axis=0), [1 / 3] * 3, atol=0.01)  # E[k] / D = 1/3, whichever coordinate


def test_mask_context_checks_its_mask():
    np.testing.assert_array_equal(mask_context([[2.0, 3.0]], [[True, False]]), [[2.0, 0.0, 1.0, 0.0]])
    with pytest.raises(ValueError, match="mask"):
        mask_context([[2.0, 3.0]], [[0.5, 0.0]])
    with pytest.raises(ValueError, match="mask"):
        mask_context([[2.0, 3.0]], [[1.0, 0.0, 1.0]])


@pytest.mark.parametrize("a", [0.0, 1.5])
def test_the_sampler_draws_the_exact_conditional(a):
    n = 4000
    res = inpaint_model_sample(GaussianInpainter(), [a, 0.0], [True, False], n, np.random.default_rng(1), steps=100)
    assert res.nfe == 100 and np.all(res.x[:, 0] == a)
    x2 = res.x[:, 1]
    var = 1 - RHO**2
    assert abs(x2.mean() - RHO * a) < 5 * np.sqrt(var / n), f"mean {x2.mean()}, exact {RHO * a}"
    assert abs(x2.var() / var - 1) < 0.1, f"variance {x2.var()}, exact {var}"


def test_a_model_without_the_mask_context_is_refused():
    with pytest.raises(TypeError, match="mask-conditioned"):
        inpaint_model_sample(GaussianData(np.zeros(2), 1.0, VP), [0.0, 0.0], [True, False], 2, 0)
    with pytest.raises(ValueError, match="mask"):
        inpaint_model_sample(GaussianInpainter(), [0.0, 0.0], [True, True], 2, 0)
