"""The MLP: the reference's hand-written gradients and Jacobians against central differences (float64),
and the fast path against the reference to 1e-12."""

import itertools

import numpy as np
import pytest

from npdiff import parameterization
from npdiff.denoiser import call_eps_and_divergence, check_denoiser
from npdiff.nn import COORDS, MLPConfig, mlp
from npdiff.nn import activations as act
from npdiff.nn import embedding as emb
from npdiff.nn.fast import FastMLP
from npdiff.nn.model import DiffusionMLP
from npdiff.objective import denoising_targets
from npdiff.schedule import cosine, vp_linear

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


def _independent_forward(cfg, theta, x, t):
    # the architecture as the module docstring writes it, with none of the module's functions
    f = act.gelu if cfg.activation == "gelu" else act.silu
    layers = cfg.layers(theta)
    e = emb.embed(x, t, emb_dim=cfg.emb_dim, time_scale=cfg.time_scale, coord_scale=cfg.coord_scale,
                  raw=cfg.raw, coord=cfg.sinusoidal)
    h = f(e @ layers[0][0] + layers[0][1])[0]
    for W, b in layers[1:-1]:
        h = h + f(h @ W + b)[0]
    return h @ layers[-1][0] + layers[-1][1]


# -- the reference against central differences ------------------------------------------------------
@pytest.mark.parametrize("activation", ["gelu", "silu"])
@pytest.mark.parametrize("param", ["eps", "x0", "v"])
def test_every_parameter_gradient_matches_central_differences(activation, param):
    # dL/dtheta_i = (L(theta + h e_i) - L(theta - h e_i)) / 2h for the training loss of this parameterization
    rng = np.random.default_rng(10)
    cfg = MLPConfig(activation=activation, parameterization=param, **SMALL)
    theta = cfg.init_params(rng, np.float64) * 3.0  # larger weights: activations leave their linear range
    x0, t = _batch(rng)
    eps = rng.standard_normal(x0.shape)
    xt, target, weight = denoising_targets(x0, t, eps, vp_linear(), param, "eps")
    loss, grad = mlp.loss_and_grad(cfg, theta, xt, t, target, weight)
    fd = _fd_grad(lambda p: mlp.loss_and_grad(cfg, p, xt, t, target, weight)[0], theta.copy())
    assert loss > 0
    # and it is the gradient of the loss the docstring states: mean weight * squared error of the network
    y = _independent_forward(cfg, theta, xt, t)
    np.testing.assert_allclose(loss, np.mean(weight[:, None] * (y - target) ** 2), rtol=1e-12)
    np.testing.assert_allclose(mlp.forward(cfg, theta, xt, t)[0], y, rtol=1e-13, atol=1e-13)
    for k, ((gW, gb), (fW, fb)) in enumerate(zip(cfg.layers(grad), cfg.layers(fd))):
        _assert_rel(gW, fW, 1e-6, f"{activation}/{param} layer {k} weight gradient")
        _assert_rel(gb, fb, 1e-6, f"{activation}/{param} layer {k} bias gradient")


@pytest.mark.parametrize("layer", ["hidden", "residual_block", "dense"])
def test_each_layer_backward_is_the_gradient_of_its_forward(layer):
    # for a random direction (dh, dW, db) of the inputs: <dL/d out, d out> = <dh, grad_h> + <dW, grad_W> + <db, grad_b>
    rng = np.random.default_rng(16)
    width_out = 3 if layer == "hidden" or layer == "dense" else 5
    h, W, b = rng.standard_normal((4, 5)), rng.standard_normal((5, width_out)), rng.standard_normal(width_out)
    d_out = rng.standard_normal((4, width_out))  # dL/d out of the layer
    if layer == "dense":
        f = mlp.dense
        grad_W, grad_b, grad_h = mlp.dense_backward(d_out, h, W)
    else:
        forward, backward = getattr(mlp, layer), getattr(mlp, f"{layer}_backward")

        def f(h, W, b):
            return forward(h, W, b, act.silu)[0]

        grad_W, grad_b, grad_h = backward(d_out, h, forward(h, W, b, act.silu)[1], W, act.silu)
    dh, dW, db = rng.standard_normal(h.shape), rng.standard_normal(W.shape), rng.standard_normal(b.shape)
    step = 1e-6
    fd = (f(h + step * dh, W + step * dW, b + step * db) - f(h - step * dh, W - step * dW, b - step * db)) / (2 * step)
    np.testing.assert_allclose(np.sum(grad_h * dh) + np.sum(grad_W * dW) + np.sum(grad_b * db), np.sum(d_out * fd),
                               rtol=1e-7, err_msg=layer)


