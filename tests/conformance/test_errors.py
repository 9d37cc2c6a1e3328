"""Every way a fetch can fail ends as one typed error in the item's one result."""

from __future__ import annotations

import pytest

from polyfetch import (
    ConnectError,
    DNSError,
    ProtocolError,
    ReadError,
    TooManyRedirects,
    UnsupportedScheme,
)
from tests.conftest import ISOLATED_NETWORK, closed_port


def test_connection_refused_is_retried_then_connect_error(one):
    r = one(f"http://127.0.0.1:{closed_port()}/", retries=2, backoff=0.01)
    assert isinstance(r.error, ConnectError), r.error
    assert r.attempts == 3 and r.status is None


@pytest.mark.skipif(
    not ISOLATED_NETWORK,
    reason="needs a private network namespace "
    "(scripts/test provides one) so that no DNS query leaves the machine",
)
def test_dns_failure(one):
    r = one("http://no-such-host.invalid/", retries=0)
    assert isinstance(r.error, DNSError), r.error


@pytest.mark.parametrize(
    ("path", "error"),
    [
        ("/reset", ReadError),
        ("/empty", ReadError),
        ("/short", ReadError),
        ("/reset-mid-body", ReadError),
        ("/garbage", ProtocolError),
        ("/bad-status", ProtocolError),
        ("/huge-header", ProtocolError),
        ("/bad-chunked", ProtocolError),
        ("/gzip-bad", ProtocolError),
    ],
)
def test_malformed_and_broken_responses(servers, one, path, error):
    r = one(servers.raw + path, retries=0, timeout=10)
    assert type(r.error) is error, (path, r.error)
    assert r.error.message and r.status is None and r.attempts == 1


def test_read_errors_are_retried(servers, one):
    r = one(servers.raw + "/reset", retries=2, backoff=0.01)
    assert isinstance(r.error, ReadError) and r.attempts == 3


def test_protocol_errors_are_not_retried(servers, one):
    r = one(servers.raw + "/garbage", retries=2, backoff=0.01)
    assert isinstance(r.error, ProtocolError) and r.attempts == 1


def test_redirect_loop(servers, one):
    r = one(f"{servers.http}/loop", max_redirects=5)
    assert isinstance(r.error, TooManyRedirects), r.error
    assert r.redirects == 5


@pytest.mark.parametrize("target", ["file:///etc/passwd", "ftp://127.0.0.1/x", "javascript:x"])
def test_redirect_to_other_scheme_is_refused(servers, one, target):
    r = one(f"{servers.http}/redirect-to?url={target}")
    assert isinstance(r.error, UnsupportedScheme), r.error
