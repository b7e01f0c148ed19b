"""The Examples of the samplers' docstrings run, and every public sampler entry has one."""

import doctest
import importlib
import inspect

import pytest

MODULES = [
    "npdiff.sample._checks",
    "npdiff.sample.ancestral",
    "npdiff.sample.dpm_solver",
    "npdiff.sample.edm",
    "npdiff.sample.exp_integrator",
    "npdiff.sample.fast",
    "npdiff.sample.grids",
    "npdiff.sample.ode",
    "npdiff.sample.sde",
    "npdiff.sample.unipc",
]


@pytest.mark.parametrize("name", MODULES)
def test_the_examples_of_the_module_run(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples of {name} failed (output above)"


@pytest.mark.parametrize("name", [m for m in MODULES if m != "npdiff.sample._checks"])  # the helpers behind the doors
def test_every_public_function_of_the_module_has_examples(name):
    module = importlib.import_module(name)
    missing = [n for n in module.__all__ if inspect.isfunction(getattr(module, n))
               and "Examples\n" not in (inspect.getdoc(getattr(module, n)) or "")]
    assert not missing, f"{name}: public functions without an Examples section: {missing}"
