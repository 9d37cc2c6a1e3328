"""Processors for tests/test_postprocess.py, importable by name in worker processes.

Each misbehaves in one way a real processor might. Behaviour that must change
between attempts (die once, then succeed) keys on marker files named in the
page's URL, since a worker keeps no state across pool rebuilds.
"""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from pathlib import Path

from polyfetch.result import Result
from polyfetch.testing.processors import _param, echo, reverse

__all__ = ["boom", "die", "echo", "hang", "hog", "reverse", "sleep", "unpicklable"]


def boom(result: Result) -> None:
    """Raise when the URL says so, else return None."""
    if _param(result, "boom"):
        raise ValueError(f"bad page {result.index}")


def unpicklable(result: Result) -> object:
    """A value that cannot be pickled back to the parent."""
    return threading.Lock()


def die(result: Result) -> object:
    """``?die=exit`` calls os._exit(1), ``?die=kill`` SIGKILLs itself (as the OOM killer
    would); with ``once=PATH`` only the first time. Otherwise it is `sleep`."""
    how = _param(result, "die")
    once = _param(result, "once")
    if how and once:
        marker = Path(once)
        if marker.exists():
            return echo(result)
        marker.write_text("died")
    if how == "exit":
        os._exit(1)
    elif how == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    return sleep(result)


def sleep(result: Result) -> dict[str, object]:
    """Sleep ``?s=SECONDS``; with ``?pidfile=PATH``, first write this worker's pid there."""
    _write_pid(result)
    time.sleep(float(_param(result, "s", "0")))
    return echo(result)


def _write_pid(result: Result) -> None:
    """With ``?pidfile=PATH``, write this worker's pid there (whole, by rename)."""
    pidfile = _param(result, "pidfile")
    if pidfile:
        Path(pidfile + ".tmp").write_text(str(os.getpid()))
        os.replace(pidfile + ".tmp", pidfile)


def hang(result: Result) -> object:
    """Never return when the URL says ``?hang=1`` (a busy loop); otherwise it is `sleep`."""
    if _param(result, "hang"):
        while True:
            pass
    return sleep(result)


def hog(result: Result) -> object:
    """Write ``?pidfile=``, then never return from C code that holds the GIL.

    A regular expression backtracking for ever: no other thread of the worker runs again.
    """
    _write_pid(result)
    return re.match(r"(a+)+$", "a" * 64 + "b")
