"""`AsyncFetcher` inside the caller's own event loop: what only the async API can show.

The whole conformance suite runs through `AsyncFetcher` too (the ``asyncio-async``
entry of the backend matrix); these tests cover ``async for`` over async input,
leaving it early, ``fetch()`` inside ``map()`` and the caller's other tasks.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest

from polyfetch import AsyncFetcher

pytestmark = pytest.mark.asyncio


async def _in_flight(servers) -> int:
    stats = await asyncio.to_thread(servers.stats)  # urllib blocks: not on the loop
    return int(stats["_total"]["in_flight"])


async def _until_idle(servers, seconds: float = 5.0) -> int:
    """Wait (bounded) for the server to see no request in flight; the count left."""
    deadline = time.monotonic() + seconds
    while (left := await _in_flight(servers)) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return left


async def test_async_iterable_input_is_pulled_lazily_within_a_bounded_window(servers):
    pulled = 0

    async def items():
        nonlocal pulled
        for i in range(10_000_000):
            pulled += 1
            await asyncio.sleep(0)  # a real async source yields to the loop
            yield f"{servers.http}/bytes/{i % 50}"

    seen = 0
    fetcher = AsyncFetcher(concurrency=8)
    async with fetcher, contextlib.aclosing(fetcher.map(items())) as results:
        async for r in results:
            assert r.ok, r
            seen += 1
            assert pulled - seen <= 8, (pulled, seen)
            if seen == 300:
                break
    assert seen == 300 and pulled <= 308, pulled


async def test_aclose_of_map_cancels_what_is_in_flight(servers):
    servers.reset_stats()
    urls = [servers.http + "/delay/1"] + [servers.http + "/delay/20000"] * 20
    async with AsyncFetcher(concurrency=10, timeout=60) as f:
        results = f.map(urls)
        first = await anext(results)
        assert first.ok, first
        await asyncio.sleep(0.3)
        assert await _in_flight(servers) >= 5
        started = time.monotonic()
        await results.aclose()
        assert time.monotonic() - started < 5
        assert await _until_idle(servers) == 0
        assert (await f.fetch(servers.http + "/bytes/3")).size == 3  # still usable


async def test_break_out_of_async_for_cancels_what_is_in_flight(servers):
    # no aclose(): the loop finalizes the abandoned generator, which cancels its batch
    servers.reset_stats()
    urls = [servers.http + "/delay/1"] + [servers.http + "/delay/20000"] * 20
    async with AsyncFetcher(concurrency=10, timeout=60) as f:
        async for first in f.map(urls):
            assert first.ok, first
            await asyncio.sleep(0.3)
            assert await _in_flight(servers) >= 5
            break
        assert await _until_idle(servers) == 0
        assert (await f.fetch(servers.http + "/bytes/3")).size == 3


async def test_fetch_inside_map(servers):
    async with AsyncFetcher(concurrency=4) as f:
        inner = []
        async for r in f.map([f"{servers.http}/bytes/{n}" for n in (1, 2, 3)]):
            assert r.ok, r
            inner.append((r.size, (await f.fetch(f"{servers.http}/bytes/{10 + r.size}")).size))
    assert sorted(inner) == [(1, 11), (2, 12), (3, 13)]


async def test_callers_own_tasks_keep_running_while_a_fetch_is_in_flight(servers):
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    async with AsyncFetcher() as f:
        ticking = asyncio.create_task(ticker())
        try:
            fetch = asyncio.create_task(f.fetch(servers.http + "/delay/1000"))
            while not fetch.done():
                before = ticks
                await asyncio.sleep(0.1)
                if not fetch.done():
                    # the ticker ran while the request was in flight on this very loop
                    assert ticks > before, "the caller's task was starved during the fetch"
            r = fetch.result()
        finally:
            ticking.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticking
    assert r.ok and r.elapsed >= 0.9, r
    assert ticks >= 10, ticks


async def test_two_maps_side_by_side_in_one_loop(servers):
    async with AsyncFetcher(concurrency=20) as f:

        async def sizes(n: int) -> list[int]:
            urls = [f"{servers.http}/delay/50?size={n}&i={i}" for i in range(10)]
            return sorted([r.size async for r in f.map(urls)])

        a, b = await asyncio.gather(sizes(3), sizes(7))
    assert a == [3] * 10 and b == [7] * 10
