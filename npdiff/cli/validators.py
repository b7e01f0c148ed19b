r"""The flags' value types: positive counts and numbers in a range, each with its upper bound.

argparse calls these on the text of a flag; a value outside the domain is an
``argparse.ArgumentTypeError``, which the parser prints as one line naming the flag.
"""

from __future__ import annotations

import argparse

import numpy as np

__all__ = ["MAX_BATCH", "MAX_CLASSES", "MAX_DEPTH", "MAX_POINTS", "MAX_STEPS", "MAX_T", "MAX_WIDTH", "in_range",
           "positive"]

# Upper bounds of the counts: far beyond any sensible run, far below what would exhaust memory or never end.
#: optimizer steps of ``train`` and ``demo``
MAX_STEPS = 10_000_000
#: points per optimizer step
MAX_BATCH = 65_536
#: hidden units of the MLP
MAX_WIDTH = 4_096
#: residual blocks of the MLP
MAX_DEPTH = 64
#: points to sample or score
MAX_POINTS = 1_000_000
#: steps of a chain or a sampler
MAX_T = 100_000
#: classes of a conditional model
MAX_CLASSES = 100_000


def positive(kind: type, maximum: float | None = None):
    r"""A positive int or finite float, at most ``maximum``: a bigger count would only exhaust memory or time."""
    most = "" if maximum is None else f" at most {maximum:,}" if kind is int else f" at most {maximum:g}"

    def parse(text: str):
        try:
            value = kind(text)
        except (ValueError, OverflowError):
            raise argparse.ArgumentTypeError(f"expected a positive {kind.__name__}{most}, got {text!r}") from None
        if not value > 0 or (kind is float and not np.isfinite(value)) or (maximum is not None and value > maximum):
            raise argparse.ArgumentTypeError(f"expected a positive {kind.__name__}{most}, got {text!r}")
        return value

    parse.__name__ = f"positive {kind.__name__}"
    return parse


def in_range(kind: type, lo: float, hi: float, *, hi_open: bool = False, lo_open: bool = False):
    r"""A finite number in [lo, hi] (or with ``lo_open``/``hi_open`` its ends left out)."""
    left, right = "(" if lo_open else "[", ")" if hi_open else "]"

    def parse(text: str):
        try:
            value = kind(text)
        except (ValueError, OverflowError):
            value = None
        # an int is always finite (and np.isfinite refuses one beyond int64, a TypeError)
        if (value is None or (kind is float and not np.isfinite(value)) or value < lo or value > hi or (hi_open and value == hi)
                or (lo_open and value == lo)):
            article = "an" if kind is int else "a"
            raise argparse.ArgumentTypeError(f"expected {article} {kind.__name__} in {left}{lo}, {hi}{right}, got {text!r}")
        return value

    parse.__name__ = f"{kind.__name__} in range"
    return parse


#: a seed: an int in [0, 2**63 - 1] (each stream adds an offset of :mod:`npdiff.seeds`)
SEED = in_range(int, 0, 2**63 - 1)
