r"""The optional protocol methods eps_jvp and eps_vjp against float64 central differences.

For every denoiser that has them: the oracles (closed-form Hessians), the MLP (forward and backward
mode through the parameterization map), guided denoisers (linear combinations). The reference is
the Jacobian :math:`J_{ij} = (\epsilon_i(x + h e_j) - \epsilon_i(x - h e_j)) / 2h` of ``eps`` itself.
"""

from __future__ import annotations

import numpy as np
import pytest

from npdiff.analytic import BoxMixture, EmpiricalData, GaussianData, GaussianMixture, RingMixture
from npdiff.data import toy2d
from npdiff.denoiser import call_eps_jvp, call_eps_vjp, has_eps_jvp, has_eps_vjp
from npdiff.guidance import classifier_guided, guided
from npdiff.nn.config import MLPConfig
from npdiff.nn.model import DiffusionMLP
from npdiff.schedule import cosine, vp_linear


def _fd_jacobian(eps, x, h):
    # (B, D, D): J[b, i, j] = d eps_i / d x_j by central differences of eps itself
    B, D = x.shape
    J = np.empty((B, D, D))
    for j in range(D):
        step = np.zeros(D)
        step[j] = h
        J[:, :, j] = (eps(x + step) - eps(x - step)) / (2.0 * h)
    return J


