"""Conformance checks for polyfetch backends, and the test servers they run against.

A backend's author checks a new backend against everything the built-in ones
guarantee, on real servers this package starts on 127.0.0.1 (the built-in
aiohttp server over HTTP and HTTPS, and a raw-socket server that misbehaves on
purpose)::

    from polyfetch.testing import check_backend
    from mypackage.backend import MyBackend      # a polyfetch.backends._base.Backend

    report = check_backend(MyBackend)            # raises AssertionError listing failures
    print(report)

or from the shell: ``python -m polyfetch.testing mypackage.backend:MyBackend``.
Each check is also a plain function, ``check_<what>(harness, servers)``, that
raises AssertionError with a readable message (or `SkipCheck`), to call from
one's own tests::

    from polyfetch.testing import FetcherHarness, start_servers, check_redirect_chain

    with start_servers() as servers:
        check_redirect_chain(FetcherHarness(MyBackend), servers)

`CHECKS` lists them all by name. A backend given by name (``"threads"``),
``"asyncio-async"`` (`AsyncFetcher` in an event loop) or any `Harness` works
too. Under gevent, patch first: ``python -m gevent.monkey your_script.py``.
The HTTPS server needs trustme and one check needs hypothesis (both in the
``test`` extra). Importing this package imports none of socket, ssl, asyncio,
gevent, aiohttp, urllib3 or greenlet; what a check needs is imported when it runs.
"""

from __future__ import annotations

