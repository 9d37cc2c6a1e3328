"""Running ``polyfetch crawl`` as a user does - a subprocess in its own session - and reading
its records back. Every wait is bounded; a process that outlives its test is killed by group.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).parent.parent
#: Keys every record has (with --save-dir also ``file`` and ``save_error``).
RECORD_KEYS = {
    "url",
    "line",
    "final_url",
    "status",
    "size",
    "http_version",
    "elapsed_ms",
    "attempts",
    "redirects",
    "duplicate_of",
    "error",
    "error_message",
    "content_type",
    "processed",
    "process_error",
    "process_error_message",
}


@dataclass
class Finished:
    """A finished crawl process."""

    returncode: int
    stdout: bytes
    stderr: str


class Crawls:
    """Starts crawl subprocesses and makes sure none survives the test."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, *args: str, stdin: bytes | None = None) -> subprocess.Popen[bytes]:
        """Start ``polyfetch crawl ARGS``; stdout and stderr are pipes."""
        proc = subprocess.Popen(
            [sys.executable, "-m", "polyfetch", "crawl", *args],
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=ROOT,
            start_new_session=True,
        )
        self.procs.append(proc)
        if stdin is not None:
            assert proc.stdin is not None
            proc.stdin.write(stdin)  # small inputs only: the pipe buffer holds them
            proc.stdin.close()
            proc.stdin = None  # so that communicate() does not touch it again
        return proc

    def finish(self, proc: subprocess.Popen[bytes], timeout: float = 30) -> Finished:
        """Wait for ``proc`` (at most ``timeout`` s, then kill its group and fail)."""
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_group(proc)
            out, err = proc.communicate()
            tail = err.decode("utf-8", "replace")[-2000:]
            raise AssertionError(f"crawl still running after {timeout} s: {tail}") from None
        return Finished(proc.returncode, out, err.decode("utf-8", "replace"))

    def run(self, *args: str, stdin: bytes | None = None, timeout: float = 30) -> Finished:
        """Run ``polyfetch crawl ARGS`` to its end."""
        return self.finish(self.start(*args, stdin=stdin), timeout)

    def close(self) -> None:
        """Kill whatever is still running."""
        for proc in self.procs:
            if proc.poll() is None:
                kill_group(proc)
            with contextlib.suppress(Exception):
                proc.communicate(timeout=10)


def kill_group(proc: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
    """Signal the process group ``proc`` leads (its own session)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)


def records(data: bytes | str, *, save: bool = False) -> list[dict[str, Any]]:
    """Parse JSON Lines output, checking every line is whole and every record well-formed."""
    text = data.decode() if isinstance(data, bytes) else data
    assert text == "" or text.endswith("\n"), f"torn last line: {text[-200:]!r}"
    out = []
    for line in text.splitlines():
        record = json.loads(line)
        keys = RECORD_KEYS | ({"file", "save_error"} if save else set())
        assert set(record) == keys, sorted(set(record) ^ keys)
        assert isinstance(record["line"], int) and record["line"] >= 1
        if record["duplicate_of"] is None:
            assert (record["error"] is None) != (record["status"] is None), record
        else:  # a duplicate line: the record of line duplicate_of has the fetch
            assert record["error"] is None and record["status"] is None, record
            assert record["duplicate_of"] < record["line"], record
        out.append(record)
    return out


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``check`` every 50 ms until it is true; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def line_count(path: Path) -> int:
    """Complete lines in ``path`` so far (0 if it does not exist yet)."""
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0
