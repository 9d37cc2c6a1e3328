"""The threads backend: a thread pool, each worker running one item at a time on urllib3.

The pool has ``concurrency`` threads, so it bounds the items in flight by
itself (``pooled``: the core keeps no global slot). A blocked thread cannot be
interrupted, so deadlines and cancellation reach it through its socket: a
single watchdog thread keeps a heap of the attempts' deadlines and shuts down
the socket of any attempt that outlives its deadline or whose group is
cancelled. The worker then sees its read fail, and the core's deadline rule
makes the attempt a `TotalTimeout` (or it is dropped, when cancelled).
"""

from __future__ import annotations

import collections
import contextlib
import heapq
import itertools
import queue
import socket
import threading
import time
import weakref
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from polyfetch._plan import Response, Send
from polyfetch._rlimit import raise_nofile_limit
from polyfetch._slots import seconds_until
from polyfetch.backends._base import Backend, BlockingGroup
from polyfetch.backends._blocking import BlockingClient
from polyfetch.errors import FetchError
from polyfetch.result import Result

if TYPE_CHECKING:
    from polyfetch._runner import Runner

T = TypeVar("T")


class _Cancelled(BaseException):
    """Unwinds a worker whose group was cancelled (not an Exception: nothing may swallow it)."""


class ThreadSemaphore:
    """A FIFO counting semaphore for threads: uncontended, one lock round trip.

    (``threading.Semaphore`` is a Condition in Python: several times the cost per
    acquire.) A release hands its unit straight to the oldest waiter.
    """

    __slots__ = ("_free", "_lock", "_waiters")

    def __init__(self, value: int) -> None:
        self._free = value
        self._lock = threading.Lock()
        self._waiters: collections.deque[threading.Lock] = collections.deque()

    def acquire(self, until: float) -> bool:
        """Take a unit by ``until`` (time.monotonic); False if none came."""
        with self._lock:
            if self._free and not self._waiters:
                self._free -= 1
                return True
            waiter = threading.Lock()
            waiter.acquire()
            self._waiters.append(waiter)
        if waiter.acquire(timeout=seconds_until(until, time.monotonic())):
            return True
        with self._lock:
            try:
                self._waiters.remove(waiter)
            except ValueError:  # handed a unit just as the wait ran out: it is ours
                return True
        return False

    def release(self) -> None:
        """Give a unit back: to the oldest waiter, or to the pool."""
        with self._lock:
            if self._waiters:
                self._waiters.popleft().release()
            else:
                self._free += 1


@dataclass(eq=False)
class _Watch:
    deadline: float
    group: PoolGroup
    sock: socket.socket | None = None
    active: bool = True
    order: int = field(default_factory=itertools.count().__next__)

    def __lt__(self, other: _Watch) -> bool:
        return (self.deadline, self.order) < (other.deadline, other.order)

    def kill(self) -> None:
        sock = self.sock
        if sock is not None:
            # socket.socket's own shutdown: SSLSocket's would race with the reader
            with contextlib.suppress(OSError):
                socket.socket.shutdown(sock, socket.SHUT_RDWR)


