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
                                   dict(activation="silu", depth=0), dict(time_input="log_t", time_scale=3.0)])
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


def test_log_t_time_input_embeds_the_log_of_t_and_refuses_t_zero():
    # an independent forward from the module docstring with the time embedding fed time_scale * log t
    from npdiff.nn import activations, embedding

    cfg = MLPConfig(**SMALL, time_input="log_t", time_scale=2.0)
    rng = np.random.default_rng(15)
    mlp = MLP(cfg)
    theta = mlp.init_params(rng, np.float64)
    x, t = _batch(rng, t_lo=1e-4, t_hi=1.0)
    layers = mlp.layers(theta)
    e = embedding.embed(x, np.log(t), emb_dim=cfg.emb_dim, time_scale=2.0, coord_scale=cfg.coord_scale,
                        raw=cfg.raw, coord=cfg.coord_embedding)
    h = activations.gelu(e @ layers[0][0] + layers[0][1])[0]
    for k in range(1, cfg.depth + 1):
        h = h + activations.gelu(h @ layers[k][0] + layers[k][1])[0]
    np.testing.assert_allclose(mlp.forward(theta, x, t), h @ layers[-1][0] + layers[-1][1], rtol=1e-12, atol=1e-13)
    for call in (lambda: mlp.forward(theta, x, 0.0), lambda: mlp.output_and_trace(theta, x, np.zeros(len(x))),
                 lambda: DiffusionMLP(cfg, vp_linear(), theta).eps_and_divergence(x, 0.0)):
        with pytest.raises(ValueError, match="t must be > 0 for a model whose time embedding reads log t"):
            call()
    with pytest.raises(ValueError, match="time_input must be one of"):
        MLPConfig(time_input="sigma")
    assert MLPConfig.from_dict(cfg.to_dict()) == cfg
    assert MLPConfig.from_dict({k: v for k, v in MLPConfig().to_dict().items() if k != "time_input"}).time_input == "t"


# -- dropout (training only) ------------------------------------------------------------------
def _reference_dropout_loss(cfg, theta, x, t, target, weight, keep):
    # an independent forward from the module docstring: h_0 = s_0 act(z_0), h_k = h_{k-1} + s_k act(z_k)
    from npdiff.nn import activations, embedding

    act = activations.gelu if cfg.activation == "gelu" else activations.silu
    layers = MLP(cfg).layers(theta)
    e = embedding.embed(x, t, emb_dim=cfg.emb_dim, time_scale=cfg.time_scale, coord_scale=cfg.coord_scale,
                        raw=cfg.raw, coord=cfg.coord_embedding)
    h = keep[0] * act(e @ layers[0][0] + layers[0][1])[0]
    for k in range(1, cfg.depth + 1):
        h = h + keep[k] * act(h @ layers[k][0] + layers[k][1])[0]
    y = h @ layers[-1][0] + layers[-1][1]
    return np.mean(weight[:, None] * (y - target) ** 2)


@pytest.mark.parametrize("activation", ["gelu", "silu"])
@pytest.mark.parametrize("extra", [dict(), dict(coord_embedding=False, depth=3)])
def test_dropout_gradient_matches_central_differences_with_the_same_mask(activation, extra):
    # every loss evaluation draws its masks from a fresh default_rng(7): the FD differences one fixed thinned network
    cfg = MLPConfig(**{**SMALL, "width": 8, **extra}, activation=activation, parameterization="v", dropout=0.3)
    mlp = MLP(cfg)
    rng = np.random.default_rng(15)
    theta = mlp.init_params(rng, np.float64) * 3.0
    x0, t = _batch(rng)
    xt, target, weight = denoising_targets(x0, t, rng.standard_normal(x0.shape), vp_linear(), "v", "eps")
    keep = mlp.dropout_masks(np.random.default_rng(7), x0.shape[0], np.float64)  # (L + 1, B, H)
    assert keep.shape == (cfg.depth + 1, x0.shape[0], cfg.width)
    assert set(np.unique(keep)) == {0.0, 1.0 / 0.7}, f"masks hold {np.unique(keep)}"
    grad, scratch = np.empty_like(theta), np.empty_like(theta)
    loss = mlp.loss_and_grad(theta, grad, xt, t, target, weight, rng=np.random.default_rng(7))
    ref = _reference_dropout_loss(cfg, theta, xt, t, target, weight, keep)
    np.testing.assert_allclose(loss, ref, rtol=1e-12, err_msg=f"{activation} {extra}: dropout loss vs reference")
    full = mlp.loss_and_grad(theta, scratch, xt, t, target, weight)
    assert abs(loss - full) > 1e-6 * full, f"the masks changed nothing: {loss} vs {full}"
    fd = _fd_grad(lambda p: mlp.loss_and_grad(p, scratch, xt, t, target, weight, rng=np.random.default_rng(7)),
                  theta.copy())
    for k, ((gW, gb), (fW, fb)) in enumerate(zip(mlp.layers(grad), mlp.layers(fd))):
        _assert_rel(gW, fW, 1e-6, f"{activation} {extra} dropout layer {k} weight gradient")
        _assert_rel(gb, fb, 1e-6, f"{activation} {extra} dropout layer {k} bias gradient")


