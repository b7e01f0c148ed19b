"""Prompts from the user's side: classifier-free guidance of a prompt model with the empty prompt as its unconditional
model (the combination and its exact trace), the prompt read back from a prompt string, the training sampler's
held-out cells, and adherence read from the pixels of real test digits."""

from __future__ import annotations

import numpy as np
import pytest

from npdiff.analytic import GaussianMixture
from npdiff.data import prompts as P
from npdiff.guidance import ClassifierFree, guided
from npdiff.nn import prompt_mlp as pm
from npdiff.sample import ddim_sample
from npdiff.schedule import vp_linear

CFG = pm.PromptMLPConfig(dim=6, width=8, depth=1, emb_dim=4, text_width=4, query_tokens=2)
MODEL = pm.PromptMLP(CFG, vp_linear(), 0.5 * np.random.default_rng(3).standard_normal(CFG.n_params))
PROMPTS = ["bold seven slanted right", "two upright", "nine"]
H = 1e-5


def _xt(seed=1, n=3):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 6)), rng.uniform(0.1, 0.9, n)


@pytest.mark.parametrize("w", [0.0, 1.5, 3.0])
def test_guided_prompt_eps_is_the_combination_with_the_empty_prompt_and_its_divergence_the_exact_trace(w):
    x, t = _xt()
    g = guided(MODEL, PROMPTS, w)  # one prompt per point, as strings
    assert isinstance(g, ClassifierFree) and g.prompt
    ids = P.tokenize(PROMPTS)
    eps, div = g.eps_and_divergence(x, t)
    np.testing.assert_allclose(eps, (1 + w) * MODEL.eps(x, t, ids) - w * MODEL.eps(x, t, P.tokenize([""] * 3)),
                               rtol=0, atol=1e-12)
    np.testing.assert_allclose(g.eps(x, t), eps, rtol=0, atol=1e-14)
    fd = np.zeros(3)  # tr d eps / dx by central differences of the guided field itself
    for d in range(6):
        e = np.zeros_like(x)
        e[:, d] = H
        fd += (g.eps(x + e, t)[:, d] - g.eps(x - e, t)[:, d]) / (2 * H)
    np.testing.assert_allclose(div, fd, rtol=1e-6, atol=1e-7)


def test_one_prompt_string_for_the_batch_equals_its_ids_per_point():
    x, t = _xt(2, n=4)
    one = guided(MODEL, "bold seven slanted right", 2.0).eps(x, t)
    per_point = guided(MODEL, P.tokenize(["bold seven slanted right"] * 4), 2.0).eps(x, t)
    np.testing.assert_array_equal(one, per_point)
    np.testing.assert_array_equal(guided(MODEL, "BOLD  seven slanted right", 2.0).y, guided(MODEL, one_ids(), 2.0).y)
    # the empty prompt guided by itself is the unconditional model at any w
    np.testing.assert_allclose(guided(MODEL, "", 4.0).eps(x, t), MODEL.eps(x, t), rtol=0, atol=1e-12)


def one_ids():
    return P.tokenize("bold seven slanted right")[0]


def test_a_sampler_runs_on_a_guided_prompt_field():
    g = guided(MODEL, PROMPTS[:2], 2.0)
    x = ddim_sample(g, 2, np.random.default_rng(0), steps=4).x
    assert x.shape == (2, 6) and np.all(np.isfinite(x))


def test_bad_prompts_for_guidance_are_refused_naming_the_argument():
    labelled = GaussianMixture(np.array([0.5, 0.5]), np.array([[0.0, 1.0], [1.0, 0.0]]), np.array([0.3, 0.3]),
                               labels=np.array([0, 1]))
    plain = GaussianMixture(np.array([0.5, 0.5]), np.array([[0.0, 1.0], [1.0, 0.0]]), np.array([0.3, 0.3]))
    with pytest.raises(ValueError, match="did you mean 'seven'"):
        guided(MODEL, "bold sevn", 1.0)
    with pytest.raises(ValueError, match=r"y must be a class label in 0\.\.1: GaussianMixture is conditioned on labels"):
        guided(labelled, "seven", 1.0)
    with pytest.raises(ValueError, match="y must be a class label"):
        guided(labelled, ["seven", "two"], 1.0)
    with pytest.raises(ValueError, match=r"y must be token ids of shape \(L,\) or \(B, L\).*got shape \(\)"):
        guided(MODEL, 7, 1.0)  # a class label given to a prompt model
    with pytest.raises(ValueError, match="y must be the prompt"):
        guided(MODEL, None, 1.0)
    with pytest.raises(ValueError, match="start token"):
        guided(MODEL, np.array([1, 9]), 1.0)
    with pytest.raises(ValueError, match=r"y must be integers in 0\.\.18"):
        guided(MODEL, np.array([3, 19]), 1.0)
    with pytest.raises(ValueError, match="at most 4 tokens"):
        guided(MODEL, np.array([3, 4, 5, 6, 7]), 1.0)
    with pytest.raises(TypeError, match="y must be a prompt string"):
        guided(MODEL, np.array([2.0, 3.0]), 1.0)
    with pytest.raises(ValueError, match="w must"):
        guided(MODEL, "seven", -1.0)
    with pytest.raises(ValueError, match="y holds 3 prompts but x has 2 points"):
        guided(MODEL, PROMPTS, 1.0).eps(_xt(n=2)[0], 0.5)
    small = P.Vocabulary(words=P.DIGIT_VOCABULARY.words[:-1], ink_thresholds=P.DIGIT_VOCABULARY.ink_thresholds,
                         slant_thresholds=P.DIGIT_VOCABULARY.slant_thresholds)
    with pytest.raises(ValueError, match="vocabulary has 18 token ids but the denoiser reads 19"):
        guided(MODEL, "seven", 1.0, vocabulary=small)
    with pytest.raises(TypeError, match="vocabulary must be a Vocabulary"):
        guided(MODEL, "seven", 1.0, vocabulary="digits")
    with pytest.raises(ValueError, match="neither labels nor prompts"):
        guided(plain, "seven", 1.0)


