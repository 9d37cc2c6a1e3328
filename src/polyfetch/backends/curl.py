"""The curl backend: libcurl's multi interface (pycurl), driven from the greenlet hub.

Theory of operation. Items run as tasks on the same `Hub` as the greenlet
backend (its semaphores, sleep and wait_future, its `HubGroup`); only one
attempt is different. `perform` takes a reused easy handle, sets the
attempt's URL, headers and connect timeout, adds it to a ``CurlMulti`` (one
per 512 in flight, see `Multis`) and parks the task. libcurl tells us which sockets it waits on
(``M_SOCKETFUNCTION``: they go in an epoll of the multi's own, one
descriptor in the hub's selector) and when it next needs a turn
(``M_TIMERFUNCTION``: one hub timer, or the hub's next turn for "now"); the
hub calls ``socket_action`` when either fires, and when the count of running
transfers drops, the finished ones' tasks are woken. So libcurl does the
connection pool, TLS, HTTP/1.1 and HTTP/2 framing in C, and one Python call
moves every transfer whose socket is ready.

Semantics kept ours, not libcurl's: no redirects (``FOLLOWLOCATION`` off,
the planner follows them), no decoding (no ``ACCEPT_ENCODING``: raw bytes go
to `polyfetch._body.Body`, which applies ``max_bytes`` on the wire and after
decoding with its bomb guard, and the HEAD/204/304 rule), the header-size cap
counted here. The total deadline and the read timeout are the task's park
timer: at the deadline the transfer is removed (`TotalTimeout`); the read
timeout is the time since libcurl last handed us a header line or a body
chunk, counted from when the request was sent (``PRETRANSFER_TIME``), because
libcurl's own ``LOW_SPEED_*`` options count in whole seconds. The connect
timeout (TCP and TLS) is libcurl's ``CONNECTTIMEOUT_MS``. A cancelled task's
``finally`` removes its handle, which closes a half-used connection.
"""

from __future__ import annotations

import contextlib
import re
import select
import time
from operator import attrgetter
from typing import TYPE_CHECKING, Any

import pycurl
from greenlet import getcurrent

