"""Connect, read (between bytes) and total timeouts; nothing holds a request past its deadline."""

from __future__ import annotations

import pytest

from polyfetch import testing as t


def test_read_timeout_when_server_is_silent(harness, servers):
    t.check_read_timeout_when_server_is_silent(harness, servers)


@pytest.mark.parametrize("path", t.TRICKLES)
def test_trickle_cannot_outlive_total_timeout(harness, servers, path):
    t.check_trickle_cannot_outlive_total_timeout(harness, servers, path=path)


def test_slow_drip_from_test_server(harness, servers):
    t.check_slow_drip_from_test_server(harness, servers)


def test_timeout_spans_retries(harness, servers):
    t.check_timeout_spans_retries(harness, servers)


def test_tls_handshake_timeout_is_a_connect_timeout(harness, servers):
    t.check_tls_handshake_timeout_is_a_connect_timeout(harness, servers)


def test_tcp_connect_timeout(harness, servers):
    t.check_tcp_connect_timeout(harness, servers)
