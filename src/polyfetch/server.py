"""A real aiohttp HTTP(S) server for polyfetch's tests, benchmark and demo.

It serves deterministic bodies of any size, delays, status codes, redirects,
compressed bodies, decompression bombs, slow drips, flaky endpoints and
per-Host concurrency statistics, so every backend can be exercised end to end
without mocks. It is run as a separate process::

    python -m polyfetch.server --port 0

and prints one line, ``polyfetch test server listening on http://HOST:PORT``
(plus `` https://HOST:HTTPS_PORT`` when TLS is on), to stdout once it accepts
connections. It is not imported by ``polyfetch/__init__.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import signal
import ssl
import struct
import sys
import time
import zlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from polyfetch._rlimit import raise_nofile_limit

__all__ = ["Server", "build_app", "main", "pattern_bytes", "start"]

KIB = 1 << 10
MIB = 1 << 20
GIB = 1 << 30

#: The repeating unit of every /bytes body (64 bytes, so it tiles 1 MiB exactly).
PATTERN = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_"
_BLOCK = PATTERN * (MIB // len(PATTERN))
_ZEROS = bytes(MIB)

MAX_BYTES = GIB  # /bytes, /gzip, /deflate, /delay?size=
MAX_BOMB = 4 * GIB  # /bomb
MAX_BROTLI = 256 * MIB  # /brotli, /zstd and their bombs (compressed at request time)
MAX_HTML = 16 * MIB  # /html
MAX_DELAY_MS = 600_000  # /delay, /drip delay
MAX_DRIP_BYTES = MIB  # /drip bytes
MAX_DRIP_INTERVAL_MS = 60_000  # /drip interval
STREAM_PIECE = 64 * KIB  # write size for chunked bodies
LARGE_PIECE = 256 * KIB  # write size for large Content-Length bodies
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_EMPTY_BODY_STATUSES = frozenset({204, 205, 304})

INDEX = """\
polyfetch test server

GET/HEAD endpoints:
  /bytes/{n}[?chunked=1]                 n deterministic bytes (n <= 1 GiB)
  /delay/{ms}[?size=N]                   sleep, then b"ok" (or N bytes)
  /status/{code}[?retry_after=S]         that status (200-599)
  /redirect/{n}[?absolute=1]             n redirects, then 200 b"redirected"
  /redirect-to?url=U[&status=302]        one redirect to U verbatim (301/302/303/307/308)
  /loop                                  redirects to itself forever
  /html/{size}                           an HTML page of about size bytes with links
  /gzip/{n}, /deflate/{n}                /bytes/{n} body, Content-Encoding gzip / deflate
  /bomb/{n}                              gzip of n zero bytes (n <= 4 GiB)
  /brotli/{n}, /brotli-bomb/{n}          /bytes/{n} body or n zero bytes, Content-Encoding br
  /zstd/{n}, /zstd-bomb/{n}              the same, Content-Encoding zstd
  /drip?bytes=N&interval=MS&delay=MS     one byte every interval ms
  /flaky/{key}?fails=N[&retry_after=S][&status=503]
                                         fails N times, then 200 b"recovered after N"
  /flaky-reset[?key=K]                   forget flaky counts (all, or one key)
  /headers                               the request headers as JSON
  /robots-set?body=TEXT[&status=200]     what /robots.txt answers for this Host from now on
  /robots.txt                            that answer (404 until set), counted in /robots-count
  /robots-count                          robots.txt requests per Host, as JSON
  /busy/{ms}?limit=N                     503 past N in flight for this Host, else sleeps
                                         ms x in flight: a host that slows down under load

Any method (also: /status, /redirect-to, /flaky):
  /anything[/...]                        echo: method, path, args, headers, body, form, json
  /cookies/set?N=V[&N2=V2][&attrs=A][&redirect=U]
                                         one Set-Cookie per N=V (with "; A" appended),
                                         then 302 to U if given, else the cookies set as JSON
  /cookies                               the Cookie header received, parsed, as JSON
  /stats, /stats/reset                   per-Host in-flight / peak / request counts
  /site/{n}-{token}/p0.html              a generated site of n pages (polyfetch.testing.site)
  /site-log/{n}-{token}                  when each of its paths was first requested
