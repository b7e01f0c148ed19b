r"""The API reference's pages, one per public module of npdiff, written before Sphinx reads its sources.

Each page is the module's docstring and its public members (its ``__all__``) in source order, with
numpydoc rendering the sections and ``sphinx.ext.viewcode`` linking every entry to its lines. A
package's page holds its own docstring, the public names it exports from a private submodule (so that
``npdiff.sample.SampleResult`` has a home) and the table of its submodules. The pages are generated, not
written by hand, so that a module added to npdiff appears in the reference with no edit here; the order of
the index is the README's reading order, with any module it does not name appended in alphabetical order.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"
BIBLIOGRAPHY = Path(__file__).resolve().parents[1] / "references.bib"

_AND = r"(?:\\?&|and)"  # "Ho & Salimans", "Kingma \& Ba" (inside LaTeX) or "Ho and Salimans"
# How npdiff's docstrings name a paper ("Ho et al. 2020", "Song, Meng & Ermon 2021", "Lu et al. 2022a"), and
# its key in docs/references.bib. A mention that is not here (or a year without its letter, "Lu et al.
# 2022") stays plain text: the table names only what it can name without doubt.
MENTIONS: tuple[tuple[str, str, str], ...] = (
    (r"Sohl-Dickstein et al\.", "2015", "sohl2015"),
    (r"Ho et al\.", "2020", "ho2020ddpm"),
    (rf"Song,? Meng,? {_AND} Ermon", "2021", "song2021ddim"),
    (rf"Song,? Durkan,? Murray,? {_AND} Ermon", "2021", "song2021scoreflow"),
    (r"Song et al\.", "2021", "song2021sde"),
    (r"Kingma et al\.", "2021", "kingma2021vdm"),
    (rf"Nichol {_AND} Dhariwal", "2021", "nichol2021improved"),
    (rf"Dhariwal {_AND} Nichol", "2021", "dhariwal2021adm"),
    (r"Bao et al\.", "2022", "bao2022analytic"),
    (r"Lu et al\.", "2022a", "lu2022dpmsolver"),
    (r"Lu et al\.", "2022b", "lu2022dpmpp"),
    (r"Zhao et al\.", "2023", "zhao2023unipc"),
    (r"Karras et al\.", "2022", "karras2022edm"),
    (rf"Salimans {_AND} Ho", "2022", "salimans2022progressive"),
    (rf"Ho {_AND} Salimans", "2022", "ho2022cfg"),
    (r"Grathwohl et al\.", "2019", "grathwohl2019ffjord"),
    (r"Chen et al\.", "2018", "chen2018neuralode"),
    (r"Vincent", "2011", "vincent2011"),
    (r"Efron", "2011", "efron2011tweedie"),
    (r"Hutchinson", "1989", "hutchinson1989"),
    (r"Skilling", "1989", "skilling1989"),
    (r"Theis et al\.", "2016", "theis2016note"),
    (r"Zheng et al\.", "2023", "zheng2023idode"),
    (r"Rombach et al\.", "2022", "rombach2022ldm"),
    (r"Saharia et al\.", "2022", "saharia2022imagen"),
    (r"Nichol et al\.", "2022", "nichol2022glide"),
    (r"Ramesh et al\.", "2022", "ramesh2022unclip"),
    (r"Lugmayr et al\.", "2022", "lugmayr2022repaint"),
    (r"Meng et al\.", "2022", "meng2022sdedit"),
    (r"Ho et al\.", "2022", "ho2022cascaded"),
    (rf"Kingma {_AND} Ba", "2015", "kingma2015adam"),
    (rf"Loshchilov {_AND} Hutter", "2019", "loshchilov2019adamw"),
    (r"Vaswani et al\.", "2017", "vaswani2017"),
    (r"He et al\.", "2016", "he2016resnet"),
    (r"Ronneberger et al\.", "2015", "ronneberger2015unet"),
    (r"Watson et al\.", "2021", "watson2021"),
    (r"Sabour et al\.", "2024", "sabour2024ays"),
    (r"Chen et al\.", "2024", "chen2024gits"),
    (r"Xue et al\.", "2024", "xue2024"),
    (r"Chung et al\.", "2023", "chung2023dps"),
    (r"Hoogeboom et al\.", "2020", "hoogeboom2020"),
)
_MENTION_RES = tuple(
    (re.compile(rf"(?<![\w-]){who},?\s*\(?{year}(?![\w])"), key) for who, year, key in MENTIONS
)


ARCHITECTURE_START, ARCHITECTURE_END = "<!-- architecture-start -->", "<!-- architecture-end -->"


def architecture_section(readme: Path = README) -> str:
    r"""The README's architecture section: the text between its two comment markers (the landing page includes it).

    Empty when the README or a marker is missing, so that the reference falls back to alphabetical order.
    """
    text = readme.read_text() if readme.is_file() else ""
    if ARCHITECTURE_START not in text or ARCHITECTURE_END not in text.split(ARCHITECTURE_START, 1)[1]:
        return ""
    return text.split(ARCHITECTURE_START, 1)[1].split(ARCHITECTURE_END, 1)[0]


def reading_order(readme: Path = README) -> list[str]:
    r"""The modules the README's architecture table names, top to bottom: the order a reader is meant to take.

    ``npdiff/sample/`` gives ``npdiff.sample``, ``npdiff/train.py`` ``npdiff.train``; in a package's row, the files
    its description names follow the package (``mlp.py`` in the row of ``npdiff/nn/``). Private modules are left out.
    """
    section = architecture_section(readme)
    order = []
    for row in (line for line in section.splitlines() if line.startswith("| `npdiff")):
        cells = row.split("|")
        paths = re.findall(r"`(npdiff/[\w/]*?)(?:\.py)?(/?)`", cells[1])
        names = [path.replace("/", ".") for path, _ in paths]
        if len(paths) == 1 and paths[0][1]:  # a package's row: the files its description names, in that order
            names += [f"{names[0]}.{stem}" for stem in re.findall(r"`(\w+)\.py`", cells[2])]
        for name in names:
            if not any(part.startswith("_") for part in name.split(".")) and name not in order:
                order.append(name)
    return order


def public_modules(package: str = "npdiff") -> list[str]:
    r"""Every importable module under ``package`` whose dotted name has no part starting with ``_``."""
    root = importlib.import_module(package)
    names = [package]
    for info in pkgutil.walk_packages(root.__path__, prefix=f"{package}."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return sorted(names)


def children(name: str, modules: list[str]) -> list[str]:
    r"""The direct submodules of ``name`` among ``modules``, in reading order where it has one."""
    depth = name.count(".") + 1
    kids = [m for m in modules if m.startswith(name + ".") and m.count(".") == depth]
    order = reading_order()

    def rank(module: str) -> int:  # a package ranks where the table first names it or one of its modules
        hits = [i for i, m in enumerate(order) if m == module or m.startswith(module + ".")]
        return min(hits, default=len(order))

    return sorted(kids, key=lambda m: (rank(m), m))


def _title(text: str, underline: str) -> str:
    return f"{text}\n{underline * len(text)}\n"


def _exported_from_private(name: str) -> list[tuple[str, str]]:
    r"""(directive, name) of what package ``name`` exports from its own private submodules."""
    module = importlib.import_module(name)
    found = []
    for attr in getattr(module, "__all__", []):
        obj = getattr(module, attr)
        home = getattr(obj, "__module__", "") or ""
        if home.startswith(name + ".") and any(p.startswith("_") for p in home[len(name) + 1 :].split(".")):
            found.append(("autoclass" if isinstance(obj, type) else "autofunction", attr))
    return found


def cited_keys(text: str) -> list[str]:
    r"""The bibliography keys of the papers ``text`` names ("Ho et al. 2020" gives ``ho2020ddpm``), in order of first mention."""
    found: dict[str, int] = {}
    for pattern, key in _MENTION_RES:
        match = pattern.search(text)
        if match is not None and key not in found:
            found[key] = match.start()
    return sorted(found, key=found.get)


def docstrings(name: str, package: bool) -> str:
    r"""The docstrings module ``name`` shows on its page: a package's own, or a module's and its public objects'.

    Read from the source's syntax tree (a private function's docstring is not on the page, so not counted).
    """
    module = importlib.import_module(name)
    if package:
        return inspect.getdoc(module) or ""
    try:
        tree = ast.parse(inspect.getsource(module))
    except (OSError, TypeError):  # no source (a compiled module): its docstring only
        return inspect.getdoc(module) or ""
    texts = [ast.get_docstring(tree) or ""]
    todo = [(node, False) for node in tree.body]
    while todo:
        node, in_class = todo.pop(0)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            public = not node.name.startswith("_") or (in_class and node.name in ("__init__", "__call__"))
            if public:
                texts.append(ast.get_docstring(node) or "")
                if isinstance(node, ast.ClassDef):
                    todo += [(child, True) for child in node.body]
    return "\n".join(texts)


def bibliography_titles(path: Path = BIBLIOGRAPHY) -> dict[str, str]:
    r"""Key -> title of every entry of ``docs/references.bib`` (braces that protect capitals removed)."""
    from pybtex.database import parse_file

    entries = parse_file(str(path), bib_format="bibtex").entries
    return {key: entry.fields["title"].replace("{", "").replace("}", "") for key, entry in entries.items()}


def references_section(text: str, titles: dict[str, str]) -> list[str]:
    r"""The lines of a page's "References": each paper ``text`` names that the bibliography holds, cited."""
    keys = [key for key in cited_keys(text) if key in titles]
    if not keys:
        return []
    lines = ["", ".. rubric:: References", ""]
    lines += ["The papers this page cites, each linked to its entry in the :doc:`/bibliography`:", ""]
    return lines + [f"- :cite:t:`{key}`: *{titles[key]}*" for key in keys]


