"""The greenlet backend: our own hub (`polyfetch.backends.hub`), h11 and non-blocking sockets.

Theory of operation. `start()` builds a `Hub` bound to the calling thread.
Each submitted item becomes one hub task running the core's
``runner.run(item, index, group)``; nothing runs until the caller asks for a
result: `HubGroup.next_result` switches from the caller's greenlet into the
hub, which runs tasks until one of the group's items is done and then switches
back. So the whole backend is one OS thread (plus resolver threads for host
names), and the caller's ``for result in f.map(...)`` loop is simply the hub's
idle time. No gevent anywhere.

What is this backend's own: the hub's `Semaphore` (the core's slots wait on
it), `HubGroup.perform` (one attempt by `Client.attempt`: pooled or new
connection, h11; its exceptions mapped onto the taxonomy, a `DeadlineExpired`
as `TotalTimeout`), ``hub.sleep`` and ``hub.wait_future``. Only `GreenletExit`
- cancellation - leaves ``perform``, and unwinds the task, whose ``finally``
blocks close its connection and give its slots back.

Each group has its own results deque and its own waiter, so a ``fetch()``
inside a ``map()`` loop (two groups alive at once) just works: results of the
outer group queue up, bounded by the fetcher's window, while the caller waits
on the inner one.
"""

from __future__ import annotations

import collections
from concurrent.futures import Future
from typing import TYPE_CHECKING, TypeVar

from greenlet import getcurrent

from polyfetch._plan import Response, Send, total_timeout
from polyfetch._rlimit import raise_nofile_limit
from polyfetch._tls import client_context
from polyfetch.backends._base import Backend, BlockingGroup
from polyfetch.backends.hub import Client, DeadlineExpired, Hub, Semaphore, Task, Waiter
from polyfetch.errors import FetchError, ReadError
from polyfetch.result import Result

if TYPE_CHECKING:
    from polyfetch._runner import Runner

T = TypeVar("T")


class HubGroup(BlockingGroup):
    """The tasks and results of one ``map()`` call."""

    def __init__(self, backend: GreenletBackend, runner: Runner) -> None:
        self._backend = backend
        self._runner = runner
        self._hub = backend.hub
        self._client = backend.client
        self._tasks: set[Task] = set()
        self._results: collections.deque[Result] = collections.deque()
        self._waiter: Waiter | None = None
        self._cancelled = False

    def spawn(self, item: object, index: int) -> None:
        """Queue a task for ``item``; it starts when the caller next waits."""
        self._hub.check_thread()
        if self._cancelled:
            raise RuntimeError("this group is cancelled")
        task = self._hub.spawn(self._run, item, index, on_exit=self._exited)
        self._tasks.add(task)
        self._backend.groups.add(self)

    def _run(self, item: object, index: int) -> None:
        result = self._runner.run(item, index, self)  # never raises but GreenletExit
        if not self._cancelled:
            self._results.append(result)

    def _exited(self, task: Task) -> None:
        self._tasks.discard(task)
        if not self._tasks:
            self._backend.groups.discard(self)
        if self._waiter is not None:
            self._hub.wake(self._waiter)

    def perform(self, send: Send) -> Response | FetchError:
        """One attempt (`Client.attempt`); never raises but GreenletExit."""
        try:
            return self._client.attempt(send)
        except FetchError as exc:
            return exc
        except DeadlineExpired:
            return total_timeout(send)
        except OSError as exc:  # after connect: resets, broken pipes, TLS record errors
            return ReadError(f"connection to {send.target.host}:{send.target.port} broken: {exc}")

    def sleep(self, seconds: float) -> None:
        """`Hub.sleep`."""
        self._hub.sleep(seconds)

    def wait_future(self, fut: Future[T]) -> T:
        """`Hub.wait_future`: parked on the future through the hub's wake-up socketpair."""
        return self._hub.wait_future(fut)

    def next_result(self) -> Result:
        """Run the hub until an item of this group is done; return its result."""
        hub = self._hub
        hub.check_thread()
        while not self._results:
            if not self._tasks:
                raise RuntimeError("next_result() with no item pending")
            self._wait()
        return self._results.popleft()

    def _wait(self) -> None:
        self._waiter = Waiter(getcurrent())
        try:
            self._hub.block(self._waiter)
        finally:
            self._waiter = None

    def cancel(self) -> None:
        """Have the hub kill every task of this group, and run it until they are gone."""
        self._cancelled = True
        self._results.clear()
        hub = self._hub
        if hub.closed or hub.glet.dead:
            return
        hub.check_thread()
        for task in list(self._tasks):
            hub.kill(task)
        if hub.inside():
            return  # e.g. an abandoned map() finalised by the GC inside a task: kills are queued
        while self._tasks:
            self._wait()


class GreenletBackend(Backend):
    """A greenlet hub in the caller's thread; see the module docstring."""

    name = "greenlet"
    https_proxy = False  # see polyfetch.backends.hub.proxy

    def start(self) -> None:
        """Build the hub, the TLS context and the client; raise the fd limit."""
        s = self.settings
        tls = client_context(s.verify, s.ca_bundle)  # ConfigError before anything is built
        raise_nofile_limit()
        self.hub = Hub(s.concurrency)
        self.client = Client(self.hub, s, tls)
        self.groups: set[HubGroup] = set()

    def semaphore(self, value: int) -> Semaphore:
        """A hub semaphore (FIFO, lazy deletion of timed-out waiters)."""
        return Semaphore(self.hub, value)

    def group(self, runner: Runner) -> HubGroup:
        """A new group on this backend's hub."""
        self.hub.check_thread()
        return HubGroup(self, runner)

    def close(self) -> None:
        """Kill every task, then close the pool, the resolver threads and the hub."""
        hub = getattr(self, "hub", None)
        if hub is None or hub.closed:
            return
        hub.check_thread()
        try:
            if hub.glet.dead:  # e.g. a KeyboardInterrupt killed the hub: unwind tasks ourselves
                for task in list(hub.tasks):
                    task.throw_exit()  # if started: its finally blocks close its sockets
                hub.tasks.clear()
                self.groups.clear()
            for group in list(self.groups):
                group.cancel()
            for task in list(hub.tasks):  # tasks of groups nobody holds any more
                hub.kill(task)
            if hub.tasks:
                waiter = Waiter(getcurrent())
                hub.wake(waiter)  # queued after the kills: when it fires, they have all run
                hub.block(waiter)
        finally:
            self.client.close()
            hub.close()
