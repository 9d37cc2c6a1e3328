"""One HTTP/1.1 attempt over the hub's sockets, with httptools or h11, and a keep-alive pool.

The parser does the protocol (framing, 204/304 without bodies, chunking,
keep-alive rules); this module only moves bytes. Raw body bytes go to
`polyfetch._body.Body`, which decodes and enforces the limits the same way on
every backend.

Two parsers. httptools (llhttp, in C) costs a tenth of h11 per response and
serves every GET when it is installed; its gaps are covered here, each by a
conformance test: it cannot build requests (the request head is written here,
from headers `polyfetch.settings.Settings` validated, and cached per header
set), it cannot be told a response answers a HEAD (HEADs go to h11), it never
ends a body delimited by connection close (the end of stream ends it here),
``should_keep_alive()`` is read inside its callbacks, it has no header-size
limit (counted here) and it wraps a callback's exception (callbacks only record
errors). h11 serves HEAD, and every request when httptools is missing.

A connection goes back to the pool only when h11 says both sides are DONE
(then ``start_next_cycle()``); anything else - an error, a `TooLarge`, a kill,
``Connection: close`` - closes it. The pool keeps at most ``per_host`` idle
connections per (scheme, host, port) and at most ``concurrency`` in all,
newest first; an idle connection that has turned readable (closed by the
server, or junk) is discarded when it comes up. A reused connection that fails
before the first byte of the response - the server closed it while we were
picking it - is retried once on a fresh connection: that is the pool's race,
not an attempt the planner should count.

Errors leave as the taxonomy where this module knows the meaning (an EOF
before the end of the response is a `ReadError`, an h11 parse error a
`ProtocolError`); sockets' `OSError`s and `DeadlineExpired` pass through for
the backend to map.
"""

from __future__ import annotations

import collections
import ssl
import time
from typing import Any

import h11

try:
    import httptools
except ImportError:  # the h11 path serves everything
    httptools = None  # type: ignore[assignment]

from polyfetch._body import Body, response_body
from polyfetch._plan import Response, Send, lower_headers
from polyfetch.backends.hub.loop import Hub
from polyfetch.backends.hub.net import Resolver, Stream, connect
from polyfetch.backends.hub.proxy import absolute_form, open_stream
from polyfetch.errors import ProtocolError, ReadError
from polyfetch.settings import IDEMPOTENT, MAX_HEADER_BYTES, Settings

_MAX_IDLE = 60.0  # servers drop idle connections after a while; don't race them for old ones
_VALIDATED_MAX = 1024
#: (scheme, host, port) of the target; with a proxy, the proxy too (`Client.attempt`).
Key = tuple[object, ...]


_validated: dict[tuple[str, tuple[tuple[str, str], ...]], object] = {}


def _headers(send: Send) -> Any:
    """The request's headers, Host first, validated by h11 once per distinct set.

    h11 checks every header against its grammar each time a `h11.Request` is built
    from plain pairs - a large share of its cost per request. A request event's
    ``headers`` attribute is h11's own validated form, which it accepts as is, and
    every request of a fetch sends the same headers to the same authority.
    """
    key = (send.target.authority, send.headers)
    headers = _validated.get(key)
    if headers is None:
        pairs = list(send.headers)
        if not any(name.lower() == "host" for name, _ in pairs):
            pairs.insert(0, ("Host", send.target.authority))
        headers = h11.Request(method="GET", target="/", headers=pairs).headers
        if len(_validated) >= _VALIDATED_MAX:
            _validated.clear()
        _validated[key] = headers
    return headers


_heads: dict[tuple[str, str, tuple[tuple[str, str], ...]], bytes] = {}


def _request_head(send: Send) -> bytes:
    """The request head for the httptools path, written once per (method, authority, headers).

    Safe to write by hand: Settings refused CR, LF and NUL in headers, and `_url` control
    characters and spaces in the target.
    """
    key = (send.method, send.target.authority, send.headers)
    head = _heads.get(key)
    if head is None:
        lines = (
            []
            if any(n.lower() == "host" for n, _ in send.headers)
            else [f"Host: {send.target.authority}"]
        )
        lines += [f"{name}: {value}" for name, value in send.headers]
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if len(_heads) >= _VALIDATED_MAX:
            _heads.clear()
        _heads[key] = head
    return head


