"""Retries with backoff on 429/502/503/504, honouring Retry-After, bounded by the deadline."""

from __future__ import annotations

import uuid


def test_retry_after_is_honoured(servers, one):
    key = uuid.uuid4().hex
    r = one(f"{servers.http}/flaky/{key}?fails=2&retry_after=1", retries=3, backoff=0.01)
    assert r.status == 200 and r.error is None
    assert r.attempts == 3
    assert r.elapsed >= 1.9  # two Retry-After: 1 waits, not the 10 ms backoff


def test_retries_exhausted_returns_the_last_response(servers, one):
    r = one(f"{servers.http}/status/503", retries=2, backoff=0.01)
    assert r.status == 503 and r.error is None and r.attempts == 3


def test_backoff_grows(servers, one):
    r = one(f"{servers.http}/status/502", retries=3, backoff=0.2, max_backoff=10)
    # equal jitter: waits of at least 0.1 + 0.2 + 0.4 s
    assert r.attempts == 4 and r.elapsed >= 0.7


def test_retry_after_longer_than_the_deadline_gives_up_at_once(servers, one):
    r = one(f"{servers.http}/status/503?retry_after=100", retries=3, timeout=5)
    assert r.status == 503 and r.attempts == 1 and r.elapsed < 2


def test_429_and_504_are_retried_404_is_not(servers, run):
    results = run(
        [f"{servers.http}/status/429", f"{servers.http}/status/504", f"{servers.http}/status/404"],
        retries=1,
        backoff=0.01,
    )
    assert [r.attempts for r in results] == [2, 2, 1]
