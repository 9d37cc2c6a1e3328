"""Reaching the cluster: a scheduler address, ``local:N``, or a Client or cluster object.

``distributed`` is imported here, lazily, never by ``import polyfetch``. Every
failure to get a usable cluster becomes one `ClusterError` with a sentence a
user can act on, raised before anything is fetched or written.

``local:N`` starts a `distributed.LocalCluster` of N single-threaded worker
processes on 127.0.0.1 (no dashboard) for the run. Its worker processes are
started with SIGINT blocked: a Ctrl+C in the terminal reaches the whole
foreground process group, and it is the crawl's to handle (stop reading, grace
period, cancel), not something that should kill the workers under it. The
mask is set while Dask creates its event-loop thread, which starts every
worker process, restarts included, so they all inherit it (and so do the
shard runners they start).
"""

from __future__ import annotations

import contextlib
import re
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from polyfetch._version import __version__
from polyfetch.distributed.errors import ClusterError

INSTALL_HINT = "pip install 'polyfetch[cluster]' (Dask's distributed package)"
_LOCAL = re.compile(r"local(?::(\d+))?")


@dataclass(eq=False)
class Connection:
    """A client, and what of it this run started and must close."""

    client: Any  #: a `distributed.Client`
    address: str
    cluster: Any = None  #: the LocalCluster started for the run, if any
    owned: bool = True  #: whether the client is ours to close

    def close(self) -> None:
        """Close the client and the local cluster, if this run made them."""
        if self.owned:
            with contextlib.suppress(Exception):
                self.client.close()
        if self.cluster is not None:
            with contextlib.suppress(Exception):
                self.cluster.close()


def connect(cluster: object, timeout: float | None = None) -> Connection:
    """Connect to ``cluster``: ``"tcp://HOST:PORT"``, ``"local:N"``, a Client or a cluster.

    ``timeout`` (seconds) bounds the connection to a scheduler address; None uses
    Dask's ``distributed.comm.timeouts.connect`` setting.
    """
    local = _LOCAL.fullmatch(cluster.strip()) if isinstance(cluster, str) else None
    if local:
        # multiprocessing unblocks SIGINT in whichever thread starts its resource tracker:
        # start it first, so that the mask below reaches Dask's threads and workers.
        from multiprocessing import resource_tracker

        resource_tracker.ensure_running()
        with _sigint_blocked():
            _import()
            return _local(int(local.group(1)) if local.group(1) else None)
    distributed = _import()
    if isinstance(cluster, distributed.Client):
        return Connection(cluster, str(cluster.scheduler.address), owned=False)
    if not isinstance(cluster, str):
        client = distributed.Client(cluster, set_as_default=False)
        return Connection(client, str(client.scheduler.address))
    spec = cluster.strip()
    kwargs = {} if timeout is None else {"timeout": timeout}  # None: Dask's setting
    try:
        client = distributed.Client(spec, set_as_default=False, **kwargs)
    except Exception as exc:  # OSError, TimeoutError, ValueError for a malformed address...
        raise ClusterError(
            f"cannot reach the Dask scheduler at {spec}: {type(exc).__name__}: {exc}"
        ) from None
    return Connection(client, spec)


def _import() -> Any:
    try:
        import distributed
    except ImportError:
        raise ClusterError(f"running on a cluster needs {INSTALL_HINT}") from None
    return distributed


@contextlib.contextmanager
def _sigint_blocked() -> Iterator[None]:
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _local(workers: int | None) -> Connection:
    import os

    from distributed import Client, LocalCluster

    n = workers if workers is not None else (os.cpu_count() or 1)
    if n < 1:
        raise ClusterError("local:N needs N >= 1 worker processes")
    cluster = LocalCluster(
        n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    )
    try:
        client = Client(cluster, set_as_default=False)
    except BaseException:
        cluster.close()
        raise
    return Connection(client, f"local:{n} ({cluster.scheduler_address})", cluster)


def worker_threads(conn: Connection, timeout: float) -> int:
    """Task slots over the cluster's workers now; waits up to ``timeout`` s for a first worker."""
    threads = sum(conn.client.nthreads().values())
    if not threads:
        try:
            conn.client.wait_for_workers(1, timeout=timeout)
        except Exception:
            raise ClusterError(
                f"the Dask scheduler at {conn.address} has no workers "
                f"(start some with: dask worker {conn.address})"
            ) from None
        threads = sum(conn.client.nthreads().values())
    return max(threads, 1)


def check_workers(
    conn: Connection, backend: str, process: str | None, reader: str | None = None
) -> None:
    """Refuse, up front, a cluster whose workers cannot run the shards (of a crawl whose
    link reader is ``reader``, by name)."""
    from polyfetch.distributed.shard import check_worker

    try:
        answers = conn.client.run(check_worker, __version__, backend, process, reader)
    except Exception as exc:
        raise ClusterError(
            f"the workers at {conn.address} cannot run polyfetch shards "
            f"(is polyfetch installed on every worker?): {type(exc).__name__}: {exc}"
        ) from None
    for worker, problem in sorted(answers.items()):
        if problem:
            raise ClusterError(f"worker {worker} cannot run shards: {problem}")