# -- the prompt read back, and the training sampler ---------------------------------------------------------
def test_parse_prompt_inverts_prompt_text():
    for k in range(10):
        for ink in (None, 0, 1, 2):
            for slant in (None, 0, 1, 2):
                assert P.parse_prompt(P.prompt_text(k, ink, slant)) == (k, ink, slant)
    assert P.parse_prompt("") == (None, None, None)
    assert P.parse_prompt("  Bold SEVEN ") == (7, 2, None)
    for bad, match in (("seven bold", "must end with the digit"), ("bold", "must read"), ("slanted seven", "must read"),
                       ("seven slanted", "must end with"), ("sevn", "did you mean 'seven'")):
        with pytest.raises(ValueError, match=match):
            P.parse_prompt(bad)
    with pytest.raises(TypeError, match="prompt must be a string"):
        P.parse_prompt(7)


def test_training_sampler_never_draws_a_held_out_cell_and_drops_words():
    from npdiff.data.images import digits

    ds = digits()
    sample = P.training_sampler(ds.train, ds.train_labels, p_attribute=0.0, p_empty=0.0)
    ink, slant = P.attribute_levels(ds.train, ds.train_labels)
    assert sample.images == int(P.training_mask(ds.train_labels, ink, slant).sum()) < ds.train.shape[0]
    x, ids = sample(2000, np.random.default_rng(0))
    assert x.shape == (2000, 64) and ids.shape == (2000, P.MAX_WORDS)
    words = [" ".join(P.DIGIT_VOCABULARY.words[i] for i in row if i) for row in ids]
    held = {f"{i} {P.DIGIT_WORDS[k]} {s}" for k, i, s in P.HELD_OUT}
    assert not held & set(words)
    assert words == P.digit_prompts(x, [P.parse_prompt(w)[0] for w in words])  # full prompts, written by the rule
    _, ids = P.training_sampler(ds.train, ds.train_labels, 0.5, 0.2)(2000, np.random.default_rng(1))
    n_words = (ids > 0).sum(axis=1)
    assert 0.15 < np.mean(n_words == 0) < 0.25 and np.any(n_words == 1) and np.any(n_words == 4)
    with pytest.raises(ValueError, match="p_empty must"):
        P.training_sampler(ds.train, ds.train_labels, 0.3, 1.5)
    with pytest.raises(ValueError, match="labels must have shape"):
        P.training_sampler(ds.train, ds.train_labels[:5])


# -- adherence from the pixels ------------------------------------------------------------------------------
def test_real_test_digits_adhere_to_their_own_prompts():
    pytest.importorskip("sklearn")
    from npdiff.adherence import prompt_adherence
    from npdiff.data.images import digits

    ds = digits()
    own = P.digit_prompts(ds.test, ds.test_labels)
    a = prompt_adherence(ds.test, own)
    assert a.ink_share == 1.0 and a.slant_share == 1.0  # the same rule on the same images, by construction
    assert a.class_share >= 0.97  # the fixed classifier reads 98.1% of the test digits right
    assert a.all_share == a.class_share
    np.testing.assert_array_equal(a.asked[:, 0], ds.test_labels)
    # prompts asking for the next ink and slant level never match; another digit's class rarely does
    ink, slant = P.attribute_levels(ds.test, ds.test_labels)
    wrong = [P.prompt_text(k, (i + 1) % 3, (s + 1) % 3) for k, i, s in zip(ds.test_labels, ink, slant)]
    b = prompt_adherence(ds.test, wrong)
    assert b.ink_share == 0.0 and b.slant_share == 0.0 and b.all_share == 0.0
    assert prompt_adherence(ds.test, [P.prompt_text((k + 3) % 10) for k in ds.test_labels]).class_share < 0.05
    c = prompt_adherence(ds.test[ds.test_labels == 7], "seven")  # one prompt for all; it asks nothing of ink or slant
    assert c.class_share > 0.9 and np.isnan(c.ink_share) and np.isnan(c.slant_share) and np.isnan(c.all_share)


def test_adherence_door():
    pytest.importorskip("sklearn")
    from npdiff.adherence import prompt_adherence

    x = np.zeros((3, 64))
    with pytest.raises(ValueError, match="one prompt or one per sample"):
        prompt_adherence(x, ["seven", "two"])
    with pytest.raises(ValueError, match="must name a class"):
        prompt_adherence(x, "")
    with pytest.raises(ValueError, match="did you mean"):
        prompt_adherence(x, "bold sevn")
    with pytest.raises(ValueError, match=r"\(N, 64\) flattened 8x8"):
        prompt_adherence(np.zeros((3, 10)), "seven")
    with pytest.raises(TypeError, match="prompts must be"):
        prompt_adherence(x, 7)
