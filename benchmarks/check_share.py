r"""How much of a module's function bodies is input checking, and how much is the math.

    python benchmarks/check_share.py npdiff/schedule.py npdiff/gaussian.py npdiff/forward.py npdiff/reverse.py
    python benchmarks/check_share.py --rev bc9c5ca npdiff/forward.py      # the file as it was at a revision

Prints, per file, the executable lines of function bodies, how many of them are checks and
the share. Counting rule:

* executable lines: the physical lines of the statements inside function and method bodies
  (nested functions included) that hold code; docstrings, comments, blank lines, imports and
  ``def`` signatures are left out, and so is code outside functions (constants, class attributes);
* check lines, among them: every physical line of a ``raise`` statement; the test of an ``if``
  whose body only raises (and whose ``elif``/``else``, if any, only raise too); and statements that
  only call a checking helper, e.g. ``x0 = as_batch(x0, "x0")``, ``chain = check_chain(chain)``,
  ``same_shape(a, b, "a", "b")``, or ``return real_scalar(...)`` in a helper.

A checking helper is any function defined in a checking module (``npdiff/_check.py`` and every
``_validate.py`` of the package, at the same revision), a function whose name starts with
``check``, ``_check``, ``as_`` or ``_as_``, or one of :data:`HELPERS`. The count reads the source
only (``ast`` and ``tokenize``); it imports nothing.
"""

from __future__ import annotations

import argparse
import ast
import io
import os
import subprocess
import sys
import tokenize

HELPERS = {
    "_schedule", "_chain", "_times", "_broadcast", "_kind",  # module-local checks of earlier versions
    "data_to_levels",  # called for its check only where its result is discarded
}
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHECK_MODULE_NAMES = ("_check.py", "_validate.py")
_PREFIXES = ("check", "_check", "as_", "_as_")
_NOT_CODE = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENCODING,
             tokenize.ENDMARKER}


def _is_helper_call(node: ast.AST) -> bool:
    if not isinstance(node, ast.Call):
        return False
    f = node.func
    name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""
    return name in HELPERS or name.startswith(_PREFIXES)


def add_check_module(source: str) -> None:
    r"""Count every top-level function of the checking module as a checking helper."""
    HELPERS.update(n.name for n in ast.parse(source).body if isinstance(n, ast.FunctionDef))


def _only_checks(value: ast.AST | None) -> bool:
    r"""A value made only of checking calls: ``f(a)``, ``f(a), g(b)``, ``None if a is None else f(a)``."""
    if value is None:
        return False
    if isinstance(value, ast.Tuple):
        return bool(value.elts) and all(_only_checks(v) for v in value.elts)
    if isinstance(value, ast.IfExp):
        return any(_is_helper_call(v) for v in (value.body, value.orelse)) and all(
            _is_helper_call(v) or isinstance(v, (ast.Constant, ast.Name)) for v in (value.body, value.orelse))
    return _is_helper_call(value)


def _lines(node: ast.AST) -> set[int]:
    return set(range(node.lineno, node.end_lineno + 1))


def _raises_only(body: list[ast.stmt]) -> bool:
    return bool(body) and all(isinstance(s, ast.Raise) for s in body)


def _is_guard(node: ast.If) -> bool:
    if not _raises_only(node.body):
        return False
    if not node.orelse:
        return True
    if len(node.orelse) == 1 and isinstance(node.orelse[0], ast.If):
        return _is_guard(node.orelse[0])
    return _raises_only(node.orelse)