"""


# ---------------------------------------------------------------------------
# Deterministic content


def pattern_bytes(n: int) -> bytes:
    """The exact body of ``/bytes/{n}`` (and the decompressed ``/gzip/{n}``), built in memory."""
    if n <= MIB:
        return _BLOCK[:n]
    whole, rest = divmod(n, MIB)
    return _BLOCK * whole + _BLOCK[:rest]


@functools.cache
def _flushed_block(kind: str) -> bytes:
    """Raw deflate of one 1 MiB block, full-flushed so copies of it can be concatenated."""
    block = _ZEROS if kind == "zeros" else _BLOCK
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    return comp.compress(block) + comp.flush(zlib.Z_FULL_FLUSH)


def _compress_repeated(kind: str, n: int, wrapper: str) -> bytes:
    """Compress n bytes of the repeating 1 MiB block `kind` ("pattern"/"zeros") as gzip or zlib.

    Each whole block compresses to the same full-flushed deflate bytes, so they are
    compressed once and repeated; only the checksum walks all n bytes (fast).
    """
    block = _ZEROS if kind == "zeros" else _BLOCK
    whole, rest = divmod(n, MIB)
    last = zlib.compressobj(9, zlib.DEFLATED, -15)
    tail = last.compress(block[:rest]) + last.flush(zlib.Z_FINISH)
    deflated = _flushed_block(kind) * whole + tail if whole else tail
    checksum_fn = zlib.crc32 if wrapper == "gzip" else zlib.adler32
    checksum = 0 if wrapper == "gzip" else 1
    for _ in range(whole):
        checksum = checksum_fn(block, checksum)
    checksum = checksum_fn(block[:rest], checksum)
    if wrapper == "gzip":
        # magic, CM=deflate, FLG=0, MTIME=0, XFL=2 (max compression), OS=255 (unknown)
        header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
        return header + deflated + struct.pack("<II", checksum, n & 0xFFFFFFFF)
    # CMF=0x78 (deflate, 32 KiB window), FLG=0xDA (level 9, check bits)
    return b"\x78\xda" + deflated + struct.pack(">I", checksum)


_WORD_TEXT = (
    "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike "
    "november oscar papa quebec romeo sierra tango uniform victor whiskey xray yankee "
    "zulu fetch thread greenlet gevent asyncio socket buffer latency throughput "
    "connection request response header body redirect timeout retry pool queue"
)
_WORDS = _WORD_TEXT.split()


def build_html(size: int) -> bytes:
    """A deterministic UTF-8 HTML page of about `size` bytes with many links."""
    head = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>polyfetch test page {size}</title>\n</head>\n<body>\n"
        f"<h1>Test page of about {size} bytes</h1>\n"
        "<p>Caf\u00e9, na\u00efve, d\u00e9j\u00e0 vu \u2014 some non-ASCII text.</p>\n"
    ).encode()
    tail = b"</body>\n</html>\n"
    parts = [head]
    length = len(head) + len(tail)
    k = 0
    state = 12345
    while length < size:
        words = []
        for _ in range(12):
            state = (state * 1103515245 + 12345) & 0x7FFFFFFF
            words.append(_WORDS[(state >> 16) % len(_WORDS)])
        link = f'<a href="/html/1000?p={k}">page {k}</a>'
        if k % 4 == 3:
            link += f' and <a href="http://example.invalid/page/{k}">external {k}</a>'
        para = f"<p>{' '.join(words[:6])} {link} {' '.join(words[6:])}.</p>\n".encode()
        parts.append(para)
        length += len(para)
        k += 1
    parts.append(tail)
    return b"".join(parts)


# ---------------------------------------------------------------------------
# Caches and per-app state


class _LRU:
    """A small least-recently-used cache of bytes, bounded by total size and item count."""

    def __init__(self, max_bytes: int, max_items: int) -> None:
        self._items: OrderedDict[Any, bytes] = OrderedDict()
        self._bytes = 0
        self.max_bytes = max_bytes
        self.max_items = max_items

    def get(self, key: Any) -> bytes | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: Any, value: bytes) -> None:
        if len(value) > self.max_bytes:
            return
        old = self._items.pop(key, None)
        if old is not None:
            self._bytes -= len(old)
        self._items[key] = value
        self._bytes += len(value)
        while self._bytes > self.max_bytes or len(self._items) > self.max_items:
            _, evicted = self._items.popitem(last=False)
            self._bytes -= len(evicted)


class _Counter:
    """In-flight, peak and total request counts for one Host value."""

    __slots__ = ("in_flight", "peak", "requests")

    def __init__(self) -> None:
        self.in_flight = 0
        self.peak = 0
        self.requests = 0

    def enter(self) -> None:
        self.in_flight += 1
        self.requests += 1
        if self.in_flight > self.peak:
            self.peak = self.in_flight

    def as_dict(self) -> dict[str, int]:
        return {"in_flight": self.in_flight, "peak": self.peak, "requests": self.requests}


class _Stats:
    """Concurrency statistics per Host header, plus a total."""

    def __init__(self) -> None:
        self.hosts: dict[str, _Counter] = {}
        self.total = _Counter()

    def enter(self, host: str) -> _Counter:
        counter = self.hosts.get(host)
        if counter is None:
            counter = self.hosts[host] = _Counter()
        counter.enter()
        self.total.enter()
        return counter

    def leave(self, counter: _Counter) -> None:
        counter.in_flight -= 1
        self.total.in_flight -= 1

    def reset(self) -> None:
        # Hosts with nothing in flight are forgotten (a request holds its own counter).
        self.hosts = {h: c for h, c in self.hosts.items() if c.in_flight}
        for counter in (*self.hosts.values(), self.total):
            counter.peak = counter.in_flight
            counter.requests = 0

    def as_dict(self) -> dict[str, dict[str, int]]:
        out = {host: counter.as_dict() for host, counter in self.hosts.items()}
        out["_total"] = self.total.as_dict()
        return out


class _BodyCache:
    """Bodies built once in a worker thread and then served from memory."""

    def __init__(self) -> None:
        self.done = _LRU(max_bytes=256 * MIB, max_items=256)
        self.pending: dict[Any, asyncio.Future[bytes]] = {}

    async def get(self, key: Any, build: Callable[[], bytes]) -> bytes:
        hit = self.done.get(key)
        if hit is not None:
            return hit
        fut = self.pending.get(key)
        if fut is None:
            fut = asyncio.get_running_loop().run_in_executor(None, build)
            self.pending[key] = fut
            fut.add_done_callback(functools.partial(self._finished, key))
        # Shielded: a disconnecting client must not cancel a build others wait for.
        return await asyncio.shield(fut)

    def _finished(self, key: Any, fut: asyncio.Future[bytes]) -> None:
        self.pending.pop(key, None)
        if not fut.cancelled() and fut.exception() is None:
            self.done.put(key, fut.result())


_STATS = web.AppKey("polyfetch_stats", _Stats)
_FLAKY = web.AppKey("polyfetch_flaky", dict)
#: Host -> [status, body, requests] of /robots.txt
_ROBOTS = web.AppKey("polyfetch_robots", dict)
#: Host -> requests in flight on /busy
_BUSY = web.AppKey("polyfetch_busy", dict)
_BODIES = web.AppKey("polyfetch_bodies", _BodyCache)
_SMALL = web.AppKey("polyfetch_small", _LRU)
#: Site key -> {path: monotonic time of its first request} (`polyfetch.testing.site`)
_SITE_LOG = web.AppKey("polyfetch_site_log", OrderedDict)
_SITE_LOGS = 64  # sites remembered
_SITE_LOG_PATHS = 200_000  # paths remembered per site


# ---------------------------------------------------------------------------
# Input validation


def _int(text: str | None, name: str, lo: int, hi: int, default: int | None = None) -> int:
    """Parse a decimal integer in [lo, hi]; anything else is a 400, never a 500."""
    if text is None or text == "":
        if default is not None:
            return default
        raise web.HTTPBadRequest(text=f"missing {name}\n")
    if not (text.isascii() and text.isdigit() and len(text) <= 20):
        raise web.HTTPBadRequest(text=f"{name} must be a non-negative integer, got {text!r}\n")
    value = int(text)
    if not lo <= value <= hi:
        raise web.HTTPBadRequest(text=f"{name} must be between {lo} and {hi}, got {value}\n")
    return value


def _header_value(text: str, name: str) -> str:
    """Reject values that cannot go into a header line."""
    if not text or not text.isprintable():
        raise web.HTTPBadRequest(text=f"{name} must be a printable non-empty value\n")
    return text


def _flag(request: web.Request, name: str) -> bool:
    return request.query.get(name, "").lower() in ("1", "true", "yes", "on")


# ---------------------------------------------------------------------------
# Middleware


@web.middleware
async def _stats_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Count requests in flight per Host header; /stats itself is not counted."""
    if request.path in ("/stats", "/stats/reset"):
        return await handler(request)
    stats = request.app[_STATS]
    counter = stats.enter(request.headers.get("Host", ""))
    try:
        return await handler(request)
    finally:
        stats.leave(counter)


