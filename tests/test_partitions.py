"""The host splitter and the politeness state a partition carries, without a cluster.

`Partitions` is sans-IO, so its rules are checked here on every input order
hypothesis finds: each item in exactly one shard, never two shards of a
partition in flight, a host always in the same partition, the look-ahead
bound whatever the order. The politeness state is checked end to end on real
fetchers against the test server: what one fetcher learnt of a host, another
one (in the cluster: the partition's next shard, in another process) obeys
without asking the host again.
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import time
import urllib.request
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import polyfetch
from polyfetch._pace import Pacer
from polyfetch._plan import Response
from polyfetch._schedule import host_of
from polyfetch._throttle import Throttle
from polyfetch.distributed import politeness
from polyfetch.distributed.partitions import Partitions, interleave, partition_key, partition_of
from polyfetch.errors import ConfigError
from polyfetch.testing.servers import EXTRA_HOSTS


def _url(host: int, i: int = 0) -> str:
    return f"http://h{host}.example/p?i={i}"


# -- routing ---------------------------------------------------------------------------------


def test_a_host_has_one_partition_on_every_run_and_machine():
    keys = [f"h{i}.example" for i in range(200)]
    here = [partition_of(k, 7) for k in keys]
    code = (
        "import json\nfrom polyfetch.distributed.partitions import partition_of\n"
        f"print(json.dumps([partition_of(k, 7) for k in {keys!r}]))"
    )
    # another interpreter, another hash salt: the same partitions
    there = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert json.loads(there.stdout) == here
    assert sorted(set(here)) == list(range(7))  # 200 hosts reach every partition


def test_domain_partitioning_puts_a_sites_hosts_together():
    key = partition_key("domain")
    site = "example.co.uk"
    assert key("http://www.example.co.uk/a") == key("https://shop.example.co.uk/") == site
    assert key("http://a.b.github.io/") == "b.github.io"  # a private suffix: each site apart
    assert key("http://127.0.0.5:8000/") == "127.0.0.5"  # an address is its own domain
    assert key("http://localhost/") == "localhost"
    assert key("not a url") == ""
    assert partition_key("host")("http://www.example.co.uk/a") == "www.example.co.uk"
    with pytest.raises(ConfigError, match="partition_by"):
        partition_key("tld")


# -- the planner -----------------------------------------------------------------------------


def _simulate(urls: list[str], count: int, size: int, completions: list[int]) -> list[list[int]]:
    """Run `Partitions` the way ``ClusterFetcher.map`` does, finishing shards in an order
    drawn from ``completions``; the shards submitted (their indexes), checking the rules."""
    parts = Partitions(count, size, host_of)
    items = iter(enumerate(urls))
    in_flight: list[tuple[int, list[object], list[int]]] = []
    shards: list[list[int]] = []
    exhausted = False
    draw = iter(completions)

    def submit(flush: bool) -> None:
        for cut in parts.take(flush=flush):
            p, chunk, indexes = cut
            assert 1 <= len(chunk) <= size
            assert p not in {q for q, _, _ in in_flight}, "two shards of a partition in flight"
            assert {parts.route(item) for item in chunk} == {p}
            in_flight.append(cut)
            shards.append(indexes)

    while True:
        while not exhausted and parts.wants_input():
            pair = next(items, None)
            if pair is None:
                exhausted = True
            elif parts.add(pair[1], pair[0]):
                submit(flush=False)
            assert parts.buffered <= parts.lookahead
        submit(flush=exhausted or not parts.wants_input())
        assert parts.running == len(in_flight) <= count
        if not in_flight:
            return shards
        p, _, _ = in_flight.pop(next(draw, 0) % len(in_flight))
        parts.done(p)


@settings(max_examples=200, deadline=None)
@given(
    hosts=st.lists(st.integers(0, 30), min_size=0, max_size=300),
    count=st.integers(1, 6),
    size=st.integers(1, 20),
    completions=st.lists(st.integers(0, 100), max_size=400),
)
def test_every_item_goes_in_one_shard_of_its_hosts_partition(hosts, count, size, completions):
    urls = [_url(h, i) for i, h in enumerate(hosts)]
    shards = _simulate(urls, count, size, completions)
    assert sorted(i for shard in shards for i in shard) == list(range(len(urls)))
    for shard in shards:
        assert shard == sorted(shard)  # a partition's items in input order
    owner: dict[str, int] = {}
    for shard in shards:
        for i in shard:
            p = partition_of(host_of(urls[i]), count)
            assert owner.setdefault(host_of(urls[i]), p) == p


def test_full_shards_go_as_soon_as_their_partition_is_idle_and_partial_ones_when_reading_stops():
    parts = Partitions(4, 3, host_of)
    a = [u for u in (_url(h) for h in range(40)) if parts.route(u) == 0][:2]
    b = next(u for u in (_url(h) for h in range(40)) if parts.route(u) == 1)
    for i, url in enumerate([a[0], a[1], b, a[0]]):
        ready = parts.add(url, i)
    assert ready  # partition 0 has a full shard
    assert parts.take(flush=False) == [(0, [a[0], a[1], a[0]], [0, 1, 3])]
    for i in range(4, 7):
        parts.add(a[1], i)
    assert parts.take(flush=False) == []  # partition 0 is busy: its next shard waits
    assert parts.take(flush=True) == [(1, [b], [2])]  # a partial shard, once reading stops
    parts.done(0)
    assert parts.take(flush=False) == [(0, [a[1]] * 3, [4, 5, 6])]


def test_one_host_for_the_first_lines_pauses_reading_and_names_the_host():
    parts = Partitions(4, 10, host_of)
    i = 0
    while parts.wants_input():  # a list whose head is one host
        parts.add("http://only.example/x", i)
        i += 1
        parts.take(flush=False)
    assert parts.buffered == parts.lookahead == 40 and i == 50  # 10 in flight; no further
    assert parts.blocked_on() == "only.example"
    assert parts.running == 1  # one partition, at that host's pace
    parts.draining = True
    assert parts.take(flush=True) == [] and not parts.wants_input()


@settings(max_examples=100, deadline=None)
@given(hosts=st.lists(st.integers(0, 8), max_size=60))
def test_a_shard_takes_its_hosts_round_robin(hosts):
    """Every host's first item, then every host's second...: a host's items in their order,
    and no host's k-th item after another's (k+1)-th."""
    items = [_url(h, i) for i, h in enumerate(hosts)]
    order = interleave(items)
    assert sorted(order) == list(range(len(items)))
    rank = {}  # position -> its rank among its host's items
    for position, h in enumerate(hosts):
        rank[position] = hosts[:position].count(h)
    ranks = [rank[position] for position in order]
    assert ranks == sorted(ranks)
    for h in set(hosts):
        mine = [p for p in order if hosts[p] == h]
        assert mine == sorted(mine)
    assert interleave([_url(0, 1), _url(0, 2), _url(1, 3), _url(0, 4)]) == [0, 2, 1, 3]


# -- politeness carried from one fetcher to the next ------------------------------------------


def _robots_count(base: str) -> dict[str, int]:
    with urllib.request.urlopen(f"{base}/robots-count", timeout=10) as resp:
        return json.load(resp)  # type: ignore[no-any-return]


def test_robots_verdicts_and_crawl_delay_reach_the_next_fetcher_without_a_new_fetch(servers):
    host = EXTRA_HOSTS[-1]  # a host of its own: other tests set robots.txt on the others
    base = f"http://{host}:{servers.port}"
    body = "User-agent: *\nDisallow: /status/\nCrawl-delay: 0.5\n"
    urllib.request.urlopen(f"{base}/robots-set?body={quote(body)}", timeout=10).close()
    before = _robots_count(base).get(f"{host}:{servers.port}", 0)
    with polyfetch.Fetcher("threads", robots=True) as first:
        assert first.fetch(f"{base}/bytes/1").status == 200
        assert first._runner is not None
        state = politeness.capture(first._runner)
    with polyfetch.Fetcher("threads", robots=True) as second:
        assert second._runner is not None
        politeness.restore(second._runner, pickle.loads(pickle.dumps(state)))
        started = time.monotonic()
        got = list(second.map([f"{base}/status/200", f"{base}/bytes/2", f"{base}/bytes/3"]))
        took = time.monotonic() - started
    assert _robots_count(base)[f"{host}:{servers.port}"] == before + 1  # the first fetcher's
    denied = next(r for r in got if r.index == 0)
    assert denied.error is not None and denied.error.kind == "RobotsDisallowed"
    assert [r.status for r in got if r.index] == [200, 200]
    assert took >= 0.45  # the Crawl-delay paces the next fetcher too (0.5 s between its two)


def test_pacer_and_throttle_state_count_from_the_restore_not_from_the_snapshot():
    pacer = Pacer(2.0)  # 0.5 s between two starts
    assert pacer.reserve("a", 100.0) == 0.0
    pacer.ask("b", 3.0, 100.0)
    state = pacer.snapshot(100.1)
    later = Pacer(2.0)
    later.restore(state, 5.0)  # another process: another clock
    assert later.reserve("a", 5.0) == pytest.approx(0.4)  # what was left, from the restore on
    assert later.gap("b") == 3.0
    throttle = Throttle(8, pacer)
    throttle.restore({"a": throttle.state("a")}, 0.0)
    ok = Response(200, {}, b"", 0)
    for t in range(6):
        throttle.observe("a", ok, 0.01, float(t))
    grown = throttle.snapshot(10.0)
    fresh = Throttle(8, Pacer(None))
    fresh.restore(grown, 50.0)
    assert fresh.limit("a") == throttle.limit("a") > 1  # the window, not slow start again
    assert fresh.state("a").cut_at == pytest.approx(50.0 + grown["a"].cut_at)
