"""One generation of the owned process pool, and what it knows when it breaks.

A `ProcessPoolExecutor` cannot lose a worker and go on: one dead worker fails
every pending future with `BrokenProcessPool`. So the engine treats a pool as
disposable. A `Generation` is one `ProcessPoolExecutor` plus the shared slot
array its workers report into (see `_worker`); when it breaks it is retired
(every process killed and joined) and the next dispatch starts a new one.

Who is to blame is decided from a snapshot taken in the first
`BrokenProcessPool` callback, which the executor's manager thread runs *before*
it terminates the surviving workers: the dead processes are exactly the ones
that died on their own, and the slots say which item each was running. Items
that were queued, or running in a healthy worker, are not blamed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from typing import Any

from polyfetch.postprocess import _worker

_SIGMASK = hasattr(signal, "pthread_sigmask")


@dataclass(eq=False)
class Culprit:
    """The item a dead worker was running."""

    pid: int
    exitcode: int | None


@dataclass(eq=False)
class Generation:
    """A process pool and its slots; ``number`` counts pools started by one engine."""

    number: int
    executor: Executor
    slots: Any
    #: item id -> the dead worker that was running it; set by `snapshot` when the pool breaks.
    culprits: dict[int, Culprit] | None = None
    #: pids the engine killed itself (timeouts, retirement): their items are not to blame.
    killed: set[int] = field(default_factory=set)
    retired: bool = False

    @classmethod
    def start(
        cls, number: int, workers: int, context: Any, main: tuple[str, str] | None = None
    ) -> Generation:
        """A new pool; ``main`` says where its workers find a processor of ``__main__``."""
        from concurrent.futures import ProcessPoolExecutor

        slots = context.Array("q", workers * _worker.SLOT, lock=False)
        counter = context.Value("i", 0)
        executor = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=context,
            initializer=_worker.initialize,
            initargs=(slots, counter, main),
        )
        return cls(number, executor, slots)

    def processes(self) -> dict[int, Any] | None:
        """pid -> Process, from the executor's private ``_processes`` (CPython 3.8-3.14)."""
        procs = getattr(self.executor, "_processes", None)
        return dict(procs) if isinstance(procs, dict) else None

    def running(self) -> dict[int, tuple[int, float]]:
        """item id -> (pid, start in `time.monotonic` seconds) of what the workers run now."""
        slots, found = self.slots, {}
        for base in range(0, len(slots), _worker.SLOT):
            item = slots[base + _worker.ITEM]
            start = slots[base + _worker.START]
            if item:
                found[item] = (slots[base + _worker.PID], start / 1e9)
        return found

    def snapshot(self) -> None:
        """Record which items the dead workers were running (called when the pool breaks)."""
        running = self.running()
        procs = self.processes()
        if procs is None:
            # Cannot tell the dead from the living: every running item is a suspect.
            self.culprits = {item: Culprit(pid, None) for item, (pid, _) in running.items()}
            return
        dead = {pid: p for pid, p in procs.items() if exited(p)}
        self.culprits = {
            item: Culprit(pid, _exitcode(dead[pid]))
            for item, (pid, _) in running.items()
            if pid in dead
        }

    def kill(self, pid: int) -> None:
        """SIGKILL one worker of this pool (a stuck one), if it is still ours."""
        procs = self.processes()
        if procs is not None and (pid not in procs or exited(procs[pid])):
            return  # gone already: never signal a pid that may have been reused
        self.killed.add(pid)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        """`Executor.submit`, with SIGINT blocked while it may start a worker.

        A spawned worker inherits the signal mask of the thread that starts it,
        so it begins life with SIGINT blocked and no Ctrl+C can kill it before
        its initializer has set SIGINT to be ignored. (Blocked only around the
        call: under gevent this thread is the main thread.)
        """
        if not _SIGMASK:
            return self.executor.submit(fn, *args)
        old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            return self.executor.submit(fn, *args)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)

    def retire(self, *, cancel: bool = False) -> None:
        """Kill every worker and join the executor; idempotent.

        Args:
            cancel: cancel what is still queued (a pool that cannot start
                workers would never run it). Otherwise what was queued fails with
                `BrokenProcessPool` once the executor sees its workers die.
        """
        if self.retired:
            return
        self.retired = True
        for pid, process in (self.processes() or {}).items():
            if not exited(process):  # the dead died on their own: they stay to blame
                self.killed.add(pid)
                process.kill()
        self.executor.shutdown(wait=True, cancel_futures=cancel)

    def close(self) -> None:
        """Shut down gracefully: the workers finish what they run and exit."""
        if not self.retired:
            self.retired = True
            self.executor.shutdown(wait=True, cancel_futures=True)


def exited(process: Any) -> bool:
    """Whether a worker has exited, told by its sentinel, which closes whoever reaps it."""
    from multiprocessing.connection import wait

    return bool(wait([process.sentinel], 0))


def _exitcode(process: Any) -> int | None:
    """The exit code of an exited worker, if it can still be had (see `_spawn`)."""
    for _ in range(10):
        code = process.exitcode
        if code is not None:
            return None if getattr(process._popen, "status_unknown", False) else code
        time.sleep(0.001)  # the sentinel can close a moment before the status is ready
    return None
