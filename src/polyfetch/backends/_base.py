"""The contract between the core and a backend, and the loop that drives a plan.

A backend knows how to perform one attempt (`Send` -> `Response` or `FetchError`)
and how to wait; everything else - what to send next, when to retry, when to
give up - comes from `polyfetch._plan.Plan` through `drive` / `drive_async`.

A `Batch` is one ``map()`` call (or one ``fetch()``): items are submitted to it,
and finished `Result`s come back from it in completion order. The fetcher keeps
the number of submitted-but-unreturned items bounded, so a batch never needs an
unbounded queue.
"""

from __future__ import annotations

import contextlib
import random
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from contextlib import AbstractContextManager, nullcontext
from typing import Any, ClassVar, Generic, TypeVar

from polyfetch._pace import Pacer
from polyfetch._plan import Done, Plan, Response, Send, Wait
from polyfetch.errors import FetchError, TotalTimeout
from polyfetch.result import Result
from polyfetch.settings import Settings

Outcome = Response | FetchError
S = TypeVar("S")


class Batch(ABC):
    """The items of one ``map()`` call, as a backend runs them."""

    @abstractmethod
    def submit(self, item: object, index: int) -> None:
        """Start fetching ``item``; its `Result` will come out of `wait_result`."""

    @abstractmethod
    def wait_result(self) -> Result:
        """Block (in the backend's own way) until some submitted item is done; return it."""

    @abstractmethod
    def cancel(self) -> None:
        """Stop every item of this batch; when this returns, none of them is running."""


class AsyncBatch(ABC):
    """`Batch` for code running inside an asyncio event loop."""

    @abstractmethod
    def submit(self, item: object, index: int) -> None:
        """Start fetching ``item`` as a task of the running loop."""

    @abstractmethod
    async def wait_result(self) -> Result:
        """Wait until some submitted item is done; return it."""

    @abstractmethod
    async def cancel(self) -> None:
        """Cancel every item of this batch and wait until none is running."""


class Backend(ABC):
    """A way of running many requests at once. One instance per fetcher, used from one thread."""

    name: ClassVar[str]
    #: The `polyfetch.postprocess.PostProcessor` results go through, set by the fetcher.
    post: Any = None

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        #: The per-host rate limit every plan of this backend shares.
        self.pacer = Pacer(settings.rate) if settings.rate else None

    @abstractmethod
    def start(self) -> None:
        """Check prerequisites and build pools; raise `BackendError` with a remedy if impossible."""

    @abstractmethod
    def batch(self) -> Batch:
        """A new, empty batch."""

    @abstractmethod
    def close(self) -> None:
        """Cancel what runs and release every socket, thread, greenlet and session."""


class AsyncCapable(ABC):
    """A backend that can also run batches inside the caller's event loop (`AsyncFetcher`)."""

    @abstractmethod
    async def astart(self) -> None:
        """Build the session inside the running loop."""

    @abstractmethod
    def abatch(self) -> AsyncBatch:
        """A new, empty batch bound to the running loop."""

    @abstractmethod
    async def aclose(self) -> None:
        """Cancel what runs and release the session."""


_JITTER = random.Random()  # one source for every plan: seeding one per item costs a syscall


def new_plan(
    item: object, index: int, settings: Settings, now: float, pacer: Pacer | None = None
) -> Plan:
    """The plan for one input item (``pacer``: the backend's shared rate limit)."""
    return Plan(item=item, index=index, settings=settings, started=now, rng=_JITTER, pacer=pacer)


def drive(
    plan: Plan,
    perform: Callable[[Send], Outcome],
    sleep: Callable[[float], None],
    clock: Callable[[], float] = time.monotonic,
) -> Result:
    """Run a plan to its end with blocking-style primitives (threads, gevent, greenlet hub).

    A bug anywhere below still yields the item's one `Result` (with the error);
    only cancellation (a BaseException) ends it without one.
    """
    try:
        action = plan.advance(None, clock())
        while not isinstance(action, Done):
            if isinstance(action, Wait):
                sleep(action.seconds)
                action = plan.advance(None, clock())
            else:
                action = plan.advance(perform(action), clock())
        return action.result
    except Exception as exc:
        return plan.failed(unexpected(exc), clock())


async def drive_async(
    plan: Plan,
    perform: Callable[[Send], Awaitable[Outcome]],
    sleep: Callable[[float], Awaitable[None]],
    clock: Callable[[], float] = time.monotonic,
) -> Result:
    """`drive` for asyncio."""
    try:
        action = plan.advance(None, clock())
        while not isinstance(action, Done):
            if isinstance(action, Wait):
                await sleep(action.seconds)
                action = plan.advance(None, clock())
            else:
                action = plan.advance(await perform(action), clock())
        return action.result
    except Exception as exc:
        return plan.failed(unexpected(exc), clock())


def processed(post: Any, result: Result, wait: Callable[[Future[Result]], Result]) -> Result:
    """``result`` after post-processing (if any), waited for in the backend's own way.

    The engine's future never raises; cancelling it when the wait is abandoned
    (a cancelled batch) frees its place in the processing queue.
    """
    if post is None:
        return result
    fut = post.submit(result)
    try:
        return wait(fut)
    finally:
        fut.cancel()


def raise_nofile_limit() -> None:
    """Soft RLIMIT_NOFILE up to the hard limit: every connection is a descriptor."""
    try:
        import resource
    except ImportError:  # not on Windows
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
    if soft != resource.RLIM_INFINITY and soft < want:
        # on failure keep the soft limit: the connection pools still bound our sockets
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def unexpected(exc: BaseException) -> FetchError:
    """The taxonomy's catch-all, so that no library exception escapes a backend."""
    return FetchError(f"unexpected {type(exc).__module__}.{type(exc).__name__}: {exc}")


def total_timeout(send: Send) -> TotalTimeout:
    """The error for an attempt stopped at its deadline."""
    return TotalTimeout(f"request did not complete within its total timeout ({send.target.url})")


def lower_headers(pairs: object) -> dict[str, str]:
    """Response headers as one dict: names lower-cased, repeated headers joined with ", "."""
    out: dict[str, str] = {}
    for name, value in pairs:  # type: ignore[attr-defined]
        key = name.lower() if isinstance(name, str) else name.decode("latin-1").lower()
        val = value if isinstance(value, str) else value.decode("latin-1")
        out[key] = f"{out[key]}, {val}" if key in out else val
    return out


class HostSlots(Generic[S]):
    """One semaphore per host, created on first use and dropped when unused (bounded memory)."""

    def __init__(
        self, factory: Callable[[], S], lock: AbstractContextManager[object] | None = None
    ) -> None:
        self._factory = factory
        self._lock = lock or nullcontext()
        self._slots: dict[str, tuple[S, int]] = {}

    def get(self, key: str) -> S:
        """The semaphore for ``key``; pair every call with `put`."""
        with self._lock:
            sem, users = self._slots.get(key) or (self._factory(), 0)
            self._slots[key] = (sem, users + 1)
            return sem

    def put(self, key: str) -> None:
        """Done with ``key``'s semaphore (after releasing it)."""
        with self._lock:
            sem, users = self._slots[key]
            if users == 1:
                del self._slots[key]
            else:
                self._slots[key] = (sem, users - 1)

    def __len__(self) -> int:
        return len(self._slots)