class _Reply:
    """httptools' callbacks for one response; they record, and never raise into the parser."""

    __slots__ = (
        "body",
        "close_delimited",
        "done",
        "error",
        "head_done",
        "headers",
        "keep",
        "parser",
        "raw",
        "send",
        "settings",
        "started",
        "status",
    )

    def __init__(self, settings: Settings, send: Send) -> None:
        self.settings = settings
        self.send = send
        self.parser: Any = None
        self.raw: list[tuple[bytes, bytes]] = []
        self.headers: dict[str, str] = {}
        self.body: Body | None = None
        self.error: Exception | None = None
        self.status = 0
        self.started = 0  # final (non-1xx) responses begun: a second one is trailing junk
        self.head_done = self.done = self.keep = self.close_delimited = False

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self.started:  # not the headers of trailing junk after the response
            self.raw.append((name, value))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if status < 200:  # 1xx: skipped, the real response follows
            self.raw.clear()
            return
        self.started += 1
        if self.started > 1:
            return
        self.status, self.head_done = status, True
        headers = self.headers = lower_headers(self.raw)
        length = headers.get("content-length")
        try:
            self.body = response_body(
                self.settings, self.send, status, headers.get("content-encoding"), length
            )
        except Exception as exc:  # TooLarge from the announced length
            self.error = exc
            return
        self.close_delimited = (
            length is None
            and status not in (204, 304)
            and "chunked" not in headers.get("transfer-encoding", "").lower()
        )

    def on_body(self, data: bytes) -> None:
        if self.error is None and self.body is not None and self.started == 1:
            try:
                self.body.feed(data)
            except Exception as exc:  # TooLarge, a corrupt gzip body: raised after feed_data
                self.error = exc

    def on_message_complete(self) -> None:
        if self.head_done and not self.done:
            self.done = True
            self.keep = bool(self.parser.should_keep_alive())  # valid only in here


class _Stale(Exception):
    """A reused connection died before any byte of the response: retry on a fresh one."""


