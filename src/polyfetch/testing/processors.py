"""Processors for the processing checks, importable by name in worker processes.

Each misbehaves in one way a real processor might, as the page's URL asks.
Behaviour that must change between attempts (die once, then succeed) keys on
marker files named in the URL, since a worker keeps no state across pool rebuilds.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from polyfetch.result import Result

#: the module name the checks give as ``process="polyfetch.testing.processors:NAME"``
MODULE = __name__


def _param(result: Result, name: str, default: str = "") -> str:
    return parse_qs(urlsplit(result.url).query).get(name, [default])[0]


def echo(result: Result) -> dict[str, object]:
    """The item's index and body length, and which process ran it."""
    return {"index": result.index, "size": len(result.body or b""), "pid": os.getpid()}


def reverse(result: Result) -> bytes:
    """The body reversed: a value as big as the page."""
    return (result.body or b"")[::-1]


def boom(result: Result) -> None:
    """Raise ValueError when the URL has ``boom=1``, else return None."""
    if _param(result, "boom"):
        raise ValueError(f"bad page {result.index}")


def die(result: Result) -> object:
    """``?die=kill`` SIGKILLs the worker (as the OOM killer would), ``?die=exit`` calls
    os._exit(1); with ``once=PATH`` only the first time. Otherwise it is `echo`."""
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
    return echo(result)


def hang(result: Result) -> object:
    """Never return when the URL says ``?hang=1`` (a busy loop); otherwise it is `echo`."""
    if _param(result, "hang"):
        while True:
            pass
    return echo(result)
