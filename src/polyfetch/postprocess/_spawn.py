"""A spawn context whose workers are known to be dead even when someone else reaped them.

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

import os
from multiprocessing import popen_spawn_posix
from multiprocessing.connection import wait
from multiprocessing.context import SpawnContext, SpawnProcess
from typing import Any

#: The exit code of a worker whose status was reaped by someone else.
UNKNOWN_EXIT = 255


class _Popen(popen_spawn_posix.Popen):
    status_unknown = False

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
