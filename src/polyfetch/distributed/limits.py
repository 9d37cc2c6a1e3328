"""How the whole-crawl limits are shared among shards, and the default shard size.

A shard runs with its own fetcher, which knows nothing of the others, so
``per_host`` and ``rate`` - limits for the whole crawl - are divided statically
among the shards that may run at once. The client never has more than
``shards`` shards submitted and unfinished, so no more than that can run,
however many workers join later; each gets ``per_host // shards`` requests in
flight per host and ``rate / shards`` requests per second per host, and the
sums never exceed the limits. ``shards`` is capped at ``per_host`` so that
every shard may send at least one request per host. The price of needing no
coordination: while fewer shards run (at the start, at the end, or with fewer
workers than ``shards``), the limits are not used up.

``concurrency`` is not divided: it is each shard's window, i.e. what one worker
slot keeps in flight, so adding machines adds throughput.
"""

from __future__ import annotations

from dataclasses import dataclass

#: URLs per shard. Each shard pays a fixed cost: a fresh runner process (measured on the 2-core
#: development machine: 0.25-0.46 s to start with its backend, 0.6-0.76 s with a process pool),
#: a scheduler round trip (12 ms alone, ~3 ms per task when pipelined) and one transfer of its
#: results (~0.1-0.4 KB per URL without bodies). 5,000 small pages keep a worker slot busy for
#: ~2.5 s on loopback and 5-10 s over a real network, so start-up stays near 15% and 5-8%;
#: smaller shards balance better and lose less to a killed worker or a Ctrl+C, larger ones
#: amortize more. README "Scaling out on a Dask cluster" has the reasoning.
DEFAULT_SHARD_SIZE = 5000


@dataclass(frozen=True, slots=True)
class ShardLimits:
    """What each shard runs with."""

    shards: int  #: shards submitted and unfinished at once, at most
    per_host: int  #: each shard's per-host limit
    rate: float | None  #: each shard's per-host requests per second


def divide(per_host: int, rate: float | None, shards: int) -> ShardLimits:
    """Share ``per_host`` and ``rate`` (whole-crawl limits) among at most ``shards`` shards."""
    shards = max(1, min(shards, per_host))
    return ShardLimits(shards, per_host // shards, None if rate is None else rate / shards)
