r"""The API reference's pages, one per public module of npdiff, written before Sphinx reads its sources.

Each page is the module's docstring and its public members (its ``__all__``) in source order, with
numpydoc rendering the sections and ``sphinx.ext.viewcode`` linking every entry to its lines. A
package's page holds its own docstring, the public names it exports from a private submodule (so that
``npdiff.sample.SampleResult`` has a home) and the table of its submodules. The pages are generated, not
written by hand, so that a module added to npdiff appears in the reference with no edit here; the order of
the index is the README's reading order, with any module it does not name appended in alphabetical order.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def reading_order(readme: Path = README) -> list[str]:
    r"""The modules the README's "Architecture" table names, top to bottom: the order a reader is meant to take.

    ``npdiff/sample/`` gives ``npdiff.sample``, ``npdiff/train.py`` ``npdiff.train``; in a package's row, the files
    its description names follow the package (``mlp.py`` in the row of ``npdiff/nn/``). Private modules are left out.
    """
    text = readme.read_text() if readme.is_file() else ""
    section = text.split("## Architecture", 1)[-1].split("\n## ", 1)[0] if "## Architecture" in text else ""
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


def module_page(name: str, modules: list[str]) -> str:
    r"""The reStructuredText of one module's page."""
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
    pages = {"index": index_page(modules)} | {m: module_page(m, modules) for m in modules if m != "npdiff"}
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
            obj = importlib.import_module(".".join(parts[: i + 1]))
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
