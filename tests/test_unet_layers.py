"""The U-Net's layers: each backward (dW, db, dx) and each tangent against float64 central differences,
and the 3x3 convolution against its definition written as loops."""

import numpy as np
import pytest

from npdiff.nn.unet import attention as attn
from npdiff.nn.unet import conv, norm, norm_act, resample, resblock

H_FD = 1e-6


def _fd(f, a, h=H_FD):
    # d f / d a_i for a scalar f, one entry at a time (the layers here are small)
    g = np.empty_like(a)
    for i in np.ndindex(a.shape):
        old = a[i]
        a[i] = old + h
        fp = f()
        a[i] = old - h
        fm = f()
        a[i] = old
        g[i] = (fp - fm) / (2 * h)
    return g


def _close(mine, ref, what, rtol=1e-6):
    scale = np.abs(ref).max()
    err = np.abs(mine - ref).max() / scale
    assert err < rtol, f"{what}: max error {err:.2e} relative to the largest entry {scale:.3g}"


def _check_layer(rng, forward, backward, tangent, x, params):
    # L = <w, y>: its gradient is backward(w); and d/de y(x + e v) at e = 0 is the tangent
    y = forward()
    w = rng.standard_normal(y.shape)
    grads, dx = backward(w)
    loss = lambda: float(np.sum(w * forward()))  # noqa: E731
    _close(dx, _fd(loss, x), "dx")
    for name, arr in params.items():
        _close(grads[name], _fd(loss, arr), f"d{name}")
    v = rng.standard_normal((3, *x.shape))
    ydot = tangent(v)
    assert ydot.shape == (3, *y.shape)
    for k in range(3):
        x0 = x.copy()
        x[...] = x0 + H_FD * v[k]
        yp = forward()
        x[...] = x0 - H_FD * v[k]
        ym = forward()
        x[...] = x0
        _close(ydot[k], (yp - ym) / (2 * H_FD), f"tangent {k}")


# -- 3x3 convolution -------------------------------------------------------------------------------
def _conv_loops(x, W, b):
    # the definition: y[b, o, i, j] = b[o] + sum_{c, p, q} W[o, c, p, q] x[b, c, i + p - 1, j + q - 1], zero outside
    B, C, H, Wd = x.shape
    y = np.zeros((B, W.shape[0], H, Wd))
    for n in range(B):
        for o in range(W.shape[0]):
            for i in range(H):
                for j in range(Wd):
                    total = b[o]
                    for c in range(C):
                        for p in range(3):
                            for q in range(3):
                                ii, jj = i + p - 1, j + q - 1
                                if 0 <= ii < H and 0 <= jj < Wd:
                                    total += W[o, c, p, q] * x[n, c, ii, jj]
                    y[n, o, i, j] = total
    return y


def test_conv3x3_is_the_convolution_of_its_definition():
    rng = np.random.default_rng(0)
    x, W, b = rng.standard_normal((2, 3, 5, 4)), rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(4)
    y, _ = conv.conv3x3(x, W, b)
    np.testing.assert_allclose(y, _conv_loops(x, W, b), rtol=1e-12, atol=1e-12)


def test_col2im_is_the_transpose_of_im2col():
    # <im2col(x), c> = <x, col2im(c)> for every x and c: the input gradient is the transposed operation
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 4, 5))
    c = rng.standard_normal((27, 2 * 4 * 5))
    np.testing.assert_allclose(np.sum(conv.im2col(x) * c), np.sum(x * conv.col2im(c, x.shape)), rtol=1e-12)


def test_conv3x3_gradients_and_tangent():
    rng = np.random.default_rng(2)
    x, W, b = rng.standard_normal((2, 3, 4, 4)), rng.standard_normal((2, 3, 3, 3)), rng.standard_normal(2)

    def backward(w):
        _, cols = conv.conv3x3(x, W, b)
        dW, db, dx = conv.conv3x3_backward(w, cols, W, x.shape)
        return {"W": dW, "b": db}, dx

    _check_layer(rng, lambda: conv.conv3x3(x, W, b)[0], backward, lambda v: conv.conv3x3_tangent(v, W), x,
                 {"W": W, "b": b})


def test_conv1x1_gradients_and_tangent():
    rng = np.random.default_rng(3)
    x, W, b = rng.standard_normal((2, 3, 2, 3)), rng.standard_normal((4, 3)), rng.standard_normal(4)

    def backward(w):
        dW, db, dx = conv.conv1x1_backward(w, x, W)
        return {"W": dW, "b": db}, dx

    _check_layer(rng, lambda: conv.conv1x1(x, W, b), backward, lambda v: conv.conv1x1_tangent(v, W), x,
                 {"W": W, "b": b})


