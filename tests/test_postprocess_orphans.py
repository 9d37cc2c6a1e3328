"""Pool workers die with their parent, whatever kills it.

Each test runs a real fetch with a real process pool in a subprocess of its
own session, waits until both workers are busy with a long processor, SIGKILLs
the parent (as the OOM killer would) and checks that the workers and the
multiprocessing resource tracker are gone within a few seconds. Whatever
survives is killed by the test itself, so a failure leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from polyfetch.postprocess import PostProcessor, transport
from polyfetch.result import Result
from tests.conftest import Servers

ROOT = Path(__file__).parent.parent
FIXTURE = "tests.processors_fixture"
BACKENDS = ["threads", "asyncio", "greenlet", "gevent"]
#: Seconds the orphans have to go: the bound the issue sets ("within a few seconds").
DEADLINE = 5.0

LIBRARY_SCRIPT = """
import sys
from polyfetch import Fetcher

backend, process, *urls = sys.argv[1:]
with Fetcher(backend, process=process, workers=2) as fetcher:
    for result in fetcher.map(urls):
        print(result.index, result.process_error, flush=True)
"""


def stat(pid: int) -> tuple[int, str, int] | None:
    """(parent pid, state, start time) of a process from /proc, or None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rpartition(")")[2].split()  # the command name may hold spaces and ")"
    return int(fields[1]), fields[0], int(fields[19])


def children(parent: int) -> dict[int, int]:
    """pid -> start time of every live child of ``parent``."""
    found = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            info = stat(int(name))
            if info is not None and info[0] == parent and info[1] != "Z":
                found[int(name)] = info[2]
    return found


def alive(pid: int, started: int) -> bool:
    """Whether ``pid`` is still the process that started at ``started``, and not a zombie."""
    info = stat(pid)
    return info is not None and info[2] == started and info[1] != "Z"


def cmdline(pid: int) -> str:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    return ""


@contextlib.contextmanager
def session(cmd: list[str], tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Start ``cmd`` in a session of its own; afterwards SIGKILL whatever is left of it."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with open(tmp_path / "stdout", "wb") as out, open(tmp_path / "stderr", "wb") as err:
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=out, stderr=err, start_new_session=True
        )
    try:
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # survivors keep the group id alive
        proc.kill()
        proc.wait(10)


def urls(servers: Servers, tmp_path: Path, n: int = 4) -> list[str]:
    """Pages that fetch at once; each makes `hang`/`hog` write its worker's pid first."""
    return [
        f"{servers.http}/html/2000?s=120&pidfile={quote(str(tmp_path / f'pid-{i}'), safe='/')}"
        for i in range(n)
    ]


def kill_parent_and_wait_for_orphans(
    proc: subprocess.Popen[bytes], tmp_path: Path
) -> tuple[float, list[str]]:
    """Once both workers run an item, SIGKILL ``proc``: the seconds until its children died,
    and the spools it had made (looked up before the kill: once it is dead, any other
    process's new spool - another test's, in parallel - may sweep them)."""
    deadline = time.monotonic() + 60
    while len(list(tmp_path.glob("pid-?"))) < 2:
        assert proc.poll() is None, (tmp_path / "stderr").read_text()[-3000:]
        assert time.monotonic() < deadline, "the workers never started the items"
        time.sleep(0.05)
    workers = {int(p.read_text()) for p in tmp_path.glob("pid-?")}
    family = children(proc.pid)
    assert workers <= family.keys(), (workers, family)
    trackers = [pid for pid in family if "resource_tracker" in cmdline(pid)]
    assert len(trackers) == 1, {pid: cmdline(pid) for pid in family}  # so it must go too
    spools = spools_of(proc.pid)
    try:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        killed = time.monotonic()
        while any(alive(pid, started) for pid, started in family.items()):
            if time.monotonic() - killed > DEADLINE:
                left = {pid: cmdline(pid) for pid, s in family.items() if alive(pid, s)}
                pytest.fail(f"alive {DEADLINE:g} s after their parent was killed: {left}")
            time.sleep(0.01)
        return time.monotonic() - killed, spools
    finally:
        # By pid, and only if it is still ours. The tracker last: once the workers are gone
        # it exits by itself and unlinks the semaphores they leaked; killed, it cannot.
        kill([pid for pid in family if pid not in trackers], family)
        wait_until_dead({pid: family[pid] for pid in trackers}, 5)
        kill(trackers, family)


