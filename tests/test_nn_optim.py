"""AdamW + clipping + EMA against a step-by-step reference written from the papers; learning-rate schedules."""

import math

import numpy as np
import pytest

from npdiff.nn.optim import AdamW
from npdiff.train import TrainConfig


def _reference_adamw(theta, grads, lrs, *, beta1, beta2, eps, wd, clip, ema_decay, warmup):
    # Loshchilov & Hutter 2019, Alg. 2 (decoupled decay) + Kingma & Ba 2015, Alg. 1 (bias correction),
    # global-norm clipping with torch's 1e-6, EMA with TF's num_updates warm-up; element by element
    theta = [float(v) for v in theta]
    m = [0.0] * len(theta)
    v = [0.0] * len(theta)
    ema = list(theta)
    norms = []
    for s, (g, lr) in enumerate(zip(grads, lrs), start=1):
        norm = math.sqrt(sum(float(gi) ** 2 for gi in g))
        norms.append(norm)
        c = min(1.0, clip / (norm + 1e-6)) if clip > 0 else 1.0
        delta = min(ema_decay, (1 + s) / (10 + s)) if warmup else ema_decay
        for i, gi in enumerate(g):
            gi = float(gi) * c
            m[i] = beta1 * m[i] + (1 - beta1) * gi
            v[i] = beta2 * v[i] + (1 - beta2) * gi * gi
            m_hat = m[i] / (1 - beta1**s)
            v_hat = v[i] / (1 - beta2**s)
            theta[i] = theta[i] - lr * wd * theta[i] - lr * m_hat / (math.sqrt(v_hat) + eps)
            ema[i] = delta * ema[i] + (1 - delta) * theta[i]
    return np.array(theta), np.array(m), np.array(v), np.array(ema), np.array(norms)


@pytest.mark.parametrize("clip,wd,warmup", [(1.0, 0.0, True), (0.0, 0.05, False), (50.0, 0.01, True)])
def test_adamw_clip_ema_follow_the_reference_step_by_step(clip, wd, warmup):
    rng = np.random.default_rng(20)
    n, steps = 13, 6
    theta0 = rng.standard_normal(n)
    grads = [rng.standard_normal(n) * s for s in (5.0, 0.1, 2.0, 1.0, 3.0, 0.5)]
    lrs = [1e-2, 2e-2, 5e-3, 1e-2, 1e-2, 3e-3]
    opt = AdamW(theta0.copy(), betas=(0.9, 0.99), eps=1e-8, weight_decay=wd, clip_norm=clip, ema_decay=0.9,
                ema_warmup=warmup)
    theta = theta0.copy()  # float64 parameters: the kernel runs in float64 and should match to rounding
    norms = [opt.update(theta, g, lr) for g, lr in zip(grads, lrs)]
    ref = _reference_adamw(theta0, grads, lrs, beta1=0.9, beta2=0.99, eps=1e-8, wd=wd, clip=clip, ema_decay=0.9,
                           warmup=warmup)
    msg = f"clip={clip} wd={wd} warmup={warmup}"
    np.testing.assert_allclose(theta, ref[0], rtol=1e-12, atol=1e-14, err_msg="params " + msg)
    np.testing.assert_allclose(opt.m, ref[1], rtol=1e-12, atol=1e-14, err_msg="m " + msg)
    np.testing.assert_allclose(opt.v, ref[2], rtol=1e-12, atol=1e-14, err_msg="v " + msg)
    np.testing.assert_allclose(opt.ema, ref[3], rtol=1e-12, atol=1e-14, err_msg="ema " + msg)
    np.testing.assert_allclose(norms, ref[4], rtol=1e-13, err_msg="gradient norms " + msg)
    assert opt.step == steps


def test_float32_update_matches_float64_to_float32_precision():
    rng = np.random.default_rng(21)
    theta = rng.standard_normal(1000)
    g = rng.standard_normal(1000)
    o64, o32 = AdamW(theta.copy()), AdamW(theta.astype(np.float32))
    t64, t32 = theta.copy(), theta.astype(np.float32)
    for _ in range(3):
        o64.update(t64, g, 1e-3)
        o32.update(t32, g.astype(np.float32), 1e-3)
    np.testing.assert_allclose(t32, t64, rtol=1e-6, atol=1e-6)


def test_learning_rate_schedules():
    # constant; cosine from lr towards 0 at the last step (Loshchilov & Hutter 2017, Eq. 5 without restarts)
    assert TrainConfig(lr=0.1).learning_rate(7) == 0.1
    cfg = TrainConfig(lr=1.0, lr_schedule="cosine", steps=100)
    assert cfg.learning_rate(50) == pytest.approx(0.5)  # halfway: cos(pi/2) = 0
    assert cfg.learning_rate(25) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))
    assert cfg.learning_rate(100) == pytest.approx(0.0, abs=1e-16)
    assert cfg.learning_rate(150) == pytest.approx(0.0, abs=1e-16)  # a resumed run past its end stays at 0
    with pytest.raises(ValueError, match="lr_schedule"):
        TrainConfig(lr=1.0, lr_schedule="step")


def test_bad_optimizer_arguments():
    with pytest.raises(ValueError, match="ema_decay"):
        AdamW(np.zeros(3, np.float32), ema_decay=1.0)
    with pytest.raises(TypeError, match="params"):
        AdamW([0.0, 1.0])
    opt = AdamW(np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="adam_m"):
        opt.load_state({"adam_m": np.zeros(4, np.float32), "adam_v": opt.v, "ema": opt.ema}, 1)


@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-13), (np.float32, 2e-6)])
@pytest.mark.parametrize("clip,wd,warmup", [(1.0, 0.0, True), (0.0, 0.05, False), (50.0, 0.01, True)])
def test_fused_update_equals_the_plain_numpy_reference_update(dtype, rtol, clip, wd, warmup):
    rng = np.random.default_rng(22)
    theta0 = rng.standard_normal(257).astype(dtype)
    kw = dict(betas=(0.9, 0.99), eps=1e-8, weight_decay=wd, clip_norm=clip, ema_decay=0.9, ema_warmup=warmup)
    fused, plain = AdamW(theta0.copy(), **kw), AdamW(theta0.copy(), **kw)
    t_fused, t_plain = theta0.copy(), theta0.copy()
    for k, lr in enumerate([1e-2, 2e-2, 5e-3, 1e-2]):
        g = (rng.standard_normal(257) * (5.0, 0.1, 2.0, 1.0)[k]).astype(dtype)
        n_fused, n_plain = fused.update(t_fused, g, lr), plain.reference_update(t_plain, g, lr)
        assert n_fused == pytest.approx(n_plain, rel=1e-12)
    for a, b, what in ((t_fused, t_plain, "params"), (fused.m, plain.m, "m"), (fused.v, plain.v, "v"),
                       (fused.ema, plain.ema, "ema")):
        assert a.dtype == b.dtype == dtype
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * np.max(np.abs(b)), err_msg=what)  # m: sums near 0
    assert fused.step == plain.step == 4


def test_reference_update_checks_like_update():
    with pytest.raises(ValueError, match=r"grad must be a float64 array of shape \(3,\)"):
        AdamW(np.zeros(3)).reference_update(np.zeros(3), np.ones(2), 1e-3)
