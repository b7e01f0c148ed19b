r"""RePaint: replacement with resampling, jumping back up the chain to let the two parts agree.

Lugmayr et al. 2022 (Algorithm 1 and Sec. 4.2, "jumps"): replacement (:mod:`npdiff.edit.replacement`) steps
down the chain, and at regular points the state is sent back up ``jump_length`` steps by the forward process,

.. math::
    x_{t} \sim q(x_t \mid x_{t-1}) = \mathcal N\big(\sqrt{1 - \beta_t}\,x_{t-1},\ \beta_t I\big)
    \qquad\text{(Ho et al. 2020, Eq. 2; Lugmayr et al. 2022, Alg. 1, line 10)}

one step at a time, and stepped down again; this is done ``resamplings - 1`` times at each such point. Each
pass down lets the unknown coordinates react to the known ones, and the forward steps up forget part of the
disagreement, so the state moves towards the conditional :math:`p(x^{\text{unknown}} \mid y)`, at the price
of more denoiser evaluations.

The order of the states follows the authors' code (``get_schedule_jump``), written with the paper's chain
indices: after a step down to chain index s with :math:`1 \le s \le K - j` and :math:`(s - 1)` a multiple of
the jump length j, the chain jumps back up j steps, ``resamplings - 1`` times at each such s
(:func:`repaint_times`).
"""

from __future__ import annotations

import numpy as np

from .._progress import progress as bar
from ..denoiser import Denoiser
from ..forward import q_xt_xtm1
from ..sample._checks import check_finite
from ..sample._common import SampleResult
from ..threads import blas_threads
from ._validate import check_inpainting, check_jumps
from .replacement import replacement_step_unchecked

__all__ = ["repaint_nfe", "repaint_sample", "repaint_times"]


def repaint_times(steps: int, jump_length: int = 10, resamplings: int = 10) -> np.ndarray:
    r"""The chain indices RePaint visits, from ``steps`` down to 0, jumps up included.

    Lugmayr et al. 2022, Sec. 4.2 and the authors' ``get_schedule_jump``: after a step down to index s with
    :math:`1 \le s \le K - j` and :math:`(s - 1) \bmod j = 0`, jump back up j indices, ``resamplings - 1``
    times at each such s.

    Parameters
    ----------
    steps : int
        K, the steps of the chain walked down once.
    jump_length : int
        j >= 1, the indices a jump goes back up; below ``steps`` when ``resamplings > 1``.
    resamplings : int
        r >= 1, the passes down at each jump point (1: plain replacement).

    Returns
    -------
    (M + 1,) int array
        The indices visited; consecutive entries differ by one.

    Examples
    --------
    >>> repaint_times(4, 1, 2).tolist()
    [4, 3, 4, 3, 2, 3, 2, 1, 2, 1, 0]
    >>> repaint_times(5, 2, 2).tolist()
    [5, 4, 3, 4, 5, 4, 3, 2, 1, 2, 3, 2, 1, 0]
    """
    steps, jump_length, resamplings = check_jumps(steps, jump_length, resamplings)
    left = {s: resamplings - 1 for s in range(1, steps - jump_length + 1) if (s - 1) % jump_length == 0}
    s, out = steps, [steps]
    while s > 0:
        s -= 1
        out.append(s)
        if left.get(s, 0) > 0:
            left[s] -= 1
            out.extend(range(s + 1, s + jump_length + 1))
            s += jump_length
    return np.asarray(out, dtype=np.int64)


def repaint_nfe(steps: int, jump_length: int = 10, resamplings: int = 10) -> int:
    r"""The denoiser evaluations of RePaint, one per step down: :math:`K + (r - 1)\,j\,\lceil (K - j)/j\rceil`.

    Examples
    --------
    >>> repaint_nfe(250, 10, 10), repaint_nfe(20, 1, 1)
    (2410, 20)
    """
    steps, jump_length, resamplings = check_jumps(steps, jump_length, resamplings)
    points = len(range(1, steps - jump_length + 1, jump_length))
    return steps + (resamplings - 1) * jump_length * points


