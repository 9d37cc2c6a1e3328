"""Sockets for the hub: name resolution, non-blocking connect, TLS, and a byte stream.

Every blocking point is "try the operation, and only if it would block, wait
for the descriptor in the hub" - for TLS too, because an `ssl.SSLSocket` may
hold decrypted bytes the kernel no longer reports as readable. A wait gets
``min(op timeout, deadline)``: when the attempt's absolute deadline is the one
that ran out, `DeadlineExpired` is raised (the backend reports `TotalTimeout`);
otherwise the operation's own timeout error (`ConnectTimeout`, `ReadTimeout`).

Names are resolved by ``socket.getaddrinfo`` in a small thread pool whose
futures the hub waits on through its wake-up socketpair, so a slow resolver
never stalls other requests. IP literals never touch the pool; answers are
cached for a few minutes, and concurrent lookups of one name share one call.
"""

from __future__ import annotations

import errno
import os
import socket
import ssl
import time
from concurrent.futures import Future, ThreadPoolExecutor

from polyfetch.backends.hub.loop import READ, WRITE, Hub, WaitTimeout
from polyfetch.errors import ConnectError, ConnectTimeout, DNSError, ReadTimeout, TLSError
from polyfetch.settings import DNS_TTL

CHUNK = 64 * 1024
_DNS_CACHE_MAX = 4096
_DNS_WORKERS = 8
_IN_PROGRESS = (errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EALREADY)
_WOULD_READ = (BlockingIOError, ssl.SSLWantReadError)
Address = tuple[int, tuple[object, ...]]  # (family, sockaddr)


class DeadlineExpired(Exception):
    """The attempt's absolute deadline passed during a wait."""


