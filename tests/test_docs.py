"""The README stays short and its links land; the docs site builds with --strict, its home page
renders in headless Chromium and links to every page (UPDATE_SCREENSHOTS=1 refreshes
docs/docs-home.png from it)."""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import yaml
from markdown.extensions.toc import slugify

from tests.helpers.browser import chromium, png_size

REPO_ROOT = Path(__file__).resolve().parent.parent
DOCS = REPO_ROOT / "docs"
SCREENSHOT = DOCS / "docs-home.png"


def anchors(page: Path) -> set[str]:
    """The heading anchors of a Markdown page, as MkDocs' toc extension spells them."""
    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.M | re.S)
    return {slugify(re.sub(r"[`*]", "", h), "-") for h in re.findall(r"^#+ (.+)$", text, flags=re.M)}


def test_the_readme_is_short_and_its_links_land() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    links = re.findall(r"\]\(((?:docs/)[^)#\s]+)(?:#([^)\s]+))?\)", readme)
    assert len(links) >= 10
    for target, anchor in links:
        assert (REPO_ROOT / target).is_file(), target
        if anchor:
            assert anchor in anchors(REPO_ROOT / target), f"{target}#{anchor}"


def test_every_docs_page_is_in_the_navigation() -> None:
    config = yaml.safe_load((REPO_ROOT / "mkdocs.yml").read_text().replace("!!python/name:", ""))
    nav = {page for entry in config["nav"] for page in entry.values()}
    assert nav == {p.name for p in DOCS.glob("*.md")}


def test_the_site_builds_strict_and_its_home_renders(tmp_path: Path) -> None:
    # given the site built as make docs builds it (a broken link or anchor fails the build)
    site = tmp_path / "site"
    build = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "-d", str(site)],
                           cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
                           env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert build.returncode == 0, build.stdout + build.stderr
    assert "MIN_SIZE" in (site / "configuration.html").read_text()  # the generated settings table

    # when it is served over HTTP and its home opened in headless Chromium
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(site))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        dom = chromium("--dump-dom", f"{base}/index.html")
        shot = tmp_path / "docs-home.png"
        screenshot = chromium(f"--screenshot={shot}", "--window-size=1280,1000", f"{base}/index.html")
    finally:
        server.shutdown()
        server.server_close()

    # then it shows the project and links to every page, each of which was built
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "S3 Sync Service" in dom.stdout
    linked = set(re.findall(r'href="([a-z-]+\.html)"', dom.stdout))
    assert {f"{p.stem}.html" for p in DOCS.glob("*.md")} <= linked | {"index.html"}
    assert all((site / page).is_file() for page in linked)
    assert screenshot.returncode == 0 and png_size(shot) == (1280, 1000), screenshot.stderr[-2000:]
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        shutil.copyfile(shot, SCREENSHOT)


def test_make_install_refuses_a_python_older_than_3_11(tmp_path: Path) -> None:
    # given the Makefile in a folder of its own and a python3 that says it is 3.9
    shutil.copy(REPO_ROOT / "Makefile", tmp_path / "Makefile")
    for name in ("requirements.txt", "requirements-dev.txt", "requirements.lock", "requirements-dev.lock",
                 "requirements-mock.lock", "package.json"):
        (tmp_path / name).touch()
    old = tmp_path / "python3.9"
    old.write_text('#!/bin/sh\n[ "$1" = "--version" ] && { echo "Python 3.9.2"; exit 0; }\nexit 1\n')
    old.chmod(0o755)
    # when make install runs with it
    result = subprocess.run(["make", "--no-print-directory", "install", f"PYTHON={old}"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    # then it stops with one line naming the version needed and the one found, and builds nothing
    assert result.returncode != 0
    assert "needs Python 3.11 or later" in result.stdout and "Python 3.9.2" in result.stdout, result.stdout
    assert not (tmp_path / ".venv").exists()