@pytest.mark.parametrize("coords", COORDS)
@pytest.mark.parametrize("extra", [dict(), dict(dim=3, activation="silu"), dict(depth=0)])
def test_input_jvp_and_divergence_match_finite_difference_jacobian(coords, extra):
    # J v against the FD Jacobian dy_i/dx_j = (y(x + h e_j) - y(x - h e_j)) / 2h, and tr J
    cfg = MLPConfig(**{**SMALL, **extra, "coords": coords})
    rng = np.random.default_rng(11)
    theta = cfg.init_params(rng, np.float64) * 2.0
    D = cfg.dim
    x, t = _batch(rng, B=4, D=D)
    h = 1e-6
    J = np.empty((x.shape[0], D, D))
    for j in range(D):
        xp, xm = x.copy(), x.copy()
        xp[:, j] += h
        xm[:, j] -= h
        J[:, :, j] = (_independent_forward(cfg, theta, xp, t) - _independent_forward(cfg, theta, xm, t)) / (2 * h)
    v = rng.standard_normal((3, *x.shape))
    y, jv = mlp.jvp(cfg, theta, x, t, v)
    np.testing.assert_allclose(y, _independent_forward(cfg, theta, x, t), rtol=1e-13, atol=1e-13)
    _assert_rel(jv, np.einsum("bij,kbj->kbi", J, v), 1e-6, f"JVP {coords} {extra}")
    y2, tr = mlp.divergence(cfg, theta, x, t)
    np.testing.assert_allclose(y2, y, rtol=1e-14, atol=1e-14)
    _assert_rel(tr, np.trace(J, axis1=1, axis2=2), 1e-6, f"divergence {coords} {extra}")
    _, single = mlp.jvp(cfg, theta, x, t, v[0])
    np.testing.assert_allclose(single, jv[0], rtol=1e-13, atol=1e-14)


# -- the fast path against the reference ---------------------------------------------------------------
FAST_CASES = [dict(coords=c, activation=a, parameterization=p)
              for (c, a), p in zip(itertools.product(COORDS, ("gelu", "silu")), itertools.cycle(("eps", "x0", "v")))]


@pytest.mark.parametrize("case", FAST_CASES, ids=lambda c: "-".join(c.values()))
@pytest.mark.parametrize("shared_time", [False, True])
def test_fast_path_equals_the_reference_in_float64(case, shared_time):
    # loss, every parameter gradient, output and exact divergence, to 1e-12 relative; the fast path takes
    # another route (fused kernels, buffers, emb(t) W_0 folded into the bias when the batch shares a time,
    # the blocked trace with rotated embedding weights), so equality says both compute the network
    cfg = MLPConfig(dim=3, width=16, depth=2, emb_dim=8, **case)
    rng = np.random.default_rng(17)
    theta = cfg.init_params(rng, np.float64) * 2.0
    x, t = _batch(rng, B=9, D=3)
    if shared_time:
        t = np.full(9, 0.41)
    target, weight = rng.standard_normal(x.shape), rng.uniform(0.2, 2.0, 9)
    fast = FastMLP(cfg)
    grad = np.full_like(theta, np.nan)  # every entry must be written
    loss = fast.loss_and_grad(cfg.layers(theta), cfg.layers(grad), x, t, target, weight)
    ref_loss, ref_grad = mlp.loss_and_grad(cfg, theta, x, t, target, weight)
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-12, err_msg="loss")
    _assert_rel(grad, ref_grad, 1e-12, f"gradient {case}")
    y_ref, div_ref = mlp.divergence(cfg, theta, x, t)
    np.testing.assert_allclose(fast.output(cfg.layers(theta), x, t), y_ref, rtol=1e-12, atol=1e-13, err_msg="output")
    y, tr = fast.output_and_trace(cfg.layers(theta), x, t)
    np.testing.assert_allclose(y, y_ref, rtol=1e-12, atol=1e-13, err_msg="output of the trace")
    _assert_rel(tr, div_ref, 1e-12, f"divergence {case}")


