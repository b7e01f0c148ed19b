"""The blocked, fused exact trace (npdiff.nn.fast.trace) against the reference, and its kernels against twins.

The reference is :func:`npdiff.nn.mlp.divergence`: the D unit tangents pushed through the plain
layers of the whole batch at once, with an explicit embedding tangent, itself checked against
central differences in test_nn_mlp.py.
"""

import numpy as np
import pytest

from npdiff.nn import COORDS, MLPConfig, mlp
from npdiff.nn import activations as act
from npdiff.nn import embedding as emb
from npdiff.nn.fast import FastMLP, trace, workers
from npdiff.nn.fast import kernels as K

TOL = {np.float32: dict(rtol=2e-5, atol=2e-6), np.float64: dict(rtol=1e-12, atol=1e-13)}
DTYPES = [np.float32, np.float64]
SMALL = dict(dim=2, width=8, depth=2, emb_dim=8)


def _fast_trace(cfg, theta, x, t):
    return FastMLP(cfg).output_and_trace(cfg.layers(theta), x, t)


@pytest.mark.parametrize("extra", [dict(coords=c) for c in COORDS]
                         + [dict(coords="raw+sinusoidal", dim=3, activation="silu"), dict(depth=0)])
@pytest.mark.parametrize("one_time", [True, False])
def test_blocked_trace_matches_the_reference_over_many_blocks(extra, one_time, monkeypatch):
    # 6 rows a block: with B = 23 and D = 2 that is 11 full blocks of 2 points and a last one of 1
    monkeypatch.setattr(trace, "BLOCK_ROWS", 6)
    cfg = MLPConfig(**{**SMALL, **extra})
    rng = np.random.default_rng(31)
    theta = cfg.init_params(rng, np.float64) * 2.0  # larger weights: every activation region is visited
    x = rng.standard_normal((23, cfg.dim)) * 1.5
    t = np.full(23, 0.41) if one_time else rng.uniform(0.05, 0.95, 23)
    y, tr = _fast_trace(cfg, theta, x, t)
    y_ref, tr_ref = mlp.divergence(cfg, theta, x, t)
    np.testing.assert_allclose(y, y_ref, rtol=1e-12, atol=1e-13, err_msg=f"output {extra} one_time={one_time}")
    np.testing.assert_allclose(tr, tr_ref, rtol=1e-11, atol=1e-12, err_msg=f"trace {extra} one_time={one_time}")


def test_block_size_does_not_change_the_result(monkeypatch):
    cfg = MLPConfig(**SMALL, coords="raw+sinusoidal")
    rng = np.random.default_rng(32)
    theta = cfg.init_params(rng, np.float64)
    x, t = rng.standard_normal((50, 2)), np.full(50, 0.2)
    results = []
    for rows in (3, 30, 151, 10_000):  # one point a block, a partial last block, one block for all
        monkeypatch.setattr(trace, "BLOCK_ROWS", rows)
        results.append(_fast_trace(cfg, theta, x, t))
    for rows, (y, tr) in zip((30, 151, 10_000), results[1:]):
        np.testing.assert_allclose(y, results[0][0], rtol=1e-13, atol=1e-14, err_msg=f"output, {rows} rows a block")
        np.testing.assert_allclose(tr, results[0][1], rtol=1e-12, atol=1e-13, err_msg=f"trace, {rows} rows a block")


