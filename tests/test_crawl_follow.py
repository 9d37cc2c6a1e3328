"""``polyfetch crawl --follow``, run as a user runs it, against the generated site.

The site (`polyfetch.testing.site`) tells exactly which pages a crawl must
record and at which depth; the checks here are about the command: seeds from
arguments, files and stdin, every seed line's record, Ctrl+C and SIGKILL then
--resume on every backend (each page once in the union), CSV, refused records,
sitemaps, and the journal beside the output.
"""

from __future__ import annotations

import csv
import io
import json
import secrets
import signal
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import polyfetch
from polyfetch.crawl.follow import JOURNAL_HEADER
from polyfetch.testing import site
from polyfetch.testing.checks.politeness import set_robots
from tests.conftest import Servers
from tests.crawl_helpers import RECORD_KEYS, Crawls, kill_group, line_count, wait_until

BACKENDS = polyfetch.available_backends()
FOLLOW_KEYS = RECORD_KEYS | {"meta", "depth", "referrer", "robots"}


@pytest.fixture
def crawls() -> Iterator[Crawls]:
    c = Crawls()
    yield c
    c.close()


def key(pages: int) -> str:
    return f"{pages}-c{secrets.token_hex(5)}"


def follow_records(data: bytes) -> list[dict[str, Any]]:
    """The records of a --follow output: whole lines, every key there."""
    text = data.decode()
    assert text == "" or text.endswith("\n"), f"torn last line: {text[-200:]!r}"
    out = []
    for line in text.splitlines():
        record = json.loads(line)
        assert set(record) == FOLLOW_KEYS, sorted(set(record) ^ FOLLOW_KEYS)
        out.append(record)
    return out


def pages(records: list[dict[str, Any]]) -> dict[str, int]:
    """url -> depth of the fetched pages, each once (asserted)."""
    fetched = [r for r in records if r["attempts"]]
    counts = Counter(r["url"] for r in fetched)
    assert not [u for u, n in counts.items() if n > 1], "a page recorded twice"
    return {r["url"]: r["depth"] for r in fetched}


