"""Run `Fetcher.map` - and ``polyfetch crawl`` - on a Dask cluster, with the same interface.

    from polyfetch.distributed import ClusterFetcher

    with ClusterFetcher("tcp://scheduler:8786", "asyncio", per_host=32, process="html") as f:
        for result in f.map(urls):      # the same Results as Fetcher.map, in shard order
            ...

Theory of operation. The client (`fetcher`) cuts the input into shards as it
reads it and keeps a bounded number of them submitted to Dask (`limits`
divides the whole-crawl ``per_host`` and ``rate`` among them). On a worker,
each shard runs in a fresh interpreter (`shard` starts `runner`), which may
patch gevent first, owns a post-processing pool and dies with the worker. A
shard's results come back when it completes, so a worker that dies and has
its shard rerun by Dask never makes a result appear twice. `connect` reaches
the cluster and checks, before any fetch, that every worker can run shards.

Importing this package imports neither ``distributed`` nor anything gevent
must patch; ``distributed`` (``pip install 'polyfetch[cluster]'``) is imported
when a `ClusterFetcher` connects.
"""

from __future__ import annotations

from polyfetch.distributed.errors import ClusterError, ShardFailed
from polyfetch.distributed.fetcher import ClusterFetcher, map
from polyfetch.distributed.limits import DEFAULT_SHARD_SIZE

__all__ = ["DEFAULT_SHARD_SIZE", "ClusterError", "ClusterFetcher", "ShardFailed", "map"]