def test_float32_trace_agrees_with_float64():
    cfg = MLPConfig(**SMALL, coords="raw+sinusoidal")
    rng = np.random.default_rng(33)
    theta = cfg.init_params(rng, np.float64)
    x, t = rng.standard_normal((40, 2)), np.full(40, 0.6)
    y64, tr64 = _fast_trace(cfg, theta, x, t)
    y32, tr32 = _fast_trace(cfg, theta.astype(np.float32), x, t)
    assert y32.dtype == tr32.dtype == np.float32
    np.testing.assert_allclose(y32, y64, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(tr32, tr64, rtol=1e-4, atol=1e-4)


def test_rotated_weights_turn_the_embedding_into_its_tangent():
    # d emb(x_d)/dx_d W = emb(x_d) W_rot: the identity that spares the embedding tangent
    rng = np.random.default_rng(34)
    emb_dim, H, c = 10, 7, 8.0
    x = rng.standard_normal((9, 1)) * 2.0
    W = rng.standard_normal((emb_dim, H))
    e = emb.embed(x, np.zeros(9), emb_dim=emb_dim, time_scale=1.0, coord_scale=c, raw=False, coord=True)[:, :emb_dim]
    tangent = emb.embed_tangent(x, emb_dim=emb_dim, coord_scale=c)[0]  # (9, emb_dim)
    rotated = trace.rotated_weights(W, c * emb.frequencies(emb_dim))
    np.testing.assert_allclose(e @ rotated, tangent @ W, rtol=1e-12, atol=1e-12)


# -- kernels against twins --------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("code", [0, 1])
@pytest.mark.parametrize("first,tan_z", [(True, True), (True, False), (False, True)])
def test_act_tangents_kernel_matches_twin(dtype, code, first, tan_z):
    rng = np.random.default_rng(35)
    z = (rng.standard_normal((4, 5, 11)) * 4.0).astype(dtype)  # a point block and 3 tangents
    z[0, 0, :4] = [0.0, 7.0, -7.0, 20.0]  # zero and both sides of the clamps
    b = rng.standard_normal(11).astype(dtype)
    tb = rng.standard_normal((3, 11)).astype(dtype)
    s0 = rng.standard_normal((4, 5, 11)).astype(dtype)  # what a residual block adds to
    s_nb, s_np = s0.copy(), s0.copy()
    K._nb_act_tangents(z, b, tb, first, tan_z, code, s_nb)
    K._np_act_tangents(z, b, tb, first, tan_z, code, s_np)
    np.testing.assert_allclose(s_nb, s_np, **TOL[dtype], err_msg=f"act_tangents code={code} first={first} tan_z={tan_z}")
    # and the twin is the formula: act on the point rows, act' times the tangent rows
    value, deriv = (act.gelu if code == 0 else act.silu)(z[0].astype(np.float64) + b)
    tangent = (z[1:] if tan_z else 0.0) + tb[:, None] if first else z[1:]
    expect = np.concatenate([value[None], deriv[None] * tangent]) + (0.0 if first else s0)
    np.testing.assert_allclose(s_np, expect, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_trace_out_kernel_matches_twin_and_the_matmul(dtype):
    rng = np.random.default_rng(36)
    s = rng.standard_normal((4, 6, 9)).astype(dtype)  # a point block and D = 3 tangents
    W_out = rng.standard_normal((9, 3)).astype(dtype)
    tr_nb, tr_np = np.empty(6, dtype), np.empty(6, dtype)
    K._nb_trace_out(s, np.ascontiguousarray(W_out.T), tr_nb)
    K._np_trace_out(s, np.ascontiguousarray(W_out.T), tr_np)
    full = np.einsum("kbh,hd->kbd", s[1:].astype(np.float64), W_out)  # (D, B, D) every output of every tangent
    np.testing.assert_allclose(tr_np, np.einsum("dbd->b", full), **TOL[dtype])
    np.testing.assert_allclose(tr_nb, tr_np, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_embed_kernel_without_time_columns_matches_twin(dtype):
    rng = np.random.default_rng(37)
    x, t = rng.standard_normal((5, 2)) * 3.0, rng.uniform(0, 1, 5)
    freq = emb.frequencies(8)
    full = emb.embed(x, t, emb_dim=8, time_scale=100.0, coord_scale=8.0, raw=True, coord=True)
    for kernel in (K._nb_embed, K._np_embed):
        out = np.full((5, full.shape[1] - 8), np.nan, dtype)  # no room for the time columns
        kernel(x, t, freq, 100.0, 8.0, True, True, out, np.empty((0, 0, 0), dtype), False, False)
        np.testing.assert_allclose(out, full[:, :-8], **TOL[dtype], err_msg=kernel.__name__)


# -- worker threads ---------------------------------------------------------------------------


def test_two_workers_give_the_bit_identical_result(monkeypatch):
    # the blocks are independent, so sharing them between threads must not change a single bit
    monkeypatch.setattr(trace, "BLOCK_ROWS", 9)
    cfg = MLPConfig(**SMALL, coords="raw+sinusoidal")
    rng = np.random.default_rng(38)
    theta = cfg.init_params(rng, np.float64)
    x, t = rng.standard_normal((101, 2)), np.full(101, 0.3)
    monkeypatch.setattr(workers, "THREADS", 1)
    y1, tr1 = _fast_trace(cfg, theta, x, t)
    for count in (2, 3):
        monkeypatch.setattr(workers, "THREADS", count)
        y, tr = _fast_trace(cfg, theta, x, t)
        np.testing.assert_array_equal(y, y1, err_msg=f"output with {count} workers")
        np.testing.assert_array_equal(tr, tr1, err_msg=f"trace with {count} workers")


def test_workers_keep_the_callers_floating_point_error_state(monkeypatch):
    # NumPy's error state is per thread: an overflow the caller asked to raise must raise from a worker too
    monkeypatch.setattr(trace, "BLOCK_ROWS", 9)
    monkeypatch.setattr(workers, "THREADS", 2)
    cfg = MLPConfig(**SMALL, coords="raw")
    theta = cfg.init_params(np.random.default_rng(39), np.float64) * 1e200  # overflows in the second layer
    x, t = np.ones((40, 2)), np.full(40, 0.3)
    with np.errstate(over="raise", invalid="raise"), pytest.raises(FloatingPointError):
        _fast_trace(cfg, theta, x, t)
    with np.errstate(over="ignore", invalid="ignore"):
        y, _ = _fast_trace(cfg, theta, x, t)
    assert not np.all(np.isfinite(y)), "the overflow should have reached the output"


@pytest.mark.parametrize("bad", ["0", "two", "-1", ""])
def test_a_bad_thread_count_is_a_clear_error(bad, monkeypatch):
    monkeypatch.setattr(workers, "THREADS", None)
    monkeypatch.setenv("NPDIFF_THREADS", bad)
    with pytest.raises(ValueError, match="NPDIFF_THREADS must be a positive integer"):
        workers.threads()
    monkeypatch.setattr(workers, "THREADS", 0)
    with pytest.raises(ValueError, match="THREADS must be a positive int"):
        workers.threads()
