r"""Prompts the digits already carry: a small vocabulary, the rule that writes one prompt per digit, tokens.

Every 8x8 digit gets a prompt such as ``"bold seven slanted right"`` from its label and two attributes
measured from its pixels (Rombach et al. 2022 and Nichol et al. 2022 condition on text; here the text
is written by a rule, so prompt adherence can be measured from the pixels alone, by the same rule).
With :math:`w_{rc} = (x_{rc} + 1)/2 \in [0, 1]` the ink of pixel (row r, column c):

* **ink** is the ink mass :math:`m = \sum_{rc} w_{rc}` (in fully inked pixels);
* **slant** is the shear of the second moments. With the centroid :math:`\bar r, \bar c` and
  :math:`\mu_{rr} = \sum w (r - \bar r)^2 / m`, :math:`\mu_{rc} = \sum w (r - \bar r)(c - \bar c) / m`,

  .. math:: s = -\mu_{rc} / \mu_{rr},

  the least-squares slope of the column on the row with the sign turned so that a stroke whose top
  leans right has s > 0 (rows count downwards). A vertical bar has s = 0; a bar sheared by
  one column per row to the right has s = 1.

Each attribute is cut into three by its **terciles within the class**, over the TRAIN split
(:func:`fit_thresholds`): ink thin / regular / bold, slant left / upright / right, value
:math:`\le t_1`, :math:`t_1 < \cdot \le t_2`, :math:`> t_2`. The thresholds are fixed, stored in
:data:`DIGIT_VOCABULARY` (a test recomputes them from the split), so every figure reads the same cuts.
The words are therefore relative to the digit: sevens are written leaning right, so a "seven slanted
left" is a seven that leans right less than most (its mean slant over the train split is s = +0.061),
not one whose top leans left.

**The prompt** is ``"[ink] <digit> [slanted left | upright | slanted right]"``; attribute-token
dropout (:func:`drop_attributes`) removes the ink or the slant words at random in training so that
partial prompts (``"seven"``, ``"bold seven"``) are prompts the model knows, and the **empty prompt**
``""`` (no tokens) is the unconditional model, y = None of the denoiser protocol, so classifier-free
guidance works as with labels (Ho & Salimans 2022; GLIDE, Nichol et al. 2022, drops the caption the same way).

**Tokens**: each word is one id, id 0 is padding and id 1 the start token the text encoder puts in
front of every prompt (:mod:`npdiff.nn.text`), so a prompt of n words is n ids padded with 0 to the
batch's longest. A word outside the vocabulary is refused, naming the vocabulary and the nearest word.

**Held out**: the three (class, ink, slant) combinations of :data:`HELD_OUT` never enter training
(:func:`training_mask`), to measure whether the model composes attributes it saw only apart.
"""

from __future__ import annotations

import dataclasses
import difflib

import numpy as np

from .._check import as_float_array, as_generator, as_integers, real_scalar
from ._validate import as_prompt_list

__all__ = ["DIGIT_VOCABULARY", "DIGIT_WORDS", "HELD_OUT", "INK_WORDS", "SLANT_WORDS", "Vocabulary", "attribute_levels",
           "digit_prompts", "drop_attributes", "fit_thresholds", "ink_and_slant", "parse_prompt", "prompt_asks", "prompt_text",
           "tokenize", "training_mask", "training_sampler"]

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
INK_WORDS = ("thin", "regular", "bold")
#: the slant phrases; "slanted" is the one glue word
SLANT_WORDS = ("slanted left", "upright", "slanted right")
PAD, START = 0, 1
#: the longest prompt: ink, digit, "slanted", direction
MAX_WORDS = 4

#: (class, ink, slant) combinations that never enter training (:func:`training_mask`)
HELD_OUT = ((2, "bold", "slanted left"), (5, "thin", "upright"), (7, "regular", "slanted right"))


