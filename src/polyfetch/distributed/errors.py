"""The two ways a cluster crawl fails as a whole (everything else is a per-URL `Result`)."""

from __future__ import annotations

from polyfetch.errors import BackendError


class ClusterError(BackendError):
    """The cluster cannot run the crawl as asked, found before any URL is fetched.

    Raised when connecting: `distributed` is not installed, the scheduler is
    unreachable or has no workers, or a worker lacks polyfetch, the backend or
    the processor. A `BackendError`, so the crawl treats it as a usage error (exit 2).
    """


class ShardFailed(RuntimeError):
    """A shard could not be finished even after Dask's reruns (the workers running it kept
    dying, or its runner process failed twice). Its URLs have no result: what was already
    yielded is complete, and a crawl run again with ``--resume`` finishes the rest."""