from polyfetch._body import Body, response_body
from polyfetch._plan import Response, Send, total_timeout
from polyfetch._rlimit import raise_nofile_limit
from polyfetch._tls import client_context
from polyfetch.backends.greenlet import GreenletBackend, HubGroup
from polyfetch.backends.hub import Hub, Waiter
from polyfetch.errors import (
    BackendError,
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
from polyfetch.settings import MAX_HEADER_BYTES, Settings

if TYPE_CHECKING:
    from polyfetch._proxy import Proxy
    from polyfetch._runner import Runner

_HEADER_LISTS_MAX = 1024
#: Transfers in flight per ``CurlMulti``. libcurl looks for a reusable connection by walking
#: the pool's connections to the host, busy ones too: at 5,000 in flight that walk was a third
#: of the client's CPU. More multis, each with its own pool, keep every walk this short.
_PER_MULTI = 512
_FEATURES = pycurl.version_info()[4]
HTTP2_SUPPORTED = bool(_FEATURES & pycurl.VERSION_HTTP2)
HTTP3_SUPPORTED = bool(_FEATURES & getattr(pycurl, "VERSION_HTTP3", 0))
#: CURLOPT_SUPPRESS_CONNECT_HEADERS (libcurl 7.54; pycurl 7.49 has no name for it): the
#: proxy's answer to CONNECT is not passed to the header callback as if it were the response.
_SUPPRESS_CONNECT_HEADERS = getattr(pycurl, "SUPPRESS_CONNECT_HEADERS", 265)
_ASYNCH_DNS = bool(_FEATURES & pycurl.VERSION_ASYNCHDNS)

#: libcurl error codes -> our taxonomy (the rest: FetchError naming the code).
_ERRORS: dict[int, type[FetchError]] = {  # CURLE_* values: libcurl's stable ABI
    1: ProtocolError,  # UNSUPPORTED_PROTOCOL, e.g. "Received HTTP/0.9 when not allowed"
    3: InvalidURL,  # URL_MALFORMAT
    6: DNSError,  # COULDNT_RESOLVE_HOST
    7: ConnectError,  # COULDNT_CONNECT
    8: ProtocolError,  # WEIRD_SERVER_REPLY
    16: ProtocolError,  # HTTP2: the framing layer
    18: ReadError,  # PARTIAL_FILE: closed before Content-Length or the last chunk
    28: ConnectTimeout,  # OPERATION_TIMEDOUT: only CONNECTTIMEOUT_MS is libcurl's to time
    35: TLSError,  # SSL_CONNECT_ERROR
    52: ReadError,  # GOT_NOTHING
    55: ReadError,  # SEND_ERROR
    56: ReadError,  # RECV_ERROR (bad chunked framing too: see _error)
    60: TLSError,  # PEER_FAILED_VERIFICATION
    77: TLSError,  # SSL_CACERT_BADFILE
    92: ReadError,  # HTTP2_STREAM: the server reset our stream
    95: ProtocolError,  # HTTP3
    96: ConnectError,  # QUIC_CONNECT_ERROR
    100: ProtocolError,  # TOO_LARGE: a header line over libcurl's own limit
}
#: What to say when libcurl gives a code but no message.
_PLAIN = {100: "response header too large"}


_monotonic = time.monotonic
#: libcurl's POLL_NONE/IN/OUT/INOUT as epoll events
_EPOLL_EVENTS = (0, select.EPOLLIN, select.EPOLLOUT, select.EPOLLIN | select.EPOLLOUT)
_NOT_OUT = ~select.EPOLLOUT
_NOT_IN = ~select.EPOLLIN
_AFTER = re.compile(r" after \d+ ms")
_STATUS_407 = re.compile(r"(?<![\d:])407(?!\d)")


def _error(code: int, message: str, send: Send) -> FetchError:
    """libcurl's result code and message as a `polyfetch.errors` error."""
    where = f"{send.target.host}:{send.target.port}"
    if send.proxy is not None:
        found = _proxy_error(code, message)
        if found is not None:
            return found
    cls = _ERRORS.get(code)
    # "after 10 ms" in libcurl's messages would make two runs' records differ
    message = _AFTER.sub("", message) if message else _PLAIN.get(code, "no message")
    if cls is ReadError and "chunk" in message.lower():  # bad chunked framing is RECV_ERROR
        cls = ProtocolError
    if cls is None:
        return FetchError(f"libcurl error {code} from {where}: {message}")
    return cls(f"{message} ({where})")


class _Handle:
    """One reusable easy handle and the state of the attempt it carries."""

    __slots__ = (
        "body",
        "code",
        "connect_timeout",
        "curl",
        "done",
        "error",
        "header_list",
        "headers",
        "last",
        "lines",
        "message",
        "mode",
        "proxy",
        "raw",
        "send",
        "settings",
        "started",
        "status",
        "version",
        "waiter",
    )

    def __init__(self, settings: Settings, base: list[tuple[int, Any]]) -> None:
        self.settings = settings
        curl = self.curl = pycurl.Curl()
        for option, value in base:
            curl.setopt(option, value)
        curl.setopt(pycurl.WRITEFUNCTION, self._write)
        curl.setopt(pycurl.HEADERFUNCTION, self._header)
        curl.handle = self  # type: ignore[attr-defined]
        self.mode: tuple[str, bool] = ("GET", False)  #: the method set, and whether a body
        #: the options last set on this handle, set again only when an attempt's differ
        self.header_list: list[str] | None = None
        self.connect_timeout = -1.0
        self.proxy: Proxy | None = None  #: the proxy set on the handle (PROXY "" : none)
        self.send: Send | None = None  #: the attempt in flight
        self.waiter: Waiter | None = None
        self.lines: list[bytes] = []  #: every header line libcurl handed over, as it came
        self.clear()

    def clear(self) -> None:
        """Forget the last attempt (keeps no body or headers alive between attempts)."""
        self.body: Body | None = None
        self.error: FetchError | None = None
        self.lines.clear()
        self.raw: list[tuple[str, str]] = []
        self.headers: dict[str, str] = {}
        self.status = self.code = 0
        self.version: str | None = None
        self.message = ""
        self.done = False
        self.started = self.last = 0.0

    def _header(self, line: bytes) -> None:
        # Kept to the least: the lines are parsed once, when the body starts or the transfer
        # ends (`_head`); libcurl itself refuses a head over 300 KiB (CURLE_TOO_LARGE).
        self.last = _monotonic()
        self.lines.append(line)

    def _head(self) -> Body | None:
        """The final head's status, headers and `Body`, from the lines so far (1xx heads and
        trailers skipped); None, with ``error`` set if it is bad, while it is incomplete."""
        lines = self.lines
        try:  # the common case: one head, CRLF line ends, no 1xx before it
            end = lines.index(b"\r\n")
            first = lines[0]
        except (ValueError, IndexError):
            end = -1
        version, _, rest = first.partition(b" ") if end > 0 else (b"", b"", b"")
        code = rest[:3]
        if version.startswith(b"HTTP/") and code.isdigit() and code[0] != 49:  # not 1xx
            start = 0
            self.version = version[5:].decode("ascii", "replace")
            self.status = int(code)
        else:
            start, end = self._final_head()
            if end < 0:
                return None  # no final head yet
        if sum(map(len, lines[: end + 1])) > MAX_HEADER_BYTES:
            self.error = ProtocolError(
                f"malformed response: header block over {MAX_HEADER_BYTES} bytes"
            )
            return None
        raw = self.raw
        headers = self.headers
        for line in lines[start + 1 : end]:
            name, sep, value = line.decode("latin-1").partition(":")
            if sep:
                name, value = name.strip(), value.strip()
                raw.append((name, value))
                key = name.lower()
                headers[key] = f"{headers[key]}, {value}" if key in headers else value
        assert self.send is not None
        try:
            body = self.body = response_body(
                self.settings,
                self.send,
                self.status,
                headers.get("content-encoding"),
                headers.get("content-length"),
            )
        except FetchError as exc:  # TooLarge from the announced length
            self.error = exc
            return None
        return body

    def _final_head(self) -> tuple[int, int]:
        """Where the final head's status line and blank line are in ``lines`` (after any 1xx
        heads; LF-only line ends too), and its status and version set; (-1, -1) if not yet."""
        start = -1
        for i, line in enumerate(self.lines):
            if line.startswith(b"HTTP/"):
                parts = line.split(None, 2)
                self.version = parts[0][5:].decode("ascii", "replace")
                self.status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
                start = i
            elif (line == b"\r\n" or line == b"\n") and start >= 0 and self.status >= 200:
                return start, i
        return -1, -1

    def _write(self, data: bytes) -> int | None:
        self.last = _monotonic()
        body = self.body
        if body is None:
            body = self._head() if self.error is None else None
            if body is None:  # a bad head, or bytes before a complete one: refuse, not guess
                if self.error is None:
                    self.error = ProtocolError("response body before its head")
                return 0
        try:
            body.feed(data)
        except FetchError as exc:  # TooLarge, a corrupt encoding: abort the transfer
            self.error = exc
            return 0
        return None

    def outcome(self, send: Send) -> Response | FetchError:
        """The finished transfer as a `Response` or an error."""
        if self.error is not None:
            return self.error
        if self.code:
            return _error(self.code, self.message, send)
        body = self.body
        if body is None:  # no body came: HEAD, 204, 304, an empty one - or no complete head
            body = self._head()
            if body is None:
                if self.error is not None:
                    return self.error
                if self.status >= 200 and not any(b":" in line for line in self.lines[1:]):
                    return ProtocolError(f"incomplete response head from {send.target.authority}")
                return ReadError(f"{send.target.authority} closed the connection mid-response")
        data = body.finish()
        return Response(self.status, self.headers, data, body.size, self.raw, self.version)


class _Due(Waiter):
    """A hub timer (or a ready-queue turn) at which libcurl's multi timer may be due."""

    __slots__ = ("driver",)

    def __init__(self, driver: Multi) -> None:
        self.driver = driver
        self.armed = True

    def fire(self, value: object) -> None:
        if self.armed:
            self.armed = False
            self.driver.due(self)


class Multi:
    """One ``CurlMulti``, its easy handles, and one attempt at a time per task."""

    def __init__(self, hub: Hub, settings: Settings, connections: int) -> None:
        """``connections``: how many idle connections its pool keeps."""
        self.hub = hub
        self.settings = settings
        #: libcurl's sockets live in an epoll of their own, itself one descriptor in the hub's
        #: selector: a readiness costs one ``poll(0)`` for every socket ready, not a selector
        #: key each, and a socket stays registered while its connection idles in the pool
        #: (see `_on_socket`), so a reused connection costs one epoll_ctl, not two.
        self._poll = select.epoll()
        self._watched: dict[int, int] = {}  #: fd -> epoll events libcurl wants (0: idle)
        hub.add_driver(self._poll.fileno(), self)
        self._due: float | None = None  #: when libcurl's multi timer is due (None: not set)
        self._timer: _Due | None = None  #: the hub timer armed for the earliest due time
        self._timer_at = 0.0
        self._kick: _Due | None = None  #: a ready-queue turn queued for a due-now timer
        self.in_flight = 0  #: transfers in the multi handle not yet seen finished
        self._free: list[_Handle] = []
        self._all: list[_Handle] = []
        self._header_lists: dict[tuple[tuple[str, str], ...], list[str]] = {}
        self._base = _base_options(settings)
        m = self.multi = pycurl.CurlMulti()
        m.setopt(pycurl.M_SOCKETFUNCTION, self._on_socket)
        m.setopt(pycurl.M_TIMERFUNCTION, self._on_timer)
        # idle connections kept: as many as may be busy at once (libcurl's default is 4x handles)
        m.setopt(pycurl.M_MAXCONNECTS, connections)
        if settings.http2 or settings.http3:
            m.setopt(pycurl.M_PIPELINING, pycurl.PIPE_MULTIPLEX)

    # -- libcurl's callbacks (run inside socket_action / add_handle / remove_handle) -------

    def _on_socket(self, what: int, fd: int, multi: object, data: object) -> None:
        watched, poll = self._watched, self._poll
        if what == pycurl.POLL_REMOVE:
            # Left registered: when its connection is reused, libcurl asks again and one
            # modify does it. Readiness meanwhile (the server closed it) unregisters it.
            if fd in watched:
                watched[fd] = 0
            return
        events = _EPOLL_EVENTS[what & 3]
        known = fd in watched
        watched[fd] = events
        if known:
            try:
                poll.modify(fd, events)
                return
            except FileNotFoundError:  # closed since it idled, and the number is a new socket's
                pass
        poll.register(fd, events)

    def _on_timer(self, ms: int) -> None:
        """libcurl's multi timer: "call socket_action(TIMEOUT) in ``ms``" (-1: never). Kept
        lazily: one hub timer at the earliest due time, checked again when it fires."""
        if ms < 0:
            self._due = None
            return
        if ms == 0:  # the common case (a transfer added): the hub's next turn
            self._due = 0.0
            if self._kick is None:
                self._kick = _Due(self)
                self.hub.wake(self._kick)
            return
        due = self._due = _monotonic() + ms / 1000
        self._arm(due)

    def _arm(self, due: float) -> None:
        timer = self._timer
        if timer is not None:
            if timer.armed and self._timer_at <= due:
                return  # fires first, and looks again
            self.hub.disarm(timer)
        timer = self._timer = _Due(self)
        self._timer_at = due
        self.hub.call_at(due, timer)

    def due(self, fired: _Due) -> None:
        """A kick or the hub timer came up: run libcurl's timeouts if they are due now."""
        if fired is self._kick:
            self._kick = None
        elif fired is self._timer:
            self._timer = None
        due = self._due
        if due is None:
            return
        if due and due > _monotonic():
            self._arm(due)  # moved later since this timer was armed
            return
        self._due = None
        self.act(pycurl.SOCKET_TIMEOUT, 0)

    def fire(self, mask: int) -> None:
        """The hub's selector: some of libcurl's sockets are ready."""
        watched = self._watched
        for fd, events in self._poll.poll(0):
            if watched.get(fd):
                # the selectors' bits (READ 1, WRITE 2) are libcurl's CSELECT_IN/OUT;
                # ERR/HUP count as both, as the selectors module counts them
                self.act(fd, (events & _NOT_OUT and 1) | (events & _NOT_IN and 2))
            else:  # idle in libcurl's pool and now readable (closed), or long gone
                watched.pop(fd, None)
                with contextlib.suppress(OSError):
                    self._poll.unregister(fd)

    # -- driving ----------------------------------------------------------------------------

    def act(self, fd: int, mask: int) -> None:
        """Let libcurl move ``fd`` (or its timers), then wake the tasks whose transfers ended."""
        _, running = self.multi.socket_action(fd, mask)
        if running < self.in_flight:
            self._collect()

    def _collect(self) -> None:
        while True:
            queued, ok, failed = self.multi.info_read()
            for curl in ok:
                self._finished(curl.handle, 0, "")
            for curl, code, message in failed:
                self._finished(curl.handle, code, message)
            if not queued:
                return

    def _finished(self, h: _Handle, code: int, message: str) -> None:
        if h.done:
            return
        h.done = True
        h.code, h.message = code, message
        self.in_flight -= 1
        if h.waiter is not None:
            self.hub.wake(h.waiter)

    # -- one attempt ------------------------------------------------------------------------

    def attempt(self, send: Send) -> Response | FetchError:
        """One transfer, parked on the hub until it ends, the read timeout or the deadline."""
        h = self._free.pop() if self._free else self._new_handle()
        curl = h.curl
        added = False
        try:
            curl.setopt(pycurl.URL, send.target.url)
            header_list = self._header_list(send.headers)
            if header_list is not h.header_list:  # most attempts have their fetcher's headers
                curl.setopt(pycurl.HTTPHEADER, header_list)
                h.header_list = header_list
            if send.connect_timeout != h.connect_timeout:
                curl.setopt(pycurl.CONNECTTIMEOUT_MS, _ms(send.connect_timeout))
                h.connect_timeout = send.connect_timeout
            body = send.body
            mode = (send.method, body is not None)
            if mode != h.mode:
                self._set_method(curl, send.method, body)
                h.mode = mode
            elif body is not None:
                curl.setopt(pycurl.POSTFIELDSIZE, len(body))
                curl.setopt(pycurl.POSTFIELDS, body)
            if send.proxy is not h.proxy:  # plain attempts on a plain handle: one check
                _set_proxy(curl, send.proxy)
                h.proxy = send.proxy
            h.send = send
            h.started = h.last = time.monotonic()
            self.multi.add_handle(curl)
            added = True
            self.in_flight += 1
            return self._wait(h, send)
        finally:
            if added:
                if not h.done:
                    self.in_flight -= 1
                self.multi.remove_handle(curl)  # closes a half-used connection
            h.waiter = None
            h.clear()
            self._free.append(h)

    def _wait(self, h: _Handle, send: Send) -> Response | FetchError:
        hub, deadline, read_timeout = self.hub, send.deadline, send.read_timeout
        sent = False  # the request is out: from then on, silence counts as read time
        while True:
            h.waiter = waiter = Waiter(getcurrent())
            until = h.last + read_timeout
            if hub.park(waiter, until if until < deadline else deadline) or h.done:
                return h.outcome(send)
            now = time.monotonic()
            if now >= deadline:
                return total_timeout(send)
            if not sent:
                pretransfer = h.curl.getinfo(pycurl.PRETRANSFER_TIME)
                if not pretransfer:  # still connecting: CONNECTTIMEOUT_MS rules that phase
                    h.last = now
                    continue
                sent = True
                h.last = max(h.last, h.started + pretransfer)
            if now - h.last >= read_timeout:
                return ReadTimeout(
                    f"reading from {send.target.host}:{send.target.port} took longer "
                    f"than {read_timeout:g} s"
                )

    def _new_handle(self) -> _Handle:
        h = _Handle(self.settings, self._base)
        self._all.append(h)
        return h

    @staticmethod
    def _set_method(curl: Any, method: str, body: bytes | None) -> None:
        """The request line's method and the body. NOBODY for HEAD; HTTPGET turns NOBODY and
        POST off again; a body (POSTFIELDS: pycurl holds a reference to the bytes, which the Send
        keeps alive for the transfer) has its size set first, so bytes with NULs go whole; any
        other method name rides on CUSTOMREQUEST."""
        curl.unsetopt(pycurl.CUSTOMREQUEST)
        if method == "HEAD":
            curl.setopt(pycurl.NOBODY, 1)
            return
        curl.setopt(pycurl.HTTPGET, 1)
        if body is not None:
            curl.setopt(pycurl.POSTFIELDSIZE, len(body))
            curl.setopt(pycurl.POSTFIELDS, body)
        if method != ("POST" if body is not None else "GET"):
            curl.setopt(pycurl.CUSTOMREQUEST, method)

    def _header_list(self, headers: tuple[tuple[str, str], ...]) -> list[str]:
        found = self._header_lists.get(headers)
        if found is None:
            # "Name:" would remove a header of libcurl's own; "Name;" sends it empty
            found = [f"{k}: {v}" if v else f"{k};" for k, v in headers]
            found.append("Expect:")  # never wait for 100-continue
            if not any(k.lower() == "content-type" for k, _ in headers):
                found.append("Content-Type:")  # no form type of libcurl's own for a body
            if len(self._header_lists) >= _HEADER_LISTS_MAX:
                self._header_lists.clear()
            self._header_lists[headers] = found
        return found

    def close(self) -> None:
        """Close every easy handle, then the multi handle and with it every connection."""
        for h in self._all:
            h.curl.close()
        self._all.clear()
        self._free.clear()
        for timer in (self._timer, self._kick):
            if timer is not None:
                self.hub.disarm(timer)
        self._timer = self._kick = None
        self._due = None
        self.multi.close()
        if not self.hub.closed:
            self.hub.remove_driver(self._poll.fileno())
        self._poll.close()
        self._watched.clear()


def _set_proxy(curl: Any, proxy: Proxy | None) -> None:
    """Point the handle at ``proxy`` (libcurl speaks every scheme we take, socks5h:// too),
    or at none: PROXY "" also stops libcurl from reading the environment (the core did)."""
    if proxy is None:
        curl.setopt(pycurl.PROXY, "")
        curl.unsetopt(pycurl.PROXYUSERNAME)
        curl.unsetopt(pycurl.PROXYPASSWORD)
        return
    curl.setopt(pycurl.PROXY, proxy.url)
    if proxy.username is not None:
        curl.setopt(pycurl.PROXYUSERNAME, proxy.username)
        curl.setopt(pycurl.PROXYPASSWORD, proxy.password or "")
        curl.setopt(pycurl.PROXYAUTH, pycurl.HTTPAUTH_BASIC)
    else:
        curl.unsetopt(pycurl.PROXYUSERNAME)
        curl.unsetopt(pycurl.PROXYPASSWORD)


def _proxy_error(code: int, message: str) -> FetchError | None:
    """libcurl's proxy failures (the core names the proxy and drops its credentials)."""
    text = message or "no message"
    if code == 5:  # COULDNT_RESOLVE_PROXY
        return ProxyError(f"cannot resolve the proxy: {text}")
    low = text.lower()
    # COULDNT_CONNECT (to the proxy, or a CONNECT answered non-2xx), RECV_ERROR, PROXY (SOCKS)
    if code in (7, 56, 97) and ("tunnel" in low or "socks" in low or "proxy" in low):
        # the status 407, not a port like 40787 in "Failed to connect to localhost:40787"
        auth = _STATUS_407.search(text) is not None or "rejected" in low or "auth" in low
        return (ProxyAuthError if auth else ProxyError)(_AFTER.sub("", text))
    return None


def _base_options(s: Settings) -> list[tuple[int, Any]]:
    """The options every easy handle keeps for its whole life."""
    opts: list[tuple[int, Any]] = [
        (pycurl.NOSIGNAL, 1),
        (pycurl.FOLLOWLOCATION, 0),  # the planner decides redirects
        (pycurl.TCP_NODELAY, 1),
        (pycurl.BUFFERSIZE, 64 * 1024),
        (pycurl.PROTOCOLS, pycurl.PROTO_HTTP | pycurl.PROTO_HTTPS),
        (pycurl.SSL_VERIFYPEER, 1 if s.verify else 0),
        (pycurl.SSL_VERIFYHOST, 2 if s.verify else 0),
        # Proxies are the core's choice (polyfetch._proxy), per attempt (`_set_proxy`): none
        # from the environment, no bypass list of libcurl's, no CONNECT answer in the headers.
        (pycurl.PROXY, ""),
        (pycurl.NOPROXY, ""),
        (_SUPPRESS_CONNECT_HEADERS, 1),
        (pycurl.PROXY_SSL_VERIFYPEER, 1 if s.verify else 0),
        (pycurl.PROXY_SSL_VERIFYHOST, 2 if s.verify else 0),
    ]
    if s.verify and s.ca_bundle:
        opts.append((pycurl.CAINFO, s.ca_bundle))
        opts.append((pycurl.PROXY_CAINFO, s.ca_bundle))
    if s.http3 or s.http2:
        # PIPEWAIT: a transfer waits for a connection being made to the same host rather than
        # opening its own, so that concurrent requests multiplex over one connection
        version = pycurl.CURL_HTTP_VERSION_3 if s.http3 else pycurl.CURL_HTTP_VERSION_2TLS
        opts += [(pycurl.HTTP_VERSION, version), (pycurl.PIPEWAIT, 1)]
    else:  # libcurl's default is 2TLS: stay on HTTP/1.1 like the other backends
        opts.append((pycurl.HTTP_VERSION, pycurl.CURL_HTTP_VERSION_1_1))
    return opts


class Multis:
    """Enough `Multi` for the fetcher's concurrency (`_PER_MULTI` each); an attempt goes to the
    least busy, so no pool holds more than its share of the connections. Pools share nothing:
    past 512 in flight, HTTP/2 multiplexes over one connection per host in each pool."""

    def __init__(self, hub: Hub, settings: Settings) -> None:
        count = -(-max(settings.concurrency, 1) // _PER_MULTI)
        share = -(-max(settings.concurrency, settings.per_host) // count)
        self.multis = [Multi(hub, settings, share) for _ in range(count)]
        self._one = self.multis[0] if count == 1 else None

    def attempt(self, send: Send) -> Response | FetchError:
        """`Multi.attempt` on the multi with the fewest transfers in flight."""
        multi = self._one or min(self.multis, key=attrgetter("in_flight"))
        return multi.attempt(send)

    def close(self) -> None:
        """Close every multi and its handles."""
        for multi in self.multis:
            multi.close()


class CurlGroup(HubGroup):
    """`HubGroup` whose attempts are libcurl transfers."""

    def perform(self, send: Send) -> Response | FetchError:
        """One transfer (`Multi.attempt`); never raises but GreenletExit."""
        try:
            return self._client.attempt(send)  # type: ignore[attr-defined, no-any-return]
        except FetchError as exc:
            return exc
        except pycurl.error as exc:  # a setopt libcurl refused
            return unexpected(exc)


class CurlBackend(GreenletBackend):
    """libcurl's multi interface on the greenlet hub; see the module docstring."""

    name = "curl"
    https_proxy = True  # libcurl does TLS to the proxy (and TLS in it) itself
    http_versions = frozenset({"2", "3"})  # when the bundled libcurl has them (checked at start)

    def start(self) -> None:
        """Check libcurl's features, build the hub and the multi handle; raise the fd limit."""
        s = self.settings
        if s.http2 and not HTTP2_SUPPORTED:
            raise BackendError(f"http2=True, but this libcurl has no HTTP/2: {pycurl.version}")
        if s.http3 and not HTTP3_SUPPORTED:
            raise BackendError(f"http3=True, but this libcurl has no HTTP/3: {pycurl.version}")
        if not _ASYNCH_DNS:
            raise BackendError(
                f"this libcurl resolves names synchronously (no AsynchDNS), which would block "
                f"every transfer: {pycurl.version}"
            )
        client_context(s.verify, s.ca_bundle)  # the same ConfigError for an unreadable CA bundle
        raise_nofile_limit()
        self.hub = Hub(s.concurrency)
        self.client = Multis(self.hub, s)  # type: ignore[assignment]
        self.groups: set[HubGroup] = set()

    def group(self, runner: Runner) -> CurlGroup:
        """A new group on this backend's hub."""
        self.hub.check_thread()
        return CurlGroup(self, runner)


def _ms(seconds: float) -> int:
    """Seconds as libcurl's milliseconds: at least 1 (0 means "no timeout"), at most a C long's
    worth that any platform takes (~24 days; ``inf`` included)."""
    return max(1, int(seconds * 1000)) if seconds < 2_000_000 else 2_000_000_000
