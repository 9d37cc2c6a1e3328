"""Per-host queues: a host-sorted list keeps every host busy; a slow host holds up nobody."""

from __future__ import annotations

from polyfetch import testing as t


def test_host_sorted_list_keeps_every_host_busy(harness, servers):
    t.check_host_sorted_list_keeps_every_host_busy(harness, servers)


def test_slow_host_in_front_holds_up_nobody(harness, servers):
    t.check_slow_host_in_front_holds_up_nobody(harness, servers)


def test_look_ahead_bounds_what_is_read(harness, servers):
    t.check_look_ahead_bounds_what_is_read(harness, servers)
