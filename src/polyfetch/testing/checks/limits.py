"""Bounded resources: concurrency and per-host peaks, body size limits, lazy input, clean close."""

from __future__ import annotations

import gc
import os
import threading
import time

from polyfetch.errors import TooLarge
from polyfetch.testing import memory
from polyfetch.testing.checks._registry import check, shown
from polyfetch.testing.harness import Harness
from polyfetch.testing.servers import Servers

#: paths of bodies over 1 MB: with a Content-Length, chunked, and gzip-decoded
LARGE_BODIES = (
    "/bytes/2000000",
    "/bytes/2000000?chunked=1",
    "/gzip/2000000",
    "/brotli/2000000",
    f"/brotli-bomb/{64 * 2**20}",  # 64 MiB of zeros in a few KiB: stopped at the cap
    "/zstd/2000000",
    f"/zstd-bomb/{64 * 2**20}",
)
#: what the memory checks allow their fresh process to grow, in MiB
BOMB_MIB = 100
LONG_INPUT_MIB = 30


@check
def check_concurrency_and_per_host_limits_hold(harness: Harness, servers: Servers) -> None:
    """per_host bounds each host's requests in flight (the server counts them)."""
    servers.reset_stats()
    urls = [servers.http + "/delay/40", servers.alias("/delay/40")] * 60
    results = harness.run(urls, concurrency=12, per_host=5)
    for r in results:
        assert r.status == 200, shown(r)
    stats = servers.stats()
    hosts = {k: v for k, v in stats.items() if k != "_total"}
    assert {h.split(":")[0] for h in hosts} == {"127.0.0.1", "localhost"}, f"hosts seen: {hosts}"
    for host, counts in hosts.items():
        assert 3 <= counts["peak"] <= 5, f"per_host=5, but {host} saw {counts}"
    # two hosts x per_host, under concurrency
    assert stats["_total"]["peak"] <= 10, f"at most 2 x 5 in flight, saw {stats['_total']}"


@check
def check_concurrency_limit_holds_across_many_hosts(harness: Harness, servers: Servers) -> None:
    """concurrency bounds the requests in flight over all hosts."""
    servers.reset_stats()
    for r in harness.run([servers.http + "/delay/40"] * 60, concurrency=6, per_host=50):
        assert r.ok, shown(r)
    total = servers.stats()["_total"]
    assert 4 <= total["peak"] <= 6, f"concurrency=6, the server saw {total}"


@check
def check_max_bytes(harness: Harness, servers: Servers, path: str | None = None) -> None:
    """A body over max_bytes (each of `LARGE_BODIES`, or only ``path``) is TooLarge."""
    for case in [path] if path else LARGE_BODIES:
        r = harness.one(servers.http + case, max_bytes=1_000_000)
        assert isinstance(r.error, TooLarge), f"{case}: {shown(r)}"


@check
def check_decompression_bomb_ends_too_large_with_memory_flat(
    harness: Harness, servers: Servers
) -> None:
    """A gzip bomb (1 GiB of zeros) is TooLarge, and a fresh process running it stays flat."""
    url = f"{servers.http}/bomb/{2**30}"
    warmup = f"{servers.http}/gzip/1000"  # imports and pools belong in the baseline
    run = memory.measure(harness, "one", url=url, warmup=warmup, max_bytes=8 * 2**20, timeout=30)
    assert run.summary.get("error") == "TooLarge", f"the bomb gave {run.summary}"
    assert run.grown_mib < BOMB_MIB, f"{run}: more than {BOMB_MIB} MiB"


@check
def check_input_is_pulled_lazily_within_a_bounded_window(
    harness: Harness, servers: Servers
) -> None:
    """map() takes input only as the window frees (at most concurrency items ahead)."""
    pulled = 0

    def items():  # type: ignore[no-untyped-def]
        nonlocal pulled
        for i in range(10_000_000):
            pulled += 1
            yield f"{servers.http}/bytes/{i % 50}"

    seen = 0
    with harness.open(concurrency=8) as f:
        results = f.map(items())
        for _ in results:
            seen += 1
            assert pulled - seen <= 8, f"{pulled} items taken for {seen} results, concurrency=8"
            if seen == 300:
                break
        results.close()
    assert pulled <= 308, f"{pulled} items taken for 300 results read"


@check
def check_memory_stays_flat_over_a_long_input(harness: Harness, servers: Servers) -> None:
    """200,000 items through map() in a fresh process: its RSS stays within a few MiB."""
    # invalid items: the whole pipeline runs, with no network
    run = memory.measure(harness, "long_input", items=200_000, after=1_000, concurrency=50)
    assert run.summary.get("results") == 200_000, f"{run.summary}"
    assert run.summary.get("last_error") is not None, f"{run.summary}"
    assert run.grown_mib < LONG_INPUT_MIB, f"{run}: more than {LONG_INPUT_MIB} MiB"


def _fds() -> int:
    gc.collect()  # an exception's traceback may hold a closed socket's file object in a cycle
    return len(os.listdir("/proc/self/fd"))


@check
def check_abandoned_map_cancels_in_flight_and_close_releases_everything(
    harness: Harness, servers: Servers
) -> None:
    """Closing map() early cancels its requests (the server sees them go); close frees all."""
    with harness.open() as f:  # process-wide, once: uvloop's signal pipe, imports
        f.fetch(servers.http + "/bytes/1")
    fds, threads = _fds(), threading.active_count()
    servers.reset_stats()
    urls = [servers.http + "/delay/1"] + [servers.http + "/delay/20000"] * 20
    with harness.open(concurrency=10, timeout=60) as f:
        results = f.map(urls)
        first = next(results)
        assert first.ok, shown(first)
        f.sleep(0.3)
        in_flight = servers.stats()["_total"]["in_flight"]
        assert in_flight >= 5, f"concurrency=10, but only {in_flight} requests in flight"
        started = time.monotonic()
        results.close()
        took = time.monotonic() - started
        assert took < 5, f"closing map() took {took:.1f} s"
        # the server sees the requests go away
        deadline = time.monotonic() + 5
        while servers.stats()["_total"]["in_flight"] and time.monotonic() < deadline:
            f.sleep(0.05)
        in_flight = servers.stats()["_total"]["in_flight"]
        assert in_flight == 0, f"{in_flight} requests still in flight 5 s after close()"
        again = f.fetch(servers.http + "/bytes/3")
        assert again.size == 3, f"not usable after an abandoned map(): {shown(again)}"
    assert threading.active_count() <= threads, (
        f"{threading.active_count()} threads after close, {threads} before"
    )
    assert _fds() <= fds, f"{_fds()} file descriptors after close, {fds} before"


@check
def check_rate_limit_per_host(harness: Harness, servers: Servers) -> None:
    """rate=5 paces each host to 5 requests per second, hosts side by side."""
    urls = [servers.http + "/bytes/1"] * 6 + [servers.alias("/bytes/1")] * 6
    with harness.open(rate=5, concurrency=12) as f:
        started = time.monotonic()
        results = list(f.map(urls))
        wall = time.monotonic() - started
    for r in results:
        assert r.ok, shown(r)
    # starts at 0, 0.2, ... 1.0 s on each host, the two hosts side by side
    assert 0.95 <= wall < 1.9, f"12 requests, 6 per host at rate=5 took {wall:.2f} s"
