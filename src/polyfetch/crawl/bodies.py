"""``polyfetch get --body``: bodies (``-i``: after the status line and headers) in input order.

Results arrive in completion order; a body waits here until every earlier URL has been
written, so ``polyfetch get A B -O -`` prints A's body then B's, as curl does. What waits is
bounded by the fetcher's window. A failed fetch writes nothing to the body stream and one
line to stderr.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import IO, Any, TextIO

from polyfetch.result import Result


class Bodies:
    """Writes each result's body to ``out`` in input order (``index`` 0, 1, ...)."""

    def __init__(self, out: IO[bytes], stderr: TextIO, *, headers: bool, prog: str) -> None:
        self._out, self._stderr, self._headers, self._prog = out, stderr, headers, prog
        self._next = 0
        self._waiting: dict[int, Result] = {}

    def add(self, result: Result) -> None:
        """Take one result; write it and every later one already here whose turn has come."""
        self._waiting[result.index] = result
        while self._next in self._waiting:
            self._write(self._waiting.pop(self._next))
            self._next += 1

    def _write(self, r: Result) -> None:
        if r.error is not None:
            self._stderr.write(f"{self._prog}: {r.url}: {r.error.kind}: {r.error.message}\n")
            return
        if self._headers:
            try:
                reason = HTTPStatus(r.status or 0).phrase
            except ValueError:
                reason = ""
            head = [f"HTTP/{r.http_version or '1.1'} {r.status} {reason}".rstrip()]
            head += [f"{name}: {value}" for name, value in r.header_list]
            self._out.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1", "replace"))
        self._out.write(r.body or b"")
        self._out.flush()


def binary(stream: Any) -> IO[bytes]:
    """The binary side of a text stream (stdout), or the stream itself."""
    return getattr(stream, "buffer", stream)  # type: ignore[no-any-return]
