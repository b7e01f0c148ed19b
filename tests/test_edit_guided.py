"""DPS and reconstruction guidance: the gradient of the data fit through x0_hat against central differences."""

from __future__ import annotations

import numpy as np
import pytest

from npdiff.analytic import GaussianData
from npdiff.data import toy2d
from npdiff.edit import data_fit_gradient, dps_sample, reconstruction_guidance_sample, replacement_sample

ORACLES = {
    "gaussian": GaussianData(np.array([0.5, -0.3]), np.array([[1.0, 0.9], [0.9, 1.2]])),
    "8gaussians": toy2d.load("8gaussians").oracle(),
    "checkerboard": toy2d.load("checkerboard").oracle(),
    "rings": toy2d.load("rings").oracle(),
}


def data_fit(oracle, x, t, known, mask):
    """||m (y - x0_hat(x))||^2 per row, x0_hat from eps alone (Ho et al. 2020, Eq. 15), float64."""
    ab = float(oracle.schedule.alpha_bar(t))
    x0_hat = (x - np.sqrt(1 - ab) * oracle.eps(x, t)) / np.sqrt(ab)
    return np.sum(np.where(mask, known - x0_hat, 0.0) ** 2, axis=1)


@pytest.mark.parametrize("name", list(ORACLES))
@pytest.mark.parametrize("t", [0.05, 0.3, 0.8])
def test_data_fit_gradient_matches_central_differences(name, t):
    oracle = ORACLES[name]
    rng = np.random.default_rng(3)
    x = 2.0 * rng.standard_normal((6, 2))
    known, mask = np.array([1.2, 0.0]), np.array([True, False])
    _, _, grad = data_fit_gradient(oracle, x, t, known, mask)
    h = 1e-5
    fd = np.empty_like(x)
    for k in range(2):
        e = np.zeros(2)
        e[k] = h
        fd[:, k] = (data_fit(oracle, x + e, t, known, mask) - data_fit(oracle, x - e, t, known, mask)) / (2 * h)
    scale = np.max(np.abs(fd)) + 1.0
    np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-6 * scale, err_msg=f"{name} at t={t}")


def test_data_fit_gradient_is_zero_where_the_prediction_fits():
    oracle = ORACLES["gaussian"]
    x = np.array([[0.3, -0.7]])
    _, x0_hat, _ = data_fit_gradient(oracle, x, 0.4, [0.0, 0.0], [True, False])
    _, _, grad = data_fit_gradient(oracle, x, 0.4, x0_hat[0], [True, False])  # y = x0_hat: the fit is exact
    np.testing.assert_allclose(grad, 0.0, atol=1e-14)


def test_dps_pulls_the_known_coordinate_to_its_value_and_scale_zero_ignores_it():
    oracle = ORACLES["gaussian"]
    known, mask = np.array([1.5, 0.0]), np.array([True, False])
    guided = dps_sample(oracle, known, mask, 4000, np.random.default_rng(0), steps=100, scale=0.2)
    free = dps_sample(oracle, known, mask, 4000, np.random.default_rng(0), steps=100, scale=0.0)
    assert abs(guided.x[:, 0].mean() - 1.5) < 0.05
    assert abs(free.x[:, 0].mean() - 0.5) < 0.05  # the data's mean of x1: no guidance
    assert guided.nfe == 200
    # the conditional mean of x2 given x1 = 1.5 is -0.3 + 0.9 * 1.0 = 0.6: DPS lands close, replacement does not
    repl = replacement_sample(oracle, known, mask, 4000, np.random.default_rng(0), steps=100)
    assert abs(guided.x[:, 1].mean() - 0.6) < abs(repl.x[:, 1].mean() - 0.6)


def test_reconstruction_guidance_at_weight_zero_is_replacement_in_law():
    oracle = ORACLES["gaussian"]
    known, mask = np.array([1.5, 0.0]), np.array([True, False])
    a = reconstruction_guidance_sample(oracle, known, mask, 20000, np.random.default_rng(1), steps=50, weight=0.0)
    b = replacement_sample(oracle, known, mask, 20000, np.random.default_rng(2), steps=50)
    se = np.sqrt(2 * b.x[:, 1].var() / 20000)
    assert abs(a.x[:, 1].mean() - b.x[:, 1].mean()) < 4 * se
    np.testing.assert_array_equal(a.x[:, 0], 1.5)


def test_guidance_is_reproducible_from_a_seed():
    oracle = ORACLES["8gaussians"]
    args = (oracle, [0.0, 0.0], [1, 0], 16)
    a = dps_sample(*args, np.random.default_rng(4), steps=8, scale=0.3).x
    b = dps_sample(*args, 4, steps=8, scale=0.3).x
    np.testing.assert_array_equal(a, b)
    c = reconstruction_guidance_sample(*args, 4, steps=8, weight=2.0).x
    d = reconstruction_guidance_sample(*args, 4, steps=8, weight=2.0).x
    np.testing.assert_array_equal(c, d)


def test_data_fit_gradient_of_a_network_matches_central_differences():
    # the MLP's eps_vjp is its hand-written backward pass; in float64 it must agree with differences of eps
    from npdiff.nn import MLPConfig
    from npdiff.nn.model import DiffusionMLP
    from npdiff.schedule import vp_linear

    model = DiffusionMLP(MLPConfig(dim=3, width=16, depth=2, emb_dim=8), vp_linear(), rng=np.random.default_rng(5))
    x = np.random.default_rng(6).normal(size=(5, 3))
    known, mask = np.array([0.4, 0.0, -1.0]), np.array([True, False, True])
    t = 0.35
    _, _, grad = data_fit_gradient(model, x, t, known, mask)
    h = 1e-6
    fd = np.empty_like(x)
    for k in range(3):
        e = np.zeros(3)
        e[k] = h
        fd[:, k] = (data_fit(model, x + e, t, known, mask) - data_fit(model, x - e, t, known, mask)) / (2 * h)
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-8)
