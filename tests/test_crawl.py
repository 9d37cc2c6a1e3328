"""``polyfetch crawl``, run as a user runs it: a subprocess against real servers on 127.0.0.1.

Every backend runs in its own process (the CLI patches gevent itself), so the
backends are parametrized here with all available ones, gevent included.
Small timeouts keep the misbehaving endpoints quick; every wait is bounded.
"""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import polyfetch
from polyfetch.cli import main
from polyfetch.crawl.inputs import MAX_LINE, InputCounts, read_lines
from polyfetch.crawl.outputs import read_recorded
from polyfetch.crawl.progress import Histogram
from polyfetch.crawl.savedir import file_name
from polyfetch.frontier.seen import FingerprintSet, LineSet
from tests.conftest import Servers, closed_port
from tests.crawl_helpers import ROOT, Crawls, kill_group, line_count, records, wait_until

BACKENDS = polyfetch.available_backends()
FAST = ["--timeout", "2", "--read-timeout", "1", "--connect-timeout", "1", "--retries", "0"]


@pytest.fixture
def crawls() -> Iterator[Crawls]:
    c = Crawls()
    yield c
    c.close()


# -- one record per input line, on every backend, whatever the server does -----------------

#: path -> (status, or the error kinds allowed: backends word some failures differently)
HTTP_CASES: dict[str, int | set[str]] = {
    "/bytes/100": 200,
    "/status/404": 404,
    "/status/503": 503,
    "/redirect/2": 200,
    "/gzip/1000": 200,
    "/loop": {"TooManyRedirects"},
    "/redirect-to?url=file:///etc/passwd": {"UnsupportedScheme"},
    "/bomb/50000000": {"TooLarge"},
    "/bytes/2000000": {"TooLarge"},
}
RAW_CASES: dict[str, int | set[str]] = {
    "/silence": {"ReadTimeout", "TotalTimeout"},
    "/trickle": {"ReadTimeout", "TotalTimeout"},
    "/reset": {"ReadError"},
    "/short": {"ReadError"},
    "/garbage": {"ProtocolError"},
    "/bad-status": {"ProtocolError"},
    "/huge-header": {"ProtocolError"},
    "/bad-chunked": {"ProtocolError"},
    "/gzip-bad": {"ProtocolError"},
    "/close-delimited": 200,
    "/empty": {"ReadError"},
    "/ok": 200,
}
BAD_LINES: dict[str, set[str]] = {
    "not a url": {"InvalidURL"},
    "ftp://127.0.0.1/x": {"UnsupportedScheme"},
    "http://": {"InvalidURL"},
}


