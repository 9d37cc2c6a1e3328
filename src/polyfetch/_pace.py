"""`Pacer`: a per-host requests-per-second limit, consulted by the planner before each attempt.

Each host has a schedule: the next time an attempt may start. Reserving takes
the next free time and pushes the schedule one interval on, so concurrent
items to one host start 1/rate apart while other hosts are not held up. The
planner turns the reserved delay into an ordinary `Wait`, so every backend
obeys the limit, retries and redirects included, by its own sleep.
"""

from __future__ import annotations

import threading

#: Forget hosts whose schedule is in the past once this many are remembered (bounded memory).
_PRUNE_AT = 4096


class Pacer:
    """Spaces the attempts to each host at least ``1 / rate`` seconds apart."""

    def __init__(self, rate: float) -> None:
        self._gap = 1.0 / rate
        self._next: dict[str, float] = {}
        self._lock = threading.Lock()  # the threads backend reserves from many threads

    def reserve(self, host: str, now: float) -> float:
        """Book the next start for ``host``; return how long to wait for it (0: go now)."""
        with self._lock:
            at = max(self._next.get(host, now), now)
            self._next[host] = at + self._gap
            if len(self._next) > _PRUNE_AT:
                self._next = {h: t for h, t in self._next.items() if t > now}
            return at - now
