"""Per-host scheduling: every host busy at once, a slow host holding up nobody, bounded look-ahead.

The test server answers on 20 loopback addresses (`Servers.hosts`), so one
server plays 20 hosts; it counts in-flight requests per Host header.
"""

from __future__ import annotations

from collections.abc import Iterator

from polyfetch.testing.checks._registry import check, shown
from polyfetch.testing.harness import Harness
from polyfetch.testing.servers import Servers


@check
def check_host_sorted_list_keeps_every_host_busy(harness: Harness, servers: Servers) -> None:
    """20 hosts x 8 URLs sorted by host, per_host=2, concurrency=40: the hosts are served
    side by side (the server sees at least 20 in flight, where input order gives 4), never
    more than 2 per host."""
    hosts = len(servers.hosts)
    urls = [servers.on(h, f"/delay/300?i={i}") for h in range(hosts) for i in range(8)]
    servers.reset_stats()
    results = harness.run(urls, concurrency=2 * hosts, per_host=2)
    assert sorted(r.index for r in results) == list(range(len(urls)))
    for r in results:
        assert r.ok, shown(r)
    stats = servers.stats()
    peaks = {h: c["peak"] for h, c in stats.items() if h != "_total"}
    assert len(peaks) == hosts, f"hosts seen: {sorted(peaks)}"
    assert max(peaks.values()) <= 2, f"per_host=2, but the server saw {peaks}"
    total = stats["_total"]["peak"]
    # In input order, the window would hold 2 hosts' items at a time: a peak of 4. (Not 2 x
    # hosts: on a loaded machine a backend may not have every request out at one instant.)
    assert total >= hosts, f"every host should be busy at once: peak {total} in flight"
    assert total <= 2 * hosts, f"concurrency={2 * hosts}, the server saw {total} in flight"


@check
def check_slow_host_in_front_holds_up_nobody(harness: Harness, servers: Servers) -> None:
    """60 URLs of a host answering in 400 ms in front of 20 of a fast host: the fast host's
    records come first (in input order its first would wait for 28 slow rounds, 11 s)."""
    slow = [servers.on(0, f"/delay/400?i={i}") for i in range(60)]
    fast = [servers.on(1, f"/bytes/10?i={i}") for i in range(20)]
    order: list[str] = []
    with harness.open(concurrency=10, per_host=2) as f:
        results = f.map(slow + fast)
        for r in results:
            assert r.ok, shown(r)
            order.append("fast" if r.index >= len(slow) else "slow")
            if len(order) == 22:  # the fast 20, and the slow host's first round of 2
                break
        results.close()
    assert order.count("fast") == 20, f"fast-host records came late: {order}"


@check
def check_look_ahead_bounds_what_is_read(harness: Harness, servers: Servers) -> None:
    """A long one-host list with per_host < concurrency: map() reads at most lookahead +
    concurrency items beyond those it has handed back."""
    pulled = 0

    def items() -> Iterator[str]:
        nonlocal pulled
        for i in range(10_000_000):
            pulled += 1
            yield servers.on(i % 2, f"/bytes/{i % 50}")

    seen = 0
    with harness.open(concurrency=8, per_host=2, lookahead=30) as f:
        results = f.map(items())
        for r in results:
            assert r.ok, shown(r)
            seen += 1
            assert pulled - seen <= 38, f"{pulled} items taken for {seen} results"
            if seen == 200:
                break
        results.close()
    assert pulled <= 238, f"{pulled} items taken for 200 results read"
