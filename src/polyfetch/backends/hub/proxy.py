"""Connections through a proxy for the hub: an HTTP CONNECT tunnel (h11) or SOCKS5 (socksio).

Both protocols are sans-IO libraries here, driven over the hub's `Stream`:
h11 writes the CONNECT request and parses its answer; socksio writes and
parses SOCKS5's method choice, login (RFC 1929) and CONNECT command. The
connect timeout covers the whole way: TCP to the proxy, its handshake, the
proxy's own connection to the target, and the TLS handshake with the target
through the tunnel. A plain http target through an HTTP proxy needs no tunnel:
the request goes to the proxy in absolute form (`absolute_form`).

An ``https://`` proxy (TLS to the proxy) would put the target's TLS inside the
proxy's; the hub's sockets are kernel sockets wrapped by `ssl`, which cannot
nest, so the greenlet backend refuses such proxies (`HTTPS_PROXY_REFUSED`)
while the threads, gevent, asyncio and curl backends take them.
"""

from __future__ import annotations

import ssl
import time
from dataclasses import replace
from typing import TYPE_CHECKING

import h11

from polyfetch._proxy import HTTPS_PROXY_REFUSED
from polyfetch.backends.hub.loop import READ
from polyfetch.backends.hub.net import CHUNK, Resolver, Stream, _handshake, connect
from polyfetch.errors import ConnectTimeout, ProxyAuthError, ProxyError

if TYPE_CHECKING:
    from polyfetch._plan import Send
    from polyfetch._proxy import Proxy
    from polyfetch.backends.hub.loop import Hub


def absolute_form(send: Send, proxy: Proxy) -> Send:
    """``send`` as an HTTP proxy takes a plain http request: the absolute URL as the request
    target, and the proxy's credentials."""
    headers = send.headers
    if proxy.authorization:
        headers += (("Proxy-Authorization", proxy.authorization),)
    return replace(send, target=replace(send.target, target=send.target.url), headers=headers)


def open_stream(hub: Hub, resolver: Resolver, send: Send, tls: ssl.SSLContext | None) -> Stream:
    """A stream to ``send``'s target through ``send.proxy`` (TLS to the target when ``tls``);
    raises the taxonomy (`ProxyError` for the proxy's refusals) or `DeadlineExpired`."""
    proxy = send.proxy
    assert proxy is not None
    if proxy.scheme == "https":
        raise ProxyError(HTTPS_PROXY_REFUSED)
    t = send.target
    addrs = resolver.resolve(proxy.host, proxy.port, send.deadline)
    budget = min(time.monotonic() + send.connect_timeout, send.deadline)
    stream = connect(
        hub,
        addrs,
        proxy.host,
        proxy.port,
        tls=None,
        connect_timeout=send.connect_timeout,
        deadline=send.deadline,
    )
    try:
        if proxy.socks:
            _socks5(stream, resolver, send, proxy, budget)
        elif t.scheme == "https":
            _connect(stream, send, proxy, budget)
        else:
            return stream  # absolute-form requests to the proxy itself
        stream.where = f"{t.host}:{t.port}"  # from here on, errors are about the target
        if tls is not None:
            stream = _handshake(stream, tls, t.host, budget, send.connect_timeout, send.deadline)
        return stream
    except BaseException:
        stream.close()
        raise


def _recv(stream: Stream, budget: float, send: Send) -> bytes:
    while True:
        try:
            return stream.sock.recv(CHUNK)
        except BlockingIOError:
            pass
        left = max(0.0, budget - time.monotonic())
        stream.wait(READ, left, send.deadline, ConnectTimeout, "the proxy handshake with")


def _send(stream: Stream, data: bytes, budget: float, send: Send) -> None:
    stream.sendall(data, max(0.001, budget - time.monotonic()), send.deadline)


def _authority(send: Send) -> str:
    t = send.target
    host = f"[{t.host}]" if ":" in t.host else t.host
    return f"{host}:{t.port}"


