"""A raw-socket HTTP server that misbehaves on purpose, for error-path tests.

aiohttp (and so ``polyfetch.server``) only produces well-formed HTTP. This
server writes bytes by hand to produce what clients must survive: silence,
trickles, resets, short bodies, garbage, bad status lines, huge headers, bad
chunking and bad gzip. The request path picks the behaviour; the connection is
always closed afterwards. Run it as a module (`polyfetch.testing.start_servers`
does)::

    python -m polyfetch.testing.rawserver

which prints ``rawserver listening on 127.0.0.1:PORT`` as its first stdout line
and serves until SIGTERM/SIGINT, or call `start_in_thread()` in-process.
"""

from __future__ import annotations

import select
import signal
import socket
import socketserver
import struct
import sys
import threading
import time
from collections.abc import Callable
from urllib.parse import urlsplit

HOST = "127.0.0.1"
HEAD_TIMEOUT = 30.0  # socket timeout while reading the request / writing
MAX_HEAD = 64 * 1024  # request heads longer than this are cut off
MAX_WAIT = 60.0  # no behaviour keeps a connection longer than this
POLL = 0.2  # select() step used to notice a client that went away
MIB = 1 << 20


def _read_head(sock: socket.socket) -> bytes | None:
    """Read up to the end of the request head; None if the client closed first."""
    buf = b""
    while b"\r\n\r\n" not in buf and len(buf) < MAX_HEAD:
        data = sock.recv(65536)
        if not data:
            return None
        buf += data
    return buf


def _path_of(head: bytes) -> str:
    """The path of the request line (origin-form or absolute-form), without the query."""
    parts = head.split(b"\r\n", 1)[0].split()
    if len(parts) < 2:
        return ""
    target = parts[1].decode("latin-1")
    return urlsplit(target).path or "/"


def _readable(sock: socket.socket, timeout: float) -> bool:
    """Whether `sock` has data or EOF within `timeout`; poll() has no 1024-fd limit."""
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(sock, select.POLLIN | select.POLLPRI)
        return bool(poller.poll(timeout * 1000))
    readable, _, _ = select.select([sock], [], [], timeout)
    return bool(readable)


def _client_gone(sock: socket.socket, seconds: float) -> bool:
    """Wait up to `seconds` in POLL steps; True as soon as the client closes the connection."""
    deadline = time.monotonic() + seconds
    for _ in range(int(seconds / POLL) + 2):
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        if _readable(sock, min(POLL, left)):
            try:
                data = sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                return True
            if not data:
                return True
            # Extra bytes (e.g. a pipelined request) are read and ignored.
    return False


def _rst(sock: socket.socket) -> None:
    """Close with a TCP RST instead of a FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def _head(status: str, *headers: str) -> bytes:
    lines = [f"HTTP/1.1 {status}", *headers, "Connection: close"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


# ---------------------------------------------------------------------------
# Behaviours: each gets the connected socket after the request head was read.


def silence(sock: socket.socket) -> None:
    """Never answer; return when the client hangs up or after MAX_WAIT."""
    _client_gone(sock, MAX_WAIT)


def trickle(sock: socket.socket) -> None:
    """Valid head with Content-Length: 1000, then one body byte per second."""
    sock.sendall(_head("200 OK", "Content-Type: application/octet-stream", "Content-Length: 1000"))
    for _ in range(int(MAX_WAIT)):
        sock.sendall(b"x")
        if _client_gone(sock, 1.0):
            return


def trickle_headers(sock: socket.socket) -> None:
    """Status line and headers one byte every 0.2 s, then the 2-byte body."""
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n"  # 38 bytes: about 7.6 s
    deadline = time.monotonic() + MAX_WAIT
    for i in range(len(head)):
        sock.sendall(head[i : i + 1])
        if time.monotonic() > deadline or _client_gone(sock, POLL):
            return
    sock.sendall(b"ok")


def reset(sock: socket.socket) -> None:
    """Send nothing and close with RST."""
    _rst(sock)


def reset_mid_body(sock: socket.socket) -> None:
    """Head with Content-Length: 100000, 1000 body bytes, then RST."""
    sock.sendall(
        _head("200 OK", "Content-Type: application/octet-stream", "Content-Length: 100000")
    )
    sock.sendall(b"x" * 1000)
    time.sleep(0.2)  # let the bytes reach the client before the RST discards them
    _rst(sock)


def short(sock: socket.socket) -> None:
    """Head with Content-Length: 1000, only 10 body bytes, then a normal close (FIN)."""
    sock.sendall(_head("200 OK", "Content-Type: application/octet-stream", "Content-Length: 1000"))
    sock.sendall(b"0123456789")


def garbage(sock: socket.socket) -> None:
    """Bytes that are not HTTP at all."""
    sock.sendall(b"\x00\x01garbage that is not HTTP\r\n\r\n")


def bad_status(sock: socket.socket) -> None:
    """A status line whose code is not a number."""
    sock.sendall(b"HTTP/1.1 abc Not a number\r\nContent-Length: 0\r\n\r\n")


def huge_header(sock: socket.socket) -> None:
    """A single 1 MiB header value, then body "ok"."""
    sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\nX-Huge: ")
    sock.sendall(b"a" * MIB)
    sock.sendall(b"\r\n\r\nok")


def bad_chunked(sock: socket.socket) -> None:
    """Chunked encoding with an invalid chunk-size line."""
    sock.sendall(_head("200 OK", "Content-Type: text/plain", "Transfer-Encoding: chunked"))
    sock.sendall(b"zz\r\nhello\r\n0\r\n\r\n")


def close_delimited(sock: socket.socket) -> None:
    """Valid HTTP/1.1: no Content-Length, the 5000-byte body ends at EOF."""
    sock.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
    sock.sendall(b"y" * 5000)


def empty(sock: socket.socket) -> None:
    """Close (FIN) without sending anything."""


def ok(sock: socket.socket) -> None:
    """A normal, valid response."""
    sock.sendall(_head("200 OK", "Content-Type: text/plain", "Content-Length: 2") + b"ok")


def gzip_bad(sock: socket.socket) -> None:
    """Content-Encoding: gzip on a body that is not gzip."""
    body = b"this is not gzip data at all"
    sock.sendall(
        _head(
            "200 OK",
            "Content-Type: application/octet-stream",
            "Content-Encoding: gzip",
            f"Content-Length: {len(body)}",
        )
        + body
    )


def informational(sock: socket.socket) -> None:
    """A 100 Continue interim response, then the real one: body "ok"."""
    sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
    ok(sock)


def keep_alive(sock: socket.socket) -> None:
    """Answer requests on this one connection, each body the request's number on it."""
    for number in range(1, 101):
        body = str(number).encode()
        sock.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s"
            % (len(body), body)
        )
        if _read_head(sock) is None:  # the client closed the connection
            return


