"""Post-processing from every backend: built-ins, failing processors, dying and stuck workers."""

from __future__ import annotations

import pytest

from polyfetch import testing as t


def test_builtin_html_in_a_process_pool(harness, servers):
    t.check_builtin_html_in_a_process_pool(harness, servers)


@pytest.mark.parametrize("executor", t.OTHER_EXECUTORS)
def test_other_executors(harness, servers, executor):
    t.check_other_executors(harness, servers, executor=executor)


def test_failing_processor_is_recorded_and_the_run_goes_on(harness, servers):
    t.check_failing_processor_is_recorded_and_the_run_goes_on(harness, servers)


def test_failed_fetches_are_not_processed(harness, servers):
    t.check_failed_fetches_are_not_processed(harness, servers)


def test_killed_workers_are_replaced(harness, servers):
    t.check_killed_workers_are_replaced(harness, servers)


def test_stuck_processor_times_out_and_the_pool_recovers(harness, servers):
    t.check_stuck_processor_times_out_and_the_pool_recovers(harness, servers)


def test_big_bodies_and_big_results(harness, servers):
    t.check_big_bodies_and_big_results(harness, servers)


def test_a_processor_that_cannot_be_imported_is_refused_before_fetching(harness, servers):
    t.check_a_processor_that_cannot_be_imported_is_refused_before_fetching(harness, servers)
