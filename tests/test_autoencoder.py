"""The KL autoencoder: hand gradients against central differences, the categorical decoder, the KL, its file."""

from __future__ import annotations

import numpy as np
import pytest

from npdiff import checkpoint
from npdiff.checkpoint import load_autoencoder, save_autoencoder
from npdiff.gaussian import kl_normal_diag, log_normal_diag
from npdiff.nn.autoencoder import Autoencoder, AutoencoderConfig, kl_to_standard_normal, log_softmax
from npdiff.nn.autoencoder_train import latent_scale_factor, train_autoencoder

K, D = 5, 6  # a small image: 6 pixels on 5 levels
CFG = AutoencoderConfig(dim=D, K=K, latent_dim=3, width=7, depth=2, beta=0.3)


def _images(n: int, seed: int = 0) -> np.ndarray:
    return 2.0 * np.random.default_rng(seed).integers(0, K, (n, D)) / (K - 1) - 1.0


def _ae(seed: int = 0, cfg: AutoencoderConfig = CFG) -> Autoencoder:
    return Autoencoder(cfg, rng=seed)


@pytest.mark.parametrize("activation", ["gelu", "silu"])
def test_loss_gradient_matches_central_differences(activation):
    cfg = AutoencoderConfig(dim=D, K=K, latent_dim=3, width=7, depth=2, beta=0.3, activation=activation)
    ae, rng = _ae(1, cfg), np.random.default_rng(2)
    x, eps = _images(4), rng.standard_normal((4, 3))
    _, grad = ae.loss_and_grad(x, eps)

    def loss(theta):
        return Autoencoder(cfg, theta).loss_and_grad(x, eps)[0]["loss"]

    h = 1e-6
    for _ in range(3):  # directional derivatives over all weights at once
        v = rng.standard_normal(cfg.n_params)
        fd = (loss(ae.params + h * v) - loss(ae.params - h * v)) / (2 * h)
        assert grad @ v == pytest.approx(fd, rel=1e-6, abs=1e-8)
    # and one weight of each block, so a block whose gradient is zero or swapped cannot hide in a sum
    enc, dec = cfg.layers(np.arange(cfg.n_params, dtype=np.float64))
    for W, b in enc + dec:
        for i in (int(W.flat[0]), int(b[-1])):
            e = np.zeros(cfg.n_params)
            e[i] = 1.0
            fd = (loss(ae.params + h * e) - loss(ae.params - h * e)) / (2 * h)
            assert grad[i] == pytest.approx(fd, rel=1e-5, abs=1e-8)


def test_loss_terms_are_the_code_length_and_the_closed_form_kl():
    ae, rng = _ae(3), np.random.default_rng(4)
    x, eps = _images(5), rng.standard_normal((5, 3))
    figures, _ = ae.loss_and_grad(x, eps)
    mu, log_var = ae.encode(x)
    z = mu + np.exp(0.5 * log_var) * eps
    assert figures["reconstruction"] == pytest.approx(-ae.log_prob(x, z).mean(), rel=1e-12)
    assert figures["kl"] == pytest.approx(kl_normal_diag(mu, log_var, 0.0, 0.0).sum(axis=1).mean(), rel=1e-12)
    assert figures["loss"] == pytest.approx(figures["reconstruction"] + 0.3 * figures["kl"], rel=1e-12)


def test_kl_against_monte_carlo():
    rng = np.random.default_rng(5)
    mu, log_var = np.array([[0.7, -0.3]]), np.array([[-0.5, 0.4]])
    z = mu + np.exp(0.5 * log_var) * rng.standard_normal((200_000, 2))  # (S, 2) draws of q
    mc = np.mean(log_normal_diag(z, mu, log_var) - log_normal_diag(z, 0.0, 0.0))
    assert kl_to_standard_normal(mu, log_var)[0] == pytest.approx(mc, abs=4e-3)