class Connection:
    """A stream, and its h11 state machine once a HEAD (or a missing httptools) needs one."""

    __slots__ = ("eof", "got", "h11", "idle_since", "key", "stream")

    def __init__(self, stream: Stream, key: Key) -> None:
        self.stream = stream
        self.key = key
        self.h11: h11.Connection | None = None
        self.idle_since = 0.0
        self.got = self.eof = False  # of the current response: any byte yet, end of stream

    def exchange(self, send: Send, settings: Settings, reused: bool) -> tuple[Response, bool]:
        """Send the request and read the whole response; also say whether it can be reused."""
        if httptools is not None and send.method != "HEAD":
            return self._exchange_fast(send, settings, reused)
        return self._exchange_h11(send, settings, reused)

    def _exchange_fast(self, send: Send, settings: Settings, reused: bool) -> tuple[Response, bool]:
        where, stream = self.stream.where, self.stream
        reply = _Reply(settings, send)
        parser = reply.parser = httptools.HttpResponseParser(reply)
        data = f"{send.method} {send.target.target} HTTP/1.1\r\n".encode() + _request_head(send)
        if send.body:  # its Content-Length is among the headers (the planner put it there)
            data += send.body
        self.got = self.eof = False
        head_bytes = 0
        try:
            stream.sendall(data, send.read_timeout, send.deadline)
            while not reply.done:
                chunk = stream.recv(send.read_timeout, send.deadline)
                if not chunk:
                    self.eof = True
                    if reply.head_done and reply.close_delimited:
                        reply.done = True  # the end of stream is the end of this body
                        break
                    if not self.got:
                        if reused:
                            raise _Stale
                        raise ReadError(f"{where} closed the connection unanswered")
                    raise ReadError(f"{where} closed the connection mid-response")
                self.got = True
                if not reply.head_done:
                    head_bytes += len(chunk)
                try:
                    parser.feed_data(chunk)
                except httptools.HttpParserError as exc:
                    if not reply.done:
                        if reply.error is not None:
                            raise reply.error from None
                        raise ProtocolError(f"malformed response from {where}: {exc}") from None
                    reply.started += 1  # junk after the response: never reuse this connection
                if reply.error is not None:
                    raise reply.error
                if not reply.head_done and head_bytes > MAX_HEADER_BYTES:
                    raise ProtocolError(
                        f"malformed response from {where}: header block over "
                        f"{MAX_HEADER_BYTES} bytes"
                    )
        except (ConnectionError, ssl.SSLError) as exc:
            if reused and not self.got:
                raise _Stale from None
            raise ReadError(f"connection to {where} broken: {exc}") from None
        body = reply.body
        assert body is not None
        data_out = body.finish()
        reusable = reply.keep and reply.started == 1 and not reply.close_delimited
        version = parser.get_http_version()
        return (
            Response(reply.status, reply.headers, data_out, body.size, reply.raw, version),
            reusable,
        )

    def _exchange_h11(self, send: Send, settings: Settings, reused: bool) -> tuple[Response, bool]:
        if self.h11 is None:  # made on first use: the httptools path needs none
            self.h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEADER_BYTES)
        conn, where = self.h11, self.stream.where
        request = h11.Request(method=send.method, target=send.target.target, headers=_headers(send))
        data = conn.send(request)
        if send.body:  # h11 checks it against the Content-Length the planner put in the headers
            data += conn.send(h11.Data(data=send.body))
        data += conn.send(h11.EndOfMessage())
        self.got = self.eof = False
        try:
            self.stream.sendall(data, send.read_timeout, send.deadline)
            head = self._read_head(send, reused)
            headers = lower_headers(head.headers)
            body = self._read_body(send, settings, head.status_code, headers)
        except h11.RemoteProtocolError as exc:
            if self.eof:  # what h11 objects to is the end of stream: the response was cut short
                raise ReadError(f"{where} closed the connection mid-response") from None
            raise ProtocolError(f"malformed response from {where}: {str(exc)[:200]}") from None
        except (ConnectionError, ssl.SSLError) as exc:
            if reused and not self.got:
                raise _Stale from None
            raise ReadError(f"connection to {where} broken: {exc}") from None
        data_out = body.finish()
        # Bytes after the response (h11 holds them) would be misread as the next response.
        reusable = (
            conn.our_state is h11.DONE
            and conn.their_state is h11.DONE
            and not conn.trailing_data[0]
        )
        if reusable:
            conn.start_next_cycle()
        version = head.http_version.decode("ascii")
        return (
            Response(head.status_code, headers, data_out, body.size, head.headers, version),
            reusable,
        )

    def _read_head(self, send: Send, reused: bool) -> h11.Response:
        conn = self.h11
        assert conn is not None
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                self._receive(send)
                if self.eof and not self.got:
                    if reused:
                        raise _Stale
                    raise ReadError(f"{self.stream.where} closed the connection unanswered")
            elif type(event) is h11.Response:
                return event
            elif type(event) is not h11.InformationalResponse:  # 1xx: skipped
                raise ReadError(f"{self.stream.where} closed the connection unanswered")

    def _read_body(
        self, send: Send, settings: Settings, status: int, headers: dict[str, str]
    ) -> Body:
        body = response_body(
            settings,
            send,
            status,
            headers.get("content-encoding"),
            headers.get("content-length"),
        )
        conn = self.h11
        assert conn is not None
        while True:
            event = conn.next_event()
            if type(event) is h11.Data:
                body.feed(event.data)
            elif event is h11.NEED_DATA:
                self._receive(send)
            elif type(event) is h11.EndOfMessage:
                return body
            else:  # ConnectionClosed before the end of the body
                raise ReadError(f"{self.stream.where} closed the connection mid-response")

    def _receive(self, send: Send) -> None:
        chunk = self.stream.recv(send.read_timeout, send.deadline)
        if chunk:
            self.got = True
        else:
            self.eof = True  # h11 takes b"" as end of stream (and ends close-delimited bodies)
        assert self.h11 is not None
        self.h11.receive_data(chunk)

    def close(self) -> None:
        """Close the socket (idempotent)."""
        self.stream.close()


