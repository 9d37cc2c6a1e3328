"""`ClusterFetcher`: `Fetcher.map` on a Dask cluster, with the same options and results.

``map()`` cuts the input into shards of ``shard_size`` items as it reads it and
submits each as one Dask task (`shard.run_shard`); at most ``shards`` are
submitted and unfinished at once, so a 100-million-line input streams through
the client in flat memory: ``shards * shard_size`` items and one shard's
results. Results come back a whole shard at a time, in the order shards
finish, with ``index`` counted over the whole input as `Fetcher.map` does.

A worker that dies mid-shard is Dask's business: the scheduler reruns the
task elsewhere (up to ``distributed.scheduler.allowed-failures`` deaths), and
since a shard's results reach the client only when it completes, nothing is
yielded twice. A runner that fails is retried once; a shard that still fails
raises `ShardFailed` from ``map()``. Closing the iterator early (or an
exception in the caller) cancels the shards in flight; their workers notice
within 50 ms and kill the shards' runner processes.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterable, Iterator
from itertools import islice
from typing import Any, Unpack

from polyfetch import backends
from polyfetch._fetcher import BackendName, Options
from polyfetch.distributed import connect
from polyfetch.distributed.errors import ShardFailed
from polyfetch.distributed.limits import DEFAULT_SHARD_SIZE, ShardLimits, divide
from polyfetch.distributed.shard import Shard, run_shard
from polyfetch.errors import ConfigError
from polyfetch.result import Result
from polyfetch.settings import Settings

#: Seconds to wait for a first worker when the scheduler has none.
WORKER_WAIT = 10.0


class ClusterFetcher:
    """Fetch many URLs on a Dask cluster; the same options and results as `polyfetch.Fetcher`.

    Args:
        cluster: ``"tcp://HOST:PORT"`` of a running scheduler, ``"local:N"`` (a
            LocalCluster of N worker processes, started now and closed with this
            fetcher), a `distributed.Client` (used as is, left open) or a cluster object.
        backend: the backend each shard runs on (every backend works, gevent included).
        shard_size: items per shard, the unit of work, of retry and of result transfer.
        shards: shards in flight at most (default: the cluster's worker threads now,
            capped at ``per_host``); ``per_host`` and ``rate`` are divided by it.
        bodies: send bodies back (default: ``keep_body``); bodies can be fetched for
            processing on the workers without travelling.
        scheduler_timeout: seconds to reach the scheduler (default: Dask's setting).
        **options: `polyfetch.Fetcher` options; ``per_host`` and ``rate`` are whole-crawl
            limits, ``concurrency`` is per shard, a processor is sent by name.

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
        bodies: bool | None = None,
        scheduler_timeout: float | None = None,
        **options: Unpack[Options],
    ) -> None:
        self.settings = Settings.build(**options)  # type: ignore[arg-type]
        self.backend_name = backend
        self.shard_size = shard_size if shard_size is not None else DEFAULT_SHARD_SIZE
        _check(backend, self.shard_size, shards)
        self._options = _shard_options(self.settings, dict(options))
        self._bodies = self.settings.keep_body if bodies is None else bodies
        self._conn = connect.connect(cluster, scheduler_timeout)
        try:
            slots = shards or connect.worker_threads(self._conn, WORKER_WAIT)
            connect.check_workers(self._conn, backend, self._options.get("process"))
        except BaseException:
            self._conn.close()
            raise
        self.limits: ShardLimits = divide(self.settings.per_host, self.settings.rate, slots)
        self._options.update(per_host=self.limits.per_host, rate=self.limits.rate)
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

        Input is consumed lazily; closing the iterator early cancels the shards in flight.
        """
        if self._closed:
            raise RuntimeError("this ClusterFetcher is closed")
        from distributed import as_completed

        client, run = self._conn.client, uuid.uuid4().hex[:12]
        items = iter(urls)
        in_flight: dict[Any, Shard] = {}
        finished = as_completed(loop=client.loop)
        start, more = 0, True

        def submit() -> None:
            nonlocal start, more
            while more and len(in_flight) < self.limits.shards:
                chunk = list(islice(items, self.shard_size))
                more = len(chunk) == self.shard_size
                if not chunk:
                    return
                shard = Shard(start, chunk, self.backend_name, self._options, self._bodies)
                start = shard.end
                future = client.submit(
                    run_shard, shard, key=f"polyfetch-shard-{run}-{shard.start}", retries=1
                )
                in_flight[future] = shard
                finished.add(future)

        try:
            submit()
            while in_flight:
                future = next(finished)
                results = _results(future, in_flight.pop(future))
                submit()
                yield from results
        finally:
            if in_flight:
                with contextlib.suppress(Exception):
                    client.cancel(list(in_flight), force=True)

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
    **options: Unpack[Options],
) -> Iterator[Result]:
    """`ClusterFetcher(cluster, backend, ...).map(urls)`, closing the fetcher at the end."""
    with ClusterFetcher(
        cluster, backend, shard_size=shard_size, shards=shards, **options
    ) as fetcher:
        yield from fetcher.map(urls)


def _results(future: Any, shard: Shard) -> list[Result]:
    try:
        return future.result()  # type: ignore[no-any-return]
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt | SystemExit | GeneratorExit):
            raise
        raise ShardFailed(
            f"items {shard.start}-{shard.end - 1} could not be fetched on the cluster: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    finally:
        future.release()


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
