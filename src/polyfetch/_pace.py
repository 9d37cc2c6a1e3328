"""`Pacer`: a per-host requests-per-second limit, consulted by the planner before each attempt.

Each host has a schedule: the next time an attempt may start. Reserving takes
the next free time and pushes the schedule one interval on, so concurrent
items to one host start that interval apart while other hosts are not held
up. The planner turns the reserved delay into an ordinary `Wait`, so every
backend obeys the limit, retries and redirects included, by its own sleep.

The interval is ``1 / rate`` for every host, or longer for a host that asked
for it (robots.txt's ``Crawl-delay``) or that the auto-throttle slows down:
`ask` and `throttle` give one host a longer interval; ``1 / rate`` stays the floor.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

#: Forget hosts whose schedule is in the past once this many are remembered (bounded memory).
_PRUNE_AT = 4096
#: Hosts with an interval of their own remembered at most (the oldest are forgotten first).
_MAX_GAPS = 100_000


@dataclass(frozen=True, slots=True)
class PaceState:
    """A `Pacer`'s hosts, to carry to a fetcher in another process (`Pacer.snapshot`)."""

    asked: dict[str, float] = field(default_factory=dict)  #: robots.txt's intervals
    throttled: dict[str, float] = field(default_factory=dict)  #: the auto-throttle's
    #: seconds from the snapshot until each host's next start may be booked (future ones only)
    next_in: dict[str, float] = field(default_factory=dict)


class Pacer:
    """Spaces the attempts to each host at least ``1 / rate`` seconds apart (or a host's own
    interval); ``rate=None``: no common limit, only the hosts' own intervals."""

    def __init__(self, rate: float | None) -> None:
        self._gap = 1.0 / rate if rate else 0.0
        self._next: dict[str, float] = {}
        #: host -> the interval it asked for (robots.txt), and the auto-throttle's
        self._asked: dict[str, float] = {}
        self._throttled: dict[str, float] = {}
        self._lock = threading.Lock()  # the threads backend reserves from many threads

    def reserve(self, host: str, now: float) -> float:
        """Book the next start for ``host``; return how long to wait for it (0: go now)."""
        with self._lock:
            at = max(self._next.get(host, now), now)
            self._next[host] = at + self._gap_of(host)
            if len(self._next) > _PRUNE_AT:
                self._next = {h: t for h, t in self._next.items() if t > now}
            return at - now

    def gap(self, host: str) -> float:
        """The interval between two starts to ``host`` now."""
        with self._lock:
            return self._gap_of(host)

    def _gap_of(self, host: str) -> float:
        gap = self._gap
        if self._asked:
            gap = max(gap, self._asked.get(host, 0.0))
        if self._throttled:
            gap = max(gap, self._throttled.get(host, 0.0))
        return gap

    def snapshot(self, now: float) -> PaceState:
        """The hosts' intervals and next starts, times made relative to ``now``."""
        with self._lock:
            upcoming = {host: at - now for host, at in self._next.items() if at > now}
            return PaceState(dict(self._asked), dict(self._throttled), upcoming)

    def restore(self, state: PaceState, now: float) -> None:
        """Take a `snapshot`'s hosts as of ``now``. A next start is counted from ``now``, not
        from when the snapshot was taken: never sooner than the interval asks, whatever the
        clocks of the two processes say."""
        with self._lock:
            self._asked.update(state.asked)
            self._throttled.update(state.throttled)
            for host, wait in state.next_in.items():
                self._next[host] = max(self._next.get(host, now), now + wait)

    def ask(self, host: str, gap: float, now: float) -> None:
        """The interval ``host`` asked for (robots.txt's Crawl-delay): kept as its floor."""
        self._set(self._asked, host, gap, now)

    def throttle(self, host: str, gap: float, now: float) -> None:
        """The auto-throttle's interval for ``host`` (0: none)."""
        self._set(self._throttled, host, gap, now)

    def _set(self, table: dict[str, float], host: str, gap: float, now: float) -> None:
        with self._lock:
            old = self._gap_of(host)
            if gap > 0:
                table[host] = gap
                if len(table) > _MAX_GAPS:
                    del table[next(iter(table))]
            elif table.pop(host, None) is None:
                return
            new = self._gap_of(host)
            if new > old:  # the start booked last moves out too
                self._next[host] = max(self._next.get(host, now), now) + new - old