def module_page(name: str, modules: list[str], titles: dict[str, str] | None = None) -> str:
    r"""The reStructuredText of one module's page, its references last."""
    kids = children(name, modules)
    lines = [_title(name, "="), f".. automodule:: {name}"]
    if kids:  # a package: its own docstring, what it defines privately, then its submodules
        lines += ["   :no-members:", ""]
        for directive, attr in _exported_from_private(name):
            lines += [f".. {directive}:: {name}.{attr}", "   :members:" if directive == "autoclass" else "", ""]
        lines += [".. rubric:: Modules", "", ".. currentmodule:: None", "", ".. autosummary::", ""] + [f"   {k}" for k in kids]
        lines += ["", ".. toctree::", "   :hidden:", ""] + [f"   {k}" for k in kids]
    else:
        lines += ["   :members:", "   :member-order: bysource"]
    titles = bibliography_titles() if titles is None else titles
    lines += references_section(docstrings(name, package=bool(kids)), titles)
    return "\n".join(lines) + "\n"


def index_page(modules: list[str]) -> str:
    r"""The reference's front page: the top-level modules and packages in reading order."""
    top = children("npdiff", modules)
    lines = [
        _title("API reference", "="),
        "Every public module of npdiff, in the order the README suggests reading them. Each page shows the",
        "module's docstring and its public functions and classes with their formulas; the ``[source]`` link",
        "beside each entry opens the highlighted lines that compute it, and ``[docs]`` there leads back.",
        "",
        ".. automodule:: npdiff",
        "   :no-members:",
        "",
        ".. currentmodule:: None",
        "",
        ".. autosummary::",
        "",
    ]
    lines += [f"   {m}" for m in top]
    lines += ["", ".. toctree::", "   :hidden:", ""] + [f"   {m}" for m in top]
    return "\n".join(lines) + "\n"


