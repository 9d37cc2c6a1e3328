"""crawl(): the frontier against the generated site, on every backend and AsyncFetcher."""

from __future__ import annotations

from polyfetch import testing as t


def test_crawl_fetches_exactly_the_pages_a_crawler_may(harness, servers):
    t.check_crawl_fetches_exactly_the_pages_a_crawler_may(harness, servers)


def test_crawl_limits_depth_pages_and_scope(harness, servers):
    t.check_crawl_limits_depth_pages_and_scope(harness, servers)


def test_crawl_records_refusals_when_asked(harness, servers):
    t.check_crawl_records_refusals_when_asked(harness, servers)


def test_crawl_follow_function_requests_and_processing(harness, servers):
    t.check_crawl_follow_function_requests_and_processing(harness, servers)
