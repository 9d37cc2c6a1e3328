"""Response bodies: size limits on the wire and after decompression, checked while reading.

Every backend reads raw (still encoded) bytes and feeds them here, so the
limits, gzip/deflate decoding and its errors are the same on every backend.
Decompression asks zlib for at most the bytes still allowed plus one, so a
decompression bomb ends as `TooLarge` having used at most ``max_bytes`` of memory.
"""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from polyfetch.errors import ProtocolError, SaveError, TooLarge

if TYPE_CHECKING:
    from polyfetch._plan import Send
    from polyfetch.settings import Settings

_GZIP_MAGIC = b"\x1f\x8b"
#: The most zlib is asked to decompress in one call (its max_length is a C ssize_t).
_MAX_CHUNK = 1 << 30
#: Statuses whose responses have no body, whatever Content-Length says (RFC 9110 6.4.1).
_NO_BODY = frozenset({204, 304})


@dataclass(frozen=True, slots=True)
class Store:
    """Where a request's body goes when it is not the fetcher's default (memory, up to the
    fetcher's ``max_bytes``): memory up to ``max_bytes``, or, with ``path``, a file of at
    most ``max_bytes`` written at ``part_path`` (the core renames it once the item is done)."""

    max_bytes: int
    path: str | None = None
    #: Keep the body in memory (when ``path`` is None); None: as the fetcher's keep_body says.
    keep: bool | None = None

    @property
    def part_path(self) -> str:
        """Where the body is streamed until the item is done (then renamed or removed)."""
        assert self.path is not None
        return f"{self.path}.part"


def response_body(
    settings: Settings,
    send: Send,
    status: int,
    content_encoding: str | None,
    content_length: str | int | None,
) -> Body:
    """The `Body` for a response: HEAD, 204 and 304 announce a length they never send, so
    their Content-Length is not the body's size (the one place this rule lives)."""
    length: int | None = None
    if send.method != "HEAD" and status not in _NO_BODY:
        if isinstance(content_length, int):
            length = content_length
        elif content_length and content_length.isdigit():
            length = int(content_length)
    store = send.store
    if store is None:
        return Body(
            settings.max_bytes,
            content_encoding=content_encoding,
            content_length=length,
            keep=settings.keep_body,
        )
    return Body(
        store.max_bytes,
        content_encoding=content_encoding,
        content_length=length,
        keep=(settings.keep_body if store.keep is None else store.keep) and store.path is None,
        sink_path=store.path and store.part_path,
    )


try:
    import brotli
except ImportError:  # then br is neither advertised nor decoded
    brotli = None
try:  # the standard library's from 3.14 (PEP 784), its backport before
    from compression import zstd  # type: ignore[import-not-found]
except ImportError:
    try:
        from backports import zstd
    except ImportError:  # then zstd is neither advertised nor decoded
        zstd = None

#: What Accept-Encoding offers: only what `Body` can decode.
ACCEPT_ENCODING = ", ".join(
    ["gzip", "deflate"] + (["br"] if brotli is not None else []) + (["zstd"] if zstd else [])
)
_ZLIB = ("gzip", "x-gzip", "deflate")


