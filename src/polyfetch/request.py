"""`Request`: an input item that is more than a URL - a method, a body, headers, options, meta.

`polyfetch.Fetcher.map` takes `Request` items beside plain URL strings (which
stay the fast path). The planner turns a `Request` into what it sends with
`prepare`, once per item: the URL with its ``params``, the headers merged over
the fetcher's, the body encoded (bytes, text, form fields or JSON - all of them
bytes that can be sent again on a retry or a 307/308 redirect; streaming bodies
are refused, since a body that cannot be resent would make retries and
redirects lie), and the fetcher's settings with the item's overrides.
Anything wrong with the item becomes that item's `InvalidRequest` record.
"""

from __future__ import annotations

import json as _json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from polyfetch.errors import ConfigError, InvalidRequest

if TYPE_CHECKING:
    from polyfetch.settings import Settings

#: An RFC 9110 token: what a method name may be.
TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
#: Methods sent without a body say nothing of it; any other says Content-Length: 0 (aiohttp
#: does so whatever we ask: so every backend does).
_BODILESS_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "CONNECT", "TRACE"})
#: Request headers the core computes from the body (the caller's would contradict it).
_FRAMING = frozenset({"content-length", "transfer-encoding"})
Fields = Mapping[str, Any] | Iterable[tuple[str, Any]]


@dataclass(frozen=True, slots=True)
class Request:
    """One request: everything but ``url`` is optional.

    Args:
        url: the absolute http(s) URL.
        method: any HTTP method token (upper-cased); default: the fetcher's ``method``.
        headers: request headers, over the fetcher's (a mapping or (name, value) pairs).
        params: query parameters appended to the URL (a mapping or pairs).
        data: the body: bytes, str (sent as UTF-8) or form fields (a mapping or pairs,
            sent ``application/x-www-form-urlencoded``).
        json: a JSON-able value sent as ``application/json`` (not with ``data``).
        timeout, retries, max_bytes, max_redirects: this item's values of the fetcher options.
        retry_methods: this item's value of the fetcher option.
        save_to: stream the body to this file (written whole or not at all) instead of
            memory; ``Result.body`` is then None.
        save_max_bytes: the file's size cap (on the wire and decoded), default 1 GiB.
        meta: any JSON-able value, carried unchanged to ``Result.meta`` (and the crawl's record).
        proxy: this item's proxy URL instead of the fetcher's ("" : direct); the fetcher's
            ``no_proxy`` still applies. An unusable URL is this item's `InvalidRequest`.
    """

    url: str
    method: str | None = None
    headers: Fields | None = None
    params: Fields | None = None
    data: bytes | str | Fields | None = None
    json: Any = None
    timeout: float | None = None
    retries: int | None = None
    max_bytes: int | None = None
    max_redirects: int | None = None
    retry_methods: Iterable[str] | None = None
    save_to: str | None = None
    save_max_bytes: int = 2**30
    meta: Any = None
    proxy: str | None = None

    def __repr__(self) -> str:
        return f"Request({self.method or 'GET'} {self.url!r})"


@dataclass(frozen=True, slots=True)
class Prepared:
    """What the planner sends for a `Request` (see the module docstring)."""

    url: str
    method: str
    headers: tuple[tuple[str, str], ...]
    body: bytes | None
    settings: Settings


def prepare(req: Request, settings: Settings) -> Prepared:
    """Check and encode ``req`` against the fetcher's ``settings``; raise `InvalidRequest`."""
    if not isinstance(req.url, str):
        raise InvalidRequest(f"url must be a string, got {type(req.url).__name__}")
    method = settings.method if req.method is None else req.method
    if not isinstance(method, str) or not TOKEN.fullmatch(method):
        raise InvalidRequest(f"method must be an HTTP token, got {method!r}")
    method = method.upper()
    url = req.url
    if req.params is not None:
        from urllib.parse import urlencode

        query = urlencode(list(_pairs(req.params, "params")))
        if query:
            url = f"{url}{'&' if '?' in url else '?'}{query}"
    body, content_type = _body(req)
    if body is None and method not in _BODILESS_METHODS:
        body = b""
    merged = {name.lower(): (name, value) for name, value in settings.request_headers()}
    if content_type is not None:
        merged["content-type"] = ("Content-Type", content_type)
    if req.headers is not None:
        for name, value in _pairs(req.headers, "headers"):
            merged[str(name).lower()] = (str(name), str(value))
    for name in _FRAMING:
        merged.pop(name, None)
    if body is not None:
        merged["content-length"] = ("Content-Length", str(len(body)))
    overrides = {
        name: getattr(req, name)
        for name in ("timeout", "retries", "max_bytes", "max_redirects")
        if getattr(req, name) is not None
    }
    if req.retry_methods is not None:
        overrides["retry_methods"] = methods(req.retry_methods)
    try:
        if overrides:
            settings = replace(settings, **overrides)
        headers = tuple(merged.values())
        settings.check_headers(headers)
    except ConfigError as exc:
        raise InvalidRequest(str(exc)) from None
    if req.save_to is not None and not isinstance(req.save_to, str):
        raise InvalidRequest(f"save_to must be a path string, got {type(req.save_to).__name__}")
    if not isinstance(req.save_max_bytes, int) or req.save_max_bytes < 0:
        raise InvalidRequest(f"save_max_bytes must be an integer >= 0, got {req.save_max_bytes!r}")
    return Prepared(url, method, headers, body, settings)


def methods(names: Iterable[str]) -> tuple[str, ...]:
    """Method names, upper-cased and checked (`ConfigError` for a non-token)."""
    if isinstance(names, str):
        names = [names]
    out = []
    for name in names:
        if not isinstance(name, str) or not TOKEN.fullmatch(name):
            raise ConfigError(f"not an HTTP method: {name!r}")
        out.append(name.upper())
    return tuple(out)


def _body(req: Request) -> tuple[bytes | None, str | None]:
    """The encoded body and the Content-Type it implies."""
    data = req.data
    if req.json is not None:
        if data is not None:
            raise InvalidRequest("give data= or json=, not both")
        try:
            text = _json.dumps(req.json, separators=(",", ":"), ensure_ascii=False)
        except (TypeError, ValueError) as exc:
            raise InvalidRequest(f"json= is not JSON-serialisable: {exc}") from None
        return text.encode("utf-8"), "application/json"
    if data is None:
        return None, None
    if isinstance(data, bytes | bytearray | memoryview):
        return bytes(data), None
    if isinstance(data, str):
        return data.encode("utf-8"), None
    if isinstance(data, Mapping | list | tuple):
        from urllib.parse import urlencode

        return urlencode(list(_pairs(data, "data"))).encode("ascii"), (
            "application/x-www-form-urlencoded"
        )
    # iterators, generators, files: they cannot be sent again on a retry or a 307/308
    raise InvalidRequest(
        f"data must be bytes, str or form fields, got {type(data).__name__} "
        "(streaming bodies are not supported: they cannot be resent)"
    )


def _pairs(fields: Fields, what: str) -> Iterable[tuple[Any, Any]]:
    """(name, value) pairs of a mapping or a list of pairs; a list value repeats the name."""
    items = fields.items() if isinstance(fields, Mapping) else fields
    try:
        out: list[tuple[Any, Any]] = []
        for name, value in items:
            if isinstance(value, list | tuple):
                out.extend((name, v) for v in value)
            else:
                out.append((name, value))
    except (TypeError, ValueError):
        raise InvalidRequest(f"{what} must be a mapping or (name, value) pairs") from None
    return out
