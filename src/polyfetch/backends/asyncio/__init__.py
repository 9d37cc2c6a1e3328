"""The asyncio backend: aiohttp on one event loop (uvloop's when installed and wanted).

Theory of operation. Every item is one task running the core's
``runner.arun(item, index, group)``: the core decides attempts, backoff,
``Retry-After``, redirects, slots and deadlines; `AsyncioBackend.perform` makes
exactly one HTTP attempt, with aiohttp's redirects, decompression and status
checks off, and never raises except for cancellation (`errors.map_error` maps
aiohttp's exceptions onto `polyfetch.errors`). Each attempt is cancelled at
its absolute deadline by `timing.Deadlines` (one loop timer for all attempts);
the core's slots wait on `timing.Gate`s.

Who owns limits: our slots. aiohttp's connector gets ``limit=concurrency``
(never 0: aiohttp#4067) and no per-host limit, so it never makes an attempt
wait: its timeouts would otherwise include the wait for a pooled connection
(aiohttp#10313). Stale keep-alive connections: aiohttp resends a GET or HEAD
once when a connection drops before any response byte; that is the pool's
race, not an attempt (the greenlet hub and urllib3 do the same for reused
connections), so ``attempts`` counts the planner's attempts on every backend.

Two front doors share that code (modules by job: `groups`, `timing`, `errors`,
`loop`):

* `AsyncFetcher` runs the tasks in the caller's loop (`astart`, `agroup`, `aclose`);
* `Fetcher` gets a private loop in a thread made by `start` (`loop.run_loop`).
  Submissions cross into it with ``call_soon_threadsafe``, results come back
  through a `queue.SimpleQueue` per group, both coalesced per burst. `close`
  cancels every task, closes the session, stops the loop, shuts down its
  default executor (aiohttp resolves names there) and joins the thread.
"""

from __future__ import annotations

import asyncio
import functools
import math
import threading
from typing import TYPE_CHECKING

import aiohttp
from aiohttp import ClientTimeout
from aiohttp import http_exceptions as hx
from aiohttp.client_proto import ResponseHandler
from yarl import URL

from polyfetch._body import response_body
from polyfetch._plan import Response, Send, lower_headers, total_timeout
from polyfetch._rlimit import raise_nofile_limit
from polyfetch._tls import client_context
from polyfetch.backends._base import AsyncCapable, Backend
from polyfetch.backends.asyncio.errors import map_error
from polyfetch.backends.asyncio.groups import LoopGroup, LoopThreadGroup, cancel_all
from polyfetch.backends.asyncio.loop import new_loop, run_loop
from polyfetch.backends.asyncio.timing import EXPIRED, Deadlines, Gate
from polyfetch.errors import FetchError, ProxyError
from polyfetch.settings import DNS_TTL, MAX_HEADER_BYTES, Settings

if TYPE_CHECKING:
    from ssl import SSLContext

    from polyfetch._proxy import Proxy
    from polyfetch._runner import Outcome, Runner


_NO_AUTO = ("Content-Type",)
_VERSIONS = {aiohttp.HttpVersion11: "1.1", aiohttp.HttpVersion10: "1.0"}


