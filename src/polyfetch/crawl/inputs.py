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
from polyfetch.errors import FetchError
from polyfetch.frontier.seen import FingerprintSet, LineSet

#: Longest line handed to the fetcher (the core refuses URLs over 64 Ki characters anyway).
MAX_LINE = 64 * 1024
_SHOWN = 200  # characters of an over-long line kept in its record


class InputLine(NamedTuple):
    """One URL line: its 1-based line number, its text (the record's ``url``, also the
    resume key), for lines that are not even tried, why, and for a duplicate, the line
    whose fetch it shares. A JSON Lines input (`polyfetch.crawl.jsonl`) also gives the
    line's ``request`` (for a rejected line, only what carries its ``meta``, if any) and
    the error ``kind`` a rejected line's record gets.

    A NamedTuple rather than a frozen dataclass: one is built per input line.
    """

    number: int
    url: str
    reject: str | None = None
    duplicate_of: int | None = None
    request: Any = None
    kind: str = "InvalidURL"


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


def read_lines(
    stream: IO[Any], counts: InputCounts, replay: list[Any] | None = None
) -> Iterator[InputLine]:
    """The URL lines of ``stream`` (binary or text), counting the others in ``counts``;
    ``replay``: raw lines already read from it (by `sniff`), taken first."""
    number = 0
    pending = replay or []
    pending.reverse()
    while True:
        raw = pending.pop() if pending else stream.readline(MAX_LINE + 1)
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


#: Lines `sniff` reads at most, looking for the first that is not blank or a comment.
_SNIFF_LINES = 1000


def sniff(stream: IO[Any]) -> tuple[bool, list[Any]]:
    """Whether ``stream`` holds JSON Lines (its first line that is not blank or a ``#``
    comment starts with ``{``), and the raw lines read to decide, for `read_lines`' replay.
    Reads at most `_SNIFF_LINES` lines; an over-long line ends the look (its rest stays in
    ``stream``, where `read_lines` finds it)."""
    seen: list[Any] = []
    while len(seen) < _SNIFF_LINES:
        raw = stream.readline(MAX_LINE + 1)
        if not raw:
            break
        seen.append(raw)
        text = raw if isinstance(raw, str) else raw.decode("utf-8", "replace")
        if len(seen) == 1:
            text = text.lstrip("\ufeff")
        text = text.strip()
        overlong = len(raw) > MAX_LINE and raw[-1:] not in ("\n", b"\n")
        if overlong or (text and not text.startswith("#")):
            return text.startswith("{"), seen
    return False, seen


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
    line_key: Callable[[InputLine], str] | None = None,
    done_lines: LineSet | None,
    stop: Callable[[], bool],
) -> Iterator[InputLine]:
    """Drop lines already recorded (``done_lines``) and mark duplicates (``seen``: the line
    that first had the same ``key`` of its url); end early as soon as ``stop()`` is true.

    With ``line_key`` (JSON Lines: the key is the request's, not the url's), lines already
    recorded still enter ``seen`` as they go by, since the records do not hold the key."""
    while not stop():
        line = next(lines, None)
        if line is None:
            return
        if done_lines is not None and line.number in done_lines:
            counts.skipped_seen += 1
            if line_key is not None and seen is not None and line.reject is None:
                seen.first(line_key(line), line.number)
            continue
        if seen is not None and line.reject is None:
            first = seen.first(key(line.url) if line_key is None else line_key(line), line.number)
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
