"""Hand-written gradients and forward-mode Jacobians of the MLP against central differences (float64)."""

import numpy as np
import pytest

from npdiff import parameterization
from npdiff.denoiser import call_eps_and_divergence, check_denoiser
from npdiff.nn import MLP, MLPConfig
from npdiff.nn.model import DiffusionMLP
from npdiff.schedule import cosine, vp_linear
from npdiff.train import denoising_targets

SMALL = dict(dim=2, width=6, depth=2, emb_dim=6)


def _batch(rng, B=5, D=2, t_lo=0.05, t_hi=0.95):
    return rng.standard_normal((B, D)) * 1.5, rng.uniform(t_lo, t_hi, B)


def _fd_grad(f, p, h=1e-5):
    g = np.empty_like(p)
    for i in range(p.size):
        old = p[i]
        p[i] = old + h
        fp = f(p)
        p[i] = old - h
        fm = f(p)
        p[i] = old
        g[i] = (fp - fm) / (2 * h)
    return g


def _assert_rel(mine, ref, tol, what):
    # elementwise relative error, with a floor at 1e-3 of the largest entry so exact zeros do not divide
    scale = np.maximum(np.abs(ref), 1e-3 * np.abs(ref).max())
    err = np.abs(mine - ref) / scale
    i = int(err.argmax())
    assert err.max() < tol, f"{what}: relative error {err.max():.2e} at index {i} (mine {mine.flat[i]}, ref {ref.flat[i]})"


@pytest.mark.parametrize("activation", ["gelu", "silu"])
@pytest.mark.parametrize("param", ["eps", "x0", "v"])
def test_every_parameter_gradient_matches_central_differences(activation, param):
    # dL/dtheta_i = (L(theta + h e_i) - L(theta - h e_i)) / 2h for the training loss of this parameterization
    rng = np.random.default_rng(10)
    cfg = MLPConfig(activation=activation, parameterization=param, **SMALL)
    mlp = MLP(cfg)
    theta = mlp.init_params(rng, np.float64) * 3.0  # larger weights: activations leave their linear range
    x0, t = _batch(rng)
    eps = rng.standard_normal(x0.shape)
    xt, target, weight = denoising_targets(x0, t, eps, vp_linear(), param, "eps")
    grad = np.empty_like(theta)
    loss = mlp.loss_and_grad(theta, grad, xt, t, target, weight)
    scratch = np.empty_like(theta)
    fd = _fd_grad(lambda p: mlp.loss_and_grad(p, scratch, xt, t, target, weight), theta.copy())
    assert loss > 0
    # and it is the gradient of the loss the docstring states: mean weight * squared error
    y = mlp.forward(theta, xt, t)
    np.testing.assert_allclose(loss, np.mean(weight[:, None] * (y - target) ** 2), rtol=1e-12)
    for k, ((gW, gb), (fW, fb)) in enumerate(zip(mlp.layers(grad), mlp.layers(fd))):
        _assert_rel(gW, fW, 1e-6, f"{activation}/{param} layer {k} weight gradient")
        _assert_rel(gb, fb, 1e-6, f"{activation}/{param} layer {k} bias gradient")


@pytest.mark.parametrize("extra", [dict(), dict(coord_embedding=False), dict(raw_coords=True, dim=3),
                                   dict(activation="silu", depth=0)])
