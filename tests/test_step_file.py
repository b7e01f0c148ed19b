"""The step file: what is written is read back bit for bit, and every malformed file is refused by name."""

from __future__ import annotations

import json

import numpy as np
import pytest

from npdiff.sample.step_file import FORMAT, StepFile, check_steps_for, load_steps, nfe_for_steps, save_steps
from npdiff.schedule import cosine, log_snr_linear, vp_linear

TIMES = [1.0, 0.61, 0.23, 0.071, 0.0102, 0.001]  # 5 steps of vp_linear


def write(path, **fields):
    record = {"format": FORMAT, "version": 1, "times": TIMES, "schedule": vp_linear().config(), **fields}
    path.write_text(json.dumps(record))
    return path


def test_saved_times_and_fields_are_read_back_exactly(tmp_path):
    rng = np.random.default_rng(0)
    interior = np.sort(rng.uniform(1e-3, 1.0, 8))[::-1]  # awkward binary fractions: JSON must keep all 17 digits
    times = np.concatenate([[1.0], interior, [1e-3]])
    path = save_steps(tmp_path / "s.json", times, vp_linear(), sampler="dpmpp2m", nfe=9,
                      objective="exact KL(p_F || p_flow)", data="8gaussians", model="run/model.npz",
                      kl=0.0031, kl_se=0.0004)
    f = load_steps(path)
    assert np.array_equal(f.times, times) and f.times.dtype == np.float64
    assert f.schedule == vp_linear() and f.sampler == "dpmpp2m" and f.nfe == 9 and f.steps == 9
    assert (f.objective, f.data, f.model, f.kl, f.kl_se) == ("exact KL(p_F || p_flow)", "8gaussians",
                                                             "run/model.npz", 0.0031, 0.0004)
    assert f.t_min == 1e-3 and f.path == path
    assert not list(tmp_path.glob(".*.tmp"))  # the temporary file was renamed, not left behind


def test_a_file_of_times_and_a_schedule_only_is_enough(tmp_path):
    f = load_steps(write(tmp_path / "bare.json"))
    assert f.sampler is None and f.nfe is None and f.kl is None and f.objective is None
    assert check_steps_for(f, vp_linear()) is f  # nothing to resolve: the bound of a chain reads it like this
    g = check_steps_for(f, vp_linear(), "unipc")
    assert g.sampler == "unipc" and g.nfe == 5


def test_a_missing_budget_is_the_one_the_steps_need(tmp_path):
    f = load_steps(write(tmp_path / "s.json", sampler="heun"))
    assert f.nfe == 10  # 5 Heun steps of two evaluations


@pytest.mark.parametrize("sampler, steps, nfe", [("dpmpp2m", 10, 10), ("unipc", 7, 7), ("ddim", 1, 1), ("heun", 5, 10),
                                                 ("edm", 5, 10), ("dpm2", 4, 8), ("dpm3", 4, 11)])
def test_the_budget_for_k_steps_is_each_samplers(sampler, steps, nfe):
    # heun and edm spend two evaluations a step, dpm2 two; dpm3 in DPM-Solver-fast's layout ends on a
    # second-order step (orders 3, 3, 3, 2: 11 evaluations), which 12 would not (3, 3, 3, 2, 1: five steps)
    assert nfe_for_steps(sampler, steps) == nfe


@pytest.mark.parametrize("fields, message", [
    ({"times": [1.0, 0.001, 0.5]}, "field 'times': times must decrease strictly"),
    ({"times": [1.0, 0.5, 0.5, 0.001]}, "field 'times': times must decrease strictly"),
    ({"times": [0.9, 0.5, 0.001]}, "field 'times' must start at the schedule's t_max = 1.0"),
    ({"times": [1.0, 0.5, 0.0]}, "field 'times'"),
    ({"times": [1.0]}, "field 'times'"),
    ({"times": "1, 0.5"}, "field 'times' must be a list of numbers, got '1, 0.5'"),
    ({"times": [1.0, None, 0.001]}, "field 'times' must be a list of numbers"),
    ({"schedule": {"kind": "sqrt"}}, "field 'schedule' must be a schedule's config"),
    ({"schedule": {"kind": "vp_linear", "beta_minimum": 0.1}}, "field 'schedule'"),
    ({"sampler": "rk4"}, "field 'sampler' must be one of ddim, euler"),
    ({"sampler": "dpmpp3m", "nfe": 2}, "field 'nfe' must be at least 3 for dpmpp3m"),
    ({"sampler": "dpmpp2m", "nfe": 7}, "field 'nfe' = 7 buys 7 steps of dpmpp2m, but field 'times' holds 5 steps"),
    ({"sampler": "dpmpp2m", "nfe": 5.0}, "field 'nfe' must be an integer, got 5.0"),
    ({"nfe": 5}, "field 'nfe' counts the evaluations of a sampler, but field 'sampler' is null"),
    ({"kl": "small"}, "field 'kl' must be a finite number or null, got 'small'"),
    ({"kl_se": -0.1}, "field 'kl_se' must be a finite number >= 0 or null, got -0.1"),
    ({"data": 8}, "field 'data' must be a string or null, got 8"),
    ({"version": 2}, "field 'version' must be an integer in 1..1"),
    ({"format": "npdiff-checkpoint"}, "field 'format' must be 'npdiff-steps'"),
])
def test_a_malformed_file_is_refused_naming_the_file_and_the_field(tmp_path, fields, message):
    path = write(tmp_path / "bad.json", **fields)
    with pytest.raises(ValueError) as exc:
        load_steps(path)
    assert f"step file '{path}'" in str(exc.value) and message in str(exc.value), str(exc.value)