class Body:
    """Collects one response body as it arrives; `feed` raises as soon as a limit is crossed."""

    __slots__ = (
        "_br",
        "_chunks",
        "_d",
        "_deflate_probe",
        "_encoding",
        "_keep",
        "_limit",
        "_sink",
        "_zs",
        "size",
        "wire_size",
    )

    def __init__(
        self,
        max_bytes: int,
        *,
        content_encoding: str | None = None,
        content_length: int | None = None,
        keep: bool = True,
        sink_path: str | None = None,
    ) -> None:
        if content_length is not None and content_length > max_bytes:
            raise TooLarge(f"Content-Length {content_length} exceeds max_bytes={max_bytes}")
        self._limit = max_bytes
        self._keep = keep
        #: With a path, decoded bytes go to that file, not memory.
        self._sink = _Sink(sink_path) if sink_path is not None else None
        self._chunks: list[bytes] = []
        self.size = 0  #: decoded bytes so far
        self.wire_size = 0  #: bytes received so far
        self._deflate_probe: bytes | None = None
        if content_encoding is None:  # most bodies: nothing to decode, nothing to look up
            self._encoding = self._br = self._zs = self._d = None
            return
        encoding = content_encoding.strip().lower()
        #: None: the body is as sent. An encoding we cannot decode ("zstd", "gzip, br") is
        #: kept, and a body in it is a ProtocolError: raw bytes must never pass as the page.
        self._encoding = encoding if encoding not in ("", "identity") else None
        self._br = brotli.Decompressor() if encoding == "br" and brotli is not None else None
        self._zs = zstd.ZstdDecompressor() if encoding == "zstd" and zstd is not None else None
        self._d = self._new_decoder()
        if self._encoding == "deflate":
            self._deflate_probe = b""

    def _new_decoder(self) -> zlib._Decompress | None:
        if self._encoding not in _ZLIB:
            return None
        if self._encoding == "deflate":
            return zlib.decompressobj()
        return zlib.decompressobj(16 + zlib.MAX_WBITS)

    def feed(self, data: bytes) -> None:
        """Take the next bytes from the wire."""
        if not data:
            return
        self.wire_size += len(data)
        if self.wire_size > self._limit:
            raise TooLarge(f"body exceeds max_bytes={self._limit} on the wire")
        if self._d is not None:
            try:
                self._decode(data)
            except zlib.error as exc:
                raise ProtocolError(f"invalid {self._encoding} body: {exc}") from None
        elif self._br is not None:
            self._unbrotli(data)
        elif self._zs is not None:
            self._unzstd(data)
        elif self._encoding is None:
            self._emit(data)
        else:
            raise ProtocolError(f"body in Content-Encoding {self._encoding!r}, not decodable here")

    def _unbrotli(self, data: bytes) -> None:
        br = self._br
        assert br is not None
        try:
            while True:  # at most what is still allowed, plus one byte to see the limit crossed
                out = br.process(data, output_buffer_limit=self._limit - self.size + 1)
                self._emit(out)
                if br.can_accept_more_data() or not out:
                    return
                data = b""  # more output is pending: drain it
        except brotli.error as exc:
            raise ProtocolError(f"invalid br body: {exc}") from None

    def _unzstd(self, data: bytes) -> None:
        d = self._zs
        assert d is not None
        try:
            while True:  # at most what is still allowed, plus one byte to see the limit crossed
                self._emit(d.decompress(data, min(self._limit - self.size + 1, _MAX_CHUNK)))
                data = b""
                if d.eof:
                    if not d.unused_data:
                        return
                    data = d.unused_data  # another frame follows
                    d = self._zs = zstd.ZstdDecompressor()
                elif d.needs_input:
                    return
        except zstd.ZstdError as exc:
            raise ProtocolError(f"invalid zstd body: {exc}") from None

    def _decode(self, data: bytes) -> None:
        if self._deflate_probe is not None:
            # "deflate" is zlib-wrapped by the RFC and raw by many servers: try zlib first.
            self._deflate_probe += data
            try:
                self._inflate(data)
            except zlib.error:
                self._d = zlib.decompressobj(-zlib.MAX_WBITS)
                data, self._deflate_probe = self._deflate_probe, None
                self._inflate(data)
            else:
                if self.size or len(self._deflate_probe) > 64:
                    self._deflate_probe = None
            return
        self._inflate(data)

    def _inflate(self, data: bytes) -> None:
        d = self._d
        assert d is not None
        while data:
            # at most what is still allowed, plus one byte to see the limit crossed
            self._emit(d.decompress(data, min(self._limit - self.size + 1, _MAX_CHUNK)))
            data = d.unconsumed_tail
            if not data and d.eof and d.unused_data:
                rest = d.unused_data
                if not rest.startswith(_GZIP_MAGIC) or self._encoding == "deflate":
                    return  # trailing garbage after the stream: ignored, as browsers do
                d = self._d = self._new_decoder()  # another gzip member follows
                assert d is not None
                data = rest

    def _emit(self, data: bytes) -> None:
        if not data:
            return
        self.size += len(data)
        if self.size > self._limit:
            raise TooLarge(f"decoded body exceeds max_bytes={self._limit}")
        if self._sink is not None:
            self._sink.write(data)
        elif self._keep:
            self._chunks.append(data)

    def finish(self) -> bytes | None:
        """The decoded body (None when not kept); raise if the encoded stream was cut short."""
        if self._d is not None and self.wire_size and not self._d.eof:
            raise ProtocolError(f"truncated {self._encoding} body")
        if self._br is not None and self.wire_size and not self._br.is_finished():
            raise ProtocolError("truncated br body")
        if self._zs is not None and self.wire_size and not self._zs.eof:
            raise ProtocolError("truncated zstd body")
        if self._sink is not None:
            self._sink.close()
        if not self._keep:
            return None
        return b"".join(self._chunks)


class _Sink:
    """The file a saved body is streamed to: a bare descriptor, written unbuffered, so that
    a `Body` left behind by a failed attempt (a traceback may hold it) has nothing to flush
    into the file the next attempt writes, and is closed when that `Body` goes."""

    __slots__ = ("fd", "path")

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd: int | None = None
        try:
            self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        except OSError as exc:
            raise SaveError(f"cannot write {path}: {exc.strerror or exc}") from None

    def write(self, data: bytes) -> None:
        assert self.fd is not None
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self.fd, view) :]
        except OSError as exc:
            raise SaveError(f"cannot write {self.path}: {exc.strerror or exc}") from None

    def close(self) -> None:
        fd, self.fd = self.fd, None
        if fd is not None:
            os.close(fd)

    def __del__(self) -> None:
        self.close()