def _check_lines(stmt: ast.stmt) -> set[int]:
    if isinstance(stmt, ast.Raise):
        return _lines(stmt)
    if isinstance(stmt, ast.If) and _is_guard(stmt):
        out = set(range(stmt.lineno, stmt.test.end_lineno + 1))
        for s in stmt.body:
            out |= _lines(s)
        for s in stmt.orelse:
            out |= _check_lines(s)
        return out
    if isinstance(stmt, ast.If):  # `else:`/`elif` lines belong to no statement: only nested checks count
        return set().union(*(_check_lines(s) for s in stmt.body + stmt.orelse))
    if isinstance(stmt, (ast.Expr, ast.Assign, ast.AnnAssign, ast.Return)) and _only_checks(stmt.value):
        return _lines(stmt)
    out: set[int] = set()
    for field in ("body", "orelse", "finalbody", "handlers"):
        for s in getattr(stmt, field, []) or []:
            if isinstance(s, ast.ExceptHandler):
                out |= set().union(*(_check_lines(x) for x in s.body))
            elif isinstance(s, ast.stmt) and not isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef)):
                out |= _check_lines(s)
    return out


def _excluded(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> set[int]:
    r"""Lines of a function that are not its executable body: decorators, signature, docstring."""
    first = fn.decorator_list[0].lineno if fn.decorator_list else fn.lineno
    out = set(range(first, fn.body[0].lineno))  # decorators and the (possibly multi-line) signature
    doc = fn.body[0]
    if isinstance(doc, ast.Expr) and isinstance(doc.value, ast.Constant) and isinstance(doc.value.value, str):
        out |= _lines(doc)
    return out


def count(source: str) -> tuple[int, int]:
    r"""(executable lines, check lines) of the function bodies in ``source``."""
    tree = ast.parse(source)
    code_lines: set[int] = set()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type not in _NOT_CODE:
            code_lines |= set(range(tok.start[0], tok.end[0] + 1))
    body: set[int] = set()
    excluded: set[int] = set()
    checks: set[int] = set()
    for fn in ast.walk(tree):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        excluded |= _excluded(fn)
        for stmt in fn.body:
            if isinstance(stmt, (ast.Import, ast.ImportFrom)):
                excluded |= _lines(stmt)
                continue
            body |= _lines(stmt)
            if not isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
                checks |= _check_lines(stmt)
    executable = (body & code_lines) - excluded
    return len(executable), len(checks & executable)


def read(path: str, rev: str | None) -> str:
    r"""The file's text, from the disk or, with ``rev``, as it is at that git revision."""
    if rev is None:
        with open(path, encoding="utf-8") as f:
            return f.read()
    rel = os.path.relpath(os.path.abspath(path), ROOT)
    return subprocess.run(["git", "-C", ROOT, "show", f"{rev}:{rel}"], capture_output=True, text=True, check=True).stdout


def check_modules(rev: str | None) -> list[str]:
    r"""The paths (relative to the repository) of the checking modules, on the disk or at ``rev``."""
    if rev is None:
        found = [os.path.relpath(os.path.join(d, f), ROOT) for d, _, files in os.walk(os.path.join(ROOT, "npdiff"))
                 for f in files if f in CHECK_MODULE_NAMES]
    else:
        out = subprocess.run(["git", "-C", ROOT, "ls-tree", "-r", "--name-only", rev, "npdiff"], capture_output=True,
                             text=True, check=True).stdout
        found = [p for p in out.splitlines() if os.path.basename(p) in CHECK_MODULE_NAMES]
    return sorted(found)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("paths", nargs="+", help="Python files of this repository")
    p.add_argument("--rev", help="count the files as they are at this git revision (git show REV:path)")
    args = p.parse_args(argv)
    for path in check_modules(args.rev):
        add_check_module(read(os.path.join(ROOT, path), args.rev))
    total_exe = total_chk = 0
    print(f"{'file':<40} {'executable':>10} {'checks':>7} {'share':>6}")
    for path in args.paths:
        exe, chk = count(read(path, args.rev))
        total_exe, total_chk = total_exe + exe, total_chk + chk
        print(f"{path:<40} {exe:>10} {chk:>7} {chk / max(exe, 1):>6.0%}")
    if len(args.paths) > 1:
        print(f"{'all':<40} {total_exe:>10} {total_chk:>7} {total_chk / max(total_exe, 1):>6.0%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