@dataclasses.dataclass(frozen=True)
class Vocabulary:
    r"""The words, their ids and the attribute thresholds, fixed together.

    Attributes
    ----------
    words : every id's word; id 0 ``"<pad>"``, id 1 ``"<start>"``, then the prompt words.
    ink_thresholds : (10, 2) per class the ink-mass terciles :math:`t_1 < t_2` over the train split.
    slant_thresholds : (10, 2) per class the slant terciles over the train split.
    max_words : the longest prompt, in words.
    """

    words: tuple[str, ...]
    ink_thresholds: tuple[tuple[float, float], ...]
    slant_thresholds: tuple[tuple[float, float], ...]
    max_words: int = MAX_WORDS

    @property
    def size(self) -> int:
        r"""Number V of token ids (padding and start included)."""
        return len(self.words)

    def id_of(self, word: str) -> int:
        r"""The id of one prompt word; a word outside the vocabulary raises ``ValueError`` naming the nearest word."""
        try:
            i = self.words.index(word)
        except ValueError:
            i = -1
        if i < 2:  # "<pad>" and "<start>" are not words a prompt may hold
            near = difflib.get_close_matches(word, self.words[2:], n=1, cutoff=0.0)
            raise ValueError(f"prompt word {word!r} is not in the vocabulary; did you mean {near[0]!r}? "
                             f"The vocabulary: {' '.join(self.words[2:])}")
        return i


def _words() -> tuple[str, ...]:
    glue = tuple(dict.fromkeys(w for phrase in SLANT_WORDS for w in phrase.split()))  # slanted, left, upright, right
    return ("<pad>", "<start>", *DIGIT_WORDS, *INK_WORDS, *glue)


#: the digits' vocabulary, with the terciles of :func:`fit_thresholds` over the train split
DIGIT_VOCABULARY = Vocabulary(
    words=_words(),
    ink_thresholds=((18.375, 21.25), (18.4375, 20.375), (18.9375, 20.9375), (17.625, 20.375), (19.0, 20.3125),
                    (18.5, 20.208333333333332), (18.25, 20.6875), (18.083333333333332, 19.9375),
                    (19.541666666666668, 21.354166666666664), (18.1875, 20.875)),
    slant_thresholds=((-0.05101519943873259, 0.0013138729526470704), (-0.06675186214964281, 0.01758100393964572),
                      (-0.1734864483011047, -0.09352364950374546), (-0.10836433353518161, -0.039941164550009414),
                      (-0.021825710210359818, 0.031023568387735075), (-0.04975812514596319, 0.028344533659380826),
                      (-0.23104276443017796, -0.17037618442778074), (0.10980241436252387, 0.16727483458577247),
                      (-0.040355841793627834, 0.0394174130699157), (-0.12057858271544913, -0.06070484093774138)),
)


def _images(x: object) -> np.ndarray:
    x = as_float_array(x, "x")
    if x.ndim != 2 or x.shape[1] != 64:
        raise ValueError(f"x must be (N, 64) flattened 8x8 images in [-1, 1], got shape {x.shape}")
    if x.size and (x.min() < -1.0 or x.max() > 1.0):
        raise ValueError(f"x must lie in [-1, 1] (the K-level data convention), got values in [{x.min():g}, {x.max():g}]")
    return x


def ink_and_slant(x: object) -> tuple[np.ndarray, np.ndarray]:
    r"""Ink mass :math:`m` and slant :math:`s = -\mu_{rc}/\mu_{rr}` of each image (module docstring).

    Parameters
    ----------
    x : (N, 64) 8x8 images flattened row by row, in [-1, 1].

    Returns
    -------
    m : (N,) ink mass, in fully inked pixels. s : (N,) slant, > 0 leaning right (0 for a blank image).
    """
    w = (_images(x).reshape(-1, 8, 8) + 1.0) / 2.0  # (N, 8, 8) ink in [0, 1]
    m = w.sum(axis=(1, 2))  # (N,)
    r, c = np.arange(8.0)[:, None], np.arange(8.0)[None, :]
    safe = np.where(m > 0, m, 1.0)
    dr = r - ((w * r).sum(axis=(1, 2)) / safe)[:, None, None]  # (N, 8, 1) row offset from the centroid
    dc = c - ((w * c).sum(axis=(1, 2)) / safe)[:, None, None]  # (N, 1, 8)
    mu_rr = (w * dr * dr).sum(axis=(1, 2))  # the 1/m cancels in the ratio
    mu_rc = (w * dr * dc).sum(axis=(1, 2))
    s = np.where(mu_rr > 0, -mu_rc / np.where(mu_rr > 0, mu_rr, 1.0), 0.0)  # one inked row has no slope: upright
    return m, s


