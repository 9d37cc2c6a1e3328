"""The request planner: what happens to one input item, decided without doing any IO.

Theory of operation (sans-IO, in the spirit of h11): a `Plan` is fed what just
happened - nothing yet, an attempt's `Response`, an attempt's `FetchError`, or
the end of a wait - and answers with the next action: `Send` an attempt,
`Wait` some seconds, or `Done` with the final `Result`. Retries, backoff with
jitter, ``Retry-After``, redirects and the request's total deadline are decided
here and only here; a backend performs single attempts and waits in its own
way. Time comes in as an argument, so tests drive a plan with a fake clock.

An item is a URL string (the fast path: nothing below costs it more than a type
check) or a `polyfetch.Request`, prepared once at the start (`request.prepare`):
its method and body, merged headers and its own settings. Methods outside
``retry_methods`` are retried only when the connection failed (nothing was
sent). Redirects follow RFC 9110 15.4 as browsers and urllib3 do: 301/302 turn
a POST into a GET and 303 anything but HEAD into a GET, dropping the body and
its headers; 307/308 keep method and body. With a cookie jar (`Cookies`), each
`Send` gets its Cookie header here and each `Response`'s Set-Cookie goes into
the jar here, redirect hops included, whatever the backend.

Every decision is logged at debug level on the ``polyfetch`` logger (attempt,
retry with its reason and wait, ``Retry-After``, redirect, rate wait, the end),
with the item's index and URL. Whether to log is asked once per item, in
`Plan.advance`'s first call: with logging off, a plan costs one check.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, ClassVar

from polyfetch import _url
from polyfetch._body import Store
from polyfetch._pace import Pacer
from polyfetch.errors import ConnectError, FetchError, TooManyRedirects, TotalTimeout
from polyfetch.request import Prepared, Request, prepare
from polyfetch.result import Result, item_url
from polyfetch.settings import Settings

log = logging.getLogger("polyfetch")

if TYPE_CHECKING:
    from polyfetch._cookies import Cookies
    from polyfetch._proxy import Proxies, Proxy

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
#: Headers that must not follow a redirect to another host.
_PRIVATE_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization", "host"})
#: Fetcher-level methods whose string items need no `Request` preparation.
_PLAIN_METHODS = ("GET", "HEAD")
#: Headers that describe a body, dropped with it when a redirect turns the request into a GET.
_BODY_HEADERS = frozenset({"content-length", "content-type", "content-encoding"})


@dataclass(frozen=True, slots=True)
class Send:
    """Perform one HTTP attempt; it must end (any way) by ``deadline``."""

    target: _url.Target
    method: str
    headers: tuple[tuple[str, str], ...]
    connect_timeout: float
    read_timeout: float
    deadline: float  #: monotonic time by which the attempt must give up with TotalTimeout
    # A URL string's attempts have no body and keep the response in memory: class attributes,
    # so building the Send of every plain attempt sets no more fields than it needs.
    #: The request body (its Content-Length is in ``headers``); see `RequestSend`.
    body: ClassVar[bytes | None] = None
    #: None: the response body goes to memory within the fetcher's max_bytes.
    store: ClassVar[Store | None] = None
    #: The proxy this attempt goes through (None: direct); see `RequestSend`.
    proxy: ClassVar[Proxy | None] = None


@dataclass(frozen=True, slots=True)
class RequestSend(Send):
    """A `Send` for a `Request` item, or through a proxy: with its body, where the response
    body goes and its proxy."""

    body: bytes | None = None  # type: ignore[misc]
    store: Store | None = None  # type: ignore[misc]
    proxy: Proxy | None = None  # type: ignore[misc]


@dataclass(frozen=True, slots=True)
class Wait:
    """Sleep this many seconds, then call `Plan.advance` with no outcome."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Done:
    """The item is finished; ``result`` is its one record."""

    result: Result


Action = Send | Wait | Done


@dataclass(slots=True)
class Response:
    """What a backend reports for an attempt that got a complete response."""

    status: int
    headers: dict[str, str]  #: names lower-cased (`lower_headers`), repeats joined with ", "
    body: bytes | None
    size: int
    #: Every header line as received, repeats apart: (name, value) pairs of str or latin-1
    #: bytes, in any case; `polyfetch.result.header_pairs` makes them `Result.header_list`.
    raw_headers: Iterable[tuple[str | bytes, str | bytes]] = ()
    http_version: str | None = None  #: "1.0", "1.1", "2" or "3", as the response said


