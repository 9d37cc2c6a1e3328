"""The request planner: what happens to one input item, decided without doing any IO.

Theory of operation (sans-IO, in the spirit of h11): a `Plan` is fed what just
happened - nothing yet, an attempt's `Response`, an attempt's `FetchError`, or
the end of a wait - and answers with the next action: `Send` an attempt,
`Wait` some seconds, or `Done` with the final `Result`. Retries, backoff with
jitter, ``Retry-After``, redirects and the request's total deadline are decided
here and only here; a backend performs single attempts and waits in its own
way. Time comes in as an argument, so tests drive a plan with a fake clock.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from polyfetch import _url
from polyfetch._pace import Pacer
from polyfetch.errors import FetchError, TooManyRedirects, TotalTimeout
from polyfetch.result import Result, item_url
from polyfetch.settings import RETRY_STATUSES, Settings

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
#: Headers that must not follow a redirect to another host.
_PRIVATE_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization", "host"})


@dataclass(frozen=True, slots=True)
class Send:
    """Perform one HTTP attempt; it must end (any way) by ``deadline``."""

    target: _url.Target
    method: str
    headers: tuple[tuple[str, str], ...]
    connect_timeout: float
    read_timeout: float
    deadline: float  #: monotonic time by which the attempt must give up with TotalTimeout


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
    attempts: int = 0
    redirects: int = 0
    _target: _url.Target | None = None
    _headers: tuple[tuple[str, str], ...] = ()
    _last: Response | FetchError | None = None
    _paced: bool = False

    @property
    def deadline(self) -> float:
        """When the whole request, retries and redirects included, must be over."""
        return self.started + self.settings.timeout

    def advance(self, outcome: Response | FetchError | None, now: float) -> Action:
        """Take what just happened (None at the start and after a `Wait`) and say what's next."""
        if self._target is None and outcome is None:
            return self._start(now)
        if outcome is None:
            return self._send(now)
        self._last = outcome
        if isinstance(outcome, FetchError):
            if outcome.retryable and not isinstance(outcome, TotalTimeout):
                return self._retry(now, None)
            return self._done(now)
        if outcome.status in REDIRECT_STATUSES and "location" in outcome.headers:
            return self._redirect(outcome.headers["location"], now)
        if outcome.status in RETRY_STATUSES:
            return self._retry(now, retry_after(outcome.headers.get("retry-after"), now_wall()))
        return self._done(now)

    def failed(self, error: FetchError, now: float) -> Result:
        """The record for an item whose backend failed unexpectedly: never lose an item."""
        self._last = error
        return self._done(now).result

    def _start(self, now: float) -> Action:
        try:
            self._target = _url.parse(self.item)
        except FetchError as exc:
            self._last = exc
            return self._done(now)
        self._headers = self.settings.request_headers()
        if self._target.authorization and not _has(self._headers, "authorization"):
            self._headers += (("Authorization", self._target.authorization),)
        return self._send(now)

    def _send(self, now: float) -> Action:
        assert self._target is not None
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
                return Wait(delay)
        self._paced = False
        self.attempts += 1
        s = self.settings
        return Send(
            target=self._target,
            method=s.method,
            headers=self._headers,
            connect_timeout=min(s.connect_timeout, left),
            read_timeout=min(s.read_timeout, left),
            deadline=self.deadline,
        )

    def _retry(self, now: float, after: float | None) -> Action:
        if self.attempts > self.settings.retries:
            return self._done(now)
        delay = after if after is not None else self._backoff()
        if now + delay >= self.deadline:
            return self._done(now)  # waiting would outlive the request: report what we have
        return Wait(delay)

    def _backoff(self) -> float:
        s = self.settings
        ceiling = min(s.max_backoff, s.backoff * 2 ** (self.attempts - 1))
        return ceiling / 2 + self.rng.uniform(0, ceiling / 2)  # "equal jitter"

    def _redirect(self, location: str, now: float) -> Action:
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
        if target.authorization and not _has(self._headers, "authorization"):
            self._headers += (("Authorization", target.authorization),)
        self.redirects += 1
        self._target = target
        return self._send(now)

    def _done(self, now: float) -> Done:
        last = self._last
        common = dict(
            url=item_url(self.item),
            index=self.index,
            elapsed=now - self.started,
            attempts=self.attempts,
            redirects=self.redirects,
        )
        if isinstance(last, Response):
            assert self._target is not None
            result = Result(
                final_url=self._target.url,
                status=last.status,
                headers=last.headers,
                body=last.body,
                size=last.size,
                http_version=last.http_version,
                **common,  # type: ignore[arg-type]
            )
        else:
            result = Result(
                final_url=self._target.url if self._target else None,
                error=last,
                **common,  # type: ignore[arg-type]
            )
        return Done(result)


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
