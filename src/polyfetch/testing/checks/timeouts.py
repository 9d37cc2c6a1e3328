"""Connect, read (between bytes) and total timeouts; nothing holds a request past its deadline."""

from __future__ import annotations

import time

from polyfetch.errors import ConnectTimeout, ReadTimeout, TotalTimeout
from polyfetch.testing.checks._registry import check, shown
from polyfetch.testing.harness import Harness
from polyfetch.testing.servers import Servers

#: raw-server paths that send a valid response slower than any total timeout
#: one byte at a time into the body and the status line; whole header lines one by one; a
#: body delimited by the connection's close, still coming (a partial page is never a success)
TRICKLES = ("/trickle", "/trickle-headers", "/trickle-lines", "/trickle-close-delimited")


@check
def check_read_timeout_when_server_is_silent(harness: Harness, servers: Servers) -> None:
    """A server that never answers ends as ReadTimeout after read_timeout."""
    r = harness.one(servers.raw + "/silence", read_timeout=0.5, timeout=10, retries=0)
    assert isinstance(r.error, ReadTimeout), shown(r)
    assert r.elapsed < 3, shown(r)


@check
def check_trickle_cannot_outlive_total_timeout(
    harness: Harness, servers: Servers, path: str | None = None
) -> None:
    """A response trickling in (body or head; or only ``path``) is stopped by the total timeout."""
    for case in [path] if path else TRICKLES:
        started = time.monotonic()
        r = harness.one(servers.raw + case, read_timeout=5, timeout=1.5, retries=2)
        wall = time.monotonic() - started
        assert isinstance(r.error, TotalTimeout), f"{case}: {shown(r)}"
        assert 1.4 < r.elapsed < 3 and wall < 3.5, f"{case}: {shown(r)}, {wall:.2f} s in all"


@check
def check_slow_drip_from_test_server(harness: Harness, servers: Servers) -> None:
    """A body dripping one byte every 300 ms is stopped by the total timeout."""
    r = harness.one(f"{servers.http}/drip?bytes=100&interval=300", read_timeout=5, timeout=1.2)
    assert isinstance(r.error, TotalTimeout), shown(r)


@check
def check_timeout_spans_retries(harness: Harness, servers: Servers) -> None:
    """The total timeout covers every attempt and backoff of an item."""
    r = harness.one(
        servers.raw + "/silence", read_timeout=0.4, timeout=1.0, retries=10, backoff=0.01
    )
    assert isinstance(r.error, ReadTimeout | TotalTimeout), shown(r)
    assert 2 <= r.attempts <= 4 and r.elapsed < 2, shown(r)


@check
def check_tls_handshake_timeout_is_a_connect_timeout(harness: Harness, servers: Servers) -> None:
    """A TLS handshake that stalls past connect_timeout is a ConnectTimeout."""
    # the raw server accepts TCP and then waits for an HTTP request head: the handshake stalls
    url = servers.raw.replace("http://", "https://") + "/silence"
    r = harness.one(url, connect_timeout=0.5, read_timeout=5, timeout=10, retries=0, verify=False)
    assert isinstance(r.error, ConnectTimeout), shown(r)
    assert r.elapsed < 3, shown(r)


@check
def check_tcp_connect_timeout(harness: Harness, servers: Servers) -> None:
    """A TCP connect that never completes is a ConnectTimeout after connect_timeout."""
    import socket

    # a listener whose accept queue is full drops further SYNs: the connect never completes
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        fillers = []
        for _ in range(4):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            fillers.append(s)
        time.sleep(0.2)
        try:
            r = harness.one(f"http://127.0.0.1:{port}/", connect_timeout=0.5, timeout=10, retries=0)
        finally:
            for s in fillers:
                s.close()
    assert isinstance(r.error, ConnectTimeout), shown(r)
    assert r.elapsed < 3, shown(r)
