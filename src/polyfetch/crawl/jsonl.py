"""JSON Lines input: one request object per line, checked and turned into a `polyfetch.Request`.

Each line that is not blank and not a ``#`` comment is a JSON object with the
fields of `polyfetch.Request` that make sense in a list: ``url`` (required),
``method``, ``headers``, ``params``, ``data``, ``json``, ``timeout``,
``retries``, ``max_bytes``, ``max_redirects``, ``retry_methods`` and ``meta``
(``save_to`` is not taken from the input: --save-dir stores bodies). A line that
is not such an object - bad JSON, an unknown field, a wrong type, no url - is
not fetched: its record has error ``InvalidRequest`` and a message naming the
line and the problem, and the crawl goes on.

Dedup key (``request_key``): the canonical URL with ``params`` applied, and,
when the line asks for more than a plain GET, the method and a digest of the
headers (names case-insensitive) and body. Two lines are duplicates only when
they would send the same request; ``timeout``, ``retries`` and the like and
``meta`` are not part of it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

from polyfetch.crawl.inputs import InputCounts, InputLine, canonical, read_lines
from polyfetch.request import Request

_SHOWN = 200  # characters of a bad line kept as its record's url
INVALID = "InvalidRequest"


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _scalar(value: Any) -> bool:
    return isinstance(value, str | int | float | bool)


def _fields(value: Any, values: Any = _scalar) -> bool:
    """An object of name -> value, or a list of [name, value] pairs; a value may be a list."""
    if isinstance(value, dict):
        pairs = list(value.items())
    elif isinstance(value, list):
        if not all(isinstance(p, list) and len(p) == 2 for p in value):
            return False
        pairs = [tuple(p) for p in value]
    else:
        return False
    return all(
        isinstance(n, str) and (values(v) or (isinstance(v, list) and all(values(x) for x in v)))
        for n, v in pairs
    )


def _header_value(value: Any) -> bool:
    return isinstance(value, str | int | float) and not isinstance(value, bool)


#: The `Request` fields a line may give: the check of each value, and what it must be.
_CHECKS: dict[str, tuple[Any, str]] = {
    "url": (lambda v: isinstance(v, str) and v != "", "a non-empty string"),
    "method": (lambda v: isinstance(v, str), "a string"),
    "headers": (
        lambda v: _fields(v, _header_value),
        "an object of name: value strings, or a list of [name, value] pairs",
    ),
    "params": (_fields, "an object of name: value, or a list of [name, value] pairs"),
    "data": (
        lambda v: isinstance(v, str) or _fields(v),
        "a string, or form fields (an object, or a list of [name, value] pairs)",
    ),
    "json": (lambda v: True, "any JSON value"),
    "timeout": (_number, "a number of seconds > 0"),
    "retries": (_count, "a whole number >= 0"),
    "max_bytes": (_count, "a whole number >= 0"),
    "max_redirects": (_count, "a whole number >= 0"),
    "retry_methods": (
        lambda v: isinstance(v, list) and all(isinstance(m, str) for m in v),
        "a list of method names",
    ),
    "meta": (lambda v: True, "any JSON value"),
}
_NOT_TAKEN = {
    "save_to": "save_to is not taken from the input (use --save-dir)",
    "save_max_bytes": "save_max_bytes is not taken from the input (use --save-dir)",
}


class BadLine(ValueError):
    """Why a line is not a request; ``url`` and ``meta`` are what could be read of it."""

    def __init__(self, message: str, url: str, meta: Any = None) -> None:
        super().__init__(message)
        self.url, self.meta = url, meta


def parse(text: str) -> Request:
    """The `Request` of one line's text; raise `BadLine`."""
    shown = text if len(text) <= _SHOWN else text[:_SHOWN] + "..."
    try:
        obj = json.loads(text)
    except ValueError as exc:
        raise BadLine(f"not valid JSON ({exc})", shown) from None
    if not isinstance(obj, dict):
        raise BadLine(f"not a JSON object but {_json_type(obj)}", shown)
    url = obj.get("url")
    meta = obj.get("meta")
    where = url if isinstance(url, str) and url else shown
    if "url" not in obj:
        raise BadLine("no url", where, meta)
    for name, value in obj.items():
        if name in _NOT_TAKEN:
            raise BadLine(_NOT_TAKEN[name], where, meta)
        check = _CHECKS.get(name)
        if check is None:
            raise BadLine(f"unknown field {name!r}", where, meta)
        if value is not None and not check[0](value):
            raise BadLine(f"{name} must be {check[1]}, got {_short(value)}", where, meta)
    if obj.get("url") is None:
        raise BadLine("no url", where, meta)
    if obj.get("data") is not None and obj.get("json") is not None:
        raise BadLine("give data or json, not both", where, meta)
    return Request(**obj)


def _json_type(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return "a number"


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else text[:60] + "..."


def read_requests(stream: Any, counts: InputCounts, replay: list[Any]) -> Iterator[InputLine]:
    """The lines of a JSON Lines input as `InputLine` items: ``request`` set for a good line,
    ``reject`` (and ``kind`` InvalidRequest) for a bad one. Lazy, like `read_lines`."""
    for line in read_lines(stream, counts, replay):
        if line.reject is not None:
            yield line._replace(kind=INVALID)
            continue
        try:
            request = parse(line.url)
        except BadLine as exc:
            carrier = Request(exc.url, meta=exc.meta) if exc.meta is not None else None
            yield InputLine(
                line.number, exc.url, f"line {line.number}: {exc}", None, carrier, INVALID
            )
            continue
        yield InputLine(line.number, request.url, None, None, request)


def request_key(req: Request, *, canonical_urls: bool = True) -> str:
    """The dedup key of a request line (see the module docstring); with ``canonical_urls``
    False (--dedup exact) the URL as written."""
    url = req.url
    if req.params is not None:
        query = urlencode(_pairs(req.params))
        if query:
            url = f"{url}{'&' if '?' in url else '?'}{query}"
    if canonical_urls:
        url = canonical(url)
    method = (req.method or "").upper()
    if method in ("", "GET") and req.headers is None and req.data is None and req.json is None:
        return url
    headers = sorted((str(n).lower(), str(v)) for n, v in _pairs(req.headers or {}))
    body = json.dumps(
        [headers, req.data, req.json], sort_keys=True, ensure_ascii=False, separators=(",", ":")
    )
    digest = hashlib.blake2b(body.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()
    return f"{method} {url}\n{digest}"  # a URL line holds no line break: no clash with a URL


def _pairs(fields: Any) -> list[tuple[Any, Any]]:
    items = fields.items() if isinstance(fields, dict) else fields
    out: list[tuple[Any, Any]] = []
    for name, value in items:
        if isinstance(value, list):
            out.extend((name, v) for v in value)
        else:
            out.append((name, value))
    return out
