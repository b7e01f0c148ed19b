"""The fused Numba kernels of npdiff.nn agree with their NumPy twins, and the twins with the math.

Each kernel is called directly (``_nb_*``), so with NUMBA_DISABLE_JIT=1 the same loops run as
plain Python and are checked too (on small arrays)."""

import numpy as np
import pytest
from scipy import special

from npdiff.nn import activations as act
from npdiff.nn import embedding as emb
from npdiff.nn.fast import kernels as K

# float32 kernels compute in float32 and may use a fast reciprocal; float64 ones agree to rounding
TOL = {np.float32: dict(rtol=2e-5, atol=2e-6), np.float64: dict(rtol=1e-12, atol=1e-13)}
DTYPES = [np.float32, np.float64]


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


# -- the math of the twins -------------------------------------------------------------------


def test_rational_erf_and_tanh_match_the_true_functions():
    # erf(x) and tanh(x) to float32 rounding level over the whole line, clamp included
    x = np.linspace(-12.0, 12.0, 200_001)
    erf, _ = act.erf_rational(x)
    tanh, _ = act.tanh_rational(x)
    np.testing.assert_allclose(erf, special.erf(x), rtol=0, atol=1e-7, err_msg="rational erf vs scipy erf")
    np.testing.assert_allclose(tanh, np.tanh(x), rtol=0, atol=3e-7, err_msg="rational tanh vs np.tanh")


@pytest.mark.parametrize("name", ["gelu", "silu"])
def test_activation_derivative_is_the_derivative_of_the_value(name):
    # d/dz act(z) by central differences of the value the twin returns (h = 1e-6, float64)
    fn = getattr(act, name)
    z = np.linspace(-9.0, 9.0, 4001)
    z = z[np.abs(np.abs(z / np.sqrt(2)) - act.ERF_CLAMP) > 1e-3]  # keep away from the clamp kink
    h = 1e-6
    fd = (fn(z + h)[0] - fn(z - h)[0]) / (2 * h)
    np.testing.assert_allclose(fn(z)[1], fd, rtol=0, atol=1e-8, err_msg=f"{name}' vs finite differences")


@pytest.mark.parametrize("name", ["gelu", "silu"])
def test_activation_values_match_the_textbook_definitions(name):
    # gelu(z) = z Phi(z) with the exact normal CDF; silu(z) = z / (1 + exp(-z))
    z = np.linspace(-10.0, 10.0, 2001)
    exact = z * special.ndtr(z) if name == "gelu" else z * special.expit(z)
    scaled_err = np.abs(getattr(act, name)(z)[0] - exact) / np.maximum(1.0, np.abs(z))
    assert scaled_err.max() < 1e-6, f"{name} vs textbook: error {scaled_err.max():.2e} at z = {z[scaled_err.argmax()]}"


def test_embedding_twin_layout_and_derivative():
    # emb(s) = [sin(c s f), cos(c s f)], f_k = 1e-4^(k/(K-1)); derivative by central differences
    rng = _rng(1)
    x = rng.standard_normal((7, 3))
    t = rng.uniform(0, 1, 7)
    e = emb.embed(x, t, emb_dim=8, time_scale=1000.0, coord_scale=25.0, raw=True, coord=True)
    f = emb.frequencies(8)
    np.testing.assert_allclose(f[[0, -1]], [1.0, 1e-4], rtol=1e-15)
    assert e.shape == (7, emb.input_width(3, 8, raw=True, coord=True)) == (7, 3 + 3 * 8 + 8)
    np.testing.assert_array_equal(e[:, :3], x)
    np.testing.assert_allclose(e[:, 3 + 8:3 + 8 + 4], np.sin(25.0 * x[:, 1:2] * f), rtol=1e-14)
    np.testing.assert_allclose(e[:, -4:], np.cos(1000.0 * t[:, None] * f), rtol=1e-14)
    h = 1e-7
    tan = emb.embed_tangent(x, emb_dim=8, coord_scale=25.0)  # (D, B, 8)
    for d in range(3):
        xp, xm = x.copy(), x.copy()
        xp[:, d] += h
        xm[:, d] -= h
        block = slice(3 + d * 8, 3 + (d + 1) * 8)
        fd = (emb.embed(xp, t, emb_dim=8, time_scale=1000.0, coord_scale=25.0, raw=True, coord=True)[:, block]
              - emb.embed(xm, t, emb_dim=8, time_scale=1000.0, coord_scale=25.0, raw=True, coord=True)[:, block]) / (2 * h)
        np.testing.assert_allclose(tan[d], fd, rtol=0, atol=1e-6, err_msg=f"embedding derivative, coordinate {d}")