def test_dropout_masks_keep_each_unit_with_probability_one_minus_p():
    # m ~ Bernoulli(1 - p), s = m / (1 - p): the dropped fraction is p (5 binomial standard errors) and E[s] = 1
    p = 0.3
    mlp = MLP(MLPConfig(**SMALL, dropout=p))
    keep = mlp.dropout_masks(np.random.default_rng(16), 20_000, np.float64)  # (3, 20000, 6)
    n = keep.size
    dropped = np.mean(keep == 0.0)
    assert abs(dropped - p) < 5 * np.sqrt(p * (1 - p) / n), f"dropped fraction {dropped}, p = {p}, n = {n}"
    assert np.all((keep == 0.0) | (keep == np.float64(1.0) / (1.0 - p)))
    assert mlp.dropout_masks(np.random.default_rng(16), 4, np.float32).dtype == np.float32


def test_p_zero_is_bit_identical_and_draws_nothing():
    # p = 0: no masks, the generator untouched, loss and gradient bit for bit those without an rng
    cfg = MLPConfig(**SMALL, dropout=0.0)
    mlp = MLP(cfg)
    rng = np.random.default_rng(17)
    theta = mlp.init_params(rng, np.float64) * 2.0
    x, t = _batch(rng)
    g_with, g_without = np.empty_like(theta), np.empty_like(theta)
    gen = np.random.default_rng(3)
    state = gen.bit_generator.state
    assert mlp.dropout_masks(gen, 5) is None
    l_with = mlp.loss_and_grad(theta, g_with, x, t, x[::-1], rng=gen)
    l_without = mlp.loss_and_grad(theta, g_without, x, t, x[::-1])
    assert gen.bit_generator.state == state, "p = 0 advanced the generator"
    assert l_with == l_without
    np.testing.assert_array_equal(g_with, g_without)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_an_all_ones_mask_reproduces_the_undropped_network(dtype):
    # s_k = 1: the dropout path (act, then * s_k, then + h_{k-1}) computes the undropped network; not bit for bit,
    # since the compiled bias_act may fuse act(z) + h_{k-1} into one FMA, so to a few units of rounding
    cfg = MLPConfig(**SMALL, dropout=0.5)
    mlp = MLP(cfg)
    rng = np.random.default_rng(18)
    theta = mlp.init_params(rng, dtype)
    x, t = _batch(rng, B=7)
    results = []
    for keep in (None, np.ones((cfg.depth + 1, 7, cfg.width), dtype)):
        w = mlp.work(7, dtype)
        grad = np.empty_like(theta)
        mlp._forward(mlp.layers(theta), x, t, w, keep=keep)
        loss = mlp._loss_and_grad(mlp.layers(theta), mlp.layers(grad), w, x[::-1], np.ones(7))
        results.append((loss, grad, w.out.copy()))
    rtol = 1e-5 if dtype == np.float32 else 1e-13
    for i, name in enumerate(("loss", "gradient", "output")):
        ref = np.asarray(results[0][i])
        np.testing.assert_allclose(results[1][i], ref, rtol=rtol, atol=rtol * np.abs(ref).max(),
                                   err_msg=f"{dtype.__name__} {name}")


def test_evaluation_never_drops():
    # the same weights under dropout = 0.5 and 0: eps, divergence, JVP, samples and likelihoods bit-identical
    from npdiff.likelihood import ode_log_likelihood, vlb
    from npdiff.sample import ddpm_sample

    base = MLPConfig(**SMALL)
    drop = MLPConfig(**SMALL, dropout=0.5)
    rng = np.random.default_rng(19)
    params = MLP(base).init_params(rng, np.float64)
    models = [DiffusionMLP(cfg, vp_linear(), params) for cfg in (base, drop)]
    x, t = _batch(rng, B=6)
    v = rng.standard_normal((2, *x.shape))
    out = []
    for m in models:
        e, div = m.eps_and_divergence(x, t)
        y, jv = m.mlp.jvp(m.params, x, t, v)
        s = ddpm_sample(m, 4, np.random.default_rng(1), steps=20, T=20).x
        b = vlb(m, x, 10, rng=np.random.default_rng(2)).total
        ll = ode_log_likelihood(m, x[:2], rtol=1e-4, atol=1e-4).log_p
        out.append((m.eps(x, t), e, div, y, jv, m.predict(x, t), s, b, ll))
    names = ("eps", "eps of eps_and_divergence", "divergence", "forward", "jvp", "predict", "ddpm samples", "vlb",
             "ode log-likelihood")
    for name, a, b in zip(names, *out):
        np.testing.assert_array_equal(a, b, err_msg=f"{name} changed with dropout = 0.5")


@pytest.mark.parametrize("bad, error", [(-0.1, ValueError), (1.0, ValueError), (1.5, ValueError),
                                        (float("nan"), ValueError), ("0.1", TypeError), (True, TypeError)])
def test_bad_dropout_raises_a_clear_error(bad, error):
    with pytest.raises(error, match="dropout"):
        MLPConfig(**SMALL, dropout=bad)
