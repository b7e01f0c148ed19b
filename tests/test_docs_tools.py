"""The site's two build tools: chapters rewritten as gallery scripts, and the API pages and their references.

The chapter rewrite must keep every statement of a chapter (checked on the syntax trees of every real
chapter) and must turn its prose into reStructuredText that docutils renders as the very characters the
author wrote (checked by parsing the output with docutils, for generated text full of the characters
reST treats as markup). The API side must list npdiff's public modules in the README's order and send a
reference through a re-export to where the object is defined.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import docutils.core
import docutils.nodes
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "docs" / "_ext"))

import api_pages  # noqa: E402
import gallery_chapters  # noqa: E402

CHAPTERS = sorted(p for p in (REPO / "tutorials").glob("*.py") if re.match(r"\d\d_", p.name))


def _body_dump(source: str) -> list[str]:
    # the statements after the docstring, without line numbers: what the interpreter runs
    return [ast.dump(node) for node in ast.parse(source).body[1:]]


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_a_chapter_and_its_gallery_copy_run_the_same_statements(path: Path) -> None:
    source = path.read_text()
    copy = gallery_chapters.to_gallery(source)
    assert _body_dump(copy) == _body_dump(source), f"{path.name}: the gallery copy changed the code"
    first_line = ast.get_docstring(ast.parse(source)).splitlines()[0]
    title, underline = ast.get_docstring(ast.parse(copy)).splitlines()[:2]
    assert first_line.startswith(title.replace("\\", "")), (title, first_line)
    assert set(underline) == {"="} and len(underline) == len(title)
    assert copy.count("\n# %%\n") >= 2, f"{path.name}: no text cells (essay and headings) in the copy"


def _render(rst: str) -> docutils.nodes.document:
    r"""Parse reST; any docutils warning (an undefined substitution, a stray backquote) raises."""
    return docutils.core.publish_doctree(rst, settings_overrides={"halt_level": 2, "report_level": 5})


def _text_with_emphasis(node: docutils.nodes.Node) -> str:
    # the characters a reader sees, with an emphasized phrase shown between the asterisks that made it
    if isinstance(node, docutils.nodes.Text):
        return node.astext()
    inner = "".join(_text_with_emphasis(child) for child in node.children)
    return f"*{inner}*" if isinstance(node, docutils.nodes.emphasis) else inner


# letters, digits and every character reST gives a meaning to, in the mix the chapters use them
PROSE = st.text(alphabet=st.sampled_from(list("abxyz019 _*|`\\[]()<>:.-+=^~#'\"/!?,;")), min_size=1, max_size=60)


@example(text="E|eps - eps*|^2 is *the* loss of alpha_ here")
@example(text="0.")
@example(text="a ends::")
@example(text="(b) a - b")
@given(text=PROSE.filter(lambda s: any(c.isalnum() for c in s) and s == s.strip() and "  " not in s))
def test_escaped_prose_renders_as_the_characters_written(text: str) -> None:
    rst = "\n".join(gallery_chapters.prose_to_rst([text]))
    doc = _render(rst)
    paragraphs = [n for n in doc.children if isinstance(n, docutils.nodes.paragraph)]
    assert len(paragraphs) == 1 and len(doc.children) == 1, f"{text!r} became {doc.pformat()}"
    assert _text_with_emphasis(paragraphs[0]) == text, f"{text!r} -> reST {rst!r} -> {paragraphs[0].astext()!r}"


def test_chapter_prose_blocks_headings_and_formulas() -> None:
    source = '''r"""Chapter 9: a test chapter.

