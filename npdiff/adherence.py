r"""Prompt adherence from the pixels alone: does a sample show the class, the ink and the slant its prompt asked for?

A prompt of :mod:`npdiff.data.prompts` was written by a rule from a digit's label and two measured attributes,
so a generated image can be read back by the same means, with no text model in the loop:

* its **class** by the fixed digit classifier (:func:`npdiff.digit_features.classify_digits`, the classifier every
  digit figure of npdiff uses);
* its **ink level** and **slant level** by the rule that wrote the prompts (:func:`npdiff.data.prompts.attribute_levels`)
  with the stored thresholds of the class the prompt **asked for**: "bold seven" means more ink than two thirds of
  the training sevens, whatever the sample turned out to be.

Samples are clipped to [-1, 1] and rounded to the 17 levels first (:func:`npdiff.digit_features.nearest_levels`),
as the training digits are stored and as the classifier reads them. A share counts only the prompts that name
the attribute (a partial prompt such as ``"seven"`` asks nothing of the ink); the joint share counts the full
prompts whose three asks all hold. Real test digits read against their own prompts score 1 on both attributes
by construction and the classifier's test accuracy on the class.

This lives beside :mod:`npdiff.digit_features` rather than in :mod:`npdiff.data.prompts` because it needs the
fitted classifier (scikit-learn, the ``images`` extra), which the data module must not import.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .data.prompts import DIGIT_VOCABULARY, Vocabulary, attribute_levels, prompt_asks
from .digit_features import classify_digits, nearest_levels

__all__ = ["Adherence", "prompt_adherence"]


@dataclasses.dataclass(frozen=True)
class Adherence:
    r"""What each sample shows against what its prompt asked.

    Attributes
    ----------
    asked : (N, 3) int64, the class, ink level and slant level each prompt asked for (-1 where it asks nothing).
    predicted : (N,) int64, the classifier's class of each sample.
    ink : (N,) int64, each sample's ink level (0 thin, 1 regular, 2 bold), against its asked class's thresholds.
    slant : (N,) int64, each sample's slant level (0 left, 1 upright, 2 right), the same way.
    """

    asked: np.ndarray
    predicted: np.ndarray
    ink: np.ndarray
    slant: np.ndarray

    def _share(self, column: int, measured: np.ndarray) -> float:
        named = self.asked[:, column] >= 0
        return float(np.mean(measured[named] == self.asked[named, column])) if named.any() else float("nan")

    @property
    def class_share(self) -> float:
        r"""Share of the prompts naming a class whose sample the classifier reads as that class (NaN if none does)."""
        return self._share(0, self.predicted)

    @property
    def ink_share(self) -> float:
        r"""Share of the prompts naming an ink level whose sample has it."""
        return self._share(1, self.ink)

    @property
    def slant_share(self) -> float:
        r"""Share of the prompts naming a slant whose sample has it."""
        return self._share(2, self.slant)

    @property
    def all_share(self) -> float:
        r"""Share of the full prompts (class, ink and slant) whose sample matches all three."""
        full = np.all(self.asked >= 0, axis=1)
        hit = (self.predicted == self.asked[:, 0]) & (self.ink == self.asked[:, 1]) & (self.slant == self.asked[:, 2])
        return float(np.mean(hit[full])) if full.any() else float("nan")


def prompt_adherence(samples: object, prompts: object, vocabulary: Vocabulary = DIGIT_VOCABULARY) -> Adherence:
    r"""Read class, ink and slant back from samples and compare them with the prompts they were drawn for.

    Parameters
    ----------
    samples : (N, 64) generated 8x8 digits flattened row by row (clipped and rounded to the 17 levels here).
    prompts : one prompt for every sample, or N prompts, in the words of the rule (``"bold seven slanted right"``,
        ``"seven"``); a prompt must name its class (the empty prompt asks for nothing to measure).
    vocabulary : the :class:`~npdiff.data.prompts.Vocabulary` whose thresholds wrote the prompts.

    Returns
    -------
    :class:`Adherence`, with the per-sample readings and the shares.

    Raises
    ------
    ValueError for an unknown word (naming the nearest), a prompt without a class, or a count of prompts that is
    neither 1 nor N; ImportError naming the ``images`` extra without scikit-learn.
    """
    x = nearest_levels(samples)  # (N, D) clipped and rounded
    asked = prompt_asks(prompts, x.shape[0], vocabulary)  # (N, 3), -1 where a prompt asks nothing
    ink, slant = attribute_levels(x, asked[:, 0], vocabulary)  # against the asked class's thresholds; x (N, 64)
    return Adherence(asked=asked, predicted=classify_digits(x, quantize=False), ink=ink, slant=slant)
