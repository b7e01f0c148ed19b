r"""Sphinx configuration of npdiff's site: the tutorials as a gallery, the API from the docstrings, the measurements.

Build it from the repository root (warnings are errors; the chapters run in their ``--quick`` mode)::

    pip install ".[docs]"
    python -m sphinx -W --keep-going -b html docs docs/_build/html

``NPDIFF_DOCS_FULL=1`` in front of the same command runs the chapters at full length instead. Everything
a page loads is served from the build folder: MathJax comes from the ``sphinx-mathjax-offline`` package,
the theme has no web fonts, and no inventory is fetched from another site (so no intersphinx: the few
names from NumPy and the standard library that a signature mentions are listed in ``nitpick_ignore_regex``).
The browser test (``docs/test_site.py``) checks the built pages in headless Chromium.
"""

from __future__ import annotations

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
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
    "gallery_chapters",  # writes the chapters' gallery copies before sphinx-gallery looks for them
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.viewcode",
    "sphinx.ext.mathjax",
    "sphinx-mathjax-offline",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
    "myst_parser",
    "results_tables",  # tables of the measurement pages, from benchmarks/results/*.json
]

# -- sources -----------------------------------------------------------------------------------------
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "_ext", "test_site.py", "**/GALLERY_HEADER.rst"]
nitpicky = True  # a reference to a name that has no page is an error, as a broken link would be
nitpick_ignore_regex = [
    # outside npdiff, documented elsewhere; no inventory is downloaded, so these stay plain text
    ("py:class", r"(np|numpy|numpy\.typing|numpy\.random|scipy|matplotlib)(\..+)?"),
    ("py:class", r"(ArrayLike|NDArray|Generator|Figure|Axes)"),
    ("py:class", r"(collections\.abc|typing|pathlib|os|concurrent\.futures|argparse|threading)\..+"),
    ("py:class", r"(int|float|bool|str|bytes|object|tuple|list|dict|set|type|None|Path|Callable|Iterator|Sequence|Mapping)"),
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

# -- the tutorials: sphinx-gallery over the converted chapters ----------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": ["_build/chapters"],
    "gallery_dirs": ["tutorials"],
    "filename_pattern": r"/\d\d_\w+\.py$",  # run every chapter (the default runs only plot_*.py)
    "ignore_pattern": r"__init__\.py|/_\w+\.py$",
    "within_subsection_order": "FileNameSortKey",  # chapter 5 reads the model chapter 4 saved
    "reset_argv": "gallery_chapters.reset_argv",
    "image_scrapers": ("gallery_chapters.chapter_files_scraper",),
    "capture_repr": (),  # the chapters print what they mean to show; a cell's last value is not output
    "remove_config_comments": True,
    "download_all_examples": False,
    "show_memory": False,
    "show_signature": False,
    "min_reported_time": 0,
    "write_computation_times": False,  # its pages load jQuery and DataTables from CDNs: not offline
}

# -- Markdown pages (the measurements in docs/*.md) --------------------------------------------------
myst_heading_anchors = 3

# -- HTML ---------------------------------------------------------------------------------------------
smartquotes = False  # "--quick" stays two hyphens, and quotes in code-like text stay straight
html_theme = "alabaster"
html_theme_options = {
    "page_width": "1280px",  # the figures are wide and the code runs to 130 columns
    "sidebar_width": "240px",
    "body_max_width": "none",
    "fixed_sidebar": True,
    "show_relbars": True,
    "description": "Diffusion models from scratch in NumPy",
}
html_title = "npdiff"
html_static_path: list[str] = []
html_show_sourcelink = False
html_copy_source = False
