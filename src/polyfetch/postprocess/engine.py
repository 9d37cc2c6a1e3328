"""The engine behind `PostProcessor`: one thread, an executor, timers, recovery.

Theory of operation
-------------------
`PostProcessor.submit` returns a plain `concurrent.futures.Future` the engine
creates and never marks running, so the caller may cancel it at any time; it
completes with ``dataclasses.replace(result, processed=..., process_error=...)``
and never with an exception. Results without a response pass through, done.

Except for "inline" (the processor runs inside `submit`), one engine thread owns
all state. Everything else only posts messages to it: `submit` ("new"), the
executor's done-callbacks ("done"), a cancelled future's callback ("cancel") and
`close`. Callbacks stay cheap and may run in any thread; no lock is held while
an executor is called; the thread also keeps the timers in a heap, so there is
no timer thread per item. Under gevent's patching that thread is a greenlet
and every wait in here is cooperative.

The owned process pool (executor "process": spawned workers, started at
`start` so they are up by the time the first pages arrive) survives its
workers:

- A worker that dies breaks the whole `ProcessPoolExecutor` (every pending
  future fails with `BrokenProcessPool`). The engine retires that pool, starts a
  new one on the next dispatch and resubmits every item whose work was lost.
  Only an item that was *running in the worker that died* is blamed (see
  `_pool`); blamed twice, it ends as `WorkerDied`. Queued items and items that
  were running in healthy workers are resubmitted without blame. Breaks that
  nobody can be blamed for (a worker killed while idle) are tolerated three
  times in a row before the items they lose end as `WorkerDied`, so a machine
  that keeps killing workers cannot make a run loop forever.
- With ``timeout``, an item is timed from the moment a worker *started* it (the
  worker says so in a shared slot), not from when it was queued. When it
  expires, the item ends as `ProcessTimeout`, its worker is SIGKILLed and the
  pool retired; the other in-flight items are resubmitted without blame.
- Workers start with SIGINT blocked and then ignore it (pool initializer), so
  Ctrl+C reaches only the parent and never breaks the pool, not even while a
  worker starts. `close` cancels what is queued, waits up to `CLOSE_GRACE`
  seconds for running items someone still waits for (the executor hands up to
  ``2 * workers + 1`` items to its workers and call queue; those cannot be
  cancelled), then kills the workers, and returns only when none is left.
- Workers whose exit status someone else reaped (gevent's libev, SIGCHLD
  ignored) are still seen to be dead (`_spawn`), else the executor would spin.
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

import heapq
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import BrokenExecutor, Executor, Future, InvalidStateError
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

from polyfetch.errors import (
    ProcessError,
    ProcessorFailed,
    ProcessTimeout,
    WorkerDied,
)
from polyfetch.postprocess import _worker, transport
from polyfetch.postprocess._pool import Generation
from polyfetch.postprocess.spec import Processor
from polyfetch.result import Result

__all__ = ["CLOSE_GRACE", "Engine", "done", "outcome"]

#: Seconds `close` waits for running items whose futures are still wanted.
CLOSE_GRACE = 2.0
#: Breaks in a row that no item can be blamed for before the items they lose are given up.
MAX_UNEXPLAINED_BREAKS = 3
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
        return replace(result, processed=data)
    if tag == "error":
        return replace(result, process_error=ProcessorFailed(data))
    try:
        return replace(result, processed=transport.decode_reply(reply))
    except Exception as exc:
        message = f"the processed value could not be read back: {_worker.describe(exc)}"
        return replace(result, process_error=ProcessorFailed(message))


@dataclass(eq=False)
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
    inner: Future[Any] | None = None
    dispatches: int = 0
    generation: Generation | None = None
    dispatched_at: float = 0.0
    #: Set by the thread that runs it (thread executor): when it started.
    started: float | None = None
    blamed: int = 0


class _Mailbox:
    """A deque and a condition: any thread posts, the engine thread takes everything at once."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._queue: deque[tuple[Any, ...]] = deque()
        self._closed = False

    def put(self, message: tuple[Any, ...]) -> bool:
        with self._cond:
            if self._closed:
                return False
            self._queue.append(message)
            self._cond.notify()
        return True

    def take(self, timeout: float | None) -> list[tuple[Any, ...]]:
        with self._cond:
            if not self._queue:
                self._cond.wait(timeout)
            messages = list(self._queue)
            self._queue.clear()
        return messages

    def close(self) -> list[tuple[Any, ...]]:
        with self._cond:
            self._closed = True
            messages = list(self._queue)
            self._queue.clear()
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
        self.context: Any = None
        self.generation: Generation | None = None
        self.generations = 0
        self.unexplained = 0
        self.items: dict[int, _Item] = {}
        self.timers: list[tuple[float, int, int]] = []
        self.mailbox = _Mailbox()
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
                "pools",
            ),
            0,
        )
        self.thread = threading.Thread(target=self._run, name="polyfetch-postprocess", daemon=True)

    # -- any thread -------------------------------------------------------------------------

    def start(self) -> None:
        if self.kind != "thread":
            self.spool = transport.Spool()
        if self.kind == "process":
            # Never fork: the parent may have threads (an asyncio loop, a gevent hub). Not
            # forkserver either: spawn lets a worker start with SIGINT already blocked (see
            # `Generation.submit`), leaves no server process behind after close, and started
            # a pool as fast here (~0.4-0.5 s to the first results, 2 workers, either way).
            try:
                from polyfetch.postprocess._spawn import WorkerContext
            except ImportError:  # no popen_spawn_posix: Windows
                import multiprocessing

                self.context = multiprocessing.get_context("spawn")
            else:
                self.context = WorkerContext()
        elif self.kind == "thread" and self.owned:
            from concurrent.futures import ThreadPoolExecutor

            self.executor = ThreadPoolExecutor(self.workers, thread_name_prefix="polyfetch-pp")
        self.thread.start()

    def submit(self, result: Result, processor: Processor | None = None) -> Future[Result]:
        # No I/O here: the caller may be an event loop. The engine thread packs the page.
        item = _Item(next(self.ids), result, Future(), processor or self.processor)
        item.proxy.add_done_callback(partial(self._on_proxy_done, item))
        if not self.mailbox.put(("new", item)):
            raise RuntimeError("PostProcessor is closed")
        return item.proxy

    def close(self) -> None:
        self.mailbox.put(("close",))
        if threading.current_thread() is not self.thread:
            self.thread.join()

    def _on_proxy_done(self, item: _Item, proxy: Future[Result]) -> None:
        if proxy.cancelled():
            self.mailbox.put(("cancel", item))

    def _on_inner_done(
        self, item: _Item, dispatch: int, generation: Generation | None, inner: Future[Any]
    ) -> None:
        if (
            generation is not None
            and generation.culprits is None
            and not inner.cancelled()
            and isinstance(inner.exception(), BrokenExecutor)
        ):
            # Now, in the executor's manager thread, before it terminates the survivors.
            generation.snapshot()
        self.mailbox.put(("done", item, dispatch, generation, inner))

    # -- the engine thread ------------------------------------------------------------------

    def _run(self) -> None:
        try:
            if self.kind == "process":
                self._warm_up()
            while not (self.closing and self._close_ready()):
                for message in self.mailbox.take(self._next_wake()):
                    getattr(self, f"_on_{message[0]}")(*message[1:])
                self._fire_timers()
        finally:
            self._teardown()

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
                item.payload, item.files = self.spool.pack(item.result, item.id)
            except Exception as exc:
                message = f"the page could not be handed to a worker: {_worker.describe(exc)}"
                self._finish(item, error=ProcessorFailed(message))
                return
        self._dispatch(item)

    def _on_cancel(self, item: _Item) -> None:
        if item.id in self.items and item.inner is not None:
            item.inner.cancel()  # succeeds only while queued; its "done" then finishes the item

    def _on_close(self) -> None:
        self.closing = True
        self.close_deadline = time.monotonic() + CLOSE_GRACE
        for item in list(self.items.values()):
            if item.inner is not None:
                item.inner.cancel()

    def _close_ready(self) -> bool:
        live = [i for i in self.items.values() if not i.proxy.cancelled()]
        return not live or time.monotonic() >= self.close_deadline

    def _warm_up(self) -> None:
        """Start the workers now, while the first pages are still being fetched."""
        generation = self._generation()
        try:
            for _ in range(self.workers):  # the executor starts one worker per submit
                generation.submit(_worker.noop)
        except Exception:
            self._retire(generation, cancel=True)  # the first dispatch will try again

    def _generation(self) -> Generation:
        if self.generation is None:
            self.generations += 1
            self.stats["pools"] += 1
            self.generation = Generation.start(
                self.generations, self.workers, self.context, self.processor.main
            )
        return self.generation

    def _dispatch(self, item: _Item) -> None:
        for _ in range(3):
            generation = None
            if self.kind == "process":
                generation = self._generation()
                executor: Executor = generation.executor
            else:
                assert self.executor is not None
                executor = self.executor
            item.dispatches += 1
            try:
                if self.kind == "thread":
                    inner = executor.submit(_call_in_thread, item.processor.func, item)
                else:
                    assert self.spool is not None and item.processor.name is not None
                    assert item.payload is not None
                    item.out = self.spool.output_path(item.id, item.dispatches)
                    submit = generation.submit if generation is not None else executor.submit
                    inner = submit(
                        _worker.run, item.processor.name, item.id, item.payload, item.out
                    )
            except Exception as exc:
                if generation is None:
                    self._finish(item, error=WorkerDied(f"the executor failed: {exc!r}"))
                    return
                # Broke while idle (nobody to blame), or could not start a worker: a new pool.
                self._retire(generation, cancel=not isinstance(exc, BrokenExecutor))
                continue
            break
        else:
            self._finish(item, error=WorkerDied("worker processes cannot be started"))
            return
        item.inner, item.generation = inner, generation
        item.dispatched_at = time.monotonic()
        inner.add_done_callback(partial(self._on_inner_done, item, item.dispatches, generation))
        if self.timeout is not None:
            heapq.heappush(
                self.timers, (item.dispatched_at + self.timeout, item.id, item.dispatches)
            )

    def _on_done(
        self, item: _Item, dispatch: int, generation: Generation | None, inner: Future[Any]
    ) -> None:
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
                self._redispatch(item)  # cancelled by someone else: do not lose it
            return
        exc = inner.exception()
        if exc is None:
            self._finish(item, reply=inner.result())
        elif isinstance(exc, BrokenExecutor) and generation is not None:
            self._lost(item, generation)
        elif isinstance(exc, BrokenExecutor):
            self._finish(item, error=WorkerDied(f"the executor broke: {exc}"))
        else:
            self._finish(item, error=ProcessorFailed(_worker.describe(exc)))

    def _lost(self, item: _Item, generation: Generation) -> None:
        """An item's pool broke under it: blame it or resubmit it."""
        culprits = generation.culprits or {}
        if not generation.retired:  # the first of this pool's lost items
            self.unexplained = 0 if culprits else self.unexplained + 1
            self._retire(generation)
        culprit = culprits.get(item.id)
        if culprit is not None and culprit.pid not in generation.killed:
            item.blamed += 1
            if item.blamed >= 2:
                how = f" (exit code {culprit.exitcode})" if culprit.exitcode is not None else ""
                self._finish(
                    item,
                    error=WorkerDied(
                        f"the worker process died{how} while processing this item, twice"
                    ),
                )
                return
        elif self.unexplained >= MAX_UNEXPLAINED_BREAKS:
            self._finish(
                item,
                error=WorkerDied(
                    f"worker processes died {self.unexplained} times in a row, nothing to blame"
                ),
            )
            return
        if self.closing or item.proxy.cancelled():
            self._finish(item, cancelled=True)
        else:
            self._redispatch(item)

    def _redispatch(self, item: _Item) -> None:
        self.stats["resubmitted"] += 1
        self._dispatch(item)

    def _retire(self, generation: Generation, *, cancel: bool = False) -> None:
        if self.generation is generation:
            self.generation = None
        generation.retire(cancel=cancel)

    def _fire_timers(self) -> None:
        now = time.monotonic()
        while self.timers and self.timers[0][0] <= now:
            _, item_id, dispatch = heapq.heappop(self.timers)
            item = self.items.get(item_id)
            if item is None or item.dispatches != dispatch or item.inner is None:
                continue
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
        if item.generation is None:
            return item.dispatched_at  # a caller's executor: all we know is the hand-off
        if item.generation.retired:
            return None
        running = item.generation.running().get(item.id)
        return min(running[1], time.monotonic()) if running else None

    def _expire(self, item: _Item, ran: float) -> None:
        generation = item.generation
        note = ""
        if generation is not None:
            running = generation.running().get(item.id)
            if running is not None:
                generation.kill(running[0])
                note = f"; its worker (pid {running[0]}) was killed and replaced"
            self._retire(generation)
        message = f"processing ran for {ran:.1f} s, over the timeout of {self.timeout:g} s{note}"
        self._finish(item, error=ProcessTimeout(message))

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
                final = replace(item.result, process_error=error)
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
        running = bool(self.items)
        for item in list(self.items.values()):
            self._finish(item, cancelled=True)
        generation, self.generation = self.generation, None
        if generation is not None:
            if running:
                generation.retire()
            else:
                generation.close()
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