@pytest.mark.parametrize("text, message", [("{not json", "is not JSON"), ("[1.0, 0.5]", "field 'format'"),
                                           ('{"format": "npdiff-steps", "version": 1, "times": [1.0, 0.1]}',
                                            "field 'schedule' is missing")])
def test_a_file_that_is_not_a_step_file_is_refused(tmp_path, text, message):
    path = tmp_path / "x.json"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        load_steps(path)
    with pytest.raises(ValueError, match="cannot be read"):
        load_steps(tmp_path / "missing.json")


@pytest.mark.parametrize("schedule", [cosine(), log_snr_linear(), vp_linear(0.1, 19.0)])
def test_times_for_another_schedule_are_refused(tmp_path, schedule):
    f = load_steps(write(tmp_path / "s.json", sampler="dpmpp2m"))
    with pytest.raises(ValueError) as exc:
        check_steps_for(f, schedule)
    text = str(exc.value)
    assert f"step file '{tmp_path / 's.json'}'" in text and "VPLinear(beta_min=0.1, beta_max=20.0)" in text
    assert repr(schedule) in text


def test_another_sampler_runs_the_files_steps_or_is_refused(tmp_path):
    f = load_steps(write(tmp_path / "s.json", sampler="dpmpp2m", nfe=5))
    assert check_steps_for(f, vp_linear(), "dpmpp2m") is f
    heun = check_steps_for(f, vp_linear(), "heun")
    assert (heun.sampler, heun.nfe) == ("heun", 10) and np.array_equal(heun.times, f.times)
    one_step = StepFile(np.array([1.0, 1e-3]), vp_linear(), "ddim", 1)
    with pytest.raises(ValueError, match="dpmpp3m cannot walk a grid of 1 steps"):
        check_steps_for(one_step, vp_linear(), "dpmpp3m")
    with pytest.raises(ValueError, match="field 'sampler' must be one of"):
        check_steps_for(f, vp_linear(), "rk45")
    with pytest.raises(TypeError, match="step_file must be a StepFile"):
        check_steps_for({"times": TIMES}, vp_linear())


def test_saving_checks_what_it_writes(tmp_path):
    with pytest.raises(ValueError, match="times must decrease strictly"):
        save_steps(tmp_path / "s.json", [1.0, 0.001, 0.5], vp_linear())
    with pytest.raises(ValueError, match=r"times\[0\] must lie in \(0.0, 0.999\], got 1.0"):
        save_steps(tmp_path / "s.json", [1.0, 0.5, 0.001], cosine())  # cosine stops at t_max = 0.999
    with pytest.raises(ValueError, match=r"must start at the schedule's t_max = 0\.999"):
        save_steps(tmp_path / "s.json", [0.9, 0.5, 0.001], cosine())
    with pytest.raises(ValueError, match="must be at least 2 for dpmpp2m"):
        save_steps(tmp_path / "s.json", [1.0, 0.001], vp_linear(), sampler="dpmpp2m", nfe=1)
    assert not list(tmp_path.iterdir())  # nothing written for a refused call


def test_the_examples_of_the_module_run_and_every_public_function_has_one():
    import doctest
    import inspect

    import npdiff.sample.step_file as module

    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.attempted > 0 and result.failed == 0, result
    missing = [n for n in module.__all__ if inspect.isfunction(getattr(module, n))
               and "Examples\n" not in (inspect.getdoc(getattr(module, n)) or "")]
    assert not missing, missing
