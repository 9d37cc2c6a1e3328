"""A spawn context whose workers never run the parent's ``__main__`` and are known to be
dead even when someone else reaped them.

Spawned processes normally re-run the parent's main module first (as
``__mp_main__``, from its path or module name), so that functions defined there
can be unpickled. Our workers never need it: processors are imported by name
(`spec`), and one that does live in the main script is loaded only when an item
needs it (`_worker`). Re-running it fails outright when there is no file to
run (``python - <<EOF``: ``<stdin>``), and otherwise runs a caller's unguarded
top-level code once per worker. `_Popen._launch` therefore drops the two keys
of the preparation data that name the main module.

Under gevent, libev's SIGCHLD handler reaps *every* child (``waitpid(-1)``)
once gevent has watched any child process (gevent's ``subprocess`` does); a
program that ignores SIGCHLD has its children reaped by the kernel. Then
``os.waitpid(worker)`` fails with ECHILD, multiprocessing's
`Process.is_alive` answers True for ever, and a `ProcessPoolExecutor` whose
worker died spins in ``shutdown_workers`` waiting for it to go (its call
queue full of work nobody will take). Under gevent that loop never yields,
so the hub, and the whole process, hang: reproduced with 2 workers, 8 items
and one ``os.kill(os.getpid(), SIGKILL)`` after one ``subprocess.run``.

`WorkerProcess` reads ECHILD with a closed sentinel (the child's end of a
pipe, closed when it exits) as "dead, exit code unknown". This module is
imported only when a process pool starts: it imports multiprocessing.
"""

from __future__ import annotations

import io
import os
from multiprocessing import popen_spawn_posix, reduction, spawn, util
from multiprocessing.connection import wait
from multiprocessing.context import SpawnContext, SpawnProcess, set_spawning_popen
from typing import Any

#: The exit code of a worker whose status was reaped by someone else.
UNKNOWN_EXIT = 255
#: Preparation data that would make a spawned process re-run the parent's main module.
MAIN_KEYS = ("init_main_from_name", "init_main_from_path")


def preparation_data(name: str) -> dict[str, object]:
    """multiprocessing's preparation data for a child, minus the parent's main module."""
    data: dict[str, object] = spawn.get_preparation_data(name)
    for key in MAIN_KEYS:
        data.pop(key, None)
    return data


class _Popen(popen_spawn_posix.Popen):
    status_unknown = False
    _fds: list[int]  # set by popen_spawn_posix.Popen.__init__

    def _launch(self, process_obj: Any) -> None:
        # CPython's `popen_spawn_posix.Popen._launch` (identical in 3.11.7, 3.12.1 and
        # 3.13.0; a test compares it with the running version's), but for `preparation_data`.
        # It has no hook for the data, and patching `spawn.get_preparation_data` would change
        # every other spawn in the process too.
        from multiprocessing import resource_tracker

        tracker_fd = resource_tracker.getfd()
        self._fds.append(tracker_fd)  # type: ignore[arg-type]
        prep_data = preparation_data(process_obj._name)
        fp = io.BytesIO()
        set_spawning_popen(self)
        try:
            reduction.dump(prep_data, fp)
            reduction.dump(process_obj, fp)
        finally:
            set_spawning_popen(None)

        parent_r = child_w = child_r = parent_w = None
        try:
            parent_r, child_w = os.pipe()
            child_r, parent_w = os.pipe()
            cmd = spawn.get_command_line(tracker_fd=tracker_fd, pipe_handle=child_r)
            self._fds.extend([child_r, child_w])
            self.pid = util.spawnv_passfds(spawn.get_executable(), cmd, self._fds)  # type: ignore[arg-type]
            self.sentinel = parent_r
            with open(parent_w, "wb", closefd=False) as f:
                f.write(fp.getbuffer())
        finally:
            fds_to_close = []
            for fd in (parent_r, parent_w):
                if fd is not None:
                    fds_to_close.append(fd)
            # parent_w stays open until this Popen is collected (after its worker is gone): its
            # end of file is how the worker learns that this process died (`_worker`).
            self.finalizer = util.Finalize(self, util.close_fds, fds_to_close)  # type: ignore[attr-defined]

            for fd in (child_r, child_w):
                if fd is not None:
                    os.close(fd)

    def poll(self, flag: int = os.WNOHANG) -> int | None:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, flag)
            except ChildProcessError:
                if wait([self.sentinel], 0):  # gone, and reaped by someone else
                    self.returncode = UNKNOWN_EXIT
                    self.status_unknown = True
                return self.returncode
            except OSError:
                return None
            if pid == self.pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode


class WorkerProcess(SpawnProcess):
    """A spawned process whose death is noticed even if its status was reaped elsewhere."""

    @staticmethod
    def _Popen(process_obj: Any) -> _Popen:
        return _Popen(process_obj)


class WorkerContext(SpawnContext):
    """The spawn context, making `WorkerProcess` processes."""

    Process = WorkerProcess
