"""Attempt slots: at most ``per_host`` attempts in flight to one host, ``concurrency`` in all.

Written once for every backend; a backend supplies only its semaphore (how a
waiter waits: a thread lock, a gevent or hub semaphore, an asyncio future).
An attempt takes its host's slot first and the global one second, and holds
both only for the attempt itself, never during a backoff wait: an attempt
queued behind a busy host must not sit on a global slot that an attempt to
another host could use.

Shortcuts decided here, not in the backends: when ``per_host >= concurrency``
the global slot alone keeps every host within ``per_host``, so no host slots
are kept; a backend whose pool already runs at most ``concurrency`` items at
once (``pooled``: threads, gevent) needs no global slot.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any, Generic, Protocol, TypeVar

from polyfetch.settings import Settings


class Semaphore(Protocol):
    """What a blocking-style backend (threads, gevent, the greenlet hub) supplies."""

    def acquire(self, until: float) -> bool:
        """Take a unit, waiting at most until ``until`` (time.monotonic); False if none came."""

    def release(self) -> None:
        """Give a unit back (to the oldest waiter first)."""


class AsyncSemaphore(Protocol):
    """What the asyncio backend supplies: a plain-call fast path, a coroutine slow path."""

    def take(self) -> bool:
        """Take a unit if one is free and nobody queues for it."""

    async def wait(self, until: float) -> bool:
        """Queue for a unit until ``until``; False if none came."""

    def give(self) -> None:
        """Give a unit back (to the oldest waiter first)."""


S = TypeVar("S")


class HostSlots(Generic[S]):
    """One semaphore per host, made on first use and dropped when unused (bounded memory)."""

    __slots__ = ("_factory", "_lock", "_slots")

    def __init__(
        self, factory: Callable[[], S], lock: AbstractContextManager[object] | None = None
    ) -> None:
        self._factory = factory
        self._lock = lock or nullcontext()
        self._slots: dict[str, list[Any]] = {}  # host -> [semaphore, users]

    def get(self, key: str) -> S:
        """The semaphore for ``key``, counted as used until the matching `drop`."""
        with self._lock:
            entry = self._slots.get(key)
            if entry is None:
                entry = self._slots[key] = [self._factory(), 0]
            entry[1] += 1
            return entry[0]  # type: ignore[no-any-return]

    def drop(self, key: str) -> S:
        """Stop using ``key``'s semaphore; it is returned so that it can still be released."""
        with self._lock:
            entry = self._slots[key]
            entry[1] -= 1
            if not entry[1]:  # nobody holds or waits: a fresh one will do next time
                del self._slots[key]
            return entry[0]  # type: ignore[no-any-return]

    def __len__(self) -> int:
        return len(self._slots)


def _host_slots(settings: Settings, factory: Callable[[int], S], lock: bool) -> HostSlots[S] | None:
    if settings.per_host >= settings.concurrency:
        return None
    per_host = settings.per_host
    return HostSlots(lambda: factory(per_host), threading.Lock() if lock else None)


class Slots:
    """Host-then-global slots for blocking-style backends."""

    __slots__ = ("_global", "_hosts")

    def __init__(
        self,
        settings: Settings,
        semaphore: Callable[[int], Semaphore],
        *,
        pooled: bool,
        threaded: bool,
    ) -> None:
        #: None: the backend's pool already bounds how many items run at once.
        self._global = None if pooled else semaphore(settings.concurrency)
        #: None: per_host >= concurrency, the global bound is enough. ``threaded``: many OS
        #: threads share the table, which then needs a lock.
        self._hosts: HostSlots[Semaphore] | None = _host_slots(settings, semaphore, threaded)

    def acquire(self, key: str, until: float) -> bool:
        """Take ``key``'s host slot, then a global one, by ``until``; False if either timed out."""
        hosts = self._hosts
        if hosts is not None and not hosts.get(key).acquire(until):
            hosts.drop(key)
            return False
        glob = self._global
        if glob is not None and not glob.acquire(until):
            if hosts is not None:
                hosts.drop(key).release()
            return False
        return True

    def release(self, key: str) -> None:
        """Give back what `acquire` took."""
        if self._global is not None:
            self._global.release()
        if self._hosts is not None:
            self._hosts.drop(key).release()


class AsyncSlots:
    """Host-then-global slots for the asyncio backend, uncontended without a coroutine."""

    __slots__ = ("_global", "_hosts")

    def __init__(self, settings: Settings, semaphore: Callable[[int], AsyncSemaphore]) -> None:
        self._global = semaphore(settings.concurrency)
        self._hosts: HostSlots[AsyncSemaphore] | None = _host_slots(settings, semaphore, False)

    def take(self, key: str) -> bool:
        """Both slots at once if both are free (the common case); on False nothing is held."""
        hosts = self._hosts
        if hosts is None:
            return self._global.take()
        if hosts.get(key).take():
            if self._global.take():
                return True
            hosts.drop(key).give()
        else:
            hosts.drop(key)
        return False

    async def wait(self, key: str, until: float) -> bool:
        """The slow path of `take`: queue for the host slot, then a global one, by ``until``."""
        glob, hosts = self._global, self._hosts
        if hosts is None:
            return glob.take() or await glob.wait(until)
        sem = hosts.get(key)
        if not (sem.take() or await _waiting(sem, until, hosts, key)):
            hosts.drop(key)
            return False
        try:
            got = glob.take() or await glob.wait(until)
        except BaseException:
            hosts.drop(key).give()
            raise
        if not got:
            hosts.drop(key).give()
        return got

    def release(self, key: str) -> None:
        """Give back what `take` or `wait` took."""
        self._global.give()
        if self._hosts is not None:
            self._hosts.drop(key).give()


async def _waiting(sem: AsyncSemaphore, until: float, hosts: HostSlots[Any], key: str) -> bool:
    try:
        return await sem.wait(until)
    except BaseException:
        hosts.drop(key)  # cancelled while queued: the semaphore itself passes a grant on
        raise


def seconds_until(until: float, now: float) -> float:
    """A wait's length for a lock or timer API: never negative, never infinite."""
    left = until - now
    if left <= 0:
        return 0.0
    return left if left < threading.TIMEOUT_MAX else threading.TIMEOUT_MAX
