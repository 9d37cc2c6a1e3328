"""Connect, read (between bytes) and total timeouts; nothing holds a request past its deadline."""

from __future__ import annotations

import socket
import time

import pytest

from polyfetch import ConnectTimeout, ReadTimeout, TotalTimeout


def test_read_timeout_when_server_is_silent(servers, one):
    r = one(servers.raw + "/silence", read_timeout=0.5, timeout=10, retries=0)
    assert isinstance(r.error, ReadTimeout), r.error
    assert r.elapsed < 3


@pytest.mark.parametrize("path", ["/trickle", "/trickle-headers"])
def test_trickle_cannot_outlive_total_timeout(servers, one, path):
    started = time.monotonic()
    r = one(servers.raw + path, read_timeout=5, timeout=1.5, retries=2)
    assert isinstance(r.error, TotalTimeout), r.error
    assert 1.4 < r.elapsed < 3 and time.monotonic() - started < 3.5


def test_slow_drip_from_test_server(servers, one):
    r = one(f"{servers.http}/drip?bytes=100&interval=300", read_timeout=5, timeout=1.2)
    assert isinstance(r.error, TotalTimeout), r.error


def test_timeout_spans_retries(servers, one):
    r = one(servers.raw + "/silence", read_timeout=0.4, timeout=1.0, retries=10, backoff=0.01)
    assert isinstance(r.error, ReadTimeout | TotalTimeout), r.error
    assert 2 <= r.attempts <= 4 and r.elapsed < 2


def test_tls_handshake_timeout_is_a_connect_timeout(servers, one):
    # the raw server accepts TCP and then waits for an HTTP request head: the handshake stalls
    url = servers.raw.replace("http://", "https://") + "/silence"
    r = one(url, connect_timeout=0.5, read_timeout=5, timeout=10, retries=0, verify=False)
    assert isinstance(r.error, ConnectTimeout), r.error
    assert r.elapsed < 3


def test_tcp_connect_timeout(one):
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
            r = one(f"http://127.0.0.1:{port}/", connect_timeout=0.5, timeout=10, retries=0)
        finally:
            for s in fillers:
                s.close()
    assert isinstance(r.error, ConnectTimeout), r.error
    assert r.elapsed < 3