def _check(denoiser, x, t, *, rtol, h=1e-5, y=None, eps=None, seed=0):
    rng = np.random.default_rng(seed)
    B, D = x.shape
    eps = eps or (lambda z: denoiser.eps(z, t) if y is None else denoiser.eps(z, t, y))
    J = _fd_jacobian(eps, x, h)
    v = rng.standard_normal((B, 3, D))
    u = rng.standard_normal((B, D))
    e_jvp, jvp = call_eps_jvp(denoiser, x, t, v, y)
    e_vjp, vjp = call_eps_vjp(denoiser, x, t, u, y)
    scale = np.abs(J).max()
    np.testing.assert_allclose(jvp, np.einsum("bij,bkj->bki", J, v), rtol=0, atol=rtol * scale * 4, err_msg="J v")
    np.testing.assert_allclose(vjp, np.einsum("bij,bi->bj", J, u), rtol=0, atol=rtol * scale * 4, err_msg="u^T J")
    np.testing.assert_allclose(e_jvp, eps(x), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(e_vjp, eps(x), rtol=1e-12, atol=1e-12)
    # one tangent (B, D) reads as K = 1 and keeps its shape
    _, one = call_eps_jvp(denoiser, x, t, v[:, 0], y)
    np.testing.assert_allclose(one, jvp[:, 0], rtol=1e-12, atol=1e-14)
    return J


_RNG = np.random.default_rng(3)
ORACLES = {
    "gaussian": GaussianData(np.array([1.0, -0.5, 0.3]), np.array([[1, 0.3, 0], [0.3, 0.5, 0.1], [0, 0.1, 0.2]])),
    "mixture_full": GaussianMixture([0.3, 0.7], _RNG.normal(size=(2, 3)),
                                    np.stack([np.eye(3) * 0.2 + 0.05, np.diag([0.1, 0.4, 0.2])]), cosine()),
    "mixture_iso": GaussianMixture([0.3, 0.7], _RNG.normal(size=(2, 3)), 0.1),
    "empirical": EmpiricalData(_RNG.normal(size=(20, 3))),
    "boxes_blurred": BoxMixture([0.5, 0.5], [[0, 0], [1, -1]], [[1, 1], [2, 0.5]], noise_std=0.05),
    "boxes": BoxMixture([0.5, 0.5], [[0, 0], [1, -1]], [[1, 1], [2, 0.5]]),
    "rings": RingMixture([0.2, 0.5, 0.3], [0.0, 1.0, 2.0], 0.1),
    "8gaussians": toy2d.load("8gaussians").oracle(),
    "checkerboard": toy2d.load("checkerboard").oracle(),
}


@pytest.mark.parametrize("name", sorted(ORACLES))
@pytest.mark.parametrize("t", [0.05, 0.4, 0.95])
def test_oracle_jacobian_of_eps_matches_central_differences(name, t):
    # d eps / dx = -sigma Hess log q_t, in closed form, against central differences of eps
    oracle = ORACLES[name]
    x = np.random.default_rng(1).normal(size=(6, oracle.dim)) * 1.5
    x[0] = 0.0  # the origin: r = 0 of the rings, where their Hessian's x x^T term is a limit
    J = _check(oracle, x, t, rtol=1e-6)
    # the trace is the divergence the oracle already computes
    np.testing.assert_allclose(np.einsum("bii->b", J), oracle.eps_and_divergence(x, t)[1], rtol=1e-5, atol=1e-6)
    _, J_exact = oracle.eps_jvp(x, t, np.broadcast_to(np.eye(oracle.dim), (6, oracle.dim, oracle.dim)))
    np.testing.assert_allclose(np.einsum("bki->bik", J_exact), J_exact, atol=1e-10, err_msg="symmetric Hessian")
    np.testing.assert_allclose(np.einsum("bkk->b", J_exact), oracle.eps_and_divergence(x, t)[1], rtol=1e-10, atol=1e-10)


def test_rings_hessian_near_the_origin_uses_its_limit():
    # a(z) = (z - 2A - z A^2) / z^3 -> -1/8: the series below z = 1e-3 and the formula above agree there
    rings = ORACLES["rings"]
    for r in (0.9e-4, 1.1e-4, 1e-2):
        x = np.array([[r, 0.0]])
        J = _fd_jacobian(lambda z: rings.eps(z, 0.3), x, 1e-6)
        np.testing.assert_allclose(rings.eps_jvp(x, 0.3, np.eye(2)[None])[1][0].T, J[0], rtol=1e-6, atol=1e-8)


def test_labelled_oracle_jvp_per_label():
    oracle = ORACLES["8gaussians"]
    x = np.random.default_rng(2).normal(size=(8, 2)) * 2
    y = np.arange(8)
    _check(oracle, x, 0.2, rtol=1e-6, y=y)


@pytest.mark.parametrize("coords", ["raw", "sinusoidal", "raw+sinusoidal"])
@pytest.mark.parametrize("param", ["eps", "x0", "v"])
def test_mlp_jvp_and_vjp_match_central_differences(coords, param):
    cfg = MLPConfig(dim=3, width=16, depth=2, emb_dim=8, coords=coords, parameterization=param, coord_scale=3.0)
    model = DiffusionMLP(cfg, vp_linear(), rng=np.random.default_rng(5))
    x = np.random.default_rng(6).normal(size=(5, 3))
    _check(model, x, np.linspace(0.1, 0.9, 5), rtol=1e-7, h=1e-6)


def test_conditional_mlp_jvp_with_labels_and_float32_model():
    cfg = MLPConfig(dim=2, width=12, depth=1, emb_dim=6, num_classes=3)
    model = DiffusionMLP(cfg, vp_linear(), rng=np.random.default_rng(7))
    x = np.random.default_rng(8).normal(size=(4, 2))
    y = np.array([0, 1, 2, 1])
    _check(model, x, 0.3, rtol=1e-7, h=1e-6, y=y)
    # a float32 model's tangents are the float64 network's: its eps differs only by float32 rounding
    m32 = model.with_dtype(np.float32)
    e32, j32 = m32.eps_jvp(x, 0.3, np.eye(2)[None].repeat(4, 0), y)
    _, j64 = model.eps_jvp(x, 0.3, np.eye(2)[None].repeat(4, 0), y)
    np.testing.assert_array_equal(j32, j64)
    np.testing.assert_allclose(e32, m32.eps(x, 0.3, y), atol=1e-5)


def test_mlp_jvp_in_blocks_equals_one_pass():
    # eps_jvp splits many tangents into blocks of points; the blocks must not change the answer
    cfg = MLPConfig(dim=4, width=8, depth=1, emb_dim=4, coords="raw")
    model = DiffusionMLP(cfg, vp_linear(), rng=np.random.default_rng(9))
    rng = np.random.default_rng(10)
    x, v = rng.normal(size=(300, 4)), rng.normal(size=(300, 40, 4))
    _, jvp = model.eps_jvp(x, 0.5, v)
    _, ref = model.eps_jvp(x[:7], 0.5, v[:7])
    np.testing.assert_allclose(jvp[:7], ref, rtol=1e-13, atol=1e-15)


def test_guided_denoisers_combine_their_parts_jacobians():
    oracle = ORACLES["8gaussians"]
    x = np.random.default_rng(11).normal(size=(5, 2)) * 2
    for g in (guided(oracle, 3, 2.0), guided(oracle, 3, 0.0), classifier_guided(oracle, oracle, 3, 1.5)):
        assert has_eps_jvp(g) and has_eps_vjp(g)
        _check(g, x, 0.3, rtol=1e-6)


def test_denoisers_without_the_methods_are_refused_clearly():
    class Plain:
        schedule = vp_linear()

        def eps(self, x, t):
            return x

        def eps_and_divergence(self, x, t):
            return x, np.full(x.shape[0], float(x.shape[1]))

    class NoHessian:  # a classifier with a gradient and no Hessian
        num_classes = 8
        schedule = vp_linear()

        def class_log_prob_grad(self, x, t, y):
            return np.zeros_like(x)

    x = np.zeros((2, 2))
    assert not has_eps_jvp(Plain()) and not has_eps_vjp(Plain())
    with pytest.raises(TypeError, match="eps_jvp"):
        call_eps_jvp(Plain(), x, 0.5, x)
    with pytest.raises(TypeError, match="eps_vjp"):
        call_eps_vjp(Plain(), x, 0.5, x)
    g = classifier_guided(ORACLES["8gaussians"], NoHessian(), 1, 1.0)
    assert not has_eps_jvp(g)
    with pytest.raises(TypeError, match="class_log_prob_hvp"):
        g.eps_jvp(x, 0.5, x)
    assert not has_eps_jvp(guided(NoHessianDenoiser(), 0, 1.0))


class NoHessianDenoiser:
    num_classes = 2
    schedule = vp_linear()
    dim = 2

    def eps(self, x, t, y=None):
        return x

    def eps_and_divergence(self, x, t, y=None):
        return x, np.full(x.shape[0], 2.0)


@pytest.mark.parametrize("bad, match", [(np.zeros((3, 2)), "shape"), (np.zeros((2, 1, 3)), "shape"),
                                        (np.full((2, 2), np.nan), "finite")])
def test_bad_tangents_are_refused(bad, match):
    oracle = ORACLES["8gaussians"]
    with pytest.raises(ValueError, match=match):
        oracle.eps_jvp(np.zeros((2, 2)), 0.5, bad)