@pytest.mark.parametrize("cli_backend", BACKENDS)
def test_every_endpoint_gets_exactly_one_record(servers: Servers, crawls, tmp_path, cli_backend):
    expected: dict[str, int | set[str]] = {}
    expected.update({servers.http + p: v for p, v in HTTP_CASES.items()})
    expected.update({servers.raw + p: v for p, v in RAW_CASES.items()})
    expected.update(BAD_LINES)
    expected[f"http://127.0.0.1:{closed_port()}/"] = {"ConnectError"}
    expected[servers.https + "/bytes/10"] = 200
    body = "\n".join(expected).encode() + b"\n"
    body += b"# a comment\n\n   \n" + (servers.raw + "/ok").encode() + b"\r\n"  # a duplicate
    body += b"http://127.0.0.1/" + b"a" * (MAX_LINE + 10) + b"\n"  # over-long
    body += b"http://127.0.0.1/\xff\xfe\n"  # not UTF-8
    urls = tmp_path / "urls.txt"
    urls.write_bytes(body)

    started = time.monotonic()
    done = crawls.run(
        str(urls), "--backend", cli_backend, *FAST, "--max-bytes", "1M",
        "--cacert", servers.ca_file, timeout=40,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - started < 30
    assert "Traceback" not in done.stderr and "Warning" not in done.stderr, done.stderr
    got = records(done.stdout)
    duplicates = [r for r in got if r["duplicate_of"] is not None]
    got = [r for r in got if r["duplicate_of"] is None]
    by_url = {r["url"]: r for r in got}
    assert len(got) == len(by_url) == len(expected) + 2
    (dup,) = duplicates  # the /ok line again: its record points at the first, not fetched
    assert dup["url"] == servers.raw + "/ok" and dup["duplicate_of"] == by_url[dup["url"]]["line"]
    assert (dup["status"], dup["error"], dup["attempts"]) == (None, None, 0), dup
    for url, want in expected.items():
        r = by_url[url]
        if isinstance(want, int):
            assert (r["status"], r["error"]) == (want, None), r
        else:
            assert r["error"] in want and r["status"] is None, r
    lines = sorted(r["line"] for r in got)
    assert lines == [*range(1, len(expected) + 1), len(expected) + 5, len(expected) + 6]
    rejected = [r for r in got if r["line"] > len(expected)]
    assert all(r["error"] == "InvalidURL" for r in rejected)
    assert {r["error_message"] for r in rejected} == {
        f"line longer than {MAX_LINE} bytes ({MAX_LINE + 28} bytes)",
        "line is not valid UTF-8",
    }
    assert by_url[servers.http + "/bytes/100"]["size"] == 100
    assert by_url[servers.http + "/redirect/2"]["redirects"] == 2
    assert "; 1 duplicate" in done.stderr and "3 blank/comment" in done.stderr


# -- Ctrl+C, kill -9 and --resume ----------------------------------------------------------


def _slow_list(servers: Servers, path: Path, slow_ms: int = 2500, quick: int = 80) -> set[str]:
    """Three requests that outlive the grace period, then ``quick`` short ones."""
    urls = [f"{servers.http}/delay/{slow_ms}?slow={i}" for i in range(3)]
    urls += [f"{servers.http}/delay/100?quick={i}" for i in range(quick)]
    path.write_text("\n".join(urls) + "\n")
    return set(urls)


def _assert_complete(out: Path, wanted: set[str]) -> None:
    got = [r["url"] for r in records(out.read_bytes())]
    assert len(got) == len(set(got)), "a URL was recorded twice"
    assert set(got) == wanted


@pytest.mark.parametrize("cli_backend", BACKENDS)
def test_ctrl_c_exits_130_and_resume_completes(servers, crawls, tmp_path, cli_backend):
    urls, out = tmp_path / "urls.txt", tmp_path / "out.jsonl"
    wanted = _slow_list(servers, urls)
    args = [str(urls), "-o", str(out), "--backend", cli_backend, "-c", "10", "--per-host", "10"]
    proc = crawls.start(*args, "--grace", "0.3")
    wait_until(lambda: line_count(out) >= 10, 15, "the first records")
    kill_group(proc, signal.SIGINT)
    sent = time.monotonic()
    done = crawls.finish(proc, timeout=15)
    assert done.returncode == 130, done.stderr
    assert time.monotonic() - sent < 2.2  # 0.3 s grace, then cancellation: not 2.5 s
    assert "Traceback" not in done.stderr and "--resume" in done.stderr
    first = records(out.read_bytes())
    assert 10 <= len(first) < len(wanted)
    assert not [r for r in first if "slow=" in r["url"]], "cancelled requests must get no record"

    again = crawls.run(*args, "--resume", timeout=30)
    assert again.returncode == 0, again.stderr
    _assert_complete(out, wanted)


@pytest.mark.parametrize("cli_backend", BACKENDS)
def test_second_ctrl_c_exits_at_once_with_valid_output(servers, crawls, tmp_path, cli_backend):
    urls, out = tmp_path / "urls.txt", tmp_path / "out.jsonl"
    _slow_list(servers, urls, slow_ms=20_000)
    proc = crawls.start(
        str(urls), "-o", str(out), "--backend", cli_backend, "-c", "10", "--grace", "20"
    )
    wait_until(lambda: line_count(out) >= 5, 15, "the first records")
    kill_group(proc, signal.SIGINT)
    time.sleep(0.1)
    kill_group(proc, signal.SIGINT)
    sent = time.monotonic()
    done = crawls.finish(proc, timeout=10)
    assert done.returncode == 130, done.stderr
    assert time.monotonic() - sent < 3  # not the 20 s grace
    assert "exiting now" in done.stderr and "Traceback" not in done.stderr
    records(out.read_bytes())


@pytest.mark.parametrize("cli_backend", BACKENDS)
def test_sigkill_leaves_whole_lines_and_resume_completes(servers, crawls, tmp_path, cli_backend):
    urls, out = tmp_path / "urls.txt", tmp_path / "out.jsonl"
    wanted = {f"{servers.http}/delay/50?k={i}" for i in range(300)}
    urls.write_text("\n".join(sorted(wanted)) + "\n")
    args = [str(urls), "-o", str(out), "--backend", cli_backend, "-c", "20", "--per-host", "20"]
    proc = crawls.start(*args)
    wait_until(lambda: line_count(out) >= 30, 15, "the first records")
    kill_group(proc)  # SIGKILL, mid-crawl: records are being written
    crawls.finish(proc, timeout=10)
    # What the kill itself left: whole records only, no torn tail (records() checks both).
    left = records(out.read_bytes())
    assert 30 <= len(left) < len(wanted)
    assert len({r["url"] for r in left}) == len(left)
    again = crawls.run(*args, "--resume", timeout=30)
    assert again.returncode == 0, again.stderr
    _assert_complete(out, wanted)
    assert records(out.read_bytes())[: len(left)] == left  # resume only appended


# -- save dir, stdin, CSV, exit statuses ---------------------------------------------------


def test_save_dir_writes_only_inside_dir_whatever_the_url(servers, crawls, tmp_path):
    base = servers.http
    hostile = [
        f"{base}/bytes/10/../../../../../etc/passwd",
        f"{base}/bytes/11?x=../../../../tmp/evil",
        f"{base}/bytes/12?name=%2e%2e%2f%2e%2e%2fevil&y=..%5C..%5Cwin",
        f"{base}/bytes/13/" + "a" * 3000,
        f"{base}/bytes/14?" + "q" * 5000,
        f"{base}/bytes/15?ü=ö&名前=値",
        f"{base}/bytes/16#../../fragment",
        f"{base}/redirect-to?url=/bytes/17%3Fz%3D..%2F..%2Fescape",
        f"{base}/redirect-to?url=http://localhost:{servers.port}/bytes/18/..%2F..%2Fx",
        f"{base}/bytes/19?a=1",
        f"{base}/bytes/19?a=2",
        f"{base}/bytes/19?a=%31",
        f"{base}/.hidden/../bytes/20",
    ]
    urls, out, save = tmp_path / "urls.txt", tmp_path / "out.jsonl", tmp_path / "sub" / "save"
    urls.write_text("\n".join(hostile) + "\n")
    # --dedup exact: ?a=1 and ?a=%31 are one URL in canonical form, two files here
    done = crawls.run(str(urls), "-o", str(out), "--save-dir", str(save), "--dedup", "exact", *FAST)
    assert done.returncode == 0, done.stderr
    got = records(out.read_bytes(), save=True)
    assert {r["url"] for r in got} == set(hostile)
    outside = sorted(
        p for p in tmp_path.rglob("*") if save not in p.parents and p not in (urls, out, save)
    )
    assert outside == [tmp_path / "sub"]
    files = [r["file"] for r in got]
    assert all(files) and len(set(files)) == len(files)
    root = os.path.realpath(save)
    for r in got:
        path = os.path.realpath(os.path.join(save, r["file"]))
        assert os.path.commonpath([root, path]) == root
        assert os.path.getsize(path) == r["size"] and r["save_error"] is None
        assert len(os.path.basename(path)) <= 120 and not os.path.basename(path).startswith(".")
    assert sorted(str(p.relative_to(save)) for p in save.rglob("*") if p.is_file()) == sorted(files)


def test_stdin_input_and_csv_output(servers, crawls):
    lines = [f"{servers.http}/bytes/5", f"{servers.http}/status/500", "nope", ""]
    lines.append(f"{servers.http}/bytes/5")  # a duplicate, kept with --no-dedup
    done = crawls.run(
        "-", "--format", "csv", "--no-dedup", *FAST, stdin="\n".join(lines).encode() + b"\n"
    )
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(io.StringIO(done.stdout.decode(), newline="")))
    assert sorted((int(r["line"]), r["status"], r["error"]) for r in rows) == [
        (1, "200", ""),
        (2, "500", ""),
        (3, "", "InvalidURL"),
        (5, "200", ""),
    ]


