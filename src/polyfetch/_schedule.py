"""Which input item starts next: per-host queues over a bounded look-ahead, written once.

Theory of operation. `Fetcher.map` reads its input ahead, up to ``lookahead``
items that have not started yet, and files each item under its host (the host
of its URL, as the per-host limits count it). An item starts as soon as a
place in the window (``concurrency`` items started and not yet handed back)
and a place of its host (``per_host`` items of that host running, or fewer
while `polyfetch._throttle` holds the host back) are both free. Hosts with
waiting items and a free place take turns, oldest turn first, so a host-sorted
list keeps every host busy and a slow host at the head of the list holds up
nobody behind it.

Memory is bounded by ``lookahead + concurrency`` items whatever the input's
order. When the look-ahead fills with items of hosts that are all at their
limit, reading stops and the crawl goes at those hosts' pace; `blocked_on`
names the host that holds it up. Items whose URL cannot be parsed have no host
and start at once: they fail without IO.

This decides only the order in which items start. Each attempt still takes its
host and global slots in the runner (`polyfetch._slots`), so a redirect to
another host, or `fetch()` calls beside a ``map()``, keep within the limits.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from polyfetch import _url

#: The host of an item that has none (not a URL): never queued, never limited.
NO_HOST = ""


class _Wait:
    __slots__ = ()

    def __repr__(self) -> str:
        return "WAIT"


#: What an input iterator of ``map()`` may give instead of an item: "nothing now, but the
#: results in flight may bring more" (a crawl's frontier). ``map()`` then reads no more
#: until it has handed back a result, and asks again.
WAIT = _Wait()


def host_of(item: object) -> str:
    """The key an item's per-host limit counts against; `NO_HOST` when it has no usable URL."""
    try:  # a hostile item (a ``url`` property that raises...) fails in the runner, not here
        url = item if type(item) is str else getattr(item, "url", None)
        if type(url) is str:
            m = _url._PLAIN.fullmatch(url)
            if m is not None:
                return m.group(2)
        return _url.parse(url).host_key
    except Exception:
        return NO_HOST


class HostQueues:
    """Items read ahead, filed by host, handed out fairly within the host and window limits."""

    __slots__ = (
        "_default",
        "_is_ready",
        "_limit",
        "_queues",
        "_ready",
        "_running",
        "_started",
        "draining",
        "lookahead",
        "queued",
        "window",
    )

    def __init__(
        self, window: int, per_host: int, lookahead: int, limit: Callable[[str], int] | None = None
    ) -> None:
        self.window = window
        self.lookahead = lookahead
        #: The current limit of a host (the auto-throttle's); None: ``per_host`` for every host.
        self._limit = limit
        self._default = per_host
        self._queues: dict[str, deque[tuple[object, int]]] = {}  # waiting items, by host
        self._running: dict[str, int] = {}  # started, not handed back, by host
        self._ready: deque[str] = deque()  # hosts with waiting items and a free place, in turn
        self._is_ready: set[str] = set()  # the hosts in _ready
        self._started: dict[int, str] = {}  # index -> host of each started item
        self.queued = 0  #: items read ahead and not started
        #: Set by `polyfetch.Fetcher.drain`: start nothing more, read nothing more.
        self.draining = False

    @property
    def running(self) -> int:
        """Items started and not yet handed back."""
        return len(self._started)

    def wants_input(self) -> bool:
        """Whether to read another item: one could start (the window has room) and the
        look-ahead has room. Reading stops when the window is full, so input stays lazy."""
        return (
            len(self._started) < self.window and self.queued < self.lookahead and not self.draining
        )

    def _has_place(self, host: str) -> bool:
        if host == NO_HOST:
            return True
        limit = self._limit(host) if self._limit is not None else self._default
        return self._running.get(host, 0) < limit

    def add(self, item: object, index: int) -> bool:
        """File a new item; True if it may start now (then it counts as started)."""
        host = host_of(item)
        queue = self._queues.get(host)
        if queue is None:
            if len(self._started) < self.window and self._has_place(host):
                self._start(host, index)
                return True
            queue = self._queues[host] = deque()
            if self._has_place(host):
                self._make_ready(host)
        queue.append((item, index))
        self.queued += 1
        return False

    def next(self) -> tuple[object, int] | None:
        """The next waiting item that may start now (it then counts as started), else None."""
        if len(self._started) >= self.window or self.draining:
            return None
        ready = self._ready
        while ready:
            host = ready.popleft()
            if not self._has_place(host):  # the auto-throttle lowered its limit meanwhile
                self._is_ready.discard(host)
                continue
            queue = self._queues[host]
            item, index = queue.popleft()
            self.queued -= 1
            self._start(host, index)
            if not queue:
                del self._queues[host]
                self._is_ready.discard(host)
            elif self._has_place(host):
                ready.append(host)  # its next turn comes after every other ready host
            else:
                self._is_ready.discard(host)
            return item, index
        return None

    def _start(self, host: str, index: int) -> None:
        self._started[index] = host
        if host != NO_HOST:
            self._running[host] = self._running.get(host, 0) + 1

    def done(self, index: int) -> None:
        """Item ``index`` was handed back: its places are free again."""
        host = self._started.pop(index)
        if host == NO_HOST:
            return
        left = self._running[host] - 1
        if left:
            self._running[host] = left
        else:
            del self._running[host]
        if host in self._queues and host not in self._is_ready and self._has_place(host):
            self._make_ready(host)

    def _make_ready(self, host: str) -> None:
        self._ready.append(host)
        self._is_ready.add(host)

    def blocked_on(self) -> str | None:
        """The host whose waiting items fill the look-ahead while reading has stopped, if any."""
        if self.queued < self.lookahead or not self._queues:
            return None
        return max(self._queues, key=lambda h: len(self._queues[h]))
