"""Real Dask clusters on 127.0.0.1 for the tests, each process in its own session.

`local_cluster` runs a `distributed.LocalCluster` (2 worker processes, no
dashboard) inside a helper process, so that the test process neither owns its
processes nor sees its warnings; `cli_cluster` starts ``dask scheduler`` and
two ``dask worker`` commands as a user would on several machines. Both are
stopped by killing their process groups. ``python -m tests.cluster_helpers``
is the LocalCluster helper itself.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from polyfetch.result import Result
from polyfetch.testing import stop
from tests.crawl_helpers import ROOT, wait_until

DASK = str(Path(sys.executable).parent / "dask")
#: Short enough that an unreachable scheduler fails a test quickly (Dask's default is 30 s).
FAST_CONNECT = {"DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "3s"}


def _popen(cmd: list[str], **kwargs: object) -> subprocess.Popen[str]:
    return subprocess.Popen(  # type: ignore[call-overload,no-any-return]
        cmd, cwd=ROOT, text=True, start_new_session=True, **kwargs
    )


@contextlib.contextmanager
def local_cluster(workers: int = 2) -> Iterator[str]:
    """A LocalCluster of ``workers`` processes; yields the scheduler address."""
    proc = _popen(
        [sys.executable, "-m", "tests.cluster_helpers", str(workers)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()  # bounded: the helper exits if it cannot start
        assert line.startswith("tcp://"), f"LocalCluster did not start: {line!r}"
        yield line
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        stop(proc)


@contextlib.contextmanager
def cli_cluster(tmp: Path, workers: int = 2) -> Iterator[tuple[str, list[subprocess.Popen[str]]]]:
    """``dask scheduler`` and ``workers`` x ``dask worker`` on 127.0.0.1; yields the scheduler
    address and the worker commands (each a nanny that restarts its worker process)."""
    info = tmp / "scheduler.json"
    procs: list[subprocess.Popen[str]] = []
    log = (tmp / "dask.log").open("w")
    try:
        scheduler = [DASK, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard"]
        procs.append(_popen([*scheduler, "--scheduler-file", str(info)], stdout=log, stderr=log))
        wait_until(lambda: info.exists() and info.stat().st_size > 0, 60, "dask scheduler")
        address = json.loads(info.read_text())["address"]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}  # tests.cluster_helpers:sleep_once
        for _ in range(workers):
            cmd = [DASK, "worker", address, "--host", "127.0.0.1", "--nthreads", "1"]
            procs.append(_popen([*cmd, "--no-dashboard"], stdout=log, stderr=log, env=env))
        wait_until(lambda: worker_count(address) == workers, 90, "dask workers")
        yield address, procs[1:]
    finally:
        for proc in procs:
            stop(proc)
        log.close()


def worker_count(address: str) -> int:
    """Workers the scheduler knows, asked from a fresh process (bounded)."""
    code = (
        "import sys\nfrom distributed import Client\n"
        f"c = Client({address!r}, timeout=10)\nprint(len(c.nthreads()))\nc.close()"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    return int(out.stdout.strip() or -1)


def runners() -> dict[int, int]:
    """pid -> parent pid of every shard runner process this test process started, through
    the clusters and crawls it runs, or that lost its parent (an orphan, whoever's): not
    those of other tests running at the same time, nor of other users of the machine."""
    parents: dict[int, int] = {}
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
            if b"polyfetch.distributed.runner" in Path(f"/proc/{entry}/cmdline").read_bytes():
                found.append(int(entry))
        except (OSError, IndexError, ValueError):
            continue

    def ours(pid: int) -> bool:
        if parents.get(pid) == 1:
            return True
        for _ in range(64):  # bounded: the process tree is shallow
            pid = parents.get(pid, 0)
            if pid == os.getpid():
                return True
            if pid <= 1:
                return False
        return False

    return {pid: parents[pid] for pid in found if ours(pid)}


def group_alive(pgid: int) -> bool:
    """Whether any process is left in process group ``pgid``."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def sleep_once(result: Result) -> str:
    """A processor (run by name in a shard's pool): the first time a page with ``?once=PATH``
    comes by, write PATH, put this process's pid in ``?pidfile=`` and sleep ``?s=`` seconds;
    later, return at once. So a shard is slow only until its worker is killed."""
    query = parse_qs(urlsplit(result.url).query)
    marker = Path(query.get("once", [""])[0])
    if not marker.name or marker.exists():
        return "quick"
    marker.write_text("slept")
    pidfile = query["pidfile"][0]
    Path(pidfile + ".tmp").write_text(str(os.getpid()))
    os.replace(pidfile + ".tmp", pidfile)
    time.sleep(float(query["s"][0]))
    return "slept"


def every_href(result: Result) -> list[str]:
    """A ``follow`` function (run by name in a shard's pool): every ``href`` of an HTML page,
    relative ones as written, ``nofollow`` and robots directives ignored."""
    if not (result.content_type or "").startswith("text/html"):
        return []
    return re.findall(r'href="([^"]*)"', (result.body or b"").decode("utf-8", "replace"))


def _serve(workers: int) -> None:
    from distributed import LocalCluster

    cluster = LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
    )
    print(cluster.scheduler_address, flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        sys.stdin.read()  # EOF when the test process goes away; SIGTERM from stop()
    finally:
        cluster.close()


if __name__ == "__main__":
    _serve(int(sys.argv[1]))
