r"""Sphinx configuration of npdiff's site: the chapters as a gallery, the API from the docstrings, the measurements.

Build it from the repository root (warnings are errors; the chapters run in their ``--quick`` mode)::

    pip install ".[docs]"
    python -m sphinx -W --keep-going -b html docs docs/_build/html

``NPDIFF_DOCS_FULL=1`` in front of the same command runs the chapters at full length instead. Everything
a page loads is served from the build folder: MathJax comes from the ``sphinx-mathjax-offline`` package,
the theme (pydata-sphinx-theme) bundles its icons and loads no web font, and no inventory is fetched from
another site (so no intersphinx: the few names from NumPy and the standard library that a signature
mentions are listed in ``nitpick_ignore_regex``). The browser test (``docs/test_site.py``) checks the built
pages in headless Chromium.
"""

from __future__ import annotations

import sys
from pathlib import Path

from threadpoolctl import threadpool_limits

DOCS = Path(__file__).resolve().parent
# The chapters run inside this process, where NumPy is already loaded, so the BLAS variables that a plain
# run of a chapter sets come too late: hold BLAS to one thread here, as `npdiff.threads` does for a plain run.
_blas_limit = threadpool_limits(limits=1, user_api="blas")
sys.path.insert(0, str(DOCS / "_ext"))

project = "npdiff"
author = "the npdiff authors"
copyright = "npdiff authors, MIT license"
try:
    from importlib.metadata import version as _version

    release = _version("npdiff")
except Exception:  # pragma: no cover - building from a checkout that is not installed
    release = ""

extensions = [
    "api_pages",  # writes api/*.rst before the sources are read
    "gallery_runs",  # the command line the chapters run with, and a rerun when the mode changes
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.viewcode",
    "sphinx.ext.mathjax",
    "sphinx-mathjax-offline",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
    "sphinx_copybutton",
    "sphinxcontrib.bibtex",
    "myst_parser",
    "results_tables",  # tables of the measurement pages, from benchmarks/results/*.json
]

# -- sources -----------------------------------------------------------------------------------------
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "_ext", "_templates", "test_site.py"]
templates_path = ["_templates"]
nitpicky = True  # a reference to a name that has no page is an error, as a broken link would be
nitpick_ignore_regex = [
    # outside npdiff, documented elsewhere; no inventory is downloaded, so these stay plain text
    ("py:class", r"(np|numpy|numpy\.typing|numpy\.random|scipy|matplotlib)(\..+)?"),
    ("py:class", r"(ArrayLike|NDArray|Generator|Figure|Axes)"),
    ("py:class", r"(collections\.abc|typing|pathlib|os|concurrent\.futures|argparse|threading)\..+"),
    ("py:class", r"(int|float|bool|str|string|bytes|object|tuple|list|dict|set|type|None)"),
    ("py:class", r"(Path|Callable|Iterator|Sequence|Mapping)"),
    ("py:class", r"(optional|default .*|array.like)"),
]

# -- the API reference: autodoc + numpydoc, every entry linked to its source -------------------------
autodoc_default_options = {"member-order": "bysource"}
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
autosummary_generate = False  # the pages are api_pages.py's; autosummary only draws the index tables
numpydoc_show_class_members = False  # members are documented in full below each class instead
numpydoc_xref_param_type = False
numpydoc_attributes_as_param_list = False
viewcode_line_numbers = True

# -- the chapters: sphinx-gallery reads tutorials/ as it is ------------------------------------------
# Each chapter is a gallery script: RST text cells ("# %%") with the math, short code cells, and the
# figure a code cell leaves open shown right after it (sphinx-gallery's matplotlib scraper).
sphinx_gallery_conf = {
    "examples_dirs": ["../tutorials"],
    "gallery_dirs": ["tutorials"],
    "filename_pattern": r"/\d\d_\w+\.py$",  # run every chapter (the default runs only plot_*.py)
    "ignore_pattern": r"__init__\.py|(^|/)_\w+\.py$",  # _common.py is the chapters' plumbing, not a chapter
    "within_subsection_order": "FileNameSortKey",  # chapter 5 reads the model chapter 4 saved
    "reset_argv": "gallery_runs.reset_argv",  # --quick (unless NPDIFF_DOCS_FULL=1) and one --out for all
    "image_scrapers": ("matplotlib",),
    "capture_repr": (),  # the chapters print what they mean to show; a cell's last value is not output
    "remove_config_comments": True,
    "download_all_examples": False,
    "show_memory": False,
    "show_signature": False,
    "min_reported_time": 0,
    "write_computation_times": False,  # its pages load jQuery and DataTables from CDNs: not offline
}

# -- one bibliography: docs/references.bib, cited as (Ho et al., 2020) ---------------------------------
bibtex_bibfiles = ["references.bib"]
bibtex_reference_style = "author_year_round"  # (Ho et al., 2020) and Ho et al. (2020)
bibtex_default_style = "npdiff"  # registered below: entries labelled "Ho et al. 2020", sorted by author
bibtex_encoding = "utf-8"


