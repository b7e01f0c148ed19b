r"""Tables of measured figures, rendered at build time from the committed results files.

Every benchmark writes ``benchmarks/results/NAME.json`` (``benchmarks/_common.py``'s ``write_results``):
the figures as rows of named columns, the command that made them, the date, the CPU, the package versions
and the thread settings. A measurement page shows such a file with::

    ```{results-table} sampler_kl
    :columns: sampler, grid, kl
    :headers: sampler, grid, KL (nats)
    :where: model=oracle, grid=log_snr
    :format: kl=.3g
    :pm: kl=se
    :pivot: nfe
    ```

and gets the table with one provenance line under it. The options, all optional:

``:columns:``
    The columns to show, in order (default: the file's own ``columns``).
``:headers:``
    Their headers, as many as the columns (default: the column names); a header with a comma in it is
    quoted, ``"analytic, best"``.
``:where:``
    Conditions, comma separated: ``column=value`` keeps the rows whose value, as text, equals it,
    ``column!=value`` the rows whose value does not; ``value`` may list alternatives as ``a|b``.
``:format:``
    ``column=spec`` pairs: a format spec for :func:`format` (``.4f``, ``.3g``, ``,d``); the default
    writes numbers with four significant digits and null as a dash.
``:pm:``
    ``column=error_column`` pairs: show the value as ``value +- error`` (the error in the same format).
``:range:``
    ``column=low_column/high_column`` pairs: show the value as ``value (low-high)``, e.g. a median and
    the range of the runs it summarizes.
``:pivot:``
    One column whose values become the table's columns: every other shown column but the last keys
    a row, the last is the value in each cell (so ``:columns: sampler, grid, kl`` with ``:pivot: nfe``
    makes one row per sampler and grid and one column per nfe, headed ``nfe = 5``, ``nfe = 10``, ...).
``:bold:``
    Columns set in bold.

A results file that is missing, is not valid JSON, lacks ``rows``/``command``/``date``/``cpu``/``versions``,
or lacks a column the directive names stops the build with an error naming the file: a page never shows an
empty or partial table in place of its figures.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import ClassVar

from docutils import nodes
from docutils.parsers.rst import Directive, directives
from sphinx.errors import ExtensionError

REQUIRED = ("command", "date", "cpu", "versions", "rows")


class ResultsError(ExtensionError):
    r"""A results file that cannot give the table asked for (missing, malformed, or without a column)."""


def results_dir(srcdir: str | Path) -> Path:
    r"""``benchmarks/results`` of the repository whose ``docs/`` is ``srcdir``."""
    return Path(srcdir).resolve().parent / "benchmarks" / "results"


def load_results(path: str | Path) -> dict:
    r"""The results file at ``path``, checked to hold what a table and its provenance line need."""
    path = Path(path)
    if not path.is_file():
        raise ResultsError(f"results file {path} does not exist (run the benchmark its page names to write it)")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ResultsError(f"results file {path} is not valid JSON: {e}") from None
    if not isinstance(doc, dict):
        raise ResultsError(f"results file {path} holds a {type(doc).__name__}, expected a JSON object")
    missing = [k for k in REQUIRED if k not in doc]
    if missing:
        raise ResultsError(f"results file {path} lacks {', '.join(missing)}")
    rows = doc["rows"]
    if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) for r in rows):
        raise ResultsError(f"results file {path}: 'rows' must be a non-empty list of objects")
    return doc


def _pairs(text: str | None, what: str, path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep:
            raise ResultsError(f"results table of {path}: option {what} wants column=value, got {item.strip()!r}")
        out[key.strip()] = value.strip()
    return out


def _names(text: str | None) -> list[str]:
    return [c.strip() for c in (text or "").split(",") if c.strip()]


def _headers(text: str | None) -> list[str]:
    r"""Comma-separated headers; a header that holds a comma is quoted (``"analytic, best"``), ``""`` is empty."""
    if not (text or "").strip():
        return []
    return [h.strip() for h in next(csv.reader([text], skipinitialspace=True))]


def format_value(value, spec: str | None = None) -> str:
    r"""A cell's text: null as a dash, numbers by ``spec`` (default: 4 significant digits), the rest as is."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        if spec:
            return format(value, spec)
        if isinstance(value, int):
            return f"{value:,d}" if abs(value) >= 10_000 else str(value)
        return f"{value:.4g}"
    return str(value)


def provenance(doc: dict) -> str:
    r"""The one line under a table: the command, the date, the CPU, the versions and the BLAS threads."""
    versions = ", ".join(f"{k} {v}" for k, v in doc["versions"].items() if k != "python")
    blas = ""
    pools = (doc.get("threads") or {}).get("pools") or []
    for pool in pools:
        if pool.get("user_api") == "blas":
            n = pool.get("num_threads")
            blas = f"; {pool.get('internal_api')} {pool.get('version')}, {n} thread{'s' if n != 1 else ''}"
            break
    return f"{doc['command']} ({doc['date']}; {doc['cpu']}; {versions}{blas})"