# ---------------------------------------------------------------------------
# Handlers


async def _send_pattern(request: web.Request, n: int, *, chunked: bool) -> web.StreamResponse:
    """Answer with n pattern bytes: cached for n <= 1 MiB, streamed otherwise."""
    headers = {"Content-Type": "application/octet-stream"}
    if not chunked and n <= MIB:
        cache = request.app[_SMALL]
        body = cache.get(n)
        if body is None:
            body = pattern_bytes(n)
            cache.put(n, body)
        return web.Response(body=body, headers=headers)
    resp = web.StreamResponse(headers=headers)
    if chunked:
        resp.enable_chunked_encoding()
        piece = STREAM_PIECE
    else:
        resp.content_length = n
        piece = LARGE_PIECE
    await resp.prepare(request)
    if request.method == "HEAD":
        return resp
    view = memoryview(_BLOCK)
    sent = 0
    try:
        while sent < n:
            size = min(piece, n - sent)
            offset = sent % MIB
            if offset + size > MIB:
                size = MIB - offset
            await resp.write(view[offset : offset + size])
            sent += size
    except ConnectionError:
        pass  # the client went away; aiohttp closes the connection
    return resp


async def index(request: web.Request) -> web.Response:
    """Plain-text list of the endpoints."""
    return web.Response(text=INDEX)


