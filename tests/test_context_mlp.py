"""The context-conditioned MLP: hand gradients, tangents and the exact divergence against central differences.

The context c enters the first layer beside the embedding of x and does not move with x, so every derivative
with respect to x holds c fixed; it is the MLP's own network when the context's rows of W_0 are zero.
"""

import numpy as np
import pytest

from npdiff import checkpoint
from npdiff.nn import MLPConfig
from npdiff.nn import context_mlp as cm
from npdiff.nn import mlp as nnmlp
from npdiff.schedule import vp_linear
from npdiff.train import TrainConfig, Trainer

CFG = cm.ContextMLPConfig(dim=4, context_dim=3, width=8, depth=2, emb_dim=4, parameterization="v",
                          coords="raw+sinusoidal", coord_scale=2.0)
B, H = 5, 1e-6


@pytest.fixture(scope="module")
def setup():
    rng = np.random.default_rng(0)
    p = CFG.init_params(rng, np.float64)
    x, t, c = rng.standard_normal((B, 4)), rng.uniform(0.1, 0.9, B), rng.standard_normal((B, 3))
    return p, x, t, c


def _fd_jacobian(f, x):
    """(B, D_out, D) central-difference Jacobian of a row-wise map f."""
    J = np.zeros((x.shape[0], f(x).shape[1], x.shape[1]))
    for d in range(x.shape[1]):
        e = np.zeros_like(x)
        e[:, d] = H
        J[:, :, d] = (f(x + e) - f(x - e)) / (2 * H)
    return J


def test_gradient_matches_central_differences(setup):
    p, x, t, c = setup
    target, w = np.random.default_rng(1).standard_normal(x.shape), np.linspace(0.5, 2.0, B)
    _, g = cm.loss_and_grad(CFG, p, x, t, target, w, c)
    for i in np.random.default_rng(2).choice(p.size, 25, replace=False):
        e = np.zeros_like(p)
        e[i] = H
        fd = (cm.loss_and_grad(CFG, p + e, x, t, target, w, c)[0] - cm.loss_and_grad(CFG, p - e, x, t, target, w, c)[0]) / (2 * H)
        assert abs(fd - g[i]) < 1e-7 * max(1.0, abs(fd)), f"param {i}: central difference {fd}, hand gradient {g[i]}"


def test_jvp_vjp_and_divergence_against_the_finite_difference_jacobian(setup):
    p, x, t, c = setup
    J = _fd_jacobian(lambda z: cm.forward(CFG, p, z, t, c)[0], x)  # (B, D, D), c held fixed
    v, u = np.random.default_rng(3).standard_normal((2, B, 4))
    np.testing.assert_allclose(cm.jvp(CFG, p, x, t, v, c)[1], np.einsum("bij,bj->bi", J, v), atol=1e-8)
    np.testing.assert_allclose(cm.vjp(CFG, p, x, t, u, c)[1], np.einsum("bi,bij->bj", u, J), atol=1e-8)
    np.testing.assert_allclose(cm.divergence(CFG, p, x, t, c)[1], np.einsum("bii->b", J), atol=1e-8)


def test_the_denoiser_derivatives_are_those_of_its_eps(setup):
    # v-prediction: eps = c_x x + c_p v_hat, so its Jacobian is c_x I + c_p dv/dx; all four methods agree with it
    p, x, t, c = setup
    model = cm.ContextMLP(CFG, vp_linear(), p)
    J = _fd_jacobian(lambda z: model.eps(z, t, c), x)
    eps, div = model.eps_and_divergence(x, t, c)
    np.testing.assert_allclose(eps, model.eps(x, t, c), atol=1e-12)
    np.testing.assert_allclose(div, np.einsum("bii->b", J), atol=1e-7)
    v = np.random.default_rng(4).standard_normal((B, 2, 4))  # two tangents per point
    np.testing.assert_allclose(model.eps_jvp(x, t, v, c)[1], np.einsum("bij,bkj->bki", J, v), atol=1e-7)
    u = np.random.default_rng(5).standard_normal((B, 4))
    np.testing.assert_allclose(model.eps_vjp(x, t, u, c)[1], np.einsum("bi,bij->bj", u, J), atol=1e-7)