Run:  python tutorials/09_test.py [--quick]
"""

# ----------------------------------------------------------------------
# 1. The idea
#
# The posterior q(x_s | x_t, x_0) is *exact*; E|eps - eps*|^2 is the loss of alpha_
#
#     x_t = sqrt(a) x_0 + sqrt(1 - a) eps      (1)
#
# ----------------------------------------------------------------------

import math

# -- the check -----------------------------------------------------------
value = math.sqrt(4.0)  # a comment inside code stays in the code
'''
    copy = gallery_chapters.to_gallery(source)
    assert _body_dump(copy) == _body_dump(source)
    doc = _render(ast.get_docstring(ast.parse(copy), clean=True))
    assert doc.astext().startswith("Chapter 9: a test chapter\n\nRun: python tutorials/09_test.py [--quick]")
    # the essay and the heading comment are text cells: reST in comments after a "# %%" line
    cells = re.findall(r"^# %%\n((?:#.*\n)+)", copy, flags=re.M)
    essay, heading = (_render("\n".join(line[2:] for line in cell.splitlines())) for cell in cells)
    sections = list(essay.findall(docutils.nodes.title))
    assert [t.astext() for t in sections] == ["1. The idea"]
    text = [p.astext() for p in essay.findall(docutils.nodes.paragraph)]
    assert text == ["The posterior q(x_s | x_t, x_0) is exact; E|eps - eps*|^2 is the loss of alpha_"]
    assert [e.astext() for e in essay.findall(docutils.nodes.emphasis)] == ["exact"]
    formulas = [b.astext() for b in essay.findall(docutils.nodes.literal_block)]
    assert formulas == ["x_t = sqrt(a) x_0 + sqrt(1 - a) eps      (1)"]
    assert [t.astext() for t in heading.findall(docutils.nodes.title)] == ["the check"]
    assert "value = math.sqrt(4.0)  # a comment inside code stays in the code" in copy


def test_a_chapter_without_a_docstring_is_refused() -> None:
    with pytest.raises(ValueError, match="docstring"):
        gallery_chapters.to_gallery("import math\n")


def test_the_api_lists_public_modules_in_the_readmes_order() -> None:
    modules = api_pages.public_modules()
    assert {"npdiff.schedule", "npdiff.sample.ode", "npdiff.nn.fast.trace"} <= set(modules)
    assert not [m for m in modules if any(part.startswith("_") for part in m.split("."))]
    top = api_pages.children("npdiff", modules)
    readme_order = ["npdiff.schedule", "npdiff.gaussian", "npdiff.forward", "npdiff.parameterization", "npdiff.denoiser",
                    "npdiff.analytic", "npdiff.data", "npdiff.reverse", "npdiff.sample", "npdiff.likelihood", "npdiff.nn",
                    "npdiff.train", "npdiff.cli"]
    assert [m for m in top if m in readme_order] == readme_order
    index = api_pages.index_page(modules)
    assert all(f"   {m}\n" in index for m in top)


def test_a_package_page_documents_what_it_exports_from_a_private_module() -> None:
    page = api_pages.module_page("npdiff.sample", api_pages.public_modules())
    assert ".. autoclass:: npdiff.sample.SampleResult" in page  # defined in npdiff/sample/_common.py
    assert ".. autofunction:: npdiff.sample.ode_sample" not in page  # documented on npdiff.sample.ode's page
    assert "   npdiff.sample.ode\n" in page


def test_references_resolve_to_where_the_object_is_defined() -> None:
    names = api_pages.canonical_names
    # through a package's re-export, a method of a class
    assert names("npdiff.nn.fast.FastMLP.loss_and_grad")[:2] == [
        "npdiff.nn.fast.network.FastMLP.loss_and_grad", "npdiff.nn.fast.network.FastMLP"]
    # an attribute that exists only on instances, set in __init__
    assert names("npdiff.schedule.DiscreteSchedule.posterior_log_variance_clipped")[1] == "npdiff.schedule.DiscreteSchedule"
    # a misspelt name resolves to nothing, so the build still fails on it
    assert names("npdiff.schedule.DiscreteSchedule.posterior_log_variance_clipt") == []
    assert names("npdiff.nn.kernels.act_tangents") == []
