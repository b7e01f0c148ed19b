"""eps, x0, v and score predictions convert into one another and back."""

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from npdiff import parameterization as pz


@pytest.mark.parametrize("source, target", list(itertools.permutations(pz.KINDS, 2)))
@given(ab=st.floats(0.01, 0.99), seed=st.integers(0, 2**16))
def test_conversions_round_trip(source, target, ab, seed):
    rng = np.random.default_rng(seed)
    xt, pred = rng.normal(size=(2, 4, 3))
    alpha_bar = np.full((4, 1), ab)
    there = pz.convert(pred, source, target, xt, alpha_bar)
    back = pz.convert(there, target, source, xt, alpha_bar)
    np.testing.assert_allclose(back, pred, rtol=1e-9, atol=1e-9, err_msg=f"{source}->{target}->{source}, ab={ab}")


@given(ab=st.floats(0.01, 0.99), seed=st.integers(0, 2**16))
def test_conversions_agree_with_the_definitions(ab, seed):
    # build x_t from known x0 and eps, then every kind must be recovered from every other
    rng = np.random.default_rng(seed)
    x0, eps = rng.normal(size=(2, 5, 2))
    a, s = np.sqrt(ab), np.sqrt(1 - ab)
    xt = a * x0 + s * eps
    truth = {"eps": eps, "x0": x0, "v": a * eps - s * x0, "score": -eps / s}
    for source, target in itertools.product(pz.KINDS, repeat=2):
        got = pz.convert(truth[source], source, target, xt, ab)
        np.testing.assert_allclose(got, truth[target], rtol=1e-9, atol=1e-9, err_msg=f"{source}->{target}")


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: pz.convert(np.zeros((2, 2)), "eps", "x1", np.zeros((2, 2)), 0.5), "target must be one of"),
        (lambda: pz.convert(np.zeros((2, 2)), "eps", "x0", np.zeros((2, 2)), 1.0), r"alpha_bar must lie in \(0, 1\)"),
        (lambda: pz.convert(np.zeros((2, 2)), "eps", "x0", np.zeros((3, 2)), 0.5), "same shape"),
        (lambda: pz.convert(np.zeros((2, 2)), "eps", "x0", np.zeros((2, 2)), np.full(3, 0.5)), "does not broadcast"),
        (lambda: pz.to_eps(np.zeros((2, 2)), "x0", np.zeros((2, 2)), np.full((2, 2, 1), 0.5)), "would enlarge"),
    ],
)
def test_bad_input_names_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()
