"""Training with the batch split over worker threads (TrainConfig.workers, npdiff.nn.parallel)."""

import numpy as np
import pytest

from npdiff.data import toy2d
from npdiff.nn import MLPConfig, threads
from npdiff.nn.model import DiffusionMLP
from npdiff.schedule import vp_linear
from npdiff.train import TrainConfig, Trainer, train

CFG = MLPConfig(width=16, depth=2, emb_dim=8, raw_coords=True, parameterization="v")
KW = dict(steps=30, batch_size=64, lr=3e-3, lr_schedule="cosine", log_snr_fraction=0.5, loss="eps", progress=False)


def test_two_workers_train_the_same_model_up_to_rounding():
    # the same draws (data, t, eps) every step; only the order of the gradient's float32 sums differs
    data = toy2d.load("8gaussians")
    m1, h1 = train(CFG, data, rng=0, workers=1, **KW)
    m2, h2 = train(CFG, data, rng=0, workers=2, **KW)
    np.testing.assert_allclose(h2["loss"], h1["loss"], rtol=1e-4, err_msg="per-step losses, 1 vs 2 workers")
    np.testing.assert_allclose(m2.params, m1.params, rtol=0, atol=1e-4, err_msg="final EMA weights")


def test_a_run_with_workers_is_reproducible_to_the_bit():
    data = toy2d.load("moons")
    runs = [train(CFG, data, rng=3, workers=3, **KW) for _ in range(2)]
    np.testing.assert_array_equal(runs[0][0].params, runs[1][0].params)
    np.testing.assert_array_equal(runs[0][1]["loss"], runs[1][1]["loss"])


def test_workers_none_follows_npdiff_threads_and_is_capped_by_the_batch(monkeypatch):
    model = DiffusionMLP(CFG, vp_linear(), rng=np.random.default_rng(0))
    data = toy2d.load("8gaussians")
    monkeypatch.setattr(threads, "THREADS", 2)
    trainer = Trainer(model, data, TrainConfig(steps=2, batch_size=8), np.random.default_rng(0))
    assert trainer._parallel is not None and trainer._parallel.workers == 2
    monkeypatch.setattr(threads, "THREADS", 1)
    assert Trainer(model, data, TrainConfig(steps=2, batch_size=8), np.random.default_rng(0))._parallel is None
    capped = Trainer(model, data, TrainConfig(steps=2, batch_size=3, workers=8), np.random.default_rng(0))
    assert capped._parallel.workers == 3


@pytest.mark.parametrize("bad", [0, -1, 2.5, "2", True])
def test_bad_workers_raise_a_clear_error(bad):
    with pytest.raises((ValueError, TypeError), match="workers"):
        TrainConfig(workers=bad)


def test_log_t_time_input_needs_t_min_above_zero():
    model = DiffusionMLP(MLPConfig(width=8, depth=1, emb_dim=8, time_input="log_t", time_scale=2.0), vp_linear(),
                         rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="t_min must be > 0 for a model whose time embedding reads log t"):
        Trainer(model, toy2d.load("moons"), TrainConfig(steps=2, batch_size=4, t_min=0.0), np.random.default_rng(0))
