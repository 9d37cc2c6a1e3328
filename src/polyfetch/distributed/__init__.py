"""Run `Fetcher.map` - and ``polyfetch crawl`` - on a Dask cluster, with the same interface.

    from polyfetch.distributed import ClusterFetcher

    with ClusterFetcher("tcp://scheduler:8786", "asyncio", per_host=32, process="html") as f:
        for result in f.map(urls):      # the same Results as Fetcher.map, in shard order
            ...

Theory of operation. The client (`fetcher`) routes each input item, as it
reads it, to its host's partition (`partitions`: the host splitter) and
submits a partition's items to Dask as a shard, one shard in flight per
partition; so a host is fetched by one shard at a time, each shard has the
whole ``per_host`` and ``rate``, and shards of different partitions run side
by side. On a worker, each shard runs in a fresh interpreter (`shard` starts
`runner`), which may patch gevent first, owns a post-processing pool and dies
with the worker; what it learnt of its hosts (robots.txt, Crawl-delay, the
auto-throttle) goes back with its results to the partition's next shard
(`politeness`). A shard's results come back when it completes, so a worker
that dies and has its shard rerun by Dask never makes a result appear twice.
`connect` reaches the cluster and checks, before any fetch, that every worker
can run shards. ``ClusterFetcher.crawl`` follows links: the frontier stays on
the client and is ``map()``'s input, and each shard reads its pages' links
where it fetched them and sends them back with its results.

Importing this package imports neither ``distributed`` nor anything gevent
must patch; ``distributed`` (``pip install 'polyfetch[cluster]'``) is imported
when a `ClusterFetcher` connects.
"""

from __future__ import annotations

from polyfetch.distributed.errors import ClusterError, ShardFailed
from polyfetch.distributed.fetcher import WAIT, ClusterFetcher, map
from polyfetch.distributed.partitions import DEFAULT_SHARD_SIZE, PARTITION_BY

__all__ = [
    "DEFAULT_SHARD_SIZE",
    "PARTITION_BY",
    "WAIT",
    "ClusterError",
    "ClusterFetcher",
    "ShardFailed",
    "map",
]
