"""polyfetch.testing itself: light to import, and its checks fail when a backend is wrong.

A backend of one's own is a `Backend` subclass; here two subclasses of built-in
backends misbehave on purpose (results without headers; results that leak memory),
and `check_backend` must report exactly those checks, by name, with the reason.
"""

from __future__ import annotations

import dataclasses
import gc
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from polyfetch import backends
from polyfetch.result import Result
from polyfetch.testing import (
    ASYNC,
    CHECKS,
    BackendCheckFailed,
    check_backend,
    check_decompression_bomb_ends_too_large_with_memory_flat,
    check_memory_stays_flat_over_a_long_input,
    harness_for,
    memory,
    start_process,
)

ROOT = Path(__file__).parent.parent
MIB = 1 << 20
#: what a leaking backend keeps alive: per result, and for the one bomb
LEAKED: list[bytes] = []


class _Filtered:
    """A task group whose results pass through ``hook`` on their way out."""

    def __init__(self, group: object, hook) -> None:  # type: ignore[no-untyped-def]
        self._group, self._hook = group, hook

    def __getattr__(self, name: str) -> object:
        return getattr(self._group, name)

    def next_result(self) -> Result:
        return self._hook(self._group.next_result())  # type: ignore[attr-defined]


class HeaderlessBackend(backends.load("threads")):  # type: ignore[misc]
    """The threads backend, but every result has lost its headers."""

    name = "headerless"

    def group(self, runner):  # type: ignore[no-untyped-def]
        return _Filtered(super().group(runner), lambda r: dataclasses.replace(r, headers={}))


def _leak(r: Result) -> Result:
    # written bytes, so the pages are resident: 150 MiB for the bomb, 256 B per other result
    LEAKED.append(b"x" * (150 * MIB if "/bomb/" in r.url else 256))
    return r


class LeakyBackend(backends.load("greenlet")):  # type: ignore[misc]
    """The greenlet backend, but it keeps memory alive for every result."""

    name = "leaky"

    def group(self, runner):  # type: ignore[no-untyped-def]
        return _Filtered(super().group(runner), _leak)


def test_import_is_light():
    forbidden = ["socket", "ssl", "asyncio", "gevent", "aiohttp", "urllib3", "greenlet"]
    forbidden += ["selectors", "subprocess", "trustme", "hypothesis"]
    code = (
        "import sys, json, polyfetch.testing\n"
        f"print(json.dumps([m for m in {forbidden!r} if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_every_conformance_test_calls_a_check_and_every_check_has_a_test():
    called = set()
    for path in (ROOT / "tests" / "conformance").glob("test_*.py"):
        for name in CHECKS:
            if f"t.{name}(" in path.read_text():
                called.add(name)
    assert called == set(CHECKS)


def test_a_wrong_backend_fails_the_checks_it_breaks_and_only_those(servers, capsys):
    only = [
        "check_get_returns_status_headers_body",
        "check_head_has_headers_and_no_body",
        "check_redirect_chain",
        "check_max_bytes",
    ]
    with pytest.raises(BackendCheckFailed) as failed:
        check_backend(HeaderlessBackend, only=only, servers=servers)
    report = failed.value.report
    assert [o.check for o in report.failed] == only[:2]
    assert [o.status for o in report.outcomes] == ["failed", "failed", "passed", "passed"]
    message = str(failed.value)
    assert message.startswith("polyfetch.testing on headerless: 2 passed, 2 failed, 0 skipped")
    assert "--- check_get_returns_status_headers_body\nheaders {}" in message
    # one line per check as it ends, on stderr by default
    assert capsys.readouterr().err.count("\n") == 4


def test_a_right_backend_passes(servers):
    only = ["check_get_returns_status_headers_body", "check_redirect_chain", "check_dns_failure"]
    report = check_backend("threads", only=only, servers=servers, out=io.StringIO())
    assert report.ok
    assert {o.check: o.status for o in report.outcomes}["check_redirect_chain"] == "passed"


def test_unknown_checks_and_backends_are_refused():
    with pytest.raises(ValueError, match="no_such_check"):
        check_backend("threads", only=["no_such_check"], out=io.StringIO())
    with pytest.raises(Exception, match="unknown backend 'nope'"):
        harness_for("nope")


def test_the_memory_measurement_sees_growth():
    # before: ru_maxrss in the shared process; after a heavier test it could not rise at all
    # (a failed record is ~0.7 KB since it keeps no traceback: 80,000 of them are ~55 MiB)
    kept = memory.measure(
        harness_for("greenlet"), "long_input", items=80_000, after=1_000, keep=True
    )
    flat = memory.measure(harness_for("greenlet"), "long_input", items=80_000, after=1_000)
    assert kept.summary == flat.summary == {"results": 80_000, "last_error": "InvalidURL"}
    assert kept.grown_mib > 30, kept
    assert flat.grown_mib < 10, flat


def _live_results() -> int:
    gc.collect()
    return sum(type(o) is Result for o in gc.get_objects())


def test_results_stepped_out_of_an_async_fetcher_do_not_keep_each_other():
    # The async harness runs the loop with one asyncio.Runner.run() per result, as sync code
    # wrapping an async iterator does. On 3.12+ a failed result's traceback reached the loop's
    # frames of the step its item ended in (f_back), that step's task and the result the step
    # returned, and so on back: each result waiting in the window anchored a chain, and every
    # result stayed alive (check_memory_stays_flat_over_a_long_input: +1.1 GiB; 3.11: flat).
    before = _live_results()
    with harness_for(ASYNC).open(concurrency=50) as session:
        results = session.map(f"nope-{i}" for i in range(2_000))
        for n, result in enumerate(results, 1):
            assert result.error is not None
            if n == 1_500:  # mid-stream, while the window holds results
                kept = _live_results() - before
                break
    assert kept < 150, f"{kept} results alive after 1,500 went by with concurrency=50"


def test_the_memory_checks_fail_for_a_backend_that_leaks(servers):
    # the child process loads LeakyBackend from this module by name
    harness = harness_for(LeakyBackend)
    assert harness.spec == f"{__name__}:LeakyBackend"
    with pytest.raises(AssertionError, match=r"RSS grew .* more than 30 MiB"):
        check_memory_stays_flat_over_a_long_input(harness, servers)
    with pytest.raises(AssertionError, match=r"RSS grew .* more than 100 MiB"):
        check_decompression_bomb_ends_too_large_with_memory_flat(harness, servers)


def test_the_command_line_runs_checks():
    ok = subprocess.run(
        [sys.executable, "-m", "polyfetch.testing", "greenlet", "check_redirect_chain"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert ok.returncode == 0, ok.stderr
    assert "polyfetch.testing on greenlet: 1 passed, 0 failed" in ok.stdout
    headerless = [f"{__name__}:HeaderlessBackend", "check_head_has_headers_and_no_body"]
    bad = subprocess.run(
        [sys.executable, "-m", "polyfetch.testing", *headerless],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert bad.returncode == 1, bad.stderr
    assert "FAILED  check_head_has_headers_and_no_body" in bad.stdout
    usage = subprocess.run(
        [sys.executable, "-m", "polyfetch.testing", "nope"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert usage.returncode == 2 and "unknown backend 'nope'" in usage.stderr


def test_start_process_refuses_a_wrong_or_missing_first_line():
    with pytest.raises(RuntimeError, match="did not start: 'hello'"):
        start_process([sys.executable, "-c", "print('hello')"], "listening")
    with pytest.raises(RuntimeError, match="did not start: None"):
        start_process([sys.executable, "-c", "import time; time.sleep(60)"], "listening", timeout=1)