def fit_thresholds(x: object, labels: object) -> tuple[np.ndarray, np.ndarray]:
    r"""Terciles within each class of the ink mass and the slant: (10, 2) and (10, 2), :math:`t_1 \le t_2`.

    Parameters
    ----------
    x : (N, 64) images in [-1, 1] (the train split, for :data:`DIGIT_VOCABULARY`).
    labels : (N,) their classes 0..9, every class present.
    """
    x = _images(x)
    labels = _labels(labels, x.shape[0])
    m, s = ink_and_slant(x)
    missing = sorted(set(range(10)) - set(labels.tolist()))
    if missing:
        raise ValueError(f"labels must hold every class 0..9 to cut its terciles; classes {missing} are missing")
    q = [1.0 / 3.0, 2.0 / 3.0]
    return (np.array([np.quantile(m[labels == k], q) for k in range(10)]),
            np.array([np.quantile(s[labels == k], q) for k in range(10)]))


def _labels(labels: object, n: int, name: str = "labels") -> np.ndarray:
    labels = as_integers(labels, name, lo=0, hi=9)
    if labels.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), one per image, got {labels.shape}")
    return labels


def attribute_levels(x: object, labels: object, vocabulary: Vocabulary = DIGIT_VOCABULARY) -> tuple[np.ndarray, np.ndarray]:
    r"""Ink level (0 thin, 1 regular, 2 bold) and slant level (0 left, 1 upright, 2 right) of each image, (N,) each.

    Level = the number of the class's two thresholds the value exceeds (module docstring).
    """
    x = _images(x)
    labels = _labels(labels, x.shape[0])
    _vocabulary(vocabulary)
    m, s = ink_and_slant(x)
    ink_t, slant_t = np.asarray(vocabulary.ink_thresholds), np.asarray(vocabulary.slant_thresholds)  # (10, 2)
    ink = (m[:, None] > ink_t[labels]).sum(axis=1)  # (N,)
    slant = (s[:, None] > slant_t[labels]).sum(axis=1)
    return ink, slant


def _vocabulary(vocabulary: object) -> Vocabulary:
    if not isinstance(vocabulary, Vocabulary):
        raise TypeError(f"vocabulary must be a Vocabulary, got {type(vocabulary).__name__}")
    return vocabulary


def prompt_text(label: int, ink: int | None = None, slant: int | None = None) -> str:
    r"""The prompt of one digit: ``"[ink] <digit> [slant]"``; None (or -1) leaves an attribute out.

    ``prompt_text(7, 2, 2) == "bold seven slanted right"``; ``prompt_text(7) == "seven"``.
    """
    label = int(as_integers(label, "label", lo=0, hi=9))
    parts = [DIGIT_WORDS[label]]
    if ink is not None and int(as_integers(ink, "ink", lo=-1, hi=2)) >= 0:
        parts.insert(0, INK_WORDS[int(ink)])
    if slant is not None and int(as_integers(slant, "slant", lo=-1, hi=2)) >= 0:
        parts.append(SLANT_WORDS[int(slant)])
    return " ".join(parts)


def digit_prompts(x: object, labels: object, vocabulary: Vocabulary = DIGIT_VOCABULARY) -> list[str]:
    r"""The full prompt of every image, from its label and its measured ink and slant, (N,) strings."""
    ink, slant = attribute_levels(x, labels, vocabulary)
    return [prompt_text(int(k), int(i), int(s)) for k, i, s in zip(np.asarray(labels).astype(int), ink, slant)]


