"""Bounded resources: concurrency and per-host peaks, body size limits, lazy input, clean close.

The two memory checks run their workload in a fresh process and sample its
current RSS: in this shared process the lifetime peak could hide any growth.
"""

from __future__ import annotations

import pytest

from polyfetch import testing as t


def test_concurrency_and_per_host_limits_hold(harness, servers):
    t.check_concurrency_and_per_host_limits_hold(harness, servers)


def test_concurrency_limit_holds_across_many_hosts(harness, servers):
    t.check_concurrency_limit_holds_across_many_hosts(harness, servers)


@pytest.mark.parametrize("path", t.LARGE_BODIES)
def test_max_bytes(harness, servers, path):
    t.check_max_bytes(harness, servers, path=path)


def test_decompression_bomb_ends_too_large_with_memory_flat(harness, servers):
    t.check_decompression_bomb_ends_too_large_with_memory_flat(harness, servers)


def test_input_is_pulled_lazily_within_a_bounded_window(harness, servers):
    t.check_input_is_pulled_lazily_within_a_bounded_window(harness, servers)


@pytest.mark.timeout(300)  # 200,000 items in a fresh process: minutes on a loaded 2-core CI
def test_memory_stays_flat_over_a_long_input(harness, servers):
    t.check_memory_stays_flat_over_a_long_input(harness, servers)


def test_abandoned_map_cancels_in_flight_and_close_releases_everything(harness, servers):
    t.check_abandoned_map_cancels_in_flight_and_close_releases_everything(harness, servers)


def test_rate_limit_per_host(harness, servers):
    t.check_rate_limit_per_host(harness, servers)
