r"""Sample quality on the 8x8 digits: a fixed digit classifier, and the Fréchet distance in its features.

The FID of Heusel et al. 2017 compares generated and real images through the features of a fixed
classifier (Inception-v3's pooled activations). For the 8x8 digits (:func:`npdiff.data.images.digits`)
the classifier is small and fitted here, once, by a documented recipe, so that every figure of npdiff
is in the same features:

- scikit-learn's ``MLPClassifier(hidden_layer_sizes=(64,), random_state=0, max_iter=1000)`` (Adam, L2
  penalty 1e-4, ReLU; it stops by its tolerance after about 260 epochs), fitted to the 1,437 training
  digits of the documented split, on the levels :math:`2v/16 - 1` in [-1, 1];
- the **features** of an image are the classifier's hidden layer, the 64 ReLU activations
  :math:`h = \max(0, x W_1 + b_1)` (:func:`digit_features`); its label is
  :math:`\arg\max_c (h W_2 + b_2)_c` (:func:`classify_digits`);
- :func:`digit_frechet` is :func:`npdiff.metrics.frechet_distance` between the features of samples and
  those of the 360 test digits, with its **floor**: the same distance from the first 1,000 training digits
  (real images, as many as the samples a benchmark draws) to the test digits. A finite-sample Fréchet
  distance is biased upwards, so a model is read against the floor, not against zero.

Samples are compared as images: by default they are clipped to [-1, 1] and rounded to the nearest of the
17 levels first (:func:`nearest_levels`), as the test digits are stored.

The fit depends on scikit-learn's version (and, in the last digits, on the BLAS); the benchmarks record
the version beside their figures. scikit-learn is the optional extra ``pip install "npdiff[images]"``; it is
imported when the classifier is first needed, never when npdiff is imported.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from ._check import as_batch, positive_int
from .data.images import DIGITS_K, digits
from .metrics import frechet_distance

__all__ = ["DIGIT_FEATURES", "FLOOR_IMAGES", "DigitClassifier", "classify_digits", "digit_classifier",
           "digit_features", "digit_frechet", "nearest_levels"]

DIGIT_FEATURES = 64  # hidden units of the classifier, the dimension of the features
FLOOR_IMAGES = 1000  # training digits scored against the test digits for the floor

_EXTRA_HINT = 'the digit classifier needs scikit-learn: pip install "npdiff[images]" (or pip install scikit-learn)'


class DigitClassifier:
    r"""The fitted classifier's two layers as NumPy arrays, and the scikit-learn estimator they came from.

    Attributes
    ----------
    W1 : (64, 64) array
        Input-to-hidden weights.
    b1 : (64,) array
        Hidden biases.
    W2 : (64, 10) array
        Hidden-to-output weights.
    b2 : (10,) array
        Output biases.
    estimator : sklearn.neural_network.MLPClassifier
        The fitted estimator (``predict`` agrees with :meth:`predict`).
    sklearn_version : str
        The scikit-learn that fitted it.
    """

    def __init__(self, estimator: object, sklearn_version: str) -> None:
        self.estimator = estimator
        self.sklearn_version = sklearn_version
        self.W1, self.W2 = (np.array(w, dtype=np.float64) for w in estimator.coefs_)
        self.b1, self.b2 = (np.array(b, dtype=np.float64) for b in estimator.intercepts_)
        for arr in (self.W1, self.b1, self.W2, self.b2):
            arr.setflags(write=False)

    def features(self, x: np.ndarray) -> np.ndarray:
        r"""Hidden-layer activations :math:`\max(0, x W_1 + b_1)` of images x (B, 64) -> (B, 64)."""
        return np.maximum(x @ self.W1 + self.b1, 0.0)

    def predict(self, x: np.ndarray) -> np.ndarray:
        r"""Labels :math:`\arg\max_c (h W_2 + b_2)_c` of images x (B, 64) -> (B,) int64."""
        return np.argmax(self.features(x) @ self.W2 + self.b2, axis=1).astype(np.int64)

    def __repr__(self) -> str:
        return f"DigitClassifier(64 -> {self.W1.shape[1]} ReLU -> {self.W2.shape[1]}, scikit-learn {self.sklearn_version})"


@lru_cache(maxsize=1)
def digit_classifier() -> DigitClassifier:
    r"""The fixed digit classifier, fitted on the first call and cached (about 2 s).

    ``MLPClassifier(hidden_layer_sizes=(64,), random_state=0, max_iter=1000)`` fitted to the 1,437
    training digits (:func:`npdiff.data.images.digits`, levels in [-1, 1]) and their labels.

    Raises
    ------
    ImportError naming the ``images`` extra when scikit-learn is not installed.
    """
    try:
        import sklearn
        from sklearn.neural_network import MLPClassifier
    except ImportError:
        raise ImportError(_EXTRA_HINT) from None
    d = digits()
    estimator = MLPClassifier(hidden_layer_sizes=(DIGIT_FEATURES,), random_state=0, max_iter=1000)
    estimator.fit(d.train, d.train_labels)  # stops by its tolerance (about 260 epochs), well before max_iter
    return DigitClassifier(estimator, sklearn.__version__)


def nearest_levels(x: object, K: int = DIGITS_K) -> np.ndarray:
    r"""Images x clipped to [-1, 1] and rounded to the nearest of the K levels :math:`2v/(K-1) - 1`, same shape."""
    x = as_batch(x, "x")
    K = positive_int(K, "K", minimum=2)
    v = np.round((np.clip(x, -1.0, 1.0) + 1.0) * (K - 1) / 2.0)  # level indices 0..K-1
    return 2.0 * v / (K - 1) - 1.0


def _digit_batch(x: object, quantize: bool) -> np.ndarray:
    x = as_batch(x, "x", dim=DIGIT_FEATURES)
    return nearest_levels(x) if quantize else x


def digit_features(x: object, *, quantize: bool = False) -> np.ndarray:
    r"""The classifier's hidden-layer features :math:`\max(0, x W_1 + b_1)` of 8x8 digits.

    Parameters
    ----------
    x : (B, 64) array
        Images flattened row by row, on (or near) the levels in [-1, 1].
    quantize : bool
        Round x to the 17 levels first (:func:`nearest_levels`); default False.

    Returns
    -------
    (B, 64) array
        The ReLU activations of the 64 hidden units.
    """
    return digit_classifier().features(_digit_batch(x, quantize))


def classify_digits(x: object, *, quantize: bool = True) -> np.ndarray:
    r"""The fixed classifier's labels of 8x8 digits.

    Parameters
    ----------
    x : (B, 64) array
        Images flattened row by row in [-1, 1].
    quantize : bool
        Clip and round x to the 17 levels first, as the training digits are (default True).

    Returns
    -------
    (B,) int64 array
        Predicted digits 0..9.
    """
    return digit_classifier().predict(_digit_batch(x, quantize))


@lru_cache(maxsize=1)
def _test_features_and_floor() -> tuple[np.ndarray, float]:
    d = digits()
    test = digit_features(d.test)  # (360, 64)
    return test, frechet_distance(digit_features(d.train[:FLOOR_IMAGES]), test)


def digit_frechet(samples: object, *, quantize: bool = True) -> tuple[float, float]:
    r"""Fréchet distance of samples to the 360 test digits in the classifier's features, and its floor.

    .. math:: d^2 = \|\mu_s - \mu_t\|^2 + \operatorname{tr}\big(\Sigma_s + \Sigma_t - 2(\Sigma_s\Sigma_t)^{1/2}\big)

    with :math:`(\mu_s, \Sigma_s)` and :math:`(\mu_t, \Sigma_t)` the mean and covariance of the samples'
    and the test digits' :func:`digit_features` (Heusel et al. 2017; :func:`npdiff.metrics.frechet_distance`).

    Parameters
    ----------
    samples : (n, 64) array
        Generated digits, n >= 2; the floor is computed for n = 1,000, so compare at 1,000 samples.
    quantize : bool
        Clip and round the samples to the 17 levels first (default True).

    Returns
    -------
    (distance, floor) : (float, float)
        :math:`d^2` of the samples, and :math:`d^2` of the first 1,000 training digits (the split's own,
        real images) to the same test digits.
    """
    x = _digit_batch(samples, quantize)
    test, floor = _test_features_and_floor()
    return frechet_distance(digit_features(x), test), floor