def _connect(stream: Stream, send: Send, proxy: Proxy, budget: float) -> None:
    """An HTTP CONNECT tunnel to the target (h11 writes and reads it)."""
    authority = _authority(send)
    headers = [("Host", authority)]
    if proxy.authorization:
        headers.append(("Proxy-Authorization", proxy.authorization))
    conn = h11.Connection(h11.CLIENT)
    data = conn.send(h11.Request(method="CONNECT", target=authority, headers=headers))
    data += conn.send(h11.EndOfMessage())
    _send(stream, data, budget, send)
    try:
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                chunk = _recv(stream, budget, send)
                if not chunk:
                    raise ProxyError(f"closed the connection before answering CONNECT {authority}")
                conn.receive_data(chunk)
            elif type(event) is h11.InformationalResponse:
                continue
            elif type(event) is h11.Response:
                status = event.status_code
                if 200 <= status < 300:
                    if conn.trailing_data[0]:
                        raise ProxyError(f"sent bytes after its answer to CONNECT {authority}")
                    return
                reason = event.reason.decode("latin-1", "replace")
                cls = ProxyAuthError if status == 407 else ProxyError
                raise cls(f"refused the tunnel to {authority}: {status} {reason}")
            else:
                raise ProxyError(f"closed the connection before answering CONNECT {authority}")
    except h11.RemoteProtocolError as exc:
        raise ProxyError(f"sent an invalid answer to CONNECT {authority}: {exc}") from None


def _socks5(stream: Stream, resolver: Resolver, send: Send, proxy: Proxy, budget: float) -> None:
    """SOCKS5's greeting, login and CONNECT (socksio writes and parses them)."""
    try:
        from socksio import ProtocolError as SOCKSProtocolError
        from socksio import socks5
    except ImportError:
        raise ProxyError(
            "socks5:// proxies on the greenlet backend need socksio: pip install 'polyfetch[socks]'"
        ) from None
    t = send.target
    host = t.host
    if not proxy.remote_dns:  # socks5://: we resolve, the proxy gets an address
        found = resolver.resolve(t.host, t.port, send.deadline)
        host = str(found[0][1][0])
    conn = socks5.SOCKS5Connection()

    def exchange(request: object) -> object:
        conn.send(request)  # type: ignore[arg-type]
        _send(stream, conn.data_to_send(), budget, send)
        chunk = _recv(stream, budget, send)
        if not chunk:
            raise ProxyError("closed the connection during the SOCKS5 handshake")
        return conn.receive_data(chunk)

    try:
        method = (
            socks5.SOCKS5AuthMethod.NO_AUTH_REQUIRED
            if proxy.username is None
            else socks5.SOCKS5AuthMethod.USERNAME_PASSWORD
        )
        reply = exchange(socks5.SOCKS5AuthMethodsRequest([method]))
        if getattr(reply, "method", None) != method:
            wanted = "a login" if proxy.username is None else "another login method"
            raise ProxyAuthError(f"SOCKS5 proxy wants {wanted}")
        if proxy.username is not None:
            login = socks5.SOCKS5UsernamePasswordRequest(
                proxy.username.encode(), (proxy.password or "").encode()
            )
            if not getattr(exchange(login), "success", False):
                raise ProxyAuthError("SOCKS5 login refused")
        command = socks5.SOCKS5CommandRequest.from_address(
            socks5.SOCKS5Command.CONNECT, (host, t.port)
        )
        reply = exchange(command)
        code = getattr(reply, "reply_code", None)
        if code != socks5.SOCKS5ReplyCode.SUCCEEDED:
            name = getattr(code, "name", code)
            raise ProxyError(f"SOCKS5 proxy could not connect to {host}:{t.port}: {name}")
    except SOCKSProtocolError as exc:
        raise ProxyError(f"invalid SOCKS5 answer: {exc}") from None