async def bytes_(request: web.Request) -> web.StreamResponse:
    """``/bytes/{n}[?chunked=1]``: n deterministic bytes."""
    n = _int(request.match_info["n"], "n", 0, MAX_BYTES)
    return await _send_pattern(request, n, chunked=_flag(request, "chunked"))


async def delay(request: web.Request) -> web.StreamResponse:
    """``/delay/{ms}[?size=N]``: sleep, then b"ok" or N pattern bytes."""
    ms = _int(request.match_info["ms"], "ms", 0, MAX_DELAY_MS)
    size = request.query.get("size")
    n = None if size is None else _int(size, "size", 0, MAX_BYTES)
    await asyncio.sleep(ms / 1000)
    if n is None:
        return web.Response(body=b"ok", content_type="text/plain")
    return await _send_pattern(request, n, chunked=False)


async def status(request: web.Request) -> web.Response:
    """``/status/{code}[?retry_after=S]``: that status with body b"status CODE"."""
    code = _int(request.match_info["code"], "code", 200, 599)
    headers = {"Content-Type": "text/plain"}
    if "retry_after" in request.query:
        headers["Retry-After"] = _header_value(request.query["retry_after"], "retry_after")
    body = b"" if code in _EMPTY_BODY_STATUSES else f"status {code}".encode()
    return web.Response(status=code, body=body, headers=headers)


async def redirect(request: web.Request) -> web.Response:
    """``/redirect/{n}[?absolute=1]``: n 302 hops down to 0, then 200 b"redirected"."""
    n = _int(request.match_info["n"], "n", 0, 1_000_000)
    if n == 0:
        return web.Response(body=b"redirected", content_type="text/plain")
    if _flag(request, "absolute"):
        location = f"{request.scheme}://{request.host}/redirect/{n - 1}?absolute=1"
    else:
        location = f"/redirect/{n - 1}"
    return web.Response(status=302, headers={"Location": location})


async def redirect_to(request: web.Request) -> web.Response:
    """``/redirect-to?url=U[&status=302]``: one redirect to U exactly as given."""
    url = _header_value(request.query.get("url", ""), "url")
    code = _int(request.query.get("status"), "status", 0, 999, default=302)
    if code not in REDIRECT_STATUSES:
        raise web.HTTPBadRequest(text=f"status must be one of {sorted(REDIRECT_STATUSES)}\n")
    return web.Response(status=code, headers={"Location": url})


async def loop(request: web.Request) -> web.Response:
    """``/loop``: a redirect to itself."""
    return web.Response(status=302, headers={"Location": "/loop"})


async def html(request: web.Request) -> web.Response:
    """``/html/{size}``: a deterministic HTML page of about size bytes."""
    size = _int(request.match_info["size"], "size", 0, MAX_HTML)
    body = await request.app[_BODIES].get(("html", size), functools.partial(build_html, size))
    return web.Response(body=body, headers={"Content-Type": "text/html; charset=utf-8"})


