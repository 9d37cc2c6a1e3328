"""Retries with backoff on 429/502/503/504, honouring Retry-After, bounded by the deadline."""

from __future__ import annotations

import uuid

from polyfetch.testing.checks._registry import check, shown
from polyfetch.testing.harness import Harness
from polyfetch.testing.servers import Servers


@check
def check_retry_after_is_honoured(harness: Harness, servers: Servers) -> None:
    """Retry-After: 1 is waited for, instead of the (much shorter) backoff."""
    key = uuid.uuid4().hex
    r = harness.one(f"{servers.http}/flaky/{key}?fails=2&retry_after=1", retries=3, backoff=0.01)
    assert r.status == 200 and r.error is None, shown(r)
    assert r.attempts == 3, shown(r)
    assert r.elapsed >= 1.9, f"two Retry-After: 1 waits, not the 10 ms backoff: {shown(r)}"


@check
def check_retries_exhausted_returns_the_last_response(harness: Harness, servers: Servers) -> None:
    """When retries run out, the last response is the result (a status, no error)."""
    r = harness.one(f"{servers.http}/status/503", retries=2, backoff=0.01)
    assert r.status == 503 and r.error is None and r.attempts == 3, shown(r)


@check
def check_backoff_grows(harness: Harness, servers: Servers) -> None:
    """The backoff doubles from one retry to the next (equal jitter: at least half of it)."""
    r = harness.one(f"{servers.http}/status/502", retries=3, backoff=0.2, max_backoff=10)
    # equal jitter: waits of at least 0.1 + 0.2 + 0.4 s
    assert r.attempts == 4 and r.elapsed >= 0.7, shown(r)


@check
def check_retry_after_longer_than_the_deadline_gives_up_at_once(
    harness: Harness, servers: Servers
) -> None:
    """A Retry-After past the item's deadline ends the item at once with that response."""
    r = harness.one(f"{servers.http}/status/503?retry_after=100", retries=3, timeout=5)
    assert r.status == 503 and r.attempts == 1 and r.elapsed < 2, shown(r)


@check
def check_429_and_504_are_retried_404_is_not(harness: Harness, servers: Servers) -> None:
    """429 and 504 are retried; 404 is not."""
    results = harness.run(
        [f"{servers.http}/status/429", f"{servers.http}/status/504", f"{servers.http}/status/404"],
        retries=1,
        backoff=0.01,
    )
    assert [r.attempts for r in results] == [2, 2, 1], [shown(r) for r in results]
