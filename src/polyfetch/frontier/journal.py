"""The frontier's file: where waiting URLs spill past memory, and what ``--resume`` reads.

One line per event, tab-separated (a canonical URL holds no tab or line break):

* ``E  n  depth  line  url  referrer``: entry ``n`` joined the frontier (``line``: the
  input line of a seed, empty for a discovered URL; ``referrer`` empty for a seed);
* ``J  n  depth  line  request  referrer``: the same for a `polyfetch.Request`, as the JSON
  object of a JSON Lines input line (`polyfetch.crawl.jsonl`); in a private spill file
  (no ``--resume`` reads it) any `Request`, pickled in base64;
* ``X  reason  url``: a discovered URL refused (out of scope, too deep, past the page
  limit, not a URL), kept so that it is counted and refused once;
* ``S  url``: a URL known without being an entry (a redirect's target);
* ``M  sitemaps``: the sitemaps were read whole.

A journal that ``--resume`` may read (``keep=True``) gets every event; a private spill file
gets only the entries that did not fit in memory. Entries are read back in the order
they were written, from a byte offset, in batches (`read_entries`). Every line is whole
when `flush` returns; a line torn by a kill is cut off by `truncate_torn_tail` first.
"""

from __future__ import annotations

import base64
import json
import os
import pickle
import tempfile
from collections.abc import Callable, Iterator
from typing import IO, Any

from polyfetch.request import Request


class Entry:
    """One URL (or `Request`) of the frontier: its number, how deep, from where."""

    __slots__ = ("depth", "item", "line", "n", "referrer")

    def __init__(
        self, n: int, item: str | Request, depth: int, referrer: str | None, line: int | None
    ) -> None:
        self.n = n
        self.item = item
        self.depth = depth
        self.referrer = referrer
        self.line = line

    @property
    def url(self) -> str:
        item = self.item
        return item if isinstance(item, str) else item.url

    def __repr__(self) -> str:
        return f"<Entry {self.n} depth={self.depth} {self.url!r}>"


def request_to_json(req: Request) -> dict[str, Any]:
    """A `Request` as a JSON Lines input object (its fields that are not None)."""
    fields = (
        "url", "method", "headers", "params", "data", "json", "timeout", "retries",
        "max_bytes", "max_redirects", "retry_methods", "meta",
    )  # fmt: skip
    out: dict[str, Any] = {}
    for name in fields:
        value = getattr(req, name)
        if value is None:
            continue
        if isinstance(value, bytes):
            value = value.decode("utf-8")  # JSON Lines data is text
        elif isinstance(value, tuple):
            value = list(value)
        out[name] = value
    return out


