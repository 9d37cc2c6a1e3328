"""One HTTP attempt with a blocking client (urllib3), shared by the threads and gevent backends.

urllib3 runs with its retries, redirects and decoding switched off: the core's
planner retries and redirects, and the core's `Body` decodes and caps. What
this module adds is the mapping of urllib3's and http.client's exceptions onto
the taxonomy, and a hook (`on_request`) that tells the threads backend which
connection an attempt uses, so a watchdog can end it at the deadline.

Imported only after the backend has checked gevent's patching, because
importing urllib3 imports `socket` and `ssl`.
"""

from __future__ import annotations

import http.client
import socket
import threading
from collections.abc import Callable
from typing import Any

import urllib3
from urllib3 import exceptions as u3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from polyfetch._body import response_body
from polyfetch._plan import Response, Send, lower_headers
from polyfetch._proxy import Proxy
from polyfetch._tls import client_context
from polyfetch.errors import (
    ConnectError,
    ConnectTimeout,
    DNSError,
    FetchError,
    ProtocolError,
    ProxyAuthError,
    ProxyError,
    ReadError,
    ReadTimeout,
    TLSError,
    unexpected,
)
from polyfetch.settings import IDEMPOTENT, Settings

_CHUNK = 64 * 1024
_local = threading.local()  # the hook of the attempt running in this thread (or greenlet)


class _CutHead(http.client.HTTPException):
    """The connection ended inside the header block (no blank line came)."""


class _EOFWatch:
    """A response's file, noting whether a line read ever met the end of stream."""

    __slots__ = ("eof", "fp")

    def __init__(self, fp: Any) -> None:
        self.fp = fp
        self.eof = False

    def readline(self, limit: int = -1) -> bytes:
        line: bytes = self.fp.readline(limit)
        if not line.endswith(b"\n"):
            self.eof = True
        return line

    def __getattr__(self, name: str) -> Any:
        return getattr(self.fp, name)


class _WholeHead(http.client.HTTPResponse):
    """http.client takes the end of stream inside the header block for its end (and then an
    empty page for a complete one): a head that ends without its blank line is refused."""

    def begin(self) -> None:
        fp = self.fp
        watch = self.fp = _EOFWatch(fp)  # type: ignore[assignment]
        try:
            super().begin()
        finally:
            if self.fp is watch:  # else http.client closed it (and set None) on its way out
                self.fp = fp
        if watch.eof:
            raise _CutHead("the connection closed inside the response's header block")


class _Hooked:
    """Tells the running attempt's hook which socket carries its request, once it is sent,
    and whether that connection had carried a request before (a reused keep-alive one)."""

    _polyfetch_requests = 0

    def request(self, *args: Any, **kwargs: Any) -> None:
        self._polyfetch_requests += 1
        super().request(*args, **kwargs)  # type: ignore[misc]
        hook = getattr(_local, "hook", None)
        if hook is not None:
            sock = self.sock  # type: ignore[attr-defined]
            if not isinstance(sock, socket.socket):  # TLS in TLS (https proxy): SSLTransport
                sock = getattr(sock, "socket", sock)
            hook(sock, self._polyfetch_requests > 1)


class _HTTPConnection(_Hooked, HTTPConnection):
    response_class = _WholeHead


class _HTTPSConnection(_Hooked, HTTPSConnection):
    response_class = _WholeHead


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


_socks_pools: dict[str, type] | None = None


def _socks_pool_classes() -> dict[str, type]:
    """urllib3's SOCKS pools with our connection hook (PySocks imported on first use)."""
    global _socks_pools
    if _socks_pools is None:
        try:
            from urllib3.contrib import socks as u3socks
        except ImportError:  # urllib3 warns and re-raises without PySocks
            raise ProxyError(
                "socks5:// proxies on the threads and gevent backends need PySocks: "
                "pip install 'polyfetch[socks]'"
            ) from None

        class _SOCKSConnection(_Hooked, u3socks.SOCKSConnection):
            response_class = _WholeHead

        class _SOCKSHTTPSConnection(_Hooked, u3socks.SOCKSHTTPSConnection):
            response_class = _WholeHead

        class _SOCKSPool(u3socks.SOCKSHTTPConnectionPool):
            ConnectionCls = _SOCKSConnection

        class _SOCKSHTTPSPool(u3socks.SOCKSHTTPSConnectionPool):
            ConnectionCls = _SOCKSHTTPSConnection

        _socks_pools = {"http": _SOCKSPool, "https": _SOCKSHTTPSPool}
    return _socks_pools


