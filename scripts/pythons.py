#!/usr/bin/env python3
"""Every CPython the package claims: found on this machine, set up, and the suite run on each.

Usage (scripts/setup and scripts/test call it; stdlib only, run by the default python3):

  scripts/pythons.py find [PYTEST_ARG...]
      The interpreters scripts/test runs, one path a line: those of $PYTHONS ("all", or
      versions and paths: "3.12 3.13"); else $PYTHON's alone; else, for a targeted run (pytest
      arguments given), the default python3's alone; else one of each version claimed in
      pyproject.toml's classifiers that this machine has (PATH's python3.X, then pyenv's
      newest 3.X.N), the default python3 for its own version. A claimed version not found is
      said on stderr.
  scripts/pythons.py setup [PYTHON...]
      .venv from the interpreter running this, and .venv-X.Y from each PYTHON of another
      version, each with polyfetch (editable), every extra and the test tools. The compiled
      packages of the extras are asked for as wheels first: an extra whose wheel is missing for
      an interpreter is left out of that one, with one line saying so.
  scripts/pythons.py run PYTHON... -- [PYTEST_ARG...]
      pytest on each in its virtualenv, side by side (their output shown as each ends): the
      whole suite on the oldest and the newest, the conformance suite on the others (with
      pytest arguments: those, on each). Then one line per version with its counts, and the
      totals; exit 1 if any run failed. With CI set, a claimed version that was not run fails
      the run too.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from itertools import chain
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
#: pytest-xdist workers of a run alone: most tests wait on servers, sleeps and subprocesses, so
#: six keep two cores busy (four left a third of them idle)
WORKERS = 6
#: workers of each run side by side (eight in all): whole suite, conformance suite. One after
#: another with six each, 3.11, 3.12 and 3.13 took 598 s; side by side, 440 s.
SHARED_WORKERS = {"whole suite": 3, "conformance suite": 2}
#: what the versions between the oldest and the newest run: every backend's conformance checks,
#: gevent's in its own patched process
CONFORMANCE = [
    "tests/conformance",
    "tests/test_gevent.py::test_conformance_suite_under_real_gevent_patching",
]
#: the extras' compiled packages (greenlet is the core's): wheels or nothing, so that a
#: version without one loses that extra instead of a build from source failing the setup
COMPILED = ("gevent", "greenlet", "uvloop", "pycurl", "selectolax", "geventhttpclient")
PIP = ["-m", "pip", "--disable-pip-version-check"]
_PROBE = (
    "import sys, sysconfig; print(sys.implementation.name, "
    "'.'.join(map(str, sys.version_info[:3])), sysconfig.get_config_var('Py_GIL_DISABLED') or 0)"
)


#: what messages start with: the script the user ran (set by main)
_SCRIPT = "scripts/pythons.py"


def say(message: str) -> None:
    print(f"{_SCRIPT}: {message}", file=sys.stderr, flush=True)


def pyproject() -> dict[str, Any]:
    with open(ROOT / "pyproject.toml", "rb") as file:
        return tomllib.load(file)


def claimed() -> list[str]:
    """The versions pyproject.toml's classifiers claim ("3.11", ...), oldest first."""
    prefix = "Programming Language :: Python :: "
    found = {
        c[len(prefix) :]
        for c in pyproject()["project"]["classifiers"]
        if re.fullmatch(r"3\.\d+", c[len(prefix) :] if c.startswith(prefix) else "")
    }
    return sorted(found, key=_key)


def _key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def probe(python: str) -> str | None:
    """The full version of a GIL-enabled CPython at ``python`` ("3.12.1"), or None."""
    try:
        out = subprocess.run(
            [python, "-c", _PROBE], capture_output=True, text=True, timeout=30, check=True
        ).stdout.split()
    except (OSError, subprocess.SubprocessError):  # a pyenv shim of a version not selected
        return None
    return out[1] if len(out) == 3 and out[0] == "cpython" and out[2] == "0" else None


def minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def candidates(version: str) -> list[str]:
    """Where a CPython ``version`` ("3.12") may be: PATH, then pyenv's, newest patch first."""
    found = [f"python{version}"]
    pyenv = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    if pyenv.is_dir():
        patches = [
            p for p in pyenv.iterdir() if re.fullmatch(rf"{re.escape(version)}\.\d+", p.name)
        ]
        for path in sorted(patches, key=lambda p: _key(p.name), reverse=True):
            found.append(str(path / "bin" / f"python{version}"))
    return found


def find(default: str, pytest_args: list[str]) -> list[str]:
    wanted = os.environ.get("PYTHONS", "").replace(",", " ").split()
    if not wanted:
        if os.environ.get("PYTHON") or pytest_args:
            return [default]
        wanted = ["all"]
    default_version = probe(default)
    if default_version is None:
        sys.exit(f"scripts/test: {default} is not a CPython that can run the suite")
    versions = claimed() if wanted == ["all"] else wanted
    pythons = []
    for want in versions:
        if not re.fullmatch(r"3\.\d+", want):  # a path
            pythons.append(want)
        elif want == minor(default_version):
            pythons.append(default)
        elif python := next((c for c in candidates(want) if probe(c)), None):
            pythons.append(python)
        else:
            say(f"CPython {want} is claimed but not on this machine: not tested here")
    return pythons


# -- setup ------------------------------------------------------------------------------


def venv_dir(version: str) -> Path:
    """.venv for the default interpreter's version, .venv-X.Y for another one."""
    default = probe(str(ROOT / ".venv" / "bin" / "python"))
    if default is not None and minor(default) == minor(version):
        return ROOT / ".venv"
    return ROOT / f".venv-{minor(version)}"


def _name(requirement: str) -> str:
    return re.match(r"[A-Za-z0-9_.-]*", requirement).group(0).lower()  # type: ignore[union-attr]


def extras(python: str, version: str) -> tuple[list[str], list[str]]:
    """What to install on ``python``: every extra but those with a compiled package that has
    no wheel for it (one line each), and the test tools; and the compiled packages that do
    have wheels (pip is told to take nothing else of them)."""
    project = pyproject()["project"]
    optional: dict[str, list[str]] = project["optional-dependencies"]
    wanted = [e for e in optional if e not in ("all", "test")]
    compiled = {  # name -> the requirement, as the core or an extra asks for it
        _name(r): r for r in [*project["dependencies"], *chain.from_iterable(optional.values())]
    }
    compiled = {name: r for name, r in compiled.items() if name in COMPILED}
    missing = _without_wheels(python, list(compiled.values()))
    for name in missing:
        lost = [e for e in wanted if any(_name(r) == name for r in optional[e])]
        wanted = [e for e in wanted if e not in lost]
        requirement = compiled[name].split(";")[0]
        if lost:
            extra = ("extras " if len(lost) > 1 else "extra ") + ", ".join(lost)
            say(
                f"no {name} wheel ({requirement}) for CPython {version}: {extra} left out "
                "there (tests that need it fail or skip there)"
            )
        else:  # the core's own: pip builds it from source
            say(f"no {name} wheel ({requirement}) for CPython {version}: pip builds it")
    return ["test", *wanted], [name for name in compiled if name not in missing]


def _without_wheels(python: str, requirements: list[str]) -> list[str]:
    """The names of those of ``requirements`` that pip finds no wheel of for ``python``
    (asked in one go, then one by one when that fails)."""

    def has_wheels(reqs: list[str]) -> bool:
        cmd = [python, *PIP, "install", "--quiet", "--dry-run", "--no-deps", "--only-binary=:all:"]
        return subprocess.run([*cmd, *reqs], capture_output=True, timeout=300).returncode == 0

    if has_wheels(requirements):
        return []
    return [_name(r) for r in requirements if not has_wheels([r])]