@blas_threads()
def repaint_sample(
    denoiser: Denoiser,
    known: np.ndarray,
    mask: np.ndarray,
    n: int | None,
    rng: np.random.Generator | int,
    *,
    steps: int = 250,
    jump_length: int = 10,
    resamplings: int = 10,
    T: int = 1000,
    variance: str = "large",
    x_T: np.ndarray | None = None,
    progress: bool = False,
) -> SampleResult:
    r"""Inpaint by RePaint (Lugmayr et al. 2022, Algorithm 1 with jumps, Sec. 4.2) on the ancestral DDPM chain.

    Down a step: the replacement step (:func:`npdiff.edit.replacement.replacement_step_unchecked`,
    Lugmayr et al. 2022, Eqs. 8-10). Up a step: :math:`x_t \sim \mathcal N(\sqrt{1-\beta_t}\,x_{t-1},\ \beta_t I)`
    (Alg. 1, line 10), on the respaced chain's own betas. The indices follow :func:`repaint_times`; with
    ``resamplings = 1`` it is :func:`~npdiff.edit.replacement.replacement_sample`, draw for draw.

    Parameters
    ----------
    denoiser : Denoiser
        Follows the denoiser protocol; its ``schedule`` defines the chain.
    known : (D,) or (N, D) array
        The known values y (read where ``mask`` is True; finite everywhere).
    mask : (D,) or (N, D) array of bools or 0/1
        True where a coordinate is known.
    n : int or None
        The number of samples N (None when ``known``, ``mask`` or ``x_T`` has N rows).
    rng : np.random.Generator or int
        The only source of randomness.
    steps : int
        K, the steps of the respaced chain, 1..T.
    jump_length : int
        j >= 1, the chain indices a jump goes back up (the paper's default: 10 of 250).
    resamplings : int
        r >= 1, the passes down at each jump point (the paper's default: 10).
    T : int
        The length of the underlying chain.
    variance : str
        ``"large"`` or ``"small"``.
    x_T : (N, D) array or None
        Starting noise; drawn from N(0, I) when None.
    progress : bool
        A bar on stderr, one step down a tick.

    Returns
    -------
    SampleResult
        ``x`` (N, D), the known coordinates equal to ``known``, and ``nfe`` = :func:`repaint_nfe`.

    Examples
    --------
    The example of :func:`~npdiff.edit.replacement.replacement_sample` (conditional mean 0.9, replacement 0.6):

    >>> import numpy as np
    >>> from npdiff.analytic import GaussianData
    >>> data = GaussianData(np.zeros(2), np.array([[1.0, 0.9], [0.9, 1.0]]))
    >>> res = repaint_sample(data, [1.0, 0.0], [True, False], 2000, np.random.default_rng(0), steps=50,
    ...                      jump_length=5, resamplings=5)
    >>> print(res.nfe, round(float(res.x[:, 1].mean()), 1))
    230 0.8
    """
    denoiser, y, m, x, rng, chain, reverse_var = check_inpainting(denoiser, known, mask, n, rng, x_T, steps, T, variance)
    times = repaint_times(chain.T, jump_length, resamplings)
    nfe = int(np.count_nonzero(np.diff(times) < 0))
    moves = list(zip(times[:-1].tolist(), times[1:].tolist()))
    for s, s_next in bar(moves, total=len(moves), desc="repaint", enabled=progress):
        if s_next < s:
            x = replacement_step_unchecked(denoiser, x, s, y, m, reverse_var, rng)
        else:  # back up one step by the forward process: Lugmayr et al. 2022, Alg. 1, line 10
            mean, var = q_xt_xtm1(x, s_next, chain)
            x = check_finite(mean + np.sqrt(var) * rng.standard_normal(x.shape), f"at the jump to chain index {s_next}")
    return SampleResult(x=x, nfe=nfe)
