"""The frontier without IO: depth order, holds, limits, spilling, resume, scope, links, sitemaps.

Pages are fed to a `Frontier` by hand, finishing in whatever order a test picks,
as ``map()`` would; the conformance checks (`polyfetch.testing.checks.crawling`)
run the same frontier against a real server on every backend.
"""

from __future__ import annotations

import gzip
import random
from collections.abc import Callable

import pytest

from polyfetch._schedule import WAIT
from polyfetch.errors import (
    ConfigError,
    InvalidURL,
    OutOfScope,
    PastMaxPages,
    RobotsDisallowed,
    TooDeep,
)
from polyfetch.frontier import Frontier
from polyfetch.frontier import links as L
from polyfetch.frontier.scope import Scope, canonical, target_of
from polyfetch.frontier.seen import FingerprintSet, LineSet
from polyfetch.frontier.sitemaps import MAX_BYTES, SitemapError, SitemapReader, parse
from polyfetch.result import Result

pytest.importorskip("selectolax")

ROOT = "http://h.test/"


def graph_links(graph: dict[str, list[str]]) -> Callable[[str], list[str]]:
    return lambda url: [ROOT + k for k in graph.get(url[len(ROOT) :], [])]


def run(
    frontier: Frontier,
    links: Callable[[str], list[str]],
    order: Callable[[list[int]], int],
    *,
    window: int = 4,
) -> list[Result]:
    """Drive ``frontier`` as map() would, finishing in-flight items in ``order``."""
    records: list[Result] = []
    inflight: list[int] = []
    index = 0
    exhausted = False
    while True:
        while not exhausted and len(inflight) < window:
            try:
                item = next(frontier)
            except StopIteration:
                exhausted = True
                break
            if item is WAIT:
                break
            inflight.append(index)
            index += 1
        if not inflight:
            break
        done = inflight.pop(order(inflight))
        entry = frontier.entry(done)
        result = Result(url=entry.url, index=done, status=200, attempts=1)
        records += frontier.finish(result, (links(entry.url), None))
    return records + frontier.close()


def bfs(graph: dict[str, list[str]], seed: str, max_depth: int | None = None) -> dict[str, int]:
    depth = {seed: 0}
    queue = [seed]
    for page in queue:
        if max_depth is not None and depth[page] >= max_depth:
            continue
        for k in graph.get(page, []):
            if k not in depth:
                depth[k] = depth[page] + 1
                queue.append(k)
    return {ROOT + k: d for k, d in depth.items()}


def random_graph(n: int, rng: random.Random) -> dict[str, list[str]]:
    return {f"p{i}": [f"p{rng.randrange(n)}" for _ in range(rng.randrange(4))] for i in range(n)}


@pytest.mark.parametrize("seed", range(20))
def test_depth_is_the_shortest_path_whatever_order_pages_finish_in(seed: int) -> None:
    """Pages finishing in a random order (the last one first, often) still get their
    breadth-first depth, so max_depth gives the same page set as a sequential crawl."""
    rng = random.Random(seed)
    graph = random_graph(60, rng)
    for max_depth in (None, 2, 4):
        frontier = Frontier(scope="host", max_depth=max_depth, hold=rng.choice([1, 3, 100]))
        frontier.seed(ROOT + "p0")
        records = run(frontier, graph_links(graph), lambda f: rng.randrange(len(f)))
        got = {r.url: r.depth for r in records}
        assert len(got) == len(records), "a page handed back twice"
        assert got == bfs(graph, "p0", max_depth)
        for r in records:  # a page comes back only once every shallower page has
            assert r.referrer is None or got[r.referrer] == r.depth - 1  # type: ignore[operator]
        assert frontier.stats.held == 0


