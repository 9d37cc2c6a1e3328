"""aiohttp's exceptions mapped onto `polyfetch.errors`; subclasses are tested before their bases."""

from __future__ import annotations

import asyncio
import os
import socket

import aiohttp
from aiohttp import http_exceptions as hx

from polyfetch._plan import Send
from polyfetch.errors import (
    ConnectError,
    ConnectTimeout,
    DNSError,
    FetchError,
    InvalidURL,
    ProtocolError,
    ProxyAuthError,
    ProxyError,
    ReadError,
    ReadTimeout,
    TLSError,
    unexpected,
)


def map_error(exc: Exception, send: Send) -> FetchError:
    """The taxonomy's name for what aiohttp raised during ``send`` (the core turns an error
    at the deadline into `TotalTimeout`)."""
    t = send.target
    where = f"{t.host}:{t.port}"
    if send.proxy is not None:
        mapped = _proxy_error(exc, send)
        if mapped is not None:
            return mapped
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return DNSError(f"cannot resolve host {t.host!r}: {_reason(exc.os_error)}")
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return TLSError(f"TLS certificate of {where} rejected: {exc.certificate_error}")
    if isinstance(exc, aiohttp.ClientSSLError):  # ClientConnectorSSLError and its siblings
        return TLSError(f"TLS handshake with {where} failed: {exc.os_error}")
    if isinstance(exc, aiohttp.ServerFingerprintMismatch):
        return TLSError(f"TLS certificate fingerprint of {where} does not match")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return ConnectError(f"cannot connect to {where}: {_reason(exc.os_error)}")
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return ConnectTimeout(f"connecting to {where} took longer than {send.connect_timeout:g} s")
    if isinstance(exc, TimeoutError):  # SocketTimeoutError (sock_read ran out), or a bare one
        return ReadTimeout(f"no data from {where} for {send.read_timeout:g} s")
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return ReadError(f"{where} closed the connection before the response was complete")
    if isinstance(exc, aiohttp.ClientPayloadError):
        return _payload_error(exc, where)
    if isinstance(exc, aiohttp.ClientResponseError | hx.HttpProcessingError):  # parser's verdict
        return ProtocolError(f"malformed response from {where}: {one_line(exc.message)}")
    if isinstance(exc, aiohttp.ClientConnectionError | OSError):  # resets, broken pipes
        return ReadError(f"connection to {where} broken: {exc}")
    if isinstance(exc, aiohttp.InvalidURL):
        return InvalidURL(f"aiohttp rejected the URL {t.url!r}: {exc}")
    return unexpected(exc)


def _proxy_error(exc: Exception, send: Send) -> FetchError | None:
    """aiohttp's proxy errors and aiohttp-socks' (python-socks') in the taxonomy, else None."""
    if isinstance(exc, aiohttp.ClientHttpProxyError):  # CONNECT answered with a non-2xx
        cls = ProxyAuthError if exc.status == 407 else ProxyError
        return cls(f"refused the tunnel: {exc.status} {one_line(exc.message)}")
    if isinstance(exc, aiohttp.ClientProxyConnectionError):
        return ProxyError(f"cannot connect: {_reason(exc.os_error)}")
    for found in (exc, exc.__cause__):  # socks5://: aiohttp-socks resolved the target here
        if isinstance(found, socket.gaierror):
            return DNSError(f"cannot resolve host {send.target.host!r}: {_reason(found)}")
    if isinstance(exc, asyncio.IncompleteReadError) and send.proxy is not None and send.proxy.socks:
        # python-socks lets it out when the proxy hangs up mid-handshake (pproxy does so
        # on a refused login)
        return ProxyError("closed the connection during the SOCKS5 handshake")
    seen: BaseException | None = exc
    for _ in range(4):  # aiohttp may wrap python-socks' error: look down the chain
        if seen is None:
            return None
        module = type(seen).__module__
        if module.startswith(("python_socks", "aiohttp_socks")):
            name = type(seen).__name__
            text = one_line(str(seen))
            if name == "ProxyTimeoutError":
                return ConnectTimeout(f"SOCKS5 handshake timed out: {text}")
            if name == "ProxyConnectionError":
                return ProxyError(f"cannot connect: {text}")
            if "auth" in text.lower():
                return ProxyAuthError(f"SOCKS5 login refused: {text}")
            return ProxyError(f"SOCKS5 failed: {text}")
        seen = getattr(seen, "os_error", None) or seen.__cause__
    return None


def _payload_error(exc: aiohttp.ClientPayloadError, where: str) -> FetchError:
    """A body cut short (EOF, reset) is a ReadError; a body with bad framing a ProtocolError."""
    cause = exc.__cause__
    text = str(exc)
    if (
        isinstance(cause, hx.ContentLengthError)
        or "not completed" in text
        or (isinstance(cause, hx.TransferEncodingError) and "Not enough data" in str(cause))
    ):
        return ReadError(f"{where} closed the connection before the body was complete")
    if isinstance(cause, OSError):
        return ReadError(f"connection to {where} broken mid-body: {cause}")
    detail = cause.message if isinstance(cause, hx.HttpProcessingError) else cause or text
    return ProtocolError(f"malformed body from {where}: {one_line(detail)}")


def _reason(err: OSError) -> str:
    # asyncio words a refused connection "Connect call failed ('127.0.0.1', 1)": name the errno
    if isinstance(err.errno, int) and err.errno > 0:
        return os.strerror(err.errno)
    return err.strerror or str(err) or type(err).__name__


def one_line(message: object) -> str:
    """llhttp's multi-line messages (with a caret under the bad byte) on one short line."""
    lines = [ln.strip() for ln in str(message).splitlines()]
    text = " ".join(ln for ln in lines if ln and set(ln) != {"^"})
    return text if len(text) <= 200 else text[:197] + "..."
