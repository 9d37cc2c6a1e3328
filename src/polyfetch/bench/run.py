"""Running the matrix: the server, one fresh process per run, interleaved repeats.

Every (point, client) pair is a cell; a round runs each cell once, in order,
and rounds repeat, so machine drift hits every cell alike (A B C D A B C D).
The server runs in its own process; its CPU time per run is recorded, so a
saturated server cannot pass for a slow client.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

from polyfetch.bench import peers
from polyfetch.bench.scenarios import Point

#: seconds one run may take before it is killed and recorded as failed
RUN_TIMEOUT = 600.0


@dataclass(frozen=True)
class Cell:
    """One client on one point."""

    point: Point
    client: str  # a backend name, or "peer:NAME"

    @property
    def key(self) -> str:
        return f"{self.point.key}/{self.client}"


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process, from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_server() -> tuple[subprocess.Popen[str], str]:
    """The built-in test server in its own process group; returns it and its base URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "polyfetch.server", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if " on " not in line:
        stop(proc)
        raise RuntimeError(f"the test server did not start: {line!r}")
    return proc, line.split(" on ", 1)[1].split()[0]


def stop(proc: subprocess.Popen[str]) -> None:
    """Stop a process started in its own session, and everything it started."""
    if proc.stdout is not None:
        proc.stdout.close()
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def command(cell: Cell, base: str) -> list[str]:
    """The probe's command line; gevent runs are patched by ``gevent.monkey`` before anything."""
    spec = json.dumps({"client": cell.client, "point": asdict(cell.point), "base": base})
    name = cell.client.removeprefix("peer:")
    patched = cell.client == "gevent" or name in peers.GEVENT_PATCHED
    runner = ["-m", "gevent.monkey", "--module"] if patched else ["-m"]
    return [sys.executable, *runner, "polyfetch.bench.probe", spec]


def run_cell(cell: Cell, base: str, server_pid: int | None = None) -> dict[str, Any]:
    """One measured run in a fresh process; a run that fails is a record with ``failed``."""
    cpu0 = cpu_seconds(server_pid) if server_pid else 0.0
    proc = subprocess.Popen(
        command(cell, base),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        out, err = "", f"killed after {RUN_TIMEOUT:.0f} s"
    finally:
        with contextlib.suppress(ProcessLookupError):  # leftover workers of the run
            os.killpg(proc.pid, signal.SIGKILL)
    lines = out.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = (err or out).strip().splitlines()[-1:] or [f"exit status {proc.returncode}"]
        record: dict[str, Any] = {"client": cell.client, "point": cell.point.key, "failed": tail[0]}
    else:
        record = json.loads(lines[-1])
    record["server_cpu_s"] = cpu_seconds(server_pid) - cpu0 if server_pid else None
    return record


def run_rounds(
    cells: list[Cell],
    base: str,
    server_pid: int | None,
    repeat: int,
    done: Callable[[Cell, dict[str, Any]], None],
) -> dict[str, list[dict[str, Any]]]:
    """``repeat`` interleaved rounds of every cell; ``done`` is told after each run."""
    runs: dict[str, list[dict[str, Any]]] = {cell.key: [] for cell in cells}
    for _ in range(repeat):
        for cell in cells:
            record = run_cell(cell, base, server_pid)
            runs[cell.key].append(record)
            done(cell, record)
    return runs


def summarize(records: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Median figures of a cell's runs, with the min and max of its rate."""
    records = list(records)
    good = [r for r in records if "failed" not in r]
    if not good:
        return {"failed": records[0]["failed"] if records else "never ran"}
    good.sort(key=lambda r: r["wall_s"])
    row = dict(good[(len(good) - 1) // 2])  # the run of median wall time
    for name in ("cpu_s", "cpu_us_per_request", "p50_ms", "p99_ms", "rss_mib"):
        row[name] = statistics.median(r[name] for r in good)
    row["rps_min"] = min(r["rps"] for r in good)
    row["rps_max"] = max(r["rps"] for r in good)
    row["runs"] = len(good)
    return row
