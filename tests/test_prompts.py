"""The prompts the digits carry: the attribute rule on hand-made images, thresholds, tokens, dropout, held-out cells."""

from __future__ import annotations

import numpy as np
import pytest

from npdiff.data import prompts as P


def _image(cells):
    # an 8x8 image in [-1, 1]: the (row, column) cells fully inked, the rest blank
    img = -np.ones((8, 8))
    for r, c in cells:
        img[r, c] = 1.0
    return img.ravel()


VERTICAL = _image([(r, 3) for r in range(8)])  # one column: 8 inked pixels, no slant
THICK = _image([(r, c) for r in range(8) for c in (2, 3, 4)])  # three columns: 24 inked pixels
LEANS_RIGHT = _image([(r, 7 - r) for r in range(8)])  # top at the right: column = 7 - row, slope 1
LEANS_LEFT = _image([(r, r) for r in range(8)])  # column = row
HALF_SHEAR = _image([(r, 3 + (7 - r) // 2) for r in range(8)])  # columns 6,6,5,5,4,4,3,3


def test_ink_mass_and_slant_of_hand_made_images():
    m, s = P.ink_and_slant(np.stack([VERTICAL, THICK, LEANS_RIGHT, LEANS_LEFT, HALF_SHEAR]))
    np.testing.assert_allclose(m, [8.0, 24.0, 8.0, 8.0, 8.0], rtol=0, atol=1e-12)
    # by hand: the half shear has sum (r - 3.5)(c - 4.5) = -20 and sum (r - 3.5)^2 = 42, so s = 20/42
    np.testing.assert_allclose(s, [0.0, 0.0, 1.0, -1.0, 20.0 / 42.0], rtol=0, atol=1e-12)


def test_a_half_inked_pixel_counts_half():
    img = -np.ones(64)
    img[10] = 0.0  # level halfway: half a pixel of ink
    assert P.ink_and_slant(img[None])[0][0] == pytest.approx(0.5, abs=1e-15)


def test_levels_of_hand_made_images_against_the_stored_thresholds():
    # class 7: ink terciles (18.08, 19.94), slant terciles (0.110, 0.167); class 1: slant (-0.067, 0.018)
    x = np.stack([VERTICAL, THICK, LEANS_RIGHT, VERTICAL, LEANS_LEFT, LEANS_RIGHT])
    ink, slant = P.attribute_levels(x, np.array([7, 7, 7, 1, 1, 1]))
    assert ink.tolist() == [0, 2, 0, 0, 0, 0]  # 8 pixels thin, 24 bold
    assert slant.tolist() == [0, 0, 2, 1, 0, 2]  # class 7 leans right on average: upright is its "left"
    assert P.digit_prompts(x[:3], [7, 7, 7]) == ["thin seven slanted left", "bold seven slanted left",
                                                  "thin seven slanted right"]


def test_stored_thresholds_are_the_terciles_of_the_train_split():
    pytest.importorskip("sklearn")
    from npdiff.data.images import digits

    ds = digits()
    ink_t, slant_t = P.fit_thresholds(ds.train, ds.train_labels)
    np.testing.assert_allclose(ink_t, P.DIGIT_VOCABULARY.ink_thresholds, rtol=0, atol=1e-12)
    np.testing.assert_allclose(slant_t, P.DIGIT_VOCABULARY.slant_thresholds, rtol=0, atol=1e-12)
    ink, slant = P.attribute_levels(ds.train, ds.train_labels)
    for k in range(10):  # terciles: each level holds about a third of its class (ties in the ink mass allowed)
        for levels in (ink, slant):
            share = np.bincount(levels[ds.train_labels == k], minlength=3) / np.sum(ds.train_labels == k)
            assert np.all(np.abs(share - 1 / 3) < 0.08), (k, share)
    m, s = P.ink_and_slant(ds.train)
    assert s[slant == 0].mean() < s[slant == 1].mean() < s[slant == 2].mean()
    assert m[ink == 0].mean() < m[ink == 1].mean() < m[ink == 2].mean()
    keep = P.training_mask(ds.train_labels, ink, slant)
    assert 30 <= np.sum(~keep) <= 80  # three cells of about 15 images each


def test_held_out_combinations_are_removed_and_only_they():
    labels, ink, slant = np.meshgrid(np.arange(10), np.arange(3), np.arange(3), indexing="ij")
    labels, ink, slant = labels.ravel(), ink.ravel(), slant.ravel()
    keep = P.training_mask(labels, ink, slant)
    dropped = {(int(k), P.INK_WORDS[i], P.SLANT_WORDS[s]) for k, i, s in zip(labels[~keep], ink[~keep], slant[~keep])}
    assert dropped == set(P.HELD_OUT) and len(P.HELD_OUT) == 3


def test_vocabulary_and_tokens():
    V = P.DIGIT_VOCABULARY
    assert V.words[:2] == ("<pad>", "<start>") and V.size == 2 + 10 + 3 + 4
    ids = P.tokenize(["bold seven slanted right", "Two", ""])
    assert ids.shape == (3, 4)
    assert ids[0].tolist() == [V.words.index(w) for w in ("bold", "seven", "slanted", "right")]
    assert ids[1].tolist() == [V.words.index("two"), 0, 0, 0] and ids[2].tolist() == [0, 0, 0, 0]
    assert P.tokenize("", length=None).shape == (1, 1)
    assert P.prompt_text(7, 2, 2) == "bold seven slanted right" and P.prompt_text(3, None, 1) == "three upright"


@pytest.mark.parametrize(("prompt", "nearest"), [("bold sevn", "seven"), ("thinn two", "thin"), ("<pad>", None)])
def test_a_word_outside_the_vocabulary_names_the_nearest_and_the_vocabulary(prompt, nearest):
    with pytest.raises(ValueError, match="not in the vocabulary") as info:
        P.tokenize(prompt)
    assert "zero one two" in str(info.value)
    if nearest:
        assert f"did you mean {nearest!r}" in str(info.value)


def test_bad_prompts_and_lengths_are_refused():
    with pytest.raises(ValueError, match="at most 4 words"):
        P.tokenize("bold seven slanted right right")
    with pytest.raises(ValueError, match="length"):
        P.tokenize("bold seven", length=1)
    with pytest.raises(TypeError, match="prompts"):
        P.tokenize(7)
    with pytest.raises(ValueError, match="x must"):
        P.ink_and_slant(np.zeros((2, 63)))
    with pytest.raises(ValueError, match="every class"):
        P.fit_thresholds(np.zeros((2, 64)), [0, 1])


def test_attribute_dropout():
    labels, ink, slant = np.full(4000, 7), np.full(4000, 2), np.zeros(4000, dtype=int)
    assert set(P.drop_attributes(labels, ink, slant, 0.0, 0.0, np.random.default_rng(0))) == {"bold seven slanted left"}
    assert set(P.drop_attributes(labels, ink, slant, 1.0, 0.0, np.random.default_rng(0))) == {"seven"}
    assert set(P.drop_attributes(labels, ink, slant, 0.3, 1.0, np.random.default_rng(0))) == {""}
    out = P.drop_attributes(labels, ink, slant, 0.5, 0.1, np.random.default_rng(1))
    assert out == P.drop_attributes(labels, ink, slant, 0.5, 0.1, np.random.default_rng(1))
    share = {p: out.count(p) / 4000 for p in set(out)}
    # empty 0.1; each of the four partial prompts 0.9 * 0.25; 5 sigma of a binomial share of 4000 is < 0.035
    assert abs(share[""] - 0.1) < 0.03
    for p in ("seven", "bold seven", "seven slanted left", "bold seven slanted left"):
        assert abs(share[p] - 0.225) < 0.035, (p, share[p])
    with pytest.raises(ValueError, match="p_attribute"):
        P.drop_attributes(labels, ink, slant, 1.5, 0.0, np.random.default_rng(0))


def test_doors_of_the_prompt_rule():
    x = -np.ones((2, 64))
    for call, match in [
        (lambda: P.attribute_levels(x, [7, 10]), "labels must be integers in 0..9"),
        (lambda: P.attribute_levels(x, [7]), r"labels must have shape \(2,\)"),
        (lambda: P.attribute_levels(x + 3.0, [7, 7]), r"x must lie in \[-1, 1\]"),
        (lambda: P.digit_prompts(x, [7.5, 1]), "labels must be integers"),
        (lambda: P.fit_thresholds(np.full((2, 64), np.nan), [0, 1]), "x"),
        (lambda: P.prompt_text(12), "label must be integers in 0..9"),
        (lambda: P.prompt_text(3, 3), "ink must be integers in -1..2"),
        (lambda: P.prompt_text(3, 1, 5), "slant must be integers in -1..2"),
        (lambda: P.training_mask([1, 2], [0, 3], [0, 0]), "ink must be integers in 0..2"),
        (lambda: P.training_mask([[1, 2]], [0, 1], [0, 0]), "labels must be 1-D"),
        (lambda: P.drop_attributes([1, 2], [0, 1], [0], 0.5, 0.1, np.random.default_rng(0)), r"slant must have shape \(2,\)"),
        (lambda: P.drop_attributes([1, 2], [0, 1], [0, 0], 0.5, -0.1, np.random.default_rng(0)), "p_empty"),
        (lambda: P.tokenize(["two"], vocabulary="digits"), "vocabulary must be a Vocabulary"),
        (lambda: P.tokenize(["two", 3]), "prompts must be a string or a list of strings"),
    ]:
        with pytest.raises((ValueError, TypeError), match=match):
            call()
    with pytest.raises(TypeError, match="rng"):
        P.drop_attributes([1], [0], [0], 0.5, 0.1, "seed")
    assert P.prompt_text(3, -1, -1) == "three"