def test_csv_resume_round_trips_awkward_lines(servers, crawls, tmp_path):
    awkward = [b"http://127.0.0.1/a\rb", b"http://127.0.0.1/\xff", b'"quoted", and, commas']
    good = [f"{servers.http}/bytes/{n}".encode() for n in range(1, 4)]
    urls, out = tmp_path / "urls.txt", tmp_path / "out.csv"
    urls.write_bytes(b"\n".join(awkward + good[:1]) + b"\n")
    args = ["-o", str(out), "--format", "csv", *FAST]
    assert crawls.run(str(urls), *args).returncode == 0
    urls.write_bytes(b"\n".join(awkward + good) + b"\n")
    done = crawls.run(str(urls), *args, "--resume")
    assert done.returncode == 0, done.stderr
    assert "4 already recorded" in done.stderr
    rows = list(csv.DictReader(io.StringIO(out.read_text(), newline="")))
    assert sorted(int(r["line"]) for r in rows) == [1, 2, 3, 4, 5, 6]
    assert out.read_text().count("url,line,") == 1


def test_fail_on_error_exits_1(servers, crawls):
    good, bad = f"{servers.http}/bytes/5\n".encode(), f"{servers.http}/status/500\n".encode()
    assert crawls.run("--fail-on-error", *FAST, stdin=good).returncode == 0
    assert crawls.run("--fail-on-error", *FAST, stdin=good + bad).returncode == 1


