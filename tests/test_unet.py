"""The whole U-Net on a tiny configuration: gradients by directional derivatives in parameter and input space,
JVP, VJP and the exact divergence against a finite-difference Jacobian, the denoiser class, and bad input."""

import json

import numpy as np
import pytest

from npdiff.denoiser import call_eps_and_divergence, check_denoiser, num_classes_of
from npdiff.nn import DiffusionUNet, MLPConfig, UNetConfig
from npdiff.nn.model import DiffusionMLP
from npdiff.nn.unet import network
from npdiff.schedule import cosine, vp_linear

TINY = dict(widths=(8, 8, 8), groups=2, heads=2, time_dim=16, emb_dim=8)
H = 1e-6


def _tiny(**kw):
    return UNetConfig(**{**TINY, **kw})


def _params(cfg, rng):
    # away from the zero initialization of the residual branches, so that every path carries a gradient
    return cfg.init_params(rng, np.float64) + 0.2 * rng.standard_normal(cfg.n_params)


def _batch(rng, B=3):
    return rng.standard_normal((B, 64)), rng.uniform(0.05, 0.95, B)


def _fd_jacobian(f, x):
    # J[b, i, d] = d f(x)_b,i / d x_b,d by central differences; the images of a batch are independent
    J = np.empty((x.shape[0], x.shape[1], x.shape[1]))
    for d in range(x.shape[1]):
        e = np.zeros_like(x)
        e[:, d] = H
        J[:, :, d] = (f(x + e) - f(x - e)) / (2 * H)
    return J


@pytest.fixture(scope="module")
def point():
    rng = np.random.default_rng(0)
    cfg = _tiny(num_classes=3)
    theta = _params(cfg, rng)
    x, t = _batch(rng)
    y = np.array([0, 2, 1])
    J = _fd_jacobian(lambda z: network.forward(cfg, theta, z, t, y)[0], x)
    return cfg, theta, x, t, y, J


# -- the default network, as the docstring states it -------------------------------------------------
def test_default_config_is_the_stated_network():
    cfg = UNetConfig()
    assert (cfg.image_size, cfg.channels, cfg.widths, cfg.num_res_blocks) == (8, 1, (32, 64, 64), 2)
    assert (cfg.attention_resolutions, cfg.heads, cfg.groups, cfg.dim) == ((4, 2), 4, 8, 64)
    assert cfg.n_params == 1_383_713  # module docstring of npdiff.nn.unet.config
    assert UNetConfig(num_classes=10).n_params == cfg.n_params + 11 * 128
    kinds = [s[0] for s in cfg.plan]
    assert kinds.count("res") == 3 * 2 + 2 + 3 * 2 and kinds.count("attn") == 4 + 1 + 4
    assert kinds.count("push") == kinds.count("cat") == 6 and kinds.count("down") == kinds.count("up") == 2


def test_initial_network_outputs_zero_and_is_per_image():
    # ADM's zero initialization: every residual branch and conv_out start at 0, so the output is 0
    rng = np.random.default_rng(1)
    cfg = _tiny()
    x, t = _batch(rng)
    np.testing.assert_array_equal(network.forward(cfg, cfg.init_params(rng, np.float64), x, t)[0], 0.0)
    # GroupNorm never mixes images: a batch's rows are the images' outputs one at a time
    theta = _params(cfg, rng)
    whole = network.forward(cfg, theta, x, t)[0]
    for b in range(3):
        np.testing.assert_allclose(whole[b], network.forward(cfg, theta, x[b:b + 1], t[b])[0][0], rtol=1e-12, atol=1e-13)


