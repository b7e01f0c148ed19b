"""One source of randomness and one progress keyword across the API.

A seed is accepted wherever a Generator is, and draws exactly what ``np.random.default_rng(seed)``
would; ``progress`` turns on a bar on stderr in the trainer, every sampler and the likelihoods
(the adaptive solvers show the share of their time interval reached).
"""

import numpy as np
import pytest

from npdiff._check import as_generator
from npdiff._progress import TimeBar
from npdiff.analytic import GaussianData
from npdiff.likelihood import image_bpd, ode_log_likelihood, vlb
from npdiff.nn import MLPConfig
from npdiff.sample import ddim_sample, ddpm_sample, ode_sample, sde_sample, solve_flow
from npdiff.schedule import vp_linear
from npdiff.train import train

ORACLE = GaussianData(np.array([0.5, -0.5]), np.array([[1.0, 0.3], [0.3, 0.5]]), vp_linear())


def test_a_seed_draws_what_its_generator_draws():
    x = np.random.default_rng(1).standard_normal((6, 2))
    pairs = [
        (lambda r: ddpm_sample(ORACLE, 5, r, steps=4).x),
        (lambda r: sde_sample(ORACLE, 5, r, steps=4).x),
        (lambda r: ode_sample(ORACLE, 5, r, method="euler", steps=3).x),
        (lambda r: vlb(ORACLE, x, 4, rng=r).total),
        (lambda r: ORACLE.sample(7, r)),
    ]
    for i, call in enumerate(pairs):
        np.testing.assert_array_equal(call(11), call(np.random.default_rng(11)), err_msg=f"call {i}")
    cfg = MLPConfig(width=8, depth=1, emb_dim=4)
    data = np.random.default_rng(2).standard_normal((32, 2))
    _, h_seed = train(cfg, data, rng=4, steps=3, batch_size=8, progress=False)
    _, h_gen = train(cfg, data, rng=np.random.default_rng(4), steps=3, batch_size=8, progress=False)
    np.testing.assert_array_equal(h_seed["loss"], h_gen["loss"])


def test_a_generator_is_used_as_it_is_and_bad_sources_are_refused():
    g = np.random.default_rng(0)
    assert as_generator(g) is g
    assert as_generator(np.int64(3)).integers(0, 2**30) == np.random.default_rng(3).integers(0, 2**30)
    with pytest.raises(ValueError, match="rng as a seed must be an int >= 0, got -1"):
        ddpm_sample(ORACLE, 3, -1, steps=2)
    for bad in (None, True, 1.5, "0", np.random.RandomState(0)):
        with pytest.raises(TypeError, match=r"rng must be a numpy\.random\.Generator or an int seed"):
            ddim_sample(ORACLE, 3, bad, steps=2)


RUNS = {
    "ddpm": lambda p: ddpm_sample(ORACLE, 4, 0, steps=3, progress=p),
    "ddim": lambda p: ddim_sample(ORACLE, 4, 0, steps=3, progress=p),
    "sde": lambda p: sde_sample(ORACLE, 4, 0, steps=3, progress=p),
    "ode heun": lambda p: ode_sample(ORACLE, 4, 0, method="heun", steps=3, progress=p),
    "ode rk45": lambda p: ode_sample(ORACLE, 4, 0, rtol=1e-3, atol=1e-3, progress=p),
    "solve_flow": lambda p: solve_flow(ORACLE, np.zeros((4, 2)), 0.9, 0.1, rtol=1e-3, atol=1e-3, progress=p),
    "ode likelihood": lambda p: ode_log_likelihood(ORACLE, np.zeros((4, 2)), rtol=1e-3, atol=1e-3, progress=p),
    "vlb": lambda p: vlb(ORACLE, np.zeros((4, 2)), 5, rng=0, progress=p),
    "image_bpd": lambda p: image_bpd(ORACLE, np.array([[-1.0, 1.0]]), 3, 0, T=4, rtol=1e-3, atol=1e-3, progress=p),
    "train": lambda p: train(MLPConfig(width=8, depth=1, emb_dim=4), np.zeros((8, 2)), rng=0, steps=60, batch_size=4,
                             progress=p),
}
WORDS = {"ddpm": "ddpm", "ddim": "ddim", "sde": "sde", "ode heun": "ode-heun", "ode rk45": "ode-rk45",
         "solve_flow": "ode-rk45", "ode likelihood": "likelihood ODE", "vlb": "VLB", "image_bpd": "likelihood ODE",
         "train": "train"}  # the bars' names (tqdm redraws the rest at most ten times a second)


@pytest.mark.parametrize("name", RUNS)
def test_progress_shows_a_bar_on_stderr_only_when_asked(capsys, name):
    RUNS[name](False)
    quiet = capsys.readouterr()
    assert quiet.out == "" and quiet.err == "", f"{name} wrote without being asked: {quiet}"
    RUNS[name](True)
    shown = capsys.readouterr()
    assert shown.out == "" and WORDS[name] in shown.err, f"{name}: {shown.err!r}"


@pytest.mark.parametrize("run", [ddpm_sample, ddim_sample, ode_sample, sde_sample])
def test_the_samplers_old_keyword_progress_bar_is_gone_and_refused_by_name(run):
    with pytest.raises(TypeError, match="progress_bar"):
        run(ORACLE, 4, 0, progress_bar=True)


def test_the_time_bar_shows_the_furthest_time_reached_in_either_direction():
    for start, end, times, done in [(0.0, 1.0, [0.1, 0.5, 0.3, 1.0], 1000), (1.0, 0.2, [0.9, 0.6, 0.8], 500)]:
        with TimeBar(start, end, enabled=True) as reached:
            for t in times:
                reached(t)
            assert reached.done == done and reached.nfe == len(times), (start, end, reached.done)
    with TimeBar(0.0, 1.0, enabled=False) as off:
        off(0.5)
        assert off.bar is None and off.done == 0
