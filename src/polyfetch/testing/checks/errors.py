"""Every way a fetch can fail ends as one typed error in the item's one result."""

from __future__ import annotations

from polyfetch.errors import (
    ConnectError,
    DNSError,
    FetchError,
    ProtocolError,
    ReadError,
    TooManyRedirects,
    UnsupportedScheme,
)
from polyfetch.testing.checks._registry import check, shown
from polyfetch.testing.harness import Harness, SkipCheck
from polyfetch.testing.servers import Servers, closed_port, isolated_network

#: raw-server path -> the exact error class its response must end as
BROKEN_RESPONSES: dict[str, type[FetchError]] = {
    "/reset": ReadError,
    "/empty": ReadError,
    "/short": ReadError,
    "/reset-mid-body": ReadError,
    "/cut-head": ReadError,  # closed before the blank line: never a complete (empty) page
    "/cut-chunk": ReadError,  # closed in the middle of a chunk
    "/garbage": ProtocolError,
    "/bad-status": ProtocolError,
    "/huge-header": ProtocolError,
    "/bad-chunked": ProtocolError,
    "/gzip-bad": ProtocolError,
    "/zstd": ProtocolError,  # junk announced as zstd: an error, never the raw bytes
}
#: redirect targets that must be refused with UnsupportedScheme
OTHER_SCHEMES = ("file:///etc/passwd", "ftp://127.0.0.1/x", "javascript:x")


@check
def check_connection_refused_is_retried_then_connect_error(
    harness: Harness, servers: Servers
) -> None:
    """A refused connection is retried, then ends as ConnectError without a status."""
    r = harness.one(f"http://127.0.0.1:{closed_port()}/", retries=2, backoff=0.01)
    assert isinstance(r.error, ConnectError), shown(r)
    assert r.attempts == 3 and r.status is None, shown(r)


@check
def check_dns_failure(harness: Harness, servers: Servers) -> None:
    """A name that does not resolve is a DNSError (only where no DNS query can leave)."""
    if not isolated_network():
        raise SkipCheck(
            "needs a private network namespace (scripts/test provides one) "
            "so that no DNS query leaves the machine"
        )
    r = harness.one("http://no-such-host.invalid/", retries=0)
    assert isinstance(r.error, DNSError), shown(r)


@check
def check_malformed_and_broken_responses(
    harness: Harness, servers: Servers, path: str | None = None
) -> None:
    """Each broken response of `BROKEN_RESPONSES` (or only ``path``) ends as its error."""
    for case in [path] if path else BROKEN_RESPONSES:
        error = BROKEN_RESPONSES[case]
        r = harness.one(servers.raw + case, retries=0, timeout=10)
        assert type(r.error) is error, f"{case}: expected {error.__name__}, got {shown(r)}"
        assert r.error.message and r.status is None and r.attempts == 1, f"{case}: {shown(r)}"


@check
def check_read_errors_are_retried(harness: Harness, servers: Servers) -> None:
    """A connection reset before the response is retried (attempts = 1 + retries)."""
    r = harness.one(servers.raw + "/reset", retries=2, backoff=0.01)
    assert isinstance(r.error, ReadError) and r.attempts == 3, shown(r)


@check
def check_protocol_errors_are_not_retried(harness: Harness, servers: Servers) -> None:
    """A response that is not HTTP is not retried."""
    r = harness.one(servers.raw + "/garbage", retries=2, backoff=0.01)
    assert isinstance(r.error, ProtocolError) and r.attempts == 1, shown(r)


@check
def check_redirect_loop(harness: Harness, servers: Servers) -> None:
    """A redirect loop ends as TooManyRedirects after max_redirects redirects."""
    r = harness.one(f"{servers.http}/loop", max_redirects=5)
    assert isinstance(r.error, TooManyRedirects), shown(r)
    assert r.redirects == 5, shown(r)


@check
def check_redirect_to_other_scheme_is_refused(
    harness: Harness, servers: Servers, target: str | None = None
) -> None:
    """A redirect to file:, ftp: or javascript: (or only ``target``) is UnsupportedScheme."""
    for case in [target] if target else OTHER_SCHEMES:
        r = harness.one(f"{servers.http}/redirect-to?url={case}")
        assert isinstance(r.error, UnsupportedScheme), f"redirect to {case}: {shown(r)}"
