"""The cascade: 4x4 block sums, the super-resolution context, and the two-stage sampler on an exact conditional oracle.

The oracle is a conditional Gaussian, x_0 | c ~ N(up(z), v I) with up(z) the first 4 d entries of the context,
whose noise prediction is closed form; its samples must have that mean and variance, so the plumbing (context,
augmentation level, rows kept with their contexts) is checked against the truth before any network.
"""

import numpy as np
import pytest

from npdiff.analytic import GaussianData
from npdiff.data.lowres import LOWRES_K, SRData, downsample, nearest_upsample, sr_context
from npdiff.edit.cascade import WithContext, cascade_sample, upsample
from npdiff.gaussian import levels_to_data
from npdiff.nn import context_mlp as cm
from npdiff.schedule import vp_linear

VP = vp_linear()


class GaussianSR:
    """x_0 | c ~ N(c[:, :D], v I): eps(x, t, c) = sigma (x - sqrt(ab) m) / (ab v + sigma^2), exactly."""

    def __init__(self, d=4, v=0.04):
        self.dim, self.context_dim, self.v, self.schedule = 4 * d, 4 * d + 1, v, VP

    def _k(self, x, t):
        t = np.broadcast_to(np.asarray(t, dtype=float), (x.shape[0],))
        ab = np.exp(VP.log_alpha_bar(t))[:, None]
        sigma = np.sqrt(1.0 - ab)
        return ab, sigma, sigma / (ab * self.v + sigma**2)

    def eps(self, x, t, y):
        ab, _, k = self._k(x, t)
        return k * (x - np.sqrt(ab) * y[:, : self.dim])

    def eps_and_divergence(self, x, t, y):
        _, _, k = self._k(x, t)
        return self.eps(x, t, y), self.dim * k[:, 0]


def test_block_sums_are_block_means_on_65_levels():
    levels = np.random.default_rng(0).integers(0, 17, (20, 64))  # (N, 64) 8x8 images on 17 levels
    sums = levels.reshape(20, 4, 2, 4, 2).sum(axis=(2, 4)).reshape(20, 16)  # (N, 16) in 0..64
    assert LOWRES_K == 65 and sums.max() <= 64
    np.testing.assert_allclose(downsample(levels_to_data(levels, 17)), levels_to_data(sums, LOWRES_K), atol=1e-15)


def test_nearest_upsample_copies_each_pixel_into_its_block():
    low = np.arange(16.0)[None] / 16  # (1, 16)
    up = nearest_upsample(low).reshape(8, 8)
    assert up[0, 0] == up[1, 1] == low[0, 0] and up[7, 6] == low[0, 15] and up[2, 5] == low[0, 6]
    np.testing.assert_array_equal(downsample(nearest_upsample(low)), low)
    with pytest.raises(ValueError, match="square"):
        downsample(np.zeros((2, 8)))


def test_sr_context_is_the_noised_low_res_up_sampled_then_s():
    low = np.random.default_rng(1).uniform(-1, 1, (3, 16))
    eps = np.random.default_rng(2).standard_normal((3, 16))
    c0 = sr_context(low, 0.0, eps, VP)
    np.testing.assert_allclose(c0, np.hstack([nearest_upsample(low), np.zeros((3, 1))]), atol=1e-15)
    s = np.array([0.1, 0.2, 0.3])
    c = sr_context(low, s, eps, VP)
    ab = np.exp(VP.log_alpha_bar(s))[:, None]
    np.testing.assert_allclose(c[:, :64], nearest_upsample(np.sqrt(ab) * low + np.sqrt(1 - ab) * eps), atol=1e-14)
    np.testing.assert_array_equal(c[:, 64], s)
    with pytest.raises(ValueError, match="eps"):
        sr_context(low, 0.1, eps[:, :4], VP)
    with pytest.raises(ValueError, match="s"):
        sr_context(low, 1.5, eps, VP)


def test_sr_training_pairs():
    images = levels_to_data(np.random.default_rng(3).integers(0, 17, (30, 64)), 17)
    x, c = SRData(images, VP, aug_max=0.0, dequantize=False).sample(10, np.random.default_rng(0))
    np.testing.assert_allclose(c, np.hstack([nearest_upsample(downsample(x)), np.zeros((10, 1))]), atol=1e-15)
    x, c = SRData(images, VP, aug_max=0.3).sample(500, np.random.default_rng(0))
    assert x.shape == (500, 64) and c.shape == (500, 65) and 0.0 <= c[:, 64].min() and c[:, 64].max() <= 0.3
    assert np.abs(x - levels_to_data(np.round((x + 1) * 8), 17)).max() <= 1 / 16 + 1e-12  # within its bin
    with pytest.raises(ValueError, match="aug_max"):
        SRData(images, VP, aug_max=2.0)