# -- gradients in parameter space -------------------------------------------------------------------------
def test_gradient_by_directional_derivatives_block_by_block():
    # for a random direction d supported on one block's weights: grad . d = (L(theta + h d) - L(theta - h d)) / 2h
    rng = np.random.default_rng(2)
    cfg = _tiny(num_classes=3)
    theta = _params(cfg, rng)
    x, t = _batch(rng)
    target, weight, y = rng.standard_normal(x.shape), rng.uniform(0.5, 2.0, 3), np.array([2, 0, 0])
    loss = lambda p: network.loss_and_grad(cfg, p, x, t, target, weight, y)[0]  # noqa: E731
    L, grad = network.loss_and_grad(cfg, theta, x, t, target, weight, y)
    out = network.forward(cfg, theta, x, t, y)[0]
    np.testing.assert_allclose(L, np.mean(weight[:, None] * (out - target) ** 2), rtol=1e-13)
    blocks = sorted({".".join(name.split(".")[:2]) if name.count(".") > 1 else name.split(".")[0]
                     for name, _ in cfg.param_shapes})
    assert "labels" in blocks and "mid.attn" in blocks and "up0.res1" in blocks
    views = cfg.views(np.arange(cfg.n_params))
    for block in blocks:
        idx = np.concatenate([v.ravel() for name, v in views.items() if name == block or name.startswith(block + ".")])
        d = np.zeros(cfg.n_params)
        d[idx] = rng.standard_normal(idx.size)
        fd = (loss(theta + H * d) - loss(theta - H * d)) / (2 * H)
        np.testing.assert_allclose(grad @ d, fd, rtol=2e-6, atol=1e-9, err_msg=f"block {block}")


def test_backward_of_a_random_cotangent_in_random_directions():
    # <u, dy/dtheta d> for whole-vector directions d: backward(u) . d against central differences of <u, y>
    rng = np.random.default_rng(3)
    cfg = _tiny()
    theta = _params(cfg, rng)
    x, t = _batch(rng)
    out, cache = network.forward(cfg, theta, x, t)
    u = rng.standard_normal(out.shape)
    grad = network.backward(cfg, theta, cache, u)
    for _ in range(3):
        d = rng.standard_normal(cfg.n_params)
        fd = (np.sum(u * network.forward(cfg, theta + H * d, x, t)[0])
              - np.sum(u * network.forward(cfg, theta - H * d, x, t)[0])) / (2 * H)
        np.testing.assert_allclose(grad @ d, fd, rtol=1e-6)


def test_backward_that_overwrites_its_cache_gives_the_same_gradient_and_spends_the_cache():
    # training's backward writes the column gradients over the cached columns: same weight gradient, cache consumed
    rng = np.random.default_rng(4)
    cfg = _tiny()
    P = cfg.views(_params(cfg, rng))
    x, t = _batch(rng)
    out, cache = network.forward_unchecked(cfg, P, x, t)
    _, cache2 = network.forward_unchecked(cfg, P, x, t)
    u = rng.standard_normal(out.shape)
    kept = cache["cols_out"].copy()
    grad, dx = network.backward_unchecked(cfg, P, cache, u)
    grad2, dx2 = network.backward_unchecked(cfg, P, cache2, u, input_grad=False, overwrite_cache=True)
    np.testing.assert_array_equal(grad2, grad)
    assert dx2 is None and dx.shape == x.shape
    np.testing.assert_array_equal(cache["cols_out"], kept)  # the default leaves the cache readable
    assert not np.array_equal(cache2["cols_out"], kept)


# -- derivatives in input space ------------------------------------------------------------------------------
def test_jvp_is_the_jacobian_times_the_tangents(point):
    cfg, theta, x, t, y, J = point
    v = np.random.default_rng(4).standard_normal((5, *x.shape))
    out, out_dot = network.jvp(cfg, theta, x, t, v, y)
    np.testing.assert_allclose(out, network.forward(cfg, theta, x, t, y)[0], rtol=1e-13)
    np.testing.assert_allclose(out_dot, np.einsum("bid,kbd->kbi", J, v), rtol=1e-6, atol=1e-7 * np.abs(J).max())
    single = network.jvp(cfg, theta, x, t, v[0], y)[1]  # one tangent (B, D) in, (B, D) out
    np.testing.assert_allclose(single, out_dot[0], rtol=1e-12, atol=1e-14)


def test_vjp_is_the_transposed_jacobian_times_the_cotangent(point):
    cfg, theta, x, t, y, J = point
    u = np.random.default_rng(5).standard_normal(x.shape)
    out, u_jac = network.vjp(cfg, theta, x, t, u, y)
    np.testing.assert_allclose(out, network.forward(cfg, theta, x, t, y)[0], rtol=1e-13)
    np.testing.assert_allclose(u_jac, np.einsum("bi,bid->bd", u, J), rtol=1e-6, atol=1e-7 * np.abs(J).max())


