"""robots.txt, Crawl-delay and the auto-throttle, against the test server on every backend."""

from __future__ import annotations

from polyfetch import testing as t


def test_robots_txt_is_obeyed_and_fetched_once(harness, servers):
    t.check_robots_txt_is_obeyed_and_fetched_once(harness, servers)


def test_crawl_delay_paces_the_host(harness, servers):
    t.check_crawl_delay_paces_the_host(harness, servers)


def test_auto_throttle_backs_off_a_pushing_host(harness, servers):
    t.check_auto_throttle_backs_off_a_pushing_host(harness, servers)