def test_help_documents_every_option():
    proc = subprocess.run(
        [sys.executable, "-m", "polyfetch", "crawl", "--help"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
    )
    assert proc.returncode == 0
    for option in (
        "--output", "--format", "--backend", "--concurrency", "--per-host", "--timeout",
        "--connect-timeout", "--retries", "--header", "--user-agent", "--max-bytes",
        "--max-redirects", "--insecure", "--cacert", "--save-dir", "--resume", "--quiet",
        "--no-dedup", "--fail-on-error", "--process", "--workers", "--rate", "exit status",
        "Ctrl+C",
    ):  # fmt: skip
        assert option in proc.stdout, option


@pytest.mark.parametrize(
    "argv",
    [
        ["--bogus"],
        ["--concurrency", "many"],
        ["--format", "xml"],
        ["--backend", "nope"],
        ["-H", "no colon here"],
        ["--timeout", "0"],
        ["--rate", "-1"],
        ["--back", "gevent"],  # no abbreviations: the early gevent patch needs the full name
        ["{missing}"],
        ["{dir}"],
        ["{urls}", "--resume"],
        ["{urls}", "-c", "0"],
        ["{urls}", "-o", "{urls}"],
        ["{urls}", "-o", "{dir}/no/such/dir/out.jsonl"],
        ["{urls}", "-o", "{notours}", "--resume"],
        ["{urls}", "-o", "{notours}", "-c", "0"],  # and the existing output is left alone
        ["{urls}", "-o", "{notours}", "--cacert", "{missing}"],
        ["{urls}", "--save-dir", "{urls}"],
    ],
)
def test_usage_errors_exit_2_with_one_line(argv, tmp_path, capsys):
    urls, notours = tmp_path / "urls.txt", tmp_path / "notours.txt"
    urls.write_text("not a url\n")
    notours.write_text("hello\n")
    names = {"missing": tmp_path / "missing.txt", "dir": tmp_path, "urls": urls, "notours": notours}
    argv = [a.format(**names) for a in argv]
    err = io.StringIO()
    assert main(["crawl", *argv], stdout=io.StringIO(), stderr=err) == 2
    text = err.getvalue() + capsys.readouterr().err
    assert "Traceback" not in text
    # Every line counts (a usage block is lines too), not only those saying "error:".
    assert len(text.splitlines()) == 1 and text.startswith("polyfetch crawl: error: "), text
    assert notours.read_text() == "hello\n" and urls.read_text() == "not a url\n"


def test_usage_error_from_the_real_command(crawls, tmp_path):
    done = crawls.run(str(tmp_path / "missing.txt"))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"polyfetch crawl: error: cannot read {tmp_path / 'missing.txt'}: No such file or directory"
    ]