def kill(pids: list[int], started: dict[int, int]) -> None:
    """SIGKILL those of ``pids`` that are still the processes that started at ``started``."""
    for pid in pids:
        if alive(pid, started[pid]):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def wait_until_dead(processes: dict[int, int], timeout: float) -> None:
    """Wait up to ``timeout`` seconds for the processes (pid -> start time) to end."""
    deadline = time.monotonic() + timeout
    while any(alive(pid, s) for pid, s in processes.items()) and time.monotonic() < deadline:
        time.sleep(0.02)


def spools_of(pid: int) -> list[str]:
    """The spool directories a process of this pid made (see `transport.Spool`)."""
    found = []
    for parent in {"/dev/shm", tempfile.gettempdir()}:
        with contextlib.suppress(OSError):
            prefix = f"{transport.Spool.PREFIX}{pid}-"
            found += [os.path.join(parent, n) for n in os.listdir(parent) if n.startswith(prefix)]
    return found


@pytest.mark.parametrize("name", BACKENDS)
def test_library_workers_die_with_their_parent(servers: Servers, tmp_path: Path, name: str):
    script = tmp_path / "fetch.py"
    script.write_text(textwrap.dedent(LIBRARY_SCRIPT))
    gevent = ["-m", "gevent.monkey"] if name == "gevent" else []
    cmd = [sys.executable, *gevent, str(script), name, f"{FIXTURE}:hang", *urls(servers, tmp_path)]
    with session(cmd, tmp_path) as proc:
        seconds, left = kill_parent_and_wait_for_orphans(proc, tmp_path)
    print(f"{name}: orphans gone {seconds:.3f} s after SIGKILL")
    # The killed parent could not remove its spool: the next one sweeps it.
    assert left, "the parent made no spool: nothing tested"
    transport.Spool().close()
    assert [path for path in left if os.path.exists(path)] == []


@pytest.mark.parametrize("name", BACKENDS)
def test_crawl_workers_die_with_their_parent(servers: Servers, tmp_path: Path, name: str):
    listing = tmp_path / "urls.txt"
    listing.write_text("\n".join(urls(servers, tmp_path)) + "\n")
    cmd = [sys.executable, "-m", "polyfetch", "crawl", str(listing), "--backend", name]
    cmd += ["--process", f"{FIXTURE}:hang", "--workers", "2", "-q"]
    cmd += ["-o", str(tmp_path / "out.jsonl")]
    with session(cmd, tmp_path) as proc:
        seconds, _ = kill_parent_and_wait_for_orphans(proc, tmp_path)
    print(f"crawl --backend {name}: orphans gone {seconds:.3f} s after SIGKILL")


def test_a_worker_stuck_holding_the_gil_dies_with_its_parent(servers: Servers, tmp_path: Path):
    # No thread of that worker can run again: only the kernel can end it (PR_SET_PDEATHSIG).
    script = tmp_path / "fetch.py"
    script.write_text(textwrap.dedent(LIBRARY_SCRIPT))
    cmd = [sys.executable, str(script), "threads", f"{FIXTURE}:hog", *urls(servers, tmp_path)]
    with session(cmd, tmp_path) as proc:
        kill_parent_and_wait_for_orphans(proc, tmp_path)


def test_workers_outlive_the_thread_that_started_the_pool():
    # PR_SET_PDEATHSIG fires when the *thread* that started a worker ends: that must be the
    # engine thread, never the caller's.
    box: list[PostProcessor] = []
    starter = threading.Thread(
        target=lambda: box.append(PostProcessor("sha256", workers=2).start())
    )
    starter.start()
    starter.join(60)
    with box[0] as pp:
        time.sleep(0.5)  # a worker killed by the starter's exit is dead by now
        pages = [Result(url=f"u{i}", index=i, status=200, body=b"abc") for i in range(8)]
        done = [f.result(60) for f in [pp.submit(p) for p in pages]]
        assert [r.process_error for r in done] == [None] * 8
        assert pp.statistics()["replaced"] == 0