# -- kernels against twins --------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("raw,coord", [(False, True), (True, False), (True, True)])
def test_embed_kernel_matches_twin(dtype, raw, coord):
    rng = _rng(2)
    B, D, E2 = 9, 2, 16
    x = rng.standard_normal((B, D)) * 4.0
    t = rng.uniform(0, 1, B)
    freq = emb.frequencies(E2)
    width = emb.input_width(D, E2, raw=raw, coord=coord)
    out_nb, out_np = np.empty((B, width), dtype), np.empty((B, width), dtype)
    tan_nb, tan_np = np.empty((D, B, E2), dtype), np.empty((D, B, E2), dtype)
    K._nb_embed(x, t, freq, 1000.0, 25.0, raw, coord, out_nb, tan_nb, coord)
    K._np_embed(x, t, freq, 1000.0, 25.0, raw, coord, out_np, tan_np, coord)
    np.testing.assert_allclose(out_nb, out_np, **TOL[dtype], err_msg=f"embed {dtype.__name__} raw={raw} coord={coord}")
    if coord:
        # the kernel builds the tangent from the stored (dtype-rounded) sin/cos; scale c f <= 25
        tol = dict(rtol=1e-5, atol=5e-5) if dtype == np.float32 else TOL[dtype]
        np.testing.assert_allclose(tan_nb, tan_np, **tol, err_msg=f"embed tangent {dtype.__name__}")


def test_kernel_sincos_is_accurate_far_from_zero():
    # the Cody-Waite reduction keeps sin/cos at float64 accuracy for phases up to 1e4 (1000 t, 25 x)
    a = np.concatenate([np.linspace(-1e4, 1e4, 100_001), [0.0, np.pi / 4, np.pi / 2, np.pi, 1e4 * np.pi]])
    out = np.empty((a.size, 2))
    K._nb_embed(np.zeros((a.size, 1)), a, np.ones(1), 1.0, 1.0, False, False, out, np.empty((0, 0, 0)), False)
    np.testing.assert_allclose(out[:, 0], np.sin(a), rtol=0, atol=4e-12, err_msg="kernel sin vs np.sin")
    np.testing.assert_allclose(out[:, 1], np.cos(a), rtol=0, atol=4e-12, err_msg="kernel cos vs np.cos")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("code", [0, 1])
@pytest.mark.parametrize("residual", [False, True])
def test_bias_act_kernel_matches_twin(dtype, code, residual):
    rng = _rng(3)
    z = (rng.standard_normal((6, 11)) * 4.0).astype(dtype)
    z[0, :4] = [0.0, 7.0, -7.0, 20.0]  # zero and both sides of the clamps
    b = rng.standard_normal(11).astype(dtype)
    res = rng.standard_normal((6, 11)).astype(dtype)
    h_nb, d_nb, h_np, d_np = (np.empty_like(z) for _ in range(4))
    K._nb_bias_act(z, b, res, code, residual, h_nb, d_nb)
    K._np_bias_act(z, b, res, code, residual, h_np, d_np)
    msg = f"bias_act {dtype.__name__} act={code} residual={residual}"
    np.testing.assert_allclose(h_nb, h_np, **TOL[dtype], err_msg=msg)
    np.testing.assert_allclose(d_nb, d_np, **TOL[dtype], err_msg=msg)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("accumulate", [False, True])