class Journal:
    """The append-only file of one frontier (see the module docstring)."""

    def __init__(self, path: str | None = None, *, keep: bool, tmpdir: str | None = None) -> None:
        """``path``: the journal of a resumable crawl, appended to; None: a private spill
        file, made in ``tmpdir`` the first time something spills, gone when closed."""
        self.keep = keep
        self.path = path
        self._tmpdir = tmpdir
        self._file: IO[bytes] | None = None
        self._dirty = False
        #: bytes in the file, what `write_entry` and the others added included
        self.size = 0
        if path is not None:
            self._file = open(path, "a+b")  # noqa: SIM115 - closed in close()
            self.size = self._file.seek(0, os.SEEK_END)

    def _writer(self) -> IO[bytes]:
        if self._file is None:
            # private: unlinked at once, so it is gone with the process however it ends
            self._file = tempfile.TemporaryFile(prefix="polyfetch-frontier-", dir=self._tmpdir)  # noqa: SIM115
        return self._file

    def tell(self) -> int:
        """The byte offset the next line will be written at."""
        f = self._writer()
        return f.seek(0, os.SEEK_END)

    def write_entry(self, entry: Entry) -> None:
        """Append one entry."""
        item = entry.item
        line = "" if entry.line is None else str(entry.line)
        referrer = entry.referrer or ""
        if isinstance(item, str):
            text = f"E\t{entry.n}\t{entry.depth}\t{line}\t{item}\t{referrer}\n"
        elif self.keep:
            request = json.dumps(request_to_json(item), ensure_ascii=False, separators=(",", ":"))
            text = f"J\t{entry.n}\t{entry.depth}\t{line}\t{request}\t{referrer}\n"
        else:
            pickled = base64.b64encode(pickle.dumps(item, pickle.HIGHEST_PROTOCOL)).decode()
            text = f"P\t{entry.n}\t{entry.depth}\t{line}\t{pickled}\t{referrer}\n"
        self._write(text)

    def write_refused(self, reason: str, url: str) -> None:
        """Append a refused URL (journals only)."""
        self._write(f"X\t{reason}\t{url}\n")

    def write_seen(self, url: str) -> None:
        """Append a URL known without being an entry (journals only)."""
        self._write(f"S\t{url}\n")

    def write_mark(self, mark: str) -> None:
        """Append a marker (journals only)."""
        self._write(f"M\t{mark}\n")

    def _write(self, text: str) -> None:
        data = text.encode("utf-8", "surrogateescape")
        self._writer().write(data)
        self.size += len(data)
        self._dirty = True

    def flush(self) -> None:
        """Make every line written so far whole in the file (the OS has it: a kill of this
        process cannot tear it)."""
        if self._dirty and self._file is not None:
            self._file.flush()
            self._dirty = False

    def read_entries(
        self, offset: int, limit: int, skip: Callable[[Entry], bool] | None = None
    ) -> tuple[list[Entry], int | None]:
        """Up to ``limit`` entries from byte ``offset`` on (but those ``skip`` says), and the
        offset to read on from (None: the end was reached).

        Reads with ``pread``, which leaves the file's position alone: the writer goes on
        appending where it was."""
        self.flush()
        fd = self._writer().fileno()
        entries: list[Entry] = []
        rest = b""
        while len(entries) < limit:
            chunk = os.pread(fd, 1 << 16, offset + len(rest))
            if not chunk:
                return entries, None  # a line is whole once flushed: rest is empty here
            block = rest + chunk
            start = 0
            while len(entries) < limit:
                end = block.find(b"\n", start)
                if end == -1:
                    break
                entry = self.parse(block[start : end + 1])
                start = end + 1
                if entry is not None and (skip is None or not skip(entry)):
                    entries.append(entry)
            offset += start
            rest = block[start:]
        return entries, offset

    def parse(self, raw: bytes) -> Entry | None:
        """The entry of one line, or None for a line of another kind."""
        kind = raw[:1]
        if kind not in (b"E", b"J", b"P"):
            return None
        _, n, depth, line, what, referrer = raw[:-1].decode("utf-8", "surrogateescape").split("\t")
        item: str | Request
        if kind == b"E":
            item = what
        elif kind == b"J":
            item = Request(**json.loads(what))
        else:
            if self.keep:
                raise ValueError("a pickled entry in a journal")  # never load pickles from one
            item = pickle.loads(base64.b64decode(what))
        return Entry(int(n), item, int(depth), referrer or None, int(line) if line else None)

    def close(self) -> None:
        """Close the file (a private spill file is gone with it)."""
        if self._file is not None:
            self._file.close()
        self._file = None


def lines(path: str) -> Iterator[bytes]:
    """Every whole line of a journal, after cutting a torn last line off (for ``--resume``)."""
    with open(path, "r+b") as f:
        truncate_torn_tail(f)
        f.seek(0)
        yield from f


def truncate_torn_tail(f: IO[bytes]) -> None:
    """Cut off what follows the last line break of ``f`` (half a line left by a kill)."""
    end = f.seek(0, os.SEEK_END)
    pos = end
    while pos > 0:
        step = min(pos, 1 << 16)
        f.seek(pos - step)
        chunk = f.read(step)
        cut = chunk.rfind(b"\n")
        if cut != -1:
            keep = pos - step + cut + 1
            break
        pos -= step
    else:
        keep = 0
    if keep != end:
        f.truncate(keep)