@pytest.mark.parametrize("cli_backend", BACKENDS)
def test_follow_records_every_seed_line_and_every_page(
    servers: Servers, crawls: Crawls, tmp_path: Path, cli_backend: str
) -> None:
    """Seeds from an argument, a file and stdin, numbered across them: the page set and
    depths the site's model gives, seed lines that are no URL or repeat one get their
    record, found pages have line null, depth and referrer."""
    k = key(90)
    p0, p3 = f"{servers.http}/site/{k}/p0.html", f"{servers.http}/site/{k}/p3.html"
    seeds = tmp_path / "seeds.txt"
    seeds.write_text(f"# seeds\n{p0}\nnot a url\n\n")
    out = tmp_path / "out.jsonl"
    done = crawls.run(
        p3, str(seeds), "-", "--follow", "-o", str(out), "--backend", cli_backend, "-c", "8",
        stdin=f"{p0}\n".encode(), timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    records = follow_records(out.read_bytes())
    assert pages(records) == site.expected([p3, p0])
    by_line = {r["line"]: r for r in records if r["line"] is not None}
    assert by_line[1]["url"] == p3 and by_line[1]["depth"] == 0
    assert by_line[3]["url"] == p0 and by_line[3]["status"] == 200
    assert by_line[4]["error"] == "InvalidURL" and by_line[4]["attempts"] == 0
    assert by_line[6]["duplicate_of"] == 3 and by_line[6]["attempts"] == 0  # stdin's p0
    for r in records:
        if r["line"] is None:
            assert r["depth"] >= 1 and r["referrer"], r
    assert "pages:" in done.stderr and "deepest level" in done.stderr
    assert not Path(f"{out}.frontier").exists(), "the journal of a whole crawl is removed"


@pytest.mark.parametrize("how", ["sigint", "sigkill"])
@pytest.mark.parametrize("cli_backend", BACKENDS)
def test_interrupted_follow_resumes_to_each_page_once(
    servers: Servers, crawls: Crawls, tmp_path: Path, cli_backend: str, how: str
) -> None:
    """Ctrl+C (or SIGKILL) mid-crawl, then --resume: the union of the records is exactly
    the site's page set, each page once, at its depth; the first run's records stay."""
    k = key(300)
    seed = f"{servers.http}/site/{k}/p0.html"
    out = tmp_path / "out.jsonl"
    args = [seed, "--follow", "-o", str(out), "--backend", cli_backend, "-c", "6", "--grace", "1"]
    proc = crawls.start(*args)
    wait_until(lambda: line_count(out) >= 40, 30, "the first records")
    kill_group(proc, signal.SIGINT if how == "sigint" else signal.SIGKILL)
    first = crawls.finish(proc, timeout=20)
    assert first.returncode == (130 if how == "sigint" else -signal.SIGKILL), first.stderr
    left = follow_records(out.read_bytes())
    want = site.expected([seed])
    assert 40 <= len(left) < len(want)
    assert Path(f"{out}.frontier").read_bytes().startswith(JOURNAL_HEADER)
    again = crawls.run(*args, "--resume", timeout=90)
    assert again.returncode == 0, again.stderr
    records = follow_records(out.read_bytes())
    assert records[: len(left)] == left, "resume only appends"
    assert pages(records) == want


def test_follow_csv_refused_records_and_limits(
    servers: Servers, crawls: Crawls, tmp_path: Path
) -> None:
    """--format csv with --record-refused: one row per page and per refused link, depth
    and referrer as columns; --depth and --max-pages bound the crawl."""
    k = key(80)
    seed = f"{servers.http}/site/{k}/p0.html"
    out = tmp_path / "out.csv"
    done = crawls.run(
        seed, "--follow", "--format", "csv", "--record-refused", "--depth", "2", "-o", str(out),
        timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    fetched = {r["url"]: int(r["depth"]) for r in rows if r["attempts"] != "0"}
    assert fetched == site.expected([seed], max_depth=2)
    refused = Counter(r["error"] for r in rows if r["attempts"] == "0")
    assert refused["OutOfScope"] >= 2 and refused["InvalidURL"] == 1 and refused["TooDeep"] > 0
    limited = tmp_path / "limited.jsonl"
    done = crawls.run(seed, "--follow", "--max-pages", "5", "-o", str(limited), timeout=60)
    assert done.returncode == 0, done.stderr
    assert len(follow_records(limited.read_bytes())) == 5


def test_follow_sitemaps_add_seeds_within_the_scope(
    servers: Servers, crawls: Crawls, tmp_path: Path
) -> None:
    """--sitemaps: robots.txt's Sitemap line names an index (which lists itself too) of
    a gzipped urlset; its pages in scope are seeds at depth 0 (orphans no link reaches),
    the one on another host is refused."""
    host = 7
    k = key(30)
    base = f"http://{servers.hosts[host]}:{servers.port}"
    set_robots(servers, host, f"User-agent: *\nAllow: /\nSitemap: {base}/site/{k}/sitemap.xml\n")
    seed = f"{base}/site/{k}/p0.html"
    out = tmp_path / "out.jsonl"
    done = crawls.run(seed, "--follow", "--sitemaps", "-o", str(out), timeout=60)
    assert done.returncode == 0, done.stderr
    records = follow_records(out.read_bytes())
    assert pages(records) == site.expected([seed], sitemaps=site.sitemap_urls(base, k))
    orphans = [r for r in records if "/orphan" in r["url"]]
    assert len(orphans) == site.ORPHANS
    assert all(r["depth"] == 0 and r["referrer"].endswith(".xml.gz") for r in orphans)
    assert "sitemaps: 2 read, 5 URLs listed" in done.stderr
    assert "scope 3" in done.stderr  # localhost from the sitemap, 127.0.0.2 and .3 from p0


def test_follow_usage_errors_touch_nothing(
    servers: Servers, crawls: Crawls, tmp_path: Path
) -> None:
    seed = f"{servers.http}/site/{key(10)}/p0.html"
    out, journal = tmp_path / "out.jsonl", tmp_path / "out.jsonl.frontier"
    out.write_text("keep\n")
    journal.write_text("my own notes\n")
    cases = [
        (["--follow", "-o", str(out)], "--follow needs seeds"),
        ([seed, "--follow", "-d", "x=1"], "not for --follow"),
        ([seed, "--follow", "--dedup", "off"], "canonical"),
        ([seed, "--follow", "-o", str(out)], "is not a polyfetch frontier journal"),
        ([seed, "--follow", "--accept-regex", "("], "not a valid regular expression"),
    ]
    for argv, message in cases:
        done = crawls.run(*argv)
        assert done.returncode == 2, (argv, done.stderr)
        assert message in done.stderr and done.stderr.count("\n") == 1, done.stderr
    assert out.read_text() == "keep\n" and journal.read_text() == "my own notes\n"


def test_endless_pages_and_redirect_loops_end_within_the_limits(
    servers: Servers, crawls: Crawls, tmp_path: Path
) -> None:
    """An endless calendar stops at --max-pages and at --depth; a redirect loop across
    pages is one TooManyRedirects record and the crawl goes on."""
    k = key(10)
    cal, loop = f"{servers.http}/site/{k}/cal/0.html", f"{servers.http}/site/{k}/loop0.html"
    out = tmp_path / "pages.jsonl"
    done = crawls.run(cal, loop, "--follow", "--max-pages", "25", "-o", str(out), timeout=60)
    assert done.returncode == 0, done.stderr
    records = follow_records(out.read_bytes())
    assert len(records) == 25
    by_url = {r["url"]: r for r in records}
    assert by_url[loop]["error"] == "TooManyRedirects" and by_url[loop]["depth"] == 0
    assert "limit 1" in done.stderr  # the calendar's next day, found after the 25th page
    out = tmp_path / "depth.jsonl"
    done = crawls.run(cal, "--follow", "--depth", "12", "-o", str(out), timeout=60)
    assert done.returncode == 0, done.stderr
    depths = sorted(r["depth"] for r in follow_records(out.read_bytes()))
    assert depths == list(range(13)) and "depth 1" in done.stderr


def test_site_keys_choose_each_page_s_delay() -> None:
    """``fast`` keys answer at once, ``ms{D}`` keys after D ms (a latency-bound site for the
    benchmarks), others after their page's own few ms."""
    assert site.page("20-fastab", "p3.html", 80).delay_ms == 0
    assert {site.page("20-ms100x1f", site.href(i), 80).delay_ms for i in range(20)} == {100}
    assert site.page("20-ms99999x1f", "p0.html", 80).delay_ms == site.MAX_DELAY_MS
    assert len({site.page("20-c0ffee", site.href(i), 80).delay_ms for i in range(20)}) > 5