from polyfetch.testing.checks import CHECKS, Check
from polyfetch.testing.checks.basics import (
    check_a_stale_keep_alive_connection_is_not_an_attempt,
    check_body_delimited_by_connection_close,
    check_brotli_is_decoded,
    check_bytes_after_a_response_are_not_the_next_one,
    check_default_user_agent_and_custom_headers,
    check_fetch_one_and_fetch_inside_map,
    check_get_returns_status_headers_body,
    check_gzip_and_deflate_are_decoded,
    check_head_has_headers_and_no_body,
    check_head_is_not_limited_by_the_announced_length,
    check_interim_responses_are_skipped,
    check_ipv4_hosts_in_any_form_reach_the_same_address,
    check_keep_alive_reuses_the_connection,
    check_keep_body_false_still_counts_size,
    check_one_result_per_item_whatever_the_item,
    check_results_stream_in_completion_order,
    check_status_codes_are_results_not_errors,
)
from polyfetch.testing.checks.crawling import (
    check_crawl_fetches_exactly_the_pages_a_crawler_may,
    check_crawl_follow_function_requests_and_processing,
    check_crawl_limits_depth_pages_and_scope,
    check_crawl_records_refusals_when_asked,
)
from polyfetch.testing.checks.errors import (
    BROKEN_RESPONSES,
    OTHER_SCHEMES,
    check_connection_refused_is_retried_then_connect_error,
    check_dns_failure,
    check_malformed_and_broken_responses,
    check_protocol_errors_are_not_retried,
    check_read_errors_are_retried,
    check_redirect_loop,
    check_redirect_to_other_scheme_is_refused,
)
from polyfetch.testing.checks.input import (
    check_map_returns_one_record_per_item_whatever_the_input,
)
from polyfetch.testing.checks.limits import (
    LARGE_BODIES,
    check_abandoned_map_cancels_in_flight_and_close_releases_everything,
    check_concurrency_and_per_host_limits_hold,
    check_concurrency_limit_holds_across_many_hosts,
    check_decompression_bomb_ends_too_large_with_memory_flat,
    check_input_is_pulled_lazily_within_a_bounded_window,
    check_max_bytes,
    check_memory_stays_flat_over_a_long_input,
    check_rate_limit_per_host,
)
from polyfetch.testing.checks.politeness import (
    check_auto_throttle_backs_off_a_pushing_host,
    check_crawl_delay_paces_the_host,
    check_robots_txt_is_obeyed_and_fetched_once,
)
from polyfetch.testing.checks.processing import (
    OTHER_EXECUTORS,
    check_a_processor_that_cannot_be_imported_is_refused_before_fetching,
    check_big_bodies_and_big_results,
    check_builtin_html_in_a_process_pool,
    check_failed_fetches_are_not_processed,
    check_failing_processor_is_recorded_and_the_run_goes_on,
    check_killed_workers_are_replaced,
    check_other_executors,
    check_stuck_processor_times_out_and_the_pool_recovers,
)
from polyfetch.testing.checks.proxies import (
    check_a_dead_proxy_gives_each_item_a_proxy_error,
    check_environment_and_no_proxy_choose_the_way,
    check_http_proxy_carries_http_and_https_targets,
    check_https_proxy_speaks_tls_to_the_proxy,
    check_per_host_limits_key_on_the_target_through_a_proxy,
    check_proxy_credentials_are_sent_and_refusals_are_proxy_errors,
    check_socks5_resolves_locally_and_socks5h_at_the_proxy,
)
from polyfetch.testing.checks.redirects import (
    check_attempts_count_retries_not_redirect_hops,
    check_credentials_in_url_become_basic_auth,
    check_cross_host_redirect_drops_authorization,
    check_redirect_chain,
    check_redirect_limit_zero_refuses_redirects,
)
from polyfetch.testing.checks.requests import (
    check_a_jar_given_is_used_and_filled,
    check_bodies_saved_to_a_file_with_their_own_cap,
    check_cookie_domain_path_and_secure_rules,
    check_cookies_are_sent_on_later_requests_and_redirect_hops,
    check_form_json_and_params_are_encoded,
    check_methods_and_bodies_arrive,
    check_per_item_overrides,
    check_post_is_retried_only_when_allowed,
    check_redirects_change_methods_as_the_rfc_says,
    check_repeated_headers_are_kept_apart,
    check_request_headers_meta_and_url,
    check_requests_that_cannot_be_sent_get_a_typed_record,
    check_text_and_json,
)
from polyfetch.testing.checks.retries import (
    check_429_and_504_are_retried_404_is_not,
    check_backoff_grows,
    check_retries_exhausted_returns_the_last_response,
    check_retry_after_is_honoured,
    check_retry_after_longer_than_the_deadline_gives_up_at_once,
)
from polyfetch.testing.checks.scheduling import (
    check_host_sorted_list_keeps_every_host_busy,
    check_look_ahead_bounds_what_is_read,
    check_slow_host_in_front_holds_up_nobody,
)
from polyfetch.testing.checks.timeouts import (
    TRICKLES,
    check_read_timeout_when_server_is_silent,
    check_slow_drip_from_test_server,
    check_tcp_connect_timeout,
    check_timeout_spans_retries,
    check_tls_handshake_timeout_is_a_connect_timeout,
    check_trickle_cannot_outlive_total_timeout,
)
from polyfetch.testing.checks.tls import (
    check_custom_ca_bundle,
    check_default_verification_rejects_unknown_ca,
    check_hostname_must_match,
    check_verification_off,
)
from polyfetch.testing.harness import (
    ASYNC,
    AsyncFetcherHarness,
    FetcherHarness,
    Harness,
    Session,
    SkipCheck,
    harness_for,
)
from polyfetch.testing.memory import MemoryRun
from polyfetch.testing.runner import BackendCheckFailed, Outcome, Report, check_backend, run_check
from polyfetch.testing.servers import (
    Servers,
    closed_port,
    isolated_network,
    start_process,
    start_servers,
    stop,
)

