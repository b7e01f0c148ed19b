"""The site's build tools: the API pages and their references, and the command line the chapters run with.

The API side must list npdiff's public modules in the README's order, send a reference through a re-export
to where the object is defined, and cite from each module's page the papers its docstrings name, by the
keys of the one bibliography. The gallery must run every chapter with the same output folder (chapter 5
reads the model chapter 4 wrote), in ``--quick`` mode unless a full build is asked for.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "docs" / "_ext"))

import api_pages  # noqa: E402
import gallery_runs  # noqa: E402

BIB_KEYS = set(re.findall(r"^@\w+\{(\w+),", (REPO / "docs" / "references.bib").read_text(), flags=re.M))

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


def test_the_architecture_section_is_found_between_its_markers(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# x\n\n## Map\n\n<!-- architecture-start -->\n| module | what |\n|---|---|\n"
                      "| `npdiff/forward.py` | q |\n| `npdiff/sample/` | samplers: `ode.py` |\n"
                      "<!-- architecture-end -->\n\n| `npdiff/gaussian.py` | after the end marker |\n")
    assert api_pages.reading_order(readme) == ["npdiff.forward", "npdiff.sample", "npdiff.sample.ode"]
    readme.write_text("## Architecture\n\n| `npdiff/forward.py` | q |\n")  # no markers: no order, not a guess
    assert api_pages.reading_order(readme) == []
    # the real README carries the markers the landing page includes between
    assert api_pages.reading_order()[:3] == ["npdiff.schedule", "npdiff.gaussian", "npdiff.forward"]


@pytest.mark.parametrize(("text", "keys"), [
    ("Ho et al. 2020, Eq. 4; in continuous time: Song et al. 2021, Eq. 29", ["ho2020ddpm", "song2021sde"]),
    ("as in Ho et al. (2020) and Ho et al. 2022", ["ho2020ddpm", "ho2022cascaded"]),
    ("DDIM (Song, Meng & Ermon 2021, Eq. 12); likelihood weighting (Song, Durkan, Murray & Ermon 2021)",
     ["song2021ddim", "song2021scoreflow"]),
    ("DPM-Solver (Lu et al. 2022a) and its multistep form (Lu et al. 2022b)", ["lu2022dpmsolver", "lu2022dpmpp"]),
    (r"AdamW (Kingma \& Ba 2015, Alg. 1; Loshchilov \& Hutter 2019)", ["kingma2015adam", "loshchilov2019adamw"]),
    ("Nichol & Dhariwal 2021 (cosine) then Dhariwal & Nichol 2021 (guidance)", ["nichol2021improved", "dhariwal2021adm"]),
    # not a citation the table can name without doubt: stays text
    ("Lu et al. 2022 without its letter, He et al. 2015's init, Ho et al. 2019, Ho et al. 20201", []),
    ("no Hutchinson noise here, nor a Tweedie year", []),
])
def test_docstring_mentions_map_to_bibliography_keys(text: str, keys: list[str]) -> None:
    assert api_pages.cited_keys(text) == keys


def test_every_key_the_table_names_is_in_the_bibliography() -> None:
    named = {key for _, _, key in api_pages.MENTIONS}
    assert named <= BIB_KEYS, f"keys with no entry in docs/references.bib: {sorted(named - BIB_KEYS)}"
    assert set(api_pages.bibliography_titles()) == BIB_KEYS


def test_a_module_page_cites_the_papers_its_docstrings_name() -> None:
    modules = api_pages.public_modules()
    page = api_pages.module_page("npdiff.guidance", modules)
    references = page.split(".. rubric:: References", 1)[1]
    cited = re.findall(r":cite:t:`(\w+)`", references)
    assert cited[:2] == ["ho2022cfg", "dhariwal2021adm"], references
    assert set(cited) <= BIB_KEYS
    # a page whose docstrings name no paper gets no empty section
    assert api_pages.references_section("a module that cites nothing", api_pages.bibliography_titles()) == []


def test_every_chapter_runs_with_one_output_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    docs, tutorials = tmp_path / "docs", tmp_path / "tutorials"
    conf = {"src_dir": str(docs)}
    monkeypatch.delenv("NPDIFF_DOCS_FULL", raising=False)
    argvs = [gallery_runs.reset_argv(conf, {"src_file": str(tutorials / name)})
             for name in ("04_training_the_mlp.py", "05_exact_likelihood.py")]
    assert argvs[0] == argvs[1] == ["--quick", "--out", os.path.join("..", "docs", "_build", "chapter-out", "quick")]
    monkeypatch.setenv("NPDIFF_DOCS_FULL", "1")
    full = gallery_runs.reset_argv(conf, {"src_file": str(tutorials / "04_training_the_mlp.py")})
    assert full == ["--out", os.path.join("..", "docs", "_build", "chapter-out", "full")]
    monkeypatch.setenv("NPDIFF_DOCS_FULL", "0")
    assert gallery_runs.reset_argv(conf, {"src_file": str(tutorials / "x.py")})[0] == "--quick"
