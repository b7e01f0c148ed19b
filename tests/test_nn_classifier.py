"""The noisy classifier of classifier guidance: its hand-written parameter and input gradients against central
differences in float64, a short training that learns, and guidance with it."""

import numpy as np
import pytest

from npdiff.data import toy2d
from npdiff.guidance import classifier_guided
from npdiff.nn import COORDS, MLPConfig
from npdiff.nn.classifier import NoisyClassifier, train_classifier
from npdiff.schedule import cosine, vp_linear


def _classifier(coords="raw+sinusoidal", activation="gelu", C=3, seed=0, dim=2):
    body = MLPConfig(dim=dim, width=8, depth=2, emb_dim=6, coords=coords, activation=activation, coord_scale=3.0)
    c = NoisyClassifier(body, C, vp_linear(), rng=np.random.default_rng(seed))
    c.params *= 2.0  # larger weights: every activation region is visited
    return c


def _batch(seed, B=6, dim=2, C=3):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((B, dim)) * 1.5, rng.uniform(0.05, 0.95, B), rng.integers(0, C, B)


@pytest.mark.parametrize("activation", ["gelu", "silu"])
def test_cross_entropy_gradient_matches_central_differences(activation):
    c = _classifier(activation=activation)
    x, t, y = _batch(1)
    loss, grad = c.loss_and_grad(x, t, y)
    log_p = c.class_log_prob(x, t)
    np.testing.assert_allclose(loss, -log_p[np.arange(6), y].mean(), rtol=1e-13)
    theta, h = c.params.copy(), 1e-5
    fd = np.empty_like(theta)
    for i in range(theta.size):
        p_plus, p_minus = theta.copy(), theta.copy()
        p_plus[i] += h
        p_minus[i] -= h
        fd[i] = (c.loss_and_grad(x, t, y, p_plus)[0] - c.loss_and_grad(x, t, y, p_minus)[0]) / (2 * h)
    scale = np.maximum(np.abs(fd), 1e-3 * np.abs(fd).max())
    assert np.max(np.abs(grad - fd) / scale) < 1e-6


@pytest.mark.parametrize("coords", COORDS)
def test_input_gradient_matches_central_differences_and_probabilities_sum_to_one(coords):
    c = _classifier(coords=coords, dim=3)
    x, t, y = _batch(2, dim=3)
    np.testing.assert_allclose(np.exp(c.class_log_prob(x, t)).sum(axis=1), 1.0, rtol=1e-13)
    grad = c.class_log_prob_grad(x, t, y)
    h = 1e-6
    for d in range(3):
        xp, xm = x.copy(), x.copy()
        xp[:, d] += h
        xm[:, d] -= h
        fd = (c.class_log_prob(xp, t)[np.arange(6), y] - c.class_log_prob(xm, t)[np.arange(6), y]) / (2 * h)
        np.testing.assert_allclose(grad[:, d], fd, rtol=1e-6, atol=1e-8, err_msg=f"{coords}, coordinate {d}")
    # one label for the batch is that label at every point
    np.testing.assert_allclose(c.class_log_prob_grad(x, t, 1), c.class_log_prob_grad(x, t, np.ones(6, int)), rtol=1e-14)


def test_a_short_training_learns_the_labels_of_noisy_points():
    data = toy2d.load("circles")  # two rings: the label is readable at small t, not at t = 1
    body = MLPConfig(dim=2, width=16, depth=1, emb_dim=8, coords="raw", time_scale=1.0)
    c = NoisyClassifier(body, 2, vp_linear(), rng=np.random.default_rng(3))
    losses = train_classifier(c, data, np.random.default_rng(4), steps=400, batch_size=128, lr=2e-2)
    # the floor: the Bayes classifier's cross-entropy on the same kind of noisy batches (t uniform)
    oracle, rng = data.oracle(), np.random.default_rng(6)
    x0, y0 = data.sample_labelled(20000, rng)
    t = rng.uniform(1e-3, 1.0, 20000)
    ab = vp_linear().alpha_bar(t)[:, None]
    xt = np.sqrt(ab) * x0 + np.sqrt(1 - ab) * rng.standard_normal(x0.shape)
    floor = -oracle.class_log_prob(xt, t)[np.arange(20000), y0].mean()
    assert losses.shape == (400,) and losses[:20].mean() > floor + 0.05, (losses[:20].mean(), floor)
    assert losses[-100:].mean() < floor + 0.03, (losses[-100:].mean(), floor)
    x, y = data.sample_labelled(1000, np.random.default_rng(5))
    acc = np.mean(c.class_log_prob(x, 0.05).argmax(1) == y)
    best = np.mean(oracle.class_log_prob(x, 0.05).argmax(1) == y)  # the Bayes classifier at that noise level
    assert acc > best - 0.05, (acc, best)


def test_guidance_by_the_classifier_samples_but_has_no_exact_divergence():
    data = toy2d.load("8gaussians")
    c = _classifier(C=8)
    g = classifier_guided(data.oracle(), c, 3, 2.0)
    x = _batch(6)[0]
    eps = g.eps(x, 0.4)
    expected = data.oracle().eps(x, 0.4) - 2.0 * vp_linear().sigma(0.4) * c.class_log_prob_grad(x, 0.4, 3)
    np.testing.assert_allclose(eps, expected, rtol=1e-13)
    with pytest.raises(TypeError, match="needs the classifier's Laplacian"):
        g.eps_and_divergence(x, 0.4)
    with pytest.raises(ValueError, match="schedule"):
        classifier_guided(toy2d.load("8gaussians").oracle(cosine()), c, 0, 1.0)


def test_bad_classifier_arguments_raise_clear_errors():
    c = _classifier()
    x, t, _ = _batch(7)
    with pytest.raises(ValueError, match=r"y must be integers in 0\.\.2"):
        c.class_log_prob_grad(x, t, 3)
    with pytest.raises(ValueError, match="y must be the labels"):
        c.loss_and_grad(x, t, None)
    with pytest.raises(ValueError, match="x must have 2 columns"):
        c.class_log_prob(np.zeros((3, 3)), 0.5)
    with pytest.raises(ValueError, match="num_classes must be an integer >= 2"):
        NoisyClassifier(c.body, 1, vp_linear(), rng=np.random.default_rng(0))
    with pytest.raises(TypeError, match="body must be an MLPConfig without labels"):
        NoisyClassifier(MLPConfig(num_classes=3), 3, vp_linear(), rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="params must be a finite vector"):
        NoisyClassifier(c.body, 3, vp_linear(), np.zeros(5))
    with pytest.raises(TypeError, match="data must have sample_labelled"):
        train_classifier(c, np.zeros((4, 2)), np.random.default_rng(0), steps=1)
    rebuilt = NoisyClassifier.from_config_dict(c.config_dict(), c.params)
    np.testing.assert_array_equal(rebuilt.class_log_prob(x, t), c.class_log_prob(x, t))
