"""What runs in a worker process, and the error description shared with in-process runs.

`run` never raises: the processor's exception, a failed import of the
processor, a body file that cannot be read and a value that cannot be pickled
all become an ``("error", message)`` reply, so the only way an item can break
the pool is by killing its worker.

Each worker claims a slot of a shared array in `initialize` and writes into it
``(pid, start, item)`` while it runs an item. That lets the parent time an
item from the moment a worker *started* it (not from when it was queued) and,
when a worker dies, blame only the item that was running in that worker.

The parent's main module is run only when a processor defined there is first
needed (`_run_main`).
"""

from __future__ import annotations

import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

from polyfetch.postprocess import transport

#: Fields of one worker's slot in the shared array.
PID, START, ITEM = 0, 1, 2
SLOT = 3

_slots: Any = None
_base = -1
_functions: dict[str, Callable[[Any], Any]] = {}
#: Where the parent's main module comes from, for a processor defined there (`spec.Processor`).
_main: tuple[str, str] | None = None
_main_ran = False


def initialize(slots: Any, counter: Any, main: tuple[str, str] | None = None) -> None:
    """Pool initializer: ignore Ctrl+C, claim a slot; never raises (that would break the pool)."""
    global _slots, _base, _main
    _main = main
    try:
        # Ctrl+C goes to the whole foreground process group; the parent decides what stops.
        # The worker was started with SIGINT blocked (`Generation.submit`): ignore, then unblock.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if hasattr(signal, "pthread_sigmask"):
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        with counter.get_lock():
            index = counter.value
            counter.value += 1
        _base = (index % (len(slots) // SLOT)) * SLOT
        slots[_base + PID] = os.getpid()
        _slots = slots
    except BaseException:
        _slots = None


def run(name: str, item: int, payload: transport.Payload, out_path: str) -> transport.Reply:
    """Run processor ``name`` on the `Result` in ``payload``; the reply is always small."""
    slots = _slots
    if slots is not None:
        # START before ITEM: the parent reads ITEM first, so it never pairs it with a stale START.
        slots[_base + START] = time.monotonic_ns()
        slots[_base + ITEM] = item
    try:
        result = transport.unpack(payload)
        func = _functions.get(name)
        if func is None:
            from polyfetch.postprocess.spec import load

            if name.startswith("__main__:"):
                _run_main()
            func = _functions[name] = load(name)
        value = func(result)
    except BaseException as exc:
        reply: transport.Reply = ("error", describe(exc))
    else:
        try:
            reply = transport.encode_reply(value, out_path)
        except BaseException as exc:
            reply = (
                "error",
                f"the processor returned a {type(value).__name__} that cannot "
                f"be sent back: {describe(exc)}",
            )
    finally:
        if slots is not None:
            slots[_base + ITEM] = 0
    return reply


def _run_main() -> None:
    """Run the parent's main script (or ``-m`` module) here as ``__mp_main__``, once.

    What multiprocessing's spawn does for every child at start (`_spawn` turns
    that off), done only for a processor defined there: code under
    ``if __name__ == "__main__":`` does not run, and ``__main__`` becomes an alias,
    so values of classes defined in the script pickle under the names the parent knows.
    """
    global _main_ran
    if _main is None or _main_ran:
        return  # a caller's own executor: its children ran the main module themselves
    import runpy
    import types

    kind, where = _main
    try:
        if kind == "name":
            content = runpy.run_module(where, run_name="__mp_main__", alter_sys=True)
        else:
            content = runpy.run_path(where, run_name="__mp_main__")
    except BaseException as exc:
        raise RuntimeError(
            f"the main script {where} failed in the worker: {describe(exc)}"
        ) from None
    module = types.ModuleType("__mp_main__")
    module.__dict__.update(content)
    sys.modules["__main__"] = sys.modules["__mp_main__"] = module
    _main_ran = True


def noop() -> None:
    """A task that only makes the executor start a worker (see `Engine._warm_up`)."""


def call(func: Callable[[Any], Any], result: Any) -> transport.Reply:
    """Run a processor in this process: ``("value", value)`` or ``("error", message)``.

    Only `Exception` is caught: KeyboardInterrupt, SystemExit and a greenlet's
    GreenletExit belong to whoever runs this thread.
    """
    try:
        return ("value", func(result))
    except Exception as exc:
        return ("error", describe(exc))


def describe(exc: BaseException) -> str:
    """``"module.Type: message (at file:line in function)"``, with the innermost frame."""
    kind = type(exc)
    name = (
        kind.__qualname__
        if kind.__module__ == "builtins"
        else f"{kind.__module__}.{kind.__qualname__}"
    )
    try:
        message = str(exc)
    except Exception:
        message = "<unprintable exception>"
    if len(message) > 500:
        message = message[:500] + "..."
    frames = traceback.extract_tb(exc.__traceback__)
    where = (
        f" (at {frames[-1].filename}:{frames[-1].lineno} in {frames[-1].name})" if frames else ""
    )
    return f"{name}: {message}{where}" if message else f"{name}{where}"
