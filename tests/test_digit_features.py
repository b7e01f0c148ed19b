"""The fixed digit classifier and the Fréchet distance in its features (the images extra, installed for tests)."""

import subprocess
import sys

import numpy as np
import pytest

from npdiff import digit_features as df
from npdiff.data.images import digits
from npdiff.metrics import frechet_distance

# Measured: 353 of the 360 test digits (98.1 %) with scikit-learn 1.9; the bar leaves room for another
# version's or BLAS's fit, and is still far above what a broken feature map or split would give.
TEST_ACCURACY_BAR = 0.97


@pytest.fixture(scope="module")
def data():
    return digits()


def test_importing_npdiff_does_not_import_scikit_learn():
    code = ("import sys, npdiff, npdiff.digit_features, npdiff.metrics; "
            "assert 'sklearn' not in sys.modules, 'sklearn imported'")
    proc = subprocess.run([sys.executable, "-W", "error", "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_missing_scikit_learn_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)  # what `import sklearn` sees when it is not installed
    with pytest.raises(ImportError, match=r'pip install "npdiff\[images\]"'):
        df.digit_classifier.__wrapped__()  # the uncached fit, so the cached classifier is left alone


def test_classifier_accuracy_on_the_test_split(data):
    acc = np.mean(df.classify_digits(data.test) == data.test_labels)
    assert acc >= TEST_ACCURACY_BAR, f"test accuracy {acc:.4f}"


def test_features_are_the_estimators_hidden_layer(data):
    # softmax(relu(x W1 + b1) W2 + b2) is what scikit-learn's predict_proba computes
    clf = df.digit_classifier()
    h = df.digit_features(data.test[:50])
    assert h.shape == (50, df.DIGIT_FEATURES) and h.min() >= 0.0
    logits = h @ clf.W2 + clf.b2
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(p, clf.estimator.predict_proba(data.test[:50]), rtol=1e-10, atol=1e-12)
    assert np.array_equal(df.classify_digits(data.test), clf.estimator.predict(data.test))
    assert df.digit_classifier() is clf  # fitted once


def test_nearest_levels_rounds_and_clips():
    x = np.array([[-1.3, -1.0, -0.99, 0.06, 0.07, 0.999, 2.0]])
    got = df.nearest_levels(x, K=17)  # levels 2v/16 - 1: spacing 0.125
    np.testing.assert_allclose(got, [[-1.0, -1.0, -1.0, 0.0, 0.125, 1.0, 1.0]], atol=1e-15)


def test_real_digits_sit_at_the_floor_and_corrupted_ones_above_it(data):
    d_train, floor = df.digit_frechet(data.train[: df.FLOOR_IMAGES])
    assert d_train == floor  # the floor is exactly this set's distance
    assert 0.0 < floor < 3.0
    # the floor is the distance of real images; the same images nudged within a level's rounding give it back
    rng = np.random.default_rng(0)
    nudged = data.train[: df.FLOOR_IMAGES] + rng.uniform(-0.06, 0.06, size=(df.FLOOR_IMAGES, 64))
    assert df.digit_frechet(nudged)[0] == pytest.approx(floor, rel=1e-12)
    assert df.digit_frechet(nudged, quantize=False)[0] != floor
    # noisier images are farther from the test digits, and noise alone is far
    dists = [df.digit_frechet(data.train[: df.FLOOR_IMAGES] + s * rng.normal(size=(df.FLOOR_IMAGES, 64)))[0]
             for s in (0.15, 0.3, 0.6)]
    assert floor < dists[0] < dists[1] < dists[2]
    assert df.digit_frechet(rng.uniform(-1, 1, size=(1000, 64)))[0] > 20 * floor


def test_one_digit_class_alone_is_far_from_the_test_set(data):
    # mode collapse: 1,000 copies of the ones is not the test set's distribution
    ones = data.train[data.train_labels == 1]
    collapsed = ones[np.random.default_rng(1).integers(0, ones.shape[0], 1000)]
    d, floor = df.digit_frechet(collapsed)
    assert d > 10 * floor


def test_frechet_in_features_is_the_metric_on_the_features(data):
    # digit_frechet is frechet_distance on the features, against the 360 test digits
    x = data.train[500:900]
    d, _ = df.digit_frechet(x)
    assert d == pytest.approx(frechet_distance(df.digit_features(x), df.digit_features(data.test)), rel=1e-12)


@pytest.mark.parametrize("call, match", [
    (lambda: df.digit_frechet(np.zeros((10, 63))), "x must have 64 columns"),
    (lambda: df.digit_frechet(np.zeros((1, 64))), "at least 2 points"),
    (lambda: df.classify_digits(np.zeros(64)), "x must be a 2-D array"),
    (lambda: df.digit_features(np.full((2, 64), np.nan)), "x must be finite"),
    (lambda: df.nearest_levels(np.zeros((2, 64)), K=1), "K must"),
])
def test_bad_input(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()
