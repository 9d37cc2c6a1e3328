"""Bounded resources: concurrency and per-host peaks, body size limits, lazy input, clean close."""

from __future__ import annotations

import gc
import os
import resource
import threading
import time

import pytest

from polyfetch import Fetcher, TooLarge


def test_concurrency_and_per_host_limits_hold(servers, backend):
    servers.reset_stats()
    urls = [servers.http + "/delay/40", servers.alias("/delay/40")] * 60
    with Fetcher(backend, concurrency=12, per_host=5) as f:
        results = list(f.map(urls))
    assert all(r.status == 200 for r in results)
    stats = servers.stats()
    hosts = {k: v for k, v in stats.items() if k != "_total"}
    assert {h.split(":")[0] for h in hosts} == {"127.0.0.1", "localhost"}
    for host, counts in hosts.items():
        assert 3 <= counts["peak"] <= 5, (host, counts)
    assert stats["_total"]["peak"] <= 10  # two hosts x per_host, under concurrency


def test_concurrency_limit_holds_across_many_hosts(servers, backend):
    servers.reset_stats()
    with Fetcher(backend, concurrency=6, per_host=50) as f:
        assert all(r.ok for r in f.map([servers.http + "/delay/40"] * 60))
    assert 4 <= servers.stats()["_total"]["peak"] <= 6


@pytest.mark.parametrize("path", ["/bytes/2000000", "/bytes/2000000?chunked=1", "/gzip/2000000"])
def test_max_bytes(servers, one, path):
    r = one(servers.http + path, max_bytes=1_000_000)
    assert isinstance(r.error, TooLarge), r.error


def test_decompression_bomb_ends_too_large_with_memory_flat(servers, one):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    r = one(f"{servers.http}/bomb/{2**30}", max_bytes=8 * 2**20, timeout=30)
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert isinstance(r.error, TooLarge), r.error
    assert grown_mib < 100


def test_input_is_pulled_lazily_within_a_bounded_window(servers, backend):
    pulled = 0

    def items():
        nonlocal pulled
        for i in range(10_000_000):
            pulled += 1
            yield f"{servers.http}/bytes/{i % 50}"

    seen = 0
    with Fetcher(backend, concurrency=8) as f:
        results = f.map(items())
        for _ in results:
            seen += 1
            assert pulled - seen <= 8
            if seen == 300:
                break
        results.close()
    assert pulled <= 308


def test_memory_stays_flat_over_a_long_input(backend):
    # 200,000 items (invalid ones: no network) through the whole pipeline
    def items():
        for i in range(200_000):
            yield f"nope-{i}"

    with Fetcher(backend, concurrency=50) as f:
        n = 0
        for result in f.map(items()):
            n += 1
            last = result
            if n == 1_000:
                base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024
    assert n == 200_000 and last.error is not None
    assert grown_mib < 30


def _fds() -> int:
    gc.collect()  # an exception's traceback may hold a closed socket's file object in a cycle
    return len(os.listdir("/proc/self/fd"))


def test_abandoned_map_cancels_in_flight_and_close_releases_everything(servers, backend):
    with Fetcher(backend) as f:  # process-wide, once: uvloop's signal pipe, imports
        f.fetch(servers.http + "/bytes/1")
    fds, threads = _fds(), threading.active_count()
    servers.reset_stats()
    urls = [servers.http + "/delay/1"] + [servers.http + "/delay/20000"] * 20
    with Fetcher(backend, concurrency=10, timeout=60) as f:
        results = f.map(urls)
        first = next(results)
        assert first.ok
        time.sleep(0.3)
        assert servers.stats()["_total"]["in_flight"] >= 5
        started = time.monotonic()
        results.close()
        assert time.monotonic() - started < 5
        # the server sees the requests go away
        deadline = time.monotonic() + 5
        while servers.stats()["_total"]["in_flight"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert servers.stats()["_total"]["in_flight"] == 0
        assert f.fetch(servers.http + "/bytes/3").size == 3  # still usable
    assert threading.active_count() <= threads
    assert _fds() <= fds


def test_rate_limit_per_host(servers, backend):
    urls = [servers.http + "/bytes/1"] * 6 + [servers.alias("/bytes/1")] * 6
    with Fetcher(backend, rate=5, concurrency=12) as f:
        started = time.monotonic()
        results = list(f.map(urls))
        wall = time.monotonic() - started
    assert all(r.ok for r in results)
    # starts at 0, 0.2, ... 1.0 s on each host, the two hosts side by side
    assert 0.95 <= wall < 1.9, wall