def test_divergence_is_the_trace_of_the_jacobian(point):
    cfg, theta, x, t, y, J = point
    _, tr = network.divergence(cfg, theta, x, t, y)
    np.testing.assert_allclose(tr, np.trace(J, axis1=1, axis2=2), rtol=1e-6)


def test_divergence_in_blocks_of_rows_equals_one_image_at_a_time(monkeypatch):
    # 5 images with 64 tangents each, in blocks of 128 // 64 = 2 rows (2, 2, 1): the block edges must not show
    monkeypatch.setattr(network, "TANGENT_IMAGES", 128)
    rng = np.random.default_rng(6)
    cfg = _tiny()
    theta = _params(cfg, rng)
    x, t = _batch(rng, B=5)
    _, tr = network.divergence(cfg, theta, x, t)
    one = [network.divergence(cfg, theta, x[b:b + 1], t[b:b + 1])[1][0] for b in range(5)]
    np.testing.assert_allclose(tr, one, rtol=1e-12)


# -- the denoiser -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("param", ["x0", "v"])
def test_denoiser_eps_and_its_derivatives_against_finite_differences(param):
    rng = np.random.default_rng(7)
    cfg = _tiny(parameterization=param, num_classes=2)
    model = DiffusionUNet(cfg, cosine(), _params(cfg, rng))
    assert check_denoiser(model) is model.schedule and num_classes_of(model) == 2 and model.dim == 64
    x, t = _batch(rng, B=2)
    J = _fd_jacobian(lambda z: model.eps(z, t, 1), x)
    eps, div = call_eps_and_divergence(model, x, t, np.array([1, 1]))
    # the divergence and the JVP run their forward pass one image at a time, whose products may round differently
    np.testing.assert_allclose(eps, model.eps(x, t, 1), rtol=1e-13, atol=1e-13 * np.abs(eps).max())
    np.testing.assert_allclose(div, np.trace(J, axis1=1, axis2=2), rtol=1e-6)
    v = rng.standard_normal((2, 3, 64))  # the protocol's (B, K, D)
    eps_j, jv = model.eps_jvp(x, t, v, 1)
    np.testing.assert_allclose(eps_j, eps, rtol=1e-13, atol=1e-13 * np.abs(eps).max())
    np.testing.assert_allclose(jv, np.einsum("bid,bkd->bki", J, v), rtol=1e-6, atol=1e-7 * np.abs(J).max())
    u = rng.standard_normal((2, 64))
    eps_v, uj = model.eps_vjp(x, t, u, 1)
    np.testing.assert_allclose(eps_v, eps, rtol=1e-13, atol=1e-13 * np.abs(eps).max())
    np.testing.assert_allclose(uj, np.einsum("bi,bid->bd", u, J), rtol=1e-6, atol=1e-7 * np.abs(J).max())


def test_denoiser_labels_float32_and_copy_of_the_weights():
    rng = np.random.default_rng(8)
    cfg = _tiny(num_classes=3)
    theta = _params(cfg, rng)
    model = DiffusionUNet(cfg, vp_linear(), theta)
    x, t = _batch(rng)
    eps = model.eps(x, t)
    theta[:] = 0.0  # the model copied its weights
    np.testing.assert_array_equal(model.eps(x, t), eps)
    # y = None is the "no label" row, not any of the labels
    assert not np.allclose(model.eps(x, t, 0), eps)
    np.testing.assert_allclose(model.eps(x, t, None), network.forward(cfg, model.params, x, t)[0], rtol=1e-13)
    fast = model.with_dtype(np.float32)
    np.testing.assert_allclose(fast.eps(x, t), eps, rtol=1e-4, atol=1e-4 * np.abs(eps).max())
    np.testing.assert_allclose(fast.eps_and_divergence(x, t)[1], model.eps_and_divergence(x, t)[1], rtol=1e-3)
    assert fast.eps(x, t).dtype == np.float64


def test_a_float32_network_computes_in_float32_throughout():
    # one float64 constant (a NumPy scalar) would silently promote every layer after it
    rng = np.random.default_rng(12)
    cfg = _tiny(num_classes=2)
    P = cfg.views(_params(cfg, rng).astype(np.float32))
    x, t = _batch(rng)
    out, cache = network.forward_unchecked(cfg, P, x.astype(np.float32), t, np.array([0, 2, 1]))
    grad, dx = network.backward_unchecked(cfg, P, cache, out)
    out_dot = network.tangent_unchecked(cfg, P, cache, np.ones((2, *x.shape), np.float32))
    assert out.dtype == grad.dtype == dx.dtype == out_dot.dtype == np.float32


