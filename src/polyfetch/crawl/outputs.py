"""Records: built from a `Result`, written as JSON Lines or CSV, one whole line at a time.

Each record is encoded to one line first and then written and flushed in one
call, so whatever kills the process between two records leaves only whole lines
(a kill during one write of a very long line may still tear it; `read_recorded`
cuts a torn last line off before a ``--resume`` appends). CSV records end with
"\r\n"; fields other than the url (which cannot hold one) have their line breaks
replaced by spaces, so that a record never spans two physical lines.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import IO, Any

from polyfetch.crawl.inputs import InputLine
from polyfetch.frontier.journal import truncate_torn_tail
from polyfetch.result import Result

#: Fields of `Result.to_record()` left out: ``index`` means nothing outside one run.
_DROPPED = frozenset({"url", "index"})
_DROPPED_ONLY = tuple(_DROPPED - {"url"})
SAVE_FIELDS = ("file", "save_error")
#: The record's own fields beyond `Result.to_record()`'s, after ``url`` and ``line``.
LINE_FIELDS = ("duplicate_of",)


class OutputError(Exception):
    """The output file cannot be used (unreadable for --resume, not our format...)."""


def fields(save: bool) -> list[str]:
    """The record's keys, in order."""
    base = [k for k in Result(url="").to_record() if k not in _DROPPED]
    return ["url", "line", *base, *LINE_FIELDS, *(SAVE_FIELDS if save else ())]


def make_record(
    result: Result, line: InputLine, saved: tuple[str | None, str | None] | None
) -> dict[str, Any]:
    """The record of ``line``: `Result.to_record()` plus ``line`` (and ``file`` with --save-dir)."""
    record: dict[str, Any] = {"url": line.url, "line": line.number}
    record.update(result.to_record())  # keeps "url" and "line" first
    record["url"] = line.url
    for key in _DROPPED_ONLY:
        record.pop(key, None)
    if line.reject is not None:
        record.update(final_url=None, error=line.kind, error_message=line.reject)
    elif line.duplicate_of is not None:  # not fetched: the record of that line has the fetch
        record.update(final_url=None, error=None, error_message=None)
    if line.request is not None and "meta" not in record and line.request.meta is not None:
        record["meta"] = line.request.meta  # a JSON Lines line not fetched keeps its meta
    record["duplicate_of"] = line.duplicate_of
    if saved is not None:
        record["file"], record["save_error"] = saved
    return record


class LineWriter:
    """Writes whole lines to a binary or text stream, flushing after each."""

    def __init__(self, stream: IO[Any]) -> None:
        self._stream = stream
        self._binary = not isinstance(stream, io.TextIOBase)

    def write(self, line: str) -> None:
        """Write ``line`` (which ends with a newline) and flush it."""
        if self._binary:
            self._stream.write(line.encode("utf-8", "backslashreplace"))
        else:
            self._stream.write(line)
        self._stream.flush()


class JsonlWriter:
    """One JSON object per line."""

    def __init__(self, out: LineWriter) -> None:
        self._out = out
        # One encoder for the whole run; default=repr: a processor may return anything.
        self._encode = json.JSONEncoder(ensure_ascii=False, default=repr).encode

    def write(self, record: dict[str, Any]) -> None:
        """Write one record."""
        self._out.write(self._encode(record) + "\n")


class CsvWriter:
    """CSV with a header line; ``processed`` is written as JSON."""

    def __init__(self, out: LineWriter, names: list[str], *, header: bool) -> None:
        self._out = out
        self._names = names
        self._buf = io.StringIO()
        # "\r\n" (RFC 4180) also makes the writer quote a field holding a lone "\r".
        self._csv = csv.writer(self._buf, lineterminator="\r\n")
        if header:
            self._line(names)

    def _line(self, values: list[Any]) -> None:
        self._buf.seek(0)
        self._buf.truncate()
        self._csv.writerow(values)
        self._out.write(self._buf.getvalue())

    def write(self, record: dict[str, Any]) -> None:
        """Write one record."""
        self._line([_cell(record.get(name), name == "url") for name in self._names])


def _cell(value: Any, exact: bool) -> Any:
    if value is None:
        return ""
    if isinstance(value, str):
        # A url holds no "\n" (lines are split on it) and must stay exact for --resume.
        return value if exact else value.replace("\r", " ").replace("\n", " ")
    if isinstance(value, bool | int | float):
        return value
    return json.dumps(value, ensure_ascii=False, default=repr)


def read_recorded(path: str, fmt: str) -> Iterator[tuple[str, int, int | None]]:
    """(url, line, duplicate_of) of every record in an earlier output; cuts a torn last line
    off first.

    Raises `OutputError` when a complete line is not one of our records.
    """
    with open(path, "r+b") as f:
        truncate_torn_tail(f)
        f.seek(0)
        text = io.TextIOWrapper(f, encoding="utf-8", errors="surrogateescape", newline="")
        if fmt == "csv":
            yield from _csv_records(path, text)
        else:
            yield from _jsonl_records(path, text)
        text.detach()


def _jsonl_records(path: str, text: IO[str]) -> Iterator[tuple[str, int, int | None]]:
    for n, raw in enumerate(text, 1):
        try:
            record = json.loads(raw)
            first = record.get("duplicate_of")
            yield str(record["url"]), int(record["line"]), None if first is None else int(first)
        except (ValueError, KeyError, TypeError):
            raise OutputError(
                f"cannot resume: line {n} of {path} is not a polyfetch JSON record"
                " (written with --format csv?)"
            ) from None


def _csv_records(path: str, text: IO[str]) -> Iterator[tuple[str, int, int | None]]:
    reader = csv.reader(text)
    header = next(reader, None)
    if header is None:
        return
    if "url" not in header or "line" not in header:
        raise OutputError(f"cannot resume: {path} has no polyfetch CSV header")
    url_at, line_at = header.index("url"), header.index("line")
    dup_at = header.index("duplicate_of") if "duplicate_of" in header else None
    for row in reader:
        try:
            first = row[dup_at] if dup_at is not None else ""
            yield row[url_at], int(row[line_at]), int(first) if first else None
        except (IndexError, ValueError):
            raise OutputError(
                f"cannot resume: line {reader.line_num} of {path} is not a polyfetch CSV record"
            ) from None
