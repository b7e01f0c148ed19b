"""How npdiff/sample reads: checks at the door, the math in the module that owns it."""

import ast
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "npdiff" / "sample"
VALIDATION = {"_checks.py",  # the samplers' validation module, whose job is checking
              "step_file.py"}  # reads a file the user hands in: its fields' checks are its job, it holds no formula


def _check_share():
    spec = importlib.util.spec_from_file_location("check_share", ROOT / "benchmarks" / "check_share.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.add_check_module((ROOT / "npdiff" / "_check.py").read_text())
    return module


@pytest.mark.parametrize("path", sorted(p.name for p in SAMPLE.glob("*.py") if p.name not in VALIDATION))
def test_at_most_30_percent_of_a_sampler_module_is_checking(path):
    executable, checks = _check_share().count((SAMPLE / path).read_text())
    assert checks <= 0.30 * executable, f"npdiff/sample/{path}: {checks} of {executable} executable lines are checks"


def test_no_sampler_hangs_an_unchecked_core_on_its_public_function():
    # a module's private loop is called inside the module; other modules call the public function
    hung = [f"npdiff/sample/{path.name}:{node.lineno}" for path in sorted(SAMPLE.glob("*.py"))
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Attribute) and node.attr == "unchecked" and isinstance(node.ctx, ast.Store)]
    assert not hung, f"these set .unchecked on a public function: {hung}"
