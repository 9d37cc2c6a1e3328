"""polyfetch: fetch many URLs fast on threads, gevent, asyncio or a greenlet hub.

Importing this package imports none of socket, ssl, asyncio, multiprocessing,
gevent, aiohttp, urllib3 or greenlet: a backend's libraries are imported when
it starts, so a program can still ``gevent.monkey.patch_all()`` after
``import polyfetch``.
"""

from __future__ import annotations

from polyfetch._fetcher import AsyncFetcher, BackendName, CrawlOptions, Fetcher, Options
from polyfetch._version import __version__
from polyfetch.backends import NAMES as BACKENDS
from polyfetch.backends import available as available_backends
from polyfetch.errors import (
    BackendError,
    ConfigError,
    ConnectError,
    ConnectTimeout,
    DNSError,
    FetchError,
    InvalidRequest,
    InvalidURL,
    NotFollowed,
    OutOfScope,
    PastMaxPages,
    ProtocolError,
    ProxyAuthError,
    ProxyError,
    ReadError,
    ReadTimeout,
    RobotsDisallowed,
    SaveError,
    TLSError,
    TooDeep,
    TooLarge,
    TooManyRedirects,
    TotalTimeout,
    UnsupportedScheme,
)
from polyfetch.request import Request
from polyfetch.result import Result
from polyfetch.settings import DEFAULT_USER_AGENT, Settings

__all__ = [
    # fetching
    "BACKENDS",
    "DEFAULT_USER_AGENT",
    "AsyncFetcher",
    "BackendName",
    "CrawlOptions",
    "Fetcher",
    "Options",
    "Request",
    "Result",
    "Settings",
    "__version__",
    "available_backends",
    # errors in results
    "ConnectError",
    "ConnectTimeout",
    "DNSError",
    "FetchError",
    "InvalidRequest",
    "InvalidURL",
    "NotFollowed",
    "OutOfScope",
    "PastMaxPages",
    "ProtocolError",
    "ProxyAuthError",
    "ProxyError",
    "ReadError",
    "ReadTimeout",
    "RobotsDisallowed",
    "SaveError",
    "TLSError",
    "TooDeep",
    "TooLarge",
    "TooManyRedirects",
    "TotalTimeout",
    "UnsupportedScheme",
    # errors raised
    "BackendError",
    "ConfigError",
]