def write_pages(folder: Path) -> list[Path]:
    r"""Write the index and one page per public module into ``folder``; a file is rewritten only if it changed."""
    folder.mkdir(parents=True, exist_ok=True)
    modules = public_modules()
    titles = bibliography_titles()
    pages = {"index": index_page(modules)} | {m: module_page(m, modules, titles) for m in modules if m != "npdiff"}
    written = []
    for stem, text in pages.items():
        path = folder / f"{stem}.rst"
        if not path.is_file() or path.read_text() != text:  # untouched files keep Sphinx's incremental build
            path.write_text(text)
        written.append(path)
    for stale in set(folder.glob("*.rst")) - set(written):  # a module that was removed or renamed
        stale.unlink()
    return written


def find(target: str) -> tuple[object, list[str]] | None:
    r"""The object a dotted name denotes, by importing its longest module prefix, and the name's parts.

    ``None`` when no prefix imports or an attribute along the way does not exist (a misspelt name).
    """
    parts = target.split(".")
    for split in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        rest = parts[split:]
        for i, attr in enumerate(rest):
            if hasattr(obj, attr):
                obj = getattr(obj, attr)
            elif i == len(rest) - 1 and _assigns(obj, attr):  # an attribute set on the instance
                return None, parts
            else:
                return None
        return obj, parts
    return None


