"""Crawling: ``crawl()`` against the generated site (`polyfetch.testing.site`) of known links.

Every check compares the pages a crawl handed back with what the site's model
says a crawler must fetch (the exact set, and each page's depth: its shortest
distance from a seed), and with what the server saw: per-host peaks in flight,
and when each path was first requested.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from polyfetch.errors import InvalidURL, OutOfScope, RobotsDisallowed
from polyfetch.request import Request
from polyfetch.result import Result
from polyfetch.testing import site
from polyfetch.testing.checks._registry import check, shown
from polyfetch.testing.checks.politeness import set_robots
from polyfetch.testing.harness import Harness
from polyfetch.testing.servers import Servers


def _get(url: str) -> bytes:
    import urllib.request  # imports socket and ssl: not at import (gevent patches later)

    with urllib.request.urlopen(url, timeout=10) as resp:
        return resp.read()  # type: ignore[no-any-return]


def new_site(pages: int, fast: bool = False) -> str:
    """The key of a site of ``pages`` pages that no other check shares."""
    return f"{pages}-{'fast' if fast else 's'}{secrets.token_hex(6)}"


def site_log(servers: Servers, key: str) -> dict[str, float]:
    """Path -> when the server first got a request for it (``time.monotonic``)."""
    return json.loads(_get(f"{servers.http}/site-log/{key}"))  # type: ignore[no-any-return]


def _crawl(
    harness: Harness, seeds: Iterable[object], fetcher: dict[str, Any], **options: Any
) -> tuple[list[Result], dict[str, float]]:
    """Every record of one crawl, and when each was handed back (by url)."""
    records: list[Result] = []
    handed: dict[str, float] = {}
    with harness.open(**fetcher) as session:
        for result in session.crawl(seeds, **options):
            handed.setdefault(result.url, time.monotonic())
            records.append(result)
    return records, handed


def _pages(records: list[Result]) -> dict[str, int | None]:
    """url -> depth of the records of fetched pages (one each: asserted)."""
    pages: dict[str, int | None] = {}
    for r in records:
        assert r.url not in pages, f"a page handed back twice: {shown(r)}"
        pages[r.url] = r.depth
    return pages


def _same(got: dict[str, int | None], want: dict[str, int], what: str) -> None:
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    wrong = {u: (got[u], want[u]) for u in want if u in got and got[u] != want[u]}
    assert not (missing or extra or wrong), (
        f"{what}: {len(got)} pages, {len(want)} expected; missing {missing[:5]}, "
        f"extra {extra[:5]}, depth (got, expected) {list(wrong.items())[:5]}"
    )


@check
def check_crawl_fetches_exactly_the_pages_a_crawler_may(harness: Harness, servers: Servers) -> None:
    """crawl() over a site of 150 pages: exactly the pages its links lead to, each once
    at its shortest depth with a referrer one level up; nofollow (rel, meta robots,
    X-Robots-Tag), <base href> and HTML-only honoured; malformed links cost nothing;
    per-host peaks within per_host; no link fetched before its page was handed back."""
    key = new_site(150)
    seed = f"{servers.http}/site/{key}/p0.html"
    want = site.expected([seed])
    servers.reset_stats()
    records, handed = _crawl(harness, [seed], {"concurrency": 16, "per_host": 4})
    got = _pages(records)
    _same(got, want, "crawl of the whole site")
    for r in records:
        assert r.error is None, shown(r)
        if r.depth:
            assert r.referrer is not None and got.get(r.referrer) == r.depth - 1, (
                f"{r.url} at depth {r.depth} has referrer {r.referrer!r}"
            )
        else:
            assert r.referrer is None, shown(r)
    by_url = {r.url: r for r in records}
    assert by_url[f"{servers.http}/nowhere.html"].status == 404
    assert any(r.robots == "nofollow" for r in records), "meta robots reported on the record"
    peak = servers.stats()[f"127.0.0.1:{servers.port}"]["peak"]
    assert 1 <= peak <= 4, f"per-host peak {peak} with per_host=4"
    log = site_log(servers, key)
    for r in records:
        path = urlsplit(r.url).path
        if r.referrer is not None and path in log:
            assert log[path] > handed[r.referrer], (
                f"{path} was requested before its referrer {r.referrer} was handed back"
            )


@check
def check_crawl_limits_depth_pages_and_scope(harness: Harness, servers: Servers) -> None:
    """max_depth gives the exact page set of that depth whatever order pages come back in;
    max_pages fetches exactly that many (the server saw no more); scope="prefix" stays
    under the seed's directory; accept keeps only matching URLs (seeds always fetched)."""
    # links read in threads: each crawl here would start a process pool (the first check's
    # crawl reads them in one)
    fetcher = {"concurrency": 12, "per_host": 12, "executor": "thread", "workers": 2}
    key = new_site(120)
    seed = f"{servers.http}/site/{key}/p0.html"
    records, _ = _crawl(harness, [seed], fetcher, max_depth=2)
    _same(_pages(records), site.expected([seed], max_depth=2), "max_depth=2")
    records, _ = _crawl(harness, [seed], fetcher, max_depth=0)
    assert _pages(records) == {seed: 0}, "max_depth=0 fetches the seeds alone"

    key = new_site(120, fast=True)  # the order pages come back in matters no more below
    seed = f"{servers.http}/site/{key}/p0.html"
    records, _ = _crawl(harness, [seed], fetcher, max_pages=7)
    assert len(records) == 7, [shown(r) for r in records]
    in_site = {urlsplit(r.url).path for r in records} & set(site_log(servers, key))
    assert set(site_log(servers, key)) == in_site, "the server saw more pages than max_pages"

    key = new_site(120, fast=True)
    seed = f"{servers.http}/site/{key}/p0.html"
    records, _ = _crawl(harness, [seed], fetcher, scope="prefix")
    _same(_pages(records), site.expected([seed], scope="prefix"), "scope=prefix")
    inner = f"{servers.http}/site/{key}/x/p9.html"  # its links leave x/ through <base>
    records, _ = _crawl(harness, [inner], fetcher, scope="prefix")
    assert _pages(records) == {inner: 0}, [shown(r) for r in records]

    key = new_site(120, fast=True)
    seed = f"{servers.http}/site/{key}/p0.html"
    even = r"/p[0-9]*[02468]\.html$"
    records, _ = _crawl(harness, [seed], fetcher, accept=even)
    _same(_pages(records), site.expected([seed], accept=even), "accept=even pages")


