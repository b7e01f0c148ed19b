r"""How the site runs the chapters: their command line in the gallery, and a rerun when the mode changes.

sphinx-gallery reads ``tutorials/`` as it is and runs every chapter in the chapter's own folder. Each gets
``--quick`` (unless ``NPDIFF_DOCS_FULL=1``) and the same ``--out`` folder, one per mode under
``docs/_build/chapter-out/``: chapter 5 reads the model chapter 4 wrote there. The folder is passed
relative to ``tutorials/`` so that what a chapter prints about it names no machine's folders.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def full_run() -> bool:
    r"""Whether the chapters run at full length (``NPDIFF_DOCS_FULL`` set to anything but ``0``)."""
    return os.environ.get("NPDIFF_DOCS_FULL", "") not in ("", "0")


def chapter_out(docs: Path, full: bool) -> Path:
    r"""The folder every chapter writes its files (figures, chapter 4's model) to, one per mode."""
    return Path(docs) / "_build" / "chapter-out" / ("full" if full else "quick")


def reset_argv(gallery_conf: dict, script_vars: dict) -> list[str]:
    r"""The command line a chapter runs with in the gallery: ``--quick`` unless a full build, and ``--out``."""
    full = full_run()
    out = chapter_out(Path(gallery_conf["src_dir"]), full)
    out.mkdir(parents=True, exist_ok=True)
    rel = os.path.relpath(out, Path(script_vars["src_file"]).parent)
    return ["--out", rel] if full else ["--quick", "--out", rel]


def _rerun_on_mode_change(app, config) -> None:
    # the gallery reruns a chapter only when its source changed: a change of mode must rerun them all
    gallery = Path(app.srcdir) / "tutorials"
    stamp = gallery / ".mode"
    mode = "full" if full_run() else "quick"
    if stamp.is_file() and stamp.read_text() != mode:
        shutil.rmtree(gallery)
    gallery.mkdir(exist_ok=True)
    stamp.write_text(mode)


def setup(app) -> dict:
    app.connect("config-inited", _rerun_on_mode_change)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
