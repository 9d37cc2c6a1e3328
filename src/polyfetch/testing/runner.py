"""`check_backend`: every check against one backend, on servers it starts itself."""

from __future__ import annotations

import faulthandler
import sys
import time
import traceback
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, TextIO

from polyfetch.testing.checks import CHECKS
from polyfetch.testing.harness import Harness, SkipCheck, harness_for
from polyfetch.testing.servers import Servers, start_servers

if TYPE_CHECKING:
    from polyfetch.backends._base import Backend

#: seconds one check may run in `check_backend` before its tracebacks are dumped as hung
CHECK_TIMEOUT = 300.0


@dataclass(frozen=True)
class Outcome:
    """How one check went."""

    check: str
    status: Literal["passed", "failed", "skipped"]
    seconds: float
    message: str = ""  #: the assertion (or the traceback of an unexpected error), or why skipped

    def line(self) -> str:
        """One line: status, name, time, and the first line of the message."""
        first = self.message.strip().splitlines()[:1]
        why = f": {first[0]}" if first else ""
        return f"{self.status.upper():7} {self.check} ({self.seconds:.1f} s){why}"


@dataclass
class Report:
    """Every outcome of a `check_backend` run."""

    backend: str
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def failed(self) -> list[Outcome]:
        """The checks that failed (or raised something other than AssertionError)."""
        return [o for o in self.outcomes if o.status == "failed"]

    @property
    def ok(self) -> bool:
        """True when no check failed."""
        return not self.failed

    def __str__(self) -> str:
        counts = {s: sum(o.status == s for o in self.outcomes) for s in ("passed", "failed")}
        skipped = len(self.outcomes) - counts["passed"] - counts["failed"]
        lines = [
            f"polyfetch.testing on {self.backend}: {counts['passed']} passed, "
            f"{counts['failed']} failed, {skipped} skipped"
        ]
        lines += [o.line() for o in self.outcomes if o.status != "passed"]
        for o in self.failed:
            lines += ["", f"--- {o.check}", o.message.rstrip()]
        return "\n".join(lines)


class BackendCheckFailed(AssertionError):
    """`check_backend` found failures; ``report`` has every outcome."""

    def __init__(self, report: Report) -> None:
        super().__init__(str(report))
        self.report = report


def run_check(name: str, harness: Harness, servers: Servers) -> Outcome:
    """Run one check by name; its outcome (never raises for a failed check)."""
    started = time.monotonic()
    try:
        CHECKS[name](harness, servers)
    except SkipCheck as exc:
        return Outcome(name, "skipped", time.monotonic() - started, str(exc))
    except AssertionError as exc:
        return Outcome(name, "failed", time.monotonic() - started, str(exc) or repr(exc))
    except Exception:
        return Outcome(name, "failed", time.monotonic() - started, traceback.format_exc())
    return Outcome(name, "passed", time.monotonic() - started)


def check_backend(
    backend: str | type[Backend] | Harness,
    *,
    only: Iterable[str] | None = None,
    servers: Servers | None = None,
    out: TextIO | None = None,
    timeout: float | None = CHECK_TIMEOUT,
) -> Report:
    """Run every check (or the ``only`` ones, by name) against ``backend``.

    Args:
        backend: a `Backend` subclass, a registered backend's name, ``"asyncio-async"``
            (`AsyncFetcher`) or a ``"module:Class"`` spec.
        only: names of the checks to run (default: all of `CHECKS`, in order).
        servers: servers already running (default: `start_servers` for this run).
        out: where to write one line per check as it ends (default: `sys.stderr`, as it
            is at the call; an `io.StringIO` keeps it quiet).
        timeout: seconds after which a check still running is reported as hung: every
            thread's traceback goes to stderr (`faulthandler`). It is not stopped (a hung
            thread or greenlet cannot be); run under pytest-timeout for a hard limit.

    Returns the `Report` when every check passed or was skipped; raises
    `BackendCheckFailed` (an AssertionError) whose message lists the failures.
    """
    harness = harness_for(backend)
    names = list(CHECKS) if only is None else list(only)
    unknown = [n for n in names if n not in CHECKS]
    if unknown:
        raise ValueError(f"no such checks: {', '.join(unknown)}")
    if servers is None:
        with start_servers() as started:
            return check_backend(harness, only=names, servers=started, out=out, timeout=timeout)
    report = Report(harness.name)
    stream = sys.stderr if out is None else out
    # faulthandler writes to a file descriptor: sys.stderr may be a capture without one
    watch = timeout is not None and sys.__stderr__ is not None
    for name in names:
        if watch:
            faulthandler.dump_traceback_later(timeout, file=sys.__stderr__)  # type: ignore[arg-type]
        try:
            outcome = run_check(name, harness, servers)
        finally:
            if watch:
                faulthandler.cancel_dump_traceback_later()
        report.outcomes.append(outcome)
        stream.write(outcome.line() + "\n")
        stream.flush()
    if not report.ok:
        raise BackendCheckFailed(report)
    return report
