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