async def _compressed(request: web.Request, kind: str, n: int, wrapper: str) -> web.Response:
    build = functools.partial(_compress_repeated, kind, n, wrapper)
    body = await request.app[_BODIES].get((kind, wrapper, n), build)
    headers = {
        "Content-Type": "application/octet-stream",
        "Content-Encoding": "gzip" if wrapper == "gzip" else "deflate",
    }
    # A ready-made body with our own Content-Encoding: aiohttp neither recompresses nor strips it.
    return web.Response(body=body, headers=headers)


async def gzip_(request: web.Request) -> web.Response:
    """``/gzip/{n}``: the /bytes/{n} body, gzip-encoded."""
    n = _int(request.match_info["n"], "n", 0, MAX_BYTES)
    return await _compressed(request, "pattern", n, "gzip")


async def deflate(request: web.Request) -> web.Response:
    """``/deflate/{n}``: the /bytes/{n} body, zlib-wrapped deflate."""
    n = _int(request.match_info["n"], "n", 0, MAX_BYTES)
    return await _compressed(request, "pattern", n, "zlib")


async def bomb(request: web.Request) -> web.Response:
    """``/bomb/{n}``: n zero bytes gzip-encoded (about 1 MB per GiB)."""
    n = _int(request.match_info["n"], "n", 0, MAX_BOMB)
    return await _compressed(request, "zeros", n, "gzip")


def _encode(encoding: str, kind: str, n: int) -> bytes:
    """n bytes of `kind` ("pattern": the /bytes/{n} body, or "zeros") in br or zstd."""
    data = pattern_bytes(n) if kind == "pattern" else bytes(n)
    if encoding == "br":
        import brotli  # dependencies of polyfetch, imported only when these endpoints are used

        return bytes(brotli.compress(data, quality=1))
    try:  # the standard library's from Python 3.14
        from compression import zstd  # type: ignore[import-not-found]
    except ImportError:
        from backports import zstd
    return bytes(zstd.compress(data))


async def encoded(request: web.Request) -> web.Response:
    """``/brotli/{n}``, ``/zstd/{n}``: the /bytes/{n} body in br or zstd; ``/brotli-bomb/{n}``,
    ``/zstd-bomb/{n}``: n zero bytes."""
    name = request.path.split("/")[1]
    encoding = "br" if name.startswith("brotli") else "zstd"
    kind = "zeros" if name.endswith("-bomb") else "pattern"
    n = _int(request.match_info["n"], "n", 0, MAX_BROTLI)
    build = functools.partial(_encode, encoding, kind, n)
    body = await request.app[_BODIES].get((kind, encoding, n), build)
    headers = {"Content-Type": "application/octet-stream", "Content-Encoding": encoding}
    return web.Response(body=body, headers=headers)


async def drip(request: web.Request) -> web.StreamResponse:
    """``/drip?bytes=N&interval=MS&delay=MS``: headers, delay, then one byte per interval."""
    q = request.query
    n = _int(q.get("bytes"), "bytes", 0, MAX_DRIP_BYTES, default=10)
    interval = _int(q.get("interval"), "interval", 0, MAX_DRIP_INTERVAL_MS, default=100)
    initial = _int(q.get("delay"), "delay", 0, MAX_DELAY_MS, default=0)
    resp = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
    resp.content_length = n
    await resp.prepare(request)
    if request.method == "HEAD":
        return resp
    try:
        if initial:
            await asyncio.sleep(initial / 1000)
        for i in range(n):
            if i:
                await asyncio.sleep(interval / 1000)
            await resp.write(b"*")
    except ConnectionError:
        pass  # client gone; cancellation (CancelledError) is left to propagate
    return resp


async def flaky(request: web.Request) -> web.Response:
    """``/flaky/{key}?fails=N[&retry_after=S][&status=503]``: N failures, then success."""
    key = request.match_info["key"]
    q = request.query
    fails = _int(q.get("fails"), "fails", 0, 1_000_000, default=1)
    code = _int(q.get("status"), "status", 200, 599, default=503)
    headers = {"Content-Type": "text/plain"}
    if "retry_after" in q:
        headers["Retry-After"] = _header_value(q["retry_after"], "retry_after")
    seen = request.app[_FLAKY]
    count = seen.get(key, 0)
    seen[key] = count + 1
    if count < fails:
        body = b"" if code in _EMPTY_BODY_STATUSES else f"failure {count + 1} of {fails}".encode()
        return web.Response(status=code, body=body, headers=headers)
    return web.Response(body=f"recovered after {fails}".encode(), content_type="text/plain")


