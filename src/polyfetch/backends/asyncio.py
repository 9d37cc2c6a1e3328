"""The asyncio backend: aiohttp on one event loop (uvloop's when installed and wanted).

Theory of operation. Every item is one task running
``drive_async(plan, self._perform, asyncio.sleep)``: the core's `Plan` decides
attempts, backoff, ``Retry-After`` and redirects; `_perform` makes exactly one
HTTP attempt, with aiohttp's redirects, decompression and status checks off, and
never raises except for cancellation: `_map_error` maps aiohttp's exceptions
onto `polyfetch.errors`. (aiohttp itself still resends a GET or HEAD once when
the connection drops before any response byte - the stale keep-alive case; that
is not an attempt.)

Concurrency is bounded by our own slots (`_Gate`): one per host (`HostSlots`),
then a global one, held only during an attempt, never during a backoff sleep,
because aiohttp's timeouts would otherwise include the wait for a pooled
connection (aiohttp#10313). Each attempt, slot waits included, is cancelled at
the plan's absolute deadline by `_Deadlines` (one timer for all attempts).

Two front doors share that code:

* `AsyncFetcher` runs the tasks in the caller's loop (`astart`, `abatch`, `aclose`);
* `Fetcher` gets a private loop in a thread made by `start`. Submissions cross
  into it with ``call_soon_threadsafe``, results come back through a
  `queue.SimpleQueue` per batch, both coalesced per burst. `close` cancels every
  task, closes the session, stops the loop, shuts down its default executor
  (aiohttp resolves names there) and joins the thread.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import functools
import heapq
import itertools
import math
import os
import queue
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import ClientTimeout
from aiohttp import http_exceptions as hx
from aiohttp.client_proto import ResponseHandler
from yarl import URL

from polyfetch._body import Body
from polyfetch._plan import Response, Send
from polyfetch._tls import client_context
from polyfetch.backends._base import (
    AsyncBatch,
    AsyncCapable,
    Backend,
    Batch,
    HostSlots,
    Outcome,
    drive_async,
    lower_headers,
    new_plan,
    raise_nofile_limit,
    total_timeout,
    unexpected,
)
from polyfetch.errors import (
    BackendError,
    ConnectError,
    ConnectTimeout,
    DNSError,
    FetchError,
    InvalidURL,
    ProtocolError,
    ReadError,
    ReadTimeout,
    TLSError,
)
from polyfetch.result import Result
from polyfetch.settings import Settings

if TYPE_CHECKING:
    from ssl import SSLContext

#: Response header lines up to 64 KiB parse, as on the other backends (aiohttp's default is 8190).
_MAX_HEADER = 64 * 1024
#: Names resolve at most once per 5 minutes per host, not every 10 s (aiohttp's default).
_DNS_TTL = 300
#: A timer firing this close to the deadline is the deadline (loops round timers to 1 ms).
_SLACK = 0.01


class AsyncioBackend(Backend, AsyncCapable):
    """aiohttp, one session per backend; see the module docstring."""

    name = "asyncio"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        s = self.settings
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None  # only for the synchronous door
        self._session: aiohttp.ClientSession | None = None
        self._all = _Gate(s.concurrency)
        self._slots: HostSlots[_Gate] = HostSlots(lambda: _Gate(s.per_host))
        # per_host >= concurrency: the global gate alone keeps every host within per_host.
        self._per_host = s.per_host < s.concurrency
        self._deadlines: _Deadlines | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        # ceil_threshold=inf: aiohttp would otherwise round connect timeouts >= 5 s up to a
        # whole second of loop time. One object serves every attempt that is not near its deadline.
        self._timeout = self._client_timeout(s.connect_timeout, s.read_timeout)
        self._closed = False

    # -- the synchronous door -------------------------------------------------------------

    def start(self) -> None:
        """Start the loop thread and open the session in it."""
        ctx = client_context(self.settings.verify, self.settings.ca_bundle)  # ConfigError early
        loop = _new_loop(self.settings.uvloop)
        thread = threading.Thread(
            target=_run_loop, args=(loop,), name="polyfetch-asyncio", daemon=True
        )
        thread.start()
        self.loop, self._thread = loop, thread
        try:
            asyncio.run_coroutine_threadsafe(self._open(ctx), loop).result()
        except BaseException:
            self.close()
            raise

    def batch(self) -> Batch:
        """A batch whose results are handed to the calling thread."""
        if self._closed or self._thread is None:
            raise RuntimeError("the asyncio backend is not running")
        return ThreadBatch(self)

    def close(self) -> None:
        """Cancel every task, close the session, stop the loop and join its thread."""
        loop, thread = self.loop, self._thread
        if thread is None or loop is None or self._closed:
            self._closed = True
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

    def abatch(self) -> AsyncBatch:
        """A batch of tasks in the running loop."""
        if self._closed or self._session is None:
            raise RuntimeError("the asyncio backend is not running")
        return LoopBatch(self)

    async def aclose(self) -> None:
        """Cancel every task, wait for them, close the session and its connector."""
        self._closed = True
        await _cancel_all(self._tasks)
        if self._deadlines is not None:
            self._deadlines.close()
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    # -- one item, one attempt -------------------------------------------------------------

    async def _open(self, ctx: SSLContext) -> None:
        raise_nofile_limit()
        s = self.settings
        self._deadlines = _Deadlines(asyncio.get_running_loop())
        connector = aiohttp.TCPConnector(
            limit=s.concurrency,  # never 0: aiohttp#4067, "too many open files"
            limit_per_host=s.per_host,
            ssl=ctx,
            ttl_dns_cache=_DNS_TTL,
        )
        factory = getattr(connector, "_factory", None)
        if getattr(factory, "func", None) is ResponseHandler:  # aiohttp as we know it
            ours = functools.partial(_ResponseHandler, loop=asyncio.get_running_loop())
            connector._factory = ours  # type: ignore[assignment]
        # The request headers are exactly send.headers: they always carry User-Agent, Accept
        # and Accept-Encoding, so aiohttp adds none of its own (it fills only missing ones),
        # and the dummy cookie jar keeps Set-Cookie from adding a Cookie header later.
        self._session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,  # polyfetch._body decodes, with the same limits everywhere
            raise_for_status=False,
            timeout=self._timeout,
            max_line_size=_MAX_HEADER,
            max_field_size=_MAX_HEADER,
        )

    async def _perform(self, send: Send) -> Outcome:
        """One attempt, holding a host slot and a global slot, ended at ``send.deadline``."""
        task = asyncio.current_task()
        assert task is not None and self._deadlines is not None
        deadline = self._deadlines.add(send.deadline, task)
        try:
            if not self._per_host:
                return await self._holding(self._all, send)
            key = send.target.host_key
            try:
                return await self._holding(self._slots.get(key), send, self._all)
            finally:
                self._slots.put(key)
        except asyncio.CancelledError:
            if deadline[_EXPIRED] and task.uncancel() == 0:  # ours, not cancel() or close()
                return total_timeout(send)
            raise
        finally:
            self._deadlines.discard(deadline)

    async def _holding(self, gate: _Gate, send: Send, inner: _Gate | None = None) -> Outcome:
        if not gate.take():
            await gate.wait()
        try:
            if inner is not None:
                return await self._holding(inner, send)
            return await self._attempt(send)
        finally:
            gate.give()

    async def _attempt(self, send: Send) -> Outcome:
        assert self._session is not None
        s = self.settings
        timeout = self._timeout
        if send.connect_timeout != s.connect_timeout or send.read_timeout != s.read_timeout:
            timeout = self._client_timeout(send.connect_timeout, send.read_timeout)
        try:
            resp = await self._session.request(
                send.method,
                URL(send.target.url, encoded=True),
                headers=send.headers,
                allow_redirects=False,
                timeout=timeout,
            )
        except Exception as exc:  # every library error becomes a FetchError
            return _map_error(exc, send)
        try:
            # A HEAD, 204 or 304 announces a length it never sends: that is not the body's size.
            has_body = send.method != "HEAD" and resp.status not in (204, 304)
            body = Body(
                s.max_bytes,
                content_encoding=resp.headers.get("Content-Encoding"),
                content_length=resp.content_length if has_body else None,
                keep=s.keep_body,
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
                return _map_error(exc, send)
            raise  # cancellation (or KeyboardInterrupt) goes on unwinding
        resp.release()
        return Response(resp.status, lower_headers(resp.raw_headers), data, body.size)

    @staticmethod
    def _client_timeout(connect: float, read: float) -> ClientTimeout:
        return ClientTimeout(
            total=None, sock_connect=connect, sock_read=read, ceil_threshold=math.inf
        )


class _Gate:
    """A FIFO counting semaphore whose uncontended `take` is a plain call, not a coroutine.

    Per attempt we pass two of these; asyncio.Semaphore's ``async with`` costs four coroutine
    frames each. A released slot goes straight to the oldest waiter (no barging).
    """

    __slots__ = ("_free", "_waiters")

    def __init__(self, slots: int) -> None:
        self._free = slots
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    def take(self) -> bool:
        """Take a slot if one is free and nobody queues for it; else call `wait`."""
        if self._free and not self._waiters:
            self._free -= 1
            return True
        return False

    async def wait(self) -> None:
        """Queue until `give` hands this caller a slot."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.give()  # handed a slot, then cancelled before using it: pass it on
            raise

    def give(self) -> None:
        """Return a slot: to the oldest live waiter, or to the pool."""
        waiters = self._waiters
        while waiters:
            fut = waiters.popleft()
            if not fut.done():  # a cancelled waiter's future is done: skip it
                fut.set_result(None)
                return
        self._free += 1


