"""The data-parallel gradient (npdiff.nn.parallel) against the one-thread loss and gradient of the MLP."""

import threading

import numpy as np
import pytest

from npdiff.nn import MLP, MLPConfig
from npdiff.nn.parallel import ParallelGrad

SMALL = dict(dim=2, width=8, depth=2, emb_dim=8, raw_coords=True)


def _problem(rng, B, cfg):
    x = rng.standard_normal((B, cfg.dim))
    t = rng.uniform(0.01, 0.99, B)
    target = rng.standard_normal((B, cfg.dim))
    weight = rng.uniform(0.5, 2.0, B)
    return x, t, target, weight


@pytest.mark.parametrize("workers", [1, 2, 3, 7])
@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_split_batch_gives_the_one_thread_loss_and_gradient(workers, dropout):
    # B = 7 over 3 workers: shares of 3, 2, 2 rows, so the weighting by B_i / B is exercised
    cfg = MLPConfig(**SMALL, dropout=dropout)
    rng = np.random.default_rng(40)
    mlp = MLP(cfg)
    theta = mlp.init_params(rng, np.float64) * 2.0
    x, t, target, weight = _problem(rng, 7, cfg)
    keep = mlp.dropout_masks(np.random.default_rng(41), 7, np.float64)
    grad_ref = np.empty_like(theta)
    w = mlp.work(7, np.float64)
    mlp._forward(mlp.layers(theta), x, t, w, keep=keep)
    loss_ref = mlp._loss_and_grad(mlp.layers(theta), mlp.layers(grad_ref), w, target, weight)
    split = ParallelGrad(mlp, 7, workers, np.float64)
    assert [s.stop - s.start for s in split.shares] == [7 // workers + (i < 7 % workers) for i in range(workers)]
    grad = np.full_like(theta, np.nan)  # every entry must be overwritten
    loss = split(mlp.layers(theta), grad, x, t, target, weight, keep)
    np.testing.assert_allclose(loss, loss_ref, rtol=1e-13, err_msg=f"loss, {workers} workers, dropout {dropout}")
    np.testing.assert_allclose(grad, grad_ref, rtol=1e-11, atol=1e-14, err_msg=f"gradient, {workers} workers")


def test_split_batch_is_reproducible_to_the_bit_and_uses_the_worker_threads(monkeypatch):
    cfg = MLPConfig(**SMALL)
    rng = np.random.default_rng(42)
    mlp = MLP(cfg)
    theta = mlp.init_params(rng).astype(np.float32)
    x, t, target, weight = _problem(rng, 64, cfg)
    split = ParallelGrad(mlp, 64, 2, np.float32)
    first, second = np.empty_like(theta), np.empty_like(theta)
    seen = set()
    forward = mlp._forward

    def recording_forward(*args, **kwargs):
        seen.add(threading.get_ident())
        return forward(*args, **kwargs)

    monkeypatch.setattr(mlp, "_forward", recording_forward)
    loss1 = split(mlp.layers(theta), first, x, t, target, weight)
    loss2 = split(mlp.layers(theta), second, x, t, target, weight)
    assert loss1 == loss2
    np.testing.assert_array_equal(first, second)
    assert first.dtype == np.float32
    assert len(seen) == 2 and threading.get_ident() not in seen, "each share should run on its own worker thread"


def test_bad_arguments_raise_clear_errors():
    mlp = MLP(MLPConfig(**SMALL))
    with pytest.raises(ValueError, match="workers must be at most the batch size B = 4, got 5"):
        ParallelGrad(mlp, 4, 5)
    with pytest.raises(ValueError, match="workers must be a positive int, got 0"):
        ParallelGrad(mlp, 4, 0)
    with pytest.raises(ValueError, match="B must be a positive int"):
        ParallelGrad(mlp, 2.5, 1)
    with pytest.raises(TypeError, match="mlp must be an MLP"):
        ParallelGrad("mlp", 4, 2)