async def flaky_reset(request: web.Request) -> web.Response:
    """``/flaky-reset[?key=K]``: forget the flaky counts (all keys, or just K)."""
    seen = request.app[_FLAKY]
    if "key" in request.query:
        seen.pop(request.query["key"], None)
    else:
        seen.clear()
    return web.Response(body=b"reset", content_type="text/plain")


async def robots_set(request: web.Request) -> web.Response:
    """``/robots-set?body=TEXT[&status=200]``: what /robots.txt answers for this Host."""
    code = _int(request.query.get("status", "200"), "status", 200, 599)
    entry = request.app[_ROBOTS].setdefault(request.host, [404, b"", 0])
    entry[0], entry[1] = code, request.query.get("body", "").encode()
    return web.Response(text="set")


async def robots_txt(request: web.Request) -> web.Response:
    """``/robots.txt``: what /robots-set said for this Host (404 until then)."""
    entry = request.app[_ROBOTS].setdefault(request.host, [404, b"", 0])
    entry[2] += 1
    return web.Response(status=entry[0], body=entry[1], content_type="text/plain")


async def robots_count(request: web.Request) -> web.Response:
    """``/robots-count``: how often each Host's /robots.txt was asked for."""
    return web.json_response({host: e[2] for host, e in request.app[_ROBOTS].items()})


async def busy(request: web.Request) -> web.Response:
    """``/busy/{ms}?limit=N``: 503 when more than N requests of this Host are on /busy, else
    sleep ms times their number: a host that slows down, then pushes back, under load."""
    ms = _int(request.match_info["ms"], "ms", 0, MAX_DELAY_MS)
    limit = _int(request.query.get("limit", "1000000"), "limit", 1, 1_000_000)
    counts = request.app[_BUSY]
    now = counts[request.host] = counts.get(request.host, 0) + 1
    try:
        if now > limit:
            return web.Response(status=503, text=f"busy: {now} in flight, limit {limit}")
        await asyncio.sleep(ms * now / 1000)
        return web.Response(text=f"ok after {ms * now} ms")
    finally:
        counts[request.host] -= 1


async def headers(request: web.Request) -> web.Response:
    """``/headers``: the request headers as a JSON object with lower-cased names."""
    return web.json_response(_joined(request.headers.items()))


def _joined(pairs: Any) -> dict[str, str]:
    """Headers or query pairs as one dict: names lower-cased, repeats joined with ", "."""
    out: dict[str, str] = {}
    for name, value in pairs:
        low = name.lower()
        out[low] = f"{out[low]}, {value}" if low in out else value
    return out


async def anything(request: web.Request) -> web.Response:
    """``/anything[/...]``: what the request was, as JSON, for checking what a client sent.

    ``body`` is the raw body as latin-1 text; ``form`` its fields when it is form-encoded,
    ``json`` its value when it is JSON (else null); ``args`` the query (repeats as lists).
    """
    raw = await request.read()
    ctype = request.headers.get("Content-Type", "")
    form: dict[str, Any] | None = None
    data: Any = None
    if ctype.startswith("application/x-www-form-urlencoded"):
        from urllib.parse import parse_qs

        form = parse_qs(raw.decode("latin-1"), keep_blank_values=True)
    elif ctype.startswith("application/json"):
        import json

        try:
            data = json.loads(raw)
        except ValueError:
            data = None
    args: dict[str, Any] = {}
    for name in request.query:
        values = request.query.getall(name)
        args[name] = values if len(values) > 1 else values[0]
    return web.json_response(
        {
            "method": request.method,
            "path": request.path,
            "args": args,
            "headers": _joined(request.headers.items()),
            "body": raw.decode("latin-1"),
            "form": form,
            "json": data,
        }
    )


async def cookies_set(request: web.Request) -> web.Response:
    """``/cookies/set?N=V&...[&attrs=A][&redirect=U]``: one Set-Cookie line per N=V."""
    q = request.query
    attrs = _header_value(q["attrs"], "attrs") if "attrs" in q else None
    pairs = [(n, v) for n, v in q.items() if n not in ("attrs", "redirect")]
    headers: list[tuple[str, str]] = []
    for name, value in pairs:
        line = _header_value(f"{name}={value}", "cookie")
        headers.append(("Set-Cookie", f"{line}; {attrs}" if attrs else line))
    if "redirect" in q:
        headers.append(("Location", _header_value(q["redirect"], "redirect")))
        return web.Response(status=302, headers=_multi(headers))
    return web.json_response(dict(pairs), headers=_multi(headers))


