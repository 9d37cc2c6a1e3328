"""Proxies on every backend: real proxy.py (HTTP, CONNECT) and pproxy (SOCKS5) on 127.0.0.1."""

from __future__ import annotations

import pytest

from polyfetch import testing as t
from polyfetch.testing.checks.proxies import tls_files
from polyfetch.testing.proxies import start_proxies


@pytest.fixture(scope="module")
def proxies(tmp_path_factory, servers):
    pytest.importorskip("proxy")
    pytest.importorskip("pproxy")
    tls = tls_files(servers)
    with start_proxies(tmp_path_factory.mktemp("proxies"), tls=tls) as running:
        yield running


def test_http_proxy_carries_http_and_https_targets(harness, servers, proxies):
    t.check_http_proxy_carries_http_and_https_targets(harness, servers, proxies)


def test_proxy_credentials_are_sent_and_refusals_are_proxy_errors(harness, servers, proxies):
    t.check_proxy_credentials_are_sent_and_refusals_are_proxy_errors(harness, servers, proxies)


def test_socks5_resolves_locally_and_socks5h_at_the_proxy(harness, servers, proxies):
    t.check_socks5_resolves_locally_and_socks5h_at_the_proxy(harness, servers, proxies)


def test_environment_and_no_proxy_choose_the_way(harness, servers, proxies):
    t.check_environment_and_no_proxy_choose_the_way(harness, servers, proxies)


def test_a_dead_proxy_gives_each_item_a_proxy_error(harness, servers):
    t.check_a_dead_proxy_gives_each_item_a_proxy_error(harness, servers)


def test_per_host_limits_key_on_the_target_through_a_proxy(harness, servers, proxies):
    t.check_per_host_limits_key_on_the_target_through_a_proxy(harness, servers, proxies)


def test_https_proxy_speaks_tls_to_the_proxy(harness, servers, proxies):
    t.check_https_proxy_speaks_tls_to_the_proxy(harness, servers, proxies)
