"""The synchronous Fetcher on the asyncio backend: where its private event loop runs."""

from __future__ import annotations

import asyncio


def test_sync_fetcher_inside_a_running_loop_runs_its_own_loop_in_a_thread(servers):
    """Blocking code inside a coroutine (a notebook cell) can still use Fetcher("asyncio")."""
    import threading

    from polyfetch import Fetcher

    async def caller() -> tuple[list[int], bool]:
        before = threading.active_count()
        with Fetcher("asyncio", concurrency=4) as f:
            sizes = sorted(r.size for r in f.map([f"{servers.http}/bytes/{n}" for n in (1, 2, 3)]))
            threaded = threading.active_count() > before
        return sizes, threaded

    sizes, threaded = asyncio.run(caller())
    assert sizes == [1, 2, 3]
    assert threaded, "inside a running loop the private loop needs a thread of its own"


def test_sync_fetcher_outside_a_loop_runs_its_loop_in_the_callers_thread(servers):
    import threading

    from polyfetch import Fetcher

    before = threading.active_count()
    with Fetcher("asyncio", concurrency=4) as f:
        assert f.fetch(f"{servers.http}/bytes/5").size == 5
        assert threading.active_count() == before, "no loop thread: the caller runs the loop"
