r"""The built site, checked in a real browser: headless Chromium over every page, served from loopback.

Run after building the site (not part of the default ``pytest`` run, whose ``testpaths`` is ``tests/``)::

    python -m sphinx -W --keep-going -b html docs docs/_build/html
    python -m pytest -p no:cacheprovider docs/test_site.py

Each documentation page (the landing page, every chapter, every API page, the measurement pages, the
notation and the bibliography, the indices) and a sample of the highlighted-source pages is loaded in
Debian's ``chromium`` (``NPDIFF_CHROMIUM`` names another binary) through Playwright, which drives the
system browser and downloads none. A page passes when it loads with no console error and no failed request;
asks nothing of any host but the local server (the site is offline: every other request is refused and
reported); has every formula typeset by MathJax (each ``.math`` element holds a rendered ``mjx-container``
without a TeX error, and no ``\(``, ``\[``, ``$$`` or ``:math:`` is left in the visible text); has every
image loaded (natural width above 0); and every link to the site itself resolves to a file that exists,
with its ``#fragment`` an id in that file.

The chapters are checked as a book is read, at 1280 and at 1440 pixels wide: every chapter of
``tutorials/`` has its page, numbered from 0 without a gap; each shows typeset formulas, its figures
(loaded) and its printed output; no line of a code cell is wider than 88 columns (the output may scroll);
the navigation sidebar is open beside the text (a desktop layout, not a menu pushed above the page) and
lists every chapter. Screenshots of the landing page and of chapter 1 at 1280 pixels go to
``docs/_build/screenshots/`` (beside the site folder).
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import tempfile
import threading
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from playwright.sync_api import sync_playwright

DOCS = Path(__file__).resolve().parent
REPO = DOCS.parent
SITE = Path(os.environ.get("NPDIFF_SITE", DOCS / "_build" / "html")).resolve()
SCREENSHOTS = SITE.parent / "screenshots"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run", "--disable-sync"]
SOURCE_PAGES_SAMPLE = ("_modules/npdiff/schedule.html", "_modules/npdiff/nn/mlp.html", "_modules/npdiff/forward.html")
FORMULA_PAGES = ("api/npdiff.schedule.html", "api/npdiff.forward.html", "api/npdiff.gaussian.html")
SKIP_FOLDERS = {"_static", "_sources", "_downloads", "_images", "_modules"}
WIDTHS = (1280, 1440)  # a laptop and a desktop: both must get the desktop layout
HEIGHT = 1000
CODE_COLUMNS = 88  # the longest line a code cell of a chapter may show (the project's line length for chapters)
# the chapters as the repository holds them: each must have its page
CHAPTER_SOURCES = sorted(p.stem for p in (REPO / "tutorials").glob("[0-9][0-9]_*.py"))


def _pages() -> list[str]:
    if not (SITE / "index.html").is_file():
        raise FileNotFoundError(f"no built site at {SITE}: build it first (python -m sphinx -W -b html docs {SITE})")
    found = sorted(p.relative_to(SITE).as_posix() for p in SITE.rglob("*.html"))
    found = [p for p in found if not SKIP_FOLDERS & set(p.split("/"))]
    return found + [p for p in SOURCE_PAGES_SAMPLE if (SITE / p).is_file()]


PAGES = _pages()


class _Ids(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for key, value in attrs:
            if key in ("id", "name") and value:
                self.ids.add(value)


@functools.cache
def ids_in(path: Path) -> frozenset[str]:
    r"""The ids (and anchor names) of an HTML file: what a ``#fragment`` may point at."""
    parser = _Ids()
    parser.feed(path.read_text(errors="replace"))
    return frozenset(parser.ids)


@pytest.fixture(scope="module")
def server():
    handler = functools.partial(_QuietHandler, directory=str(SITE))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # the test reports what failed, not every request
        pass