async def cookies(request: web.Request) -> web.Response:
    """``/cookies``: {"cookies": {name: value}, "header": the Cookie header or null}."""
    header = request.headers.get("Cookie")
    found: dict[str, str] = {}
    for part in (header or "").split(";"):
        name, sep, value = part.strip().partition("=")
        if sep:
            found[name] = value
    return web.json_response({"cookies": found, "header": header})


def _multi(headers: list[tuple[str, str]]) -> Any:
    from multidict import CIMultiDict

    return CIMultiDict(headers)


async def site(request: web.Request) -> web.Response:
    """``/site/{n}-{token}/{name}``: a page of the generated site (`polyfetch.testing.site`)."""
    from polyfetch.testing import site as model

    key, name = request.match_info["key"], request.match_info["name"]
    logs = request.app[_SITE_LOG]
    log = logs.get(key)
    if log is None:
        log = logs[key] = {}
        while len(logs) > _SITE_LOGS:
            logs.popitem(last=False)
    if request.path not in log and len(log) < _SITE_LOG_PATHS:
        log[request.path] = time.monotonic()
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    page = model.page(key, name, sockname[1] if sockname else 80, f"http://{request.host}")
    if page.delay_ms:
        await asyncio.sleep(page.delay_ms / 1000)
    headers = {"Content-Type": page.content_type}
    if page.header_robots is not None:
        headers["X-Robots-Tag"] = page.header_robots
    if page.location is not None:
        headers["Location"] = page.location
    body = model.render(page) if page.status == 200 else b"not here"
    return web.Response(status=page.status, body=body, headers=headers)


async def site_log(request: web.Request) -> web.Response:
    """``/site-log/{key}``: {path: monotonic time of its first request} for one site."""
    return web.json_response(request.app[_SITE_LOG].get(request.match_info["key"], {}))


async def stats(request: web.Request) -> web.Response:
    """``/stats``: {host: {in_flight, peak, requests}, "_total": {...}}."""
    return web.json_response(request.app[_STATS].as_dict())


async def stats_reset(request: web.Request) -> web.Response:
    """``/stats/reset``: peaks back to the current in-flight count, request counts to 0."""
    request.app[_STATS].reset()
    return web.json_response(request.app[_STATS].as_dict())


def build_app() -> web.Application:
    """The test application: all routes (GET, and HEAD) plus the /stats middleware."""
    app = web.Application(middlewares=[_stats_middleware])
    app[_STATS] = _Stats()
    app[_FLAKY] = {}
    app[_ROBOTS] = {}
    app[_BUSY] = {}
    app[_BODIES] = _BodyCache()
    app[_SMALL] = _LRU(max_bytes=64 * MIB, max_items=4096)
    app[_SITE_LOG] = OrderedDict()
    routes: list[tuple[str, Callable[[web.Request], Awaitable[web.StreamResponse]]]] = [
        ("/", index),
        ("/bytes/{n}", bytes_),
        ("/delay/{ms}", delay),
        ("/redirect/{n}", redirect),
        ("/loop", loop),
        ("/html/{size}", html),
        ("/gzip/{n}", gzip_),
        ("/deflate/{n}", deflate),
        ("/bomb/{n}", bomb),
        ("/brotli/{n}", encoded),
        ("/brotli-bomb/{n}", encoded),
        ("/zstd/{n}", encoded),
        ("/zstd-bomb/{n}", encoded),
        ("/drip", drip),
        ("/flaky-reset", flaky_reset),
        ("/headers", headers),
        ("/robots-set", robots_set),
        ("/robots.txt", robots_txt),
        ("/robots-count", robots_count),
        ("/busy/{ms}", busy),
        ("/stats", stats),
        ("/stats/reset", stats_reset),
        ("/site/{key}/{name:.*}", site),
        ("/site-log/{key}", site_log),
    ]
    for path, handler in routes:
        app.router.add_get(path, handler)  # also registers HEAD
    any_method: list[tuple[str, Callable[[web.Request], Awaitable[web.StreamResponse]]]] = [
        ("/status/{code}", status),
        ("/redirect-to", redirect_to),
        ("/flaky/{key}", flaky),
        ("/anything", anything),
        ("/anything/{tail:.*}", anything),
        ("/cookies/set", cookies_set),
        ("/cookies", cookies),
    ]
    for path, handler in any_method:
        app.router.add_route("*", path, handler)
    return app


# ---------------------------------------------------------------------------
# Running