def test_categorical_decoder_sums_to_one_and_decodes():
    ae, rng = _ae(6), np.random.default_rng(7)
    z = 3.0 * rng.standard_normal((4, 3))
    logp = ae.decoder_log_probs(z)
    assert logp.shape == (4, D, K)
    np.testing.assert_allclose(np.exp(logp).sum(axis=2), 1.0, rtol=1e-12)
    np.testing.assert_allclose(log_softmax(np.array([[1000.0, 0.0]])), [[0.0, -1000.0]])  # no overflow
    x = ae.decode(z)  # the most probable level of each pixel
    np.testing.assert_array_equal((x + 1.0) * (K - 1) / 2.0, logp.argmax(axis=2))
    assert ae.log_prob(x, z) == pytest.approx(logp.max(axis=2).sum(axis=1), rel=1e-12)
    # draws: each level's frequency is its probability
    zz = np.repeat(z[:1], 20_000, axis=0)
    levels = np.round((ae.decode(zz, rng) + 1.0) * (K - 1) / 2.0).astype(int)  # (S, D)
    freq = np.stack([(levels == k).mean(axis=0) for k in range(K)], axis=1)  # (D, K)
    np.testing.assert_allclose(freq, np.exp(logp[0]), atol=0.015)


def test_config_round_trip_and_bad_configs():
    assert AutoencoderConfig.from_dict(CFG.to_dict()) == CFG
    for bad in (dict(latent_dim=1), dict(latent_dim=33), dict(beta=0.0), dict(beta=-1.0), dict(scale_factor=0.0),
                dict(activation="relu"), dict(K=1), dict(depth=0)):
        with pytest.raises(ValueError, match=next(iter(bad))):
            AutoencoderConfig(**bad)
    with pytest.raises(ValueError, match="unknown"):
        AutoencoderConfig.from_dict({**CFG.to_dict(), "extra": 1})


def test_bad_inputs_name_the_argument():
    ae = _ae()
    x = _images(3)
    with pytest.raises(ValueError, match="levels"):
        ae.encode(x + 0.1)  # between the levels
    with pytest.raises(ValueError, match="x must have 6 columns"):
        ae.encode(x[:, :5])
    with pytest.raises(ValueError, match="x must be a 2-D"):
        ae.encode(x[0])
    with pytest.raises(ValueError, match="z must have 3 columns"):
        ae.decode(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="eps"):
        ae.loss_and_grad(x, np.zeros((2, 3)))
    with pytest.raises(ValueError, match="z must have one latent per image"):
        ae.log_prob(x, np.zeros((2, 3)))
    with pytest.raises(ValueError, match="params"):
        Autoencoder(CFG, np.zeros(CFG.n_params + 1))
    with pytest.raises(TypeError, match="config"):
        Autoencoder(CFG.to_dict(), rng=0)


def test_training_lowers_the_loss_and_sets_the_scale_factor():
    x = _images(64, seed=8)
    ae, hist = train_autoencoder(CFG, x, rng=0, steps=60, batch_size=32, lr=3e-3, ema_decay=0.9)
    assert hist["loss"].shape == (60,)
    assert hist["loss"][-10:].mean() < hist["loss"][:10].mean()
    mu, _ = ae.encode(x)
    assert ae.config.scale_factor == pytest.approx(1.0 / mu.std(), rel=1e-12)
    assert latent_scale_factor(ae, x) == pytest.approx(ae.config.scale_factor, rel=1e-12)
    again, _ = train_autoencoder(CFG, x, rng=0, steps=60, batch_size=32, lr=3e-3, ema_decay=0.9)
    np.testing.assert_array_equal(again.params, ae.params)  # one Generator: the same run
    with pytest.raises(ValueError, match="data"):
        train_autoencoder(CFG, x + 0.01, rng=0, steps=2)


def test_file_round_trip_and_foreign_files(tmp_path):
    ae = _ae(9).with_scale_factor(1.75)
    path = save_autoencoder(tmp_path / "ae.npz", ae)
    back = load_autoencoder(path)
    assert back.config == ae.config and back.config.scale_factor == 1.75
    np.testing.assert_array_equal(back.params, ae.params)
    with pytest.raises(ValueError, match="not an autoencoder"):
        load_autoencoder(checkpoint.save(tmp_path / "den.npz", _denoiser()))
    with pytest.raises(ValueError, match=r"no 'npdiff-checkpoint' marker"):
        checkpoint.load(path)  # nor does the denoiser's loader take an autoencoder
    (tmp_path / "bad.npz").write_bytes(path.read_bytes()[:200])
    with pytest.raises(ValueError, match=r"bad\.npz"):
        load_autoencoder(tmp_path / "bad.npz")


def _denoiser():
    from npdiff.nn import MLPConfig
    from npdiff.nn.model import DiffusionMLP
    from npdiff.schedule import vp_linear

    return DiffusionMLP(MLPConfig(dim=3, width=8, depth=1, emb_dim=8), vp_linear(), rng=0)
