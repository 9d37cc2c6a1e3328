"""The host splitter: input items routed to partitions by host, and which shards go next.

Theory of operation. Every host belongs to one partition, chosen by a stable
hash of the host (or of its registrable domain, ``partition_by="domain"``),
and a partition has at most one shard in flight. So one shard alone fetches
from a host at any time: each shard runs with the whole ``per_host`` and
``rate``, and they hold across the cluster with no coordination (the design of
Mercator, IRLbot, BUbiNG and the textbook's "host splitter"). Parallelism
grows with the number of partitions - the shards in flight - not with
``per_host``.

`Partitions` is sans-IO: the client (`polyfetch.distributed.fetcher`) routes
each item it reads with `add`, asks `take` which shards to submit, and tells
`done` when one has come back. A partition's full buffer (``shard_size``
items) is submitted as soon as the partition is idle; a partial one when the
input has nothing more to give right now (it ended, the look-ahead is full, or
it answered "wait": a link-following frontier whose next URLs depend on
results still in flight), so no partition sits idle with work in its buffer
while the client waits.

Memory is bounded whatever the order of the input: at most ``lookahead``
(``partitions * shard_size``) items are buffered, then reading pauses until a
shard is submitted. A list that is one host for its first ten million lines
thus runs as one partition, at that host's pace, and `blocked_on` names the
host (the crawl's progress line shows it), as on one machine when the
look-ahead fills.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable

from polyfetch._schedule import NO_HOST, host_of
from polyfetch.errors import ConfigError

#: URLs per shard. Each shard pays a fixed cost: a fresh runner process (measured on the 2-core
#: development machine: 0.25-0.46 s to start with its backend, 0.6-0.76 s with a process pool),
#: a scheduler round trip (12 ms alone, ~3 ms per task when pipelined) and one transfer of its
#: results (~0.1-0.4 KB per URL without bodies). 5,000 small pages keep a worker slot busy for
#: ~2.5 s on loopback and 5-10 s over a real network, so start-up stays near 15% and 5-8%;
#: smaller shards balance better and lose less to a killed worker or a Ctrl+C, larger ones
#: amortize more. README "Scaling out on a Dask cluster" has the reasoning.
DEFAULT_SHARD_SIZE = 5000
#: What hosts are grouped by: the host name itself, or its registrable domain (Public Suffix List).
PARTITION_BY = ("host", "domain")

#: A shard to submit: its partition, its items and their indexes in the input.
Cut = tuple[int, list[object], list[int]]


def partition_of(key: str, partitions: int) -> int:
    """The partition of ``key`` (a host or a domain) among ``partitions``: the same on every
    run and machine (not Python's ``hash``, which is salted per process)."""
    digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % partitions


def partition_key(by: str) -> Callable[[object], str]:
    """What an item is partitioned by: its host (`polyfetch._schedule.host_of`, what
    ``per_host`` counts) or, for ``"domain"``, the registrable domain of that host."""
    if by == "host":
        return host_of
    if by != "domain":
        raise ConfigError(f"partition_by must be one of {', '.join(PARTITION_BY)}, got {by!r}")
    from polyfetch.frontier.scope import registrable_domain

    domain = registrable_domain()

    def domain_of(item: object) -> str:
        host = host_of(item)
        return host if host == NO_HOST else domain(host)

    return domain_of


def interleave(items: list[object], key: Callable[[object], str] = host_of) -> list[int]:
    """The positions of ``items`` taken round robin by host: each host's first item in order
    of first appearance, then each one's second, and so on (a host's own items stay in
    order). A shard runs its items in this order: ``map()`` reads its input only while a
    place is free, so in a shard with more hosts than ``concurrency`` the hosts that come
    last in the list would be left to the end, and run alone there at ``per_host`` each;
    a link-following crawl hands out a page's links together, so a host's URLs bunch up."""
    by_key: dict[str, deque[int]] = {}
    for position, item in enumerate(items):
        by_key.setdefault(key(item), deque()).append(position)
    if len(by_key) < 2:
        return list(range(len(items)))
    order: list[int] = []
    turn = list(by_key.values())
    while turn:
        for queue in turn:
            order.append(queue.popleft())
        turn = [queue for queue in turn if queue]
    return order


class Partitions:
    """Items read from the input, buffered by partition, cut into shards one partition at a time.

    Args:
        count: partitions, i.e. shards in flight at most (one per partition).
        shard_size: items per shard at most.
        key: the partition key of an item (`partition_key`).
    """

    def __init__(self, count: int, shard_size: int, key: Callable[[object], str]) -> None:
        self.count = count
        self.shard_size = shard_size
        #: Items buffered at most before reading pauses: a full shard for every partition.
        self.lookahead = count * shard_size
        self._key = key
        self._buffers: list[deque[tuple[object, int]]] = [deque() for _ in range(count)]
        self._busy = [False] * count  # a shard of the partition is in flight
        self._full: deque[int] = deque()  # idle partitions with a full shard buffered, in turn
        self.buffered = 0  #: items read and not yet in a shard
        self.running = 0  #: shards in flight
        #: Set by `ClusterFetcher.drain`: submit nothing more, read nothing more.
        self.draining = False

    def route(self, item: object) -> int:
        """The partition ``item`` belongs to: its host's, always the same one."""
        return partition_of(self._key(item), self.count)

    def wants_input(self) -> bool:
        """Whether to read another item: the look-ahead has room and we are not draining."""
        return self.buffered < self.lookahead and not self.draining

    def add(self, item: object, index: int) -> bool:
        """Buffer ``item`` (input index ``index``) in its partition; True if that made a full
        shard of an idle partition (`take` has something to give)."""
        p = self.route(item)
        buffer = self._buffers[p]
        buffer.append((item, index))
        self.buffered += 1
        if len(buffer) == self.shard_size and not self._busy[p]:
            self._full.append(p)
            return True
        return False

    def take(self, *, flush: bool) -> list[Cut]:
        """The shards to submit now (each partition then counts as busy until `done`): every
        idle partition's full shard and, with ``flush`` - the input has nothing more to give
        right now - every idle partition's partial one too."""
        if self.draining:
            return []
        cuts = []
        while self._full:
            p = self._full.popleft()
            if not self._busy[p] and len(self._buffers[p]) >= self.shard_size:
                cuts.append(self._cut(p))
        if flush:
            cuts.extend(
                self._cut(p) for p in range(self.count) if not self._busy[p] and self._buffers[p]
            )
        return cuts

    def _cut(self, p: int) -> Cut:
        buffer = self._buffers[p]
        pairs = [buffer.popleft() for _ in range(min(len(buffer), self.shard_size))]
        self.buffered -= len(pairs)
        self._busy[p] = True
        self.running += 1
        return p, [item for item, _ in pairs], [index for _, index in pairs]

    def done(self, p: int) -> None:
        """Partition ``p``'s shard came back (or failed): it may take its next one."""
        self._busy[p] = False
        self.running -= 1
        if len(self._buffers[p]) >= self.shard_size:
            self._full.append(p)

    def blocked_on(self) -> str | None:
        """A host of the partition whose items fill the look-ahead while reading has paused,
        if it has (the crawl then goes at that partition's pace)."""
        if self.buffered < self.lookahead or self.draining:
            return None
        try:  # the progress display asks from its own thread while the buffers change
            first = max(self._buffers, key=len)[0][0]
        except IndexError:
            return None
        return host_of(first) or None