def tokenize(prompts: object, vocabulary: Vocabulary = DIGIT_VOCABULARY, length: int | None = None) -> np.ndarray:
    r"""Token ids (N, L) int64 of prompts, one word one id, padded with 0 (the empty prompt: all padding).

    Parameters
    ----------
    prompts : one string or a sequence of N strings; words split on white space, case ignored.
    vocabulary : the :class:`Vocabulary`.
    length : L, at least the longest prompt's words; None: the longest prompt's (at least 1).

    Raises
    ------
    ValueError naming the vocabulary and the nearest word for a word outside it, or a prompt longer
    than ``vocabulary.max_words``.
    """
    vocabulary = _vocabulary(vocabulary)
    if isinstance(prompts, str):
        prompts = [prompts]
    if not isinstance(prompts, (list, tuple)) or not all(isinstance(p, str) for p in prompts):
        raise TypeError(f"prompts must be a string or a list of strings, got {type(prompts).__name__}")
    rows = [[vocabulary.id_of(w) for w in p.lower().split()] for p in prompts]
    longest = max((len(r) for r in rows), default=0)
    if longest > vocabulary.max_words:
        raise ValueError(f"prompts must have at most {vocabulary.max_words} words, got one of {longest}: "
                         f"{prompts[[len(r) for r in rows].index(longest)]!r}")
    if length is None:
        length = max(longest, 1)
    length = int(as_integers(length, "length", lo=max(longest, 1), hi=vocabulary.max_words))
    ids = np.full((len(rows), length), PAD, dtype=np.int64)  # (N, L)
    for n, r in enumerate(rows):
        ids[n, :len(r)] = r
    return ids


def drop_attributes(labels: object, ink: object, slant: object, p_attribute: float, p_empty: float,
                    rng: np.random.Generator) -> list[str]:
    r"""Training prompts with attribute-token dropout: partial prompts and the empty prompt.

    Each ink and each slant phrase is left out independently with probability ``p_attribute``; then
    the whole prompt becomes the empty prompt (the unconditional model) with probability ``p_empty``
    (Ho & Salimans 2022, Algorithm 1). Draws, in order: (N, 2) uniforms for the attributes, (N,) for the prompt.

    Parameters
    ----------
    labels : (N,) classes 0..9.
    ink : (N,) ink levels 0..2 (:func:`attribute_levels`).
    slant : (N,) slant levels 0..2.
    p_attribute : probability in [0, 1] of leaving out each attribute.
    p_empty : probability in [0, 1] of the empty prompt.
    rng : the Generator.

    Returns
    -------
    N prompt strings.
    """
    labels = as_integers(labels, "labels", lo=0, hi=9)
    if labels.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {labels.shape}")
    ink = _labels(as_integers(ink, "ink", lo=0, hi=2), labels.shape[0], "ink")
    slant = _labels(as_integers(slant, "slant", lo=0, hi=2), labels.shape[0], "slant")
    p_attribute = real_scalar(p_attribute, "p_attribute", lo=0.0, hi=1.0)
    p_empty = real_scalar(p_empty, "p_empty", lo=0.0, hi=1.0)
    rng = as_generator(rng)
    keep = rng.uniform(size=(labels.shape[0], 2)) >= p_attribute  # (N, 2): ink, slant kept
    empty = rng.uniform(size=labels.shape[0]) < p_empty  # (N,)
    return ["" if e else prompt_text(int(k), int(i) if ki else None, int(s) if ks else None)
            for k, i, s, (ki, ks), e in zip(labels, ink, slant, keep, empty)]


def training_mask(labels: object, ink: object, slant: object) -> np.ndarray:
    r"""(N,) bool, False for the images whose (class, ink, slant) is one of :data:`HELD_OUT`."""
    labels = as_integers(labels, "labels", lo=0, hi=9)
    if labels.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {labels.shape}")
    ink = _labels(as_integers(ink, "ink", lo=0, hi=2), labels.shape[0], "ink")
    slant = _labels(as_integers(slant, "slant", lo=0, hi=2), labels.shape[0], "slant")
    keep = np.ones(labels.shape[0], dtype=bool)
    for k, i, s in HELD_OUT:
        keep &= ~((labels == k) & (ink == INK_WORDS.index(i)) & (slant == SLANT_WORDS.index(s)))
    return keep


