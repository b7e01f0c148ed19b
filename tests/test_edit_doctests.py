"""The Examples of the editing modules' docstrings run, and every public editing function has one."""

import doctest
import importlib
import inspect

import pytest

MODULES = ["npdiff.edit.mask", "npdiff.edit.replacement", "npdiff.edit.repaint", "npdiff.edit.guided",
           "npdiff.edit.conditional", "npdiff.edit.coarse"]


@pytest.mark.parametrize("name", MODULES)
def test_the_examples_of_the_module_run(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples of {name} failed (output above)"


@pytest.mark.parametrize("name", MODULES)
def test_every_public_function_of_the_module_has_examples(name):
    # the formulas on checked arrays (``*_unchecked``) are shown through the checked functions' examples
    module = importlib.import_module(name)
    missing = [n for n in module.__all__ if inspect.isfunction(getattr(module, n)) and not n.endswith("_unchecked")
               and "Examples\n" not in (inspect.getdoc(getattr(module, n)) or "")]
    assert not missing, f"{name}: public functions without an Examples section: {missing}"


def test_the_metric_example_runs():
    from npdiff import metrics

    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    fn = metrics.wasserstein1_to_cdf
    for t in finder.find(fn, "wasserstein1_to_cdf", globs={"wasserstein1_to_cdf": fn}):
        runner.run(t)
    assert runner.tries > 0 and runner.failures == 0
