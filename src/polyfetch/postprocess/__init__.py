"""Post-processing: run a processor on each fetched page, beside the fetching.

Fetching is IO; what is done with a page afterwards is CPU, and under the GIL
it stalls every IO backend. `PostProcessor` runs the processor in a pool of
worker processes (or threads, or inline for comparison), so fetching and
processing overlap::

    pp = PostProcessor("html", executor="process", workers=2, timeout=30)
    pp.start()                          # ConfigError now if the processor is unusable
    future = pp.submit(result)          # a concurrent.futures.Future; never blocks
    processed = future.result()         # the result with .processed / .process_error
    pp.close()

Modules: `engine` (the engine thread, timers, worker recovery), `_pool` (the
process pool's workers and their pipes), `_worker` (what runs in a worker),
`transport` (small messages: big pages and values go through files, for
gevent's sake), `spec` (naming processors for worker processes) and
`builtins` (``html``, ``sha256``, ``text``). Importing this package imports
neither multiprocessing nor a parser: the pool starts in `PostProcessor.start`
and a worker imports the parser when it first needs it.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any

from polyfetch.errors import ConfigError
from polyfetch.postprocess import _worker
from polyfetch.postprocess.engine import CLOSE_GRACE, Engine, done, outcome
from polyfetch.postprocess.spec import BUILTINS, Processor, resolve
from polyfetch.postprocess.transport import THRESHOLD
from polyfetch.result import Result
from polyfetch.settings import EXECUTORS, check_processing

__all__ = [
    # the engine
    "PostProcessor",
    "EXECUTORS",
    "CLOSE_GRACE",
    "THRESHOLD",
    "default_workers",
    # processors
    "BUILTINS",
    "Processor",
    "resolve",
]


class PostProcessor:
    """Run ``process`` on each submitted `Result`, in worker processes by default.

    Args:
        process: a module-level function taking a `Result`, a
            ``"package.module:function"`` name, or a built-in ("html", "sha256", "text").
        executor: "process" (a pool of spawned worker processes),
            "thread" (a thread pool), "inline" (in `submit`'s caller), or a
            `concurrent.futures.Executor` of yours, used as is and never shut down.
        workers: processes or threads of an owned pool; default: `default_workers`.
        timeout: seconds one item may run before `ProcessTimeout` (not for "inline").
    """

    def __init__(
        self,
        process: Callable[[Result], Any] | str,
        executor: str | Executor = "process",
        workers: int | None = None,
        timeout: float | None = None,
    ) -> None:
        check_processing(executor, workers, timeout)
        self._process = process
        self._executor = executor
        self._workers = workers or default_workers()
        self._timeout = float(timeout) if timeout is not None else None
        self._processor: Processor | None = None
        self._engine: Engine | None = None
        self._state = "new"
        self._lock = threading.Lock()
        self._finalizer: weakref.finalize | None = None

    @property
    def processor(self) -> Processor | None:
        """The resolved processor (after `start`)."""
        return self._processor

    def start(self) -> PostProcessor:
        """Resolve the processor and start the engine.

        Raises:
            ConfigError: the processor cannot be found, imported, or named for a worker.
        """
        with self._lock:
            if self._state == "closed":
                raise RuntimeError("this PostProcessor is closed")
            if self._state == "started":
                return self
            executor = self._executor
            if executor == "inline":
                self._processor = resolve(self._process, in_process=True)
            else:
                kind = _kind_of(executor)
                self._processor = resolve(self._process, in_process=kind == "thread")
                engine = Engine(self._processor, kind, executor, self._workers, self._timeout)
                engine.start()
                self._engine = engine
                # A PostProcessor dropped without close() still stops its workers and
                # removes its spool (when collected, or at exit at the latest).
                self._finalizer = weakref.finalize(self, engine.close)
            self._state = "started"
        return self

    def submit(self, result: Result, processor: Processor | None = None) -> Future[Result]:
        """Hand over one result; the future completes with it processed, and never raises.

        Thread-safe and never waits: a page for a free worker of the process pool is
        handed over from the calling thread (a copy into shared memory and a small write
        that cannot block), any other goes to the engine thread. The future
        may be cancelled at any time; its outcome is then dropped. Its
        done-callbacks run in the engine thread: keep them cheap, and never
        wait on another of these futures in one. ``processor`` (from `resolve`, checked
        by `check_other`) runs instead of this PostProcessor's own, for this result only.
        """
        if self._state != "started":
            raise RuntimeError(
                f"PostProcessor is {'closed' if self._state == 'closed' else 'not started'}"
            )
        if result.error is not None:
            return done(result)
        engine = self._engine
        if engine is not None:
            return engine.submit(result, processor)  # raises RuntimeError if closed meanwhile
        func = (processor or self._processor).func  # type: ignore[union-attr]  # inline
        return done(outcome(result, _worker.call(func, result)))

    def check_other(self, processor: Processor) -> None:
        """Refuse (`ConfigError`) a processor that this pool's workers could not run beside
        its own: one with no importable name, or defined in another main script."""
        own = self._processor
        assert own is not None, "start() first"
        if self._engine is None or self._engine.kind != "process":
            return  # in this process: any callable runs
        if processor.name is None:
            raise ConfigError(f"{processor} has no importable name for worker processes")
        if processor.main is not None and processor.main != own.main:
            raise ConfigError(f"{processor} is defined in a main script this pool does not run")

    def close(self) -> None:
        """Cancel what is queued, stop the workers, remove the spool; idempotent."""
        with self._lock:
            if self._state == "closed":
                return
            self._state = "closed"
        if self._finalizer is not None:
            self._finalizer()  # engine.close(), once

    def statistics(self) -> dict[str, int]:
        """Counters: submitted, processed, failed, timeouts, worker_died, resubmitted,
        cancelled, and replaced (workers started in place of dead or stuck ones)."""
        engine = self._engine
        return dict(engine.stats) if engine is not None else {}

    def __enter__(self) -> PostProcessor:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<PostProcessor {self._processor or self._process!r} executor={self._executor!r}>"


def default_workers() -> int:
    """One worker per CPU this process may run on (its affinity, not the machine's count).

    Measured on 2 cores (scripts/bench-pool, docs/benchmarks.md): 2 workers beside the
    fetching process beat 1 and 3, because handing a page over costs the fetching process
    a small fraction of what the parse costs a worker; a third worker only adds start-up
    and contention.
    """
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


def _kind_of(executor: str | Executor) -> str:
    """How the engine drives an executor: "process", "thread" or "foreign"."""
    if executor in ("process", "thread"):
        return str(executor)
    from concurrent.futures import ThreadPoolExecutor

    # A caller's thread pool shares our memory: call the function directly, no transport.
    return "thread" if isinstance(executor, ThreadPoolExecutor) else "foreign"