@pytest.fixture(scope="module")
def browser_context(server):
    chromium = os.environ.get("NPDIFF_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "no chromium on PATH: install Debian's package (apt-get install chromium) or set NPDIFF_CHROMIUM"
    with tempfile.TemporaryDirectory(prefix="npdiff-chromium-") as profile, sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            profile, executable_path=chromium, headless=True, args=CHROMIUM_FLAGS,
            viewport={"width": WIDTHS[0], "height": HEIGHT}, service_workers="block",
        )
        context.offline_requests = []  # every request to a host other than the local server, refused

        def route(request_route):
            if request_route.request.url.startswith(server + "/"):
                request_route.continue_()
            else:
                context.offline_requests.append(request_route.request.url)
                request_route.abort()

        context.route("**/*", route)
        yield context
        context.close()


def _visit(context, server: str, page_path: str, width: int = WIDTHS[0]) -> dict:
    r"""Load one page at ``width`` pixels and return what the checks need.

    Errors, requests, math, images, links, visible text, the code cells' lines, the sidebar's links and boxes.
    """
    page = context.new_page()
    page.set_viewport_size({"width": width, "height": HEIGHT})
    problems: list[str] = []
    page.on("console", lambda msg: problems.append(f"console {msg.type}: {msg.text}") if msg.type == "error" else None)
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on("requestfailed", lambda req: problems.append(f"request failed: {req.url} ({req.failure})"))
    page.on("response", lambda resp: problems.append(f"HTTP {resp.status}: {resp.url}") if resp.status >= 400 else None)
    before = len(context.offline_requests)
    response = page.goto(f"{server}/{page_path}", wait_until="load")
    assert response is not None and response.ok, f"{page_path}: HTTP {response.status if response else 'no response'}"
    page.evaluate("() => window.MathJax && MathJax.startup ? MathJax.startup.promise : null")
    found = page.evaluate(
        """async () => {
            const imgs = [...document.images];
            const sizes = await Promise.all(imgs.map(img => {
                img.loading = 'eager';
                return img.decode().then(() => img.naturalWidth, () => img.naturalWidth);
            }));
            const maths = [...document.querySelectorAll('.math')];
            const body = document.body.cloneNode(true);
            body.querySelectorAll('pre, code, script, style, mjx-container, .highlight').forEach(e => e.remove());
            return {
                images: imgs.map((img, i) => [img.getAttribute('src'), sizes[i]]),
                math: maths.length,
                typeset: maths.filter(m => m.querySelector('mjx-container')).length,
                math_errors: document.querySelectorAll('mjx-merror, [data-mjx-error]').length,
                links: [...document.querySelectorAll('a[href]')].map(a => a.href),
                text: body.innerText,
                title: (document.querySelector('[role=main] h1, .body h1') || {innerText: ''}).innerText,
                output: [...document.querySelectorAll('.sphx-glr-script-out')].map(e => e.innerText).join('\\n'),
                typeset_total: document.querySelectorAll('mjx-container').length,
                // a code cell of a chapter: sphinx-gallery's Python blocks, not the output blocks under them
                code_lines: [...document.querySelectorAll('div.highlight-Python pre')]
                    .filter(pre => !pre.closest('.sphx-glr-script-out'))
                    .flatMap(pre => pre.innerText.replace(/\\n$/, '').split('\\n')),
                figures: [...document.querySelectorAll('img.sphx-glr-single-img, img.sphx-glr-multi-img')]
                    .map((img, i) => [img.getAttribute('src'), img.naturalWidth]),
                layout: (() => {
                    const box = sel => {
                        const e = document.querySelector(sel);
                        if (!e) return null;
                        const r = e.getBoundingClientRect(), st = getComputedStyle(e);
                        return {left: r.left, right: r.right, width: r.width, top: r.top, height: r.height,
                                shown: st.display !== 'none' && st.visibility !== 'hidden' && r.width > 0};
                    };
                    return {sidebar: box('#pst-primary-sidebar'), article: box('article.bd-article'),
                            menu_button: box('button.primary-toggle')};
                })(),
                // the chapters the primary sidebar shows (a link inside a closed <details> is not shown)
                nav_chapters: [...document.querySelectorAll('#pst-primary-sidebar a[href]')]
                    .filter(a => a.checkVisibility())
                    .map(a => new URL(a.href).pathname.split('/').pop())
                    .filter(name => /^\\d\\d_\\w+\\.html$/.test(name)),
            };
        }"""
    )
    page.close()
    found["problems"] = problems
    found["offline_requests"] = context.offline_requests[before:]
    return found


