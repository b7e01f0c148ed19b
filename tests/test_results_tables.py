r"""The docs' results tables: a table is rendered from a results file, and a bad file stops the build.

``docs/_ext/results_tables.py`` turns ``benchmarks/results/NAME.json`` into a table with one provenance
line; these tests run its rendering function on small files written here, and check that a missing file,
a file that is not JSON, one without provenance, and a table naming an absent column are errors that
name the file (never an empty table).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "docs" / "_ext"))

import results_tables as rt

DOC = {
    "name": "toy",
    "command": "python benchmarks/toy.py --n 10",
    "date": "2000-01-01",
    "cpu": "Some CPU @ 2.0GHz",
    "versions": {"python": "3.11.0", "numpy": "2.0.0", "scipy": "1.14.0", "numba": "0.60.0"},
    "threads": {"pools": [{"user_api": "blas", "internal_api": "openblas", "version": "0.3.27", "num_threads": 1}]},
    "columns": ["sampler", "nfe", "kl", "se"],
    "rows": [
        {"sampler": "ddim", "nfe": 5, "kl": 0.6241, "se": 0.038},
        {"sampler": "ddim", "nfe": 10, "kl": 0.1412, "se": 0.012},
        {"sampler": "unipc", "nfe": 5, "kl": 0.4263, "se": 0.013},
        {"sampler": "unipc", "nfe": 10, "kl": None, "se": None},
    ],
}


def write(tmp_path: Path, doc, name: str = "toy") -> Path:
    path = tmp_path / f"{name}.json"
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc), encoding="utf-8")
    return path


def test_plain_table_keeps_rows_and_columns_in_order(tmp_path):
    path = write(tmp_path, DOC)
    headers, body, bold = rt.render_table(rt.load_results(path), path)
    assert headers == ["sampler", "nfe", "kl", "se"]
    assert body[0] == ["ddim", "5", "0.6241", "0.038"]
    assert body[3] == ["unipc", "10", "-", "-"]  # null is a dash, never "None" or "nan"
    assert bold == []


def test_columns_headers_where_format_and_pm(tmp_path):
    path = write(tmp_path, DOC)
    opts = {"columns": "nfe, kl", "headers": "evaluations, KL (nats)", "where": "sampler=ddim",
            "format": "kl=.2f", "pm": "kl=se", "bold": "kl"}
    headers, body, bold = rt.render_table(rt.load_results(path), path, opts)
    assert headers == ["evaluations", "KL (nats)"]
    assert body == [["5", "0.62 +- 0.04"], ["10", "0.14 +- 0.01"]]
    assert bold == [1]


def test_where_takes_alternatives_and_negations(tmp_path):
    path = write(tmp_path, DOC)
    _, body, _ = rt.render_table(rt.load_results(path), path, {"columns": "sampler, nfe", "where": "nfe=5|10, sampler!=ddim"})
    assert body == [["unipc", "5"], ["unipc", "10"]]


def test_range_shows_low_and_high(tmp_path):
    doc = {**DOC, "rows": [{"batch": 32, "rate": 1283.4, "lo": 1091.0, "hi": 1431.2}], "columns": ["batch", "rate"]}
    path = write(tmp_path, doc)
    _, body, _ = rt.render_table(rt.load_results(path), path, {"range": "rate=lo/hi", "format": "rate=.0f"})
    assert body == [["32", "1283 (1091-1431)"]]
    with pytest.raises(rt.ResultsError, match="no column"):
        rt.render_table(rt.load_results(path), path, {"range": "rate=lo/top"})


def test_quoted_headers_keep_their_commas(tmp_path):
    path = write(tmp_path, DOC)
    headers, _, _ = rt.render_table(rt.load_results(path), path, {"columns": "sampler, kl", "headers": '"", "KL, nats"'})
    assert headers == ["", "KL, nats"]


def test_a_signed_format_leaves_the_error_unsigned(tmp_path):
    path = write(tmp_path, DOC)
    _, body, _ = rt.render_table(rt.load_results(path), path,
                                 {"columns": "kl", "where": "nfe=5, sampler=ddim", "format": "kl=+.2f", "pm": "kl=se"})
    assert body == [["+0.62 +- 0.04"]]


def test_pivot_makes_one_column_per_value(tmp_path):
    path = write(tmp_path, DOC)
    headers, body, _ = rt.render_table(rt.load_results(path), path,
                                       {"columns": "sampler, kl", "pivot": "nfe", "format": "kl=.3g"})
    assert headers == ["sampler", "nfe = 5", "nfe = 10"]
    assert body == [["ddim", "0.624", "0.141"], ["unipc", "0.426", "-"]]


def test_provenance_line_names_command_date_cpu_versions_and_threads():
    line = rt.provenance(DOC)
    for part in ("python benchmarks/toy.py --n 10", "2000-01-01", "Some CPU", "numpy 2.0.0", "scipy 1.14.0",
                 "numba 0.60.0", "openblas 0.3.27, 1 thread"):
        assert part in line, (part, line)


def test_missing_file_is_an_error_naming_it(tmp_path):
    path = tmp_path / "absent.json"
    with pytest.raises(rt.ResultsError, match=r"absent\.json.*does not exist"):
        rt.load_results(path)


@pytest.mark.parametrize("text, message", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "expected a JSON object"),
    (json.dumps({k: v for k, v in DOC.items() if k != "command"}), "lacks command"),
    (json.dumps({**DOC, "rows": []}), "non-empty list"),
])
def test_malformed_file_is_an_error_naming_it(tmp_path, text, message):
    path = write(tmp_path, text, name="broken")
    with pytest.raises(rt.ResultsError, match=message) as info:
        rt.load_results(path)
    assert "broken.json" in str(info.value)


@pytest.mark.parametrize("opts", [{"columns": "sampler, gap"}, {"where": "grid=uniform"}, {"pm": "kl=kl_se"},
                                  {"columns": "kl", "pivot": "steps"}])
def test_absent_column_is_an_error_naming_file_and_column(tmp_path, opts):
    path = write(tmp_path, DOC)
    with pytest.raises(rt.ResultsError, match="no column") as info:
        rt.render_table(rt.load_results(path), path, opts)
    assert "toy.json" in str(info.value)


def test_filter_that_keeps_no_row_is_an_error(tmp_path):
    path = write(tmp_path, DOC)
    with pytest.raises(rt.ResultsError, match="no row"):
        rt.render_table(rt.load_results(path), path, {"where": "sampler=heun"})


def test_results_error_stops_a_sphinx_build():
    from sphinx.errors import ExtensionError

    assert issubclass(rt.ResultsError, ExtensionError)  # raised from a directive, Sphinx aborts the build


def test_committed_results_files_load():
    # every committed results file gives a table and a provenance line
    paths = sorted((Path(__file__).resolve().parents[1] / "benchmarks" / "results").glob("*.json"))
    assert paths, "no results files committed"
    for path in paths:
        doc = rt.load_results(path)
        headers, body, _ = rt.render_table(doc, path)
        assert len(body) == len(doc["rows"]) and all(len(r) == len(headers) for r in body), path
        assert doc["command"].startswith("python benchmarks/"), path
