"""aiohttp's exceptions mapped onto `polyfetch.errors`; subclasses are tested before their bases."""

from __future__ import annotations

import os

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
