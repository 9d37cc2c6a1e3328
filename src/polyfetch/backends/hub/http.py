"""One HTTP/1.1 attempt over the hub's sockets, with h11 and a keep-alive pool.

h11 does the protocol (framing, HEAD and 204/304 without bodies, bodies ended
by connection close, keep-alive rules); this module only moves bytes. Raw
body bytes go to `polyfetch._body.Body`, which decodes and enforces the limits
the same way on every backend.

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

from polyfetch._body import Body, response_body
from polyfetch._plan import Response, Send, lower_headers
from polyfetch.backends.hub.loop import Hub
from polyfetch.backends.hub.net import Resolver, Stream, connect
from polyfetch.errors import ProtocolError, ReadError
from polyfetch.settings import MAX_HEADER_BYTES, Settings

_MAX_IDLE = 60.0  # servers drop idle connections after a while; don't race them for old ones
_VALIDATED_MAX = 1024
Key = tuple[str, str, int]


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


class _Stale(Exception):
    """A reused connection died before any byte of the response: retry on a fresh one."""


class Connection:
    """A stream and its h11 state machine."""

    __slots__ = ("eof", "got", "h11", "idle_since", "key", "stream")

    def __init__(self, stream: Stream, key: Key) -> None:
        self.stream = stream
        self.key = key
        self.h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEADER_BYTES)
        self.idle_since = 0.0
        self.got = self.eof = False  # of the current response: any byte yet, end of stream

    def exchange(self, send: Send, settings: Settings, reused: bool) -> tuple[Response, bool]:
        """Send the request and read the whole response; also say whether it can be reused."""
        conn, where = self.h11, self.stream.where
        request = h11.Request(method=send.method, target=send.target.target, headers=_headers(send))
        data = conn.send(request) + conn.send(h11.EndOfMessage())
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
        return Response(head.status_code, headers, data_out, body.size), reusable

    def _read_head(self, send: Send, reused: bool) -> h11.Response:
        conn = self.h11
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
            send.method,
            status,
            headers.get("content-encoding"),
            headers.get("content-length"),
        )
        conn = self.h11
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
        if len(idle) >= self._per_key:
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
        key = (t.scheme, t.host, t.port)
        conn = self.pool.get(key)
        if conn is not None:
            try:
                return self._exchange(conn, send, reused=True)
            except _Stale:
                pass  # the pool's race, not the server's answer: once more, fresh
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
