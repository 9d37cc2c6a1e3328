"""``polyfetch crawl`` at its edges: output aliasing stdin, every numeric option's accepted
values, one-line usage errors for every subcommand, and a processor that hangs.

The in-process runs go through `polyfetch.cli.main` with real files; the backend runs are
subprocesses (each backend in its own interpreter; the CLI patches gevent itself).
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import polyfetch
from polyfetch.cli import build_parser, main
from polyfetch.crawl.run import Crawl
from tests.conftest import Servers, closed_port
from tests.crawl_helpers import ROOT, Crawls, kill_group, line_count, records, wait_until

BACKENDS = polyfetch.available_backends()
#: Backends that may share this process (gevent must patch it first: subprocesses only).
IN_PROCESS = [b for b in BACKENDS if b != "gevent"]


@pytest.fixture
def crawls() -> Iterator[Crawls]:
    c = Crawls()
    yield c
    c.close()


def _run(argv: list[str], stdin: object = None) -> tuple[int, str]:
    """``main(argv)`` with its own stderr; the status and what it wrote there."""
    err = io.StringIO()
    status = main(argv, stdout=io.StringIO(), stderr=err, stdin=stdin)  # type: ignore[arg-type]
    return status, err.getvalue()


# -- the output is the file on stdin --------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["-", "-o", "{out}"],
        ["-o", "{out}"],  # no URLS_FILE: stdin too
        ["-", "-o", "{out}", "--resume"],
        ["-", "-o", "{link}"],  # another name (a hard link) for the same file
        ["-", "-o", "{out}", "--format", "csv"],
    ],
)
def test_output_that_is_the_file_on_stdin_is_refused_untouched(argv, tmp_path):
    out, link = tmp_path / "urls.txt", tmp_path / "link.txt"
    content = f"http://127.0.0.1:{closed_port()}/\n"
    out.write_text(content)
    link.hardlink_to(out)
    argv = [a.format(out=out, link=link) for a in argv]
    with out.open("rb") as stdin:
        status, err = _run(["crawl", *argv], stdin=stdin)
    assert status == 2
    name = link if str(link) in argv else out
    assert err.splitlines() == [
        f"polyfetch crawl: error: the output {name} is the input file (on stdin)"
    ]
    assert out.read_text() == content


def test_stdin_from_another_regular_file_is_fine(tmp_path):
    urls, out = tmp_path / "urls.txt", tmp_path / "out.jsonl"
    urls.write_text(f"http://127.0.0.1:{closed_port()}/\n")
    out.write_text("old\n")
    with urls.open("rb") as stdin:
        status, err = _run(["crawl", "-", "-o", str(out), "-q", "--retries", "0"], stdin=stdin)
    assert (status, err) == (0, "")
    assert [r["error"] for r in records(out.read_bytes())] == ["ConnectError"]


def test_shell_redirect_of_the_output_into_stdin_exits_2(tmp_path):
    out = tmp_path / "F"
    out.write_text(f"http://127.0.0.1:{closed_port()}/\n")
    before = out.read_bytes()
    with out.open("rb") as stdin:  # polyfetch crawl - -o F < F
        proc = subprocess.run(
            [sys.executable, "-m", "polyfetch", "crawl", "-", "-o", str(out)],
            stdin=stdin,
            capture_output=True,
            text=True,
            timeout=30,
            cwd=ROOT,
        )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == [
        f"polyfetch crawl: error: the output {out} is the input file (on stdin)"
    ]
    assert out.read_bytes() == before


# -- numeric options: what each accepts, and one line for the rest --------------------------


def _float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _int(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def _seconds(text: str) -> bool:
    value = _float(text)
    return value is not None and value > 0  # nan compares false; inf is "no limit"


def _whole(low: int, high: int | None = None) -> Callable[[str], bool]:
    def ok(text: str) -> bool:
        value = _int(text)
        return value is not None and value >= low and (high is None or value <= high)

    return ok


def _size(text: str) -> bool | None:
    if not re.fullmatch(r"[0-9]+", text.strip()):
        return None  # units: checked by the fixed cases, only the one-line rule here
    return int(text) <= 2**40


def _process_timeout(text: str) -> bool:
    value = _float(text)
    return text.strip().lower() == "none" or (value is not None and value >= 0)


#: option -> whether a value should be accepted (None: either, so long as the rules hold).
#: The documented ranges, as the README and --help state them.
ACCEPTS: dict[str, Callable[[str], bool | None]] = {
    "--timeout": _seconds,
    "--connect-timeout": _seconds,
    "--read-timeout": _seconds,
    "--grace": _seconds,
    "--rate": _seconds,
    "--process-timeout": _process_timeout,
    "--concurrency": _whole(1, 100_000),
    "--per-host": _whole(1, 100_000),
    "--retries": _whole(0),
    "--max-redirects": _whole(0),
    "--dedup-memory": _whole(1, 2**20),
    "--workers": _whole(1, 1024),
    "--max-bytes": _size,
    "--shard-size": lambda text: False,  # without --cluster: always a usage error
}
VALUES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),  # nan, inf, -0.0, 1e+300, 5e-324
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.integers(min_value=-3, max_value=3).map(str),
    st.sampled_from(["inf", "-inf", "Infinity", "nan", "none", "0", "-0", "1e309", "1_000", " 7 "]),
    st.sampled_from(["0x10", "1e3", "64K", "1.5M", "1024G", "1025G", "", " ", "--", "٣"]),
    st.text(max_size=10),
)


@contextlib.contextmanager
def _stray_output() -> Iterator[list[str]]:
    """Collect what would reach the terminal outside ``main``'s own stderr: sys.stderr,
    exceptions that end a thread or go unraisable, and warnings logged by any library."""
    seen: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(f"log {record.name}: {record.getMessage()} {record.exc_info or ''}")

    handler = Collect(logging.WARNING)
    root = logging.getLogger()
    old_thread, old_unraisable = threading.excepthook, sys.unraisablehook
    threading.excepthook = lambda a: seen.append(f"thread {a.thread}: Traceback {a.exc_value!r}")
    sys.unraisablehook = lambda u: seen.append(f"unraisable: Traceback {u.exc_value!r}")
    root.addHandler(handler)
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            yield seen
    finally:
        root.removeHandler(handler)
        threading.excepthook, sys.unraisablehook = old_thread, old_unraisable
        if stderr.getvalue():
            seen.append(stderr.getvalue())


@pytest.fixture(scope="module")
def two_urls(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two URLs on one closed port (refused at once; one host, so --rate paces them)."""
    tmp = tmp_path_factory.mktemp("numeric")
    urls = tmp / "urls.txt"
    port = closed_port()
    urls.write_text(f"http://127.0.0.1:{port}/a\nhttp://127.0.0.1:{port}/b\n")
    return urls, tmp / "out.jsonl"


