"""The command line's face: logging under -v, the retry knobs, one URL like curl, Ctrl+C's
progress line and the summary's wording. Run in-process against the session's servers."""

from __future__ import annotations

import io
import json
import logging
import uuid

import pytest

from polyfetch import Settings
from polyfetch.cli import main
from polyfetch.errors import ConfigError
from polyfetch.testing.servers import Servers


def _crawl(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = main(["crawl", *argv], stdout=out, stderr=err, stdin=io.StringIO())
    return status, out.getvalue(), err.getvalue()


def test_verbose_logs_why_each_url_took_its_time_and_is_quiet_without(servers: Servers, tmp_path):
    urls = tmp_path / "urls.txt"
    urls.write_text(f"{servers.http}/redirect/1\n{servers.http}/status/503?retry_after=0\n")
    status, _, quiet = _crawl(str(urls), "-o", str(tmp_path / "a.jsonl"), "--rate", "50")
    assert status == 0 and "attempt" not in quiet and "polyfetch: item" not in quiet
    handlers = list(logging.getLogger("polyfetch").handlers)

    flaky = f"{servers.http}/flaky/{uuid.uuid4().hex}?fails=1&retry_after=0"
    urls.write_text(f"{servers.http}/redirect/1\n{flaky}\n")

    status, _, err = _crawl(str(urls), "-o", str(tmp_path / "b.jsonl"), "-v", "--rate", "50")
    assert status == 0, err
    lines = [
        line.split(" polyfetch: ", 1)[1] for line in err.splitlines() if " polyfetch: " in line
    ]
    redirect = f"item 0 {servers.http}/redirect/1: "
    assert f"{redirect}attempt 1: GET {servers.http}/redirect/1" in lines, err
    assert f"{redirect}status 302: redirected to {servers.http}/redirect/0" in lines, err
    assert f"{redirect}redirect 1: GET {servers.http}/redirect/0" in lines, err
    assert any(line.startswith(f"{redirect}done in ") for line in lines), err
    assert (
        f"item 1 {flaky}: retry 1 after status 503, Retry-After: 0: waiting 0.000 s "
        "(Retry-After)" in lines
    ), err
    assert any("rate limit for 127.0.0.1: waiting" in line for line in lines), err
    assert logging.getLogger("polyfetch").handlers == handlers  # nothing left behind


def test_log_file_gets_the_log_and_stderr_stays_clean(servers: Servers, tmp_path):
    urls = tmp_path / "urls.txt"
    urls.write_text(f"{servers.http}/status/503?retry_after=0\n")
    log = tmp_path / "crawl.log"
    status, _, err = _crawl(
        str(urls), "-o", str(tmp_path / "o.jsonl"), "--log", str(log), "--retries", "1", "-q"
    )
    assert status == 0 and err == ""
    text = log.read_text()
    assert "retry 1 after status 503, Retry-After: 0: waiting" in text, text
    assert "not retried after status 503, Retry-After: 0: 1 of 1 retries used" in text, text


def test_unwritable_log_is_a_usage_error(tmp_path):
    urls = tmp_path / "urls.txt"
    urls.write_text("http://127.0.0.1:1/\n")
    status, _, err = _crawl(str(urls), "--log", str(tmp_path / "no" / "such.log"))
    assert status == 2 and err.startswith("polyfetch crawl: error: cannot write --log"), err
    assert len(err.splitlines()) == 1


def test_retry_knobs_reach_the_cli(servers: Servers, tmp_path):
    urls = tmp_path / "urls.txt"
    urls.write_text(f"{servers.http}/status/404\n{servers.http}/status/503\n")
    out, log = tmp_path / "o.jsonl", tmp_path / "crawl.log"
    argv = [str(urls), "-o", str(out), "-q", "--log", str(log), "--retries", "2"]
    knobs = ["--retry-status", "404", "--backoff", "0.02", "--max-backoff", "0.03"]
    assert _crawl(*argv, *knobs)[0] == 0
    records = {r["url"].rsplit("/", 1)[1]: r for r in map(json.loads, out.read_text().splitlines())}
    assert records["404"]["attempts"] == 3 and records["503"]["attempts"] == 1, records
    waits = [
        float(line.split("waiting ")[1].split()[0])
        for line in log.read_text().splitlines()
        if "(backoff)" in line
    ]
    assert len(waits) == 2 and 0.01 <= waits[0] <= 0.02 and 0.015 <= waits[1] <= 0.03, waits
    assert _crawl(*argv, "--retry-status", "none")[0] == 0
    assert {json.loads(r)["attempts"] for r in out.read_text().splitlines()} == {1}


def test_bad_retry_knobs_are_one_line_usage_errors(tmp_path):
    for argv in (["--retry-status", "42"], ["--retry-status", "503,x"], ["--backoff", "-1"]):
        status, _, err = _crawl("-", *argv)
        assert status == 2 and len(err.splitlines()) == 1, err
        assert err.startswith("polyfetch crawl: error: argument"), err


def test_retry_statuses_setting_is_checked():
    assert Settings(retry_statuses=[500, 503]).retry_statuses == frozenset({500, 503})
    for bad in (["503"], [1000], "503", None):
        with pytest.raises(ConfigError):
            Settings(retry_statuses=bad)  # type: ignore[arg-type]


def _get(*argv: str) -> tuple[int, bytes, str]:
    out, err = io.TextIOWrapper(io.BytesIO(), encoding="utf-8"), io.StringIO()
    status = main(["get", *argv], stdout=out, stderr=err, stdin=io.StringIO())
    out.flush()
    return status, out.buffer.getvalue(), err.getvalue()  # type: ignore[attr-defined]


def test_get_writes_one_record_per_url_given(servers: Servers):
    status, out, err = _get(f"{servers.http}/redirect/1", f"{servers.http}/bytes/3")
    assert status == 0 and err == "", err
    records = [json.loads(line) for line in out.decode().splitlines()]
    assert [
        (r["line"], r["status"], r["redirects"]) for r in sorted(records, key=lambda r: r["line"])
    ] == [(1, 200, 1), (2, 200, 0)]


def test_get_body_writes_the_bodies_in_the_order_given(servers: Servers):
    slow, quick = f"{servers.http}/delay/300?size=4", f"{servers.http}/bytes/3"
    status, out, err = _get("--body", slow, quick, quick)  # a URL given twice is fetched twice
    assert (status, err) == (0, "")
    assert out == b"0123" + b"012" * 2, out


def test_get_include_writes_status_line_and_headers_and_fails_on_404(servers: Servers):
    status, out, _ = _get("-i", f"{servers.http}/status/404")
    head, _, body = out.partition(b"\r\n\r\n")
    assert status == 1 and head.startswith(b"HTTP/1.1 404 Not Found\r\n"), out
    assert b"\r\ncontent-type: text/plain" in head and body == b"status 404"


def test_get_of_a_failed_fetch_is_one_line_and_exit_1(servers: Servers, tmp_path):
    status, out, err = _get(
        "-O", "-", "http://127.0.0.1:1/x", "--retries", "0", "--backend", "threads"
    )
    assert status == 1 and out == b""
    assert err.splitlines() == [
        "polyfetch get: http://127.0.0.1:1/x: ConnectError: "
        + err.split("ConnectError: ")[1].strip()
    ]


def test_get_takes_every_fetching_option(servers: Servers, tmp_path):
    flaky = f"{servers.http}/flaky/{uuid.uuid4().hex}?fails=1&retry_after=0"
    records = tmp_path / "r.jsonl"
    status, out, _ = _get(
        flaky, "-O", "-", "-o", str(records), "--retries", "1", "--backend", "greenlet"
    )
    (record,) = map(json.loads, records.read_text().splitlines())
    assert status == 0 and record["attempts"] == 2 and out == b"recovered after 1", out
    assert _get(flaky, "--retries", "0", "--retry-status", "none", "--timeout", "0.5")[0] == 0


def test_unknown_option_names_the_subcommand(capsys):
    assert main(["get", "--bogus", "http://x/"]) == 2
    assert main(["crawl", "--bogus"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "polyfetch get: error: unrecognized arguments: --bogus (see polyfetch get --help)",
        "polyfetch crawl: error: unrecognized arguments: --bogus (see polyfetch crawl --help)",
    ]


def _progress_line(state: str) -> str:
    from rich.console import Console

    from polyfetch.crawl.inputs import InputCounts
    from polyfetch.crawl.progress import RichProgress, Stats

    progress = RichProgress(io.StringIO(), 100, lambda: state)
    stats = Stats()
    stats.records = 40
    progress.update(stats, InputCounts(), force=True)
    console = Console(file=io.StringIO(), width=120)
    with console.capture() as captured:
        console.print(progress._progress.get_renderable())
    return captured.get()


def test_progress_line_says_interrupted_without_an_eta():
    assert "ETA" in _progress_line("crawling")
    line = _progress_line("interrupted")
    assert "interrupted" in line and "ETA" not in line, line


def test_summary_wording_fits_one_or_many():
    from polyfetch.crawl.inputs import InputCounts
    from polyfetch.crawl.progress import Stats, summary

    one = summary(Stats(records=1), InputCounts(lines=1), 1.0, unfinished=1, interrupted=True)
    assert "1 record in" in one and "1 line;" in one and "1 request was cancelled" in one, one
    many = summary(Stats(records=2), InputCounts(lines=3), 1.0, unfinished=2, interrupted=True)
    assert "2 records in" in many and "3 lines;" in many and "2 requests were cancelled" in many


def test_serve_help_documents_every_option(capsys):
    assert main(["serve", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    for option in ("--host", "--port", "--https-port", "--certfile", "--keyfile"):
        assert f"{option} " in text
    assert "default: 127.0.0.1" in text and "default: 8000" in text
    assert main(["serve", "--https-port", "8443"]) == 2
    assert "needs --certfile and --keyfile" in capsys.readouterr().err


def test_backend_help_is_one_line_pointing_at_the_guide(capsys):
    assert main(["crawl", "--help"]) == 0
    lines = capsys.readouterr().out.splitlines()
    # the entry runs to the next option's line, however argparse lays options out (3.13 prints
    # "-c, --concurrency N" where 3.11 printed "-c N, --concurrency N")
    start = next(i for i, line in enumerate(lines) if line.startswith("  --backend "))
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("  -"))
    block = lines[start:end]
    assert "Choosing a backend" in " ".join(" ".join(block).split()) and len(block) <= 4, block