def test_config_and_checkpoint_dict_round_trip():
    rng = np.random.default_rng(9)
    cfg = _tiny(num_classes=3, parameterization="v", attention_resolutions=(2,))
    assert UNetConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    model = DiffusionUNet(cfg, cosine(), rng=0)
    d = json.loads(json.dumps(model.config_dict()))
    again = DiffusionUNet.from_config_dict(d, model.params)
    x, t = _batch(rng)
    np.testing.assert_array_equal(again.eps(x, t, 1), model.eps(x, t, 1))
    mlp = DiffusionMLP(MLPConfig(dim=64, width=8, depth=1, emb_dim=8), cosine(), rng=0)
    with pytest.raises(ValueError, match="'arch': 'unet'"):  # a checkpoint of another architecture
        DiffusionUNet.from_config_dict(mlp.config_dict(), model.params)
    with pytest.raises(ValueError, match="unknown U-Net config keys"):
        UNetConfig.from_dict({**cfg.to_dict(), "depth": 3})


# -- bad input -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kw, match", [
    (dict(image_size=6), "image_size 6 cannot be halved 2 times"),
    (dict(image_size=8, widths=(8, 8, 8, 8, 8)), "image_size 8 cannot be halved 4 times"),
    (dict(widths=(8, 9, 8)), "groups = 2 must divide every normalized channel count, got 9 channels"),
    (dict(widths=(6, 6, 6), groups=4), "groups = 4 must divide .* got 6 channels"),
    (dict(heads=3), "heads = 3 must divide the channels of every attention layer, got 8 channels"),
    (dict(attention_resolutions=(3,)), r"attention_resolutions \[3\] are not resolutions"),
    (dict(parameterization="score"), "parameterization must be one of"),
    (dict(emb_dim=7), "emb_dim must be even"),
    (dict(widths=()), "widths must be a non-empty tuple"),
])
def test_bad_configs_name_the_value(kw, match):
    with pytest.raises(ValueError, match=match):
        _tiny(**kw)


def test_bad_arguments_are_clear_errors():
    rng = np.random.default_rng(10)
    cfg = _tiny()
    theta = _params(cfg, rng)
    x, t = _batch(rng)
    with pytest.raises(ValueError, match=r"params must have shape \(\d+,\)"):
        network.forward(cfg, theta[:-1], x, t)
    with pytest.raises(TypeError, match="config must be a UNetConfig"):
        network.forward(object(), theta, x, t)
    with pytest.raises(ValueError, match="x"):
        network.forward(cfg, theta, x[:, :63], t)
    with pytest.raises(ValueError, match="v must have shape"):
        network.jvp(cfg, theta, x, t, np.ones((2, 3, 63)))
    with pytest.raises(ValueError, match="K >= 1"):
        network.jvp(cfg, theta, x, t, np.ones((0, 3, 64)))
    with pytest.raises(ValueError, match="y must be None"):
        network.forward(cfg, theta, x, t, y=1)
    model = DiffusionUNet(cfg, cosine(), theta)
    with pytest.raises(ValueError, match="v must have shape"):
        model.eps_jvp(x, t, np.ones((3, 64)))
    with pytest.raises(ValueError, match="K >= 1"):
        model.eps_jvp(x, t, np.ones((3, 0, 64)))
    with pytest.raises(ValueError, match="u must have the shape of x"):
        model.eps_vjp(x, t, np.ones((2, 64)))
    with pytest.raises(TypeError, match="needs params, or rng"):
        DiffusionUNet(cfg, cosine())
    with pytest.raises(ValueError, match="dtype must be"):
        DiffusionUNet(cfg, cosine(), theta, dtype=np.float16)
    bad = theta.copy()
    bad[3] = np.nan  # a diverged training run's weights: refused at the door, as the MLP's are
    with pytest.raises(ValueError, match="params must be finite, got 1 NaN or Inf"):
        DiffusionUNet(cfg, cosine(), bad)
