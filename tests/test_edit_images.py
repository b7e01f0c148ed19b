"""Editing on images: the named masks, the coarse inputs of image to image, and DDIM's form of replacement."""

from __future__ import annotations

import numpy as np
import pytest

from npdiff.analytic import GaussianData
from npdiff.edit import replacement_sample
from npdiff.edit.coarse import BLUR_SIGMA, COARSE_KINDS, coarse_digits, gaussian_kernel
from npdiff.edit.mask import IMAGE_MASKS, as_image_mask, image_mask
from npdiff.reverse import chain_for
from npdiff.sample import ddim_sample

# -- named masks --------------------------------------------------------------------------------------


def test_named_masks_hide_the_region_their_name_says():
    grid = {name: image_mask(name, np.random.default_rng(0)).reshape(8, 8) for name in IMAGE_MASKS}
    assert not grid["left"][:, :4].any() and grid["left"][:, 4:].all()
    assert grid["bottom"][:4].all() and not grid["bottom"][4:].any()
    centre = np.ones((8, 8), dtype=bool)
    centre[2:6, 2:6] = False
    np.testing.assert_array_equal(grid["centre"], centre)
    assert grid["random"].sum() == 32
    for name, m in grid.items():  # half the pixels known, except the centre square's 48 of 64
        assert m.sum() == (48 if name == "centre" else 32), name


def test_random_masks_differ_by_row_and_repeat_by_seed():
    a = image_mask("random", np.random.default_rng(3), n=5)
    b = image_mask("random", np.random.default_rng(3), n=5)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (5, 64) and (a.sum(axis=1) == 32).all()
    assert len({row.tobytes() for row in a}) == 5


def test_image_masks_refuse_bad_names_shapes_and_trivial_masks():
    with pytest.raises(ValueError, match="mask must be one of"):
        image_mask("right")
    with pytest.raises(TypeError, match="rng"):
        image_mask("random")
    with pytest.raises(ValueError, match="even"):
        image_mask("left", shape=(7, 8))
    with pytest.raises(ValueError, match=r"mask must be \(8, 8\), \(64,\)"):
        as_image_mask(np.ones((4, 4), dtype=bool))
    with pytest.raises(ValueError, match="every coordinate known"):
        as_image_mask(np.ones((8, 8), dtype=bool))
    with pytest.raises(ValueError, match="no coordinate known"):
        as_image_mask(np.zeros(64))
    np.testing.assert_array_equal(as_image_mask("bottom"), image_mask("bottom"))
    np.testing.assert_array_equal(as_image_mask(image_mask("left").reshape(8, 8)), image_mask("left"))


# -- coarse inputs ------------------------------------------------------------------------------------


def _digit_like(seed=0, n=4):
    # random images on the 17 levels, with paper (-1) borders as the digits have
    rng = np.random.default_rng(seed)
    x = 2.0 * rng.integers(0, 17, (n, 8, 8)) / 16 - 1.0
    x[:, :, 0] = x[:, :, -1] = -1.0
    return x.reshape(n, 64)


def test_blur_is_the_separable_gaussian_with_paper_beyond_the_border():
    x = _digit_like()
    k = gaussian_kernel(BLUR_SIGMA, 2)
    full = np.outer(k, k)  # (5, 5) the 2-D kernel
    pad = np.pad(x.reshape(-1, 8, 8), ((0, 0), (2, 2), (2, 2)), constant_values=-1.0)
    direct = np.array([[[np.sum(full * p[i:i + 5, j:j + 5]) for j in range(8)] for i in range(8)] for p in pad])
    np.testing.assert_allclose(coarse_digits(x, "blur"), direct.reshape(-1, 64), atol=1e-12)
    np.testing.assert_allclose(coarse_digits(-np.ones((1, 64)), "blur"), -1.0, atol=1e-12)  # blank paper stays blank


def test_block_average_keeps_each_blocks_mean_and_is_flat_within_blocks():
    x = _digit_like(1)
    b = coarse_digits(x, "block").reshape(-1, 4, 2, 4, 2)
    np.testing.assert_allclose(b.mean(axis=(2, 4)), x.reshape(-1, 4, 2, 4, 2).mean(axis=(2, 4)), atol=1e-12)
    np.testing.assert_allclose(b.max(axis=(2, 4)), b.min(axis=(2, 4)), atol=0)
    np.testing.assert_allclose(coarse_digits(coarse_digits(x, "block"), "block"), coarse_digits(x, "block"))


