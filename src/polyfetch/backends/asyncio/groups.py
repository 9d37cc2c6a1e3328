"""Task groups: one per ``map()`` call, in the caller's loop or behind the sync `Fetcher`."""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import queue
import threading
from concurrent.futures import Future
from typing import TYPE_CHECKING, TypeVar

from polyfetch._plan import Send
from polyfetch.backends._base import AsyncGroup, Group
from polyfetch.errors import BackendError
from polyfetch.result import Result

if TYPE_CHECKING:
    from polyfetch._runner import Outcome, Runner
    from polyfetch.backends.asyncio import AsyncioBackend

T = TypeVar("T")


class _Tasks:
    """The running items of one group and the runner's primitives; used on the loop only."""

    def __init__(self, backend: AsyncioBackend, runner: Runner) -> None:
        self._backend = backend
        self._runner = runner
        self._tasks: set[asyncio.Task[None]] = set()
        self._cancelled = False

    def _start(self, item: object, index: int) -> None:
        backend = self._backend
        task = backend.loop.create_task(self._item(item, index))  # type: ignore[union-attr]
        self._tasks.add(task)
        backend.tasks.add(task)  # so that close() finds it whoever forgot the group

    async def _item(self, item: object, index: int) -> None:
        result = await self._runner.arun(item, index, self)  # raises only when cancelled
        # Delivered from the task itself, not a done-callback: one loop callback less per item.
        # A cancelled task never gets here; cancel_all forgets it instead.
        task = asyncio.current_task()
        self._tasks.discard(task)  # type: ignore[arg-type]
        self._backend.tasks.discard(task)  # type: ignore[arg-type]
        self._deliver(result)

    def _deliver(self, result: Result) -> None:
        raise NotImplementedError

    async def perform(self, send: Send) -> Outcome:
        """One attempt (`AsyncioBackend.perform`)."""
        return await self._backend.perform(send)

    async def sleep(self, seconds: float) -> None:
        """``asyncio.sleep``, capped so that a huge wait cannot overflow the loop's timer."""
        await asyncio.sleep(min(seconds, threading.TIMEOUT_MAX))

    async def wait_future(self, fut: Future[T]) -> T:
        """The future, awaited through ``asyncio.wrap_future``."""
        return await asyncio.wrap_future(fut)

    async def _cancel_tasks(self) -> None:
        self._cancelled = True
        await cancel_all(self._tasks, self._backend.tasks)


class LoopGroup(_Tasks, AsyncGroup):
    """A group for `AsyncFetcher`: tasks and a results queue in the caller's loop."""

    def __init__(self, backend: AsyncioBackend, runner: Runner) -> None:
        super().__init__(backend, runner)
        self._results: asyncio.Queue[Result] = asyncio.Queue()

    def _deliver(self, result: Result) -> None:
        self._results.put_nowait(result)

    def spawn(self, item: object, index: int) -> None:
        """Start a task for ``item``."""
        if self._cancelled or self._backend.closed:
            raise RuntimeError("this group is cancelled or its fetcher closed")
        self._start(item, index)

    async def next_result(self) -> Result:
        """The next finished item."""
        return await self._results.get()

    async def cancel(self) -> None:
        """Cancel this group's tasks and wait until they are gone."""
        await self._cancel_tasks()


class LoopThreadGroup(_Tasks, Group):
    """A group for `Fetcher`: tasks on the backend's loop thread, results to the caller's thread.

    Every cross-thread wake-up costs context switches and GIL hand-offs, so both
    directions are coalesced. Finished results go straight into a deque the caller
    pops from (appends and pops are atomic under the GIL); the caller is woken only
    when it said it is waiting, once per loop iteration however many results that
    iteration finished. Items submitted before the loop gets round to them are
    started by one callback.
    """

    def __init__(self, backend: AsyncioBackend, runner: Runner) -> None:
        super().__init__(backend, runner)
        self._ready: collections.deque[Result] = collections.deque()
        self._signal: queue.SimpleQueue[None] = queue.SimpleQueue()
        self._waiting = False  # the caller is (about to be) blocked on _signal
        self._wake_scheduled = False  # loop side: a _wake is queued for this iteration
        self._inbox: collections.deque[tuple[object, int]] = collections.deque()
        self._wake_pending = False

    def _deliver(self, result: Result) -> None:
        self._ready.append(result)
        if self._waiting and not self._wake_scheduled:
            self._wake_scheduled = True
            self._backend.loop.call_soon(self._wake)  # type: ignore[union-attr]

    def _wake(self) -> None:
        self._wake_scheduled = False
        self._waiting = False
        self._signal.put(None)

    def spawn(self, item: object, index: int) -> None:
        """Hand ``item`` to the loop; one wake-up serves all items submitted before it runs."""
        loop = self._backend.loop
        if self._cancelled or self._backend.closed or loop is None:
            raise RuntimeError("this group is cancelled or its fetcher closed")
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
                self._start(item, index)

    def next_result(self) -> Result:
        """Block until an item of this group is done."""
        ready = self._ready
        while not ready:
            self._waiting = True
            if ready:  # delivered between the check and the flag: no wake-up will come
                break
            try:
                self._signal.get(timeout=1.0)  # a stale signal only costs one more turn
            except queue.Empty:
                if not self._backend.loop_alive():
                    raise BackendError("the asyncio backend's loop thread is gone") from None
        self._waiting = False
        return ready.popleft()

    def cancel(self) -> None:
        """Cancel this group's tasks (and unstarted items) and wait until none is running."""
        loop = self._backend.loop
        self._cancelled = True
        if not self._backend.loop_alive() or loop is None or loop.is_closed():
            return  # the fetcher was closed first: close() already cancelled everything
        fut = asyncio.run_coroutine_threadsafe(self._cancel_tasks(), loop)
        # CancelledError/RuntimeError: the loop was stopped under us by close(), which
        # cancels every task itself.
        with contextlib.suppress(concurrent.futures.CancelledError, RuntimeError):
            fut.result()


async def cancel_all(tasks: set[asyncio.Task[None]], *also: set[asyncio.Task[None]]) -> None:
    """Cancel ``tasks``, wait until they are done, and forget them (in ``also`` too)."""
    pending = list(tasks)
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending)
    tasks.difference_update(pending)
    for other in also:
        other.difference_update(pending)