def test_building_the_parser_imports_nothing_gevent_must_patch():
    code = (
        "import sys, json\nfrom polyfetch.cli import build_parser\nbuild_parser()\n"
        "bad = ['socket', 'ssl', 'asyncio', 'selectors', 'gevent', 'aiohttp', 'urllib3',"
        " 'greenlet', 'rich', 'polyfetch.crawl.run']\n"
        "print(json.dumps([m for m in bad if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert json.loads(out.stdout) == [], out.stderr


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_drawn_on_a_terminal_and_the_summary_follows(tmp_path):
    urls, out = tmp_path / "urls.txt", tmp_path / "out.jsonl"
    urls.write_text("".join(f"nope://{i}\n" for i in range(50)) + "# the end\n")
    err = _Terminal()
    assert main(["crawl", str(urls), "-o", str(out)], stdout=io.StringIO(), stderr=err) == 0
    text = err.getvalue()
    assert "51/51" in text and "done" in text and "50 failed" in text
    assert "polyfetch crawl: 50 records" in text and "UnsupportedScheme 50" in text
    quiet = _Terminal()
    assert main(["crawl", str(urls), "-o", str(out), "-q"], stdout=io.StringIO(), stderr=quiet) == 0
    assert quiet.getvalue() == ""


def test_resume_without_dedup_goes_by_line_number(tmp_path):
    urls, out = tmp_path / "urls.txt", tmp_path / "out.jsonl"
    urls.write_text("nope://a\nnope://b\nnope://a\nnope://c\n")
    args = ["crawl", str(urls), "-o", str(out), "--no-dedup", "-q"]
    assert main(args, stdout=io.StringIO(), stderr=io.StringIO()) == 0
    first = out.read_text().splitlines()
    out.write_text("\n".join(line for line in first if '"line": 3' in line) + "\n")
    assert main([*args, "--resume"], stdout=io.StringIO(), stderr=io.StringIO()) == 0
    assert sorted(r["line"] for r in records(out.read_text())) == [1, 2, 3, 4]


# -- the pieces, in process ----------------------------------------------------------------


def test_fingerprint_set_is_exact_while_growing_and_moves_to_disk(tmp_path):
    seen = FingerprintSet(memory=1 << 20, tmpdir=str(tmp_path))
    keys = [f"http://example.test/{i}" for i in range(150_000)]
    for n, key in enumerate(keys):
        assert seen.add(key)
        if n % 4999 == 0:  # also while a grown table is being filled from the old one
            assert not seen.add(keys[n // 2]) and keys[n // 3] in seen
            assert f"http://example.test/x{n}" not in seen
    assert seen.on_disk and len(seen) == len(keys)
    assert not any(seen.add(k) for k in keys[::7])
    assert all(k in seen for k in keys[::11]) and "http://example.test/x" not in seen
    assert os.listdir(tmp_path) == []  # the temporary file is unlinked at once
    seen.close()


def test_fingerprint_set_keeps_each_keys_first_value_across_growth(tmp_path):
    seen = FingerprintSet(memory=1 << 20, tmpdir=str(tmp_path))
    for n in range(100_000):
        assert seen.first(f"k{n}", n + 1) is None
        if n % 997 == 0:
            assert seen.first(f"k{n // 2}", 0) == n // 2 + 1
    assert all(seen.first(f"k{n}", 0) == n + 1 for n in range(0, 100_000, 13))
    seen.close()


def test_line_set():
    done = LineSet()
    for n in (1, 8, 9, 1000, 70_000):
        done.add(n)
    assert [n for n in range(70_002) if n in done] == [1, 8, 9, 1000, 70_000]


def test_read_lines_skips_blank_and_comments_and_flags_unusable_lines():
    data = b"\xef\xbb\xbfhttp://a/\r\n\n  # note\n \thttp://b/  \n\xff\n" + b"x" * (MAX_LINE + 5)
    counts = InputCounts()
    got = list(read_lines(io.BytesIO(data), counts))
    assert [(x.number, x.reject) for x in got] == [
        (1, None),
        (4, None),
        (5, "line is not valid UTF-8"),
        (6, f"line longer than {MAX_LINE} bytes ({MAX_LINE + 5} bytes)"),
    ]
    assert [got[0].url, got[1].url] == ["http://a/", "http://b/"]
    assert (counts.lines, counts.skipped_blank) == (6, 2)


def test_file_names_stay_in_their_shard_and_never_collide():
    urls = ["http://h/../../etc/passwd", "http://h/a?b=/../c", "http://h/" + "é" * 500, "x", ""]
    urls += [f"http://h/{i}" for i in range(2000)]
    names = [file_name(u) for u in urls]
    assert len(set(names)) == len(names)
    for name in names:
        shard, base = name.split("/")
        assert len(shard) == 2 and base.startswith(shard) and len(base) <= 102
        assert ".." not in base and "/" not in base and "\\" not in base
    assert file_name(urls[0]) == file_name(urls[0])


def test_resume_reader_cuts_a_torn_last_line(tmp_path):
    out = tmp_path / "out.jsonl"
    out.write_bytes(b'{"url": "http://a/", "line": 1}\n{"url": "http://b/", "li')
    assert list(read_recorded(str(out), "jsonl")) == [("http://a/", 1, None)]
    assert out.read_bytes() == b'{"url": "http://a/", "line": 1}\n'


def test_histogram_percentiles_within_one_percent():
    hist = Histogram()
    for ms in range(1, 1001):
        hist.add(ms / 1000)
    for q, want in ((0.5, 0.5), (0.9, 0.9), (0.99, 0.99)):
        got = hist.percentile(q)
        assert got is not None and abs(got - want) / want < 0.011
