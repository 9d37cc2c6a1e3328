"""Memory growth measured in a fresh process: current RSS, sampled from outside.

A process's lifetime peak (``ru_maxrss``) only grows, so inside a shared test
process a check that runs after a heavier one can never see its own growth.
`measure` runs a workload in a fresh interpreter (patched by gevent first when
the backend needs it) and samples that process's *current* RSS from
``/proc/PID/statm`` every `SAMPLE_EVERY` seconds. The child pauses at a mark
(after start-up and warm-up) so the baseline is taken while nothing runs; the
growth is the peak of the samples taken afterwards minus that baseline.

The child side is ``python -m polyfetch.testing.memory SPEC`` (JSON): it prints
``mark``, waits for a line on stdin, runs on, and prints ``done SUMMARY``.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from polyfetch.testing.harness import Harness, SkipCheck, harness_for

#: seconds between two RSS samples of the child
SAMPLE_EVERY = 0.005
#: seconds a whole measured run may take before the child is killed: a hang guard, under the
#: 300 s the long-input test is given (asyncio-async's 200,000 items take 40 s alone and
#: ran past 120 s beside the rest of the suite on a loaded 2-core machine)
RUN_TIMEOUT = 240.0
MIB = 1 << 20


@dataclass(frozen=True)
class MemoryRun:
    """What a measured run did and how its RSS moved (MiB)."""

    baseline_mib: float
    peak_mib: float
    samples: int
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def grown_mib(self) -> float:
        """Peak of the samples minus the baseline."""
        return self.peak_mib - self.baseline_mib

    def __str__(self) -> str:
        return (
            f"RSS grew {self.grown_mib:.1f} MiB (baseline {self.baseline_mib:.1f} MiB, "
            f"peak {self.peak_mib:.1f} MiB over {self.samples} samples)"
        )


def rss_bytes(pid: int | str = "self") -> int:
    """The current resident set size of a process (Linux ``/proc``)."""
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _gevent_patched() -> bool:
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and bool(monkey.is_module_patched("socket"))


def measure(harness: Harness, workload: str, **params: Any) -> MemoryRun:
    """Run ``workload`` (a function of this module's `WORKLOADS`) in a fresh process.

    Raises `SkipCheck` where RSS cannot be read or the backend cannot be loaded
    in another process, and AssertionError when the child fails.
    """
    import subprocess

    if not os.path.exists("/proc/self/statm"):
        raise SkipCheck("measuring RSS needs Linux's /proc")
    if harness.spec.startswith("__main__:"):
        raise SkipCheck(
            f"{harness.spec} cannot be loaded in a fresh process: "
            "define the backend class in an importable module"
        )
    spec = json.dumps({"harness": harness.spec, "workload": workload, "params": params})
    patched = harness.spec == "gevent" or _gevent_patched()
    runner = ["-m", "gevent.monkey", "--module"] if patched else ["-m"]
    # the same modules as here: a backend class may live beside the caller's code
    path = os.pathsep.join(p or os.getcwd() for p in sys.path)
    env = {**os.environ, "PYTHONPATH": path}
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(
            [sys.executable, *runner, "polyfetch.testing.memory", spec],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            env=env,
            start_new_session=True,
        )
        try:
            run = _sample(proc)
        except AssertionError as exc:
            err.seek(0)
            tail = err.read()[-3000:]
            raise AssertionError(f"{exc}\n--- the measured process's stderr:\n{tail}") from None
        finally:
            from polyfetch.testing.servers import kill_group, stop

            with contextlib.suppress(OSError):  # a child that died early: a broken pipe
                proc.stdin.close()  # type: ignore[union-attr]
            # it is done or has failed: kill first, so the reader thread sees EOF before
            # stop() closes the pipe (a close under a blocked read waits for the read)
            kill_group(proc)  # type: ignore[arg-type]
            stop(proc)  # type: ignore[arg-type]
    return run


def _sample(proc: Any) -> MemoryRun:
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        with contextlib.suppress(OSError, ValueError):  # stop() closed the pipe under us
            for line in proc.stdout:
                lines.put(line.strip())
        lines.put("")  # EOF

    threading.Thread(target=read, name="memory-child-stdout", daemon=True).start()
    deadline = time.monotonic() + RUN_TIMEOUT
    baseline: int | None = None
    peak = samples = 0
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=SAMPLE_EVERY)
        except queue.Empty:
            if baseline is not None:
                with contextlib.suppress(OSError, IndexError):  # it just exited
                    peak = max(peak, rss_bytes(proc.pid))
                samples += 1
            continue
        if line == "mark":
            baseline = peak = rss_bytes(proc.pid)  # the child waits on stdin: nothing runs
            proc.stdin.write("go\n")
            proc.stdin.flush()
        elif line.startswith("done "):
            if baseline is None:
                raise AssertionError("the measured process finished without a mark")
            summary = json.loads(line[5:])
            proc.wait(10)  # so that stop() finds the pipe at its end, not under a read
            return MemoryRun(baseline / MIB, peak / MIB, samples, summary)
        elif line == "":
            raise AssertionError(f"the measured process ended early (status {proc.wait()})")
    raise AssertionError(f"the measured run took more than {RUN_TIMEOUT:.0f} s")


# ---------------------------------------------------------------------------
# The child side


def _mark() -> None:
    print("mark", flush=True)
    if sys.stdin.readline().strip() != "go":
        sys.exit("no go from the measuring process")


def one(harness: Harness, *, url: str, warmup: str | None = None, **options: Any) -> dict[str, Any]:
    """Fetch ``url`` (after ``warmup``, if given, so imports and pools are in the baseline)."""
    with harness.open(**options) as f:
        if warmup:
            f.fetch(warmup)
        _mark()
        r = f.fetch(url)
    return {"error": r.error.kind if r.error else None, "status": r.status, "size": r.size}


def long_input(
    harness: Harness, *, items: int, after: int, keep: bool = False, **options: Any
) -> dict[str, Any]:
    """``items`` invalid URLs (no network) through one ``map()``; the mark after ``after``.

    ``keep=True`` keeps every result, which must show as growth.
    """
    kept: list[object] = []
    n = 0
    last = None
    with harness.open(**options) as f:
        for result in f.map(f"nope-{i}" for i in range(items)):
            n += 1
            last = result
            if keep:
                kept.append(result)
            if n == after:
                _mark()
    return {"results": n, "last_error": last.error.kind if last and last.error else None}


#: the workloads a measured process can run, by name
WORKLOADS: dict[str, Callable[..., dict[str, Any]]] = {"one": one, "long_input": long_input}


def main(argv: list[str]) -> int:
    """Run the workload named in the JSON spec ``argv[0]``; print ``done SUMMARY``."""
    spec = json.loads(argv[0])
    harness = harness_for(spec["harness"])
    summary = WORKLOADS[spec["workload"]](harness, **spec["params"])
    print("done " + json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