def test_the_context_matters_and_zero_context_weights_give_the_plain_mlp(setup):
    p, x, t, c = setup
    out = cm.forward(CFG, p, x, t, c)[0]
    assert np.abs(out - cm.forward(CFG, p, x, t, c + 1.0)[0]).max() > 1e-3, "the context does not reach the output"
    # the same weights with the context's rows of W_0 removed are an MLPConfig network; zeroing those rows here
    q = p.copy()
    W0 = CFG.layers(q)[0][0]
    E = CFG.mlp.input_width
    W0[E:] = 0.0
    mlp_params = np.concatenate([np.concatenate([W[:E].ravel() if k == 0 else W.ravel(), b])
                                 for k, (W, b) in enumerate(CFG.layers(q))])
    mlp_cfg = MLPConfig(**{k: v for k, v in CFG.to_dict().items() if k != "context_dim"})
    np.testing.assert_allclose(cm.forward(CFG, q, x, t, c)[0], nnmlp.forward(mlp_cfg, mlp_params, x, t)[0], atol=1e-12)


@pytest.mark.parametrize("y, kind, words", [
    (None, ValueError, "has no unconditional model"),
    (np.zeros((B, 2)), ValueError, "shape (5, 3)"),
    (np.zeros((B + 1, 3)), ValueError, "shape (5, 3)"),
    (np.zeros((B, 3, 1)), ValueError, "shape (5, 3)"),
    (np.full((B, 3), np.nan), ValueError, "finite"),
    (np.full((B, 3), np.inf), ValueError, "finite"),
    ("abc", TypeError, "y"),
    (np.zeros((B, 3), dtype=complex), TypeError, "y"),
])
def test_a_bad_context_is_refused_by_name(setup, y, kind, words):
    p, x, t, _ = setup
    model = cm.ContextMLP(CFG, vp_linear(), p)
    for call in (lambda: model.eps(x, t, y), lambda: model.eps_and_divergence(x, t, y), lambda: cm.forward(CFG, p, x, t, y)):
        with pytest.raises(kind, match="y") as info:
            call()
        assert words in str(info.value)


def test_one_context_row_serves_the_batch(setup):
    p, x, t, c = setup
    np.testing.assert_allclose(cm.forward(CFG, p, x, t, c[0])[0], cm.forward(CFG, p, x, t, np.tile(c[0], (B, 1)))[0])


def test_config_checks_and_round_trip():
    with pytest.raises(ValueError, match="context_dim"):
        cm.ContextMLPConfig(context_dim=0)
    with pytest.raises(ValueError, match="unknown context-MLP config keys"):
        cm.ContextMLPConfig.from_dict({**CFG.to_dict(), "labels": 3})
    assert cm.ContextMLPConfig.from_dict(CFG.to_dict()) == CFG
    with pytest.raises(TypeError, match="ContextMLPConfig"):
        cm.forward(MLPConfig(), np.zeros(3), np.zeros((1, 2)), 0.5, np.zeros((1, 3)))


def test_checkpoint_round_trip_and_a_training_run(tmp_path, setup):
    _, x, t, c = setup

    def data(n, rng):
        xs = rng.standard_normal((n, 4))
        return xs, xs[:, :3] + 0.1 * rng.standard_normal((n, 3))  # a context that tells about x

    model = cm.ContextMLP(CFG, vp_linear(), rng=0)
    trainer = Trainer(model, data, TrainConfig(steps=6, batch_size=16), 0)
    history = trainer.run()
    assert np.all(np.isfinite(history["loss"])) and history["loss"].shape == (6,)
    trainer.save(tmp_path / "m.npz")
    ck = checkpoint.load(tmp_path / "m.npz")
    assert ck.arch == "context_mlp" and isinstance(ck.model, cm.ContextMLP)
    np.testing.assert_allclose(ck.model.eps(x, t, c), trainer.denoiser().eps(x, t, c), atol=1e-12)
    resumed = Trainer.load(tmp_path / "m.npz", data)
    assert resumed.step == 6