def lower_headers(pairs: Iterable[tuple[str | bytes, str | bytes]]) -> dict[str, str]:
    """Response headers as one dict: names lower-cased, repeated headers joined with ", "."""
    out: dict[str, str] = {}
    for name, value in pairs:
        key = name.lower() if isinstance(name, str) else name.decode("latin-1").lower()
        val = value if isinstance(value, str) else value.decode("latin-1")
        out[key] = f"{out[key]}, {val}" if key in out else val
    return out


def total_timeout(send: Send) -> TotalTimeout:
    """The error for an attempt stopped at its deadline."""
    return TotalTimeout(f"request did not complete within its total timeout ({send.target.url})")


@dataclass(slots=True)
class Plan:
    """The life of one input item: ``advance(outcome, now)`` until it returns `Done`."""

    item: object
    index: int
    settings: Settings
    started: float
    rng: random.Random = field(default_factory=random.Random)
    #: The fetcher's per-host rate limit, shared by all its plans (None: no limit).
    pacer: Pacer | None = None
    #: The fetcher's cookie jar, shared by all its plans (None: no cookies).
    cookies: Cookies | None = None
    #: robots.txt's known verdict on a target (None: allowed, or not known yet), asked
    #: before an attempt's start is booked, so that a refused URL costs no place in the pace.
    gate: Callable[[_url.Target], FetchError | None] | None = None
    #: The fetcher's proxy chooser (None: every attempt goes direct), or the item's own.
    proxies: Proxies | None = None
    #: 1 + retries: a redirect hop is counted in ``redirects``, not here
    attempts: int = 0
    redirects: int = 0
    _target: _url.Target | None = None
    _headers: tuple[tuple[str, str], ...] = ()
    _last: Response | FetchError | None = None
    _paced: bool = False
    _hop: bool = False  #: the next Send follows a redirect: not another attempt
    #: Log this item's decisions: asked once, by the first `advance` (not set in __init__,
    #: where each field costs ~1k instructions per item).
    _debug: bool = field(init=False)
    #: A `Request` item, prepared (None for a URL string).
    _req: Prepared | None = None
    #: Where a `Request`'s body goes, when not to memory within the fetcher's max_bytes.
    store: Store | None = None

    @property
    def deadline(self) -> float:
        """When the whole request, retries and redirects included, must be over."""
        return self.started + self.settings.timeout

    def advance(self, outcome: Response | FetchError | None, now: float) -> Action:
        """Take what just happened (None at the start and after a `Wait`) and say what's next."""
        if self._target is None and outcome is None:
            self._debug = log.isEnabledFor(logging.DEBUG)
            return self._start(now)
        if outcome is None:
            return self._send(now)
        self._last = outcome
        if isinstance(outcome, FetchError):
            if (
                outcome.retryable
                and not isinstance(outcome, TotalTimeout)
                and (self._req is None or self._resendable(outcome))
            ):
                return self._retry(now, None, f"{outcome.kind} ({outcome.message})")
            return self._done(now)
        if self.cookies is not None:
            assert self._target is not None
            self.cookies.extract(self._target, self._headers, outcome.raw_headers)
        if outcome.status in REDIRECT_STATUSES and "location" in outcome.headers:
            return self._redirect(outcome.status, outcome.headers["location"], now)
        if outcome.status in self.settings.retry_statuses and (
            self._req is None or self._resendable(None)
        ):
            header = outcome.headers.get("retry-after")
            after = retry_after(header, now_wall())
            why = f"status {outcome.status}" + (f", Retry-After: {header}" if header else "")
            return self._retry(now, after, why)
        return self._done(now)

    def unsent(self, error: FetchError | None, now: float) -> Action:
        """The `Send` just returned was not performed (robots.txt): the attempt is not
        counted, and the item ends with ``error``, or with None is planned again (its pace
        changed: a new start is booked)."""
        self.attempts -= 1
        if error is None:
            self._paced = False
            return self._send(now)
        self._last = error
        return self._done(now)

    def _resendable(self, error: FetchError | None) -> bool:
        """Whether a `Request`'s method may be retried after ``error`` (None: a status)."""
        assert self._req is not None
        if self._req.method in self.settings.retry_methods:
            return True
        return isinstance(error, ConnectError)  # it never reached the server

    def failed(self, error: FetchError, now: float) -> Result:
        """The record for an item whose backend failed unexpectedly: never lose an item."""
        self._last = error
        if not hasattr(self, "_debug"):  # failed before its first advance
            self._debug = False
        return self._done(now).result

    def _start(self, now: float) -> Action:
        item = self.item
        try:
            if type(item) is not str and isinstance(item, Request):
                self._prepare(item)
            elif self.settings.method not in _PLAIN_METHODS:  # a body, and the retry rules
                self._prepare(Request(item))  # type: ignore[arg-type]
            else:
                self._target = _url.parse(item)
                self._headers = self.settings.request_headers()
        except FetchError as exc:
            self._last = exc
            return self._done(now)
        assert self._target is not None
        if self._target.authorization and not _has(self._headers, "authorization"):
            self._headers += (("Authorization", self._target.authorization),)
        return self._send(now)

    def _prepare(self, item: Request) -> None:
        req = self._req = prepare(item, self.settings)
        self.settings = req.settings
        self._target = _url.parse(req.url)
        self._headers = req.headers
        if item.proxy is not None:
            from polyfetch._proxy import for_item

            self.proxies = for_item(item.proxy, self.proxies)
        if item.save_to is not None:
            self.store = Store(item.save_max_bytes, item.save_to)
        elif item.max_bytes is not None:
            self.store = Store(item.max_bytes)

    def _send(self, now: float) -> Action:
        assert self._target is not None
        if self.gate is not None:
            refused = self.gate(self._target)
            if refused is not None:
                self._last = refused
                return self._done(now)
        left = self.deadline - now
        if left <= 0:
            self._last = TotalTimeout(f"no time left of the {self.settings.timeout:g} s timeout")
            return self._done(now)
        if self.pacer is not None and not self._paced:
            delay = self.pacer.reserve(self._target.host_key, now)
            if delay > 0:
                if delay >= left:
                    self._last = TotalTimeout(
                        f"the --rate limit for {self._target.host} leaves no time to send"
                    )
                    return self._done(now)
                self._paced = True  # this booked start is ours: don't book another after the wait
                if self._debug:
                    self._log("rate limit for %s: waiting %.3f s", self._target.host, delay)
                return Wait(delay)
        self._paced = False
        hop, self._hop = self._hop, False
        if not hop:
            self.attempts += 1
        proxy = (
            None
            if self.proxies is None
            else self.proxies.choose(self._target.scheme, self._target.host)
        )
        if self._debug:
            what = f"redirect {self.redirects}" if hop else f"attempt {self.attempts}"
            method = self._req.method if self._req is not None else self.settings.method
            self._log("%s: %s %s", what, method, self._target.url)
            if self.proxies is not None:
                self._log("via %s", proxy.url if proxy is not None else "no proxy (no_proxy)")
        s = self.settings
        headers = self._headers
        if self.cookies is not None:
            headers = self.cookies.add_header(self._target, headers)
        req = self._req
        if req is None and self.store is None and proxy is None:
            return Send(
                target=self._target,
                method=s.method,
                headers=headers,
                connect_timeout=min(s.connect_timeout, left),
                read_timeout=min(s.read_timeout, left),
                deadline=self.deadline,
            )
        return RequestSend(
            target=self._target,
            method=req.method if req is not None else s.method,
            headers=headers,
            connect_timeout=min(s.connect_timeout, left),
            read_timeout=min(s.read_timeout, left),
            deadline=self.deadline,
            body=req.body if req is not None else None,
            store=self.store,
            proxy=proxy,
        )

    def _retry(self, now: float, after: float | None, why: str) -> Action:
        if self.attempts > self.settings.retries:
            if self._debug:
                n = self.settings.retries
                self._log("not retried after %s: %d of %d retries used", why, n, n)
            return self._done(now)
        delay = after if after is not None else self._backoff()
        if now + delay >= self.deadline:
            if self._debug:
                self._log("not retried after %s: a %.2f s wait would pass the deadline", why, delay)
            return self._done(now)  # waiting would outlive the request: report what we have
        if self._debug:
            source = "Retry-After" if after is not None else "backoff"
            self._log("retry %d after %s: waiting %.3f s (%s)", self.attempts, why, delay, source)
        return Wait(delay)

    def _backoff(self) -> float:
        s = self.settings
        ceiling = min(s.max_backoff, s.backoff * 2 ** (self.attempts - 1))
        return ceiling / 2 + self.rng.uniform(0, ceiling / 2)  # "equal jitter"

    def _redirect(self, status: int, location: str, now: float) -> Action:
        assert self._target is not None
        if self.redirects >= self.settings.max_redirects:
            self._last = TooManyRedirects(
                f"more than {self.settings.max_redirects} redirects (last to {location!r})"
            )
            return self._done(now)
        try:
            target = _url.join(self._target, location)
        except FetchError as exc:
            self._last = exc
            return self._done(now)
        if target.host != self._target.host:
            self._headers = tuple(h for h in self._headers if h[0].lower() not in _PRIVATE_HEADERS)
        req = self._req
        if req is not None and (
            (status == 303 and req.method != "HEAD")
            or (status in (301, 302) and req.method == "POST")
        ):
            self._req = replace(req, method="GET", body=None)
            self._headers = tuple(h for h in self._headers if h[0].lower() not in _BODY_HEADERS)
        if target.authorization and not _has(self._headers, "authorization"):
            self._headers += (("Authorization", target.authorization),)
        self.redirects += 1
        self._hop = True
        if self._debug:
            self._log("status %s: redirected to %s", status, target.url)
        self._target = target
        return self._send(now)

    def _log(self, message: str, *args: object) -> None:
        """One debug line about this item, prefixed with its index and URL."""
        log.debug("item %d %s: " + message, self.index, item_url(self.item), *args)

    def _done(self, now: float) -> Done:
        last = self._last
        if self._debug:
            outcome = (
                f"status {last.status}"
                if isinstance(last, Response)
                else f"{last.kind}: {last.message}"
                if last is not None
                else "?"
            )
            self._log("done in %.3f s: %s", now - self.started, outcome)
        item = self.item
        if type(item) is str:
            url, meta = item, None
        else:
            url = _item_url(item)
            meta = item.meta if isinstance(item, Request) else None
        target = self._target
        # Keyword arguments written out, not a shared dict: this runs once per item.
        if isinstance(last, Response):
            assert target is not None
            result = Result(
                url=url,
                index=self.index,
                final_url=target.url,
                status=last.status,
                headers=last.headers,
                body=last.body,
                size=last.size,
                elapsed=now - self.started,
                attempts=self.attempts,
                redirects=self.redirects,
                meta=meta,
                raw_headers=last.raw_headers,
                http_version=last.http_version,
            )
        else:
            result = Result(
                url=url,
                index=self.index,
                final_url=target.url if target else None,
                elapsed=now - self.started,
                attempts=self.attempts,
                redirects=self.redirects,
                error=_untraced(last) if last is not None else None,
                meta=meta,
            )
        return Done(result)