class BlockingClient:
    """Performs single attempts for whichever thread or greenlet calls `perform`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._ctx = client_context(settings.verify, settings.ca_bundle)
        if not settings.verify:
            urllib3.disable_warnings(u3.InsecureRequestWarning)  # the user asked for it
        self._pm = urllib3.PoolManager(**self._pool_options())
        self._pm.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}
        #: One pool manager per proxy an attempt went through (`_through`).
        self._proxied: dict[Proxy, urllib3.PoolManager] = {}
        self._proxied_lock = threading.Lock()  # worker threads may meet a new proxy at once

    def _pool_options(self) -> dict[str, Any]:
        settings = self.settings
        return {
            "num_pools": max(settings.concurrency, 10),
            # The core's slots are the limits (per_host per host name, concurrency in all):
            # urllib3's pool never waits, it keeps up to per_host idle connections per origin.
            "maxsize": min(settings.per_host, settings.concurrency),
            "block": False,
            "retries": False,
            "ssl_context": self._ctx,
            "cert_reqs": "CERT_REQUIRED" if settings.verify else "CERT_NONE",
        }

    def _through(self, proxy: Proxy) -> urllib3.PoolManager:
        """The pool manager for ``proxy``: urllib3's ProxyManager (absolute-form for http
        targets, CONNECT for https ones) or its SOCKSProxyManager (PySocks)."""
        pm = self._proxied.get(proxy)
        if pm is not None:
            return pm
        with self._proxied_lock:
            pm = self._proxied.get(proxy)
            if pm is None:
                pm = self._proxied[proxy] = self._proxy_manager(proxy)
        return pm

    def _proxy_manager(self, proxy: Proxy) -> urllib3.PoolManager:
        pm: urllib3.PoolManager
        if proxy.socks:
            classes = _socks_pool_classes()
            from urllib3.contrib.socks import SOCKSProxyManager

            pm = SOCKSProxyManager(
                proxy.url, proxy.username, proxy.password, **self._pool_options()
            )
            pm.pool_classes_by_scheme = classes
        else:
            auth = proxy.authorization
            pm = urllib3.ProxyManager(
                proxy.url,
                proxy_headers={"Proxy-Authorization": auth} if auth else None,
                proxy_ssl_context=self._ctx,
                **self._pool_options(),
            )
            pm.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}
        return pm

    def perform(
        self,
        send: Send,
        on_socket: Callable[[socket.socket | None], None] | None = None,
    ) -> Response | FetchError:
        """One attempt; every failure comes back as a `FetchError`.

        ``on_socket`` is told the socket once the request is sent, and None before the
        socket goes back to the pool (another attempt may then use it). A reused keep-alive
        connection that the server closed before answering is the pool's race, not the
        server's answer: an idempotent request goes once more, as on the other backends,
        and that is not another attempt.
        """
        outcome = self._attempt(send, on_socket)
        if outcome is _STALE:
            if send.method in IDEMPOTENT:
                outcome = self._attempt(send, on_socket)
            if outcome is _STALE:
                return ReadError("server closed the connection without a response")
        return outcome  # type: ignore[return-value]

    def _attempt(
        self, send: Send, on_socket: Callable[[socket.socket | None], None] | None
    ) -> Response | FetchError | object:
        t = send.target
        sent: list[socket.socket] = []
        reused = False

        def hook(sock: socket.socket, again: bool) -> None:
            nonlocal reused
            sent.append(sock)
            reused = again
            if on_socket is not None:
                on_socket(sock)

        _local.hook = hook
        resp = None
        try:
            proxy = send.proxy
            headers = dict(send.headers)
            url = t.target
            if proxy is None:
                pool = self._pm.connection_from_host(t.host, t.port, t.scheme)
            else:
                pool = self._through(proxy).connection_from_host(t.host, t.port, t.scheme)
                if t.scheme == "http" and not proxy.socks:  # absolute-form, to the proxy
                    url = t.url
                    if proxy.authorization:
                        headers["Proxy-Authorization"] = proxy.authorization
            resp = pool.urlopen(
                send.method,
                url,
                body=send.body,
                headers=headers,
                retries=False,
                redirect=False,
                assert_same_host=False,
                preload_content=False,
                decode_content=False,
                release_conn=False,
                timeout=urllib3.Timeout(
                    connect=_finite(send.connect_timeout), read=_finite(send.read_timeout)
                ),
            )
            raw = resp.headers.items()  # repeats apart (and picklable), for Result.header_list
            headers = lower_headers(raw)
            body = response_body(
                self.settings,
                send,
                resp.status,
                headers.get("content-encoding"),
                headers.get("content-length"),
            )
            while chunk := resp.read1(_CHUNK, decode_content=False):
                body.feed(chunk)
            data = body.finish()
            status = resp.status
            version = f"{resp.version // 10}.{resp.version % 10}"  # urllib3: 11 for HTTP/1.1
            if on_socket is not None:
                on_socket(None)
            resp.release_conn()  # read to the end: the connection may be reused
            resp = None
            return Response(status, headers, data, body.size, raw, version)
        except FetchError as exc:
            return exc
        except Exception as exc:  # past the deadline, the core makes it a TotalTimeout
            if reused and _unanswered(exc):
                return _STALE
            return map_error(exc, connected=bool(sent), proxy=send.proxy)
        finally:
            _local.hook = None
            if on_socket is not None:
                on_socket(None)
            if resp is not None:
                resp.close()  # half-read: this connection cannot be reused
                resp.release_conn()

    def close(self) -> None:
        """Close every pooled connection."""
        self._pm.clear()
        for pm in self._proxied.values():
            pm.clear()


#: `BlockingClient._attempt`'s word for "a reused connection died unanswered: once more".
_STALE = object()


def _unanswered(exc: BaseException) -> bool:
    """Whether the connection closed or reset before any byte of the response came."""
    if isinstance(exc, u3.ProtocolError) and len(exc.args) > 1:
        exc = exc.args[1]
    return isinstance(exc, http.client.RemoteDisconnected | ConnectionResetError | BrokenPipeError)


def _finite(seconds: float) -> float | None:
    """A socket timeout: sockets take no infinity (timeout=inf), None waits as long as it takes."""
    return seconds if seconds < threading.TIMEOUT_MAX else None


def map_error(exc: BaseException, *, connected: bool, proxy: Proxy | None = None) -> FetchError:
    """urllib3 / http.client / socket exceptions -> the taxonomy.

    ``connected`` says whether the request was written: urllib3 reports a TLS
    handshake that timed out as a *read* timeout, which for us is a connect timeout.
    """
    msg = str(exc)
    if isinstance(exc, u3.ProxyError):
        cause = getattr(exc, "original_error", exc.__cause__)
        if isinstance(cause, u3.NewConnectionError):  # a subclass of ConnectTimeoutError
            return ProxyError(f"cannot connect: {cause.__cause__ or cause}")
        if isinstance(cause, u3.ConnectTimeoutError):
            return ConnectTimeout(f"connecting to the proxy timed out: {cause}")
        text = str(cause or msg)
        if " 407 " in f" {text} ":
            return ProxyAuthError(f"refused the tunnel: {text}")
        if "Tunnel connection failed" in text:
            return ProxyError(f"refused the tunnel: {text}")
        if isinstance(cause, BaseException) and cause is not exc:
            return map_error(cause, connected=connected)
        return ProxyError(f"proxy failed: {text}")
    if isinstance(exc, u3.NameResolutionError):
        return DNSError(f"cannot resolve host: {exc.__cause__ or msg}")
    if isinstance(exc, u3.NewConnectionError):
        if proxy is not None and proxy.socks:  # socks5://: PySocks resolved the target here
            inner: Any = exc
            for _ in range(4):
                inner = getattr(inner, "socket_err", None) or inner.__cause__ or inner.__context__
                if inner is None:
                    break
                if isinstance(inner, socket.gaierror):
                    return DNSError(f"cannot resolve host: {inner}")
        return ConnectError(f"cannot connect: {exc.__cause__ or msg}")
    if isinstance(exc, u3.ConnectTimeoutError):
        return ConnectTimeout(f"connect timed out: {msg}")
    if isinstance(exc, u3.ReadTimeoutError | socket.timeout):
        if not connected:
            return ConnectTimeout("TLS handshake timed out")
        return ReadTimeout("no data from the server within the read timeout")
    if isinstance(exc, u3.SSLError):
        return TLSError(f"TLS failed: {exc.__cause__ or (exc.args[0] if exc.args else msg)}")
    if isinstance(exc, u3.ProtocolError | u3.IncompleteRead | u3.InvalidChunkLength):
        cause = exc.args[1] if len(exc.args) > 1 else exc.__cause__ or exc
        if cause is not exc and isinstance(cause, BaseException):
            return map_error(cause, connected=connected)
    if isinstance(exc, u3.InvalidChunkLength):
        return ProtocolError(f"invalid chunked encoding: {msg}")
    if isinstance(exc, http.client.IncompleteRead) and isinstance(exc.__context__, ValueError):
        return ProtocolError(f"invalid chunked encoding: {exc.__context__}")
    if isinstance(exc, http.client.IncompleteRead | u3.IncompleteRead):
        return ReadError(f"connection closed before the body was complete: {msg}")
    if isinstance(exc, http.client.RemoteDisconnected):
        return ReadError("server closed the connection without a response")
    if isinstance(exc, _CutHead):
        return ReadError(f"connection closed mid-response: {msg}")
    if isinstance(exc, http.client.HTTPException):
        return ProtocolError(f"malformed response: {type(exc).__name__}: {msg}")
    if isinstance(exc, OSError):
        return ReadError(f"connection broken: {type(exc).__name__}: {msg}")
    return unexpected(exc)
