"""Bad input to the network, its model wrapper and the optimizer: a clear error naming the argument (issue 10).

These are the defects the public-API fuzz suite found in npdiff/nn (each case failed before its fix:
AttributeError, KeyError, NumPy's own messages, a silent NaN or a silently partial update).
"""

import numpy as np
import pytest

from npdiff.denoiser import as_denoiser_batch
from npdiff.nn import MLPConfig
from npdiff.nn.model import DiffusionMLP
from npdiff.nn.optim import AdamW
from npdiff.recipes import recipe
from npdiff.schedule import vp_linear
from npdiff.train import TrainConfig

CFG = MLPConfig(dim=2, width=8, depth=1, emb_dim=8, parameterization="v")


def _model(dtype=np.float64):
    return DiffusionMLP(CFG, vp_linear(), rng=np.random.default_rng(0), dtype=dtype)


@pytest.mark.parametrize("make, match", [
    (lambda: MLPConfig(activation=["gelu"]), "activation must be one of"),
    (lambda: recipe(["2d"]), "recipe must be one of"),
    (lambda: MLPConfig(parameterization=np.array(["eps", "v"])), "parameterization must be one of"),
    (lambda: DiffusionMLP(CFG, vp_linear(), np.full(_model().params.size, np.nan)), "params must be finite"),
    (lambda: DiffusionMLP(CFG, vp_linear(), _model().params, dtype="nope"), "dtype must be"),
    (lambda: DiffusionMLP(CFG, vp_linear(), _model().params, dtype=np.float16), "dtype must be"),
    (lambda: _model(np.float32).eps(np.full((3, 2), 1e30), 0.5), r"x up to \|x\| = 1e\+30 is beyond"),
    (lambda: _model().eps_and_divergence(np.full((3, 2), 1e300), 0.5), r"x up to \|x\| = 1e\+300 is beyond"),
    (lambda: _raw_model(np.float32).eps(np.full((3, 2), 1e30), 0.5), r"overflowed for x up to \|x\| = 1e\+30"),
    (lambda: as_denoiser_batch(None, np.zeros((2, 2))), "denoiser must follow the denoiser protocol"),  # at the door
    (lambda: TrainConfig(lr="a"), "lr must be a real number"),
    (lambda: TrainConfig(lr=np.nan), "lr must be finite"),
    (lambda: TrainConfig(lr_schedule=np.array(["cosine"])), "lr_schedule must be one of"),
    (lambda: TrainConfig(steps=-5), "steps"),
    (lambda: AdamW(np.zeros(3)).update(np.zeros(3), np.ones(2), 1e-3), r"grad must be a float64 array of shape \(3,\)"),
    (lambda: AdamW(np.zeros(3)).update(np.zeros(3), np.ones(4), 1e-3), r"grad must be a float64 array of shape \(3,\)"),
    (lambda: AdamW(np.zeros(3)).update(np.zeros(2), np.ones(3), 1e-3), r"params must be a float64 array of shape \(3,\)"),
    (lambda: AdamW(np.zeros(3)).update(np.zeros(3), np.ones(3), np.nan), "lr must be finite"),
    (lambda: AdamW(np.zeros(3)).update(np.zeros(3), np.ones(3), -1.0), "lr must lie in"),
    (lambda: AdamW(np.zeros(3)).load_state({}, 0), "optimizer state must hold 'adam_m'"),
])
def test_bad_input_is_a_clear_error(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


def _raw_model(dtype=np.float64):
    # raw coordinates only (no embedding range to refuse x first) and weights scaled up, so that
    # x = 1e30 overflows float32 in the first layer
    cfg = MLPConfig(dim=2, width=8, depth=1, emb_dim=8, parameterization="v", coords="raw")
    params = DiffusionMLP(cfg, vp_linear(), rng=np.random.default_rng(0)).params * 1e10
    return DiffusionMLP(cfg, vp_linear(), params, dtype=dtype)


def test_overflow_is_also_a_floating_point_error_for_solvers():
    # The likelihood's divergence detection catches FloatingPointError from a solve that runs away.
    with pytest.raises(FloatingPointError):
        _raw_model(np.float32).eps(np.full((3, 2), 1e30), 0.5)


def test_the_checks_leave_valid_calls_unchanged():
    # The same update with and without going through the checks: AdamW on a quadratic moves towards 0.
    p = np.array([1.0, -2.0, 3.0])
    opt = AdamW(p, clip_norm=0.0, ema_decay=0.0)
    for _ in range(200):
        opt.update(p, 2.0 * p, 0.05)
    assert np.all(np.abs(p) < 0.5), f"AdamW did not descend on |p|^2: {p}"
    assert TrainConfig(lr=1e-3, lr_schedule="cosine", steps=10).learning_rate(5) == pytest.approx(1e-3 * 0.5)
