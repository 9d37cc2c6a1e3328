"""`ClusterFetcher`: `Fetcher.map` on a Dask cluster, with the same options and results.

``map()`` routes each input item, as it reads it, to its host's partition
(`partitions`: a stable hash of the host, or of its registrable domain) and
submits a partition's buffered items as one Dask task (`shard.run_shard`) when
a shard's worth is there and the partition has no shard in flight. So one
shard at a time fetches from a host, and every shard runs with the whole
``per_host`` and ``rate``; the shards in flight - one per partition, as many
partitions as the cluster's worker slots - run side by side. What a shard
learnt of its hosts (robots.txt, Crawl-delay, the auto-throttle's windows)
comes back with its results and goes to the partition's next shard
(`politeness`), kept on disk in between. Memory is flat whatever the input's
order: at most a full shard per partition is buffered (then reading pauses)
and one per partition is in flight. Results come back a whole shard at a time,
in the order shards finish, with ``index`` counted over the whole input as
`Fetcher.map` does.

The input may yield `WAIT` - "nothing to give right now, but results still
in flight may bring more" (a link-following frontier does) - and ``map()`` then
submits what every idle partition has buffered, full shard or not, and reads
again after the next shard's results have been handed out, each one handled by
the caller before the next is asked for. ``crawl()`` is that with the crawl's
`polyfetch.frontier.Frontier` as the input: its shards read their pages' links
as `polyfetch.Fetcher.crawl` does (`polyfetch.frontier.crawler.LinkReader`, in
the shard's pool) and send them back beside their results (`ShardDone.links`),
which the client hands to the frontier.

A worker that dies mid-shard is Dask's business: the scheduler reruns the
task elsewhere (up to ``distributed.scheduler.allowed-failures`` deaths), and
since a shard's results reach the client only when it completes, nothing is
yielded twice; the partition still has that one shard in flight, never two. A
runner that fails is retried once; a shard that still fails raises
`ShardFailed` from ``map()``. Closing the iterator early (or an exception in
the caller) cancels the shards in flight; their workers notice within 50 ms
and kill the shards' runner processes.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import tempfile
import uuid
from collections.abc import Generator, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Final, Unpack

from polyfetch import backends
from polyfetch._fetcher import BackendName, CrawlOptions, Options
from polyfetch._schedule import WAIT
from polyfetch.distributed import connect
from polyfetch.distributed.errors import ShardFailed
from polyfetch.distributed.partitions import (
    DEFAULT_SHARD_SIZE,
    Partitions,
    partition_key,
)
from polyfetch.distributed.shard import Shard, ShardDone, run_shard
from polyfetch.errors import ConfigError
from polyfetch.result import Result
from polyfetch.settings import Settings

if TYPE_CHECKING:
    from polyfetch.frontier import Frontier

#: Seconds to wait for a first worker when the scheduler has none.
WORKER_WAIT = 10.0


_END: Final = object()


class ClusterFetcher:
    """Fetch many URLs on a Dask cluster; the same options and results as `polyfetch.Fetcher`.

    Args:
        cluster: ``"tcp://HOST:PORT"`` of a running scheduler, ``"local:N"`` (a
            LocalCluster of N worker processes, started now and closed with this
            fetcher), a `distributed.Client` (used as is, left open) or a cluster object.
        backend: the backend each shard runs on (every backend works, gevent included).
        shard_size: items per shard, the unit of work, of retry and of result transfer.
        shards: partitions, i.e. shards in flight at most, one per partition (default: the
            cluster's worker threads now).
        partition_by: ``"host"`` (default) or ``"domain"``: the registrable domain (Public
            Suffix List), so that all the hosts of a site go to one partition.
        bodies: send bodies back (default: ``keep_body``); bodies can be fetched for
            processing on the workers without travelling.
        scheduler_timeout: seconds to reach the scheduler (default: Dask's setting).
        **options: `polyfetch.Fetcher` options; ``per_host`` and ``rate`` hold for the whole
            crawl, each shard having them whole for its partition's hosts; ``concurrency`` is
            per shard; a processor is sent by name.

    Raises:
        ConfigError: bad options; ClusterError: no usable cluster (both before any fetch).
    """

    def __init__(
        self,
        cluster: object,
        backend: BackendName = backends.DEFAULT,
        *,
        shard_size: int | None = None,
        shards: int | None = None,
        partition_by: str = "host",
        bodies: bool | None = None,
        scheduler_timeout: float | None = None,
        **options: Unpack[Options],
    ) -> None:
        self.settings = Settings.build(**options)  # type: ignore[arg-type]
        self.backend_name = backend
        self.shard_size = shard_size if shard_size is not None else DEFAULT_SHARD_SIZE
        _check(backend, self.shard_size, shards)
        self.partition_by = partition_by
        self._key = partition_key(partition_by)
        self._options = _shard_options(self.settings, dict(options))
        self._bodies = self.settings.keep_body if bodies is None else bodies
        self._conn = connect.connect(cluster, scheduler_timeout)
        try:
            #: Partitions, and so shards in flight at most.
            self.shards: int = shards or connect.worker_threads(self._conn, WORKER_WAIT)
            connect.check_workers(self._conn, backend, self._options.get("process"))
        except BaseException:
            self._conn.close()
            raise
        self._partitions: Partitions | None = None
        self._frontier: Frontier | None = None
        self._closed = False

    @property
    def address(self) -> str:
        """Where the cluster is (``local:N (...)`` for a local cluster)."""
        return self._conn.address

    def __enter__(self) -> ClusterFetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def map(self, urls: Iterable[object]) -> Iterator[Result]:
        """Fetch every item of ``urls`` on the cluster, yielding a shard's results as it ends.

        Input is consumed lazily (it may yield `WAIT`); closing the iterator early cancels
        the shards in flight.
        """
        if self._closed:
            raise RuntimeError("this ClusterFetcher is closed")
        states = _States()
        shards = self._shards(iter(urls), states, bodies=self._bodies)
        try:
            for done in shards:
                yield from done.results
        finally:
            shards.close()
            states.close()

    def crawl(
        self, seeds: Iterable[object] | Frontier, **options: Unpack[CrawlOptions]
    ) -> Iterator[Result]:
        """`polyfetch.Fetcher.crawl` on the cluster: the same records, options and limits.

        The frontier stays here (seen-set, scope, depth order, limits, the journal of a
        `Frontier` given); the URLs it hands out are routed to their host's partition like
        ``map()``'s items, and each shard reads its pages' links where it fetched them, in
        its own pool, and sends them back with its records. ``follow`` must be None (the
        default link reader) or a ``"module:function"`` name: a function object cannot run
        on the workers.
        """
        if self._closed:
            raise RuntimeError("this ClusterFetcher is closed")
        from polyfetch._fetcher import _crawler, _frontier_class

        follow = options.get("follow")
        if follow is not None and not isinstance(follow, str):
            raise ConfigError(
                "follow must be None or a 'module:function' name on a cluster: the workers "
                f"read the links, and cannot be sent {follow!r}"
            )
        crawler, records = _crawler(self.settings, seeds, options)
        frontier = crawler.frontier
        states = _States()  # one for the sitemaps and the crawl: robots.txt once per host
        try:
            reader = crawler.links.pool()
            if reader is not None:
                connect.check_workers(
                    self._conn, self.backend_name, self._options.get("process"), reader
                )
            yield from records
            if options.get("sitemaps"):
                sitemaps = crawler.sitemaps()
                while urls := sitemaps.next_round():  # their bodies are read here
                    with contextlib.closing(self._shards(iter(urls), states, bodies=True)) as got:
                        for done in got:
                            for result in done.results:
                                sitemaps.take(result)
                frontier.mark_sitemaps_read()
            self._frontier = frontier
            shards = self._shards(frontier, states, bodies=self._bodies, crawl=True, follow=follow)
            with contextlib.closing(shards):
                for done in shards:
                    assert done.links is not None
                    for result, (extracted, robots) in zip(done.results, done.links, strict=True):
                        yield from crawler.take((result, extracted, robots))
            yield from frontier.close()
        finally:
            self._frontier = None
            states.close()
            if not isinstance(seeds, _frontier_class()):
                frontier.release()

    def _shards(
        self,
        items: Iterator[object],
        states: _States,
        *,
        bodies: bool,
        crawl: bool = False,
        follow: str | None = None,
    ) -> Generator[ShardDone, None, None]:
        """Run ``items`` on the cluster, yielding each shard's `ShardDone` as it ends, its
        results indexed over ``items``; ``crawl``: a crawl's shards, which read their pages'
        links (``follow``: the crawl's link reader)."""
        from distributed import as_completed

        client, run = self._conn.client, uuid.uuid4().hex[:12]
        parts = self._partitions = Partitions(self.shards, self.shard_size, self._key)
        in_flight: dict[Any, Shard] = {}
        finished = as_completed(loop=client.loop)
        numbers = itertools.count()
        index = 0
        exhausted = False

        def submit(flush: bool) -> None:
            for p, chunk, indexes in parts.take(flush=flush):
                shard = Shard(
                    p,
                    chunk,
                    indexes,
                    self.backend_name,
                    self._options,
                    bodies,
                    states.get(p),
                    crawl,
                    follow,
                )
                key = f"polyfetch-shard-{run}-{next(numbers)}-p{p}"
                future = client.submit(run_shard, shard, key=key, retries=1)
                in_flight[future] = shard
                finished.add(future)

        try:
            while True:
                waiting = False
                while not exhausted and parts.wants_input():
                    item = next(items, _END)
                    if item is _END:
                        exhausted = True
                    elif item is WAIT:
                        waiting = True
                        break
                    else:
                        if parts.add(item, index):
                            submit(flush=False)
                        index += 1
                # Nothing more to read right now: idle partitions take what they have.
                submit(flush=exhausted or waiting or not parts.wants_input())
                if not in_flight:
                    if waiting and not parts.draining:
                        raise RuntimeError("the input answered WAIT with no shard in flight")
                    return
                future = next(finished)
                shard = in_flight.pop(future)
                parts.done(shard.partition)
                done = _done(future, shard)
                states.put(shard.partition, done.state)
                # The partition's next shard goes before its results are handed out: its hosts
                # wait for a runner to start, not for the caller too.
                submit(flush=exhausted or not parts.wants_input())
                yield done
        finally:
            if in_flight:
                with contextlib.suppress(Exception):
                    client.cancel(list(in_flight), force=True)

    def drain(self) -> None:
        """Let the running ``map()`` or ``crawl()`` finish the shards in flight and submit
        nothing more: it then ends without records for the items it read but never sent (the
        crawl's first Ctrl+C; ``--resume`` fetches them). Safe to call from a signal handler."""
        if self._partitions is not None:
            self._partitions.draining = True
        if self._frontier is not None:
            self._frontier.stop()

    def blocked_on(self) -> str | None:
        """A host of the partition whose items fill the look-ahead of the latest ``map()``, if
        reading has paused for it (the crawl then goes at that partition's pace)."""
        return self._partitions.blocked_on() if self._partitions is not None else None

    def fetch(self, url: object) -> Result:
        """Fetch one URL on the cluster."""
        return next(iter(self.map([url])))

    def close(self) -> None:
        """Disconnect; a local cluster started for this fetcher is shut down."""
        if not self._closed:
            self._closed = True
            self._conn.close()

    def __repr__(self) -> str:
        return f"<ClusterFetcher {self.address} backend={self.backend_name!r}>"


def map(
    urls: Iterable[object],
    *,
    cluster: object,
    backend: BackendName = backends.DEFAULT,
    shard_size: int | None = None,
    shards: int | None = None,
    partition_by: str = "host",
    **options: Unpack[Options],
) -> Iterator[Result]:
    """`ClusterFetcher(cluster, backend, ...).map(urls)`, closing the fetcher at the end."""
    with ClusterFetcher(
        cluster, backend, shard_size=shard_size, shards=shards, partition_by=partition_by, **options
    ) as fetcher:
        yield from fetcher.map(urls)


def _done(future: Any, shard: Shard) -> ShardDone:
    try:
        return future.result()  # type: ignore[no-any-return]
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt | SystemExit | GeneratorExit):
            raise
        raise ShardFailed(
            f"{shard.describe()} could not be fetched on the cluster: {type(exc).__name__}: {exc}"
        ) from exc
    finally:
        future.release()


class _States:
    """Each partition's politeness state between two of its shards, in files: over many
    partitions of many hosts they can add up to more than the client should hold."""

    def __init__(self) -> None:
        self._dir: str | None = None

    def _path(self, partition: int) -> str:
        if self._dir is None:
            self._dir = tempfile.mkdtemp(prefix="polyfetch-partitions-")
        return os.path.join(self._dir, str(partition))

    def get(self, partition: int) -> bytes | None:
        if self._dir is None:
            return None
        try:
            with open(self._path(partition), "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None

    def put(self, partition: int, state: bytes | None) -> None:
        if state is None:
            return
        with open(self._path(partition), "wb") as f:
            f.write(state)

    def close(self) -> None:
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None


def _check(backend: str, shard_size: object, shards: object) -> None:
    if backend not in backends.NAMES:
        raise ConfigError(f"unknown backend {backend!r}; choose one of {', '.join(backends.NAMES)}")
    for name, value in (("shard_size", shard_size), ("shards", shards)):
        if value is not None and (not isinstance(value, int) or value < 1):
            raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")


def _shard_options(settings: Settings, options: dict[str, Any]) -> dict[str, Any]:
    """The options a shard's fetcher gets: what was given, the processor by its name."""
    if not isinstance(settings.executor, str):
        raise ConfigError(
            "executor must be 'process', 'thread' or 'inline' on a cluster: "
            "an Executor object cannot be sent to the workers"
        )
    if settings.process is not None:
        from polyfetch.postprocess.spec import resolve

        name = resolve(settings.process, in_process=False).name
        if name is None or name.startswith("__main__:"):
            raise ConfigError(
                f"process={settings.process!r} lives in the __main__ script, which cluster "
                "workers do not have: put it in a module installed on every worker"
            )
        options["process"] = name
    return options
