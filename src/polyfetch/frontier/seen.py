"""Bounded-memory tables for the crawl: URLs already seen (dedup, resume) and line numbers.

`FingerprintSet` keeps a 64-bit blake2b fingerprint of each key, with a 64-bit
value (the line that first had the key), in an open-addressing table (linear
probing, load <= 1/2) stored as a flat array of uint64 pairs: 32 to 64 bytes
per key, against about 150 for a Python dict of digests.
While the table fits in ``memory`` bytes it lives in a bytearray; past that it
is rebuilt in an unlinked temporary file mapped with mmap, so that the kernel
may page it out instead of the process growing without bound. It is exact
except for fingerprint collisions: among N distinct keys, the chance that any
two share a fingerprint is about N**2 / 2**65 (3e-6 for N = 10 million).

Growing is incremental: the table doubles into a new one and every `add`
copies a few slots of the old one across, so no single call pauses the fetch
loop for seconds (with gevent and the greenlet hub, such a pause would stall
every request in flight). Until the copy is done, lookups look in both.
"""

from __future__ import annotations

import hashlib
import mmap
import tempfile
from typing import IO

_EMPTY = 0  # a free slot; a fingerprint of 0 is stored as 1
_FIRST_SLOTS = 1 << 16
#: Old slots copied per add while growing: the copy (2**k slots) must end before the new
#: table (2**(k+1) slots, 2**(k-1) free places left) fills, i.e. at least 2 per add.
_COPY_PER_ADD = 8


def fingerprint(key: str) -> int:
    """The 64-bit fingerprint of ``key`` (never 0)."""
    data = key.encode("utf-8", "surrogatepass")
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little") or 1


# A table of n slots is 2n uint64: slot i holds its fingerprint at 2i and its value at 2i+1.


def _find(table: memoryview, fp: int) -> int | None:
    """The value stored with ``fp``, or None."""
    mask = len(table) // 2 - 1
    i = fp & mask
    while True:
        value = table[2 * i]
        if value == _EMPTY:
            return None
        if value == fp:
            return int(table[2 * i + 1])
        i = (i + 1) & mask


def _place(table: memoryview, fp: int, value: int) -> None:
    mask = len(table) // 2 - 1
    i = fp & mask
    while table[2 * i] != _EMPTY:
        i = (i + 1) & mask
    table[2 * i] = fp
    table[2 * i + 1] = value


class FingerprintSet:
    """An exact-but-for-collisions map of strings to numbers in 32-64 bytes per key; see the
    module doc."""

    def __init__(self, memory: int = 64 * 2**20, tmpdir: str | None = None) -> None:
        self._memory = memory
        self._tmpdir = tmpdir
        self._storage: tuple[IO[bytes], mmap.mmap] | None = None
        self._table = self._allocate(_FIRST_SLOTS)
        self._used = 0  # occupied slots of _table
        self._count = 0  # distinct keys
        self._old: memoryview | None = None  # the table being copied into _table
        self._old_storage: tuple[IO[bytes], mmap.mmap] | None = None
        self._copied = 0  # slots of _old copied so far

    def __len__(self) -> int:
        return self._count

    @property
    def on_disk(self) -> bool:
        """Whether the table has moved to a memory-mapped temporary file."""
        return self._storage is not None

    def __contains__(self, key: str) -> bool:
        fp = fingerprint(key)
        if _find(self._table, fp) is not None:
            return True
        return self._old is not None and _find(self._old, fp) is not None

    def add(self, key: str) -> bool:
        """Add ``key``; True if it was not there yet."""
        return self.first(key, 0) is None

    def first(self, key: str, value: int) -> int | None:
        """The value kept with ``key`` if it is there; else keep ``value`` with it: None."""
        fp = fingerprint(key)
        if self._old is not None:
            found = _find(self._old, fp)
            if found is not None:
                return found
            self._copy(_COPY_PER_ADD)
        table = self._table
        mask = len(table) // 2 - 1
        i = fp & mask
        while True:
            slot = table[2 * i]
            if slot == _EMPTY:
                table[2 * i] = fp
                table[2 * i + 1] = value
                self._used += 1
                self._count += 1
                if self._used * 4 > len(table):  # load 1/2 of len(table) // 2 slots
                    self._grow()
                return None
            if slot == fp:
                return int(table[2 * i + 1])
            i = (i + 1) & mask

    def _grow(self) -> None:
        if self._old is not None:  # cannot happen with _COPY_PER_ADD >= 2; be safe anyway
            self._copy(len(self._old) // 2)
        self._old, self._old_storage = self._table, self._storage
        self._table = self._allocate(len(self._old))  # twice the slots: 2 words each
        self._used = self._copied = 0

    def _copy(self, slots: int) -> None:
        old = self._old
        assert old is not None
        table, start = self._table, self._copied
        end = min(start + slots, len(old) // 2)
        for j in range(start, end):
            fp = old[2 * j]
            if fp != _EMPTY:
                _place(table, fp, old[2 * j + 1])
                self._used += 1
        self._copied = end
        if end == len(old) // 2:
            old.release()
            self._old = None
            _close(self._old_storage)
            self._old_storage = None

    def _allocate(self, slots: int) -> memoryview:
        """A zeroed table of ``slots`` pairs of uint64, in memory or in a mapped temporary file."""
        size = slots * 16
        if size <= self._memory:
            self._storage = None
            return memoryview(bytearray(size)).cast("Q")
        file = tempfile.TemporaryFile(prefix="polyfetch-seen-", dir=self._tmpdir)  # noqa: SIM115
        try:
            file.truncate(size)  # sparse: pages cost nothing until written
            mapped = mmap.mmap(file.fileno(), size)
        except BaseException:
            file.close()
            raise
        self._storage = (file, mapped)  # the previous one, if any, is _old_storage now
        return memoryview(mapped).cast("Q")

    def close(self) -> None:
        """Release the tables (and their temporary files)."""
        for view in (self._table, self._old):
            if view is not None:
                view.release()
        self._old = None
        _close(self._storage)
        _close(self._old_storage)
        self._storage = self._old_storage = None


def _close(storage: tuple[IO[bytes], mmap.mmap] | None) -> None:
    if storage is not None:
        storage[1].close()
        storage[0].close()


class LineSet:
    """A set of positive line numbers as a bitmap (one bit per line up to the largest)."""

    def __init__(self) -> None:
        self._bits = bytearray()

    def add(self, line: int) -> None:
        """Add line number ``line``."""
        byte = line >> 3
        if byte >= len(self._bits):
            self._bits.extend(bytes(max(byte + 1 - len(self._bits), len(self._bits))))
        self._bits[byte] |= 1 << (line & 7)

    def __contains__(self, line: int) -> bool:
        byte = line >> 3
        return byte < len(self._bits) and bool(self._bits[byte] & (1 << (line & 7)))