def render_table(doc: dict, path: str | Path, options: dict | None = None) -> tuple[list[str], list[list[str]], list[str]]:
    r"""The table a directive asks for, as text: (headers, rows of cells, bold columns' headers).

    Parameters
    ----------
    doc : dict
        A results file's content (:func:`load_results`).
    path : str or Path
        Its path, named in every error.
    options : dict, optional
        The directive's options (``columns``, ``headers``, ``where``, ``format``, ``pm``, ``pivot``, ``bold``),
        each as the text written on the page.

    Returns
    -------
    headers : list of str
    rows : list of list of str
    bold : list of int
        Indices of the columns to set in bold.
    """
    path = Path(path)
    options = options or {}
    rows = doc["rows"]
    columns = _names(options.get("columns")) or list(doc.get("columns") or rows[0])
    where = _pairs(options.get("where"), ":where:", path)
    negated = {k[:-1].strip() for k in where if k.endswith("!")}
    where = {k.rstrip("!").strip(): v for k, v in where.items()}
    fmt = _pairs(options.get("format"), ":format:", path)
    pm = _pairs(options.get("pm"), ":pm:", path)
    ranges = {k: tuple(v.split("/", 1)) for k, v in _pairs(options.get("range"), ":range:", path).items()}
    if any(len(v) != 2 for v in ranges.values()):
        raise ResultsError(f"results table of {path}: option :range: wants column=low/high, got {options.get('range')!r}")
    pivot = (options.get("pivot") or "").strip() or None
    needed = set(columns) | set(where) | set(pm.values()) | {c for v in ranges.values() for c in v}
    needed |= {pivot} if pivot else set()
    known = set().union(*(r.keys() for r in rows))
    absent = sorted(needed - known)
    if absent:
        raise ResultsError(f"results file {path} has no column {', '.join(absent)} (its columns: {', '.join(sorted(known))})")
    for c in fmt.keys() | pm.keys() | ranges.keys():
        if c not in columns:
            raise ResultsError(f"results table of {path}: {c!r} is formatted but not among the shown columns {columns}")
    def matches(r: dict, k: str, v: str) -> bool:
        return any(format_value(r.get(k)) == a or str(r.get(k)) == a for a in v.split("|"))

    kept = [r for r in rows if all(matches(r, k, v) != (k in negated) for k, v in where.items())]
    if not kept:
        raise ResultsError(f"results file {path}: no row has {options.get('where')}")

    def cell(r: dict, c: str) -> str:
        text = format_value(r.get(c), fmt.get(c))
        if c in pm and r.get(c) is not None and r.get(pm[c]) is not None:
            spec = fmt.get(c)
            text += " +- " + format_value(r.get(pm[c]), spec.replace("+", "", 1) if spec else None)  # no sign
        if c in ranges and r.get(c) is not None:
            lo, hi = (format_value(r.get(k), fmt.get(c)) for k in ranges[c])
            text += f" ({lo}-{hi})"
        return text

    if pivot is None:
        headers = _headers(options.get("headers")) or columns
        body = [[cell(r, c) for c in columns] for r in kept]
    else:
        if len(columns) < 2:
            raise ResultsError(f"results table of {path}: :pivot: needs key columns and one value column")
        keys, value = columns[:-1], columns[-1]
        piv = list(dict.fromkeys(r.get(pivot) for r in kept))
        table: dict[tuple, dict] = {}
        for r in kept:
            table.setdefault(tuple(r.get(k) for k in keys), {})[r.get(pivot)] = r
        key_headers = _headers(options.get("headers")) or keys
        headers = key_headers[: len(keys)] + [f"{pivot} = {format_value(p)}" for p in piv]
        body = [[format_value(k) for k in key] + [cell(cells[p], value) if p in cells else "-" for p in piv]
                for key, cells in table.items()]
    if len(headers) != len(body[0]):
        raise ResultsError(f"results table of {path}: {len(headers)} headers for {len(body[0])} columns")
    bold_names = _names(options.get("bold"))
    shown = columns if pivot is None else columns[:-1]
    bold = [shown.index(b) for b in bold_names if b in shown]
    if pivot is not None and columns[-1] in bold_names:
        bold += list(range(len(shown), len(headers)))
    return headers, body, bold


class ResultsTable(Directive):
    r"""``results-table NAME``: the table of ``benchmarks/results/NAME.json`` and its provenance line."""

    required_arguments = 1
    has_content = False
    option_spec: ClassVar[dict] = {k: directives.unchanged
                                   for k in ("columns", "headers", "where", "format", "pm", "range", "pivot", "bold")}

    def run(self) -> list[nodes.Node]:
        env = self.state.document.settings.env
        path = results_dir(env.srcdir) / f"{self.arguments[0]}.json"
        env.note_dependency(str(path))  # a page is rebuilt when its results change
        doc = load_results(path)
        headers, body, bold = render_table(doc, path, self.options)
        return [_table_node(headers, body, bold), _provenance_node(doc)]


def _table_node(headers: list[str], body: list[list[str]], bold: list[int]) -> nodes.table:
    table = nodes.table(classes=["results-table"])
    group = nodes.tgroup(cols=len(headers))
    table += group
    for _ in headers:
        group += nodes.colspec(colwidth=1)

    def row(cells: list[str], strong: list[int]) -> nodes.row:
        r = nodes.row()
        for i, text in enumerate(cells):
            entry = nodes.entry()
            para = nodes.paragraph()
            para += nodes.strong(text=text) if i in strong else nodes.Text(text)
            entry += para
            r += entry
        return r

    thead = nodes.thead()
    thead += row(headers, [])
    group += thead
    tbody = nodes.tbody()
    for cells in body:
        tbody += row(cells, bold)
    group += tbody
    return table


def _provenance_node(doc: dict) -> nodes.paragraph:
    para = nodes.paragraph(classes=["results-provenance"])
    para += nodes.emphasis(text="Measured by ")
    para += nodes.literal(text=doc["command"])
    para += nodes.emphasis(text=" " + provenance(doc)[len(doc["command"]) + 1:])
    return para


def setup(app):
    app.add_directive("results-table", ResultsTable)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
