"""`Semaphore`: the hub's one synchronisation primitive (global and per-host attempt slots).

A release hands its unit straight to the oldest waiter still waiting (FIFO, so a
burst of requests for one host is served in order) and queues that waiter's
wake-up; it does not let a newcomer overtake. Waiters that timed out or were
killed stay in the queue, disarmed, and are skipped (lazy deletion). A waiter
handed a unit but killed before it could run gives the unit back, so
cancellation never leaks a slot.
"""

from __future__ import annotations

import collections

from greenlet import getcurrent

from polyfetch.backends.hub.loop import Hub, Waiter


class Semaphore:
    """A counting semaphore for tasks of one hub."""

    __slots__ = ("_hub", "_waiters", "value")

    def __init__(self, hub: Hub, value: int) -> None:
        self._hub = hub
        self.value = value
        self._waiters: collections.deque[Waiter] = collections.deque()

    def acquire(self, until: float) -> bool:
        """Take a unit, waiting at most until ``until`` (monotonic); False if none came."""
        if self.value > 0:
            self.value -= 1
            return True
        waiter = Waiter(getcurrent())
        self._waiters.append(waiter)
        won = False
        try:
            self._hub.park(waiter, until)
            won = waiter.granted  # a grant and a timeout in the same round: the grant wins
        finally:
            if waiter.granted and not won:
                self.release()  # handed a unit, then killed before running: pass it on
        return won

    def release(self) -> None:
        """Give a unit back: to the oldest armed waiter, or to the pool."""
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if waiter.armed:
                waiter.granted = True
                self._hub.wake(waiter)
                return
        self.value += 1
