"""No input makes map() raise or drop a record, on any backend (hypothesis)."""

from __future__ import annotations

from polyfetch import testing as t


def test_map_returns_one_record_per_item_whatever_the_input(harness, servers):
    t.check_map_returns_one_record_per_item_whatever_the_input(harness, servers)