# -- GroupNorm ---------------------------------------------------------------------------------------
def test_group_norm_normalizes_each_group_of_each_image():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 6, 2, 2)) * 5 + 2
    y, _ = norm.group_norm(x, np.ones(6), np.zeros(6), 3)
    g = y.reshape(3, 3, -1)
    np.testing.assert_allclose(g.mean(-1), 0, atol=1e-12)
    np.testing.assert_allclose(g.var(-1), 1, rtol=1e-5)  # up to the variance floor eps = 1e-5


def test_group_norm_gradients_and_tangent():
    rng = np.random.default_rng(5)
    x, gamma, beta = rng.standard_normal((2, 4, 3, 3)), rng.standard_normal(4), rng.standard_normal(4)

    def backward(w):
        _, cache = norm.group_norm(x, gamma, beta, 2)
        dg, db, dx = norm.group_norm_backward(w, cache, gamma)
        return {"gamma": dg, "beta": db}, dx

    _check_layer(rng, lambda: norm.group_norm(x, gamma, beta, 2)[0], backward,
                 lambda v: norm.group_norm_tangent(v, norm.group_norm(x, gamma, beta, 2)[1], gamma), x,
                 {"gamma": gamma, "beta": beta})


# -- resampling and skips -------------------------------------------------------------------------------
def test_downsample_and_upsample_gradients_and_tangents():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 3, 4, 4))
    _check_layer(rng, lambda: resample.downsample(x), lambda w: ({}, resample.downsample_backward(w)),
                 resample.downsample, x, {})
    _check_layer(rng, lambda: resample.upsample(x), lambda w: ({}, resample.upsample_backward(w)),
                 resample.upsample, x, {})
    np.testing.assert_allclose(resample.downsample(x)[1, 2, 1, 0], x[1, 2, 2:4, 0:2].mean(), rtol=1e-14)
    np.testing.assert_array_equal(resample.upsample(x)[0, 1, 3, 5 % 4], x[0, 1, 1, 0])


def test_concat_backward_splits_the_gradient():
    rng = np.random.default_rng(7)
    a, b = rng.standard_normal((2, 3, 2, 2)), rng.standard_normal((2, 5, 2, 2))
    y = resample.concat(a, b)
    da, db = resample.concat_backward(y, 3)
    np.testing.assert_array_equal(da, a)
    np.testing.assert_array_equal(db, b)


# -- attention -------------------------------------------------------------------------------------------
def _attention_params(rng, C):
    return {"norm.gamma": 1 + 0.3 * rng.standard_normal(C), "norm.beta": 0.3 * rng.standard_normal(C),
            "qkv.W": rng.standard_normal((3 * C, C)), "qkv.b": rng.standard_normal(3 * C),
            "proj.W": rng.standard_normal((C, C)) / np.sqrt(C), "proj.b": rng.standard_normal(C)}


def test_softmax_rows_sum_to_one_and_survive_large_logits():
    P = attn.softmax(np.array([[1000.0, 1000.0, -1000.0], [0.0, np.log(3.0), -np.inf]]))
    np.testing.assert_allclose(P, [[0.5, 0.5, 0.0], [0.25, 0.75, 0.0]], rtol=1e-14, atol=1e-300)


def test_attention_gradients_and_tangent():
    rng = np.random.default_rng(8)
    C, heads = 4, 2
    x, p = rng.standard_normal((2, C, 2, 3)), _attention_params(rng, C)

    def backward(w):
        _, cache = attn.attention(x, p, heads, 2)
        return attn.attention_backward(w, cache, p, heads)

    _check_layer(rng, lambda: attn.attention(x, p, heads, 2)[0], backward,
                 lambda v: attn.attention_tangent(v, attn.attention(x, p, heads, 2)[1], p, heads), x, p)


def test_attention_is_per_image_and_heads_are_independent_attention():
    # the block written with one head at a time and one image at a time, from the module docstring's formulas
    rng = np.random.default_rng(9)
    C, heads, B = 4, 2, 2
    x, p = rng.standard_normal((B, C, 2, 2)), _attention_params(rng, C)
    y, _ = attn.attention(x, p, heads, 2)
    h, _ = norm.group_norm(x, p["norm.gamma"], p["norm.beta"], 2)
    d = C // heads
    for n in range(B):
        tokens = h[n].reshape(C, -1)  # (C, N)
        qkv = p["qkv.W"] @ tokens + p["qkv.b"][:, None]
        a = []
        for m in range(heads):
            q, k, v = (qkv[j * C + m * d: j * C + (m + 1) * d] for j in range(3))
            S = q.T @ k / np.sqrt(d)
            P = np.exp(S) / np.exp(S).sum(axis=1, keepdims=True)
            a.append(v @ P.T)
        ref = x[n].reshape(C, -1) + p["proj.W"] @ np.concatenate(a) + p["proj.b"][:, None]
        np.testing.assert_allclose(y[n].reshape(C, -1), ref, rtol=1e-12, atol=1e-12)


