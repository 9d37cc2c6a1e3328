"""What runs in a worker process, and the error description shared with in-process runs.

`run` never raises: the processor's exception, a failed import of the
processor, a body file that cannot be read and a value that cannot be pickled
all become an ``("error", message)`` reply, so the only way an item can break
the pool is by killing its worker.

A worker of the owned pool runs `serve`: it reads requests from its own pipe and
answers each in order. It also writes ``(pid, start, item)`` into its slot of a
shared array while it runs an item, which lets the parent time an item from the
moment the worker *started* it (not from when it was handed over) and, when the
worker dies, blame the item it was running and not the one waiting behind it.

A worker never outlives its parent, whatever killed the parent (SIGKILL, the
OOM killer): see `watch_parent`. The parent's main module is run only when a
processor defined there is first needed (`_run_main`).
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from polyfetch.postprocess import transport

#: Fields of one worker's slot in the shared array.
PID, START, ITEM = 0, 1, 2
SLOT = 3

#: Linux's prctl option that has the kernel signal a process when its parent dies.
PR_SET_PDEATHSIG = 1
#: glibc's mallopt parameters, and the freed heap a worker keeps (`keep_freed_memory`).
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
KEEP_FREED = 32 * 1024 * 1024

_slots: Any = None
_base = -1
_functions: dict[str, Callable[[Any], Any]] = {}
#: Where the parent's main module comes from, for a processor defined there (`spec.Processor`).
_main: tuple[str, str] | None = None
_main_ran = False


def serve(
    conn: Any,
    slots: Any,
    index: int,
    main: tuple[str, str] | None,
    name: str,
    segment: tuple[str, int],
) -> None:
    """A worker process's whole life: start, say ready, then run what comes until EOF.

    Requests are pickled ``(item, processor name, payload, out path)``; replies go back in
    the same order, one per request, each small (`transport.reply_bytes`). Bodies are read
    from the shared ``segment`` (its path and places) when the payload says so. The pool's
    own processor ``name`` is imported before saying ready, so that no page waits for it;
    one that fails to import fails each item that asks for it, with the reason.
    """
    initialize(slots, index, main)
    memory = transport.Segment(*segment, create=False).memory
    with contextlib.suppress(BaseException):
        _function(name)
    conn.send_bytes(transport.READY)
    while True:
        try:
            request = conn.recv_bytes()
        except (EOFError, OSError):
            return  # the parent closed our pipe: the pool is shutting down
        item, name, payload, out_path = pickle.loads(request)
        reply = run(name, item, payload, out_path, transport.REPLY_INLINE, memory)
        conn.send_bytes(transport.reply_bytes(reply))


def initialize(slots: Any, index: int, main: tuple[str, str] | None = None) -> None:
    """Die with the parent, ignore Ctrl+C, take slot ``index``; never raises (a worker
    that cannot watch its parent or report into its slot still works)."""
    global _slots, _base, _main
    _main = main
    with contextlib.suppress(Exception):
        watch_parent()
    with contextlib.suppress(Exception):
        keep_freed_memory()
    try:
        # Ctrl+C goes to the whole foreground process group; the parent decides what stops.
        # The worker was started with SIGINT blocked (`_pool.Pool`): ignore, then unblock.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if hasattr(signal, "pthread_sigmask"):
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        _base = index * SLOT
        slots[_base + ITEM] = 0  # what the worker before us in this slot was running
        slots[_base + PID] = os.getpid()
        _slots = slots
    except BaseException:
        _slots = None


def keep_freed_memory() -> None:
    """Have glibc keep up to `KEEP_FREED` bytes of freed heap instead of returning it.

    Every page is a body of ~100 KB, a parse and a value, allocated and freed: by
    default glibc gives the top of the heap back to the kernel after each
    (``brk``) and takes it again for the next, ~7 system calls and as many page
    faults per page. A worker's heap stays bounded by the largest page anyway.
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    libc = ctypes.CDLL(None)
    if hasattr(libc, "mallopt"):
        libc.mallopt(M_TRIM_THRESHOLD, KEEP_FREED)
        libc.mallopt(M_MMAP_THRESHOLD, KEEP_FREED)


def watch_parent() -> None:
    """Exit as soon as the parent process is gone, however it ended.

    The parent holds the write end of the pipe a spawned child was started
    through, and only it does (``O_CLOEXEC``: no other child inherits it, unless
    the parent forks), so the child's copy of the read end
    (`multiprocessing.parent_process().sentinel`) reads end-of-file exactly when
    the parent has died: a daemon thread blocks on it. That is portable, has no
    race (a parent that died before the thread started is seen at once) and needs
    no polling. But it needs the GIL to act, and a processor stuck in C code that
    holds it (a regular expression backtracking for ever) never gives it up; so
    on Linux the kernel is also asked to SIGKILL this process when its parent
    dies (``PR_SET_PDEATHSIG``). That signal fires when the *thread* that started
    the child ends, not the process: safe here, because workers are started only
    by the engine thread (`_pool.Pool.spawn`), which returns only after every
    worker it started was stopped and joined. Polling ``getppid`` would also
    work, at the cost of a wake-up per interval and that interval's delay.
    """
    import multiprocessing

    parent = multiprocessing.parent_process()
    if parent is None:
        return
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if (
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
            and os.getppid() != parent.pid
        ):
            os._exit(1)  # the parent died before prctl: nothing left to signal us
    threading.Thread(
        target=_exit_with, args=(parent.sentinel,), name="polyfetch-parent-watch", daemon=True
    ).start()


def _exit_with(fd: int) -> None:
    """Block until the parent's end of the pipe ``fd`` is closed, then exit at once."""
    try:
        while os.read(fd, 4096):
            pass  # the parent never writes after the start; data would not mean death
    except OSError:
        return  # someone closed our fd: that says nothing about the parent (prctl remains)
    os._exit(1)  # no cleanup: the parent is gone, and the next spool sweeps what we leave


def run(
    name: str,
    item: int,
    payload: transport.Payload,
    out_path: str,
    inline: int = transport.THRESHOLD,
    segment: Any = None,
) -> transport.Reply:
    """Run processor ``name`` on the `Result` in ``payload`` (its body perhaps in the shared
    ``segment``); the reply is always small: a value pickled to more than ``inline`` bytes
    goes to a file at ``out_path``."""
    slots = _slots
    if slots is not None:
        # START before ITEM: the parent reads ITEM first, so it never pairs it with a stale START.
        slots[_base + START] = time.monotonic_ns()
        slots[_base + ITEM] = item
    try:
        result = transport.unpack(payload, segment)
        value = _function(name)(result)
    except BaseException as exc:
        reply: transport.Reply = ("error", describe(exc))
    else:
        try:
            reply = transport.encode_reply(value, out_path, inline)
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


def _function(name: str) -> Callable[[Any], Any]:
    """The processor called ``name``, imported on first use (raises if it cannot be)."""
    func = _functions.get(name)
    if func is None:
        from polyfetch.postprocess.spec import load

        if name.startswith("__main__:") or "+__main__:" in name:
            _run_main()
        func = _functions[name] = load(name)
    return func


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