@settings(
    max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(option=st.sampled_from(sorted(ACCEPTS)), value=VALUES, backend=st.sampled_from(IN_PROCESS))
def test_numeric_options_accept_what_they_document_and_refuse_in_one_line(
    two_urls, option, value, backend
):
    urls, out = two_urls
    # The drawn option comes last, so it overrides these; `=` keeps "-1" and "" values.
    argv = ["crawl", str(urls), "-o", str(out), "-q", "--retries", "0", "--timeout", "1"]
    argv += ["--backend", backend]
    with _stray_output() as stray:
        status, err = _run([*argv, f"{option}={value}"])
    assert not stray, stray
    assert "Traceback" not in err
    expected = ACCEPTS[option](value)
    if status == 0:
        assert err == "" and expected in (True, None), f"{option}={value!r} was accepted"
        assert len(records(out.read_bytes())) == 2
    else:
        assert status == 2 and expected in (False, None), (option, value, err)
        assert len(err.splitlines()) == 1 and err.startswith("polyfetch crawl: error: "), err
        assert err.endswith("\n") and "\r" not in err


#: Values at the documented ends of each range, run on every backend.
EDGE_CASES = [
    ["--timeout", "inf"],
    ["--timeout", "inf", "--connect-timeout", "inf", "--read-timeout", "inf"],
    ["--timeout", "1e300", "--grace", "inf", "--rate", "inf", "--retries", "0"],
    ["-c", "100000", "--per-host", "100000", "--max-bytes", "1024G", "--dedup-memory", "1"],
]


@pytest.mark.parametrize("cli_backend", BACKENDS)
def test_edge_values_work_on_every_backend(servers: Servers, crawls, tmp_path, cli_backend):
    urls = tmp_path / "urls.txt"
    wanted = {f"{servers.http}/bytes/100": 200, f"{servers.http}/gzip/1000": 200}
    wanted[f"http://127.0.0.1:{closed_port()}/"] = "ConnectError"
    urls.write_text("".join(f"{u}\n" for u in wanted))
    for case in EDGE_CASES:
        done = crawls.run(str(urls), "--backend", cli_backend, "--retries", "0", *case)
        assert done.returncode == 0, (case, done.stderr)
        assert "Traceback" not in done.stderr and "Exception" not in done.stderr, done.stderr
        got = {r["url"]: r["status"] or r["error"] for r in records(done.stdout)}
        assert got == wanted, case
    # No deadline and a pause of 116 days before the next request to the host: the pause
    # would outlive the (capped) timeout, so the later URLs end at once as TotalTimeout.
    paced = crawls.run(str(urls), "--backend", cli_backend, "--timeout", "inf", "--rate", "1e-7")
    assert paced.returncode == 0 and "Traceback" not in paced.stderr, paced.stderr
    outcomes = sorted(str(r["status"] or r["error"]) for r in records(paced.stdout))
    assert outcomes[1:] == ["TotalTimeout", "TotalTimeout"], outcomes  # the first one went
    refused = crawls.run(str(urls), "--backend", cli_backend, "--timeout", "nan")
    assert refused.returncode == 2 and len(refused.stderr.splitlines()) == 1, refused.stderr
    assert refused.stdout == b""


@pytest.mark.parametrize("cli_backend", BACKENDS)
def test_ctrl_c_with_unlimited_grace_lets_in_flight_requests_finish(
    servers: Servers, crawls, tmp_path, cli_backend
):
    urls, out = tmp_path / "urls.txt", tmp_path / "out.jsonl"
    slow = [f"{servers.http}/delay/1500?slow={i}" for i in range(2)]
    quick = [f"{servers.http}/delay/100?quick={i}" for i in range(200)]
    urls.write_text("".join(f"{u}\n" for u in slow + quick))
    proc = crawls.start(str(urls), "-o", str(out), "--backend", cli_backend, "--grace", "inf")
    wait_until(lambda: line_count(out) >= 5, 15, "the first records")
    kill_group(proc, signal.SIGINT)
    done = crawls.finish(proc, timeout=15)
    assert done.returncode == 130, done.stderr
    assert "Traceback" not in done.stderr and "in-flight requests get inf s" in done.stderr
    got = {r["url"]: r for r in records(out.read_bytes())}
    assert all(got[u]["status"] == 200 for u in slow)  # no alarm cut them off
    assert len(got) < len(slow) + len(quick)  # input reading stopped


# -- usage errors: one line, naming the subcommand ------------------------------------------


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (
            ["crawl", "--timeout", "abc"],
            "polyfetch crawl: error: argument --timeout: 'abc' is not a number of seconds > 0 "
            "(or inf: no limit) (see polyfetch crawl --help)",
        ),
        (
            ["crawl", "--bogus", "x"],
            "polyfetch crawl: error: unrecognized arguments: --bogus (see polyfetch crawl --help)",
        ),
        (
            ["crawl", "a.txt", "b.txt"],  # several inputs are seeds, for --follow only
            "polyfetch crawl: error: give one URLS_FILE (or -); several seeds are for --follow",
        ),
        (
            ["crawl", "--bogus=a\nb"],  # an echoed argument with a line break stays one line
            "polyfetch crawl: error: unrecognized arguments: --bogus=a b "
            "(see polyfetch crawl --help)",
        ),
        (
            ["serve", "--bogus"],
            "polyfetch serve: error: unrecognized arguments: --bogus (see polyfetch serve --help)",
        ),
        (
            ["serve", "--port", "x"],
            "polyfetch serve: error: argument --port: invalid int value: 'x' "
            "(see polyfetch serve --help)",
        ),
        (
            ["demo", "--bogus"],
            "polyfetch demo: error: unrecognized arguments: --bogus (see polyfetch demo --help)",
        ),
        (
            ["demo", "-n", "many"],
            "polyfetch demo: error: argument -n/--requests: invalid int value: 'many' "
            "(see polyfetch demo --help)",
        ),
        (
            ["bench", "--bogus"],
            "polyfetch bench: error: unrecognized arguments: --bogus (see polyfetch bench --help)",
        ),
        (
            ["--bogus", "crawl"],
            "polyfetch: error: unrecognized arguments: --bogus (see polyfetch --help)",
        ),
        (
            [],
            "polyfetch: error: the following arguments are required: COMMAND "
            "(see polyfetch --help)",
        ),
    ],
)
def test_a_usage_error_is_one_line_naming_its_subcommand(argv, line, capsys):
    status, err = _run(argv)
    assert status == 2
    assert err.splitlines() == [line]
    assert capsys.readouterr() == ("", "")  # nothing went around main's streams