def test_a_slow_shallow_page_holds_deeper_ones_and_wait_stops_the_window() -> None:
    """While a depth-1 page is in flight, depth-2 pages that finish are held (their
    records too); past ``hold`` of them the frontier answers WAIT for deeper URLs."""
    graph = {"p0": ["a", "b"], "a": ["a1", "a2", "a3"], "b": ["b1"], "a1": ["x"], "a2": ["y"]}
    frontier = Frontier(hold=1)
    frontier.seed(ROOT + "p0")
    assert next(frontier) == ROOT + "p0"
    assert next(frontier) is WAIT  # nothing queued, p0 in flight
    out = frontier.finish(
        Result(url=ROOT + "p0", index=0, status=200), ([ROOT + "a", ROOT + "b"], None)
    )
    assert [r.url for r in out] == [ROOT + "p0"]
    a, b = next(frontier), next(frontier)
    assert (a, b) == (ROOT + "a", ROOT + "b")
    out = frontier.finish(Result(url=a, index=1, status=200), (graph_links(graph)(a), None))
    assert [r.url for r in out] == [a]  # depth 1, nothing shallower: expanded at once
    a1 = next(frontier)
    out = frontier.finish(Result(url=a1, index=3, status=200), ([ROOT + "x"], None))
    assert out == [] and frontier.stats.held == 1  # b (depth 1) is still in flight
    assert next(frontier) is WAIT  # hold=1 reached and a2 is deeper than b
    out = frontier.finish(Result(url=b, index=2, status=200), ([ROOT + "b1"], None))
    assert [r.url for r in out] == [b, a1]  # b, then the held a1, in depth order
    assert frontier.stats.held == 0


def test_max_pages_counts_fetches_not_robots_refusals() -> None:
    """A discovered URL that robots.txt disallows gives its place back to another page."""
    frontier = Frontier(max_pages=3, record_refused=True)
    frontier.seed(ROOT + "p0")
    next(frontier)
    frontier.finish(
        Result(url=ROOT + "p0", index=0, status=200), ([ROOT + "a", ROOT + "b", ROOT + "c"], None)
    )
    assert [next(frontier), next(frontier)] == [ROOT + "a", ROOT + "b"]
    assert next(frontier) is WAIT  # the budget of 3 is spent, two in flight
    denied = Result(url=ROOT + "a", index=1, error=RobotsDisallowed("no"), attempts=0)
    out = frontier.finish(denied, None)
    assert [type(r.error) for r in out] == [RobotsDisallowed] and out[0].depth == 1
    assert next(frontier) == ROOT + "c"  # a's place given back
    for index, url in ((2, ROOT + "b"), (3, ROOT + "c")):
        frontier.finish(Result(url=url, index=index, status=200), ([ROOT + "d"], None))
    with pytest.raises(StopIteration):
        next(frontier)
    rest = frontier.close()
    assert frontier.stats.pages == 3 and frontier.stats.refused["robots"] == 1
    assert [(r.url, type(r.error)) for r in rest] == [(ROOT + "d", PastMaxPages)]


def test_refusals_are_counted_once_and_recorded_when_asked() -> None:
    frontier = Frontier(max_depth=1, record_refused=True, reject=r"/private")
    frontier.seed(ROOT)
    frontier.seed("http://other.test/")
    assert frontier.seed(ROOT) == 0  # a duplicate seed
    links = [
        "http://elsewhere.test/x", "http://elsewhere.test/x", ROOT + "private/a",
        "http://[::1/broken", ROOT + "a", ROOT + "a#frag"[:-5],
    ]  # fmt: skip
    next(frontier)
    out = frontier.finish(Result(url=ROOT, index=0, status=200), (links, None))
    kinds = [(r.url, type(r.error)) for r in out[1:]]
    assert kinds == [
        ("http://elsewhere.test/x", OutOfScope),
        (ROOT + "private/a", OutOfScope),
        ("http://[::1/broken", InvalidURL),
    ]
    other = next(frontier)
    a = next(frontier)
    assert a == ROOT + "a"
    frontier.finish(Result(url=other, index=1, status=200), None)  # type: ignore[arg-type]
    out = frontier.finish(Result(url=a, index=2, status=200), ([ROOT + "deep"], None))
    assert [type(r.error) for r in out[1:]] == [TooDeep]
    stats = frontier.stats.refused
    assert (stats["scope"], stats["invalid"], stats["depth"]) == (2, 1, 1)
    assert frontier.stats.duplicate_seeds == 1


