r"""The tutorial chapters as a sphinx-gallery: each chapter rewritten into gallery cells, run, its figures shown.

A chapter (``tutorials/NN_*.py``) is a plain script a reader runs: a docstring whose first line is
"Chapter N: title.", an essay in comments between two rule lines (``# ----...``) with numbered headings
("# 1. One line of math") and indented formulas, then code split by heading comments
(``# -- what this part checks --------``). Before the gallery is generated, each chapter is copied into
sphinx-gallery's format without touching its code: the docstring gets an underlined title, the essay and
each heading comment become text cells (``# %%``), the formulas literal blocks, and the characters that
reStructuredText would read as markup (``|``, `````, a trailing ``_``, a ``*`` that is not emphasis) are
escaped. The chapters therefore stay what they are, and a new chapter written the same way is rendered
with no edit here. Everything else (every statement, every comment inside the code) is copied verbatim,
which a test checks by comparing the syntax trees of a chapter and its copy.

Chapters save their figures to files and close them (``Chapter.save``), so the gallery's matplotlib
scraper would see nothing: :func:`chapter_files_scraper` shows instead the PNG and GIF files a cell wrote
into the chapter's output folder, which :func:`reset_argv` passes as ``--out`` beside ``--quick``.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import sys
from pathlib import Path

RULE = re.compile(r"^# -{10,}\s*$")
HEADING = re.compile(r"^# -- (?P<title>.*?)\s*-*\s*$")
NUMBERED = re.compile(r"^\d+\.\s+\S")
LABEL = re.compile(r"^([A-Z][a-z]+:)\s+")  # a docstring's "Run:" and "Writes:" lines
# what starts a list, a directive, a field, an option or a doctest at the head of a reST paragraph
BLOCK_START = re.compile(r"^([*+-](\s|$)|\.\.|>>>|:|[-+/]\w|--\w)")
ENUMERATOR = re.compile(r"^\(?(\d+|[A-Za-z]|[ivxlcdmIVXLCDM]+|#)(?=[.)](\s|$))")
# *a phrase*, where docutils reads one: after a space or an opening mark, before a space or a closing mark
EMPHASIS = re.compile(r"""(?<![^\s\-:/'"<(\[{])\*(?=[^\s*])([^*\n]*?[^\s*\\])\*(?=$|[\s\-.,:;!?/'")\]}>])""")
CHAPTER_FILE = re.compile(r"^\d\d_\w+\.py$")
FIGURE_SUFFIXES = (".png", ".gif")


def escape(text: str) -> str:
    r"""Plain text as reStructuredText that renders as the same characters.

    Backslashes, backquotes and vertical bars are always escaped (never meant as markup in a chapter),
    so are an underscore not followed by a letter or digit (a reference such as ``alpha_``) and a ``*``
    that is not one of a pair around a phrase (``eps*``, ``a * b``), and a final ``::``; ``*a phrase*`` stays
    emphasis.
    """
    text = text.replace("\\", "\\\\").replace("`", "\\`").replace("|", "\\|")
    text = re.sub(r"_(?![^\W_])", r"\\_", text)
    text = re.sub(r"::$", r":\\:", text, flags=re.M)  # a paragraph ending in "::" would announce a literal block
    keep = []

    def _hold(match: re.Match) -> str:
        keep.append(match.group(0))
        return f"\x00{len(keep) - 1}\x00"

    text = EMPHASIS.sub(_hold, text).replace("*", "\\*")
    return re.sub("\x00(\\d+)\x00", lambda m: keep[int(m.group(1))], text)


def _escape_start(line: str) -> str:
    r"""Escape the start of a paragraph that reST would read as a list, a directive, a field or an option."""
    enumerator = ENUMERATOR.match(line)
    if enumerator:  # "1\. text": an escaped period reads as a period in reST and in Markdown alike
        return f"{line[:enumerator.end()]}\\{line[enumerator.end():]}"
    return "\\" + line if BLOCK_START.match(line) else line


def prose_to_rst(lines: list[str], heading: str = "-") -> list[str]:
    r"""Paragraphs of plain text (comment markers removed) as reST lines.

    A paragraph that is one numbered line ("1. One line of math") becomes a section title underlined
    with ``heading``; an indented paragraph (a formula, a table, an indented list) a literal block;
    anything else a paragraph of escaped text. A paragraph that starts flush and then indents is split
    into the two; a line that starts with a label ("Run:", "Writes:") starts a paragraph, label in bold.
    """
    out: list[str] = []
    paragraphs: list[list[str]] = [[]]
    for line in lines:
        if LABEL.match(line) and paragraphs[-1]:  # "Run: ..." and "Writes: ..." each a paragraph of its own
            paragraphs.append([])
        if line.strip():
            paragraphs[-1].append(line.rstrip())
        elif paragraphs[-1]:
            paragraphs.append([])
    for para in (p for p in paragraphs if p):
        flush = []
        while para and not para[0].startswith(" "):
            flush.append(para.pop(0))
        if len(flush) == 1 and not para and NUMBERED.match(flush[0]):
            title = _escape_start(escape(flush[0]))
            out += [title, heading * len(title), ""]
            continue
        if flush:
            label = LABEL.match(flush[0])
            first = f"**{label.group(1)}** {escape(flush[0][label.end():])}" if label else _escape_start(escape(flush[0]))
            out += [first] + [escape(x) for x in flush[1:]] + [""]
        if para:  # indented: shown as it is written, alignment and all
            indent = min(len(x) - len(x.lstrip()) for x in para)
            out += [".. code-block:: text", ""] + ["    " + x[indent:] for x in para] + [""]
    return out


def _comment_text(line: str) -> str:
    return line[2:] if line.startswith("# ") else line[1:]


def _as_comments(rst: list[str]) -> list[str]:
    return [f"# {x}" if x else "#" for x in rst]


def to_gallery(source: str) -> str:
    r"""A chapter's source rewritten as a sphinx-gallery script: same statements, prose as text cells."""
    tree = ast.parse(source)
    doc = ast.get_docstring(tree, clean=True)
    if doc is None or not isinstance(tree.body[0], ast.Expr):
        raise ValueError("a chapter must start with its docstring, whose first line is its title")
    lines = source.splitlines()
    first, *rest = doc.splitlines()
    title = escape(first.strip().rstrip("."))
    head = ['r"""', title, "=" * len(title), "", *prose_to_rst(rest), '"""']
    body = lines[tree.body[0].end_lineno :]

    out = head
    i = 0
    while i < len(body):
        line = body[i]
        if RULE.match(line):  # an essay: the comment lines up to the next rule (or to the first code line)
            j = i + 1
            while j < len(body) and body[j].startswith("#") and not RULE.match(body[j]):
                j += 1
            essay = [_comment_text(x) for x in body[i + 1 : j]]
            out += ["", "# %%", *_as_comments(prose_to_rst(essay))]
            i = j + 1 if j < len(body) and RULE.match(body[j]) else j
            continue
        heading = HEADING.match(line)
        if heading and heading.group("title"):
            title = _escape_start(escape(heading.group("title")))
            out += ["", "# %%", *_as_comments([title, "-" * len(title)]), ""]
            i += 1
            continue
        out.append(line)
        i += 1
    return "\n".join(out).rstrip() + "\n"


# -- the build's side: the converted copies, the arguments, the figures ------------------------------

_state: dict = {"out": None, "seen": {}}


def chapter_out(srcdir: Path, full: bool) -> Path:
    r"""The folder the chapters write their figures and models to, one per mode (quick or full)."""
    return Path(srcdir) / "_build" / "chapter-out" / ("full" if full else "quick")


def write_gallery_sources(tutorials: Path, dest: Path, header: str) -> list[Path]:
    r"""Convert every chapter of ``tutorials`` into ``dest`` (rewriting only what changed), with the gallery header."""
    dest.mkdir(parents=True, exist_ok=True)
    wanted = {dest / "GALLERY_HEADER.rst": header}
    for path in sorted(tutorials.glob("*.py")):
        if CHAPTER_FILE.match(path.name):
            wanted[dest / path.name] = to_gallery(path.read_text())
    for path, text in wanted.items():
        if not path.is_file() or path.read_text() != text:  # unchanged copies are not run again
            path.write_text(text)
    for stale in set(dest.iterdir()) - set(wanted):
        if stale.is_file():
            stale.unlink()
    return sorted(wanted)


def _snapshot(folder: Path) -> dict[Path, tuple[int, int]]:
    if not folder.is_dir():
        return {}
    return {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in folder.iterdir() if p.suffix in FIGURE_SUFFIXES}


def reset_argv(gallery_conf: dict, script_vars: dict) -> list[str]:
    r"""The command line every chapter runs with in the gallery: ``--quick`` unless a full build, and ``--out``."""
    out = _state["out"]
    _state["seen"] = _snapshot(out)  # what the folder held before this chapter: not its figures
    # relative to the folder the gallery runs the chapter in, so the printed paths name no machine's folders
    rel = os.path.relpath(out, Path(script_vars["src_file"]).parent)
    return ["--out", rel] if _state["full"] else ["--quick", "--out", rel]


def chapter_files_scraper(block, block_vars: dict, gallery_conf: dict) -> str:
    r"""The figure files the cell just run wrote (new or rewritten since the last look), as gallery images."""
    from sphinx_gallery.scrapers import figure_rst

    now = _snapshot(_state["out"])
    new = sorted((p for p, stamp in now.items() if _state["seen"].get(p) != stamp), key=lambda p: (now[p][0], p.name))
    _state["seen"] = now
    shown = []
    for path in new:
        target = Path(next(block_vars["image_path_iterator"])).with_suffix(path.suffix)
        shutil.copyfile(path, target)
        shown.append(str(target))
    return figure_rst(shown, gallery_conf["src_dir"])


def _on_config_inited(app, config) -> None:
    docs = Path(app.srcdir)
    # the chapters import their shared plumbing (``from _common import ...``) from the tutorials folder
    if str(docs.parent / "tutorials") not in sys.path:
        sys.path.insert(0, str(docs.parent / "tutorials"))
    full = os.environ.get("NPDIFF_DOCS_FULL", "") not in ("", "0")
    _state.update(full=full, out=chapter_out(docs, full))
    _state["out"].mkdir(parents=True, exist_ok=True)
    header = (Path(__file__).parent / "gallery_header.rst").read_text()
    write_gallery_sources(docs.parent / "tutorials", docs / "_build" / "chapters", header)
    # a change of mode reruns every chapter: the gallery keys its cache on the source, which is the same
    stamp = docs / "tutorials" / ".mode"
    mode = "full" if full else "quick"
    if stamp.is_file() and stamp.read_text() != mode:
        shutil.rmtree(docs / "tutorials")
    (docs / "tutorials").mkdir(exist_ok=True)
    stamp.write_text(mode)


def setup(app) -> dict:
    app.connect("config-inited", _on_config_inited)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
