r"""The random streams of a run, derived from its one seed.

A command of ``npdiff`` takes one ``--seed`` and needs several independent streams: the
weights and batches of training, fresh test points, the starting noise of the samples, the
data drawn beside them, the training points of a moment estimate and its noise. Each stream is
``np.random.default_rng(seed + OFFSET)`` with one of the offsets below, so a figure reproduces
from the seed alone, and a tutorial or benchmark that wants the command's figures uses the same
offsets. Offset 0 (the seed itself) is training's stream, the points of ``npdiff nll`` and the
noise of ``npdiff sample``.

The values are history: changing one changes every figure that reads that stream, so they
stay as they are. The large offsets keep the moment estimate's streams far from the small
offsets a run's phases use, whatever seed the user picks.

>>> import numpy as np
>>> from npdiff import seeds
>>> a = np.random.default_rng(7 + seeds.DEMO_SAMPLES).standard_normal()
>>> b = np.random.default_rng(9).standard_normal()
>>> bool(a == b)
True
"""

from __future__ import annotations

__all__ = ["DEMO_NLL", "DEMO_PLOT_DATA", "DEMO_SAMPLES", "EDIT_MASK", "MOMENT_DATA", "MOMENT_NOISE", "PLOT_DATA"]

#: ``npdiff demo``: the fresh test points of the exact likelihood (the seed itself trains)
DEMO_NLL = 1
#: ``npdiff demo``: the starting noise of the probability-flow ODE's samples
DEMO_SAMPLES = 2
#: ``npdiff demo``: the data points drawn beside the samples in ``samples.png``
DEMO_PLOT_DATA = 3
#: ``npdiff sample --plot``: the data drawn beside the samples (fresh 2-D points, or which test images)
PLOT_DATA = 1
#: ``npdiff inpaint --mask random``: the draw of the known pixels (the seed itself is the inpainter's noise)
EDIT_MASK = 4
#: the training points (fresh draws of a 2-D set) on which :math:`\mathbb E\lVert\epsilon_\theta\rVert^2 / D`
#: is estimated for the ``"analytic"`` reverse variance
MOMENT_DATA = 1_000_003
#: the forward noise of that estimate (:func:`npdiff.reverse_variance.eps_moments`)
MOMENT_NOISE = 1_000_033
