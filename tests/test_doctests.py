"""The Examples sections of the docstrings run, and print what they say they print."""

import doctest
import importlib

import numpy as np
import pytest

# each module's public entries carry a runnable Examples section (numpydoc)
MODULES = [
    "npdiff.schedule",
    "npdiff.gaussian",
    "npdiff.forward",
    "npdiff.reverse",
    "npdiff.reverse_variance",
    "npdiff.parameterization",
    "npdiff.thresholding",
    "npdiff.edit.sdedit",
]


@pytest.mark.parametrize("name", MODULES)
def test_the_examples_run(name):
    module = importlib.import_module(name)
    with np.printoptions(legacy=False):
        result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples of {name} failed (see the output above)"


@pytest.mark.parametrize("name", MODULES)
def test_every_public_entry_has_examples(name):
    module = importlib.import_module(name)
    own = [n for n in module.__all__ if getattr(getattr(module, n), "__module__", None) == name
           and callable(getattr(module, n))]
    missing = [n for n in own if "Examples\n" not in (getattr(module, n).__doc__ or "")]
    assert not missing, f"{name}: public entries without an Examples section: {missing}"
