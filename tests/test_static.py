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
    # what modules share gets a public name in the module that owns it; a loop's unchecked core is f.unchecked
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