def _untraced(error: FetchError) -> FetchError:
    """``error`` with no traceback, nor any on the exceptions it was raised from: a record
    outlives the stack its error was raised on, and a traceback keeps that stack's frames and
    their locals. Since 3.12 a finished coroutine's frame also keeps, through ``f_back``, the
    event loop's frames of that moment: a result kept by the step that drives the loop (a sync
    wrapper calling ``asyncio.Runner.run`` per item) then kept every earlier result alive."""
    pending: list[BaseException] = [error]
    for _ in range(16):  # a chain is short; a cycle (a context set by hand) must end
        if not pending:
            break
        exc = pending.pop()
        exc.__traceback__ = None
        pending.extend(e for e in (exc.__cause__, exc.__context__) if e is not None)
    return error


def _item_url(item: object) -> str:
    """`Result.url` of an item that is not a string: a `Request`'s URL, else its repr."""
    if isinstance(item, Request) and isinstance(item.url, str):
        return item.url
    return item_url(item)


def _has(headers: tuple[tuple[str, str], ...], name: str) -> bool:
    return any(k.lower() == name for k, _ in headers)


def now_wall() -> float:
    """Wall-clock time, for HTTP-date ``Retry-After`` values."""
    return datetime.now(UTC).timestamp()


def retry_after(value: str | None, wall_now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or HTTP-date), else None."""
    if not value:
        return None
    import email.utils  # imports socket: kept out of `import polyfetch` (gevent patches later)

    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - wall_now)
