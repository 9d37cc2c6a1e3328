"""The greenlet backend: our own hub (`polyfetch.hub`), h11 and non-blocking sockets; no gevent.

Theory of operation. `start()` builds a `Hub` bound to the calling thread.
Each submitted item becomes one hub task running
``drive(plan, self._perform, hub.sleep)``; nothing runs until the caller asks
for a result: `GreenletBatch.wait_result` switches from the caller's greenlet
into the hub, which runs tasks until one of the batch's items is done and then
switches back. So the whole backend is one OS thread (plus resolver threads
for host names), and the caller's ``for result in f.map(...)`` loop is simply
the hub's idle time.

`_perform` is one attempt: a per-host slot (`HostSlots` of hub semaphores),
then a global slot, both waited for at most until the attempt's deadline and
held only for the attempt (not during backoff), then `Client.attempt`. Every
exception ends there as a `FetchError`: the deadline as `TotalTimeout`,
socket errors as `ReadError` or `ConnectError`, anything else through
`unexpected`. Only `GreenletExit` - cancellation - leaves, and unwinds the task,
whose ``finally`` blocks close its connection and give its slots back.

Each batch has its own results deque and its own waiter, so a ``fetch()``
inside a ``map()`` loop (two batches alive at once) just works: results of the
outer batch queue up, bounded by the fetcher's window, while the caller waits
on the inner one.
"""

from __future__ import annotations

import collections
import time

from greenlet import GreenletExit, getcurrent

from polyfetch._plan import Response, Send
from polyfetch._tls import client_context
from polyfetch.backends._base import (
    Backend,
    Batch,
    HostSlots,
    drive,
    new_plan,
    processed,
    raise_nofile_limit,
    total_timeout,
    unexpected,
)
from polyfetch.errors import FetchError, ReadError
from polyfetch.hub import Client, DeadlineExpired, Hub, Semaphore, Task, Waiter
from polyfetch.result import Result


class GreenletBatch(Batch):
    """The tasks and results of one ``map()`` call."""

    def __init__(self, backend: GreenletBackend) -> None:
        self._backend = backend
        self._hub = backend.hub
        self._tasks: set[Task] = set()
        self._results: collections.deque[Result] = collections.deque()
        self._waiter: Waiter | None = None
        self._cancelled = False

    def submit(self, item: object, index: int) -> None:
        """Queue a task for ``item``; it starts when the caller next waits."""
        self._hub.check_thread()
        if self._cancelled:
            raise RuntimeError("this batch is cancelled")
        task = self._hub.spawn(self._run, item, index, on_exit=self._exited)
        self._tasks.add(task)
        self._backend.batches.add(self)

    def _run(self, item: object, index: int) -> None:
        backend = self._backend
        try:
            plan = new_plan(item, index, backend.settings, time.monotonic(), backend.pacer)
            result = drive(plan, backend._perform, self._hub.sleep)
            result = processed(backend.post, result, self._hub.wait_future)
        except Exception as exc:  # a bug must not leave wait_result() hanging
            url = item if isinstance(item, str) else repr(item)
            result = Result(url=url, index=index, error=unexpected(exc))
        if not self._cancelled:
            self._results.append(result)

    def _exited(self, task: Task) -> None:
        self._tasks.discard(task)
        if not self._tasks:
            self._backend.batches.discard(self)
        if self._waiter is not None:
            self._hub.wake(self._waiter)

    def wait_result(self) -> Result:
        """Run the hub until an item of this batch is done; return its result."""
        hub = self._hub
        hub.check_thread()
        while not self._results:
            if not self._tasks:
                raise RuntimeError("wait_result() with no item pending")
            self._wait()
        return self._results.popleft()

    def _wait(self) -> None:
        self._waiter = Waiter(getcurrent())
        try:
            self._hub.block(self._waiter)
        finally:
            self._waiter = None

    def cancel(self) -> None:
        """Have the hub kill every task of this batch, and run it until they are gone."""
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

    def start(self) -> None:
        """Build the hub, the TLS context, the client and the slots; raise the fd limit."""
        s = self.settings
        tls = client_context(s.verify, s.ca_bundle)  # ConfigError before anything is built
        raise_nofile_limit()
        self.hub = Hub()
        self.client = Client(self.hub, s, tls)
        self._global = Semaphore(self.hub, s.concurrency)
        self._slots: HostSlots[Semaphore] = HostSlots(lambda: Semaphore(self.hub, s.per_host))
        self.batches: set[GreenletBatch] = set()

    def batch(self) -> GreenletBatch:
        """A new batch on this backend's hub."""
        self.hub.check_thread()
        return GreenletBatch(self)

    def close(self) -> None:
        """Kill every task, then close the pool, the resolver threads and the hub."""
        hub = getattr(self, "hub", None)
        if hub is None or hub.closed:
            return
        hub.check_thread()
        try:
            if hub.glet.dead:  # e.g. a KeyboardInterrupt killed the hub: unwind tasks ourselves
                for task in list(hub.tasks):
                    if task:  # started: its finally blocks close its sockets
                        task.throw(GreenletExit)
                hub.tasks.clear()
                self.batches.clear()
            for batch in list(self.batches):
                batch.cancel()
            for task in list(hub.tasks):  # tasks of batches nobody holds any more
                hub.kill(task)
            if hub.tasks:
                waiter = Waiter(getcurrent())
                hub.wake(waiter)  # queued after the kills: when it fires, they have all run
                hub.block(waiter)
        finally:
            self.client.close()
            hub.close()

    def _perform(self, send: Send) -> Response | FetchError:
        """One attempt holding a host slot and a global slot; never raises but GreenletExit."""
        key = send.target.host_key
        host = self._slots.get(key)
        try:
            if not host.acquire(send.deadline):
                return total_timeout(send)
            try:
                if not self._global.acquire(send.deadline):
                    return total_timeout(send)
                try:
                    return self.client.attempt(send)
                finally:
                    self._global.release()
            finally:
                host.release()
        except FetchError as exc:
            return exc
        except DeadlineExpired:
            return total_timeout(send)
        except OSError as exc:  # after connect: resets, broken pipes, TLS record errors
            if time.monotonic() >= send.deadline:
                return total_timeout(send)
            return ReadError(f"connection to {send.target.host}:{send.target.port} broken: {exc}")
        except Exception as exc:  # the taxonomy's catch-all
            return unexpected(exc)
        finally:
            self._slots.put(key)