def _unresolved_links(links: list[str], server: str) -> list[str]:
    r"""The links to the site itself whose file does not exist, or whose ``#fragment`` is not an id there."""
    bad = []
    for href in links:
        if not href.startswith(server + "/"):
            continue  # another scheme or host: the site never fetches it (checked by the offline rule)
        parts = urlsplit(href)
        target = SITE / unquote(parts.path).lstrip("/")
        if target.is_dir():
            target = target / "index.html"
        if not target.is_file():
            bad.append(f"{href} (no file {target.relative_to(SITE) if target.is_relative_to(SITE) else target})")
        elif parts.fragment and target.suffix == ".html" and unquote(parts.fragment) not in ids_in(target):
            bad.append(f"{href} (no id {parts.fragment!r} in {target.relative_to(SITE)})")
    return bad


@pytest.fixture(scope="module")
def visit(browser_context, server):
    seen: dict[tuple[str, int], dict] = {}  # one visit per page and width, shared by the tests below

    def _get(page_path: str, width: int = WIDTHS[0]) -> dict:
        if (page_path, width) not in seen:
            seen[page_path, width] = _visit(browser_context, server, page_path, width)
        return seen[page_path, width]

    return _get


@pytest.mark.parametrize("page_path", PAGES)
def test_page_loads_offline_typeset_with_images_and_links(visit, server, page_path: str) -> None:
    got = visit(page_path)
    assert not got["problems"], f"{page_path}: " + "; ".join(got["problems"])
    assert not got["offline_requests"], f"{page_path} asked another host for: {got['offline_requests']}"
    assert got["typeset"] == got["math"], f"{page_path}: {got['math'] - got['typeset']} of {got['math']} formulas not typeset"
    assert got["math_errors"] == 0, f"{page_path}: {got['math_errors']} formulas typeset as TeX errors"
    for raw in ("\\(", "\\[", "$$", ":math:"):
        where = got["text"].find(raw)
        assert where < 0, f"{page_path}: raw {raw!r} in the visible text: {got['text'][max(0, where - 80):where + 80]!r}"
    broken = [src for src, width in got["images"] if not width]
    assert not broken, f"{page_path}: images that did not load: {broken}"
    bad = _unresolved_links(got["links"], server)
    assert not bad, f"{page_path}: {len(bad)} links that do not resolve: {bad[:10]}"


@pytest.mark.parametrize("page_path", FORMULA_PAGES)
def test_formula_pages_have_typeset_math(visit, page_path: str) -> None:
    # the rule above holds vacuously on a page with no math: these pages are made of formulas
    got = visit(page_path)
    assert got["typeset"] >= 5, f"{page_path}: {got['typeset']} typeset formulas"


CHAPTER_PAGES = [p for p in PAGES if re.fullmatch(r"tutorials/\d\d_\w+\.html", p)]