def cut_head(sock: socket.socket) -> None:
    """A status line and half a header block (no blank line, no Content-Length), then FIN."""
    sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Cut: abc")


def cut_chunk(sock: socket.socket) -> None:
    """A chunked body closed (FIN) in the middle of a chunk."""
    sock.sendall(_head("200 OK", "Content-Type: text/plain", "Transfer-Encoding: chunked"))
    sock.sendall(b"5\r\nhello\r\n400\r\n" + b"x" * 100)


def trickle_lines(sock: socket.socket) -> None:
    """Whole header lines, one every half second, for up to MAX_WAIT; never the blank line."""
    sock.sendall(b"HTTP/1.1 200 OK\r\n")
    for i in range(int(MAX_WAIT * 2)):
        sock.sendall(b"X-Line-%d: yes\r\n" % i)
        if _client_gone(sock, 0.5):
            return


def trickle_close_delimited(sock: socket.socket) -> None:
    """A body without Content-Length (it ends at close), one byte every 0.2 s, for MAX_WAIT."""
    sock.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
    for _ in range(int(MAX_WAIT * 5)):
        sock.sendall(b"z")
        if _client_gone(sock, POLL):
            return


def close_after_one(sock: socket.socket) -> None:
    """Answer one request with keep-alive, then close as soon as the next one arrives
    (a server dropping an idle keep-alive connection, racing the client that reuses it)."""
    sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    _read_head(sock)


def junk_after(sock: socket.socket) -> None:
    """A whole response with keep-alive, then bytes that belong to no response."""
    sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokJUNK\r\n\r\n")
    _client_gone(sock, 5.0)


def zstd(sock: socket.socket) -> None:
    """A body in Content-Encoding zstd, which polyfetch neither asks for nor decodes."""
    body = b"(\xb5/\xfd" + b"not really zstd"
    sock.sendall(_head("200 OK", "Content-Encoding: zstd", f"Content-Length: {len(body)}") + body)


def not_found(sock: socket.socket) -> None:
    """Any other path: a plain 404."""
    sock.sendall(
        _head("404 Not Found", "Content-Type: text/plain", "Content-Length: 9") + b"not found"
    )


BEHAVIOURS: dict[str, Callable[[socket.socket], None]] = {
    "/silence": silence,
    "/trickle": trickle,
    "/trickle-headers": trickle_headers,
    "/reset": reset,
    "/reset-mid-body": reset_mid_body,
    "/short": short,
    "/garbage": garbage,
    "/bad-status": bad_status,
    "/huge-header": huge_header,
    "/bad-chunked": bad_chunked,
    "/close-delimited": close_delimited,
    "/empty": empty,
    "/ok": ok,
    "/gzip-bad": gzip_bad,
    "/informational": informational,
    "/keep-alive": keep_alive,
    "/junk-after": junk_after,
    "/close-after-one": close_after_one,
    "/cut-head": cut_head,
    "/cut-chunk": cut_chunk,
    "/zstd": zstd,
    "/trickle-lines": trickle_lines,
    "/trickle-close-delimited": trickle_close_delimited,
}


class RawHandler(socketserver.BaseRequestHandler):
    """Read one request head, run the behaviour its path names, then let the server close."""

    def handle(self) -> None:
        sock: socket.socket = self.request
        try:
            sock.settimeout(HEAD_TIMEOUT)
            head = _read_head(sock)
            if head is None:
                return
            BEHAVIOURS.get(_path_of(head), not_found)(sock)
        except OSError:
            pass  # the client vanished (reset, broken pipe, timeout): nothing to do


class RawServer(socketserver.ThreadingTCPServer):
    """Thread-per-connection server with a deep accept backlog."""

    request_queue_size = 1024
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False


def start_in_thread() -> tuple[RawServer, int]:
    """Serve on 127.0.0.1, a free port, in a daemon thread; stop: shutdown(), server_close()."""
    server = RawServer((HOST, 0), RawHandler)
    port = server.server_address[1]
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="rawserver", daemon=True
    )
    thread.start()
    return server, port


def main() -> int:
    """Serve until SIGTERM/SIGINT; the first stdout line gives the port."""
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server, port = start_in_thread()
    print(f"rawserver listening on {HOST}:{port}", flush=True)
    try:
        stop.wait()
    finally:
        server.shutdown()
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
