"""``polyfetch crawl --follow``: the crawl command over a `polyfetch.frontier.Frontier`.

Seeds come from the positional arguments, in order: URLs, files of URLs (or of
JSON request objects), ``-`` for stdin; their lines are numbered across all of
them. Every seed line gets a record, as in a plain crawl (an unusable line an
error record, a repeated one ``duplicate_of``); every page fetched from a link
gets one record with ``line`` null, ``depth`` and ``referrer``.

Resume. With ``-o FILE`` the frontier keeps its journal in ``FILE.frontier``
(`polyfetch.frontier.journal`): every URL it accepts or refuses is written
there, and flushed, before the record of the page that led to it. ``--resume``
reads the records of FILE (seeds by their line, other pages by their URL), then
the journal: what it names is known, and what FILE does not record yet is
fetched, in the order it was found. So whatever stopped the crawl - Ctrl+C,
SIGKILL, a full disk - the runs together record each page once. The journal is
removed when a crawl ends whole; a file of that name that is not a journal of
ours is never touched (a usage error).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING, Any

from polyfetch.crawl.inputs import InputCounts, InputLine, read_lines, sniff
from polyfetch.errors import FetchError
from polyfetch.frontier import Frontier
from polyfetch.frontier.journal import truncate_torn_tail
from polyfetch.frontier.seen import FingerprintSet, LineSet
from polyfetch.request import Request
from polyfetch.result import Result

if TYPE_CHECKING:
    import argparse

#: What the journal's first line says (a file without it is not ours).
JOURNAL_HEADER = b"M\tpolyfetch frontier 1\n"
#: The extra record fields of a --follow crawl, after Result.to_record()'s.
FIELDS = ("depth", "referrer", "robots")


class FollowError(Exception):
    """A usage error of --follow (one line, exit 2)."""


def check_options(args: argparse.Namespace) -> None:
    """Refuse what does not go with --follow, before anything is opened."""
    if args.dedup != "canonical":
        raise FollowError("--follow always dedups on canonical URLs (--dedup canonical)")
    if args.data or args.json_data:
        raise FollowError(
            "-d and --json are not for --follow: give a seed's body in a JSON Lines seed list"
        )
    if not args.inputs:
        raise FollowError("--follow needs seeds: URLs, files of URLs, or - for stdin")


def journal_path(args: argparse.Namespace) -> str | None:
    """Where the frontier's journal goes: beside -o FILE when FILE is (or will be) a regular
    file; None for stdout, /dev/null or a pipe (nothing to resume from)."""
    if not args.output or args.output == "-":
        return None
    if os.path.exists(args.output) and not os.path.isfile(args.output):
        return None
    return f"{args.output}.frontier"


def open_journal(path: str, resume: bool) -> bool:
    """Make ``path`` ready for the frontier: kept on --resume (True if it holds one), else
    started anew. A file there that is not a journal of ours is refused."""
    if os.path.exists(path):
        with open(path, "rb") as f:
            head = f.read(len(JOURNAL_HEADER))
        if head and head != JOURNAL_HEADER[: len(head)]:
            raise FollowError(f"{path} exists and is not a polyfetch frontier journal")
        if resume and head == JOURNAL_HEADER:
            return True
    with open(path, "wb") as f:
        f.write(JOURNAL_HEADER)
    return False


def make_frontier(args: argparse.Namespace, journal: str | None) -> Frontier:
    """The crawl's frontier, from the --follow options."""
    return Frontier(
        scope=args.scope,
        max_depth=args.depth,
        max_pages=args.max_pages,
        accept=args.accept_regex,
        reject=args.reject_regex,
        memory=args.frontier_memory,
        dedup_memory=args.dedup_memory * 2**20,
        record_refused=args.record_refused,
        journal=journal,
        hold=max(256, 4 * (args.concurrency or 64)),
    )


def restore(frontier: Frontier, output: str, fmt: str) -> tuple[LineSet, bool]:
    """Pick up an interrupted --follow crawl: what ``output`` records is done, the rest of
    the journal is queued again. The seed lines done, and whether the sitemaps were read."""
    done_lines = LineSet()
    done_urls = FingerprintSet(64 * 2**20)
    pages = 0
    for url, line, fetched in recorded(output, fmt):
        if line is not None:
            done_lines.add(line)
        else:
            done_urls.add(url)
        pages += fetched
    return done_lines, frontier.restore(done_urls, done_lines, pages)