__all__ = [
    # running every check
    "BackendCheckFailed",
    "CHECKS",
    "Check",
    "Outcome",
    "Report",
    "check_backend",
    "run_check",
    # harnesses: what a check drives
    "ASYNC",
    "AsyncFetcherHarness",
    "FetcherHarness",
    "Harness",
    "MemoryRun",
    "Session",
    "SkipCheck",
    "harness_for",
    # servers and processes
    "Servers",
    "closed_port",
    "isolated_network",
    "start_process",
    "start_servers",
    "stop",
    # the cases of parametrized checks
    "BROKEN_RESPONSES",
    "LARGE_BODIES",
    "OTHER_EXECUTORS",
    "OTHER_SCHEMES",
    "TRICKLES",
    # the checks
    "check_429_and_504_are_retried_404_is_not",
    "check_a_processor_that_cannot_be_imported_is_refused_before_fetching",
    "check_abandoned_map_cancels_in_flight_and_close_releases_everything",
    "check_backoff_grows",
    "check_big_bodies_and_big_results",
    "check_a_stale_keep_alive_connection_is_not_an_attempt",
    "check_body_delimited_by_connection_close",
    "check_brotli_is_decoded",
    "check_crawl_fetches_exactly_the_pages_a_crawler_may",
    "check_crawl_follow_function_requests_and_processing",
    "check_crawl_limits_depth_pages_and_scope",
    "check_crawl_records_refusals_when_asked",
    "check_bytes_after_a_response_are_not_the_next_one",
    "check_interim_responses_are_skipped",
    "check_ipv4_hosts_in_any_form_reach_the_same_address",
    "check_keep_alive_reuses_the_connection",
    "check_builtin_html_in_a_process_pool",
    "check_auto_throttle_backs_off_a_pushing_host",
    "check_concurrency_and_per_host_limits_hold",
    "check_crawl_delay_paces_the_host",
    "check_robots_txt_is_obeyed_and_fetched_once",
    "check_host_sorted_list_keeps_every_host_busy",
    "check_look_ahead_bounds_what_is_read",
    "check_slow_host_in_front_holds_up_nobody",
    "check_concurrency_limit_holds_across_many_hosts",
    "check_connection_refused_is_retried_then_connect_error",
    "check_credentials_in_url_become_basic_auth",
    "check_cross_host_redirect_drops_authorization",
    "check_custom_ca_bundle",
    "check_decompression_bomb_ends_too_large_with_memory_flat",
    "check_default_user_agent_and_custom_headers",
    "check_default_verification_rejects_unknown_ca",
    "check_dns_failure",
    "check_failed_fetches_are_not_processed",
    "check_failing_processor_is_recorded_and_the_run_goes_on",
    "check_fetch_one_and_fetch_inside_map",
    "check_get_returns_status_headers_body",
    "check_gzip_and_deflate_are_decoded",
    "check_head_has_headers_and_no_body",
    "check_head_is_not_limited_by_the_announced_length",
    "check_hostname_must_match",
    "check_input_is_pulled_lazily_within_a_bounded_window",
    "check_keep_body_false_still_counts_size",
    "check_killed_workers_are_replaced",
    "check_malformed_and_broken_responses",
    "check_map_returns_one_record_per_item_whatever_the_input",
    "check_max_bytes",
    "check_memory_stays_flat_over_a_long_input",
    "check_one_result_per_item_whatever_the_item",
    "check_other_executors",
    "check_protocol_errors_are_not_retried",
    "check_rate_limit_per_host",
    "check_read_errors_are_retried",
    "check_read_timeout_when_server_is_silent",
    "check_redirect_chain",
    "check_attempts_count_retries_not_redirect_hops",
    "check_methods_and_bodies_arrive",
    "check_form_json_and_params_are_encoded",
    "check_request_headers_meta_and_url",
    "check_per_item_overrides",
    "check_post_is_retried_only_when_allowed",
    "check_redirects_change_methods_as_the_rfc_says",
    "check_repeated_headers_are_kept_apart",
    "check_cookies_are_sent_on_later_requests_and_redirect_hops",
    "check_cookie_domain_path_and_secure_rules",
    "check_a_jar_given_is_used_and_filled",
    "check_text_and_json",
    "check_bodies_saved_to_a_file_with_their_own_cap",
    "check_requests_that_cannot_be_sent_get_a_typed_record",
    "check_redirect_limit_zero_refuses_redirects",
    "check_redirect_loop",
    "check_redirect_to_other_scheme_is_refused",
    "check_results_stream_in_completion_order",
    "check_retries_exhausted_returns_the_last_response",
    "check_retry_after_is_honoured",
    "check_retry_after_longer_than_the_deadline_gives_up_at_once",
    "check_slow_drip_from_test_server",
    "check_status_codes_are_results_not_errors",
    "check_stuck_processor_times_out_and_the_pool_recovers",
    "check_tcp_connect_timeout",
    "check_timeout_spans_retries",
    "check_tls_handshake_timeout_is_a_connect_timeout",
    "check_trickle_cannot_outlive_total_timeout",
    "check_verification_off",
    "check_a_dead_proxy_gives_each_item_a_proxy_error",
    "check_environment_and_no_proxy_choose_the_way",
    "check_http_proxy_carries_http_and_https_targets",
    "check_https_proxy_speaks_tls_to_the_proxy",
    "check_per_host_limits_key_on_the_target_through_a_proxy",
    "check_proxy_credentials_are_sent_and_refusals_are_proxy_errors",
    "check_socks5_resolves_locally_and_socks5h_at_the_proxy",
]
