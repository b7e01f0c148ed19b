"""Static checks that CI would otherwise miss: a clean import and a clean ruff run."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_is_clean_with_warnings_as_errors():
    # invalid escape sequences in docstrings and deprecated calls surface here as errors
    proc = subprocess.run([sys.executable, "-W", "error", "-c", "import npdiff, npdiff.cli"], capture_output=True,
                          text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr


def test_no_autograd_library_inside_the_package():
    for path in (ROOT / "npdiff").rglob("*.py"):
        for line in path.read_text().splitlines():
            words = line.split()
            if words[:1] in (["import"], ["from"]) and len(words) > 1:
                root = words[1].split(".")[0]
                assert root not in {"torch", "jax", "autograd", "tensorflow"}, f"{path}: {line}"


def test_ruff_is_clean():
    # ruff is part of the test extra, configured in pyproject.toml
    cmd = [sys.executable, "-m", "ruff", "check", "npdiff", "tests", "benchmarks", "tutorials"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_no_module_imports_another_modules_private_names():
    # what modules share gets a public name in the module that owns it; a loop's formula on checked arrays is
    # the public f_unchecked beside its checked door f
    import ast

    for path in (ROOT / "npdiff").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module != "__future__":
                here = path.parent.joinpath(*[".."] * (node.level - 1), *(node.module or "").split("."))
                # a package's private module (``from . import _toy_sets``) and dunders are not another's private names
                private = [a.name for a in node.names if a.name.startswith("_") and not a.name.startswith("__")
                           and not (here / f"{a.name}.py").is_file()]
                assert not private, f"{path.relative_to(ROOT)}:{node.lineno} imports {private} from {node.module}"


def test_the_code_cites_papers_not_issue_numbers():
    import re

    pattern = re.compile(r"\b(issue|ticket)\s*#?\d+|#\d{2,}\b", re.IGNORECASE)
    for path in [*(ROOT / "npdiff").rglob("*.py"), *(ROOT / "tutorials").glob("*.py"), *(ROOT / "benchmarks").glob("*.py")]:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            assert not pattern.search(line), f"{path.relative_to(ROOT)}:{number}: {line.strip()}"


# modules whose job is checking or showing, not the math (the check-share rule does not apply to them; npdiff/cli/ is the face)
NOT_MATH = {
    "npdiff/_check.py": "the generic checks", "npdiff/checkpoint.py": "reads untrusted files: mostly checks by design",
    "npdiff/denoiser.py": "the protocol's checks", "npdiff/plot.py": "the face",
    "npdiff/sample/_checks.py": "the samplers' door checks: a validation module",
    "npdiff/sample/step_file.py": "reads step files the user hands in: mostly checks by design, no formula",
    "npdiff/data/labelled.py": "draws the data points of one class by rejection: no formula, its checks are its door",
    "npdiff/recipes.py": "a table of named training settings, not math",
    "npdiff/nn/config.py": "the network's configuration: the user's settings, checked at construction",
}


def test_every_math_module_is_at_most_30_percent_checks():
    # benchmarks/check_share.py's count: checks share of the executable lines of the function bodies
    import importlib.util

    spec = importlib.util.spec_from_file_location("check_share", ROOT / "benchmarks" / "check_share.py")
    share = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(share)
    checking = share.check_modules(None)  # _check.py and every _validate.py
    for path in checking:
        share.add_check_module((ROOT / path).read_text())
    over = {}
    for path in sorted((ROOT / "npdiff").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel in NOT_MATH or rel in checking or rel.startswith("npdiff/cli/") or path.name in ("__init__.py", "__main__.py"):
            continue
        exe, chk = share.count(path.read_text())
        if exe and chk / exe > 0.30:
            over[rel] = f"{chk}/{exe} = {chk / exe:.0%}"
    assert not over, f"modules holding math with more than 30% checks (move the checks to a validation module): {over}"
