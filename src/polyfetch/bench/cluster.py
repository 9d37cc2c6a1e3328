"""What the cluster benchmarks (``scripts/bench-cluster-*``) share: a standing Dask cluster
pinned to a CPU, and the CPU time of the processes around it.

The cluster is ``dask scheduler`` and ``dask worker --nworkers N --nthreads 1`` started as
commands, each in a session of its own (stopped by process group), with ``PYTHONPATH``
naming the source tree whose polyfetch the workers run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path


def group_cpu(pgid: int) -> float:
    """User + system CPU seconds of the live processes of process group ``pgid``."""
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def cpu_busy(cpu: int = 0) -> tuple[int, int]:
    """CPU ``cpu``'s busy and total jiffies so far."""
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith(f"cpu{cpu} "):
            values = [int(v) for v in line.split()[1:]]
            idle = values[3] + values[4]
            return sum(values) - idle, sum(values)
    raise RuntimeError(f"no cpu{cpu} in /proc/stat")


def start_cluster(
    dask: str, src: Path, workers: int, tmp: Path, cpu: int = 0
) -> tuple[list[subprocess.Popen[str]], str]:
    """``dask scheduler`` and ``dask worker --nworkers N`` (the ``dask`` command given) running
    the polyfetch of ``src``, pinned to CPU ``cpu``; the processes and the scheduler address."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    info = tmp / "scheduler.json"
    info.unlink(missing_ok=True)
    log = open(tmp / "dask.log", "a")  # noqa: SIM115 - the processes hold it, not us
    pin = ["taskset", "-c", str(cpu)]

    def popen(cmd: list[str]) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [*pin, *cmd], env=env, stdout=log, stderr=log, text=True, start_new_session=True
        )

    procs = [popen([dask, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                    "--scheduler-file", str(info)])]  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not (info.exists() and info.stat().st_size):
            if time.monotonic() > deadline:
                raise RuntimeError("dask scheduler did not start")
            time.sleep(0.1)
        address = json.loads(info.read_text())["address"]
        procs.append(popen([dask, "worker", address, "--host", "127.0.0.1", "--nworkers",
                            str(workers), "--nthreads", "1", "--no-dashboard"]))  # fmt: skip
        from distributed import Client

        with Client(address, set_as_default=False, timeout=30) as client:
            client.wait_for_workers(workers, timeout=90)
    except BaseException:
        stop(procs)
        raise
    finally:
        log.close()
    return procs, address


def stop(procs: list[subprocess.Popen[str]]) -> None:
    """Stop the processes (their whole groups): SIGTERM, then SIGKILL after 20 s."""
    for proc in reversed(procs):
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(20)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
