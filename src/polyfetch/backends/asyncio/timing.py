"""Waiting on the loop: `Gate`, the slots' semaphore, and `Deadlines`, one timer for all."""

from __future__ import annotations

import asyncio
import collections
import heapq
import itertools
import math
import threading
import time
from typing import Any


class Gate:
    """A FIFO counting semaphore whose uncontended `take` is a plain call, not a coroutine.

    Every attempt passes one or two of these (the core's host and global slots);
    asyncio.Semaphore's ``async with`` costs four coroutine frames each. A released
    unit goes straight to the oldest waiter (no barging).
    """

    __slots__ = ("_free", "_waiters")

    def __init__(self, value: int) -> None:
        self._free = value
        self._waiters: collections.deque[asyncio.Future[bool]] = collections.deque()

    def take(self) -> bool:
        """Take a unit if one is free and nobody queues for it; else call `wait`."""
        if self._free and not self._waiters:
            self._free -= 1
            return True
        return False

    async def wait(self, until: float) -> bool:
        """Queue until `give` hands this caller a unit (True) or ``until`` comes (False)."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[bool] = loop.create_future()
        self._waiters.append(fut)
        left = until - time.monotonic()
        timer = None
        if left < threading.TIMEOUT_MAX:  # timeout=inf: wait as long as it takes
            timer = loop.call_later(max(0.0, left), _expire, fut)
        try:
            return await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled() and fut.result():
                self.give()  # handed a unit, then cancelled before using it: pass it on
            raise
        finally:
            if timer is not None:
                timer.cancel()

    def give(self) -> None:
        """Return a unit: to the oldest live waiter, or to the pool."""
        waiters = self._waiters
        while waiters:
            fut = waiters.popleft()
            if not fut.done():  # a waiter that timed out or was cancelled is done: skip it
                fut.set_result(True)
                return
        self._free += 1


def _expire(fut: asyncio.Future[bool]) -> None:
    if not fut.done():
        fut.set_result(False)


WHEN, TASK, EXPIRED = 0, 2, 3


class Deadlines:
    """Cancels attempts at their deadline with one loop timer instead of one per attempt.

    An entry is ``[deadline, seq, task, expired]`` in a heap; a finished attempt only
    clears its task (lazy deletion) and the heap is compacted when mostly dead. This costs
    a fraction of ``asyncio.timeout``, which allocates a timer handle and a context per use.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._heap: list[list[Any]] = []
        self._seq = itertools.count()
        self._dead = 0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf

    def add(self, deadline: float, task: asyncio.Task[Any]) -> list[Any]:
        """Cancel ``task`` at ``deadline`` (time.monotonic) unless `discard`ed first."""
        entry = [deadline, next(self._seq), task, False]
        heapq.heappush(self._heap, entry)
        if deadline < self._timer_at:
            self._arm(deadline)
        return entry

    def discard(self, entry: list[Any]) -> None:
        """The attempt is over."""
        if entry[TASK] is None or entry[EXPIRED]:
            return  # discarded already, or popped when it expired
        entry[TASK] = None
        self._dead += 1
        if self._dead > 256 and self._dead * 2 > len(self._heap):
            self._heap = [e for e in self._heap if e[TASK] is not None]
            heapq.heapify(self._heap)
            self._dead = 0

    def close(self) -> None:
        """Stop the timer (the caller's loop outlives an `AsyncFetcher`)."""
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._timer_at, self._heap = None, math.inf, []

    def _fire(self) -> None:
        self._timer, self._timer_at = None, math.inf
        heap, now = self._heap, time.monotonic()
        while heap and (heap[0][TASK] is None or heap[0][WHEN] <= now):
            entry = heapq.heappop(heap)
            if entry[TASK] is None:
                self._dead -= 1
            else:
                entry[EXPIRED] = True
                entry[TASK].cancel()
        if heap:
            self._arm(heap[0][WHEN])

    def _arm(self, deadline: float) -> None:
        if deadline - time.monotonic() >= threading.TIMEOUT_MAX:
            return  # no deadline worth a timer (timeout=inf)
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = deadline
        delay = max(0.0, deadline - time.monotonic())
        self._timer = self._loop.call_at(self._loop.time() + delay, self._fire)
