"""The spool of a killed process is swept by the next one, and a live one never is.

A spool's name carries its owner's pid, but a pid says little on its own: it is
reused (pid_max is 32768 on small machines), and processes in another pid
namespace that share ``/dev/shm`` (containers of one pod) see different pids.
These tests give spools names whose pid lies, both ways.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from polyfetch.postprocess import transport

ROOT = Path(__file__).parent.parent
OWNER = """
import os, sys
from polyfetch.postprocess import transport
spool = transport.Spool()
print(spool.path, flush=True)
sys.stdin.readline()  # alive until told
if sys.argv[1] == "close":
    spool.close()
os._exit(0)  # no cleanup otherwise, as when killed
"""


@contextlib.contextmanager
def owner(how: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """A process holding a spool (its path), until its stdin is closed."""
    proc = subprocess.Popen(
        [sys.executable, "-c", OWNER, how],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert proc.stdout is not None and proc.stdin is not None
    try:
        yield proc, proc.stdout.readline().strip()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        proc.stdin.close()
        proc.stdout.close()


def renamed(path: str, pid: int) -> str:
    """``path`` renamed to claim ``pid`` as its owner."""
    head, name = os.path.split(path)
    new = os.path.join(head, re.sub(r"^(polyfetch-pp-)\d+-", rf"\g<1>{pid}-", name))
    os.rename(path, new)
    return new


def reaped() -> int:
    """The pid of a process that has exited and been reaped."""
    child = subprocess.Popen(["true"])
    child.wait(10)
    return child.pid


def sweep() -> None:
    """What every new spool does first."""
    transport.Spool().close()


def test_a_live_spool_is_kept_whatever_its_pid_says():
    with owner("wait") as (proc, path):
        claimed = renamed(path, reaped())  # as seen from another pid namespace
        try:
            sweep()
            assert os.path.isdir(claimed), "a live process's spool was swept"
        finally:
            assert proc.stdin is not None
            proc.stdin.close()
            proc.wait(30)
        sweep()  # its owner is gone now
        assert not os.path.exists(claimed)


def test_a_dead_spool_is_swept_even_when_its_pid_lives_again():
    with owner("kill") as (proc, path):
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(30)
    claimed = renamed(path, os.getpid())  # its pid now belongs to a live process: this one
    try:
        sweep()
        assert not os.path.exists(claimed), "the spool of a dead process was left behind"
    finally:
        shutil.rmtree(claimed, ignore_errors=True)


def test_a_closed_spool_leaves_nothing():
    with owner("close") as (proc, path):
        assert proc.stdin is not None
        proc.stdin.close()
        assert proc.wait(30) == 0
    assert not os.path.exists(path)
