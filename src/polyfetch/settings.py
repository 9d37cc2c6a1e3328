"""`Settings`: every option of a fetcher, validated once, shared by all backends."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from polyfetch._body import ACCEPT_ENCODING
from polyfetch._version import __version__
from polyfetch.errors import ConfigError
from polyfetch.request import TOKEN, methods

DEFAULT_USER_AGENT = f"polyfetch/{__version__} (+https://pypi.org/project/polyfetch/)"
#: Statuses worth another GET: rate limited, or a gateway/upstream that may recover.
RETRY_STATUSES = frozenset({429, 502, 503, 504})
#: Methods retried by default (urllib3's idempotent ones); POST and PATCH only when named
#: in ``retry_methods``. A failure to connect is retried whatever the method: nothing was sent.
RETRY_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PUT", "TRACE")
#: Methods a backend may send again, once, when a reused keep-alive connection turns out to
#: be closed before any byte of the response (aiohttp's rule, so every backend's).
IDEMPOTENT = frozenset(RETRY_METHODS)
#: The most requests in flight a fetcher takes (gevent's pool and the OS stop far below 2**31).
MAX_CONCURRENCY = 1_000_000
#: The most items ``map()`` reads ahead (each costs its item and ~100 bytes while it waits).
MAX_LOOKAHEAD = 100_000_000
#: A response header block (or one header line) larger than this is a ProtocolError, everywhere.
MAX_HEADER_BYTES = 64 * 1024
#: Seconds a host name's addresses are cached by the backends that resolve names themselves.
DNS_TTL = 300.0
#: Where post-processing runs, by name.
EXECUTORS = ("process", "thread", "inline")


def check_processing(executor: object, workers: object, timeout: object) -> None:
    """Raise `ConfigError` unless the post-processing options are usable."""
    if isinstance(executor, str) and executor not in EXECUTORS:
        raise ConfigError(
            f"executor must be one of {', '.join(EXECUTORS)} or an Executor, got {executor!r}"
        )
    if not isinstance(executor, str) and not callable(getattr(executor, "submit", None)):
        raise ConfigError(f"executor {executor!r} is not a concurrent.futures.Executor")
    if workers is not None and (not isinstance(workers, int) or workers < 1):
        raise ConfigError(f"workers must be an integer >= 1, got {workers!r}")
    if timeout is not None and not (isinstance(timeout, int | float) and timeout > 0):
        raise ConfigError(f"process timeout must be a number of seconds > 0, got {timeout!r}")


@dataclass(frozen=True, slots=True)
class Settings:
    """Options shared by every backend; see `polyfetch.Fetcher` for their meaning."""

    concurrency: int = 100
    per_host: int = 16
    timeout: float = 30.0
    connect_timeout: float = 10.0
    read_timeout: float = 15.0
    retries: int = 2
    backoff: float = 0.5
    max_backoff: float = 30.0
    max_redirects: int = 10
    max_bytes: int = 10 * 2**20
    headers: tuple[tuple[str, str], ...] = ()
    user_agent: str = DEFAULT_USER_AGENT
    method: str = "GET"
    retry_methods: tuple[str, ...] = RETRY_METHODS
    #: None/False: no cookies; True: a new jar per fetcher; or an `http.cookiejar.CookieJar`.
    cookies: object = None
    keep_body: bool = True
    verify: bool = True
    ca_bundle: str | None = None
    uvloop: bool = True
    #: Negotiate HTTP/2 over TLS (ALPN) and multiplex; the curl backend only (others refuse).
    http2: bool = False
    #: Try HTTP/3 (QUIC) first, falling back to HTTP/2 or 1.1; the curl backend only.
    http3: bool = False
    #: Attempts per second to one host (None: no limit); retries and redirects count.
    rate: float | None = None
    #: Post-processing (`polyfetch.postprocess`): a callable, "module:function" or a built-in.
    process: object = None
    #: "process" (default), "thread", "inline", or a `concurrent.futures.Executor`.
    executor: object = "process"
    workers: int | None = None
    process_timeout: float | None = None
    #: Items ``map()`` reads ahead of those running, filed by host (`polyfetch._schedule`).
    lookahead: int = 10_000
    #: Obey robots.txt (`polyfetch._robots`); its Crawl-delay paces the host, up to
    #: ``max_crawl_delay`` seconds between requests.
    robots: bool = False
    max_crawl_delay: float = 30.0
    #: Adjust each host's concurrency and pace to its latency and 429/503 answers
    #: (`polyfetch._throttle`), within ``per_host`` and ``rate``.
    auto_throttle: bool = False
    #: A proxy URL for every target (`polyfetch._proxy`); "" none; None: the environment's.
    proxy: str | None = None
    #: Hosts that go direct (a comma list or an iterable; None: the environment's no_proxy).
    no_proxy: str | tuple[str, ...] | None = None
    #: Read the proxy variables of the environment (curl's rules), once per fetcher.
    trust_env: bool = True
    #: Statuses worth another attempt (any iterable of ints; kept as a frozenset).
    retry_statuses: frozenset[int] = RETRY_STATUSES
    #: `request_headers`, computed once here rather than once per item.
    _request_headers: tuple[tuple[str, str], ...] = field(
        init=False, repr=False, compare=False, default=()
    )

    def __post_init__(self) -> None:
        try:
            statuses = frozenset(self.retry_statuses)
        except TypeError:
            statuses = frozenset({-1})
        if any(not isinstance(c, int) or not 100 <= c <= 599 for c in statuses):
            raise ConfigError(
                f"retry_statuses must be HTTP statuses (100-599), got {self.retry_statuses!r}"
            )
        object.__setattr__(self, "retry_statuses", statuses)
        for name in ("concurrency", "per_host"):
            value = getattr(self, name)
            if not isinstance(value, int) or not 1 <= value <= MAX_CONCURRENCY:
                raise ConfigError(
                    f"{name} must be an integer from 1 to {MAX_CONCURRENCY:,}, got {value!r}"
                )
        if not isinstance(self.lookahead, int) or not 1 <= self.lookahead <= MAX_LOOKAHEAD:
            raise ConfigError(
                f"lookahead must be an integer from 1 to {MAX_LOOKAHEAD:,}, got {self.lookahead!r}"
            )
        for name in ("retries", "max_redirects", "max_bytes"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 0:
                raise ConfigError(f"{name} must be an integer >= 0, got {getattr(self, name)!r}")
        for name in ("timeout", "connect_timeout", "read_timeout"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not value > 0:
                raise ConfigError(f"{name} must be a number of seconds > 0, got {value!r}")
        for name in ("backoff", "max_backoff", "max_crawl_delay"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or value < 0:
                raise ConfigError(f"{name} must be a number of seconds >= 0, got {value!r}")
        if self.rate is not None and not (isinstance(self.rate, int | float) and self.rate > 0):
            raise ConfigError(
                f"rate must be a number of requests per second > 0, got {self.rate!r}"
            )
        check_processing(self.executor, self.workers, self.process_timeout)
        if not isinstance(self.method, str) or not TOKEN.fullmatch(self.method):
            raise ConfigError(f"method must be an HTTP method token, got {self.method!r}")
        if self.method != self.method.upper():
            object.__setattr__(self, "method", self.method.upper())
        object.__setattr__(self, "retry_methods", methods(self.retry_methods))
        if self.cookies not in (None, False, True) and not callable(
            getattr(self.cookies, "add_cookie_header", None)
        ):
            raise ConfigError(
                f"cookies must be True or an http.cookiejar.CookieJar, got {self.cookies!r}"
            )
        self._check_proxy()
        self.check_headers(self.headers)
        merged = {
            "user-agent": ("User-Agent", self.user_agent),
            "accept": ("Accept", "*/*"),
            "accept-encoding": ("Accept-Encoding", ACCEPT_ENCODING),
        }
        for name, value in self.headers:
            merged[name.lower()] = (name, value)
        object.__setattr__(self, "_request_headers", tuple(merged.values()))

    def _check_proxy(self) -> None:
        if self.proxy is not None:
            if not isinstance(self.proxy, str):
                raise ConfigError(f"proxy must be a URL string, got {type(self.proxy).__name__}")
            if self.proxy:
                from polyfetch._proxy import parse

                parse(self.proxy)  # ConfigError now rather than at the first attempt
        if self.no_proxy is not None and not isinstance(self.no_proxy, str):
            try:
                entries = tuple(self.no_proxy)
            except TypeError:
                entries = (0,)  # type: ignore[assignment]
            if not all(isinstance(e, str) for e in entries):
                raise ConfigError(f"no_proxy must be a string or host names, got {self.no_proxy!r}")
            object.__setattr__(self, "no_proxy", entries)
        if not isinstance(self.trust_env, bool):
            raise ConfigError(f"trust_env must be True or False, got {self.trust_env!r}")

    @staticmethod
    def check_headers(headers: Iterable[tuple[str, str]]) -> None:
        """Raise `ConfigError` for a header that could not be sent as it is."""
        for name, value in headers:
            if not name or any(c in name for c in ":\r\n\0 ") or any(c in value for c in "\r\n\0"):
                raise ConfigError(f"invalid header {name!r}: {value!r}")

    @classmethod
    def build(
        cls, headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None, **options: Any
    ) -> Settings:
        """Build from keyword options, accepting headers as a mapping or pairs."""
        known = {f.name for f in fields(cls) if f.init}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ConfigError(f"unknown option(s): {', '.join(unknown)}")
        pairs = tuple(
            (str(k), str(v))
            for k, v in (headers.items() if isinstance(headers, Mapping) else headers or ())
        )
        return cls(headers=pairs, **options)

    def request_headers(self) -> tuple[tuple[str, str], ...]:
        """The headers every request sends: defaults, then the user's, which win."""
        return self._request_headers