class Pool:
    """Idle keep-alive connections: per key newest first, globally in least-recently-used order."""

    def __init__(self, per_key: int, total: int) -> None:
        self._per_key = per_key
        self._total = total
        self._idle: dict[Key, list[Connection]] = {}
        self._lru: collections.OrderedDict[Connection, None] = collections.OrderedDict()

    def get(self, key: Key) -> Connection | None:
        """A usable idle connection for ``key``, or None."""
        idle = self._idle.get(key)
        now = time.monotonic()
        while idle:
            conn = idle.pop()
            del self._lru[conn]
            if not idle:
                del self._idle[key]
            if now - conn.idle_since < _MAX_IDLE and conn.stream.idle_ok():
                return conn
            conn.close()
        return None

    def put(self, conn: Connection) -> None:
        """Keep ``conn`` for reuse, or close it if the pool is full."""
        idle = self._idle.setdefault(conn.key, [])
        # connections to an HTTP proxy serve every target host: up to the total, not per_host
        if len(idle) >= self._per_key and conn.key[0] != "via":
            conn.close()
            return
        conn.idle_since = time.monotonic()
        idle.append(conn)
        self._lru[conn] = None
        if len(self._lru) > self._total:
            oldest, _ = self._lru.popitem(last=False)
            bucket = self._idle[oldest.key]
            bucket.remove(oldest)
            if not bucket:
                del self._idle[oldest.key]
            oldest.close()

    def close(self) -> None:
        """Close every idle connection."""
        for conn in self._lru:
            conn.close()
        self._lru.clear()
        self._idle.clear()

    def __len__(self) -> int:
        return len(self._lru)


class Client:
    """Performs single attempts: pooled or new connection, request, response."""

    def __init__(self, hub: Hub, settings: Settings, tls: ssl.SSLContext) -> None:
        self.hub = hub
        self.settings = settings
        self.tls = tls
        self.resolver = Resolver(hub)
        self.pool = Pool(settings.per_host, max(settings.concurrency, settings.per_host))

    def attempt(self, send: Send) -> Response:
        """One attempt; raises the taxonomy, `OSError` or `DeadlineExpired` on failure."""
        t = send.target
        proxy = send.proxy
        if proxy is None:
            key: Key = (t.scheme, t.host, t.port)
        elif t.scheme == "http" and not proxy.socks:  # one connection to the proxy serves all
            send = absolute_form(send, proxy)
            key = ("via", proxy)
        else:  # a tunnel to the target
            key = (t.scheme, t.host, t.port, proxy)
        conn = self.pool.get(key)
        if conn is not None:
            try:
                return self._exchange(conn, send, reused=True)
            except _Stale:
                # the pool's race, not the server's answer: once more, fresh, if idempotent
                if send.method not in IDEMPOTENT:
                    raise ReadError(
                        f"{conn.stream.where} closed the connection without a response"
                    ) from None
        return self._exchange(self._connect(send, key), send, reused=False)

    def _exchange(self, conn: Connection, send: Send, reused: bool) -> Response:
        keep = False
        try:
            response, keep = conn.exchange(send, self.settings, reused)
            return response
        finally:  # on every error, and on a kill, the half-used connection is closed
            if keep:
                self.pool.put(conn)
            else:
                conn.close()

    def _connect(self, send: Send, key: Key) -> Connection:
        t = send.target
        if send.proxy is not None:
            tls = self.tls if t.scheme == "https" else None
            return Connection(open_stream(self.hub, self.resolver, send, tls), key)
        addrs = self.resolver.resolve(t.host, t.port, send.deadline)
        stream = connect(
            self.hub,
            addrs,
            t.host,
            t.port,
            tls=self.tls if t.scheme == "https" else None,
            connect_timeout=send.connect_timeout,
            deadline=send.deadline,
        )
        return Connection(stream, key)

    def close(self) -> None:
        """Close idle connections and stop the resolver's threads."""
        self.pool.close()
        self.resolver.close()
