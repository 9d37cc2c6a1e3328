"""Redirects: followed by the core, within a limit, across hosts, private headers dropped."""

from __future__ import annotations

from polyfetch import testing as t


def test_redirect_chain(harness, servers):
    t.check_redirect_chain(harness, servers)


def test_attempts_count_retries_not_redirect_hops(harness, servers):
    t.check_attempts_count_retries_not_redirect_hops(harness, servers)


def test_redirect_limit_zero_refuses_redirects(harness, servers):
    t.check_redirect_limit_zero_refuses_redirects(harness, servers)


def test_cross_host_redirect_drops_authorization(harness, servers):
    t.check_cross_host_redirect_drops_authorization(harness, servers)


def test_credentials_in_url_become_basic_auth(harness, servers):
    t.check_credentials_in_url_become_basic_auth(harness, servers)