def recorded(path: str, fmt: str) -> Iterator[tuple[str, int | None, bool]]:
    """(url, line or None, fetched) of each record of an earlier --follow output."""
    if not os.path.exists(path):
        return
    with open(path, "r+b") as f:
        truncate_torn_tail(f)
        f.seek(0)
        text = io.TextIOWrapper(f, encoding="utf-8", errors="surrogateescape", newline="")
        rows: Iterator[dict[str, Any]] = (
            csv.DictReader(text) if fmt == "csv" else (json.loads(raw) for raw in text)
        )
        try:
            for row in rows:
                line = row.get("line")
                attempts = row.get("attempts") or 0
                yield (
                    str(row["url"]),
                    int(line) if line not in (None, "") else None,
                    int(attempts) > 0,
                )
        except (ValueError, KeyError, TypeError) as exc:
            raise FollowError(
                f"cannot resume from {path}: not a polyfetch record ({exc})"
            ) from None
        finally:
            text.detach()


class Seeds:
    """The seed lines of every positional argument, numbered across all of them."""

    def __init__(self, args: argparse.Namespace, stdin: IO[Any], counts: InputCounts) -> None:
        self._args = args
        self._stdin = stdin
        self.counts = counts

    def lines(self) -> Iterator[InputLine]:
        """Every seed line, lazily (files are opened as they come, one at a time)."""
        number = 0
        for source in self._args.inputs:
            if source != "-" and "://" in source:
                number += 1
                self.counts.lines = number
                yield InputLine(number, source)
                continue
            with self._open(source) as stream:
                for line in self._read(stream):
                    yield line._replace(number=number + line.number)
                number = self.counts.lines

    @contextlib.contextmanager
    def _open(self, source: str) -> Iterator[IO[Any]]:
        if source == "-":
            yield getattr(self._stdin, "buffer", self._stdin)
            return
        try:
            stream = open(source, "rb")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise FollowError(f"cannot read {source}: {exc.strerror or exc}") from None
        with stream:
            yield stream

    def _read(self, stream: IO[Any]) -> Iterator[InputLine]:
        before = self.counts.lines
        counts = InputCounts()
        jsonl, replay = sniff(stream)
        if jsonl:
            from polyfetch.crawl.jsonl import read_requests

            lines = read_requests(stream, counts, replay)
        else:
            lines = read_lines(stream, counts, replay)
        for line in lines:
            self.counts.lines = before + counts.lines
            yield line
        self.counts.lines = before + counts.lines
        self.counts.skipped_blank += counts.skipped_blank


def seed(frontier: Frontier, line: InputLine) -> Result | None:
    """Give one seed line to the frontier; the record it needs now, if any (a line that is
    no URL, or a duplicate of an earlier line)."""
    if line.reject is not None:
        return _line_record(line, error=line.reject)
    request = line.request
    meta: dict[str, Any] = {"line": line.number}
    if request is not None and request.meta is not None:
        meta["meta"] = request.meta
    item = Request(line.url, meta=meta) if request is None else _with_meta(request, meta)
    why = frontier.seed(item, line.number)
    if why is None or why == line.number:  # queued (or already, from the journal)
        return None
    if isinstance(why, FetchError):
        return _line_record(line, error=why.message, kind=why.kind)
    return _line_record(line, duplicate_of=why or None)


def _with_meta(request: Request, meta: dict[str, Any]) -> Request:
    from dataclasses import replace

    return replace(request, meta=meta)


def _line_record(
    line: InputLine,
    *,
    error: str | None = None,
    kind: str | None = None,
    duplicate_of: int | None = None,
) -> Result:
    """A seed line's record made here: its `Result` carries the line in ``meta``."""
    meta = {"line": line.number, "reject": error, "kind": kind or line.kind, "dup": duplicate_of}
    return Result(url=line.url, index=-1, meta=meta, depth=0)


def line_of(result: Result) -> InputLine | None:
    """The seed line of a --follow record (None: a page found by a link)."""
    meta = result.meta
    if not isinstance(meta, dict) or "line" not in meta:
        return None
    return InputLine(
        meta["line"],
        result.url,
        meta.get("reject"),
        meta.get("dup"),
        None,
        meta.get("kind") or "InvalidURL",
    )


def user_meta(result: Result) -> Any:
    """The meta a JSON Lines seed gave (the record's ``meta``), or None."""
    meta = result.meta
    return meta.get("meta") if isinstance(meta, dict) else None