def parse_prompt(prompt: str, vocabulary: Vocabulary = DIGIT_VOCABULARY) -> tuple[int | None, int | None, int | None]:
    r"""(class, ink level, slant level) a prompt asks for, None where it leaves one out; :func:`prompt_text` inverted.

    ``parse_prompt("bold seven slanted right") == (7, 2, 2)``; ``parse_prompt("seven") == (7, None, None)``;
    ``parse_prompt("") == (None, None, None)`` (the empty prompt asks for nothing).

    Raises
    ------
    ValueError for a word outside the vocabulary (naming the nearest word, :meth:`Vocabulary.id_of`), or words that
    are not in the order ``"[ink] <digit> [slant]"`` of the rule.
    """
    _vocabulary(vocabulary)
    if not isinstance(prompt, str):
        raise TypeError(f"prompt must be a string, got {type(prompt).__name__}")
    words = prompt.lower().split()
    for w in words:
        vocabulary.id_of(w)  # an unknown word is refused first, with the nearest word
    rest = " ".join(words)
    if not words:
        return None, None, None
    ink = INK_WORDS.index(words[0]) if words[0] in INK_WORDS else None
    body = words[1:] if ink is not None else words
    if not body or body[0] not in DIGIT_WORDS:
        raise ValueError(f"prompt must read \"[ink] <digit> [slant]\" (e.g. \"bold seven slanted right\"), got {prompt!r}")
    label, tail = DIGIT_WORDS.index(body[0]), " ".join(body[1:])
    if tail and tail not in SLANT_WORDS:
        raise ValueError(f"prompt must end with the digit or one of {list(SLANT_WORDS)}, got {rest!r}")
    return label, ink, (SLANT_WORDS.index(tail) if tail else None)


def prompt_asks(prompts: object, n: int, vocabulary: Vocabulary = DIGIT_VOCABULARY) -> np.ndarray:
    r"""What each of n prompts asks for, (n, 3) int64: class, ink level, slant level (:func:`parse_prompt`), -1 where
    it asks nothing. ``prompts`` is one string for all n or n strings; every prompt must name its class."""
    prompts = as_prompt_list(prompts, n)
    parsed = {p: parse_prompt(p, vocabulary) for p in set(prompts)}
    unnamed = sorted(p for p, (k, _, _) in parsed.items() if k is None)
    if unnamed:
        raise ValueError(f"prompts must name a class to be measured against, got {unnamed[0]!r}")
    asked = np.array([[-1 if a is None else a for a in parsed[p]] for p in prompts], dtype=np.int64)  # (n or 1, 3)
    return np.broadcast_to(asked, (n, 3)).copy()


def training_sampler(x: object, labels: object, p_attribute: float = 0.3, p_empty: float = 0.1,
                     vocabulary: Vocabulary = DIGIT_VOCABULARY):
    r"""The data sampler of a prompt model: images and their prompts by the rule, the :data:`HELD_OUT` cells left out.

    Each image's prompt is written from its label and measured attributes (:func:`attribute_levels`); the
    images of the held-out cells are removed (:func:`training_mask`); each draw picks n images uniformly
    and drops words (:func:`drop_attributes`), so a training batch holds full, partial and empty prompts.

    Parameters
    ----------
    x : (N, 64) images in [-1, 1].
    labels : (N,) their classes.
    p_attribute, p_empty : the dropout probabilities of :func:`drop_attributes`.
    vocabulary : the :class:`Vocabulary` (its thresholds write the prompts).

    Returns
    -------
    ``sample(n, rng) -> (x (n, 64), ids (n, max_words))``, the sampler :class:`npdiff.train.Trainer` takes;
    ``sample.images`` is the number of images kept.
    """
    x = _images(x)
    labels = _labels(labels, x.shape[0])
    p_attribute = real_scalar(p_attribute, "p_attribute", lo=0.0, hi=1.0)
    p_empty = real_scalar(p_empty, "p_empty", lo=0.0, hi=1.0)
    ink, slant = attribute_levels(x, labels, vocabulary)
    keep = training_mask(labels, ink, slant)
    X, Y, I, S = x[keep], labels[keep], ink[keep], slant[keep]
    if X.shape[0] == 0:
        raise ValueError("x holds no image outside the held-out cells: nothing to train on")

    def sample(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        i = rng.integers(0, X.shape[0], n)  # (n,)
        words = drop_attributes(Y[i], I[i], S[i], p_attribute, p_empty, rng)
        return X[i], tokenize(words, vocabulary, length=vocabulary.max_words)

    sample.images = int(X.shape[0])
    return sample
