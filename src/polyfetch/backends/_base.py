"""The contract between the core and a backend: primitives, nothing else.

The core (`polyfetch._runner.Runner`) runs each input item's whole life:
plan, attempts within host and global slots, deadlines, post-processing,
its one record. A backend supplies only what is its own - how to perform one
attempt and how to wait:

* `Backend` - started once per fetcher; makes the semaphores the core's slots
  wait on and one task `Group` per ``map()`` call; closed with the fetcher.
* `Group` - runs the runner on each submitted item concurrently (``spawn``),
  hands the finished `Result`s back in completion order (``next_result``) and
  cancels what runs (``cancel``); a `BlockingGroup` also gives the runner its
  primitives: ``perform`` one attempt, ``sleep``, ``wait_future`` on a
  `concurrent.futures.Future` without blocking the other items. The asyncio
  backend's groups give the same primitives as coroutines
  (`polyfetch._runner.AsyncPrimitives`), behind `AsyncGroup` in the caller's
  loop or behind a plain `Group` for the synchronous `Fetcher`.

``perform`` maps every failure onto `polyfetch.errors` and returns it; it
raises only to cancel (a BaseException of the backend's own: GreenletExit,
asyncio.CancelledError, ...). A bug that raises anything else is caught by the
runner and becomes that attempt's error. The fetcher keeps the number of
submitted-but-unreturned items of a group bounded (its window), so a group
never needs an unbounded queue.

`polyfetch.testing.check_backend` runs the conformance suite against any class
that meets this contract.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from concurrent.futures import Future
from typing import TYPE_CHECKING, ClassVar, TypeVar

if TYPE_CHECKING:
    from polyfetch._plan import Send
    from polyfetch._runner import Outcome, Runner
    from polyfetch._slots import AsyncSemaphore, Semaphore
    from polyfetch.result import Result
    from polyfetch.settings import Settings

T = TypeVar("T")


class Group(ABC):
    """The items of one ``map()`` call, as the synchronous `Fetcher` sees them."""

    @abstractmethod
    def spawn(self, item: object, index: int) -> None:
        """Start running ``item``; its `Result` comes out of `next_result`."""

    @abstractmethod
    def next_result(self) -> Result:
        """Wait (the backend's own way) until some spawned item is done; return its record."""

    @abstractmethod
    def cancel(self) -> None:
        """Stop every item of this group; when this returns, none of them is running."""


class BlockingGroup(Group):
    """A `Group` whose items run ``runner.run(item, index, self)``: it gives the primitives."""

    @abstractmethod
    def perform(self, send: Send) -> Outcome:
        """One HTTP attempt, over by ``send.deadline``; raises only to cancel."""

    @abstractmethod
    def sleep(self, seconds: float) -> None:
        """Let the other items run for ``seconds``."""

    @abstractmethod
    def wait_future(self, fut: Future[T]) -> T:
        """``fut.result()``, waited for without blocking the other items."""


class AsyncGroup(ABC):
    """`Group` for code running inside an asyncio event loop (`polyfetch.AsyncFetcher`)."""

    @abstractmethod
    def spawn(self, item: object, index: int) -> None:
        """Start ``runner.arun(item, index, self)`` as a task of the running loop."""

    @abstractmethod
    async def next_result(self) -> Result:
        """Wait until some spawned item is done; return its record."""

    @abstractmethod
    async def cancel(self) -> None:
        """Cancel every item of this group and wait until none is running."""


class Backend(ABC):
    """A way of running many requests at once. One instance per fetcher, used from one thread."""

    name: ClassVar[str]
    #: True when the backend runs at most ``concurrency`` items at once by itself (a pool
    #: of that size), so the core needs no global slot.
    pooled: ClassVar[bool] = False
    #: True when items run in several OS threads (the core's slot table then takes a lock).
    threaded: ClassVar[bool] = False
    #: The HTTP versions beyond 1.1 the backend can be asked for (``http2=``, ``http3=``);
    #: the fetcher refuses the others before `start` (`check_http_versions`).
    http_versions: ClassVar[frozenset[str]] = frozenset()
    #: Whether the backend can use an https:// proxy (TLS to the proxy itself).
    https_proxy: ClassVar[bool] = True

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @abstractmethod
    def start(self) -> None:
        """Check prerequisites and build pools; raise `BackendError` with a remedy if impossible."""

    def semaphore(self, value: int) -> Semaphore:
        """A semaphore of ``value`` units that this backend's items can wait on (every
        blocking-style backend has one; an `AsyncCapable` one has `async_semaphore`)."""
        raise NotImplementedError

    @abstractmethod
    def group(self, runner: Runner) -> Group:
        """A new, empty group running ``runner``."""

    @abstractmethod
    def close(self) -> None:
        """Cancel what runs and release every socket, thread, greenlet and session."""


def check_http_versions(backend: type[Backend], settings: Settings) -> None:
    """Raise `BackendError` when ``settings`` ask for an HTTP version ``backend`` cannot speak."""
    from polyfetch.errors import BackendError

    for version, wanted in (("2", settings.http2), ("3", settings.http3)):
        if wanted and version not in backend.http_versions:
            name = getattr(backend, "name", backend.__name__)
            raise BackendError(
                f"http{version}=True, but the {name} backend speaks HTTP/1.1 only; "
                f"HTTP/{version} needs backend='curl'"
            )


def check_proxy(backend: type[Backend], settings: Settings) -> None:
    """Raise `BackendError` when ``settings`` name a proxy ``backend`` cannot use."""
    from polyfetch.errors import BackendError

    if settings.proxy and not backend.https_proxy:
        from polyfetch._proxy import HTTPS_PROXY_REFUSED, parse

        proxy = parse(settings.proxy)  # Settings checked that it parses
        if proxy.scheme == "https":
            raise BackendError(f"proxy={proxy.url}: {HTTPS_PROXY_REFUSED}")


class AsyncCapable(ABC):
    """A backend that can also run items inside the caller's event loop (`AsyncFetcher`)."""

    @abstractmethod
    async def astart(self) -> None:
        """Build the session inside the running loop."""

    @abstractmethod
    def async_semaphore(self, value: int) -> AsyncSemaphore:
        """A semaphore for tasks of the running loop."""

    @abstractmethod
    def agroup(self, runner: Runner) -> AsyncGroup:
        """A new, empty group of tasks in the running loop."""

    @abstractmethod
    async def aclose(self) -> None:
        """Cancel what runs and release the session."""
