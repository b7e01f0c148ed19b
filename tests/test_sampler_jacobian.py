r"""Exact sampler Jacobians by tangents, and the rule that calls a KL not estimable.

The tangents run every fixed-grid solver of ``fast_sample`` on stacked tangent rows
(:class:`npdiff.likelihood.TangentDenoiser`); the reference is float64 central differences of the
same map. The KL of a sampler that folds, or whose E[q/p_F] is not 1, is refused, never a number.
"""

from __future__ import annotations

import numpy as np
import pytest

from npdiff import likelihood as lk
from npdiff.analytic import GaussianData
from npdiff.data import toy2d
from npdiff.gaussian import log_normal_diag
from npdiff.nn.config import MLPConfig
from npdiff.nn.model import DiffusionMLP
from npdiff.sample import FAST_SAMPLERS, ode_sample
from npdiff.sample.fast import MIN_NFE
from npdiff.schedule import vp_linear

T_MIN = 1e-3


def _central(F, z, h):
    # (N, D, D) J[n, i, j] = (F(z + h e_j) - F(z - h e_j))_i / 2h, each column its own run, Richardson-extrapolated
    # from h and h/2 (error O(h^4): the few-step maps bend enough for the O(h^2) error to reach 1e-5 at h = 1e-5)
    D = z.shape[1]

    def diff(k):
        return np.stack([(F(z + k * np.eye(D)[j]) - F(z - k * np.eye(D)[j])) / (2 * k) for j in range(D)], axis=2)

    return (4.0 * diff(h / 2) - diff(h)) / 3.0


@pytest.mark.parametrize("name", FAST_SAMPLERS)
@pytest.mark.parametrize("set_name", ["8gaussians", "checkerboard", "rings"])
def test_tangent_jacobian_of_every_fast_sampler_matches_central_differences(name, set_name):
    oracle = toy2d.load(set_name).oracle()
    z = np.random.default_rng(0).standard_normal((12, 2))
    for nfe, denoise in ((max(5, MIN_NFE[name]), False), (10, True)):
        F = lk.FastSampler(oracle, name, nfe, denoise=denoise, t_min=T_MIN)
        x, J = F.jacobian(z)
        np.testing.assert_allclose(x, F(z), rtol=1e-9, atol=1e-10)  # the point rows: the sampler's own samples
        ref = _central(F, z, 1e-5)
        np.testing.assert_allclose(J, ref, rtol=0, atol=2e-6 * np.abs(ref).max(), err_msg=f"{name} nfe={nfe}")


def test_on_gaussian_data_the_map_is_affine_and_the_tangents_give_its_matrix():
    # with the exact denoiser of Gaussian data every solver is affine: F(z) = F(0) + A z, A = [F(e_j) - F(0)]
    data = GaussianData(np.array([1.0, -0.5]), np.array([[0.29, 0.06], [0.06, 0.09]]))
    F = lk.FastSampler(data, "dpmpp3m", 7, denoise=False)
    f0 = F(np.zeros((1, 2)))[0]
    A = np.stack([F(np.eye(2)[j][None])[0] - f0 for j in range(2)], axis=1)
    z = np.random.default_rng(1).standard_normal((5, 2))
    _, J = F.jacobian(z)
    np.testing.assert_allclose(J, np.broadcast_to(A, (5, 2, 2)), rtol=1e-10, atol=1e-12)