def test_usage_error_from_the_real_command_is_one_line():
    proc = subprocess.run(
        [sys.executable, "-m", "polyfetch", "crawl", "--timeout", "abc"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
    )
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        "polyfetch crawl: error: argument --timeout: 'abc' is not a number of seconds > 0 "
        "(or inf: no limit) (see polyfetch crawl --help)"
    ]


@pytest.mark.parametrize("argv", [["--help"], ["crawl", "--help"], ["bench", "-h"], ["--version"]])
def test_help_and_version_return_0_without_sys_exit(argv, capsys):
    status, err = _run(argv)  # a SystemExit would fail the test here
    assert (status, err) == (0, "")
    assert capsys.readouterr().out


# -- --process-timeout ----------------------------------------------------------------------


def _crawl_args(*argv: str) -> Crawl:
    args = build_parser().parse_args(["crawl", "urls.txt", *argv])
    return Crawl(args, io.BytesIO(), io.BytesIO(), io.StringIO())


@pytest.mark.parametrize(
    ("argv", "timeout"),
    [
        (["--process", "sha256"], 60.0),  # the CLI's default
        (["--process", "sha256", "--process-timeout", "2.5"], 2.5),
        (["--process", "sha256", "--process-timeout", "0"], None),
        (["--process", "sha256", "--process-timeout", "none"], None),
        (["--process", "sha256", "--process-timeout", "inf"], None),
        (["--process-timeout", "5"], None),  # nothing to time without --process
        ([], None),
    ],
)
def test_process_timeout_reaches_the_fetcher(argv, timeout):
    assert _crawl_args(*argv)._fetcher_options().get("process_timeout") == timeout


