"""Bad input to the inpainters: a clear error naming the argument, before any work."""

from __future__ import annotations

import numpy as np
import pytest

from npdiff.analytic import GaussianData
from npdiff.edit import (
    data_fit_gradient,
    dps_sample,
    reconstruction_guidance_sample,
    repaint_nfe,
    repaint_sample,
    repaint_times,
    replacement_sample,
)

DATA = GaussianData(np.zeros(2), np.eye(2))
OK = dict(known=np.array([1.0, 0.0]), mask=np.array([True, False]), n=4, rng=0)
SAMPLERS = [replacement_sample, repaint_sample, dps_sample, reconstruction_guidance_sample]


class NoVJP:
    """The oracle without its eps_vjp."""

    schedule, dim = DATA.schedule, 2

    def eps(self, x, t):
        return DATA.eps(x, t)

    def eps_and_divergence(self, x, t):
        return DATA.eps_and_divergence(x, t)


@pytest.mark.parametrize("sampler", SAMPLERS)
@pytest.mark.parametrize("change, error, match", [
    (dict(mask=np.array([True, False, True])), ValueError, "mask"),  # wrong width
    (dict(mask=np.array([[True, False]] * 3)), ValueError, "mask.*one row per sample"),  # 3 rows for n = 4
    (dict(mask=np.array([True, True])), ValueError, "mask.*every coordinate"),
    (dict(mask=np.array([0, 0])), ValueError, "mask.*no coordinate"),
    (dict(mask=np.array([0, 2])), ValueError, "mask.*0 and 1"),
    (dict(mask=np.zeros((2, 2, 2), dtype=bool)), ValueError, "mask"),
    (dict(mask="left"), TypeError, "mask"),
    (dict(mask=np.array([0.5j, 1])), TypeError, "mask"),
    (dict(known=np.array([np.nan, 0.0])), ValueError, "known"),
    (dict(known=np.array([1.0, 0.0, 2.0])), ValueError, "known"),
    (dict(known=np.array([[1.0, 0.0]] * 5)), ValueError, "known"),
    (dict(n=0), ValueError, "n"),
    (dict(rng="seed"), TypeError, "rng"),
    (dict(steps=0), ValueError, "steps"),
    (dict(steps=2000), ValueError, "steps"),
    (dict(variance="analytic"), ValueError, "variance"),
])
def test_bad_arguments_are_refused_by_name(sampler, change, error, match):
    kw = {**OK, "steps": 5, **change}
    with pytest.raises(error, match=match):
        sampler(DATA, **kw)


@pytest.mark.parametrize("kw, match", [(dict(jump_length=0), "jump_length"), (dict(resamplings=0), "resamplings"),
                                       (dict(jump_length=5, resamplings=2), "jump_length"),
                                       (dict(jump_length=1.5), "jump_length")])
def test_bad_jumps(kw, match):
    with pytest.raises((ValueError, TypeError), match=match):
        repaint_sample(DATA, **OK, steps=5, **kw)
    with pytest.raises((ValueError, TypeError), match=match):
        repaint_times(5, **kw)
    with pytest.raises((ValueError, TypeError), match=match):
        repaint_nfe(5, **kw)


@pytest.mark.parametrize("sampler, name", [(dps_sample, "scale"), (reconstruction_guidance_sample, "weight")])
def test_bad_guidance(sampler, name):
    for bad in (-1.0, np.nan, "big"):
        with pytest.raises((ValueError, TypeError), match=name):
            sampler(DATA, **OK, steps=5, **{name: bad})
    with pytest.raises(TypeError, match="eps_vjp"):
        sampler(NoVJP(), **OK, steps=5)


def test_data_fit_gradient_refuses_bad_input():
    x = np.zeros((2, 2))
    with pytest.raises(TypeError, match="eps_vjp"):
        data_fit_gradient(NoVJP(), x, 0.5, [1.0, 0.0], [1, 0])
    with pytest.raises(ValueError, match="t"):
        data_fit_gradient(DATA, x, 0.0, [1.0, 0.0], [1, 0])
    with pytest.raises(ValueError, match="t"):
        data_fit_gradient(DATA, x, 1.5, [1.0, 0.0], [1, 0])
    with pytest.raises(ValueError, match="mask"):
        data_fit_gradient(DATA, x, 0.5, [1.0, 0.0], [1, 1])

