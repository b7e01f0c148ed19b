"""The book holds no lab notes: no temporary-folder path, load average, commit hash or date of a run.

The pages (``docs/``, the README, the chapters in ``tutorials/``) explain the figures; the run that made a
figure is described by its results file (``benchmarks/results/*.json``, which carries the date and the
machine by design and is not scanned here). A path into a temporary folder points at nothing a reader
has, a load average or a date describes one afternoon on one machine, and a commit hash or a branch's
history is the project's past, which belongs in its version control, not in its text.

Each rule is a regular expression, and each is tested here on lines it must flag and on lines it must
leave alone (hex-looking numbers that are not hashes, dates that are not ISO dates), so that the scan
fails for the right reason.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TEXT_SUFFIXES = {".py", ".md", ".rst", ".txt", ".bib", ".html", ".cfg", ".toml"}
PAGE_SUFFIXES = {".md", ".rst", ".py"}  # where a date would be prose (docs' own code is not a page)
# made by a build or a run, not written: the site, the API pages and gallery copies, the chapters' output
GENERATED = {("docs", "_build"), ("docs", "api"), ("docs", "tutorials"), ("tutorials", "out")}

TEMP_PATH = re.compile(
    r"(?<![\w.~-])(/tmp/|/var/tmp/|(/private)?/var/folders/|[A-Za-z]:\\(Users\\[^\\\s]+\\)?AppData\\Local\\Temp)"
)
# "load average 7-8", and the short form a run's note takes: "load 5.57 at the start", "(load not recorded)"
LOAD_AVERAGE = re.compile(r"\bload[- ]?averages?\b|\bloadavg\b|\bload\s+(\d+\.\d+|not recorded)", re.IGNORECASE)
# a hex token of 7 to 40 characters with both a digit and a letter, not inside a longer word or number,
# not a literal (0x..., #colour) and not a number in scientific notation (1e10000, 12e345)
_HEX = r"(?<![\w#.\-])(?!0x)(?=[0-9a-f]*[0-9])(?=[0-9a-f]*[a-f])(?![0-9]{1,3}e[0-9]+\b)[0-9a-f]{7,40}(?![\w\-]|\.\d)"
# the words around a hash that make it a commit: within the same line, 60 characters either side
_COMMITISH = (r"\b(commits?|committed|merged?|merging|head|branch(es)?|sha1?|revision|rev|git|cherry-pick(ed)?"
              r"|rebased?|checkout|tag(ged)?|main as)\b")
COMMIT_HASH = re.compile(rf"{_COMMITISH}.{{0,60}}?{_HEX}|{_HEX}.{{0,60}}?{_COMMITISH}", re.IGNORECASE)
FULL_SHA = re.compile(r"(?<![\w])[0-9a-f]{40}(?![\w])")
ISO_DATE = re.compile(r"(?<![\w.\-])(19|20)\d\d-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])(?![\w])")


def _scanned() -> list[Path]:
    files = [REPO / "README.md"]
    for top in ("docs", "tutorials"):
        for path in sorted((REPO / top).rglob("*")):
            parts = path.relative_to(REPO).parts
            if not path.is_file() or path.suffix not in TEXT_SUFFIXES:
                continue
            if parts[:2] in GENERATED or "__pycache__" in parts or any(p.startswith(".") for p in parts):
                continue
            files.append(path)
    return [f for f in files if f.is_file()]


def _hex_is_commit(line: str) -> bool:
    # the commit-ish pattern, with the hex part checked case-sensitively (hashes are written in lower case)
    return any(re.search(_HEX, m.group(0)) for m in COMMIT_HASH.finditer(line)) or FULL_SHA.search(line) is not None


def lab_notes(path: Path) -> list[str]:
    r"""Every line of ``path`` that holds a temporary-folder path, a load average, a commit hash or a date."""
    found = []
    is_page = path.suffix in PAGE_SUFFIXES and path.parent.name != "_ext" and path.name not in ("conf.py", "test_site.py")
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
        where = f"{path.relative_to(REPO)}:{number}"
        if TEMP_PATH.search(line):
            found.append(f"{where}: temporary-folder path: {line.strip()[:120]}")
        if LOAD_AVERAGE.search(line):
            found.append(f"{where}: load average: {line.strip()[:120]}")
        if _hex_is_commit(line):
            found.append(f"{where}: commit hash: {line.strip()[:120]}")
        if is_page and ISO_DATE.search(line):
            found.append(f"{where}: date: {line.strip()[:120]}")
    return found


def test_the_scan_covers_the_pages() -> None:
    names = {p.relative_to(REPO).as_posix() for p in _scanned()}
    assert {"README.md", "docs/index.md", "docs/conf.py", "tutorials/_common.py"} <= names
    assert not [n for n in names if n.startswith(("docs/_build/", "docs/api/", "docs/tutorials/", "tutorials/out/"))]


@pytest.mark.parametrize("path", _scanned(), ids=lambda p: p.relative_to(REPO).as_posix())
def test_no_lab_notes(path: Path) -> None:
    found = lab_notes(path)
    assert not found, f"{len(found)} lab notes:\n" + "\n".join(found[:20])


@pytest.mark.parametrize("line", [
    "the rows were read from /tmp/npdiff-samplers-7/kl.json",
    "saved in /var/folders/x1/abc/T/run",
    "saved in /private/var/folders/x1/abc/T/run",
    r"C:\Users\me\AppData\Local\Temp\run",
])
def test_temporary_paths_are_flagged(line: str) -> None:
    assert TEMP_PATH.search(line)


@pytest.mark.parametrize("line", ["figures in ./npdiff-demo", "docs/_build/html", "a ratio 3/tmp/2 is not a path", "~/tmp/x"])
def test_other_paths_are_not_flagged(line: str) -> None:
    assert not TEMP_PATH.search(line)


@pytest.mark.parametrize("line", ["at load average 7-8 it took 413 s", "(Load averages: 1.2)", "the loadavg was 3",
                                  "Run at 11:20, load 5.83:", "(load not recorded)", "at load 0.45, AMD EPYC"])
def test_load_averages_are_flagged(line: str) -> None:
    assert LOAD_AVERAGE.search(line)


def test_loads_that_are_not_load_averages_pass() -> None:
    assert not LOAD_AVERAGE.search("load(path).model is the EMA denoiser; the page loads offline; average loss")
    assert not LOAD_AVERAGE.search("load 2 checkpoints, then the load of the few-step row")


@pytest.mark.parametrize("line", [
    "head of the samplers branch (2cb8e5c), merged into main as 9019b96",
    "fixed in commit 3127755e",
    "git show 5111e87",
    "reverted by a16dd87 (see the merge)",
    "a9f4c2e07d1b5e8f3a6c9d2b7e4f1a8c5d2e9b6f",  # a full SHA-1 needs no context
])
def test_commit_hashes_are_flagged(line: str) -> None:
    assert _hex_is_commit(line), line


@pytest.mark.parametrize("line", [
    "seed 1234567 on the main branch",  # digits only: a number
    "the merge takes 1e10000 steps, or 12e3456",  # scientific notation
    "colour #1f77b4ff in the commit figure",  # a colour
    "0xdeadbeef7 is the commit sentinel",  # a hex literal
    "branch accede defaced",  # letters only: words
    "md5 9e107d9d372bb6826bd81d3542a419d6 of the file",  # a checksum, not near a commit word
    "the head's weights w1a2b3c4d5 and the branch",  # inside a longer word
    "np.float64 values 1.2345678e-05 on the branch",  # a float
    "arXiv 2006.11239 (the head of the list)",
])
def test_hex_looking_numbers_that_are_not_commits_pass(line: str) -> None:
    assert not _hex_is_commit(line), line


@pytest.mark.parametrize("line", ["run on 2026-12-05 at noon", "(2024-02-29)", "dated 1999-12-31."])
def test_iso_dates_are_flagged(line: str) -> None:
    assert ISO_DATE.search(line)


@pytest.mark.parametrize("line", ["Ho et al. 2020, Eq. 4", "2.20-2.37 bits/dim", "T = 1000-2000 steps",
                                  "arXiv 2006.11239", "version 2024-13-01 is not a date", "0.2020-05-01x"])
def test_numbers_that_are_not_dates_pass(line: str) -> None:
    assert not ISO_DATE.search(line)
