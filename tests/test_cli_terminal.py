"""The command line's face: logging under -v, the retry knobs, one URL like curl, Ctrl+C's
progress line and the summary's wording. Run in-process against the session's servers."""

from __future__ import annotations

import io
import logging
import uuid

from polyfetch.cli import main
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