class Resolver:
    """``getaddrinfo`` off the hub's thread, with a TTL cache and shared in-flight lookups."""

    def __init__(self, hub: Hub) -> None:
        self._hub = hub
        self._pool: ThreadPoolExecutor | None = None  # threads only once a name needs one
        self._cache: dict[tuple[str, int], tuple[float, list[Address]]] = {}
        self._inflight: dict[tuple[str, int], Future[list[Address]]] = {}

    def resolve(self, host: str, port: int, deadline: float) -> list[Address]:
        """The addresses to try for ``host``; `DNSError` or `DeadlineExpired`."""
        key = (host, port)
        hit = self._cache.get(key)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        literal = _literal(host, port)
        if literal is not None:
            self._remember(key, literal, float("inf"))
            return literal
        fut = self._inflight.get(key)
        if fut is None:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(_DNS_WORKERS, thread_name_prefix="polyfetch-dns")
            fut = self._inflight[key] = self._pool.submit(_getaddrinfo, host, port)
            fut.add_done_callback(
                lambda _: self._hub.call_soon_threadsafe(lambda: self._inflight.pop(key, None))
            )
        try:
            # not cancelled at our deadline: other tasks may be waiting on the same lookup
            found = self._hub.wait_future(fut, deadline, cancel=False)
        except WaitTimeout:
            raise DeadlineExpired from None
        except (OSError, UnicodeError) as exc:  # socket.gaierror, or a name IDNA rejects
            reason = getattr(exc, "strerror", None) or exc
            raise DNSError(f"cannot resolve host {host!r}: {reason}") from None
        if not found:
            raise DNSError(f"cannot resolve host {host!r}: no addresses")
        self._remember(key, found, time.monotonic() + DNS_TTL)
        return found

    def _remember(self, key: tuple[str, int], addrs: list[Address], expires: float) -> None:
        if len(self._cache) >= _DNS_CACHE_MAX:
            self._cache.clear()  # crude but bounded; a crawl re-resolves at most once per entry
        self._cache[key] = (expires, addrs)

    def close(self) -> None:
        """Wait for the resolver threads to finish (lookups in flight cannot be interrupted)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def _getaddrinfo(host: str, port: int) -> list[Address]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [(family, sockaddr) for family, _, _, _, sockaddr in infos]


def _literal(host: str, port: int) -> list[Address] | None:
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
        except OSError:
            continue
        return [(family, (host, port) if family == socket.AF_INET else (host, port, 0, 0))]
    return None


class Stream:
    """A connected non-blocking socket (plain or TLS) driven by the hub."""

    __slots__ = ("fd", "hub", "sock", "where")

    def __init__(self, hub: Hub, sock: socket.socket, where: str) -> None:
        self.hub = hub
        self.sock = sock
        self.fd = sock.fileno()
        self.where = where

    def wait(
        self, events: int, timeout: float, deadline: float, on_timeout: type[Exception], what: str
    ) -> None:
        """Wait for ``events`` for ``min(timeout, deadline)``; raise whichever ran out."""
        until = time.monotonic() + timeout
        final = until >= deadline
        if final:
            until = deadline
        if not self.hub.wait_fd(self.fd, events, until):
            if final:
                raise DeadlineExpired
            raise on_timeout(f"{what} {self.where} took longer than {timeout:g} s")

    def recv(self, timeout: float, deadline: float) -> bytes:
        """Up to 64 KiB; b"" at end of stream; `ReadTimeout` after ``timeout`` s of silence."""
        sock = self.sock
        while True:
            try:
                return sock.recv(CHUNK)  # first: TLS may hold bytes the kernel doesn't show
            except _WOULD_READ:
                events = READ
            except ssl.SSLWantWriteError:
                events = WRITE  # renegotiation / key update: TLS must write to read
            self.wait(events, timeout, deadline, ReadTimeout, "reading from")

    def sendall(self, data: bytes, timeout: float, deadline: float) -> None:
        """Write all of ``data``; a stall longer than ``timeout`` is a `ReadTimeout`."""
        view = memoryview(data)
        sock = self.sock
        while view:
            try:
                view = view[sock.send(view) :]
                continue
            except (BlockingIOError, ssl.SSLWantWriteError):
                events = WRITE
            except ssl.SSLWantReadError:
                events = READ
            self.wait(events, timeout, deadline, ReadTimeout, "writing to")

    def idle_ok(self) -> bool:
        """True if an idle pooled connection looks usable: open and not readable.

        An idle connection has nothing to say; bytes or EOF waiting on it mean the
        server closed it (or sent junk), and reusing it would fail or misparse.
        """
        sock = self.sock
        if isinstance(sock, ssl.SSLSocket) and sock.pending():
            return False
        try:
            # The raw descriptor, under TLS too: a close_notify shows up as readable bytes.
            socket.socket.recv(sock, 1, socket.MSG_PEEK)  # non-blocking socket: never waits
        except BlockingIOError:
            return True
        except OSError:
            return False
        return False

    def close(self) -> None:
        """Close at once (no TLS close_notify: it could block, and nothing waits for it)."""
        self.sock.close()


def connect(
    hub: Hub,
    addrs: list[Address],
    host: str,
    port: int,
    *,
    tls: ssl.SSLContext | None,
    connect_timeout: float,
    deadline: float,
) -> Stream:
    """TCP connect (each address in turn) and TLS handshake, together within ``connect_timeout``.

    Raises `ConnectError`, `ConnectTimeout`, `TLSError` or `DeadlineExpired`.
    """
    where = f"{host}:{port}"
    budget = min(time.monotonic() + connect_timeout, deadline)
    error: OSError | None = None
    for family, sockaddr in addrs:
        try:
            sock = socket.socket(family, socket.SOCK_STREAM)
        except OSError as exc:  # EMFILE and friends: this attempt cannot connect
            error = exc
            continue
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            stream = Stream(hub, sock, where)
            err = sock.connect_ex(sockaddr)
            if err in _IN_PROGRESS:
                _wait_connect(stream, WRITE, budget, connect_timeout, deadline)
                err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                raise OSError(err, os.strerror(err))
        except OSError as exc:  # refused, unreachable...: try the next address
            sock.close()
            error = exc
            continue
        except BaseException:
            sock.close()  # a timeout or a kill: never leak the descriptor
            raise
        if tls is not None:
            stream = _handshake(stream, tls, host, budget, connect_timeout, deadline)
        return stream
    reason = (error.strerror or str(error)) if error is not None else "no address"
    raise ConnectError(f"cannot connect to {where}: {reason}")


def _wait_connect(
    stream: Stream, events: int, budget: float, connect_timeout: float, deadline: float
) -> None:
    if not stream.hub.wait_fd(stream.fd, events, budget):
        if budget >= deadline:
            raise DeadlineExpired
        raise ConnectTimeout(f"connecting to {stream.where} took longer than {connect_timeout:g} s")


def _handshake(
    stream: Stream,
    ctx: ssl.SSLContext,
    host: str,
    budget: float,
    connect_timeout: float,
    deadline: float,
) -> Stream:
    # server_hostname may be an IP literal: ssl then checks the certificate's IP SANs.
    sock = ctx.wrap_socket(stream.sock, server_hostname=host, do_handshake_on_connect=False)
    stream = Stream(stream.hub, sock, stream.where)
    try:
        while True:
            try:
                sock.do_handshake()
                return stream
            except ssl.SSLWantReadError:
                events = READ
            except ssl.SSLWantWriteError:
                events = WRITE
            _wait_connect(stream, events, budget, connect_timeout, deadline)
    except BaseException as exc:
        sock.close()  # wrap_socket detached the plain socket: the wrapper owns the descriptor
        if isinstance(exc, ssl.SSLCertVerificationError):
            reason = exc.verify_message or exc.reason or exc
            raise TLSError(f"TLS certificate of {stream.where} rejected: {reason}") from None
        if isinstance(exc, ssl.SSLError):
            raise TLSError(f"TLS handshake with {stream.where} failed: {exc}") from None
        if isinstance(exc, OSError):
            raise ConnectError(f"TLS handshake with {stream.where} broken: {exc}") from None
        raise