def setup(others: list[str]) -> None:
    me = sys.executable
    version = probe(me)
    if version is None or _key(version) < (3, 11):
        sys.exit(f"scripts/setup: polyfetch needs CPython 3.11 or newer; {me} is {sys.version}")
    jobs = {ROOT / ".venv": (me, version)}
    for python in others:
        other = probe(python)
        if other is None:
            sys.exit(f"scripts/setup: {python} is not a CPython this can set up")
        if minor(other) != minor(version):
            jobs.setdefault(ROOT / f".venv-{minor(other)}", (python, other))
    # side by side: most of an install is waiting on the index and unpacking
    editable = threading.Lock()
    with ThreadPoolExecutor(len(jobs)) as pool:
        done = [pool.submit(install, *job, venv, editable) for venv, job in jobs.items()]
    for future in done:
        if (error := future.exception()) is not None:
            sys.exit(f"scripts/setup: {error}")


def install(python: str, version: str, venv: Path, editable: threading.Lock) -> None:
    """``venv`` from ``python`` (made again if it is another version), with polyfetch; its
    editable install under ``editable``, as it writes into the source tree."""
    made = probe(str(venv / "bin" / "python"))
    if made is not None and made != version:
        say(f"{venv.name} was CPython {made}, {python} is {version}: made again")
        shutil.rmtree(venv)
        made = None
    if made is None:
        subprocess.run([python, "-m", "venv", str(venv)], check=True)
    exe = str(venv / "bin" / "python")
    subprocess.run([exe, *PIP, "install", "--quiet", "--upgrade", "pip"], check=True)
    chosen, wheels = extras(exe, version)
    optional = pyproject()["project"]["optional-dependencies"]
    needs = [r for extra in chosen for r in optional[extra] if _name(r) != "polyfetch"]
    binary = [f"--only-binary={','.join(wheels)}"] if wheels else []
    pip = [exe, *PIP, "install", "--quiet"]
    subprocess.run([*pip, *binary, *pyproject()["project"]["dependencies"], *needs], check=True)
    with editable:
        subprocess.run([*pip, "--no-deps", "-e", "."], check=True, cwd=ROOT)


# -- run ----------------------------------------------------------------------------------

#: pytest's closing line: "1 failed, 1064 passed, 1 skipped in 231.88s (0:03:51)"
_SUMMARY = re.compile(r"((?:\d+ [a-z]+(?:, )?)+|no tests ran) in [\d.]+s")


def run(pythons: list[str], pytest_args: list[str]) -> int:
    versions = {python: probe(python) for python in pythons}
    if not pythons or None in versions.values():
        sys.exit(f"{_SCRIPT}: no CPython to run the suite on in {pythons}")
    venvs = {venv_dir(version) for version in versions.values() if version is not None}
    found = sorted(((probe(str(v / "bin" / "python")) or "?", v) for v in venvs), key=_order)
    runs = []
    for n, (version, venv) in enumerate(found):
        if pytest_args:
            runs.append(Run(version, venv, "pytest " + " ".join(pytest_args), pytest_args))
        elif n in (0, len(found) - 1):  # the oldest and the newest
            runs.append(Run(version, venv, "whole suite", []))
        else:
            runs.append(Run(version, venv, "conformance suite", CONFORMANCE))
    if len(runs) == 1:
        runs[0].start(WORKERS, log=None)  # its output as it comes
    else:
        with tempfile.TemporaryDirectory(prefix="polyfetch-test-") as logs:
            say(f"side by side, their output once each ends: {', '.join(map(str, runs))}")
            try:
                for one in runs:
                    one.start(SHARED_WORKERS.get(one.what, 2), log=Path(logs) / one.version)
                _wait(runs)
            except KeyboardInterrupt:  # pytest got the Ctrl+C too: show what each did
                for one in runs:
                    if one.proc is not None and one.code == -1:
                        one.finish()
                raise
    ran = {minor(r.version) for r in runs}
    absent = [v for v in claimed() if v not in ran]
    lines = [r.line() for r in runs]
    failed = any(r.code != 0 for r in runs)
    if absent and os.environ.get("CI") and not pytest_args:
        lines.append(f"claimed but not run: {', '.join(absent)}; CI runs every claimed version")
        failed = True
    print(file=sys.stderr)
    for line in lines:
        say(line)
    totals = sum((r.counts() for r in runs), Counter[str]())
    passed, failures, skipped = totals["passed"], totals["failed"], totals["skipped"]
    # the closing line, in the form CI reads
    print(f"versions: {passed} passed, {failures} failed, {skipped} skipped", flush=True)
    return 1 if failed else 0


