"""Politeness: robots.txt obeyed and fetched once per origin, Crawl-delay paces the host,
the auto-throttle backs off a host that slows down and pushes back."""

from __future__ import annotations

import json
import time
import urllib.parse

from polyfetch.errors import RobotsDisallowed
from polyfetch.testing.checks._registry import check, shown
from polyfetch.testing.harness import Harness
from polyfetch.testing.servers import Servers


def _get(url: str) -> bytes:
    import urllib.request  # imports socket and ssl: not at import (gevent patches later)

    with urllib.request.urlopen(url, timeout=10) as resp:
        return resp.read()  # type: ignore[no-any-return]


def set_robots(servers: Servers, host: int, body: str, status: int = 200) -> None:
    """Make ``servers.on(host, "/robots.txt")`` answer ``status`` with ``body``."""
    query = urllib.parse.urlencode({"body": body, "status": status})
    _get(servers.on(host, f"/robots-set?{query}"))


def robots_requests(servers: Servers, host: int) -> int:
    """How often the ``host``-th extra host's robots.txt was asked for."""
    counts = json.loads(_get(servers.http + "/robots-count"))
    return int(counts.get(f"{servers.hosts[host]}:{servers.port}", 0))


@check
def check_robots_txt_is_obeyed_and_fetched_once(harness: Harness, servers: Servers) -> None:
    """robots=True: disallowed URLs (wildcards, our product token's group) get
    RobotsDisallowed and are never requested; robots.txt is fetched once per origin;
    4xx allows everything, 5xx disallows for now."""
    host, missing, broken = 3, 4, 5
    set_robots(
        servers,
        host,
        "User-agent: *\nDisallow: /\n\n"
        "User-agent: polyfetch\nDisallow: /bytes/*?secret\nDisallow: /status/\nAllow: /\n",
    )
    set_robots(servers, broken, "", status=503)
    before = {h: robots_requests(servers, h) for h in (host, missing, broken)}
    servers.reset_stats()
    urls = [servers.on(host, f"/bytes/{i}") for i in range(1, 9)]
    urls += [servers.on(host, "/bytes/3?secret=1"), servers.on(host, "/status/200")]
    urls += [servers.on(missing, "/bytes/5"), servers.on(broken, "/bytes/6")]
    results = sorted(
        harness.run(urls, robots=True, concurrency=8, per_host=4, retries=0), key=lambda r: r.index
    )
    for r in results[:8] + results[10:11]:
        assert r.ok, shown(r)
    for r in results[8:10] + results[11:]:
        assert isinstance(r.error, RobotsDisallowed), shown(r)
        assert r.attempts == 0, f"a disallowed URL makes no attempt: {shown(r)}"
    assert "unreachable" in results[11].error.message, shown(results[11])  # type: ignore[union-attr]
    for h in (host, missing, broken):
        asked = robots_requests(servers, h) - before[h]
        assert asked == 1, f"robots.txt of host {h} fetched {asked} times"
    hosts = servers.stats()
    seen = hosts.get(f"{servers.hosts[host]}:{servers.port}", {}).get("requests", 0)
    assert seen == 9, f"8 allowed pages + robots.txt, but the server saw {seen} requests"


@check
def check_crawl_delay_paces_the_host(harness: Harness, servers: Servers) -> None:
    """A Crawl-delay of 0.25 s spaces 5 requests to that host over >= 1 s (after the
    robots.txt request), while another host goes at full speed."""
    slow, fast = 6, 7
    set_robots(servers, slow, "User-agent: *\nCrawl-delay: 0.25\n")
    urls = [servers.on(slow, f"/bytes/{i}") for i in range(1, 6)]
    urls += [servers.on(fast, f"/bytes/{i}") for i in range(1, 6)]
    started = time.monotonic()
    done: dict[int, float] = {}
    with harness.open(robots=True, concurrency=10, per_host=5) as f:
        for r in f.map(urls):
            assert r.ok, shown(r)
            done[r.index] = time.monotonic() - started
    slow_wall = max(done[i] for i in range(5))
    fast_wall = max(done[i] for i in range(5, 10))
    assert slow_wall >= 1.2, f"5 requests 0.25 s apart after robots.txt took {slow_wall:.2f} s"
    assert fast_wall < slow_wall / 2, f"the other host was held up: {fast_wall:.2f} s"


@check
def check_auto_throttle_backs_off_a_pushing_host(harness: Harness, servers: Servers) -> None:
    """Against a host that slows down under load and answers 503 past 3 requests in flight,
    the auto-throttle keeps the 503s far fewer than fixed per_host=12 gets."""
    url = servers.on(8, "/busy/20?limit=3&i={}")

    def pushbacks(**options: object) -> int:
        results = harness.run([url.format(i) for i in range(60)], retries=0, **options)
        assert len(results) == 60
        return sum(r.status == 503 for r in results)

    fixed = pushbacks(concurrency=12, per_host=12)
    throttled = pushbacks(concurrency=12, per_host=12, auto_throttle=True)
    assert fixed >= 20, f"the server should push back at 12 in flight: {fixed} 503s of 60"
    assert throttled * 3 <= fixed, f"auto-throttle: {throttled} 503s, without: {fixed}"