def test_jvp_of_k_tangents_is_the_jacobian_applied_to_them():
    oracle = toy2d.load("8gaussians").oracle()
    F = lk.FastSampler(oracle, "unipc", 8, denoise=False)
    rng = np.random.default_rng(2)
    z, v = rng.standard_normal((6, 2)), rng.standard_normal((6, 3, 2))
    _, J = F.jacobian(z)
    _, jv = F.jvp(z, v)
    np.testing.assert_allclose(jv, np.einsum("nij,nkj->nki", J, v), rtol=1e-12, atol=1e-13)
    _, one = F.jvp(z, v[:, 0])
    np.testing.assert_allclose(one, jv[:, 0], rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_mlp_sampler_tangents_are_the_float64_networks_exact_jacobian(dtype):
    # a float32 model's map is differentiated as its float64 network: compare with that network's central differences
    cfg = MLPConfig(dim=3, width=16, depth=2, emb_dim=8, coords="raw+sinusoidal", coord_scale=2.0)
    model = DiffusionMLP(cfg, vp_linear(), rng=np.random.default_rng(3), dtype=dtype)
    z = np.random.default_rng(4).standard_normal((5, 3))
    _, J = lk.FastSampler(model, "dpmpp2m", 6, denoise=True).jacobian(z)
    ref = _central(lk.FastSampler(model.with_dtype(np.float64), "dpmpp2m", 6, denoise=True), z, 1e-6)
    np.testing.assert_allclose(J, ref, rtol=0, atol=1e-7 * np.abs(ref).max())


def test_kl_by_tangents_agrees_with_central_differences_and_says_which():
    oracle = toy2d.load("8gaussians").oracle()
    z = np.random.default_rng(5).standard_normal((300, 2))
    F = lk.FastSampler(oracle, "dpmpp2m", 10, denoise=False, t_min=T_MIN)
    exact = lk.sampler_kl(F, z, lambda x: oracle.log_prob(x, T_MIN))
    central = lk.sampler_kl(F, z, lambda x: oracle.log_prob(x, T_MIN), jacobian="central")
    assert exact.density.jacobian == "tangents" and central.density.jacobian.startswith("central")
    assert exact.estimable
    np.testing.assert_allclose(exact.terms, central.terms, atol=1e-7)
    # the RK45 flow is a plain map: central differences, and "tangents" refuses it
    flow = lambda zz: ode_sample(oracle, None, 0, x_T=zz, t_min=T_MIN, denoise=False).x  # noqa: E731
    assert lk.sampler_log_density(flow, z[:3]).jacobian.startswith("central")
    with pytest.raises(TypeError, match="FastSampler"):
        lk.sampler_log_density(flow, z[:3], jacobian="tangents")


def test_a_folding_map_is_not_estimable_and_refuses_to_give_a_number():
    # F(z) = (z_0, z_1^3 - z_1): dF_1/dz_1 = 3 z_1^2 - 1 <= 0 for |z_1| <= 1/sqrt(3), about 44% of N(0, 1)
    z = np.random.default_rng(6).standard_normal((400, 2))
    res = lk.sampler_kl(lambda zz: np.stack([zz[:, 0], zz[:, 1] ** 3 - zz[:, 1]], axis=1), z,
                        lambda x: log_normal_diag(x, 0.0, 0.0))
    share = np.mean(np.abs(z[:, 1]) <= 1 / np.sqrt(3))
    assert not res.estimable and res.folded_share == pytest.approx(share)
    assert str(res) == f"not estimable (folded {100 * share:.3g}%)"
    for attr in ("kl", "se", "kl_cv", "se_cv"):
        with pytest.raises(lk.KLNotEstimableError, match="folded"):
            getattr(res, attr)
    with pytest.raises(lk.KLNotEstimableError):
        float(res)


def test_a_sampler_that_folds_is_not_estimable():
    # EDM at 10 evaluations folds the 8gaussians oracle's flow (the table's "f" rows)
    oracle = toy2d.load("8gaussians").oracle()
    z = np.random.default_rng(7).standard_normal((400, 2))
    res = lk.sampler_kl(lk.FastSampler(oracle, "edm", 10, denoise=False, t_min=T_MIN), z,
                        lambda x: oracle.log_prob(x, T_MIN))
    assert res.density.folded > 0 and not res.estimable and str(res).startswith("not estimable (folded")


def test_a_failed_self_normalization_is_not_estimable():
    # F = identity onto a q that is not normalized (log q + 0.3): E[q/p_F] = e^0.3 x E[N(0, 1.2^2)/N(0, 1)] != 1
    z = np.random.default_rng(8).standard_normal((2000, 2))
    res = lk.sampler_kl(lambda zz: zz.copy(), z, lambda x: log_normal_diag(x, 0.0, 2 * np.log(1.2)) + 0.3)
    assert not res.estimable and "self-normalization" in res.reason and res.density.folded == 0
    assert str(res).startswith("not estimable (E[q/p_F] - 1 at")
    with pytest.raises(lk.KLNotEstimableError, match="self-normalization"):
        res.kl  # noqa: B018
    # the same map onto the normalized q is estimable, and its KL is the closed form
    ok = lk.sampler_kl(lambda zz: zz.copy(), z, lambda x: log_normal_diag(x, 0.0, 2 * np.log(1.2)))
    exact = 2 * (0.5 * (1 / 1.44 - 1 + np.log(1.44)))  # KL(N(0, I) || N(0, 1.44 I)) in 2-D
    assert ok.estimable and abs(ok.kl - exact) < 4 * ok.se and "+-" in str(ok)


def test_tangent_denoiser_refuses_what_it_cannot_carry():
    oracle = toy2d.load("8gaussians").oracle()
    wrapped = lk.TangentDenoiser(oracle, 2)
    with pytest.raises(ValueError, match="multiple of 3"):
        wrapped.eps(np.zeros((4, 2)), 0.5)
    with pytest.raises(ValueError, match="one time"):
        wrapped.eps(np.zeros((3, 2)), np.array([0.1, 0.2, 0.3]))
    with pytest.raises(TypeError, match="divergence"):
        wrapped.eps_and_divergence(np.zeros((3, 2)), 0.5)

    class NoJvp:
        schedule = vp_linear()
        dim = 2

        def eps(self, x, t):
            return x

        def eps_and_divergence(self, x, t):
            return x, np.full(x.shape[0], 2.0)

    with pytest.raises(TypeError, match="eps_jvp"):
        lk.FastSampler(NoJvp(), "ddim", 3).jacobian(np.zeros((2, 2)))
    with pytest.raises(TypeError, match="x_T"):
        lk.FastSampler(oracle, "ddim", 3, x_T=np.zeros((2, 2)))


def test_solver_map_differentiates_a_solver_written_by_the_caller():
    # the reference-code 3M weight, not a fast_sample sampler: tangents through dpmpp_multistep itself
    from npdiff.sample import dpmpp_multistep, time_grid

    oracle = toy2d.load("8gaussians").oracle()
    times = time_grid(oracle.schedule, 8, "log_snr", T_MIN)
    F = lk.SolverMap(oracle, lambda d, z: dpmpp_multistep(d, z, times, order=3, reference_3m=True).x)
    z = np.random.default_rng(9).standard_normal((6, 2))
    _, J = F.jacobian(z)
    ref = _central(F, z, 1e-5)
    np.testing.assert_allclose(J, ref, rtol=0, atol=2e-6 * np.abs(ref).max())
    assert lk.sampler_log_density(F, z).jacobian == "tangents"