@pytest.mark.parametrize("value", ["-1", "nan", "abc", "-inf"])
def test_process_timeout_refuses_in_one_line(value):
    status, err = _run(["crawl", "x.txt", "--process", "sha256", f"--process-timeout={value}"])
    assert status == 2 and len(err.splitlines()) == 1 and "--process-timeout" in err, err


def test_help_states_the_process_timeout_default(capsys):
    assert main(["crawl", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--process-timeout S" in text and "(default with --process: 60)" in text
    assert "0 or none: no limit" in text


@pytest.mark.parametrize("cli_backend", BACKENDS)
def test_a_hanging_processor_times_out_and_the_crawl_finishes(
    servers: Servers, crawls, tmp_path, cli_backend
):
    urls = tmp_path / "urls.txt"
    hanging, quick = f"{servers.http}/bytes/10?hang=1", f"{servers.http}/bytes/20?s=0"
    urls.write_text(f"{hanging}\n{quick}\n")
    done = crawls.run(
        str(urls), "--backend", cli_backend, "--process", "tests.processors_fixture:hang",
        "--process-timeout", "1", "--workers", "2", timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    by_url = {r["url"]: r for r in records(done.stdout)}
    assert set(by_url) == {hanging, quick}
    assert by_url[hanging]["status"] == 200 and by_url[hanging]["process_error"] == "ProcessTimeout"
    assert by_url[hanging]["processed"] is None
    assert by_url[quick]["process_error"] is None and by_url[quick]["processed"]["size"] == 20
