"""polyfetch crawl: canonical dedup (each line its record, duplicates pointing at the fetch,
through --resume), --robots, and the per-host queues' options."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from collections.abc import Iterator

import pytest

from tests.conftest import Servers
from tests.crawl_helpers import Crawls, records

FAST = ["--timeout", "5", "--retries", "0"]


@pytest.fixture
def crawls() -> Iterator[Crawls]:
    c = Crawls()
    yield c
    c.close()


def test_canonical_dedup_fetches_once_and_every_line_points_at_the_fetch(
    servers: Servers, crawls: Crawls, tmp_path
) -> None:
    host, port = "127.0.0.1", servers.port
    same = [
        f"http://{host}:{port}/bytes/7?a=1",
        f"HTTP://{host}:{port}/bytes/7?a=1#top",
        f"http://{host}:{port}/./bytes/7?a=%31",
    ]
    other = f"http://{host}:{port}/bytes/8"
    urls = tmp_path / "urls.txt"
    urls.write_text("\n".join([*same, other, same[1]]) + "\n")
    servers.reset_stats()
    done = crawls.run(str(urls), *FAST)
    assert done.returncode == 0, done.stderr
    got = sorted(records(done.stdout), key=lambda r: r["line"])
    assert [r["line"] for r in got] == [1, 2, 3, 4, 5]
    assert got[0]["status"] == 200 and got[0]["duplicate_of"] is None
    assert [r["duplicate_of"] for r in got] == [None, 1, 1, None, 1]
    assert got[3]["status"] == 200
    assert servers.stats()["_total"]["requests"] == 2, "three spellings of one URL: one fetch"
    assert "; 3 duplicate" in done.stderr, done.stderr

    exact = crawls.run(str(urls), "--dedup", "exact", *FAST)
    dups = [r["duplicate_of"] for r in sorted(records(exact.stdout), key=lambda r: r["line"])]
    assert dups == [None, None, None, None, 2], "--dedup exact: only the repeated line"
    off = crawls.run(str(urls), "--dedup", "off", *FAST)
    assert all(r["status"] == 200 for r in records(off.stdout))


def test_resume_keeps_duplicates_pointing_at_their_first_line(
    servers: Servers, crawls: Crawls, tmp_path
) -> None:
    urls, out = tmp_path / "urls.txt", tmp_path / "out.jsonl"
    a, b = f"{servers.http}/bytes/1", f"{servers.http}/bytes/2"
    urls.write_text(f"{a}\n{b}\n")
    assert crawls.run(str(urls), "-o", str(out), *FAST).returncode == 0
    urls.write_text(f"{a}\n{b}\n{a}#x\n{servers.http}/bytes/3\n{b}\n")
    done = crawls.run(str(urls), "-o", str(out), "--resume", *FAST)
    assert done.returncode == 0, done.stderr
    got = sorted(records(out.read_bytes()), key=lambda r: r["line"])
    assert [(r["line"], r["duplicate_of"]) for r in got] == [
        (1, None),
        (2, None),
        (3, 1),
        (4, None),
        (5, 2),
    ]


def test_crawl_robots(servers: Servers, crawls: Crawls, tmp_path) -> None:
    host = servers.hosts[9]
    query = urllib.parse.urlencode({"body": "User-agent: *\nDisallow: /bytes/2\n"})
    base = f"http://{host}:{servers.port}"
    urllib.request.urlopen(f"{base}/robots-set?{query}", timeout=10).read()
    urls = tmp_path / "urls.txt"
    urls.write_text(f"{base}/bytes/1\n{base}/bytes/2\n{base}/bytes/3\n")
    done = crawls.run(str(urls), "--robots", "--max-crawl-delay", "1", "--lookahead", "5", *FAST)
    assert done.returncode == 0, done.stderr
    got = {r["url"].rsplit("/", 1)[1]: r for r in records(done.stdout)}
    assert got["1"]["status"] == got["3"]["status"] == 200
    assert got["2"]["error"] == "RobotsDisallowed", got
    assert got["2"]["attempts"] == 0
    counts = json.load(urllib.request.urlopen(f"{servers.http}/robots-count", timeout=10))
    assert counts[f"{host}:{servers.port}"] == 1


def test_crawl_help_documents_politeness(crawls: Crawls) -> None:
    done = crawls.run("--help")
    text = done.stdout.decode()
    for word in (
        "--robots",
        "--auto-throttle",
        "--lookahead",
        "--dedup",
        "Crawl-delay",
        "waiting on host",
    ):
        assert word in text, word
