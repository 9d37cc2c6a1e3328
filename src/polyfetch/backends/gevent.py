"""The gevent backend: urllib3 made cooperative by monkey patching, greenlets from a gevent Pool.

This module imports neither gevent nor urllib3 at import time. `start()` first
checks that the process was patched *before* `socket` and `ssl` were imported
by anything else (a late patch leaves modules holding the original classes,
and HTTPS then fails with RecursionError: gevent#1016, urllib3#1176); only then
does it import the blocking client. Items run in greenlets of one
`gevent.pool.Pool` of ``concurrency`` (``pooled``: the core keeps no global
slot); the core's host slots wait on `gevent.lock.Semaphore`s (the monkey
patched ``threading`` ones cost twenty times more). Deadlines are
`gevent.Timeout`s around each attempt; cancellation kills the group's
greenlets, whose ``finally`` blocks close their connections.
"""

from __future__ import annotations

import sys
import threading
import time
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, TypeVar

from polyfetch._plan import Response, Send, total_timeout
from polyfetch._rlimit import raise_nofile_limit
from polyfetch._slots import seconds_until
from polyfetch.backends._base import Backend, BlockingGroup
from polyfetch.errors import BackendError, FetchError
from polyfetch.result import Result

if TYPE_CHECKING:
    from polyfetch._runner import Runner

T = TypeVar("T")

HOW_TO_PATCH = (
    "the gevent backend needs gevent's monkey patching, done before anything imports "
    "socket, ssl, urllib3, aiohttp or asyncio: put `from gevent import monkey; "
    "monkey.patch_all()` at the very top of your main module (before other imports), "
    "or run `python -m gevent.monkey your_script.py`. The polyfetch CLI does this itself "
    "for --backend gevent."
)
#: Module attributes that, holding an unpatched object, prove a module was imported too early.
_WATCHED = (
    ("socket", "socket"),
    ("socket", "create_connection"),
    ("ssl", "SSLContext"),
    ("ssl", "SSLSocket"),
)


def check_patched() -> None:
    """Raise `BackendError` unless socket, ssl, threading and time are properly patched."""
    monkey = sys.modules.get("gevent.monkey")
    if monkey is None:
        raise BackendError(f"gevent has not patched this process; {HOW_TO_PATCH}")
    unpatched = [
        m
        for m in ("socket", "ssl", "select", "threading", "time")
        if not monkey.is_module_patched(m)
    ]
    if unpatched:
        raise BackendError(f"gevent has not patched {', '.join(unpatched)}; {HOW_TO_PATCH}")
    # is_module_patched() is True even when patching came too late; compare identities.
    originals = {}
    for module, attr in _WATCHED:
        original = monkey.get_original(module, attr)
        originals[id(original)] = f"{module}.{attr}"
    for name, mod in list(sys.modules.items()):
        if mod is None or name.split(".")[0] in ("gevent", "_socket", "_ssl"):
            continue
        namespace = getattr(mod, "__dict__", None) or {}
        for _, attr in _WATCHED:
            value = namespace.get(attr)
            if value is not None and id(value) in originals:
                raise BackendError(
                    f"module {name!r} was imported before gevent patched the process (it holds "
                    f"the original {originals[id(value)]}); {HOW_TO_PATCH}"
                )


class GeventSemaphore:
    """`gevent.lock.Semaphore` with the core's ``acquire(until)``."""

    __slots__ = ("_sem",)

    def __init__(self, value: int) -> None:
        from gevent.lock import Semaphore

        self._sem = Semaphore(value)

    def acquire(self, until: float) -> bool:
        return bool(self._sem.acquire(timeout=seconds_until(until, time.monotonic())))

    def release(self) -> None:
        self._sem.release()


class GeventGroup(BlockingGroup):
    """One map() call: its greenlets and its results."""

    def __init__(self, backend: GeventBackend, runner: Runner) -> None:
        from gevent.pool import Group as Greenlets
        from gevent.queue import SimpleQueue

        self._backend = backend
        self._runner = runner
        self._client = backend.client
        self._timeout = backend.gevent.Timeout
        self._greenlets = Greenlets()
        self._results: Any = SimpleQueue()

    def spawn(self, item: object, index: int) -> None:
        greenlet = self._backend.pool.spawn(self._run, item, index)
        self._greenlets.add(greenlet)

    def _run(self, item: object, index: int) -> None:
        self._results.put(self._runner.run(item, index, self))

    def perform(self, send: Send) -> Response | FetchError:
        """One attempt, ended by a `gevent.Timeout` at the request's deadline."""
        left = send.deadline - time.monotonic()
        if left >= threading.TIMEOUT_MAX:  # timeout=inf: no deadline to arm
            return self._client.perform(send)
        timer = self._timeout(max(0.0, left))
        timer.start()
        try:
            return self._client.perform(send)
        except self._timeout as exc:
            if exc is not timer:
                raise
            return total_timeout(send)
        finally:
            timer.close()

    def sleep(self, seconds: float) -> None:
        self._backend.gevent.sleep(min(seconds, threading.TIMEOUT_MAX))

    def wait_future(self, fut: Future[T]) -> T:
        # fut.result() is cooperative under patching; bodies reach workers through files,
        # so no big message can block the hub (see polyfetch.postprocess.transport)
        return fut.result()

    def next_result(self) -> Result:
        return self._results.get()  # type: ignore[no-any-return]

    def cancel(self) -> None:
        self._greenlets.kill(block=True)


class GeventBackend(Backend):
    """A `gevent.pool.Pool` of ``concurrency`` greenlets over one urllib3 pool manager."""

    name = "gevent"
    pooled = True

    def start(self) -> None:
        check_patched()
        import gevent
        from gevent.pool import Pool

        from polyfetch.backends._blocking import BlockingClient

        raise_nofile_limit()
        self.gevent = gevent
        self.client = BlockingClient(self.settings)
        self.pool = Pool(self.settings.concurrency)

    def semaphore(self, value: int) -> GeventSemaphore:
        return GeventSemaphore(value)

    def group(self, runner: Runner) -> GeventGroup:
        return GeventGroup(self, runner)

    def close(self) -> None:
        self.pool.kill(block=True)
        self.client.close()
