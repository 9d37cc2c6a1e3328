"""Request items, methods and bodies, retry and redirect rules, header lists, cookies,
text and JSON, saving to a file: the same on every backend."""

from __future__ import annotations

from polyfetch import testing as t


def test_methods_and_bodies_arrive(harness, servers):
    t.check_methods_and_bodies_arrive(harness, servers)


def test_form_json_and_params_are_encoded(harness, servers):
    t.check_form_json_and_params_are_encoded(harness, servers)


def test_request_headers_meta_and_url(harness, servers):
    t.check_request_headers_meta_and_url(harness, servers)


def test_per_item_overrides(harness, servers):
    t.check_per_item_overrides(harness, servers)


def test_post_is_retried_only_when_allowed(harness, servers):
    t.check_post_is_retried_only_when_allowed(harness, servers)


def test_redirects_change_methods_as_the_rfc_says(harness, servers):
    t.check_redirects_change_methods_as_the_rfc_says(harness, servers)


def test_repeated_headers_are_kept_apart(harness, servers):
    t.check_repeated_headers_are_kept_apart(harness, servers)


def test_cookies_are_sent_on_later_requests_and_redirect_hops(harness, servers):
    t.check_cookies_are_sent_on_later_requests_and_redirect_hops(harness, servers)


def test_cookie_domain_path_and_secure_rules(harness, servers):
    t.check_cookie_domain_path_and_secure_rules(harness, servers)


def test_a_jar_given_is_used_and_filled(harness, servers):
    t.check_a_jar_given_is_used_and_filled(harness, servers)


def test_text_and_json(harness, servers):
    t.check_text_and_json(harness, servers)


def test_bodies_saved_to_a_file_with_their_own_cap(harness, servers):
    t.check_bodies_saved_to_a_file_with_their_own_cap(harness, servers)


def test_requests_that_cannot_be_sent_get_a_typed_record(harness, servers):
    t.check_requests_that_cannot_be_sent_get_a_typed_record(harness, servers)
