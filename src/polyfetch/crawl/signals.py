"""Ctrl+C for a fetch loop that runs in the main thread, on every backend.

The SIGINT handler only sets flags, except in two cases, both safe by construction:

* The first Ctrl+C sets `stop_input` (the input generator ends at its next
  pull) and arms a one-shot ``SIGALRM`` for the grace period. When it fires
  while the main thread is blocked inside ``next()`` on the map iterator
  (`waiting`), the handler raises `GraceOver`. Every backend delivers it to the
  main thread or greenlet: threads and asyncio block in an interruptible queue
  get; gevent throws exceptions from its hub into the main greenlet; the
  greenlet hub hands a task's crash to the blocked caller. The map generator's
  ``finally`` then cancels what is in flight. `GraceOver` is a `SystemExit` so
  gevent passes it on without printing a traceback. When the alarm comes while
  a record is being written, it only sets `grace_over`, which the loop checks.
* A second Ctrl+C exits at once with ``os._exit`` - unless a record is being
  written (`writing`), in which case the exit happens right after that write.
  Records are flushed as they are written, so the output is valid either way.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

EXIT_INTERRUPTED = 130
_HAS_ALARM = hasattr(signal, "setitimer") and hasattr(signal, "SIGALRM")
#: The longest alarm setitimer takes (CPython's nanosecond time type: about 292 years); a
#: longer grace (``--grace inf``) arms none: in-flight requests get as long as they take.
_MAX_ALARM = 2**63 / 1e9 - 1


class GraceOver(SystemExit):
    """Raised in the main thread when the grace period after Ctrl+C ends."""


class Interrupter:
    """Flags shared between the SIGINT/SIGALRM handlers and the fetch loop."""

    def __init__(
        self,
        grace: float,
        on_exit_now: Callable[[], None],
        on_first: Callable[[], None] = lambda: None,
    ) -> None:
        self.grace = grace
        self.interrupts = 0
        self.stop_input = False
        self.grace_over = False
        self.waiting = False
        self.writing = False
        self._exit_pending = False
        self._on_exit_now = on_exit_now
        self._on_first = on_first
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        """Take over SIGINT and SIGALRM (only possible in the main thread, on POSIX)."""
        if threading.current_thread() is not threading.main_thread() or not _HAS_ALARM:
            return
        for signum, handler in ((signal.SIGINT, self._on_sigint), (signal.SIGALRM, self._on_alarm)):
            self._previous[signum] = signal.signal(signum, handler)

    def uninstall(self) -> None:
        """Disarm the alarm and give the signals back."""
        if not self._previous:
            return
        signal.setitimer(signal.ITIMER_REAL, 0)
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def check_grace(self) -> None:
        """Raise `GraceOver` if the grace period is over (call with `waiting` set)."""
        if self.grace_over:
            raise GraceOver(EXIT_INTERRUPTED)

    def written(self) -> None:
        """A record is whole (call after clearing `writing`): exit now if Ctrl+C asked to."""
        if self._exit_pending:
            self._on_exit_now()

    def _on_sigint(self, signum: int, frame: FrameType | None) -> None:
        self.interrupts += 1
        if self.interrupts == 1:
            self.stop_input = True
            if self.grace < _MAX_ALARM:  # more would raise OverflowError in this handler
                signal.setitimer(signal.ITIMER_REAL, self.grace)
            self._on_first()
        elif self.writing:
            self._exit_pending = True
        else:
            self._on_exit_now()

    def _on_alarm(self, signum: int, frame: FrameType | None) -> None:
        self.grace_over = True
        if self.waiting:
            self.waiting = False
            raise GraceOver(EXIT_INTERRUPTED)


def exit_now(flush: Callable[[], None]) -> None:
    """Flush what can be flushed and leave without unwinding (the second Ctrl+C)."""
    with contextlib.suppress(Exception):
        flush()
    os._exit(EXIT_INTERRUPTED)
