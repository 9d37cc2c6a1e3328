"""The engine behind `PostProcessor`: one thread, the workers, timers, recovery.

Theory of operation
-------------------
`PostProcessor.submit` returns a plain `concurrent.futures.Future` the engine
creates and never marks running, so the caller may cancel it at any time; it
completes with ``dataclasses.replace(result, processed=..., process_error=...)``
and never with an exception. Results without a response pass through, done.

Except for "inline" (the processor runs inside `submit`), one engine thread owns
all state. Everything else only posts messages to it: `submit` ("new"), a
thread pool's done-callbacks ("done"), a cancelled future's callback ("cancel",
but for the process pool, which looks at an item's future when it is the item's
turn) and `close`; `submit` may also hand a page to a free worker itself, under
the engine's lock (`Engine._hand_over`). Callbacks stay cheap and may run in
any thread; the thread also keeps the timers in a heap, so there is no timer
thread per item. Under gevent's patching that thread is a greenlet
and every wait in here is cooperative.

The owned process pool (executor "process", `_pool`) is driven by this thread
alone, with no executor threads: it waits on its mailbox, the workers' pipes
and their process sentinels at once. The pool starts with the engine, so its
workers start and import the processor while the first pages are fetched;
pages wait in the engine's queue until a worker says it is ready. Each worker
has at most `_pool.DEPTH` pages outstanding, so the queue stays here, where
pages can still be cancelled. The pool survives its workers:

- A worker that dies loses only its own pages. The one it was running (its
  slot says so) is blamed; blamed twice, it ends as `WorkerDied`. The page
  waiting behind it goes to another worker without blame, and a new worker
  takes the dead one's place. Deaths that nobody can be blamed for (a worker
  killed while idle) are tolerated three times in a row; after that, the pages
  they lose end as `WorkerDied` and dead workers are replaced only when pages
  are waiting, so a machine that keeps killing workers cannot make a run loop.
- With ``timeout``, a page is timed from the moment a worker *started* it (its
  slot again), not from when it was handed over. When it expires, the page
  ends as `ProcessTimeout` and its worker is SIGKILLed and replaced.
- Workers start with SIGINT blocked and then ignore it, so Ctrl+C reaches only
  the parent and never kills a worker, not even while it starts. `close`
  cancels what is queued, waits up to `CLOSE_GRACE` seconds for pages that
  workers hold and someone still waits for, then kills the workers, and
  returns only when none is left.
- Workers whose exit status someone else reaped (gevent's libev, SIGCHLD
  ignored) are still seen to be dead (`_spawn`).
- Workers never run the caller's ``__main__`` at start (`_spawn`): a script read
  from stdin has no file to run. Only a processor defined in a main script makes
  a worker run that script, when it first needs the processor (`_worker`).
- Workers die with this process, whatever kills it: each watches the end of the
  pipe it was spawned through that only the parent holds, and on Linux the
  kernel also SIGKILLs it when its parent dies (`_worker.watch_parent`). The
  resource tracker then exits by itself; the next spool made removes ours.

Pages and values cross the process boundary as small messages (`transport`).
Thread pools cannot kill a stuck thread: there a timeout only completes the
future with `ProcessTimeout` and `close` waits for the thread. A caller's own
executor is used as it is and never shut down: it gets no worker recovery, and
its timeouts count from the hand-off.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import os
import pickle
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import BrokenExecutor, Executor, Future, InvalidStateError
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from polyfetch.errors import (
    ProcessError,
    ProcessorFailed,
    ProcessTimeout,
    WorkerDied,
)
from polyfetch.postprocess import _worker, transport
from polyfetch.postprocess._pool import Pool, Worker
from polyfetch.postprocess.spec import Processor
from polyfetch.result import Result

__all__ = ["CLOSE_GRACE", "Engine", "done", "outcome"]

#: Seconds `close` waits for running items whose futures are still wanted.
CLOSE_GRACE = 2.0
#: Deaths in a row that no item can be blamed for before the items they lose are given up.
MAX_UNEXPLAINED_DEATHS = 3
_COUNTERS = {"ProcessTimeout": "timeouts", "WorkerDied": "worker_died"}


def done(result: Result) -> Future[Result]:
    """A future that is already done with ``result``."""
    future: Future[Result] = Future()
    future.set_result(result)
    return future


def outcome(result: Result, reply: transport.Reply) -> Result:
    """The processed `Result` for a worker's (or an in-process call's) reply."""
    tag, data = reply
    if tag == "value":
        return transport.evolve(result, processed=data)
    if tag == "error":
        return transport.evolve(result, process_error=ProcessorFailed(data))
    try:
        return transport.evolve(result, processed=transport.decode_reply(reply))
    except Exception as exc:
        message = f"the processed value could not be read back: {_worker.describe(exc)}"
        return transport.evolve(result, process_error=ProcessorFailed(message))


@dataclass(eq=False, slots=True)
class _Item:
    id: int
    result: Result
    proxy: Future[Result]
    #: The processor this item runs (the engine's own, or one given to `Engine.submit`).
    processor: Processor
    payload: transport.Payload | None = None
    #: Files the item may have left in the spool: its inputs, outputs of lost dispatches.
    files: list[str] = field(default_factory=list)
    #: Where the current dispatch writes a big value.
    out: str | None = None
    #: A body too big for the pickle, sent to an owned worker in its segment or a file.
    body: bytes | None = None
    body_file: str | None = None
    #: The owned worker that holds it (and the place of its segment it has), or the
    #: future of a thread pool or a caller's executor.
    worker: Worker | None = None
    place: int | None = None
    inner: Future[Any] | None = None
    dispatches: int = 0
    dispatched_at: float = 0.0
    #: Set by the thread that runs it (thread executor): when it started.
    started: float | None = None
    blamed: int = 0


class _Mailbox:
    """A deque any thread posts to; the engine thread takes everything at once.

    The engine waits on a condition, or, when it drives a process pool, on a
    wake-up pipe beside the workers' pipes: a post writes one byte into it only
    when the engine sleeps, so a busy engine costs posters no system call.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._queue: deque[tuple[Any, ...]] = deque()
        self._closed = False
        self._wake: tuple[int, int] | None = None
        self._sleeping = False

    def open_pipe(self) -> None:
        """Wake the engine through a pipe from now on (see `take_or_wait`)."""
        read, write = os.pipe()
        os.set_blocking(read, False)
        os.set_blocking(write, False)
        self._wake = (read, write)

    def put(self, message: tuple[Any, ...]) -> bool:
        with self._cond:
            if self._closed:
                return False
            self._queue.append(message)
            if self._wake is None:
                self._cond.notify()
            elif self._sleeping:
                self._sleeping = False
                with contextlib.suppress(BlockingIOError):  # full of wake-ups already
                    os.write(self._wake[1], b"\0")
        return True

    def take(self, timeout: float | None) -> list[tuple[Any, ...]]:
        """Every message, waiting up to ``timeout`` seconds for one (condition mode)."""
        with self._cond:
            if not self._queue:
                self._cond.wait(timeout)
            messages = list(self._queue)
            self._queue.clear()
        return messages

    @property
    def wake_fd(self) -> int:
        """The fd that becomes readable when a message is posted to a sleeping engine."""
        assert self._wake is not None
        return self._wake[0]

    def take_or_wait(
        self, timeout: float | None, wait: Callable[[float | None], list[int]]
    ) -> tuple[list[tuple[Any, ...]], list[int]]:
        """Every message and the fds ``wait`` finds ready (without waiting if there are
        messages, else for up to ``timeout`` seconds); pipe mode."""
        assert self._wake is not None
        with self._cond:
            messages = list(self._queue)
            self._queue.clear()
            self._sleeping = not messages
        ready = wait(0 if messages else timeout)
        if not messages:
            with self._cond:
                self._sleeping = False
                messages = list(self._queue)
                self._queue.clear()
        if self._wake[0] in ready:
            ready.remove(self._wake[0])
            try:
                while os.read(self._wake[0], 4096):
                    pass
            except BlockingIOError:
                pass
        return messages, ready

    def close(self) -> list[tuple[Any, ...]]:
        with self._cond:
            self._closed = True
            messages = list(self._queue)
            self._queue.clear()
            wake, self._wake = self._wake, None
        if wake is not None:
            for fd in wake:
                os.close(fd)
        return messages


