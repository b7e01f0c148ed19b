r"""Inpainting by a model trained for it: a denoiser conditioned on the known values and the mask (GLIDE).

Where replacement, RePaint and DPS (:mod:`npdiff.edit`) steer an unconditional model, GLIDE (Nichol et al.
2022, Sec. 3.3) fine-tunes one to read the known region: the network's input carries, beside x_t, the known
values and the mask, so it learns :math:`\epsilon(x_t, t \mid y \odot m, m)`, the noise of the conditional
:math:`p(x \mid x_{\text{known}} = y)` itself. Sampling is then plain ancestral DDPM on that conditional model
(:func:`npdiff.sample.ddpm_sample`, through :class:`~npdiff.edit.cascade.WithContext`); at the end the known
coordinates are set to y (the model also draws them, close to y but not equal).

The model is a :class:`~npdiff.nn.context_mlp.ContextMLP` with context :math:`[y \odot m \mid m]` (2 D
numbers), trained on :class:`~npdiff.data.masked.MaskedPairs` (random masks, k = 0 known coordinates being
the unconditional model). ``benchmarks/inpaint_model_2d.py`` measures it against the exact conditional.
"""

from __future__ import annotations

import numpy as np

from ..data.masked import mask_context
from ..sample import ddpm_sample
from ..sample._common import SampleResult
from ..threads import blas_threads
from ._validate import check_inpainting, check_mask_model
from .cascade import WithContext
from .mask import keep_known

__all__ = ["inpaint_model_sample"]


@blas_threads()
def inpaint_model_sample(
    model: object,
    known: object,
    mask: object,
    n: int | None,
    rng: np.random.Generator | int,
    *,
    steps: int = 250,
    T: int = 1000,
    variance: str = "large",
    progress: bool = False,
) -> SampleResult:
    r"""Inpaint with a mask-conditioned model: ancestral DDPM on :math:`\epsilon(x_t, t \mid y \odot m, m)`.

    Parameters
    ----------
    model : a context-conditioned denoiser with ``context_dim`` = 2 D (context :math:`[y \odot m \mid m]`).
    known : (D,) or (N, D) the known values y (read where ``mask`` is True).
    mask : (D,) or (N, D) bools or 0/1, True where a coordinate is known.
    n : the number of samples N (None when ``known`` or ``mask`` has N rows).
    rng : the Generator (or an int seed): the starting noise, then the chain's.
    steps, T, variance : the respaced DDPM chain, as :func:`npdiff.sample.ddpm_sample`'s (variance ``"large"``
        or ``"small"``).
    progress : a bar on stderr.

    Returns
    -------
    SampleResult with ``x`` (N, D), the known coordinates equal to y, and ``nfe == steps``.
    """
    model, y, m, x_T, rng, _, _ = check_inpainting(check_mask_model(model), known, mask, n, rng, None, steps, T, variance)
    context = mask_context(y, m)  # (N, 2 D)
    res = ddpm_sample(WithContext(model, context), None, rng, steps=steps, T=T, variance=variance, x_T=x_T,
                      progress=progress)
    return SampleResult(x=keep_known(res.x, y, m), nfe=res.nfe)
