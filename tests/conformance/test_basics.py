"""Successful fetches: status, headers, bodies, encodings, methods, results' shape."""

from __future__ import annotations

from polyfetch import testing as t


def test_get_returns_status_headers_body(harness, servers):
    t.check_get_returns_status_headers_body(harness, servers)


def test_status_codes_are_results_not_errors(harness, servers):
    t.check_status_codes_are_results_not_errors(harness, servers)


def test_head_has_headers_and_no_body(harness, servers):
    t.check_head_has_headers_and_no_body(harness, servers)


def test_head_is_not_limited_by_the_announced_length(harness, servers):
    t.check_head_is_not_limited_by_the_announced_length(harness, servers)


def test_default_user_agent_and_custom_headers(harness, servers):
    t.check_default_user_agent_and_custom_headers(harness, servers)


def test_keep_body_false_still_counts_size(harness, servers):
    t.check_keep_body_false_still_counts_size(harness, servers)


def test_gzip_and_deflate_are_decoded(harness, servers):
    t.check_gzip_and_deflate_are_decoded(harness, servers)


def test_body_delimited_by_connection_close(harness, servers):
    t.check_body_delimited_by_connection_close(harness, servers)


def test_one_result_per_item_whatever_the_item(harness, servers):
    t.check_one_result_per_item_whatever_the_item(harness, servers)


def test_results_stream_in_completion_order(harness, servers):
    t.check_results_stream_in_completion_order(harness, servers)


def test_fetch_one_and_fetch_inside_map(harness, servers):
    t.check_fetch_one_and_fetch_inside_map(harness, servers)


def test_interim_responses_are_skipped(harness, servers):
    t.check_interim_responses_are_skipped(harness, servers)


def test_keep_alive_reuses_the_connection(harness, servers):
    t.check_keep_alive_reuses_the_connection(harness, servers)


def test_bytes_after_a_response_are_not_the_next_one(harness, servers):
    t.check_bytes_after_a_response_are_not_the_next_one(harness, servers)


def test_a_stale_keep_alive_connection_is_not_an_attempt(harness, servers):
    t.check_a_stale_keep_alive_connection_is_not_an_attempt(harness, servers)


def test_brotli_is_decoded(harness, servers):
    t.check_brotli_is_decoded(harness, servers)


def test_ipv4_hosts_in_any_form_reach_the_same_address(harness, servers):
    t.check_ipv4_hosts_in_any_form_reach_the_same_address(harness, servers)
