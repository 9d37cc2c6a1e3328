"""Retries with backoff on 429/502/503/504, honouring Retry-After, bounded by the deadline."""

from __future__ import annotations

from polyfetch import testing as t


def test_retry_after_is_honoured(harness, servers):
    t.check_retry_after_is_honoured(harness, servers)


def test_retries_exhausted_returns_the_last_response(harness, servers):
    t.check_retries_exhausted_returns_the_last_response(harness, servers)


def test_backoff_grows(harness, servers):
    t.check_backoff_grows(harness, servers)


def test_retry_after_longer_than_the_deadline_gives_up_at_once(harness, servers):
    t.check_retry_after_longer_than_the_deadline_gives_up_at_once(harness, servers)


def test_429_and_504_are_retried_404_is_not(harness, servers):
    t.check_429_and_504_are_retried_404_is_not(harness, servers)