def _register_bibliography_style() -> None:
    r"""The bibliography's labels in the text's own form (``Ho et al. 2020``, ``Lu et al. 2022a``)."""
    from pybtex.plugin import register_plugin
    from pybtex.style.formatting.plain import Style as Plain
    from pybtex.style.labels import BaseLabelStyle

    class AuthorYearLabels(BaseLabelStyle):
        def format_labels(self, sorted_entries):
            labels = []
            for entry in sorted_entries:
                people = entry.persons.get("author", [])
                names = [" ".join(p.last_names) for p in people] or [entry.fields.get("title", "?")]
                who = names[0] if len(names) == 1 else " and ".join(names) if len(names) == 2 else f"{names[0]} et al."
                labels.append(f"{who} {entry.fields.get('year', '')}".strip())
            # the same author-year twice (Lu et al. 2022): a letter each, in the list's order
            for label in set(labels):
                same = [i for i, other in enumerate(labels) if other == label]
                if len(same) > 1:
                    for letter, i in zip("abcdefgh", same, strict=False):
                        labels[i] += letter
            yield from labels

    class NpdiffStyle(Plain):
        default_label_style = AuthorYearLabels
        default_sorting_style = "author_year_title"

    register_plugin("pybtex.style.labels", "npdiff_author_year", AuthorYearLabels)
    register_plugin("pybtex.style.formatting", "npdiff", NpdiffStyle)

    import dataclasses

    from sphinxcontrib.bibtex.plugin import register_plugin as register_bibtex_plugin
    from sphinxcontrib.bibtex.style.referencing import BracketStyle
    from sphinxcontrib.bibtex.style.referencing.author_year import AuthorYearReferenceStyle

    def _round() -> BracketStyle:
        return BracketStyle(left="(", right=")")

    @dataclasses.dataclass
    class AuthorYearRound(AuthorYearReferenceStyle):
        bracket_parenthetical: BracketStyle = dataclasses.field(default_factory=_round)
        bracket_textual: BracketStyle = dataclasses.field(default_factory=_round)
        bracket_author: BracketStyle = dataclasses.field(default_factory=_round)
        bracket_label: BracketStyle = dataclasses.field(default_factory=_round)
        bracket_year: BracketStyle = dataclasses.field(default_factory=_round)

    register_bibtex_plugin("sphinxcontrib.bibtex.style.referencing", "author_year_round", AuthorYearRound)


_register_bibliography_style()

# -- Markdown pages (the measurements) ---------------------------------------------------------------
myst_heading_anchors = 3

# -- HTML ---------------------------------------------------------------------------------------------
smartquotes = False  # "--quick" stays two hyphens, and quotes in code-like text stay straight
html_theme = "pydata_sphinx_theme"
html_theme_options = {
    "navbar_start": ["navbar-logo"],
    "navbar_center": ["navbar-nav"],
    "navbar_end": ["theme-switcher"],
    "navbar_persistent": ["search-button-field"],
    "header_links_before_dropdown": 6,
    "navigation_depth": 3,
    "show_nav_level": 1,
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc"],
    "show_prev_next": True,
    "footer_start": ["copyright"],
    "footer_center": [],
    "footer_end": ["sphinx-version", "theme-version"],
    "pygments_light_style": "tango",
    "pygments_dark_style": "monokai",
}
html_sidebars = {"**": ["book-nav"]}  # the whole book on every page, the chapters always unfolded
html_context = {"default_mode": "light"}
html_title = "npdiff"
html_static_path: list[str] = []
html_show_sourcelink = False
html_copy_source = False
copybutton_exclude = ".linenos, .gp, .go"  # the prompt and line numbers are not copied with the code


def _unfold_chapters(app, pagename, templatename, context, doctree) -> None:
    r"""Open the chapters' branch of the sidebar on every page; the other parts stay folded unless current."""
    generate = context.get("generate_toctree_html")
    if generate is None or getattr(generate, "unfolds_chapters", False):
        return

    def generate_unfolded(kind, *args, **kwargs):
        html = generate(kind, *args, **kwargs)
        if kind != "sidebar":
            return html
        from bs4 import BeautifulSoup
        from markupsafe import Markup

        soup = BeautifulSoup(str(html), "html.parser")
        for link in soup.select("li.toctree-l1 > a"):
            details = link.find_next_sibling("details")
            if details is not None and link.get("href", "").endswith("tutorials/index.html"):
                details["open"] = "open"
        return Markup(str(soup))

    generate_unfolded.unfolds_chapters = True
    context["generate_toctree_html"] = generate_unfolded


def setup(app) -> None:
    app.connect("html-page-context", _unfold_chapters, priority=900)  # after the theme adds its function
