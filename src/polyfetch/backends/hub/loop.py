"""The scheduler: one hub greenlet, a selector, a timer heap and a ready queue.

Theory of operation. greenlet gives only ``switch`` and ``throw``; everything
else is here. Every task is a `Task` run by a `Worker` greenlet whose parent is the hub
greenlet, so a task that finishes (or dies) lands back in the hub, never in a
sibling; the worker then waits in the hub for the next task.
A greenlet that must wait builds a `Waiter`, registers it with whatever will
end the wait (a file descriptor in the selector, an entry in the timer heap, a
semaphore's queue, a future's callback) and switches to the hub with `park`.
The hub loop runs the ready queue, then blocks in ``selector.select`` until the
earliest timer, then fires the waiters whose descriptors or timers are due.

A `Waiter` fires at most once: ``fire`` disarms it before switching, and
`park`'s ``finally`` disarms it too, so a second wake-up queued for the same
wait (a timer and a descriptor in the same round, a cancelled task's timer) is
simply dropped. That one rule is what makes lazy deletion safe: cancelled
timers stay in the heap until they come up (or until a compaction) and are
skipped because their waiter is disarmed.

Cancellation is the hub throwing `greenlet.GreenletExit` into a task (`kill`
only queues the throw; the hub performs it), never one task switching into
another. The code outside the hub - the caller's greenlet running
``Fetcher.map`` - waits with `block`, which switches into the hub until
something wakes its waiter.

Threads talk to the hub only through `call_soon_threadsafe`, which appends to a
deque and writes a byte to a wake-up socketpair registered in the selector (the
pattern of trio's ``_wakeup_socketpair.py``); `wait_future` builds on it, so a
task can wait on any `concurrent.futures.Future` (a DNS lookup in a thread pool
today, a process-pool result later) without polling and without blocking peers.
"""

from __future__ import annotations

import collections
import heapq
import itertools
import selectors
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from greenlet import GreenletExit, getcurrent, greenlet

from polyfetch.backends.hub.wakeup import WakeupSocketpair

T = TypeVar("T")
READ = selectors.EVENT_READ
WRITE = selectors.EVENT_WRITE
#: The longest select(): longer waits (a Retry-After of weeks, timeout=inf) just loop again.
_MAX_SELECT = 86400.0
#: Compact the timer heap when this many (and over half of its) entries are dead.
_COMPACT_AT = 1024
#: Idle worker greenlets kept for the next tasks at least (more finish at once: the rest end).
_IDLE_WORKERS = 256


class WaitTimeout(Exception):
    """`Hub.wait_future` reached its time limit."""


class Waiter:
    """One wait of one greenlet; fired at most once."""

    __slots__ = ("armed", "glet", "granted")

    def __init__(self, glet: greenlet) -> None:
        self.glet = glet
        self.armed = True
        self.granted = False  #: set by a semaphore that handed this waiter a unit

    def fire(self, value: object) -> None:
        """Resume the waiting greenlet with ``value``, unless its wait is already over."""
        if self.armed:
            self.armed = False
            self.glet.switch(value)


class Task:
    """One function the hub runs in a worker greenlet; it swallows its own errors so that
    nothing escapes into the hub. Truthy while it runs (started, not finished)."""

    __slots__ = ("args", "fn", "glet", "hub", "killed", "on_exit")

    def __init__(
        self,
        hub: Hub,
        fn: Callable[..., object],
        args: tuple[object, ...],
        on_exit: Callable[[Task], None] | None,
    ) -> None:
        self.hub = hub
        self.fn: Callable[..., object] | None = fn
        self.args = args
        self.on_exit = on_exit
        self.killed = False
        self.glet: Worker | None = None  #: the worker running it, while it runs

    def __bool__(self) -> bool:
        return self.glet is not None

    def end(self) -> None:
        """The task is over (run, killed or never started): drop it and tell ``on_exit``."""
        self.fn, self.args, self.glet = None, (), None
        self.hub.tasks.discard(self)
        if self.on_exit is not None:
            self.on_exit(self)

    def throw_exit(self) -> None:
        """Unwind the task with `GreenletExit` now (its worker's ``finally`` blocks run)."""
        if self.glet is not None:
            self.glet.throw(GreenletExit)