def _assigns(cls: object, attr: str) -> bool:
    r"""Whether class ``cls`` sets ``self.attr`` in its source (an attribute that exists only on instances)."""
    if not isinstance(cls, type):
        return False
    try:
        source = inspect.getsource(cls)
    except (OSError, TypeError):
        return False
    return re.search(rf"self\.{re.escape(attr)}\s*(:[^=]*)?=", source) is not None


def canonical_names(target: str) -> list[str]:
    r"""Where the object named ``target`` is defined, then each enclosing object up to its module.

    ``npdiff.nn.fast.FastMLP.loss_and_grad`` (a name through a package's re-export) gives
    ``npdiff.nn.fast.network.FastMLP.loss_and_grad``, ``npdiff.nn.fast.network.FastMLP`` and
    ``npdiff.nn.fast.network``: the first that has an entry in the reference is the link.
    """
    found = find(target)
    if found is None:
        return []
    _, parts = found
    names = []
    obj = importlib.import_module(parts[0])
    here = parts[0]
    for i, attr in enumerate(parts[1:], start=1):
        if hasattr(obj, attr):
            obj = getattr(obj, attr)
        elif isinstance(obj, type):  # the instance attribute find() accepted
            obj = None
        else:  # a module not yet imported as an attribute of its package
            try:
                obj = importlib.import_module(".".join(parts[: i + 1]))
            except ImportError:  # a package's function that shadows its module's name: no entry to link
                return []
        module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
        if isinstance(obj, type(importlib)):
            here = obj.__name__
        elif isinstance(module, str) and isinstance(qualname, str) and "<" not in qualname:
            here = f"{module}.{qualname}"
        else:  # data, an instance attribute, a compiled kernel: named by where it was reached
            here = f"{here}.{attr}"
        names.append(here)
    names.reverse()
    # every enclosing name of the innermost one, down to its module: a class for a private method, a
    # module for a kernel bound at import, a package for a private module
    inner = names[0].split(".")
    return [".".join(inner[:k]) for k in range(len(inner), 0, -1)]


def resolve_to_definition(app, env, node, contnode):
    r"""Resolve a Python reference that Sphinx could not: through a re-export, or to the enclosing entry.

    A docstring may name an object by the package that re-exports it (``npdiff.likelihood.ode_log_likelihood``),
    by a name imported into the module it is written in (``MLPConfig.layers`` in ``npdiff.nn.fast.network``),
    or name something that has no entry of its own (a private method, a kernel bound at import, a private
    module). Each resolves to the entry of where the object is defined, or of the nearest object around it.
    A name that does not exist in npdiff stays unresolved, so the build still fails on a misspelt reference.
    """
    if node.get("refdomain") != "py":
        return None
    from sphinx.util.nodes import make_refnode

    target = node["reftarget"].lstrip(".~")
    module, cls = node.get("py:module"), node.get("py:class")
    tries = [target]
    if module and cls:
        tries.append(f"{module}.{cls}.{target}")
    if module:
        tries.append(f"{module}.{target}")
    domain = env.get_domain("py")
    for name in tries:
        if not name.startswith("npdiff"):
            continue
        for candidate in canonical_names(name):
            entry = domain.objects.get(candidate)
            if entry is not None:
                return make_refnode(app.builder, node["refdoc"], entry.docname, entry.node_id, contnode, candidate)
    return None


def _on_config_inited(app, config) -> None:
    write_pages(Path(app.srcdir) / "api")


def setup(app) -> dict:
    app.connect("config-inited", _on_config_inited)
    app.connect("missing-reference", resolve_to_definition)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
