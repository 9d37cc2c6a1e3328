"""Harnesses: one synchronous face over `Fetcher` and over `AsyncFetcher`, for the checks.

A check receives a `Harness` and opens sessions on it (``with harness.open(**options)
as session``). A `Session` has the `Fetcher` API the checks need - ``map()`` and
``crawl()`` (closable iterators), ``fetch()`` - plus ``sleep()``, which on the async
harness lets the event loop run while the check waits, as an ``await
asyncio.sleep()`` would between two steps of an ``async for``.

`AsyncFetcherHarness` drives a real `AsyncFetcher` on an event loop owned by
the session (an `asyncio.Runner`), stepping ``async for`` one result at a time:
everything a check does between two results happens while the async generator
is suspended at its ``yield``, exactly as in the body of an ``async for`` loop.
"""

from __future__ import annotations

import contextlib
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Generator, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Protocol

from polyfetch import backends
from polyfetch._fetcher import Fetcher
from polyfetch.errors import BackendError
from polyfetch.result import Result

if TYPE_CHECKING:
    import asyncio

    from polyfetch._fetcher import AsyncFetcher
    from polyfetch.backends._base import Backend

#: The pseudo-backend name of `AsyncFetcherHarness` in backend lists (``--backends``).
ASYNC = "asyncio-async"


class SkipCheck(Exception):
    """Raised by a check that cannot run here (the message says why); not a failure."""


class ResultIterator(Protocol):
    """What ``Session.map()`` returns: results as they finish; ``close()`` abandons the rest."""

    def __iter__(self) -> Iterator[Result]: ...
    def __next__(self) -> Result: ...
    def close(self) -> None: ...


class Session(Protocol):
    """An open fetcher, seen synchronously."""

    def map(self, urls: Iterable[object]) -> ResultIterator: ...
    def crawl(self, seeds: Iterable[object], **options: Any) -> ResultIterator: ...
    def fetch(self, url: object) -> Result: ...
    def sleep(self, seconds: float) -> None: ...


class Harness(ABC):
    """One way of running a fetcher (a backend through `Fetcher`, or `AsyncFetcher`)."""

    #: shown in reports; for a registered backend, its name
    name: str
    #: how a fresh process builds the same harness (see `harness_for`)
    spec: str

    @abstractmethod
    def open(self, **options: Any) -> contextlib.AbstractContextManager[Session]:
        """A session with these `Fetcher` options, closed at the end of the ``with`` block."""

    def run(self, urls: Iterable[object], **options: Any) -> list[Result]:
        """Fetch every item in one ``map()``; results in input order, one per item (asserted)."""
        items = list(urls)
        with self.open(**options) as session:
            results = list(session.map(items))
        indexes = sorted(r.index for r in results)
        assert indexes == list(range(len(items))), (
            f"one result per item: {len(items)} items gave indexes {indexes[:20]}"
        )
        return sorted(results, key=lambda r: r.index)

    def one(self, url: object, **options: Any) -> Result:
        """Fetch a single item."""
        return self.run([url], **options)[0]

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


class _FetcherSession:
    def __init__(self, fetcher: Fetcher) -> None:
        self.fetcher = fetcher

    def map(self, urls: Iterable[object]) -> ResultIterator:
        return self.fetcher.map(urls)  # type: ignore[return-value]

    def crawl(self, seeds: Iterable[object], **options: Any) -> ResultIterator:
        return self.fetcher.crawl(seeds, **options)  # type: ignore[return-value]

    def fetch(self, url: object) -> Result:
        return self.fetcher.fetch(url)

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class FetcherHarness(Harness):
    """`Fetcher` on one backend, given by name or as a `Backend` subclass."""

    def __init__(self, backend: str | type[Backend]) -> None:
        self.backend = backend
        if isinstance(backend, str):
            if backend not in backends.REGISTRY:  # Fetcher would say so in every check
                raise BackendError(
                    f"unknown backend {backend!r}; choose one of {', '.join(backends.NAMES)}, "
                    f"{ASYNC!r}, a Backend subclass or 'module:Class'"
                )
            self.name = self.spec = backend
        else:
            self.name = getattr(backend, "name", backend.__name__)
            self.spec = f"{backend.__module__}:{backend.__qualname__}"

    @contextlib.contextmanager
    def open(self, **options: Any) -> Iterator[Session]:
        with Fetcher(self.backend, **options) as fetcher:  # type: ignore[arg-type]
            yield _FetcherSession(fetcher)


class _AsyncSession:
    def __init__(self, runner: asyncio.Runner, fetcher: AsyncFetcher) -> None:
        self.runner = runner
        self.fetcher = fetcher
        self.iterators: list[Generator[Result, None, None]] = []

    def map(self, urls: Iterable[object]) -> ResultIterator:
        iterator = self._steps(self.fetcher.map(urls))
        self.iterators.append(iterator)
        return iterator

    def crawl(self, seeds: Iterable[object], **options: Any) -> ResultIterator:
        iterator = self._steps(self.fetcher.crawl(seeds, **options))
        self.iterators.append(iterator)
        return iterator

    def _steps(self, agen: AsyncIterator[Result]) -> Generator[Result, None, None]:
        # each next() runs the loop until the async generator yields its next result
        try:
            while True:
                result = self.runner.run(_anext_or_none(agen))
                if result is None:
                    return
                yield result
        finally:
            self.runner.run(agen.aclose())  # type: ignore[attr-defined]

    def fetch(self, url: object) -> Result:
        return self.runner.run(self.fetcher.fetch(url))

    def sleep(self, seconds: float) -> None:
        import asyncio

        self.runner.run(asyncio.sleep(seconds))


async def _anext_or_none(agen: AsyncIterator[Result]) -> Result | None:
    try:
        return await anext(agen)
    except StopAsyncIteration:
        return None


class AsyncFetcherHarness(Harness):
    """`AsyncFetcher` inside an event loop of the session's own (`asyncio.Runner`)."""

    name = spec = ASYNC

    @contextlib.contextmanager
    def open(self, **options: Any) -> Iterator[Session]:
        import asyncio

        from polyfetch._fetcher import AsyncFetcher

        with asyncio.Runner() as runner:
            fetcher = AsyncFetcher(**options)
            runner.run(fetcher.__aenter__())
            session = _AsyncSession(runner, fetcher)
            try:
                yield session
            finally:
                try:
                    for iterator in session.iterators:  # as an abandoned `async for` would be
                        iterator.close()
                finally:
                    runner.run(fetcher.aclose())


def harness_for(backend: str | type[Backend] | Harness) -> Harness:
    """The harness for a backend name, `ASYNC`, a ``"module:Class"`` spec or a backend class."""
    if isinstance(backend, Harness):
        return backend
    if backend == ASYNC:
        return AsyncFetcherHarness()
    if isinstance(backend, str) and ":" in backend:
        import importlib

        module, _, qualname = backend.partition(":")
        obj: Any = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
        return FetcherHarness(obj)
    return FetcherHarness(backend)
