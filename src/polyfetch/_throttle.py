"""Auto-throttle: each host's concurrency and pace follow what the host shows, within limits.

The algorithm is TCP's congestion control applied per host (AIMD), with
latency as the early signal, as in Scrapy's AutoThrottle and delay-based TCP:

* every host starts at 1 request in flight and doubles per healthy round trip
  ("slow start": +1 per healthy answer) up to ``per_host``, then grows by
  about 1 per round trip (+1/k per answer);
* a host *pushes back* when it answers 429 or 503, or an attempt times out or
  cannot connect; it *slows down* when the average latency of its answers
  climbs past twice the lowest seen (and 50 ms more). Either halves its
  concurrency (never below 1), at most once per round trip, and the growth
  past that point is additive only;
* pushback also spaces its attempts: the interval between two starts doubles
  (from at least the host's latency or 250 ms, up to `MAX_GAP`) and shrinks by
  a tenth per healthy answer until it is gone. ``rate`` and robots.txt's
  Crawl-delay stay the floor (`polyfetch._pace.Pacer`).

The concurrency is applied by the per-host queues (`polyfetch._schedule`):
items of a host start only while fewer than its current limit run; a
``Retry-After`` is still honoured by the planner.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from polyfetch._pace import Pacer
from polyfetch._plan import Response
from polyfetch.errors import ConnectError, FetchError, ReadTimeout, TotalTimeout

PUSHBACK_STATUSES = frozenset({429, 503})
#: The longest interval the auto-throttle puts between two starts to one host.
MAX_GAP = 30.0
_MIN_GAP = 0.25
_ALPHA = 0.3  # weight of the newest latency in the moving average
_SLOWER = 2.0  # latency this many times the lowest seen (and _SLOWER_BY more) is slowing down
_SLOWER_BY = 0.05
_MAX_HOSTS = 100_000


@dataclass(slots=True)
class HostState:
    """What the auto-throttle knows of one host."""

    window: float = 1.0  #: requests in flight allowed (the limit is its integer part)
    threshold: float = 0.0  #: where slow start ends (0: not yet set, i.e. per_host)
    latency: float = 0.0  #: moving average of the answers' latency, seconds
    lowest: float = 0.0  #: lowest moving average seen
    cut_at: float = -1e9  #: when the window was last halved
    gap: float = 0.0  #: seconds between two starts asked of the pacer (0: none)


class Throttle:
    """The per-host state of one fetcher; fed every attempt's outcome by the runner."""

    def __init__(self, per_host: int, pacer: Pacer) -> None:
        self.per_host = per_host
        self.pacer = pacer
        self._hosts: dict[str, HostState] = {}
        self._lock = threading.Lock()  # the threads backend reports from many threads

    def limit(self, host: str) -> int:
        """How many of ``host``'s items may run at once now (1 for a host not seen yet)."""
        state = self._hosts.get(host)
        return 1 if state is None else int(state.window)

    def state(self, host: str) -> HostState:
        """The state of ``host`` (a copy), for progress displays and tests."""
        with self._lock:
            state = self._hosts.get(host)
            return HostState() if state is None else HostState(**_fields(state))

    def snapshot(self, now: float) -> dict[str, HostState]:
        """Every host's state (copies), ``cut_at`` made relative to ``now``: what `restore`
        needs to carry the hosts' windows to a fetcher in another process."""
        with self._lock:
            return {
                host: HostState(**{**_fields(state), "cut_at": state.cut_at - now})
                for host, state in self._hosts.items()
            }

    def restore(self, hosts: dict[str, HostState], now: float) -> None:
        """Take the hosts' states of a `snapshot`, as of ``now`` (the pacer's intervals travel
        with the pacer's own snapshot)."""
        with self._lock:
            for host, state in hosts.items():
                self._hosts[host] = HostState(**{**_fields(state), "cut_at": now + state.cut_at})
            while len(self._hosts) > _MAX_HOSTS:
                del self._hosts[next(iter(self._hosts))]

    def observe(
        self, host: str, outcome: Response | FetchError, seconds: float, now: float
    ) -> None:
        """Take one attempt's outcome to ``host``, ``seconds`` after it started."""
        with self._lock:
            state = self._hosts.get(host)
            if state is None:
                if len(self._hosts) >= _MAX_HOSTS:
                    del self._hosts[next(iter(self._hosts))]
                state = self._hosts[host] = HostState()
            if isinstance(outcome, FetchError):
                if isinstance(outcome, ConnectError | ReadTimeout | TotalTimeout):
                    self._cut(state, now, pushback=True)
            elif outcome.status in PUSHBACK_STATUSES:
                self._cut(state, now, pushback=True)
            else:
                self._answered(state, seconds, now)
            gap = state.gap
        self.pacer.throttle(host, gap, now)

    def _answered(self, state: HostState, seconds: float, now: float) -> None:
        state.latency = (
            seconds if not state.latency else (_ALPHA * seconds + (1 - _ALPHA) * state.latency)
        )
        if not state.lowest or state.latency < state.lowest:
            state.lowest = state.latency
        if state.latency > _SLOWER * state.lowest + _SLOWER_BY:
            self._cut(state, now, pushback=False)
            return
        threshold = state.threshold or self.per_host
        if state.window < threshold:
            state.window += 1.0  # slow start: doubles per round trip
        else:
            state.window += 1.0 / state.window
        state.window = min(state.window, float(self.per_host))
        if state.gap:
            state.gap = state.gap * 0.9 if state.gap * 0.9 >= 0.01 else 0.0

    def _cut(self, state: HostState, now: float, *, pushback: bool) -> None:
        if pushback:
            floor = max(state.latency, _MIN_GAP)
            state.gap = min(MAX_GAP, max(2 * state.gap, floor))
        if now - state.cut_at < max(state.latency, 0.01):
            return  # one halving per round trip: a burst of bad answers is one signal
        state.window = max(1.0, state.window / 2)
        state.threshold = state.window
        state.cut_at = now
        if not pushback:
            state.lowest = min(state.latency, state.lowest * 1.25)  # let the baseline move


def _fields(state: HostState) -> dict[str, float]:
    return {name: getattr(state, name) for name in HostState.__slots__}  # type: ignore[attr-defined]