# -- the residual block ------------------------------------------------------------------------------
def _block_params(rng, C, O, T):
    p = {"norm1.gamma": 1 + 0.3 * rng.standard_normal(C), "norm1.beta": 0.3 * rng.standard_normal(C),
         "conv1.W": rng.standard_normal((O, C, 3, 3)) / 3, "conv1.b": rng.standard_normal(O),
         "emb.W": rng.standard_normal((T, 2 * O)), "emb.b": rng.standard_normal(2 * O),
         "norm2.gamma": 1 + 0.3 * rng.standard_normal(O), "norm2.beta": 0.3 * rng.standard_normal(O),
         "conv2.W": rng.standard_normal((O, O, 3, 3)) / 3, "conv2.b": rng.standard_normal(O)}
    if C != O:
        p["skip.W"], p["skip.b"] = rng.standard_normal((O, C)), rng.standard_normal(O)
    return p


@pytest.mark.parametrize("C, O", [(4, 4), (2, 4)])
def test_residual_block_gradients_tangent_and_embedding_gradient(C, O):
    rng = np.random.default_rng(10 + C)
    T = 3
    x, e, p = rng.standard_normal((2, C, 4, 4)), rng.standard_normal((2, T)), _block_params(rng, C, O, T)

    def backward(w):
        g, dx, de = resblock.residual_block_backward(w, resblock.residual_block(x, e, p, 2)[1], p)
        g["e"] = de
        return g, dx

    _check_layer(rng, lambda: resblock.residual_block(x, e, p, 2)[0], backward,
                 lambda v: resblock.residual_block_tangent(v, resblock.residual_block(x, e, p, 2)[1], p), x,
                 {**p, "e": e})


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_silu_like_is_the_activations_silu_in_the_inputs_dtype(dtype):
    # the U-Net's SiLU runs the MLP's fused kernel; it must be npdiff.nn.activations.silu, value and derivative
    from npdiff.nn.activations import silu

    z = (np.random.default_rng(11).standard_normal((2, 3, 4, 4)) * 6).astype(dtype)
    value, grad = norm_act.silu_like(z[:, :, ::2])  # a non-contiguous view, as the network's slices are
    ref_value, ref_grad = silu(z[:, :, ::2])
    assert value.dtype == grad.dtype == dtype and value.shape == z[:, :, ::2].shape
    tol = 1e-12 if dtype == np.float64 else 2e-6
    np.testing.assert_allclose(value, ref_value, rtol=tol, atol=tol)
    np.testing.assert_allclose(grad, ref_grad, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (1, 2, 2, 2), (3, 1, 1, 3)])