@dataclass
class Server:
    """A started server: its runner and the ports actually bound."""

    runner: web.AppRunner
    host: str
    port: int
    https_port: int | None = None

    @property
    def url(self) -> str:
        """Base ``http://`` URL, without a trailing slash."""
        return f"http://{_url_host(self.host)}:{self.port}"

    @property
    def https_url(self) -> str | None:
        """Base ``https://`` URL, or None without TLS."""
        if self.https_port is None:
            return None
        return f"https://{_url_host(self.host)}:{self.https_port}"

    async def close(self) -> None:
        """Stop listening and finish (or, after 2 s, drop) requests in flight."""
        await self.runner.cleanup()

    async def __aenter__(self) -> Server:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


async def _start_site(runner: web.AppRunner, site: web.TCPSite) -> int:
    """Start `site` and return the port it actually bound."""
    before = len(runner.addresses)
    await site.start()
    return int(runner.addresses[before][1])


async def start(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    https_port: int | None = None,
    certfile: str | None = None,
    keyfile: str | None = None,
    also: Sequence[str] = (),
) -> Server:
    """Start the server on `host`; port 0 picks a free port.

    With `certfile` and `keyfile` a second, TLS, listener is started on `https_port`
    (a free one when None). ``also``: more addresses (e.g. ``127.0.0.2``) served on the
    same HTTP port, so that one server plays several hosts.
    """
    if (certfile is None) != (keyfile is None):
        raise ValueError("certfile and keyfile must be given together")
    if https_port is not None and certfile is None:
        raise ValueError("https_port needs certfile and keyfile")
    runner = web.AppRunner(
        build_app(), access_log=None, handler_cancellation=True, shutdown_timeout=2.0
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, backlog=4096, reuse_address=True)
        bound = await _start_site(runner, site)
        for extra in also:
            extra_site = web.TCPSite(runner, extra, bound, backlog=4096, reuse_address=True)
            await _start_site(runner, extra_site)
        bound_https = None
        if certfile is not None and keyfile is not None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(certfile, keyfile)
            tls_site = web.TCPSite(
                runner, host, https_port or 0, backlog=4096, reuse_address=True, ssl_context=ctx
            )
            bound_https = await _start_site(runner, tls_site)
    except BaseException:
        await runner.cleanup()
        raise
    return Server(runner=runner, host=host, port=bound, https_port=bound_https)


async def _serve(args: argparse.Namespace) -> None:
    server = await start(
        args.host,
        args.port,
        https_port=args.https_port,
        certfile=args.certfile,
        keyfile=args.keyfile,
        also=args.also,
    )
    stop = asyncio.Event()
    loop_ = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:
        with contextlib.suppress(NotImplementedError):
            loop_.add_signal_handler(sig, stop.set)
    try:
        line = f"polyfetch test server listening on {server.url}"
        if server.https_url is not None:
            line += f" {server.https_url}"
        print(line, flush=True)
        await stop.wait()
    finally:
        for sig in signals:
            with contextlib.suppress(NotImplementedError):
                loop_.remove_signal_handler(sig)
        await server.close()


def main(argv: list[str] | None = None) -> int:
    """Command line: start the server, print its address line, run until SIGINT/SIGTERM."""
    parser = argparse.ArgumentParser(
        prog="python -m polyfetch.server", description="polyfetch's HTTP test server"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="HTTP port, 0 = any free port")
    parser.add_argument(
        "--also",
        action="append",
        default=[],
        metavar="ADDRESS",
        help="another address to serve on the same HTTP port (repeatable), e.g. 127.0.0.2",
    )
    parser.add_argument("--https-port", type=int, default=None, help="HTTPS port, 0 = any free")
    parser.add_argument("--certfile", help="PEM certificate chain; enables HTTPS")
    parser.add_argument("--keyfile", help="PEM private key for --certfile")
    parser.add_argument("--no-uvloop", action="store_true", help="use the default asyncio loop")
    args = parser.parse_args(argv)
    if (args.certfile is None) != (args.keyfile is None):
        parser.error("--certfile and --keyfile go together")
    if args.https_port is not None and args.certfile is None:
        parser.error("--https-port needs --certfile and --keyfile")

    raise_nofile_limit()
    loop_factory = None
    if not args.no_uvloop:
        try:
            import uvloop
        except ImportError:
            pass
        else:
            loop_factory = uvloop.new_event_loop
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            runner.run(_serve(args))
    except OSError as exc:  # e.g. address in use, unreadable certificate
        print(f"polyfetch test server: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