def _order(found: tuple[str, Path]) -> tuple[int, ...]:
    return _key(found[0]) if found[0] != "?" else ()


#: pytest's closing line: "1 failed, 1064 passed, 1 skipped in 231.88s (0:03:51)"
_SUMMARY = re.compile(r"((?:\d+ [a-z]+(?:, )?)+|no tests ran) in [\d.]+s")


class Run:
    """One pytest run: a version, its virtualenv and what it runs."""

    def __init__(self, version: str, venv: Path, what: str, selection: list[str]) -> None:
        self.version, self.venv, self.what, self.selection = version, venv, what, selection
        self.proc: subprocess.Popen[str] | None = None
        self.log: Path | None = None
        self.code = -1
        self.summary = ""
        self.started = self.took = 0.0

    def __str__(self) -> str:
        return f"CPython {self.version} ({self.what})"

    def start(self, workers: int, log: Path | None) -> None:
        """Start pytest, its output piped through us (``log`` None) or into ``log``."""
        color = ["--color=yes"] if sys.stdout.isatty() else []
        cmd = [str(self.venv / "bin" / "python"), "-m", "pytest", *color, "-n", str(workers)]
        self.log, self.started = log, time.monotonic()
        say(f"{self} in {self.venv.name}, {workers} workers")
        with contextlib.ExitStack() as stack:
            out = subprocess.PIPE if log is None else stack.enter_context(log.open("w"))
            self.proc = subprocess.Popen(
                [*cmd, *self.selection], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, text=True
            )
        if log is None:
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                sys.stdout.write(line)
                self._scan(line)
            self.finish()

    def finish(self) -> None:
        """Wait for pytest; print its log, if it went to one."""
        assert self.proc is not None
        self.code = self.proc.wait()
        self.took = time.monotonic() - self.started
        if self.log is not None:
            say(f"{self} ended in {self.took:.0f} s; its output:")
            with self.log.open(errors="replace") as log:
                for line in log:
                    sys.stdout.write(line)
                    self._scan(line)
        sys.stdout.flush()

    def _scan(self, line: str) -> None:
        if match := _SUMMARY.search(re.sub(r"\x1b\[[0-9;]*m", "", line)):
            self.summary = match.group(1)

    def counts(self) -> Counter[str]:
        counts = Counter({kind: int(k) for k, kind in re.findall(r"(\d+) ([a-z]+)", self.summary)})
        counts["failed"] += counts["errors"] + counts["error"]
        return counts

    def line(self) -> str:
        shown = self.summary or f"no summary, pytest exited {self.code}"
        return f"{self} in {self.venv.name}: {shown} in {self.took:.0f} s"


def _wait(runs: list[Run]) -> None:
    """Wait for every run, each one's output shown as soon as it ends."""
    left = list(runs)
    while left:
        ended = [r for r in left if r.proc is not None and r.proc.poll() is not None]
        for one in ended:
            one.finish()
            left.remove(one)
        if not ended:
            time.sleep(0.5)


def main(argv: list[str]) -> int:
    global _SCRIPT
    command, args = (argv[0], argv[1:]) if argv else ("", [])
    _SCRIPT = "scripts/setup" if command == "setup" else "scripts/test"
    if command == "find":
        print("\n".join(find(os.environ.get("PYTHON") or sys.executable, args)))
        return 0
    if command == "setup":
        setup(args)
        return 0
    if command == "run" and "--" in args:
        cut = args.index("--")
        try:
            return run(args[:cut], args[cut + 1 :])
        except KeyboardInterrupt:  # pytest got the Ctrl+C too and has said what it did
            return 130
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