def test_input_jvp_and_divergence_match_finite_difference_jacobian(extra):
    # J v against the FD Jacobian dy_i/dx_j = (y(x + h e_j) - y(x - h e_j)) / 2h, and tr J
    cfg = MLPConfig(**{**SMALL, **extra})
    rng = np.random.default_rng(11)
    mlp = MLP(cfg)
    theta = mlp.init_params(rng, np.float64) * 2.0
    D = cfg.dim
    x, t = _batch(rng, B=4, D=D)
    h = 1e-6
    J = np.empty((x.shape[0], D, D))
    for j in range(D):
        xp, xm = x.copy(), x.copy()
        xp[:, j] += h
        xm[:, j] -= h
        J[:, :, j] = (mlp.forward(theta, xp, t) - mlp.forward(theta, xm, t)) / (2 * h)
    v = rng.standard_normal((3, *x.shape))
    y, jv = mlp.jvp(theta, x, t, v)
    np.testing.assert_allclose(y, mlp.forward(theta, x, t), rtol=1e-14, atol=1e-14)
    _assert_rel(jv, np.einsum("bij,kbj->kbi", J, v), 1e-6, f"JVP {extra}")
    y2, tr = mlp.output_and_trace(theta, x, t)
    np.testing.assert_allclose(y2, y, rtol=1e-14, atol=1e-14)
    _assert_rel(tr, np.trace(J, axis1=1, axis2=2), 1e-6, f"divergence {extra}")
    _, single = mlp.jvp(theta, x, t, v[0])
    np.testing.assert_allclose(single, jv[0], rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("extra", [dict(), dict(coord_embedding=False), dict(raw_coords=True, dim=3)])
def test_one_time_for_the_batch_folds_emb_t_into_the_bias_without_changing_the_result(extra):
    # A batch at a single t takes the folded first layer; the same points beside one point at another t
    # take the full (B, E) x (E, H) product. Output and exact trace must agree to rounding.
    cfg = MLPConfig(**{**SMALL, **extra})
    rng = np.random.default_rng(12)
    mlp = MLP(cfg)
    theta = mlp.init_params(rng, np.float64) * 2.0
    x, _ = _batch(rng, B=6, D=cfg.dim)
    t = np.full(6, 0.37)
    x_mixed = np.vstack([x, x[:1]])  # (7, D): the last row at another time forces the unfolded path
    t_mixed = np.append(t, 0.81)
    y, tr = mlp.output_and_trace(theta, x, t)
    y_ref, tr_ref = mlp.output_and_trace(theta, x_mixed, t_mixed)
    np.testing.assert_allclose(y, y_ref[:6], rtol=1e-12, atol=1e-13, err_msg=f"output {extra}")
    np.testing.assert_allclose(tr, tr_ref[:6], rtol=1e-12, atol=1e-13, err_msg=f"trace {extra}")
    np.testing.assert_allclose(mlp.forward(theta, x, 0.37), y_ref[:6], rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("param", ["eps", "x0", "v"])
def test_model_eps_is_the_converted_prediction_and_its_divergence_is_exact(param):
    # eps(x, t) = to_eps(prediction) (npdiff.parameterization), tr d eps/dx against central differences of eps
    rng = np.random.default_rng(12)
    sched = cosine()
    model = DiffusionMLP(MLPConfig(parameterization=param, **SMALL), sched, rng=rng)
    x, t = _batch(rng, B=6, t_lo=0.02, t_hi=0.98)
    ab = sched.alpha_bar(t)[:, None]
    expected = parameterization.to_eps(model.predict(x, t), param, x, ab)
    eps = model.eps(x, t)
    np.testing.assert_allclose(eps, expected, rtol=1e-12, atol=1e-12, err_msg=f"eps conversion for {param}")
    eps2, div = call_eps_and_divergence(model, x, t)
    np.testing.assert_allclose(eps2, eps, rtol=1e-13, atol=1e-13)
    h = 1e-6
    fd = np.zeros(x.shape[0])
    for j in range(2):
        xp, xm = x.copy(), x.copy()
        xp[:, j] += h
        xm[:, j] -= h
        fd += (model.eps(xp, t)[:, j] - model.eps(xm, t)[:, j]) / (2 * h)
    _assert_rel(div, fd, 1e-6, f"divergence of eps for the {param} parameterization")


def test_float32_model_agrees_with_float64_and_follows_the_protocol():
    rng = np.random.default_rng(13)
    model = DiffusionMLP(MLPConfig(), vp_linear(), rng=rng)  # the default architecture
    assert check_denoiser(model) == vp_linear() and model.dim == 2
    x, t = _batch(rng, B=64)
    e64, d64 = model.eps_and_divergence(x, t)
    e32, d32 = model.with_dtype(np.float32).eps_and_divergence(x, t)
    assert e32.dtype == np.float64 and d32.dtype == np.float64
    np.testing.assert_allclose(e32, e64, rtol=0, atol=2e-4 * np.abs(e64).max(), err_msg="float32 vs float64 eps")
    np.testing.assert_allclose(d32, d64, rtol=0, atol=2e-3 * np.abs(d64).max(), err_msg="float32 vs float64 div")
    np.testing.assert_allclose(model.eps(x, 0.5), model.eps(x, np.full(64, 0.5)), rtol=0, atol=0)


def test_bad_inputs_and_configs_raise_clear_errors():
    rng = np.random.default_rng(14)
    model = DiffusionMLP(MLPConfig(parameterization="x0", **SMALL), vp_linear(), rng=rng)
    with pytest.raises(ValueError, match="x must have 2 columns"):
        model.eps(np.zeros((3, 3)), 0.5)
    with pytest.raises(ValueError, match=r"t must lie in \[0"):
        model.eps(np.zeros((3, 2)), 1.5)
    with pytest.raises(ValueError, match="sigma"):
        model.eps(np.zeros((3, 2)), 0.0)  # vp_linear: sigma(0) = 0, x0 -> eps undefined
    with pytest.raises(ValueError, match="emb_dim must be even"):
        MLPConfig(emb_dim=7)
    with pytest.raises(ValueError, match="activation"):
        MLPConfig(activation="relu")
    with pytest.raises(ValueError, match="parameterization"):
        MLPConfig(parameterization="score")
    with pytest.raises(ValueError, match="unknown MLP config keys"):
        MLPConfig.from_dict({"width": 8, "heads": 2})
    with pytest.raises(ValueError, match="params must have shape"):
        DiffusionMLP(MLPConfig(**SMALL), vp_linear(), np.zeros(5))
    cfg = MLPConfig(**SMALL)
    assert MLPConfig.from_dict(cfg.to_dict()) == cfg