def test_with_context_keeps_each_row_with_its_context():
    rng = np.random.default_rng(4)
    model = cm.ContextMLP(cm.ContextMLPConfig(dim=16, context_dim=17, width=8, depth=1, emb_dim=4), VP, rng=0)
    x, c = rng.standard_normal((3, 16)), rng.standard_normal((3, 17))
    bound = WithContext(model, c)
    np.testing.assert_allclose(bound.eps(x, 0.3), model.eps(x, 0.3, c))
    np.testing.assert_allclose(bound.eps_and_divergence(x, 0.3)[1], model.eps_and_divergence(x, 0.3, c)[1])
    np.testing.assert_allclose(bound.eps_vjp(x, 0.3, x)[1], model.eps_vjp(x, 0.3, x, c)[1])
    with pytest.raises(ValueError, match="one row per context"):
        bound.eps(x[:2], 0.3)
    with pytest.raises(TypeError, match="context"):
        WithContext(GaussianData(np.zeros(2), 1.0, VP), c)


@pytest.mark.parametrize("s", [0.0, 0.2])
def test_upsample_draws_the_exact_conditional(s):
    # at level s the oracle's mean is the noised low-res up-sampled: E[x] = sqrt(alpha_bar(s)) up(z), Var = v (+ the
    # augmentation noise's, sigma(s)^2, each block sharing one draw)
    sr, n = GaussianSR(d=4, v=0.04), 4000
    low = np.array([[0.5, -0.5, 0.2, 0.9]])  # (1, 4): one 2x2 image
    x = upsample(sr, np.repeat(low, n, axis=0), np.random.default_rng(5), aug_level=s, steps=100)
    ab = float(np.exp(VP.log_alpha_bar(np.array([s])))[0]) if s else 1.0
    mean, var = np.sqrt(ab) * nearest_upsample(low)[0], 0.04 + (1 - ab)
    np.testing.assert_allclose(x.mean(axis=0), mean, atol=5 * np.sqrt(var / n))
    np.testing.assert_allclose(x.var(axis=0), var, rtol=0.12)


def test_cascade_sample_feeds_the_base_samples_to_the_sr_model():
    base = GaussianData(np.array([0.3, -0.3, 0.0, 0.6]), 0.01, VP)
    res = cascade_sample(base, GaussianSR(d=4, v=0.0025), 2000, np.random.default_rng(6), aug_level=0.0, steps=50)
    assert res.x.shape == (2000, 16) and res.low.shape == (2000, 4) and res.nfe == 100
    assert np.abs(res.low).max() <= 1.0
    # each sample follows its own low-res draw: x - up(low) has the SR's spread only
    assert np.std(res.x - nearest_upsample(res.low)) < 0.07
    np.testing.assert_allclose(res.x.mean(axis=0), nearest_upsample(base.mean[None])[0], atol=0.02)


def test_a_low_res_input_of_the_wrong_size_is_refused():
    sr = GaussianSR(d=4)
    with pytest.raises(ValueError, match="low_res must have 4 pixels"):
        upsample(sr, np.zeros((2, 16)), 0)
    with pytest.raises(ValueError, match="aug_level"):
        upsample(sr, np.zeros((2, 4)), 0, aug_level=-0.1)
    with pytest.raises(ValueError, match="base"):
        cascade_sample(GaussianData(np.zeros(16), 1.0, VP), sr, 2, 0)
    with pytest.raises(TypeError, match="super-resolution model"):
        upsample(GaussianData(np.zeros(16), 1.0, VP), np.zeros((2, 4)), 0)


def test_the_upsample_command_writes_samples_of_the_test_digit(tmp_path):
    pytest.importorskip("sklearn")
    from npdiff import checkpoint, cli

    checkpoint.save(tmp_path / "sr.npz", cm.ContextMLP(cm.ContextMLPConfig(width=8, depth=1, emb_dim=4), VP, rng=0))
    out = tmp_path / "u.npy"
    code = cli.main(["upsample", "--model", str(tmp_path / "sr.npz"), "--image-index", "3", "--out", str(out), "--n", "2",
                     "--steps", "3", "--json"])
    assert code == 0
    x = np.load(out)
    assert x.shape == (2, 64) and np.all(np.isfinite(x))