def test_strokes_are_binary_keep_strong_ink_and_grow_only_into_faint_ink():
    x = _digit_like(2)
    s = coarse_digits(x, "strokes")
    assert set(np.unique(s)) <= {-1.0, 1.0}
    assert (s[x > 0] == 1.0).all()  # ink above half is always a stroke
    assert (s[x <= -0.5] == -1.0).all()  # almost blank paper never is
    img = -np.ones((1, 8, 8))
    img[0, 3, 3] = 1.0  # one strong pixel, a faint neighbour by a side and one by a corner
    img[0, 3, 4] = img[0, 4, 4] = -0.25
    s = coarse_digits(img.reshape(1, 64), "strokes").reshape(8, 8)
    assert s[3, 3] == 1.0 and s[3, 4] == 1.0 and s[4, 4] == -1.0


def test_coarse_refuses_bad_input():
    with pytest.raises(ValueError, match="kind must be one of"):
        coarse_digits(_digit_like(), "sketch")
    with pytest.raises(ValueError, match=r"in \[-1, 1\]"):
        coarse_digits(2.0 * np.ones((1, 64)), "blur")
    with pytest.raises(ValueError, match="x"):
        coarse_digits(np.zeros((2, 63)), "blur")
    assert set(COARSE_KINDS) == {"blur", "block", "strokes"}


# -- replacement on DDIM's step -----------------------------------------------------------------------


def test_ddim_replacement_on_independent_coordinates_is_ddim_on_the_unknown_one():
    # with a diagonal covariance the known coordinate never moves the unknown one's prediction, so the unknown
    # coordinate follows DDIM from the same start exactly, whatever noise the known one draws
    data = GaussianData(np.array([0.5, -1.0]), np.array([0.3, 2.0]))
    x_T = np.random.default_rng(0).standard_normal((50, 2))
    res = replacement_sample(data, [1.5, 0.0], [True, False], None, np.random.default_rng(1), steps=20, sampler="ddim",
                             x_T=x_T)
    plain = ddim_sample(data, None, np.random.default_rng(2), steps=20, x_T=x_T)
    np.testing.assert_allclose(res.x[:, 1], plain.x[:, 1], rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(res.x[:, 0], 1.5)
    assert res.nfe == 20


def ddim_replacement_mean(data: GaussianData, steps: int, known: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The mean (D,) of DDIM replacement's output on Gaussian data, by its linear recursion step by step.

    x0_hat = A x + b (Gaussian conditioning); DDIM's step is c_x x + c_0 x0_hat with
    c_x = sqrt(1 - ab_prev) / sqrt(1 - ab) and c_0 = sqrt(ab_prev) - c_x sqrt(ab); the known part has mean
    sqrt(ab_prev) y.
    """
    chain = chain_for(data.schedule, 1000, steps)
    P, K = np.diag(~mask * 1.0), np.diag(mask * 1.0)
    u = np.zeros(data.dim)  # E[x_K] = 0
    for i in range(chain.T, 0, -1):
        ab, ab_prev = chain.alpha_bar[i], chain.alpha_bar[i - 1]
        sigma_t = ab * data.cov + (1 - ab) * np.eye(data.dim)
        A = np.sqrt(ab) * data.cov @ np.linalg.inv(sigma_t)
        b = data.mean - np.sqrt(ab) * A @ data.mean
        c_x = np.sqrt(1 - ab_prev) / np.sqrt(1 - ab)
        c_0 = np.sqrt(ab_prev) - c_x * np.sqrt(ab)
        u = P @ ((c_x * np.eye(data.dim) + c_0 * A) @ u + c_0 * b) + K @ (np.sqrt(ab_prev) * known)
    return u


def test_ddim_replacement_has_the_mean_of_its_linear_recursion():
    # correlation 0.9 and x1 = 1 known: the conditional mean of x2 is 0.9; DDIM replacement's mean is its own
    # recursion's (0.45 here, a larger bias than the ancestral form's 0.6: deterministic steps mix less)
    data = GaussianData(np.zeros(2), np.array([[1.0, 0.9], [0.9, 1.0]]))
    known, mask = np.array([1.0, 0.0]), np.array([True, False])
    res = replacement_sample(data, known, mask, 4000, np.random.default_rng(0), steps=100, sampler="ddim")
    u = ddim_replacement_mean(data, 100, known, mask)
    se = res.x[:, 1].std() / np.sqrt(4000)
    assert abs(res.x[:, 1].mean() - u[1]) < 4 * se, (res.x[:, 1].mean(), u[1], se)
    assert 0.4 < u[1] < 0.5
    with pytest.raises(ValueError, match="sampler"):
        replacement_sample(data, known, mask, 3, 0, steps=3, sampler="ode")