_WHEN, _TASK, _EXPIRED = 0, 2, 3


class _Deadlines:
    """Cancels attempts at their deadline with one loop timer instead of one per attempt.

    An entry is ``[deadline, seq, task, expired]`` in a heap; a finished attempt only
    clears its task (lazy deletion) and the heap is compacted when mostly dead. This costs
    a fraction of ``asyncio.timeout``, which allocates a timer handle and a context per use.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._heap: list[list[Any]] = []
        self._seq = itertools.count()
        self._dead = 0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf

    def add(self, deadline: float, task: asyncio.Task[Any]) -> list[Any]:
        """Cancel ``task`` at ``deadline`` (time.monotonic) unless `discard`ed first."""
        entry = [deadline, next(self._seq), task, False]
        heapq.heappush(self._heap, entry)
        if deadline < self._timer_at:
            self._arm(deadline)
        return entry

    def discard(self, entry: list[Any]) -> None:
        """The attempt is over."""
        if entry[_TASK] is None or entry[_EXPIRED]:
            return  # discarded already, or popped when it expired
        entry[_TASK] = None
        self._dead += 1
        if self._dead > 256 and self._dead * 2 > len(self._heap):
            self._heap = [e for e in self._heap if e[_TASK] is not None]
            heapq.heapify(self._heap)
            self._dead = 0

    def close(self) -> None:
        """Stop the timer (the caller's loop outlives an `AsyncFetcher`)."""
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._timer_at, self._heap = None, math.inf, []

    def _fire(self) -> None:
        self._timer, self._timer_at = None, math.inf
        heap, now = self._heap, time.monotonic()
        while heap and (heap[0][_TASK] is None or heap[0][_WHEN] <= now):
            entry = heapq.heappop(heap)
            if entry[_TASK] is None:
                self._dead -= 1
            else:
                entry[_EXPIRED] = True
                entry[_TASK].cancel()
        if heap:
            self._arm(heap[0][_WHEN])

    def _arm(self, deadline: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = deadline
        delay = max(0.0, deadline - time.monotonic())
        self._timer = self._loop.call_at(self._loop.time() + delay, self._fire)


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


class _Tasks:
    """The running items of one batch; used only on the loop's thread."""

    def __init__(self, backend: AsyncioBackend, deliver: Callable[[Result], None]) -> None:
        self._backend = backend
        self._deliver = deliver
        self._tasks: set[asyncio.Task[None]] = set()
        self._cancelled = False

    def _spawn(self, item: object, index: int) -> None:
        backend = self._backend
        task = backend.loop.create_task(self._item(item, index))  # type: ignore[union-attr]
        self._tasks.add(task)
        backend._tasks.add(task)  # so that close() finds it whoever forgot the batch

    async def _item(self, item: object, index: int) -> None:
        backend = self._backend
        try:
            plan = new_plan(item, index, backend.settings, time.monotonic(), backend.pacer)
            result = await drive_async(plan, backend._perform, asyncio.sleep)
            if backend.post is not None:
                fut = backend.post.submit(result)
                try:
                    result = await asyncio.wrap_future(fut)
                finally:
                    fut.cancel()  # no-op when done; frees its place in the queue when cancelled
        except Exception as exc:  # a bug must not leave wait_result() waiting forever
            url = item if isinstance(item, str) else repr(item)
            result = Result(url=url, index=index, error=unexpected(exc))
        # Delivered from the task itself, not a done-callback: one loop callback less per item.
        # A cancelled task never gets here; _cancel_all forgets it instead.
        task = asyncio.current_task()
        self._tasks.discard(task)  # type: ignore[arg-type]
        backend._tasks.discard(task)  # type: ignore[arg-type]
        self._deliver(result)

    async def _cancel_tasks(self) -> None:
        self._cancelled = True
        await _cancel_all(self._tasks, self._backend._tasks)


class LoopBatch(_Tasks, AsyncBatch):
    """A batch for `AsyncFetcher`: tasks and a results queue in the caller's loop."""

    def __init__(self, backend: AsyncioBackend) -> None:
        self._results: asyncio.Queue[Result] = asyncio.Queue()
        super().__init__(backend, self._results.put_nowait)

    def submit(self, item: object, index: int) -> None:
        """Start a task for ``item``."""
        if self._cancelled or self._backend._closed:
            raise RuntimeError("this batch is cancelled or its fetcher closed")
        self._spawn(item, index)

    async def wait_result(self) -> Result:
        """The next finished item."""
        return await self._results.get()

    async def cancel(self) -> None:
        """Cancel this batch's tasks and wait until they are gone."""
        await self._cancel_tasks()


class ThreadBatch(_Tasks, Batch):
    """A batch for `Fetcher`: tasks on the backend's loop thread, results to the caller's thread.

    Both directions are coalesced, because every cross-thread wake-up costs context switches
    and GIL hand-offs: results finished in one loop iteration travel as one list, and items
    submitted before the loop gets round to them are started by one callback.
    """

    def __init__(self, backend: AsyncioBackend) -> None:
        super().__init__(backend, self._deliver)
        self._results: queue.SimpleQueue[list[Result]] = queue.SimpleQueue()
        self._ready: collections.deque[Result] = collections.deque()  # caller's side
        self._outbox: list[Result] = []  # loop's side
        self._inbox: collections.deque[tuple[object, int]] = collections.deque()
        self._wake_pending = False

    def _deliver(self, result: Result) -> None:
        self._outbox.append(result)
        if len(self._outbox) == 1:
            self._backend.loop.call_soon(self._flush)  # type: ignore[union-attr]

    def _flush(self) -> None:
        out, self._outbox = self._outbox, []
        self._results.put(out)

    def submit(self, item: object, index: int) -> None:
        """Hand ``item`` to the loop; one wake-up serves all items submitted before it runs."""
        loop = self._backend.loop
        if self._cancelled or self._backend._closed or loop is None:
            raise RuntimeError("this batch is cancelled or its fetcher closed")
        self._inbox.append((item, index))
        if not self._wake_pending:
            self._wake_pending = True
            loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        # Clear the flag before draining: an item appended after this line either is drained
        # below or sees the flag down and schedules another drain (the GIL orders both).
        self._wake_pending = False
        inbox = self._inbox
        while inbox:
            item, index = inbox.popleft()
            if not self._cancelled:
                self._spawn(item, index)

    def wait_result(self) -> Result:
        """Block until an item of this batch is done."""
        while not self._ready:
            try:
                self._ready.extend(self._results.get(timeout=1.0))
            except queue.Empty:
                thread = self._backend._thread
                if thread is None or not thread.is_alive():
                    raise BackendError("the asyncio backend's loop thread is gone") from None
        return self._ready.popleft()

    def cancel(self) -> None:
        """Cancel this batch's tasks (and unstarted items) and wait until none is running."""
        loop = self._backend.loop
        self._cancelled = True
        if self._backend._thread is None or loop is None or loop.is_closed():
            return  # the fetcher was closed first: close() already cancelled everything
        fut = asyncio.run_coroutine_threadsafe(self._cancel_tasks(), loop)
        # CancelledError/RuntimeError: the loop was stopped under us by close(), which
        # cancels every task itself.
        with contextlib.suppress(concurrent.futures.CancelledError, RuntimeError):
            fut.result()


async def _cancel_all(tasks: set[asyncio.Task[None]], *also: set[asyncio.Task[None]]) -> None:
    """Cancel ``tasks``, wait until they are done, and forget them (in ``also`` too)."""
    pending = list(tasks)
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending)
    tasks.difference_update(pending)
    for other in also:
        other.difference_update(pending)


def _map_error(exc: Exception, send: Send) -> FetchError:
    """aiohttp's exceptions -> the taxonomy; subclasses are tested before their bases."""
    t = send.target
    where = f"{t.host}:{t.port}"
    if isinstance(exc, TimeoutError) and time.monotonic() >= send.deadline - _SLACK:
        return total_timeout(send)  # a connect/read timer that ran out with the request's time
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return DNSError(f"cannot resolve host {t.host!r}: {_reason(exc.os_error)}")
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return TLSError(f"TLS certificate of {where} rejected: {exc.certificate_error}")
    if isinstance(exc, aiohttp.ClientSSLError):  # ClientConnectorSSLError and its siblings
        return TLSError(f"TLS handshake with {where} failed: {exc.os_error}")
    if isinstance(exc, aiohttp.ServerFingerprintMismatch):
        return TLSError(f"TLS certificate fingerprint of {where} does not match")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return ConnectError(f"cannot connect to {where}: {_reason(exc.os_error)}")
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return ConnectTimeout(f"connecting to {where} took longer than {send.connect_timeout:g} s")
    if isinstance(exc, TimeoutError):  # SocketTimeoutError (sock_read ran out), or a bare one
        return ReadTimeout(f"no data from {where} for {send.read_timeout:g} s")
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return ReadError(f"{where} closed the connection before the response was complete")
    if isinstance(exc, aiohttp.ClientPayloadError):
        return _payload_error(exc, where)
    if isinstance(exc, aiohttp.ClientResponseError | hx.HttpProcessingError):  # parser's verdict
        return ProtocolError(f"malformed response from {where}: {_one_line(exc.message)}")
    if isinstance(exc, aiohttp.ClientConnectionError | OSError):  # resets, broken pipes
        return ReadError(f"connection to {where} broken: {exc}")
    if isinstance(exc, aiohttp.InvalidURL):
        return InvalidURL(f"aiohttp rejected the URL {t.url!r}: {exc}")
    return unexpected(exc)


def _payload_error(exc: aiohttp.ClientPayloadError, where: str) -> FetchError:
    """A body cut short (EOF, reset) is a ReadError; a body with bad framing a ProtocolError."""
    cause = exc.__cause__
    text = str(exc)
    if (
        isinstance(cause, hx.ContentLengthError)
        or "not completed" in text
        or (isinstance(cause, hx.TransferEncodingError) and "Not enough data" in str(cause))
    ):
        return ReadError(f"{where} closed the connection before the body was complete")
    if isinstance(cause, OSError):
        return ReadError(f"connection to {where} broken mid-body: {cause}")
    detail = cause.message if isinstance(cause, hx.HttpProcessingError) else cause or text
    return ProtocolError(f"malformed body from {where}: {_one_line(detail)}")


def _reason(err: OSError) -> str:
    # asyncio words a refused connection "Connect call failed ('127.0.0.1', 1)": name the errno
    if isinstance(err.errno, int) and err.errno > 0:
        return os.strerror(err.errno)
    return err.strerror or str(err) or type(err).__name__


def _one_line(message: object) -> str:
    """llhttp's multi-line messages (with a caret under the bad byte) on one short line."""
    lines = [ln.strip() for ln in str(message).splitlines()]
    text = " ".join(ln for ln in lines if ln and set(ln) != {"^"})
    return text if len(text) <= 200 else text[:197] + "..."


def _new_loop(want_uvloop: bool) -> asyncio.AbstractEventLoop:
    if want_uvloop:
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def _run_loop(loop: asyncio.AbstractEventLoop) -> None:
    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
    finally:
        try:
            loop.run_until_complete(loop.shutdown_asyncgens())
            # aiohttp's resolver runs getaddrinfo in the default executor: join its threads too
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            asyncio.set_event_loop(None)
            loop.close()