@check
def check_crawl_records_refusals_when_asked(harness: Harness, servers: Servers) -> None:
    """refused=True: one record per distinct refused URL, with no request made: out of
    scope (another host, the 10 KB URL), not a URL (an unbalanced IPv6 bracket),
    disallowed by robots.txt; a seed that is no URL gets its record too."""
    host = 6
    key = new_site(60)
    set_robots(servers, host, f"User-agent: *\nDisallow: /site/{key}/p1.html\n")
    seed = servers.on(host, f"/site/{key}/p0.html")
    records, _ = _crawl(
        harness,
        [seed, "not a url"],
        {"concurrency": 8, "per_host": 8, "robots": True, "executor": "thread", "workers": 2},
        refused=True,
    )
    fetched = [r for r in records if r.attempts]
    refused = [r for r in records if not r.attempts]
    robots = [r for r in refused if isinstance(r.error, RobotsDisallowed)]
    assert [r.url for r in robots] == [servers.on(host, f"/site/{key}/p1.html")], robots
    assert robots[0].depth == 1 and robots[0].referrer == seed, shown(robots[0])
    scope = {r.url for r in refused if isinstance(r.error, OutOfScope)}
    assert servers.on(0, f"/site/{key}/p1.html") in scope  # 127.0.0.2 in the site's links
    assert any(len(u) > 10_000 for u in scope), "the 10 KB link is out of scope"
    invalid = [r for r in refused if isinstance(r.error, InvalidURL)]
    assert {r.url for r in invalid} >= {"not a url", "http://[::1/broken"}, invalid
    assert len({r.url for r in refused}) == len(refused), "each refused URL once"
    assert all(r.error is None for r in fetched), [shown(r) for r in fetched]
    log = site_log(servers, key)
    assert f"/site/{key}/p1.html" not in log, "a URL robots.txt disallows was requested"


@check
def check_crawl_follow_function_requests_and_processing(harness: Harness, servers: Servers) -> None:
    """follow= a function: its URLs and Requests (a POST found on a page, pagination)
    join the crawl, each page once; with a processor, the default link reading runs
    beside it in one hand-off (sha256), or takes the html processor's links."""
    base = f"{servers.http}/anything/page"

    def follow(result: Result) -> list[object]:
        page = int(result.json()["args"].get("n", "0"))
        if page >= 4:
            return []
        return [Request(f"{base}?n={page + 1}", method="POST", data=b"next"), "?n=0"]

    records, _ = _crawl(harness, [f"{base}?n=0"], {"concurrency": 4}, follow=follow)
    assert [r.depth for r in records] == [0, 1, 2, 3, 4], [shown(r) for r in records]
    for r in records[1:]:
        echo = r.json()
        assert echo["method"] == "POST" and echo["body"] == "next", echo
        assert r.referrer == records[r.depth - 1].url  # type: ignore[operator]

    key = new_site(40, fast=True)
    seed = f"{servers.http}/site/{key}/p0.html"
    want = site.expected([seed])
    for process in ("sha256", "html"):
        options = {"concurrency": 8, "process": process, "executor": "thread", "workers": 2}
        records, _ = _crawl(harness, [seed], options)
        _same(_pages(records), want, f"process={process}")
        for r in records:
            assert r.process_error is None, shown(r)
            if process == "sha256":
                assert isinstance(r.processed, str) and len(r.processed) == 64, shown(r)
            elif r.content_type == "text/html":
                assert r.processed["title"].startswith(("page", "trap")), r.processed
    pages = [r.url for r in records]
    assert not any(re.search(r"/trap\d+\.html$", u) for u in pages), pages