def test_act_backward_kernel_matches_twin(dtype, accumulate):
    rng = _rng(4)
    g = rng.standard_normal((7, 5)).astype(dtype)
    tmp, d = rng.standard_normal((7, 5)).astype(dtype), rng.uniform(-0.2, 1.2, (7, 5)).astype(dtype)
    g_nb, g_np = g.copy(), g.copy()
    dz_nb, dz_np = np.empty_like(g), np.empty_like(g)
    db_nb, db_np = np.empty(5, dtype), np.empty(5, dtype)
    K._nb_act_backward(g_nb, tmp, d, accumulate, dz_nb, db_nb)
    K._np_act_backward(g_np, tmp, d, accumulate, dz_np, db_np)
    for mine, ref in ((g_nb, g_np), (dz_nb, dz_np), (db_nb, db_np)):
        np.testing.assert_allclose(mine, ref, **TOL[dtype], err_msg=f"act_backward {dtype.__name__} acc={accumulate}")
    np.testing.assert_allclose(dz_np, (g + tmp if accumulate else g) * d, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_mse_loss_kernel_matches_twin(dtype):
    rng = _rng(5)
    out = rng.standard_normal((8, 3)).astype(dtype)
    bias = rng.standard_normal(3).astype(dtype)
    target, weight = rng.standard_normal((8, 3)), rng.uniform(0.1, 3.0, 8)
    dout_nb, dout_np = np.empty_like(out), np.empty_like(out)
    db_nb, db_np = np.empty(3, dtype), np.empty(3, dtype)
    loss_nb = K._nb_mse_loss(out, bias, target, weight, dout_nb, db_nb)
    loss_np = K._np_mse_loss(out, bias, target, weight, dout_np, db_np)
    np.testing.assert_allclose(loss_nb, loss_np, **TOL[dtype])
    np.testing.assert_allclose(dout_nb, dout_np, **TOL[dtype])
    np.testing.assert_allclose(db_nb, db_np, **TOL[dtype])
    # and the twin is the weighted mean squared error
    r = out.astype(np.float64) + bias - target
    np.testing.assert_allclose(loss_np, np.mean(weight[:, None] * r**2), rtol=1e-6)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("clip_norm,weight_decay", [(1.0, 0.0), (0.0, 0.1), (100.0, 0.01)])
def test_adamw_ema_kernel_matches_twin(dtype, clip_norm, weight_decay):
    rng = _rng(7)
    n = 37
    p = rng.standard_normal(n).astype(dtype)
    m = (rng.standard_normal(n) * 0.1).astype(dtype)
    v = (rng.standard_normal(n) ** 2).astype(dtype)
    ema = (p * 0.9).astype(dtype)
    g = (rng.standard_normal(n) * 3.0).astype(dtype)
    mine, ref = [a.copy() for a in (p, m, v, ema)], [a.copy() for a in (p, m, v, ema)]
    args = (K.adamw_hyper(dtype, 1e-2, 0.9, 0.999, 1e-8, weight_decay, 3, 0.99), clip_norm)
    norm_nb = K._nb_adamw_ema(mine[0], g, mine[1], mine[2], mine[3], *args)
    norm_np = K._np_adamw_ema(ref[0], g, ref[1], ref[2], ref[3], *args)
    np.testing.assert_allclose(norm_nb, np.linalg.norm(g.astype(np.float64)), rtol=1e-6)
    np.testing.assert_allclose(norm_nb, norm_np, rtol=1e-6)
    for name, a, b in zip(("params", "m", "v", "ema"), mine, ref):
        np.testing.assert_allclose(a, b, **TOL[dtype], err_msg=f"adamw {name} clip={clip_norm} wd={weight_decay}")


def test_backend_switch_points_at_twins_and_back():
    before = K.backend
    try:
        K.set_backend("numpy")
        assert K.bias_act is K._np_bias_act and K.adamw_ema is K._np_adamw_ema
        K.set_backend("numba")
        assert K.bias_act is K._nb_bias_act and K.embed is K._nb_embed
        with pytest.raises(ValueError, match="backend"):
            K.set_backend("torch")
    finally:
        K.set_backend(before)
