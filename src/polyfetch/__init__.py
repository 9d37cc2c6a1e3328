"""polyfetch: fetch many URLs fast on threads, gevent, asyncio or a greenlet hub.

Importing this package imports none of socket, ssl, asyncio, multiprocessing,
gevent, aiohttp, urllib3 or greenlet: a backend's libraries are imported when
it starts, so a program can still ``gevent.monkey.patch_all()`` after
``import polyfetch``. Its names are imported when first used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from polyfetch._version import __version__

if TYPE_CHECKING:
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

#: Where each public name lives: imported on first use (PEP 562), so that importing
#: ``polyfetch`` or one of its modules (a processing worker imports ``polyfetch.result``)
#: costs almost nothing until the fetcher is wanted.
_LAZY = {
    "AsyncFetcher": "polyfetch._fetcher",
    "BackendName": "polyfetch._fetcher",
    "CrawlOptions": "polyfetch._fetcher",
    "Fetcher": "polyfetch._fetcher",
    "Options": "polyfetch._fetcher",
    "Request": "polyfetch.request",
    "Result": "polyfetch.result",
    "Settings": "polyfetch.settings",
    "DEFAULT_USER_AGENT": "polyfetch.settings",
    "BACKENDS": "polyfetch.backends:NAMES",
    "available_backends": "polyfetch.backends:available",
}


def __getattr__(name: str) -> Any:
    where = _LAZY.get(name)
    if where is None and name in __all__:
        where = "polyfetch.errors"
    if where is None:
        raise AttributeError(f"module 'polyfetch' has no attribute {name!r}")
    module, _, attribute = where.partition(":")
    value = getattr(importlib.import_module(module), attribute or name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


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