def test_fast_path_reuses_its_buffers_without_leaking_one_call_into_the_next():
    # two batch sizes and two dtypes alternate; each result must equal a fresh network's
    cfg = MLPConfig(**SMALL)
    rng = np.random.default_rng(18)
    theta = cfg.init_params(rng, np.float64)
    fast = FastMLP(cfg)
    batches = [_batch(rng, B=B) for B in (3, 7, 3)]
    for x, t in batches:
        for dtype in (np.float64, np.float32):
            layers = cfg.layers(theta.astype(dtype))
            np.testing.assert_array_equal(fast.output(layers, x, t), FastMLP(cfg).output(layers, x, t))


# -- the trained denoiser -------------------------------------------------------------------------------
@pytest.mark.parametrize("param", ["eps", "x0", "v"])
def test_model_eps_is_the_converted_prediction_and_its_divergence_is_exact(param):
    # eps(x, t) = to_eps(prediction) (npdiff.parameterization), tr d eps/dx against central differences of eps
    rng = np.random.default_rng(12)
    sched = cosine()
    model = DiffusionMLP(MLPConfig(parameterization=param, **SMALL), sched, rng=rng)
    x, t = _batch(rng, B=6, t_lo=0.02, t_hi=0.98)
    ab = sched.alpha_bar(t)[:, None]
    np.testing.assert_allclose(model.predict(x, t), _independent_forward(model.config, model.params, x, t),
                               rtol=1e-12, atol=1e-12)
    expected = parameterization.to_eps(model.predict(x, t), param, x, ab)
    eps = model.eps(x, t)
    np.testing.assert_allclose(eps, expected, rtol=1e-10, atol=1e-12, err_msg=f"eps conversion for {param}")
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
    with pytest.raises(ValueError, match="coords must be one of"):
        MLPConfig(coords="embedded")
    with pytest.raises(ValueError, match="unknown MLP config keys"):
        MLPConfig.from_dict({"width": 8, "heads": 2})
    with pytest.raises(ValueError, match="params must have shape"):
        DiffusionMLP(MLPConfig(**SMALL), vp_linear(), np.zeros(5))
    cfg = MLPConfig(**SMALL)
    theta = cfg.init_params(rng, np.float64)
    with pytest.raises(TypeError, match="config must be an MLPConfig"):
        mlp.forward(SMALL, theta, np.zeros((3, 2)), 0.5)
    with pytest.raises(ValueError, match="params must have shape"):
        mlp.divergence(cfg, theta[:-1], np.zeros((3, 2)), 0.5)
    with pytest.raises(ValueError, match="target must have 2 columns"):
        mlp.loss_and_grad(cfg, theta, np.zeros((3, 2)), 0.5, np.zeros((3, 3)))
    with pytest.raises(ValueError, match="v must have shape"):
        mlp.jvp(cfg, theta, np.zeros((3, 2)), 0.5, np.zeros((2, 2)))
    with pytest.raises(ValueError, match="beyond the coordinate embedding's range"):
        mlp.forward(cfg, theta, np.full((3, 2), 1e6), 0.5)
    assert MLPConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize(("older", "coords"), [(dict(coord_embedding=True, raw_coords=False), "sinusoidal"),
                                               (dict(coord_embedding=True, raw_coords=True), "raw+sinusoidal"),
                                               (dict(coord_embedding=False, raw_coords=False), "raw"),
                                               (dict(coord_embedding=False, raw_coords=True), "raw")])
def test_a_config_of_the_earlier_layout_reads_as_the_same_network(older, coords):
    # configs saved with the two coordinate flags (and dropout / time_input off) name one of the coords settings
    d = {**MLPConfig(**SMALL).to_dict(), **older, "dropout": 0.0, "time_input": "t"}
    del d["coords"]
    cfg = MLPConfig.from_dict(d)
    assert cfg == MLPConfig(**SMALL, coords=coords)
    with pytest.raises(ValueError, match=r"unknown MLP config keys \['dropout'\]"):
        MLPConfig.from_dict({**d, "dropout": 0.1})  # a network npdiff no longer builds is refused, not misread
