"""``crawl --follow`` on a real documentation tree nobody here wrote, against ``wget -r -np``.

Debian's python3-doc (the CPython documentation, ~530 HTML pages, 67 MB, with
pages of ~2,500 links) served by nginx on 127.0.0.1: polyfetch's page set must
be wget's. ``scripts/setup`` installs python3-doc, wget and nginx (as root);
without them this test skips.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from polyfetch.bench import nginx
from tests.crawl_helpers import Crawls

DOCS = sorted(glob.glob("/usr/share/doc/python3.*/html/index.html"))


@pytest.fixture(scope="module")
def docs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not DOCS or not nginx.available() or shutil.which("wget") is None:
        pytest.skip("needs python3-doc, nginx and wget (scripts/setup installs them as root)")
    where = tmp_path_factory.mktemp("nginx")
    os.makedirs(where / "www")
    os.symlink(os.path.dirname(DOCS[-1]), where / "www" / "docs")
    server = nginx.start(str(where))
    try:
        yield server.base
    finally:
        nginx.stop(server.proc)


@pytest.mark.timeout(300)
def test_follow_finds_the_pages_wget_finds(docs_server: str, tmp_path: Path) -> None:
    """One backend: the page set is the frontier's (the conformance checks run it on all)."""
    seed = f"{docs_server}/docs/index.html"
    mirror = tmp_path / "wget"
    subprocess.run(
        ["wget", "-r", "-np", "-l", "inf", "-nv", "-e", "robots=off", "-P", str(mirror), seed],
        capture_output=True,
        timeout=240,
        check=False,  # wget exits 8 for the tree's one broken link
    )
    host = docs_server.removeprefix("http://")
    wget_pages = {
        f"http://{os.path.relpath(path, mirror)}"
        for path in glob.glob(f"{mirror}/{host}/**/*.html", recursive=True)
    }
    assert len(wget_pages) > 400, "wget mirrored the tree"

    out = tmp_path / "out.jsonl"
    crawls = Crawls()
    try:
        done = crawls.run(
            seed, "--follow", "--scope", "prefix", "-o", str(out), "-c", "32", timeout=240,
        )  # fmt: skip
    finally:
        crawls.close()
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    ours = {
        r["url"] + ("index.html" if r["url"].endswith("/") else "")
        for r in records
        if r["status"] == 200 and r["content_type"] == "text/html"
    }
    assert len(ours) == len(
        [r for r in records if r["status"] == 200 and "html" in (r["content_type"] or "")]
    )
    assert ours == wget_pages, (sorted(ours - wget_pages)[:10], sorted(wget_pages - ours)[:10])