class AsyncioBackend(Backend, AsyncCapable):
    """aiohttp, one session per backend; see the module docstring."""

    name = "asyncio"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        s = self.settings
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None  # only for the synchronous door
        self._session: aiohttp.ClientSession | None = None
        #: A session per SOCKS proxy (aiohttp-socks binds a connector to one proxy).
        self._socks: dict[Proxy, aiohttp.ClientSession] = {}
        self._ctx: SSLContext | None = None
        self._deadlines: Deadlines | None = None
        #: Every running item's task, whichever group it belongs to (close() cancels them).
        self.tasks: set[asyncio.Task[None]] = set()
        # ceil_threshold=inf: aiohttp would otherwise round connect timeouts >= 5 s up to a
        # whole second of loop time. One object serves every attempt that is not near its deadline.
        self._timeout = self._client_timeout(s.connect_timeout, s.read_timeout)
        self.closed = False

    def async_semaphore(self, value: int) -> Gate:
        """The core's slots wait on `Gate`s (both doors: every item runs in the loop)."""
        return Gate(value)

    # -- the synchronous door -------------------------------------------------------------

    def start(self) -> None:
        """Start the loop thread and open the session in it."""
        ctx = client_context(self.settings.verify, self.settings.ca_bundle)  # ConfigError early
        loop = new_loop(self.settings.uvloop)
        thread = threading.Thread(
            target=run_loop, args=(loop,), name="polyfetch-asyncio", daemon=True
        )
        thread.start()
        self.loop, self._thread = loop, thread
        try:
            asyncio.run_coroutine_threadsafe(self._open(ctx), loop).result()
        except BaseException:
            self.close()
            raise

    def group(self, runner: Runner) -> LoopThreadGroup:
        """A group whose results are handed to the calling thread."""
        if self.closed or self._thread is None:
            raise RuntimeError("the asyncio backend is not running")
        return LoopThreadGroup(self, runner)

    def loop_alive(self) -> bool:
        """Whether the synchronous door's loop thread still runs."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    def close(self) -> None:
        """Cancel every task, close the session, stop the loop and join its thread."""
        loop, thread = self.loop, self._thread
        if thread is None or loop is None or self.closed:
            self.closed = True
            return
        try:
            if thread.is_alive():
                asyncio.run_coroutine_threadsafe(self.aclose(), loop).result()
        finally:
            if thread.is_alive():
                loop.call_soon_threadsafe(loop.stop)
            thread.join()
            self._thread = None

    # -- the asynchronous door ------------------------------------------------------------

    async def astart(self) -> None:
        """Open the session in the running loop."""
        self.loop = asyncio.get_running_loop()
        await self._open(client_context(self.settings.verify, self.settings.ca_bundle))

    def agroup(self, runner: Runner) -> LoopGroup:
        """A group of tasks in the running loop."""
        if self.closed or self._session is None:
            raise RuntimeError("the asyncio backend is not running")
        return LoopGroup(self, runner)

    async def aclose(self) -> None:
        """Cancel every task, wait for them, close the session and its connector."""
        self.closed = True
        await cancel_all(self.tasks)
        if self._deadlines is not None:
            self._deadlines.close()
        session, self._session = self._session, None
        if session is not None:
            await session.close()
        socks, self._socks = self._socks, {}
        for other in socks.values():
            await other.close()

    # -- one attempt ----------------------------------------------------------------------

    async def _open(self, ctx: SSLContext) -> None:
        raise_nofile_limit()
        s = self.settings
        self._ctx = ctx
        self._deadlines = Deadlines(asyncio.get_running_loop())
        connector = aiohttp.TCPConnector(
            # Our slots are the limits; aiohttp's must never bind (see the module docstring).
            limit=s.concurrency,  # never 0: aiohttp#4067, "too many open files"
            limit_per_host=0,
            ssl=ctx,
            ttl_dns_cache=int(DNS_TTL),
        )
        self._session = self._new_session(connector)

    def _socks_session(self, proxy: Proxy) -> aiohttp.ClientSession:
        """The session whose connector goes through SOCKS ``proxy`` (aiohttp-socks)."""
        session = self._socks.get(proxy)
        if session is None:
            try:
                from aiohttp_socks import ProxyConnector, ProxyType
            except ImportError:
                raise ProxyError(
                    "socks5:// proxies on the asyncio backend need aiohttp-socks: "
                    "pip install 'polyfetch[socks]'"
                ) from None
            s = self.settings
            connector = ProxyConnector(
                proxy_type=ProxyType.SOCKS5,
                host=proxy.host,
                port=proxy.port,
                username=proxy.username,
                password=proxy.password,
                rdns=proxy.remote_dns,
                limit=s.concurrency,
                limit_per_host=0,
                ssl=self._ctx,
                ttl_dns_cache=int(DNS_TTL),
            )
            session = self._socks[proxy] = self._new_session(connector)
        return session

    def _new_session(self, connector: aiohttp.TCPConnector) -> aiohttp.ClientSession:
        factory = getattr(connector, "_factory", None)
        if getattr(factory, "func", None) is ResponseHandler:  # aiohttp as we know it
            ours = functools.partial(_ResponseHandler, loop=asyncio.get_running_loop())
            connector._factory = ours  # type: ignore[assignment]
        # The request headers are exactly send.headers: they always carry User-Agent, Accept
        # and Accept-Encoding, so aiohttp adds none of its own (it fills only missing ones),
        # and the dummy cookie jar keeps Set-Cookie from adding a Cookie header later.
        return aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,  # polyfetch._body decodes, with the same limits everywhere
            raise_for_status=False,
            timeout=self._timeout,
            max_line_size=MAX_HEADER_BYTES,
            max_field_size=MAX_HEADER_BYTES,
        )

    async def perform(self, send: Send) -> Outcome:
        """One attempt, cancelled at ``send.deadline``; raises only when cancelled."""
        task = asyncio.current_task()
        assert task is not None and self._deadlines is not None
        deadline = self._deadlines.add(send.deadline, task)
        try:
            return await self._attempt(send)
        except asyncio.CancelledError:
            if deadline[EXPIRED] and task.uncancel() == 0:  # ours, not cancel() or close()
                return total_timeout(send)
            raise
        finally:
            self._deadlines.discard(deadline)

    async def _attempt(self, send: Send) -> Outcome:
        assert self._session is not None
        s = self.settings
        timeout = self._timeout
        if send.connect_timeout != s.connect_timeout or send.read_timeout != s.read_timeout:
            timeout = self._client_timeout(send.connect_timeout, send.read_timeout)
        session = self._session
        headers = send.headers
        extra: dict[str, object] = {}
        proxy = send.proxy
        if send.body is not None:
            extra["data"] = send.body
            # aiohttp would add Content-Type: application/octet-stream to a body without one
            extra["skip_auto_headers"] = _NO_AUTO
        try:
            if proxy is not None:
                if proxy.socks:
                    session = self._socks_session(proxy)
                else:  # aiohttp's own: absolute-form for http targets, CONNECT for https ones
                    extra["proxy"] = URL(proxy.url)
                    auth = proxy.authorization
                    if auth is not None:  # CONNECT's headers; a plain request carries its own
                        extra["proxy_headers"] = {"Proxy-Authorization": auth}
                        if send.target.scheme == "http":
                            headers = (*headers, ("Proxy-Authorization", auth))
            resp = await session.request(
                send.method,
                URL(send.target.url, encoded=True),
                headers=headers,
                allow_redirects=False,
                timeout=timeout,
                **extra,  # type: ignore[arg-type]
            )
        except Exception as exc:  # every library error becomes a FetchError
            return map_error(exc, send)
        try:
            body = response_body(
                s,
                send,
                resp.status,
                resp.headers.get("Content-Encoding"),
                resp.content_length,
            )
            content = resp.content
            while chunk := await content.readany():
                body.feed(chunk)
            data = body.finish()
        except BaseException as exc:
            resp.close()  # half-read: the connection must not go back to the pool
            if isinstance(exc, FetchError):
                return exc
            if isinstance(exc, Exception):
                return map_error(exc, send)
            raise  # cancellation (or KeyboardInterrupt) goes on unwinding
        resp.release()
        raw = resp.raw_headers
        v = resp.version
        version = (_VERSIONS.get(v) or f"{v.major}.{v.minor}") if v is not None else None
        return Response(resp.status, lower_headers(raw), data, body.size, raw, version)

    @staticmethod
    def _client_timeout(connect: float, read: float) -> ClientTimeout:
        # aiohttp's timers take a finite number of seconds: timeout=inf leaves them unset
        return ClientTimeout(
            total=None,
            sock_connect=connect if connect < threading.TIMEOUT_MAX else None,
            sock_read=read if read < threading.TIMEOUT_MAX else None,
            ceil_threshold=math.inf,
        )


class _ResponseHandler(ResponseHandler):
    """aiohttp's protocol, passing a parse error that arrives mid-body on to the body's reader.

    aiohttp 3.14 records bad chunked framing that arrives after the head only on the protocol
    and stops the read timer, so the body reader would wait until our deadline (TotalTimeout)
    instead of failing at once (ProtocolError) as on the other backends.
    """

    def set_exception(self, exc: BaseException, *cause: BaseException) -> None:
        payload = self._payload
        super().set_exception(exc, *cause)
        if (
            isinstance(exc, hx.HttpProcessingError)
            and payload is not None
            and not payload.is_eof()
            and payload.exception() is None
        ):
            err = aiohttp.ClientPayloadError(f"invalid body framing: {exc.message}")
            err.__cause__ = cause[0] if cause else exc
            payload.set_exception(err)
