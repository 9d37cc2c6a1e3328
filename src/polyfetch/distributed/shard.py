"""A shard, and what a Dask worker does with it: run it in a fresh runner process.

A shard is up to ``shard_size`` items of one partition (`partitions`), with
their indexes in the input, the fetcher options, and the politeness state the
partition's previous shard left (`politeness`). Its result, `ShardDone`, is
the shard's records and the state to hand to the partition's next shard.

`run_shard` is the Dask task. It does not fetch in the worker process itself,
because a Dask worker cannot host the backends as they need to run: gevent
must patch before anything imports ``socket`` (the worker did long ago), the
worker is a daemonic process, which may not start the process pool that
post-processing uses, and two backends must never share a process. So each
shard gets a new interpreter (`polyfetch.distributed.runner`), the worker's
cores do its post-processing, and a crash there is a failed task, not a dead
worker.

The runner leads its own process group, and nothing it starts outlives the
task: when the runner ends, when the task is cancelled (polled every 50 ms:
the client cancelled the shard or went away), or when the task fails, the
group is killed with SIGKILL before the runner is reaped, so the group id
cannot have been reused. When the worker process itself dies, the runner sees
its stdin - a pipe only the worker writes to - reach EOF, and kills its own
group (see `runner`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from polyfetch.result import Result

if TYPE_CHECKING:
    from polyfetch.frontier.links import Extracted

RUNNER = "polyfetch.distributed.runner"
_POLL = 0.05  # seconds between checks for the runner's exit and for cancellation
_TAIL = 2000  # characters of the runner's stderr quoted when it fails


@dataclass(frozen=True, slots=True)
class Shard:
    """Items of one partition; the result of ``items[i]`` gets the index ``indexes[i]``."""

    partition: int
    items: list[object]
    indexes: list[int]  #: each item's index in the whole input
    backend: str
    #: Fetcher options for this shard (the whole crawl's limits, processor given by name).
    options: dict[str, Any] = field(default_factory=dict)
    #: Send bodies back to the client (they may be needed to fetch, e.g. for processing).
    bodies: bool = True
    #: What the partition's previous shard learnt of its hosts (`politeness.capture`).
    state: bytes | None = None
    #: A link-following crawl's shard: its pages are read as the crawl reads them
    #: (`polyfetch.frontier.crawler.LinkReader`), ``follow`` being the crawl's (None: the
    #: default link reader, or a "module:function" name).
    crawl: bool = False
    follow: str | None = None

    def describe(self) -> str:
        """The shard in a sentence, for errors: its partition and input items."""
        first, last = min(self.indexes), max(self.indexes)
        return f"{len(self.items)} items of partition {self.partition} (input items {first}-{last})"


@dataclass(frozen=True, slots=True)
class ShardDone:
    """What a shard gives back: its records and its partition's politeness state; for a
    crawl's shard also, beside each record, the links to follow from it and its
    ``X-Robots-Tag`` directives (the rest of a `polyfetch.frontier.crawler.Page`)."""

    results: list[Result]
    state: bytes | None
    links: list[tuple[Extracted | None, str | None]] | None = None


def run_shard(shard: Shard) -> ShardDone:
    """Fetch ``shard`` in a fresh runner process on this machine (the Dask task)."""
    import pickle
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory(prefix="polyfetch-shard-") as tmp:
        source, target, log = (os.path.join(tmp, name) for name in ("in", "out", "log"))
        with open(source, "wb") as f:
            pickle.dump(shard, f, protocol=pickle.HIGHEST_PROTOCOL)
        with open(log, "wb") as err:
            proc = subprocess.Popen(
                [sys.executable, "-m", RUNNER, shard.backend, source, target],
                stdin=subprocess.PIPE,  # never written: its EOF tells the runner we are gone
                stdout=err,
                stderr=err,
                start_new_session=True,
            )
        try:
            finished = _wait_exit(proc.pid, _cancellation_check())
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # stragglers too; not reaped yet: safe
            proc.wait()
            assert proc.stdin is not None
            proc.stdin.close()
        if not finished:
            raise RuntimeError(f"shard of {shard.describe()} cancelled")
        if proc.returncode != 0:
            with open(log, "rb") as f:
                tail = f.read().decode("utf-8", "replace")[-_TAIL:].strip()
            raise RuntimeError(f"the shard runner exited with status {proc.returncode}: {tail}")
        with open(target, "rb") as f:
            return pickle.load(f)  # type: ignore[no-any-return]


def _wait_exit(pid: int, cancelled: Callable[[], bool]) -> bool:
    """Wait until ``pid`` exits, leaving it unreaped (True), or until ``cancelled()`` (False)."""
    flags = os.WEXITED | os.WNOHANG | os.WNOWAIT
    while os.waitid(os.P_PID, pid, flags) is None:
        if cancelled():
            return False
        time.sleep(_POLL)
    return True


def _cancellation_check() -> Callable[[], bool]:
    """True once the Dask task running this thread is no longer wanted (never outside Dask)."""
    try:
        from distributed import get_worker
        from distributed.worker import thread_state

        worker, key = get_worker(), thread_state.key
    except (ImportError, ValueError, AttributeError):
        return lambda: False

    def cancelled() -> bool:
        task = worker.state.tasks.get(key)
        return task is None or task.state in ("cancelled", "released", "forgotten")

    return cancelled


def check_worker(
    version: str, backend: str, process: str | None, reader: str | None = None
) -> str | None:
    """Run on every worker before the crawl (``Client.run``): why it cannot run shards, or
    None. ``reader``: a crawl's link reader, by name (`LinkReader.pool`)."""
    from polyfetch import __version__, backends
    from polyfetch.errors import ConfigError

    if version != __version__:
        return f"it has polyfetch {__version__}, the client {version}: install the same version"
    lacking = backends.missing(backend)
    if lacking:
        packages = " ".join(lacking)
        return f"backend {backend!r} needs {packages} there: pip install {packages}"
    for name in (process, reader):
        if name is None:
            continue
        from polyfetch.frontier.crawler import missing
        from polyfetch.postprocess.spec import resolve

        try:
            resolve(name, in_process=False)
        except ConfigError as exc:
            return str(exc)
        problem = missing(name)
        if problem is not None:
            return problem
    return None
