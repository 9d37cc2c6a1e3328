"""The raw libraries and other clients, fetching the same URL lists as polyfetch.

Each peer is the plainest idiomatic loop its library's users would write, bounded
to the same concurrency, so that ``polyfetch backend / raw library`` is the cost
of our layer: ``urllib3-threads`` is what the threads backend stands on,
``urllib3-gevent`` the gevent backend, ``aiohttp`` the asyncio backend (with
uvloop when installed, as the backend uses it), ``pycurl`` the curl backend
(a CurlMulti driven from a tight loop: libcurl's speed with no layer). The
greenlet backend stands on no raw library (its hub is our own: greenlet + h11
over selectors), so its anchor is the nearest stack of the same kind, ``geventhttpclient`` (gevent's
hub + the llhttp C parser): what a greenlet client can cost. A peer returns
one (seconds, outcome) pair per URL, timed around its request (the backends
are timed from the moment the URL is taken from the input, which adds any
queueing in the client); the outcome is the status as text or the exception's
class name. grequests is left out: it is requests on gevent (both measured
here) and patches at import.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import time
from collections.abc import Callable
from typing import Any

Outcomes = list[tuple[float, str]]

#: peer -> what it needs importable (or on PATH, for curl-cli)
NEEDS: dict[str, tuple[str, ...]] = {
    "urllib3-threads": ("urllib3",),
    "urllib3-gevent": ("urllib3", "gevent"),
    "aiohttp": ("aiohttp",),
    "httpx": ("httpx",),
    "requests-threads": ("requests",),
    "geventhttpclient": ("geventhttpclient", "gevent"),
    "pycurl": ("pycurl",),
    "curl-cli": (),  # ``curl --parallel``; named apart from the curl backend
}
#: peers that run in a process gevent has patched first (as their users run them)
GEVENT_PATCHED = frozenset({"urllib3-gevent", "geventhttpclient"})
#: backend -> the raw library it is built on, or (see `ANCHORS`) the peer it is held against
RAW_OF = {
    "threads": "urllib3-threads",
    "gevent": "urllib3-gevent",
    "asyncio": "aiohttp",
    "greenlet": "geventhttpclient",
    "curl": "pycurl",
}
#: backends whose `RAW_OF` peer is an anchor of the same kind, not the library under them
ANCHORS = frozenset({"greenlet"})


def available() -> list[str]:
    """The peers this machine can run."""
    found = []
    for name, modules in NEEDS.items():
        if name == "curl-cli":
            if shutil.which("curl"):
                found.append(name)
        elif all(importlib.util.find_spec(m) is not None for m in modules):
            found.append(name)
    return found


def _timed(get: Callable[[str], int], url: str) -> tuple[float, str]:
    t0 = time.perf_counter()
    try:
        status = get(url)
    except Exception as exc:  # a peer's failure is a figure, not a crash
        return time.perf_counter() - t0, type(exc).__name__
    return time.perf_counter() - t0, str(status)


def _urllib3_threads(urls: list[str], concurrency: int) -> Outcomes:
    from concurrent.futures import ThreadPoolExecutor

    import urllib3

    pool = urllib3.PoolManager(maxsize=concurrency, block=True, retries=False)

    def get(url: str) -> int:
        return pool.request("GET", url, timeout=120).status  # type: ignore[no-any-return]

    with ThreadPoolExecutor(concurrency) as ex:
        return list(ex.map(lambda u: _timed(get, u), urls))


def _urllib3_gevent(urls: list[str], concurrency: int) -> Outcomes:
    import gevent.pool
    import urllib3

    pool = urllib3.PoolManager(maxsize=concurrency, block=True, retries=False)

    def get(url: str) -> int:
        return pool.request("GET", url, timeout=120).status  # type: ignore[no-any-return]

    return list(gevent.pool.Pool(concurrency).imap(lambda u: _timed(get, u), urls))


def _requests_threads(urls: list[str], concurrency: int) -> Outcomes:
    import threading
    from concurrent.futures import ThreadPoolExecutor

    import requests

    local = threading.local()

    def get(url: str) -> int:
        if not hasattr(local, "session"):  # a Session is not thread-safe: one per thread
            local.session = requests.Session()
        return local.session.get(url, timeout=120).status_code  # type: ignore[no-any-return]

    with ThreadPoolExecutor(concurrency) as ex:
        return list(ex.map(lambda u: _timed(get, u), urls))


def _geventhttpclient(urls: list[str], concurrency: int) -> Outcomes:
    """One `HTTPClient` per host (from `HTTPClientPool`), each with ``concurrency`` sockets."""
    import gevent.pool
    from geventhttpclient import URL
    from geventhttpclient.client import HTTPClientPool

    # its default 5 s timeouts would fail runs a slow machine merely makes slow
    clients = HTTPClientPool(concurrency=concurrency, connection_timeout=120, network_timeout=120)

    def get(url: str) -> int:
        parsed = URL(url)
        with clients.get_client(parsed).get(parsed.request_uri) as resp:
            resp.read()  # the whole body, as every other peer reads it
            return resp.status_code

    try:
        return list(gevent.pool.Pool(concurrency).imap(lambda u: _timed(get, u), urls))
    finally:
        clients.close()


async def _aio_workers(urls: list[str], concurrency: int, get: Any) -> Outcomes:
    """``concurrency`` tasks pulling from one iterator: the lightest bounded asyncio loop."""
    import asyncio

    out: list[tuple[float, str]] = []
    it = iter(urls)

    async def worker() -> None:
        for url in it:
            t0 = time.perf_counter()
            try:
                status = await get(url)
            except Exception as exc:
                out.append((time.perf_counter() - t0, type(exc).__name__))
            else:
                out.append((time.perf_counter() - t0, str(status)))

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return out


def _run_async(main: Any) -> Outcomes:
    import asyncio

    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)  # type: ignore[no-any-return]
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)  # type: ignore[no-any-return]


def _aiohttp(urls: list[str], concurrency: int) -> Outcomes:
    import aiohttp

    async def main() -> Outcomes:
        connector = aiohttp.TCPConnector(limit=concurrency)
        timeout = aiohttp.ClientTimeout(total=120)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

            async def get(url: str) -> int:
                async with session.get(url) as resp:
                    await resp.read()
                    return resp.status

            return await _aio_workers(urls, concurrency, get)

    return _run_async(main())


def _httpx(urls: list[str], concurrency: int) -> Outcomes:
    import httpx

    async def main() -> Outcomes:
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(limits=limits, timeout=120) as client:

            async def get(url: str) -> int:
                return (await client.get(url)).status_code

            return await _aio_workers(urls, concurrency, get)

    return _run_async(main())


def _pycurl(urls: list[str], concurrency: int) -> Outcomes:
    """``concurrency`` reused easy handles on one CurlMulti, driven by select/perform.

    The loop a pycurl user writes for speed: bodies go to ``len`` (a C builtin that
    "consumes" every byte), a finished handle gets the next URL at once.
    """
    import pycurl

    multi = pycurl.CurlMulti()
    idle = []
    for _ in range(min(concurrency, len(urls))):
        handle = pycurl.Curl()
        handle.setopt(pycurl.WRITEFUNCTION, len)
        handle.setopt(pycurl.NOSIGNAL, 1)
        handle.setopt(pycurl.TIMEOUT, 120)
        idle.append(handle)
    started: dict[Any, float] = {}
    out: Outcomes = []
    it = iter(urls)

    def feed(handle: Any) -> None:
        url = next(it, None)
        if url is None:
            handle.close()
            return
        handle.setopt(pycurl.URL, url)
        started[handle] = time.perf_counter()
        multi.add_handle(handle)

    for handle in idle:
        feed(handle)
    while started:
        while multi.perform()[0] == pycurl.E_CALL_MULTI_PERFORM:
            pass
        while True:
            queued, done, failed = multi.info_read()
            for handle in done:
                out.append(
                    (
                        time.perf_counter() - started.pop(handle),
                        str(handle.getinfo(pycurl.RESPONSE_CODE)),
                    )
                )
            for handle, _errno, _msg in failed:
                out.append((time.perf_counter() - started.pop(handle), "CurlError"))
            for handle in [*done, *(f[0] for f in failed)]:
                multi.remove_handle(handle)
                feed(handle)
            if not queued:
                break
        if started:
            multi.select(1.0)
    multi.close()
    return out


def _curl_cli(urls: list[str], concurrency: int) -> Outcomes:
    """``curl --parallel`` over a config file; per-transfer time and status from ``-w``."""
    import subprocess
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".cfg", delete=False) as cfg:
        for url in urls:
            cfg.write(f'url = "{url}"\noutput = "/dev/null"\n')
    try:
        proc = subprocess.run(
            [
                "curl",
                "--parallel",
                "--parallel-max",
                str(concurrency),
                "--no-progress-meter",
                "-w",
                "%{time_total} %{http_code}\\n",
                "-K",
                cfg.name,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
    finally:
        os.unlink(cfg.name)
    out: Outcomes = []
    for line in proc.stdout.splitlines():
        seconds, code = line.split()
        out.append((float(seconds), code if code != "000" else "CurlError"))
    return out


RUNNERS: dict[str, Callable[[list[str], int], Outcomes]] = {
    "urllib3-threads": _urllib3_threads,
    "urllib3-gevent": _urllib3_gevent,
    "aiohttp": _aiohttp,
    "httpx": _httpx,
    "requests-threads": _requests_threads,
    "geventhttpclient": _geventhttpclient,
    "pycurl": _pycurl,
    "curl-cli": _curl_cli,
}


def run(name: str, urls: list[str], concurrency: int) -> Outcomes:
    """Fetch ``urls`` with peer ``name``; one (seconds, outcome) pair per URL."""
    return RUNNERS[name](urls, concurrency)