def test_im2col_kernels_match_their_numpy_twins(dtype, shape):
    # the compiled copies (run as Python loops under NUMBA_DISABLE_JIT) against conv.im2col / conv.col2im
    from npdiff.nn.unet import kernels

    rng = np.random.default_rng(12)
    x = rng.standard_normal(shape).astype(dtype)
    cols = kernels.im2col_fast(x)
    assert cols.dtype == dtype
    np.testing.assert_array_equal(cols, conv.im2col(x))
    c = rng.standard_normal(cols.shape).astype(dtype)
    tol = 1e-15 if dtype == np.float64 else 1e-6  # the sums of up to 9 terms may add in another order
    np.testing.assert_allclose(kernels.col2im_fast(c, shape), conv.col2im(c, shape), rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_conv_reordering_kernels_match_their_numpy_twins(dtype):
    # to_images (the product's rows plus the bias, as images) and to_rows (the gradient as rows, and its sums)
    from npdiff.nn.unet import kernels

    rng = np.random.default_rng(13)
    B, O, H, W = 3, 4, 2, 5
    Y, b = rng.standard_normal((O, B * H * W)).astype(dtype), rng.standard_normal(O).astype(dtype)
    y = kernels.to_images_fast(Y, b, (B, O, H, W))
    assert y.dtype == dtype and y.flags.c_contiguous
    np.testing.assert_array_equal(y, conv.to_images(Y, b, (B, O, H, W)))
    dY, db = kernels.to_rows_fast(y)
    ref_dY, ref_db = conv.to_rows(y)
    np.testing.assert_array_equal(dY, ref_dY)
    tol = 1e-14 if dtype == np.float64 else 1e-6  # float64 sums against NumPy's pairwise sums in the dtype
    np.testing.assert_allclose(db, ref_db, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("scaled", [False, True])
def test_norm_silu_kernels_match_their_formulas(dtype, scaled):
    # the fused GroupNorm (+ scale and shift) + SiLU, forward, backward and tangent, against the plain formulas
    rng = np.random.default_rng(14)
    B, C, H, W, G, K = 2, 6, 3, 2, 3, 3
    x = (2 + 3 * rng.standard_normal((B, C, H, W))).astype(dtype)
    gamma, beta = (1 + 0.3 * rng.standard_normal(C)).astype(dtype), (0.3 * rng.standard_normal(C)).astype(dtype)
    scale, shift = (rng.standard_normal((2, B, C)).astype(dtype) if scaled else (None, None))
    a_bar, x_dot = rng.standard_normal(x.shape).astype(dtype), rng.standard_normal((K, *x.shape)).astype(dtype)
    tol = 1e-12 if dtype == np.float64 else 2e-5

    def close(mine, ref, what):
        assert mine.dtype == dtype, f"{what}: dtype {mine.dtype}"
        err = np.abs(mine - ref).max() / max(1.0, np.abs(ref).max())
        assert err < tol, f"{what}: kernel and formula differ by {err:.2e}"

    a, da, (x_hat, s) = norm_act.norm_silu_fast(x, gamma, beta, G, scale, shift)
    ref_a, ref_da, (ref_x_hat, ref_s) = norm_act.norm_silu(x, gamma, beta, G, scale, shift)
    for mine, ref, what in [(a, ref_a, "a"), (da, ref_da, "SiLU'"), (x_hat, ref_x_hat, "x_hat"), (s, ref_s, "s")]:
        close(mine, ref, what)
    cache = (ref_x_hat, ref_s)
    mine = norm_act.norm_silu_backward_fast(a_bar, ref_da, cache, gamma, beta, scale)
    ref = norm_act.norm_silu_backward(a_bar, ref_da, cache, gamma, beta, scale)
    for m, r, what in zip(mine, ref, ["dgamma", "dbeta", "dx", "dscale", "dshift"]):
        close(m, r, what)
    close(norm_act.norm_silu_tangent_fast(x_dot, ref_da, cache, gamma, scale),
          norm_act.norm_silu_tangent(x_dot, ref_da, cache, gamma, scale), "tangent")
    if not scaled:  # GroupNorm alone (attention's), by the same kernels without the SiLU
        y, (x_hat, s) = norm_act.group_norm_fast(x, gamma, beta, G)
        ref_y, (ref_x_hat, ref_s) = norm.group_norm(x, gamma, beta, G)
        for mine, ref, what in [(y, ref_y, "GN y"), (x_hat, ref_x_hat, "GN x_hat"), (s, ref_s, "GN s")]:
            close(mine, ref, what)
        for m, r, what in zip(norm_act.group_norm_backward_fast(a_bar, cache, gamma),
                              norm.group_norm_backward(a_bar, cache, gamma), ["GN dgamma", "GN dbeta", "GN dx"]):
            close(m, r, what)


def test_norm_silu_formulas_gradients_and_tangent():
    # the formulas themselves, with the scale and shift, against central differences (x, gamma, beta, scale, shift)
    rng = np.random.default_rng(15)
    B, C = 2, 4
    x = rng.standard_normal((B, C, 2, 3))
    gamma, beta = 1 + 0.3 * rng.standard_normal(C), 0.3 * rng.standard_normal(C)
    scale, shift = 0.5 * rng.standard_normal((B, C)), 0.5 * rng.standard_normal((B, C))

    def backward(w):
        _, da, cache = norm_act.norm_silu(x, gamma, beta, 2, scale, shift)
        dgamma, dbeta, dx, ds, dt = norm_act.norm_silu_backward(w, da, cache, gamma, beta, scale)
        return {"gamma": dgamma, "beta": dbeta, "scale": ds, "shift": dt}, dx

    def tangent(v):
        _, da, cache = norm_act.norm_silu(x, gamma, beta, 2, scale, shift)
        return norm_act.norm_silu_tangent(v, da, cache, gamma, scale)

    _check_layer(rng, lambda: norm_act.norm_silu(x, gamma, beta, 2, scale, shift)[0], backward, tangent, x,
                 {"gamma": gamma, "beta": beta, "scale": scale, "shift": shift})


def test_blocks_of_is_block_params_of_every_block():
    from npdiff.nn.unet.config import UNetConfig, block_params, blocks_of

    cfg = UNetConfig(widths=(4, 8), groups=2, heads=1, time_dim=8, emb_dim=4, attention_resolutions=(4,))
    views = cfg.views(np.arange(cfg.n_params, dtype=float))
    table = blocks_of(views)
    for _, name, *_ in cfg.plan:
        ref = block_params(views, name)
        assert table.get(name, {}).keys() == ref.keys(), name
        assert all(table[name][k] is ref[k] for k in ref), name