def test_the_queue_spills_to_a_file_past_memory_and_keeps_its_order() -> None:
    frontier = Frontier(memory=10, scope="any")
    frontier.seed(ROOT)
    next(frontier)
    links = [f"{ROOT}p{i}" for i in range(5000)]
    frontier.finish(Result(url=ROOT, index=0, status=200), (links, None))
    assert len(frontier._queue) == 10 and frontier._spilled_at is not None
    got = []
    for index in range(1, 5001):
        item = next(frontier)
        got.append(item)
        frontier.finish(Result(url=item, index=index, status=200), None)  # type: ignore[arg-type]
    assert got == links
    with pytest.raises(StopIteration):
        next(frontier)
    frontier.release()


def test_a_journal_restores_the_queue_and_the_seen_set(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """After an interruption, the entries the output does not record are fetched again,
    in order; every URL known before stays known (refused ones too)."""
    path = str(tmp_path / "out.frontier")
    graph = {"": ["a", "b", "c"], "a": ["a1", "b"], "b": ["b1"]}
    links = graph_links(graph)
    first = Frontier(journal=path, memory=2, reject="c$")
    first.seed(ROOT, line=1)
    recorded = []
    for index in range(3):
        item = next(first)
        if item is WAIT:
            break
        for r in first.finish(Result(url=item, index=index, status=200), (links(item), None)):  # type: ignore[arg-type]
            recorded.append(r.url)
        first.flush()
    first.stop()
    first.release()
    assert recorded == [ROOT, ROOT + "a", ROOT + "b"]
    done_lines = LineSet()
    done_lines.add(1)
    second = Frontier(journal=path, memory=2, reject="c$")
    done_urls = FingerprintSet()
    for url in recorded:
        done_urls.add(url)
    second.restore(done_urls, done_lines, pages=len(recorded))
    assert second.stats.refused["scope"] == 1  # "c"
    assert second.add(ROOT + "a", 1) == "seen" and second.add(ROOT + "c", 1) == "seen"
    rest = run(second, links, lambda f: 0)
    assert [r.url for r in rest] == [ROOT + "a1", ROOT + "b1"]
    assert [r.depth for r in rest] == [2, 2]
    second.release()


def test_scopes() -> None:
    def inside(scope: Scope, url: str) -> bool:
        target = target_of(url)
        assert not isinstance(target, Exception)
        return scope.refuses(target) is None

    domain = Scope("domain")
    for seed in ("http://docs.example.co.uk/a", "https://user.github.io/", "http://127.0.0.1:8/"):
        domain.add_seed(target_of(seed))  # type: ignore[arg-type]
    assert inside(domain, "https://blog.example.co.uk/x")
    assert not inside(domain, "http://example.com/")
    assert not inside(domain, "https://other.github.io/")  # a private suffix: its own site
    assert inside(domain, "http://127.0.0.1:9/") and not inside(domain, "http://127.0.0.2/")
    prefix = Scope("prefix", accept=r"\.html$")
    prefix.add_seed(target_of("http://h/docs/index.html?q=/x"))  # type: ignore[arg-type]
    assert inside(prefix, "http://h/docs/a/b.html")
    assert not inside(prefix, "http://h/docs/a/b.txt") and not inside(prefix, "http://h/doc.html")
    assert canonical(target_of("HTTP://H:80")) == "http://h/"  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        Scope("site")
    with pytest.raises(ConfigError):
        Scope("host", reject="(")


def page(body: str, url: str = "http://h/dir/page.html", **headers: str) -> Result:
    return Result(
        url=url,
        final_url=url,
        status=200,
        body=body.encode(),
        headers={"content-type": "text/html; charset=utf-8", **headers},
    )


def test_links_honour_base_nofollow_and_meta_robots() -> None:
    body = """<html><head><base href="/other/"></head><body>
      <a href="a.html">a</a> <a href="b.html" rel="nofollow">b</a>
      <a href="c.html" rel="NoFollow external">c</a> <a href="c.html">c again</a>
      <area href="/map.html"> <a href="mailto:x@y">m</a> <a href="javascript:1">j</a>
      <a href="#top">t</a> <a href="ftp://h/f">f</a></body></html>"""
    found, robots = L.extract(page(body))  # type: ignore[misc]
    assert found == ["http://h/other/a.html", "http://h/other/c.html", "http://h/map.html"]
    assert robots is None
    meta = '<meta name="ROBOTS" content="NoIndex, NoFollow"><a href="/x">x</a>'
    assert L.extract(page(meta)) == ([], "noindex,nofollow")
    assert L.extract(page('<meta name="polyfetch" content="none"><a href="/x">x</a>')) == (
        [],
        "none",
    )
    text = Result(
        url="http://h/a.html",
        status=200,
        body=b"<a href='/x'>",
        headers={"content-type": "text/plain"},
    )
    assert L.extract(text) is None  # not HTML by Content-Type, whatever the URL says
    lines = [("x-robots-tag", "noindex"), ("x-robots-tag", "otherbot: nofollow"),
             ("x-robots-tag", "polyfetch: nofollow, noarchive"),
             ("x-robots-tag", "unavailable_after: 25 Jun 2010 15:00:00 PST")]  # fmt: skip
    assert L.directives(lines) == "noindex,nofollow,noarchive"
    assert L.directives([("x-robots-tag", "otherbot: none")]) is None
    assert not L.follows("noindex,none") and L.follows("noindex")


def test_links_of_a_page_with_a_hundred_thousand_links() -> None:
    body = "".join(f'<a href="/p{i}">' for i in range(100_000))
    found, _ = L.extract(page(body))  # type: ignore[misc]
    assert len(found) == 100_000
    frontier = Frontier(memory=1000, scope="host")
    frontier.seed("http://h/")
    next(frontier)
    frontier.finish(Result(url="http://h/", index=0, status=200), (found, None))
    assert frontier.stats.waiting == 100_000 and len(frontier._queue) == 1000
    frontier.release()


SITEMAP = """<?xml version="1.0" encoding="UTF-8"?>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
  <url><loc>http://h/a</loc></url><url><loc> http://h/b </loc><lastmod>2024</lastmod></url>
</urlset>"""
INDEX = """<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
  <sitemap><loc>http://h/s1.xml.gz</loc></sitemap><sitemap><loc>http://h/index.xml</loc></sitemap>
</sitemapindex>"""


def test_sitemaps_parse_and_stay_bounded() -> None:
    assert parse(SITEMAP.encode()) == ("urlset", ["http://h/a", "http://h/b"])
    assert parse(gzip.compress(SITEMAP.encode())) == ("urlset", ["http://h/a", "http://h/b"])
    assert parse(b"http://h/a\n# no\nhttp://h/b\n") == ("urlset", ["http://h/a", "http://h/b"])
    assert parse(INDEX.encode())[0] == "sitemapindex"
    with pytest.raises(SitemapError, match="inflates"):
        parse(gzip.compress(b"<urlset>" + b" " * (MAX_BYTES + 10)))
    laughs = (
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        '<!ENTITY lol2 "&lol;&lol;&lol;&lol;">]><urlset><url><loc>&lol2;</loc></url></urlset>'
    )
    with pytest.raises(SitemapError):
        parse(laughs.encode())
    with pytest.raises(SitemapError, match="root"):
        parse(b"<html></html>")
    with pytest.raises(SitemapError):
        parse(b"<urlset><url>")


def test_a_sitemap_index_that_lists_itself_is_read_once() -> None:
    frontier = Frontier(scope="host")
    frontier.seed("http://h/")
    reader = SitemapReader(frontier, ["http://h"])
    robots = Result(url="http://h/robots.txt", status=200, body=b"Sitemap: http://h/index.xml\n")
    assert reader.next_round() == ["http://h/robots.txt"]
    reader.take(robots)
    assert reader.next_round() == ["http://h/index.xml"]
    reader.take(Result(url="http://h/index.xml", status=200, body=INDEX.encode()))
    assert reader.next_round() == ["http://h/s1.xml.gz"]  # not index.xml again
    body = gzip.compress(SITEMAP.replace("http://h/b", "http://other/b").encode())
    reader.take(Result(url="http://h/s1.xml.gz", status=200, body=body))
    assert reader.next_round() == []
    assert frontier.stats.sitemaps == 2 and frontier.stats.sitemap_urls == 2
    assert frontier.stats.refused["scope"] == 1  # a sitemap does not widen the scope
    assert [next(frontier), next(frontier)] == ["http://h/", "http://h/a"]
    frontier.release()