class Engine:
    """The engine thread and all the state it owns (see the module docstring)."""

    def __init__(
        self,
        processor: Processor,
        kind: str,
        executor: str | Executor,
        workers: int,
        timeout: float | None,
    ) -> None:
        self.processor = processor
        self.kind = kind
        self.workers = workers
        self.timeout = timeout
        self.owned = isinstance(executor, str)
        self.executor: Executor | None = None if self.owned else executor  # type: ignore[assignment]
        self.spool: transport.Spool | None = None
        self.pool: Pool | None = None
        #: Items waiting for a worker of the pool, oldest first.
        self.queue: deque[_Item] = deque()
        self.unexplained = 0
        self.items: dict[int, _Item] = {}
        self.timers: list[tuple[float, int, int]] = []
        self.mailbox = _Mailbox()
        #: Held by the engine thread while it handles what it woke for, and by `_hand_over`.
        self.lock = threading.Lock()
        self.ids = itertools.count(1)
        self.closing = False
        self.close_deadline = 0.0
        self.stats = dict.fromkeys(
            (
                "submitted",
                "processed",
                "failed",
                "timeouts",
                "worker_died",
                "resubmitted",
                "cancelled",
                "replaced",
            ),
            0,
        )
        self.thread = threading.Thread(target=self._run, name="polyfetch-postprocess", daemon=True)

    # -- any thread -------------------------------------------------------------------------

    def start(self) -> None:
        if self.kind != "thread":
            self.spool = transport.Spool()
        if self.kind == "process":
            self.mailbox.open_pipe()  # the pool itself starts in the engine thread
        elif self.kind == "thread" and self.owned:
            from concurrent.futures import ThreadPoolExecutor

            self.executor = ThreadPoolExecutor(self.workers, thread_name_prefix="polyfetch-pp")
        self.thread.start()

    def submit(self, result: Result, processor: Processor | None = None) -> Future[Result]:
        item = _Item(next(self.ids), result, Future(), processor or self.processor)
        if self.kind != "process":
            # The process pool looks at a cancelled future when it is that item's turn
            # instead: a callback per page costs more than the few it would catch early.
            item.proxy.add_done_callback(partial(self._on_proxy_done, item))
        elif self.pool is not None and self._hand_over(item):
            return item.proxy
        if not self.mailbox.put(("new", item)):
            raise RuntimeError("PostProcessor is closed")
        return item.proxy

    def _hand_over(self, item: _Item) -> bool:
        """Give ``item`` to a ready worker from this thread, if one is free and the engine
        is not busy: it saves waking the engine thread, which costs more than the hand-off
        (a copy into shared memory and a small write that cannot block). Never waits."""
        if threading.current_thread() is self.thread or not self.lock.acquire(blocking=False):
            return False
        try:
            pool = self.pool
            if self.closing or self.queue or pool is None or pool.idle() is None:
                return False
            first = self.timers[0] if self.timers else None
            self._on_new(item)
            self._feed()
            if self.queue or (self.timers and self.timers[0] is not first):
                # Left in the queue (the worker just died), or the engine sleeps until a
                # later deadline than the one this item set: it must look again.
                self.mailbox.put(("tick",))
            return True
        finally:
            self.lock.release()

    def close(self) -> None:
        self.mailbox.put(("close",))
        if threading.current_thread() is not self.thread:
            self.thread.join()

    def _on_proxy_done(self, item: _Item, proxy: Future[Result]) -> None:
        if proxy.cancelled():
            self.mailbox.put(("cancel", item))

    def _on_inner_done(self, item: _Item, dispatch: int, inner: Future[Any]) -> None:
        self.mailbox.put(("done", item, dispatch, inner))

    # -- the engine thread ------------------------------------------------------------------

    def _run(self) -> None:
        try:
            if self.kind == "process":
                with self.lock:
                    self._start_pool()
            while True:
                with self.lock:
                    if self.closing and self._close_ready():
                        break
                    wake = self._next_wake()
                pool = self.pool
                ready: list[int] = []
                if pool is None:
                    messages = self.mailbox.take(wake)
                else:
                    messages, ready = self.mailbox.take_or_wait(wake, pool.wait)
                with self.lock:  # `_hand_over` may change the state from another thread
                    for message in messages:
                        getattr(self, f"_on_{message[0]}")(*message[1:])
                    for fd in ready:
                        self._on_ready(fd)
                    self._fire_timers()
                    if pool is not None:
                        self._feed()
        finally:
            with self.lock:
                self._teardown()

    def _on_tick(self) -> None:
        """Only wakes the engine: its next wake-up may come sooner now."""

    def _next_wake(self) -> float | None:
        when = [self.timers[0][0]] if self.timers else []
        if self.closing:
            when.append(self.close_deadline)
        return max(0.0, min(when) - time.monotonic()) if when else None

    def _on_new(self, item: _Item) -> None:
        self.stats["submitted"] += 1
        self.items[item.id] = item
        if self.closing or item.proxy.cancelled():
            self._finish(item, cancelled=True)
            return
        if self.spool is not None:
            try:
                if self.pool is not None:  # the body goes its own way at dispatch (`_send`)
                    meta, item.files, item.body = self.spool.pack_meta(item.result, item.id)
                    item.payload = (meta, None)
                else:
                    item.payload, item.files = self.spool.pack(item.result, item.id)
            except Exception as exc:
                message = f"the page could not be handed to a worker: {_worker.describe(exc)}"
                self._finish(item, error=ProcessorFailed(message))
                return
        if self.pool is not None:
            self.queue.append(item)  # `_feed` hands it to a worker
        else:
            self._dispatch(item)

    def _on_cancel(self, item: _Item) -> None:
        if item.id not in self.items:
            return
        if item.inner is not None:
            item.inner.cancel()  # succeeds only while queued; its "done" then finishes the item
        elif item.worker is None and item in self.queue:
            self.queue.remove(item)
            self._finish(item, cancelled=True)
        # else a worker has it: its reply is dropped

    def _on_close(self) -> None:
        self.closing = True
        self.close_deadline = time.monotonic() + CLOSE_GRACE
        while self.queue:
            self._finish(self.queue.popleft(), cancelled=True)
        for item in list(self.items.values()):
            if item.inner is not None:
                item.inner.cancel()

    def _close_ready(self) -> bool:
        live = [i for i in self.items.values() if not i.proxy.cancelled()]
        return not live or time.monotonic() >= self.close_deadline

    # -- the owned process pool -------------------------------------------------------------

    def _start_pool(self) -> None:
        """Start every worker now, while the first pages are still being fetched."""
        # Never fork: the parent may have threads (an asyncio loop, a gevent hub). Not
        # forkserver either: spawn lets a worker start with SIGINT already blocked (see
        # `Pool.spawn`) and leaves no server process behind after close.
        try:
            from polyfetch.postprocess._spawn import WorkerContext
        except ImportError:  # no popen_spawn_posix: Windows
            import multiprocessing

            context: Any = multiprocessing.get_context("spawn")
        else:
            context = WorkerContext()
        name = self.processor.name
        assert name is not None, "resolve() gives a process pool only processors with a name"
        assert self.spool is not None
        self.pool = Pool(self.workers, context, self.processor.main, name, self.spool.path)
        self.pool.watch(self.mailbox.wake_fd)
        for index in range(self.workers):
            self._spawn(index)

    def _spawn(self, index: int) -> bool:
        """Start a worker in place ``index``; on failure, fail the queue if no worker is left."""
        assert self.pool is not None
        try:
            self.pool.spawn(index)
        except Exception as exc:
            if not self.pool.workers:
                self._fail_queue(f"worker processes cannot be started: {_worker.describe(exc)}")
            return False
        return True

    def _feed(self) -> None:
        """Hand queued items to ready workers; start missing workers if items wait."""
        pool = self.pool
        assert pool is not None
        if self.queue and len(pool.workers) < pool.size and not self.closing:
            for index in range(pool.size):  # places left empty after too many deaths
                if index not in pool.workers and not self._spawn(index):
                    break
        while self.queue:
            worker = pool.idle()
            if worker is None:
                return
            item = self.queue.popleft()
            if item.proxy.cancelled():
                self._finish(item, cancelled=True)
                continue
            try:
                self._send(item, worker)
            except OSError as exc:
                if isinstance(exc, BrokenPipeError | ConnectionError):
                    worker.ready = False  # dead: its sentinel will say so; it takes no more
                    self.queue.appendleft(item)
                    continue
                message = f"the page could not be handed to a worker: {_worker.describe(exc)}"
                self._finish(item, error=ProcessorFailed(message))

    def _send(self, item: _Item, worker: Worker) -> None:
        """Hand ``item`` to ``worker``: its body into the worker's segment (or a file), then
        the request into its pipe."""
        assert self.spool is not None and item.payload is not None
        place = None
        body: str | tuple[int, int] | None = None
        if item.body is not None:
            if len(item.body) <= transport.PLACE:
                place, body = worker.segment.put(item.body)
            else:
                if item.body_file is None:
                    item.body_file = self.spool.body_file(item.id, item.body)
                    item.files.append(item.body_file)
                body = item.body_file
        out = self.spool.output_path(item.id, item.dispatches + 1)
        payload = (item.payload[0], body)
        request = pickle.dumps((item.id, item.processor.name, payload, out), transport.PROTOCOL)
        try:
            worker.conn.send_bytes(request)
        except BaseException:
            if place is not None:
                worker.segment.free.append(place)
            raise
        item.dispatches += 1
        item.out, item.place, item.worker = out, place, worker
        worker.inflight.append(item)
        item.dispatched_at = time.monotonic()
        if self.timeout is not None:
            heapq.heappush(
                self.timers, (item.dispatched_at + self.timeout, item.id, item.dispatches)
            )

    def _on_ready(self, fd: int) -> None:
        """A worker's pipe has something, or its process has exited."""
        pool = self.pool
        assert pool is not None
        worker = pool.fds.get(fd)
        if worker is None:
            return  # gone already (its pipe and sentinel were both ready)
        if fd == worker.conn.fileno():
            try:
                messages = worker.receive()
            except OSError:
                messages = None
            for message in messages or ():
                self._on_message(worker, message)
            if messages is not None:
                return
        else:  # exited: replies it sent before it did still count
            try:
                while (messages := worker.receive()) is not None:
                    for message in messages:
                        self._on_message(worker, message)
            except OSError:
                pass
        self._gone(worker)

    def _on_message(self, worker: Worker, message: bytes | memoryview) -> None:
        if not worker.ready:
            worker.ready = message == transport.READY
            return
        item: _Item = worker.inflight.popleft()
        if item.place is not None:
            worker.segment.free.append(item.place)
            item.place = None
        item.worker = None
        if self.items.get(item.id) is not item:
            return  # finished meanwhile (it timed out)
        reply = transport.read_reply(message)
        if reply[0] != "file":
            item.out = None  # it wrote no file (decode_reply removes one it wrote)
        self._finish(item, reply=reply)

    def _gone(self, worker: Worker) -> None:
        """A worker died (or was killed): blame or hand on its items, and replace it."""
        pool = self.pool
        assert pool is not None
        if pool.workers.get(worker.index) is not worker:
            return
        running = pool.running(worker)
        exitcode = pool.remove(worker)
        held: list[_Item] = list(worker.inflight)
        lost = [i for i in held if self.items.get(i.id) is i]
        worker.inflight.clear()
        culprit = None
        if not worker.killed and running is not None and lost and lost[0].id == running[0]:
            culprit = lost[0]
        if not worker.killed:
            self.unexplained = 0 if culprit is not None else self.unexplained + 1
        given_up = self.unexplained >= MAX_UNEXPLAINED_DEATHS
        requeue = []
        for item in lost:
            item.worker = item.place = None  # its segment went with it
            if item.out is not None:
                item.files.append(item.out)  # it may have written its value first
                item.out = None
            if item is culprit:
                item.blamed += 1
                if item.blamed >= 2:
                    how = f" (exit code {exitcode})" if exitcode is not None else ""
                    message = f"the worker process died{how} while processing this item, twice"
                    self._finish(item, error=WorkerDied(message))
                    continue
            elif given_up and not worker.killed:
                self._finish(item, error=WorkerDied(self._unexplained_message()))
                continue
            if self.closing or item.proxy.cancelled():
                self._finish(item, cancelled=True)
                continue
            self.stats["resubmitted"] += 1
            requeue.append(item)
        self.queue.extendleft(reversed(requeue))
        if self.closing:
            return
        if given_up and not any(w.ready for w in pool.workers.values()):
            self._fail_queue(self._unexplained_message())
        if not given_up or self.queue:
            self.stats["replaced"] += 1
            self._spawn(worker.index)

    def _unexplained_message(self) -> str:
        return f"worker processes died {self.unexplained} times in a row, nothing to blame"

    def _fail_queue(self, message: str) -> None:
        while self.queue:
            self._finish(self.queue.popleft(), error=WorkerDied(message))

    # -- thread pools and a caller's executor -----------------------------------------------

    def _dispatch(self, item: _Item) -> None:
        executor = self.executor
        assert executor is not None
        item.dispatches += 1
        try:
            if self.kind == "thread":
                inner = executor.submit(_call_in_thread, item.processor.func, item)
            else:
                assert self.spool is not None and item.processor.name is not None
                assert item.payload is not None
                item.out = self.spool.output_path(item.id, item.dispatches)
                inner = executor.submit(
                    _worker.run, item.processor.name, item.id, item.payload, item.out
                )
        except Exception as exc:
            self._finish(item, error=WorkerDied(f"the executor failed: {exc!r}"))
            return
        item.inner = inner
        item.dispatched_at = time.monotonic()
        inner.add_done_callback(partial(self._on_inner_done, item, item.dispatches))
        if self.timeout is not None:
            heapq.heappush(
                self.timers, (item.dispatched_at + self.timeout, item.id, item.dispatches)
            )

    def _on_done(self, item: _Item, dispatch: int, inner: Future[Any]) -> None:
        if self.items.get(item.id) is not item or dispatch != item.dispatches:
            return  # already finished (timed out) or a stale dispatch
        item.inner = None
        if inner.cancelled() or inner.exception() is None:
            item.out = None  # never ran, or replied: it left no file (decode_reply removes one)
        elif item.out is not None:
            item.files.append(item.out)  # lost: it may have written its value first
            item.out = None
        if inner.cancelled():
            if item.proxy.cancelled() or self.closing:
                self._finish(item, cancelled=True)
            else:
                self.stats["resubmitted"] += 1
                self._dispatch(item)  # cancelled by someone else: do not lose it
            return
        exc = inner.exception()
        if exc is None:
            self._finish(item, reply=inner.result())
        elif isinstance(exc, BrokenExecutor):
            self._finish(item, error=WorkerDied(f"the executor broke: {exc}"))
        else:
            self._finish(item, error=ProcessorFailed(_worker.describe(exc)))

    # -- timeouts ---------------------------------------------------------------------------

    def _fire_timers(self) -> None:
        now = time.monotonic()
        while self.timers and self.timers[0][0] <= now:
            _, item_id, dispatch = heapq.heappop(self.timers)
            item = self.items.get(item_id)
            if item is None or item.dispatches != dispatch:
                continue
            if item.worker is None and item.inner is None:
                continue  # back in the queue
            started = self._started(item)
            if started is None:  # not started yet: it cannot expire before now + timeout
                heapq.heappush(self.timers, (now + self.timeout, item_id, dispatch))  # type: ignore[operator]
            elif started + self.timeout > now:  # type: ignore[operator]
                heapq.heappush(self.timers, (started + self.timeout, item_id, dispatch))  # type: ignore[operator]
            else:
                self._expire(item, now - started)

    def _started(self, item: _Item) -> float | None:
        if self.kind == "thread":
            return item.started
        if item.worker is None:
            return item.dispatched_at  # a caller's executor: all we know is the hand-off
        assert self.pool is not None
        running = self.pool.running(item.worker)
        if running is None or running[0] != item.id:
            return None
        return min(running[1], time.monotonic())

    def _expire(self, item: _Item, ran: float) -> None:
        note = ""
        worker = item.worker
        if worker is not None:
            assert self.pool is not None
            worker.inflight.remove(item)
            item.worker = item.place = None
            self.pool.kill(worker)  # its death replaces it and hands on the item behind
            note = f"; its worker (pid {worker.pid}) was killed and replaced"
        message = f"processing ran for {ran:.1f} s, over the timeout of {self.timeout:g} s{note}"
        self._finish(item, error=ProcessTimeout(message))

    # -- the end of an item, and of the engine ----------------------------------------------

    def _finish(
        self,
        item: _Item,
        *,
        reply: transport.Reply | None = None,
        error: ProcessError | None = None,
        cancelled: bool = False,
    ) -> None:
        """The one way out for an item: complete (or cancel) its future and remove its files."""
        self.items.pop(item.id, None)
        if reply is not None:
            self.unexplained = 0  # a worker answered: the pool is healthy
        final: Result | None = None
        if not (cancelled or item.proxy.cancelled()):
            if reply is not None:
                final = outcome(item.result, reply)
            else:
                final = transport.evolve(item.result, process_error=error)
            error = final.process_error
        if final is None and reply is not None and reply[0] == "file":
            item.files.append(reply[1])  # a value nobody will read
        for path in [*item.files, item.out] if item.out else item.files:
            transport.remove(path)
        if final is None:
            self.stats["cancelled"] += 1
            _cancel(item.proxy)
            return
        kind = error.kind if error is not None else None
        self.stats[_COUNTERS.get(kind, "failed") if kind else "processed"] += 1
        try:
            item.proxy.set_result(final)
        except InvalidStateError:
            if not item.proxy.cancelled():
                raise  # completed twice: a bug, never to be hidden
            # else cancelled by the caller meanwhile: the outcome is dropped

    def _teardown(self) -> None:
        for message in self.mailbox.close():
            if message[0] == "new":
                self.items[message[1].id] = message[1]
        self.queue.clear()
        for item in list(self.items.values()):
            self._finish(item, cancelled=True)
        if self.pool is not None:
            self.pool.close()
        if self.kind == "thread" and self.owned and self.executor is not None:
            self.executor.shutdown(wait=True, cancel_futures=True)
        if self.spool is not None:
            self.spool.close()


def _cancel(future: Future[Any]) -> None:
    """Cancel ``future`` so that `concurrent.futures.wait` and ``as_completed`` see it too.

    They count a cancelled future as done only once it is CANCELLED_AND_NOTIFIED,
    which `Future.set_running_or_notify_cancel` does for a CANCELLED one (and
    raises for any other state, hence the check under the future's own lock).
    """
    future.cancel()
    with future._condition:  # type: ignore[attr-defined]
        if future._state == "CANCELLED":  # type: ignore[attr-defined]
            future.set_running_or_notify_cancel()


def _call_in_thread(func: Callable[[Result], Any], item: _Item) -> transport.Reply:
    item.started = time.monotonic()
    return _worker.call(func, item.result)