class Worker(greenlet):
    """A greenlet that runs tasks one after another, its parent the hub greenlet.

    Reused, not made per task: a new greenlet costs CPython 3.11+ a fresh frame stack
    (an mmap and a munmap, and page faults), which was a syscall pair per item. A finished
    task leaves nothing behind: its waiters are disarmed (`Hub.park`), and a kill queued for
    it finds ``task.glet`` cleared, so it never reaches the worker's next task.
    """

    def __init__(self, hub: Hub) -> None:
        super().__init__(parent=hub.glet)
        self.hub = hub

    def run(self) -> None:  # type: ignore[override]
        hub = self.hub
        while True:
            task: Task = hub.glet.switch()  # parked, new or idle, until `_start` brings a task
            try:
                if task.fn is not None:  # a task killed before it started never gets here
                    task.fn(*task.args)
            except GreenletExit:
                pass
            except BaseException as exc:  # handed to the blocked caller, not the hub
                hub.crash(exc)
            finally:
                task.end()
            del task  # parked, a worker keeps nothing of its last task alive
            if len(hub.idle) >= hub.keep_idle or hub.closed or hub.glet.dead:
                return
            hub.idle.append(self)


class Hub:
    """The scheduler of one OS thread; see the module docstring."""

    def __init__(self, concurrency: int = 0) -> None:
        """``concurrency``: how many tasks a wave may end at once, so that as many workers
        wait for the next wave instead of ending (a new greenlet per item at 5,000 in flight)."""
        self.thread_id = threading.get_ident()
        self.keep_idle = max(_IDLE_WORKERS, concurrency)
        self.selector = selectors.DefaultSelector()
        self.glet = greenlet(self._loop)
        self.tasks: set[Task] = set()
        self.idle: list[Worker] = []  #: workers between tasks, parked in the hub
        self._ready: collections.deque[tuple[Callable[[Any], object], object]] = collections.deque()
        self._timers: list[tuple[float, int, Waiter]] = []
        self._dead_timers = 0
        self._seq = itertools.count()
        self._inbox: collections.deque[Callable[[], object]] = collections.deque()
        self._wakeup = WakeupSocketpair()
        self.selector.register(self._wakeup.fileno(), READ, self._wakeup)
        self._foreign = 0  # thread-side operations that will call back (for deadlock detection)
        self._drivers = 0  # descriptors of `add_driver`: the deadlock check does not count them
        self._blocked: Waiter | None = None
        self._crash: BaseException | None = None
        self.closed = False

    # -- for tasks ----------------------------------------------------------------------

    def spawn(
        self,
        fn: Callable[..., object],
        *args: object,
        on_exit: Callable[[Task], None] | None = None,
    ) -> Task:
        """Start ``fn(*args)`` in a new task at the hub's next turn."""
        task = Task(self, fn, args, on_exit)
        self.tasks.add(task)
        self._ready.append((_start, task))
        return task

    def park(
        self, waiter: Waiter, until: float | None = None, fd: int | None = None, events: int = 0
    ) -> Any:
        """Switch to the hub until ``waiter`` fires; False if ``until`` (monotonic) came first.

        The one wait primitive: its ``finally`` unregisters ``fd`` and disarms the waiter,
        which cancels its timer (lazily), whatever ended the wait - including a kill.
        """
        if fd is not None:
            self.selector.register(fd, events, waiter)
        if until is not None:
            heapq.heappush(self._timers, (until, next(self._seq), waiter))
        result: Any = None
        try:
            result = self.glet.switch()
            return result
        finally:
            waiter.armed = False
            if until is not None and result is not False:
                self._dead_timers += 1  # ended by something else: its heap entry is now dead
            if fd is not None:
                self.selector.unregister(fd)

    def wait_fd(self, fd: int, events: int, until: float) -> bool:
        """Wait until ``fd`` is ready for ``events``; False on reaching ``until``."""
        return bool(self.park(Waiter(getcurrent()), until, fd, events))

    def sleep(self, seconds: float) -> None:
        """Let other tasks run for ``seconds`` (0: just yield)."""
        waiter = Waiter(getcurrent())
        if seconds <= 0:
            self._ready.append((waiter.fire, True))
            self.park(waiter)
        else:
            self.park(waiter, time.monotonic() + seconds)

    def call_at(self, until: float, waiter: Waiter) -> None:
        """Have the hub call ``waiter.fire(False)`` at ``until`` (monotonic) unless disarmed first
        (`disarm`): a timer for code that is not a parked task, e.g. libcurl's multi timer."""
        heapq.heappush(self._timers, (until, next(self._seq), waiter))

    def add_driver(self, fd: int, driver: Any) -> None:
        """Watch ``fd`` for reading for as long as the hub lives, calling ``driver.fire(mask)``:
        for a poller of one's own (libcurl's sockets). Its waiters must have timers too: the
        deadlock check does not count it as something that can wake anyone."""
        self.selector.register(fd, READ, driver)
        self._drivers += 1

    def remove_driver(self, fd: int) -> None:
        """Stop watching an `add_driver` descriptor (before closing it)."""
        self.selector.unregister(fd)
        self._drivers -= 1

    def disarm(self, waiter: Waiter) -> None:
        """Cancel a `call_at` timer (lazily: its heap entry is skipped when it comes up)."""
        if waiter.armed:
            waiter.armed = False
            self._dead_timers += 1

    def wake(self, waiter: Waiter, value: object = True) -> None:
        """Resume ``waiter`` at the hub's next turn (from a task, the hub or the caller)."""
        self._ready.append((waiter.fire, value))

    def wait_future(self, fut: Future[T], until: float | None = None, *, cancel: bool = True) -> T:
        """The result of a `concurrent.futures.Future`, waited for without blocking the hub.

        Raises the future's exception, or `WaitTimeout` at ``until`` (then, if ``cancel``,
        the future is cancelled unless it already runs).
        """
        waiter = Waiter(getcurrent())
        self._foreign += 1

        def done(_: Future[T]) -> None:  # in whatever thread completes the future
            self.call_soon_threadsafe(lambda: self._foreign_done(waiter))

        fut.add_done_callback(done)
        if not self.park(waiter, until):
            if cancel:
                fut.cancel()
            raise WaitTimeout
        return fut.result()

    def _foreign_done(self, waiter: Waiter) -> None:
        self._foreign -= 1
        waiter.fire(True)

    # -- for threads --------------------------------------------------------------------

    def call_soon_threadsafe(self, fn: Callable[[], object]) -> None:
        """Run ``fn()`` in the hub soon; callable from any thread (one wake-up byte per call)."""
        self._inbox.append(fn)  # deque.append is atomic
        self._wakeup.wakeup_thread_and_signal_safe()

    # -- for the code outside the hub (the caller's greenlet) ---------------------------

    def check_thread(self) -> None:
        """Greenlets cannot switch across OS threads: refuse to be used from another one."""
        if threading.get_ident() != self.thread_id:
            raise RuntimeError(
                "this greenlet backend belongs to the thread that started it; "
                "use one Fetcher per thread"
            )
        if self.closed:
            raise RuntimeError("the greenlet backend is closed")

    def inside(self) -> bool:
        """True when called from the hub or one of its tasks (where `block` is impossible)."""
        current = getcurrent()
        return current is self.glet or isinstance(current, Worker)

    def block(self, waiter: Waiter) -> None:
        """Run the hub from outside it until ``waiter`` fires (re-raising a task's crash)."""
        if self.glet.dead:
            raise RuntimeError("the greenlet hub has died")
        if self.inside():
            raise RuntimeError("cannot wait for results from inside the greenlet hub")
        # A hub that dies (a bug, a KeyboardInterrupt) ends in its parent: make that us.
        self.glet.parent = getcurrent()
        self._blocked = waiter
        try:
            self.park(waiter)
        finally:
            self._blocked = None
        if self._crash is not None:
            exc, self._crash = self._crash, None
            raise exc

    def kill(self, task: Task) -> None:
        """Queue a `GreenletExit` for ``task`` (the hub throws it); an unstarted task never runs."""
        task.killed = True
        if task:  # started and not finished: it is parked somewhere
            self._ready.append((_throw_exit, task))

    def crash(self, exc: BaseException) -> None:
        """A task died of a BaseException (KeyboardInterrupt...): re-raise it outside the hub."""
        self._crash = exc
        if self._blocked is not None:
            self.wake(self._blocked)

    def close(self) -> None:
        """End the hub greenlet and release the selector and the wake-up pair (no task alive)."""
        self.closed = True
        if self.glet and not self.glet.dead:
            self.glet.parent = getcurrent()  # so that the dying hub returns here
            self.glet.throw(GreenletExit)
        idle, self.idle = self.idle, []
        for worker in idle:  # each ends, and (its hub dead) returns here
            worker.throw(GreenletExit)
        self._ready.clear()
        self._timers.clear()
        self.selector.close()
        self._wakeup.close()

    # -- the loop -----------------------------------------------------------------------

    def _loop(self) -> None:
        ready, timers, select = self._ready, self._timers, self.selector.select
        monotonic, heappop, wakeup = time.monotonic, heapq.heappop, self._wakeup
        while True:
            # Only what was ready at the start of the round: new work waits for one select(0).
            for _ in range(len(ready)):
                fn, arg = ready.popleft()
                fn(arg)
            while timers and not timers[0][2].armed:
                heappop(timers)
                self._dead_timers -= 1
            if self._dead_timers > _COMPACT_AT and self._dead_timers * 2 > len(timers):
                self._compact()
            if ready:
                timeout: float | None = 0
            elif timers:
                # capped: select() takes at most ~24 days, and timeout=inf makes inf timers
                timeout = min(max(0.0, timers[0][0] - monotonic()), _MAX_SELECT)
            elif self._check_deadlock():
                continue  # the blocked caller was told; it may have queued new work since
            else:
                timeout = None
            for key, mask in select(timeout):
                data = key.data
                if data is wakeup:
                    wakeup.drain()
                    self._run_inbox()
                else:
                    data.fire(mask)  # the ready events: truthy for a waiter, bits for a watcher
            if timers:
                now = monotonic()
                while timers and timers[0][0] <= now:
                    waiter = heappop(timers)[2]
                    if waiter.armed:
                        waiter.fire(False)
                    else:
                        self._dead_timers -= 1

    def _run_inbox(self) -> None:
        inbox = self._inbox
        while inbox:
            inbox.popleft()()

    def _compact(self) -> None:
        self._timers[:] = [t for t in self._timers if t[2].armed]
        heapq.heapify(self._timers)
        self._dead_timers = 0

    def _check_deadlock(self) -> bool:
        # Nothing ready, no timer, no descriptor but the wake-up pair, no thread due to call
        # back: nothing can ever wake whoever is blocked. Say so instead of hanging forever.
        if len(self.selector.get_map()) > 1 + self._drivers or self._foreign or self._inbox:
            return False
        blocked = self._blocked
        if blocked is None or not blocked.armed:
            return False
        blocked.armed = False
        blocked.glet.throw(RuntimeError("greenlet hub deadlock: nothing can wake the caller"))
        return True


def _start(task: Task) -> None:
    if task.killed:  # killed before it started: it never runs, and ends here
        task.end()
        return
    hub = task.hub
    if hub.idle:
        worker = hub.idle.pop()
    else:  # started without arguments, which its first frame would keep alive for good
        worker = Worker(hub)
        worker.switch()  # runs to its first park
    task.glet = worker
    worker.switch(task)


def _throw_exit(task: Task) -> None:
    task.throw_exit()