def test_every_chapter_has_its_page_numbered_from_zero() -> None:
    pages = sorted(p.split("/")[-1].removesuffix(".html") for p in CHAPTER_PAGES)
    assert pages == CHAPTER_SOURCES, f"chapter pages {pages} against the chapters of tutorials/ {CHAPTER_SOURCES}"
    numbers = [int(name[:2]) for name in pages]
    assert numbers == list(range(len(numbers))), f"the chapters are not numbered 0, 1, 2, ... without a gap: {numbers}"


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("page_path", CHAPTER_PAGES)
def test_a_chapter_reads_like_a_book(visit, page_path: str, width: int) -> None:
    got = visit(page_path, width)
    number = page_path.split("/")[-1][:2]
    assert got["title"].startswith(f"Chapter {int(number)}:"), f"{page_path} is titled {got['title']!r}"
    # the math typeset beside the code: MathJax's elements, and (checked on every page) no raw TeX left
    assert got["typeset_total"] > 0, f"{page_path}: no typeset formula (no mjx-container) at {width} px"
    # each figure right after the cell that drew it, loaded
    assert got["figures"], f"{page_path} shows no figure of its chapter"
    broken = [src for src, w in got["figures"] if not w]
    assert not broken, f"{page_path}: figures that did not load: {broken}"
    # the chapter ran in the build and its printed numbers are on the page
    assert " = " in got["output"], f"{page_path} shows none of the chapter's printed numbers"
    # the code a reader reads fits its box: no code cell line longer than the chapters' line length
    assert got["code_lines"], f"{page_path} shows no code cell"
    wide = [line for line in got["code_lines"] if len(line.rstrip()) > CODE_COLUMNS]
    assert not wide, f"{page_path}: {len(wide)} code lines over {CODE_COLUMNS} columns, e.g. {wide[0]!r}"


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("page_path", ["index.html", "tutorials/index.html", *CHAPTER_PAGES[:2], "api/npdiff.forward.html"])
def test_the_desktop_layout_keeps_the_book_in_the_sidebar(visit, page_path: str, width: int) -> None:
    got = visit(page_path, width)
    sidebar, article, menu = got["layout"]["sidebar"], got["layout"]["article"], got["layout"]["menu_button"]
    # the navigation open at the left of the text, not folded into a menu or pushed above the page
    assert sidebar and sidebar["shown"] and sidebar["width"] >= 180, f"{page_path} at {width} px: sidebar {sidebar}"
    assert sidebar["left"] <= 40 and sidebar["top"] < 200, f"{page_path} at {width} px: sidebar at {sidebar}"
    assert article and article["left"] >= sidebar["right"] - 1, f"{page_path} at {width} px: text under the sidebar"
    assert article["left"] < 0.45 * width and article["top"] < 250, f"{page_path} at {width} px: text starts at {article}"
    assert not (menu and menu["shown"]), f"{page_path} at {width} px shows the mobile menu button"
    # the navigation lists every chapter, in order
    chapters = [f"{name}.html" for name in CHAPTER_SOURCES]
    shown = list(dict.fromkeys(got["nav_chapters"]))
    assert shown == chapters, f"{page_path} at {width} px: the sidebar lists {shown}, the book has {chapters}"


def test_search_finds_a_function(browser_context, server) -> None:
    page = browser_context.new_page()
    page.goto(f"{server}/search.html?q=q_sample", wait_until="load")
    page.wait_for_selector("#search-results li", timeout=20_000)
    hits = page.eval_on_selector_all("#search-results li a", "els => els.map(e => e.href)")
    page.close()
    assert any("npdiff.forward" in h for h in hits), f"searching q_sample found {hits[:5]}"


@pytest.mark.parametrize(("page_path", "name"), [("index.html", "landing_1280.png"),
                                               ("tutorials/01_forward_process.html", "chapter_01_1280.png")])
def test_screenshots_at_1280(browser_context, server, page_path: str, name: str) -> None:
    from PIL import Image, ImageStat

    page = browser_context.new_page()
    page.set_viewport_size({"width": 1280, "height": HEIGHT})
    page.goto(f"{server}/{page_path}", wait_until="load")
    page.evaluate("() => window.MathJax && MathJax.startup ? MathJax.startup.promise : null")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    page.screenshot(path=str(path))
    page.close()
    with Image.open(path) as im:
        assert im.size == (1280, HEIGHT), im.size
        spread = ImageStat.Stat(im.convert("L")).stddev[0]
    assert spread > 20, f"the screenshot is nearly one flat colour (grey-level std {spread:.1f})"