class Watchdog:
    """One thread that ends attempts at their deadline by shutting their socket down."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[_Watch] = []
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="polyfetch-watchdog", daemon=True)
        self._thread.start()

    def arm(self, deadline: float, group: PoolGroup) -> _Watch:
        """Watch the attempt about to run in this thread."""
        watch = _Watch(deadline, group)
        with self._cond:
            heapq.heappush(self._heap, watch)
            if self._heap[0] is watch:
                self._cond.notify()
        return watch

    def attach(self, watch: _Watch, sock: socket.socket | None) -> None:
        """The attempt now reads from ``sock`` (None: no longer; under the lock, so that a
        socket handed back to the pool is never shut down for another attempt)."""
        with self._cond:
            watch.sock = sock
            if sock is not None and (
                watch.group.cancelled.is_set() or time.monotonic() >= watch.deadline
            ):
                watch.kill()

    def disarm(self, watch: _Watch) -> None:
        """The attempt is over (lazy deletion: the heap entry is skipped when it comes up)."""
        with self._cond:
            watch.active = False
            watch.sock = None

    def kill_group(self, group: PoolGroup) -> None:
        """Shut down every connection the group's running attempts use."""
        with self._cond:
            for watch in self._heap:
                if watch.group is group and watch.active:
                    watch.kill()

    def _run(self) -> None:
        with self._cond:
            while not self._stopping:
                while self._heap and not self._heap[0].active:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._cond.wait()
                    continue
                left = self._heap[0].deadline - time.monotonic()
                if left > 0:
                    self._cond.wait(min(left, threading.TIMEOUT_MAX))  # timeout=inf: no deadline
                    continue
                heapq.heappop(self._heap).kill()

    def close(self) -> None:
        """Stop the watchdog thread and wait for it."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        self._thread.join()


class PoolGroup(BlockingGroup):
    """One map() call: its futures, its results and its cancellation flag."""

    def __init__(self, backend: ThreadsBackend, runner: Runner) -> None:
        self._backend = backend
        self._runner = runner
        self._client = backend.client
        self._watchdog = backend.watchdog
        self._results: queue.SimpleQueue[Result] = queue.SimpleQueue()
        self._futures: set[Future[None]] = set()
        self._processing: set[Future[object]] = set()
        self._lock = threading.Lock()
        self.cancelled = threading.Event()

    def spawn(self, item: object, index: int) -> None:
        fut = self._backend.pool.submit(self._run, item, index)
        with self._lock:
            self._futures.add(fut)
        fut.add_done_callback(self._forget)

    def _forget(self, fut: Future[None]) -> None:
        with self._lock:
            self._futures.discard(fut)

    def _run(self, item: object, index: int) -> None:
        try:
            result = self._runner.run(item, index, self)
        except _Cancelled:
            return
        self._results.put(result)

    def perform(self, send: Send) -> Response | FetchError:
        if self.cancelled.is_set():
            raise _Cancelled
        watchdog = self._watchdog
        watch = watchdog.arm(send.deadline, self)
        try:
            outcome = self._client.perform(send, lambda c: watchdog.attach(watch, c))
        finally:
            watchdog.disarm(watch)
        if self.cancelled.is_set():
            raise _Cancelled
        return outcome

    def sleep(self, seconds: float) -> None:
        if self.cancelled.wait(min(seconds, threading.TIMEOUT_MAX)):
            raise _Cancelled

    def wait_future(self, fut: Future[T]) -> T:
        with self._lock:
            self._processing.add(fut)  # type: ignore[arg-type]
        try:
            if self.cancelled.is_set():
                raise _Cancelled
            return fut.result()
        except CancelledError:  # cancel() cancelled it
            raise _Cancelled from None
        finally:
            with self._lock:
                self._processing.discard(fut)  # type: ignore[arg-type]

    def next_result(self) -> Result:
        return self._results.get()

    def cancel(self) -> None:
        self.cancelled.set()
        with self._lock:
            futures = list(self._futures)
            waits = list(self._processing)
        for fut in futures:
            fut.cancel()
        for wait_on in waits:
            wait_on.cancel()
        self._watchdog.kill_group(self)
        wait(futures)


class ThreadsBackend(Backend):
    """A thread pool of ``concurrency`` workers over one urllib3 pool manager."""

    name = "threads"
    pooled = True
    threaded = True

    def start(self) -> None:
        raise_nofile_limit()
        self.client = BlockingClient(self.settings)
        self.watchdog = Watchdog()
        self.pool = ThreadPoolExecutor(self.settings.concurrency, thread_name_prefix="polyfetch")
        self._groups: weakref.WeakSet[PoolGroup] = weakref.WeakSet()

    def semaphore(self, value: int) -> ThreadSemaphore:
        return ThreadSemaphore(value)

    def group(self, runner: Runner) -> PoolGroup:
        group = PoolGroup(self, runner)
        self._groups.add(group)
        return group

    def close(self) -> None:
        for group in list(self._groups):
            group.cancel()
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.watchdog.close()
        self.client.close()
