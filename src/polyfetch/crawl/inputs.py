"""The URL list: read lazily, line by line, from a file or stdin; never loaded whole.

Every line that is not blank and not a ``#`` comment becomes an `InputLine`,
and every `InputLine` gets exactly one record. Lines the crawl cannot even hand
to the fetcher - longer than `MAX_LINE` bytes, or not UTF-8 - carry a
``reject`` reason, and duplicate lines name the line whose fetch they share
(``duplicate_of``); both go through the fetcher as a `NotFetched` item, which
the core answers at once without any IO: so they travel through the same
bounded window as everything else and keep their place in the accounting.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Any, NamedTuple

from polyfetch import _url
from polyfetch.crawl.seen import FingerprintSet, LineSet
from polyfetch.errors import FetchError

#: Longest line handed to the fetcher (the core refuses URLs over 64 Ki characters anyway).
MAX_LINE = 64 * 1024
_SHOWN = 200  # characters of an over-long line kept in its record


class InputLine(NamedTuple):
    """One URL line: its 1-based line number, its text (the record's ``url``, also the
    resume key), for lines that are not even tried, why, and for a duplicate, the line
    whose fetch it shares.

    A NamedTuple rather than a frozen dataclass: one is built per input line.
    """

    number: int
    url: str
    reject: str | None = None
    duplicate_of: int | None = None


def canonical(url: str) -> str:
    """The dedup key of a URL line: the normalised URL every backend would fetch (scheme and
    host lower-cased, default port dropped, fragment and dot segments removed,
    percent-encoding normalised: `polyfetch._url.parse`), or the line itself if it is none."""
    try:
        return _url.parse(url).url
    except FetchError:
        return url


class NotFetched:
    """Stands in for a line that is not fetched (rejected or a duplicate) in `Fetcher.map`:
    not a string, so the core answers it at once, with no IO; its record says why."""

    __slots__ = ("line",)

    def __init__(self, line: InputLine) -> None:
        self.line = line

    def __repr__(self) -> str:
        return f"<input line {self.line.number}, not fetched>"


@dataclass(slots=True)
class InputCounts:
    """What reading the input found, for the summary."""

    lines: int = 0  #: physical lines read
    skipped_blank: int = 0  #: blank lines and comments
    skipped_seen: int = 0  #: lines already recorded (--resume)


def read_lines(stream: IO[Any], counts: InputCounts) -> Iterator[InputLine]:
    """The URL lines of ``stream`` (binary or text), counting the others in ``counts``."""
    number = 0
    while True:
        raw = stream.readline(MAX_LINE + 1)
        if not raw:
            return
        number += 1
        counts.lines = number
        reject = None
        if len(raw) > MAX_LINE and raw[-1:] not in ("\n", b"\n"):
            text, reject = _overlong(stream, raw)
        elif isinstance(raw, bytes):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                # \xNN escapes: a plain string that survives JSON and CSV, so --resume finds it.
                text, reject = raw.decode("utf-8", "backslashreplace"), "line is not valid UTF-8"
        else:
            text = raw
        if number == 1:
            text = text.lstrip("\ufeff")
        text = text.strip()
        if not text or text.startswith("#"):
            counts.skipped_blank += 1
            continue
        yield InputLine(number, text, reject)


def _overlong(stream: IO[Any], head: bytes | str) -> tuple[str, str]:
    """Consume the rest of an over-long line; its record's url is a prefix plus a hash."""
    digest = hashlib.blake2b(digest_size=8)
    total = 0
    chunk = head
    while chunk:
        data = chunk.encode("utf-8", "surrogatepass") if isinstance(chunk, str) else chunk
        digest.update(data)
        total += len(data)
        if data.endswith(b"\n"):
            break
        chunk = stream.readline(1 << 16)
    text = head.decode("utf-8", "replace") if isinstance(head, bytes) else head
    shown = f"{text[:_SHOWN]}...[{total} bytes, blake2b {digest.hexdigest()}]"
    return shown, f"line longer than {MAX_LINE} bytes ({total} bytes)"


def select(
    lines: Iterator[InputLine],
    counts: InputCounts,
    *,
    seen: FingerprintSet | None,
    key: Callable[[str], str] = canonical,
    done_lines: LineSet | None,
    stop: Callable[[], bool],
) -> Iterator[InputLine]:
    """Drop lines already recorded (``done_lines``) and mark duplicates (``seen``: the line
    that first had the same ``key``); end early as soon as ``stop()`` is true."""
    while not stop():
        line = next(lines, None)
        if line is None:
            return
        if done_lines is not None and line.number in done_lines:
            counts.skipped_seen += 1
            continue
        if seen is not None and line.reject is None:
            first = seen.first(key(line.url), line.number)
            if first is not None:
                line = line._replace(duplicate_of=first)
        yield line


def count_lines(path: str, limit: int = 2**30) -> int | None:
    """Lines in a regular file of at most ``limit`` bytes (a quick newline count), else None."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    if not os.path.isfile(path) or st.st_size > limit:
        return None
    lines, last = 0, b"\n"
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            lines += chunk.count(b"\n")
            last = chunk[-1:]
    return lines + (last != b"\n")
