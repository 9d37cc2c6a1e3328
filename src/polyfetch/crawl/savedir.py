"""``--save-dir``: bodies stored under names derived from the input URL, always inside DIR.

A name is ``SHARD/HASH_READABLE``: HASH is 20 hex digits (80 bits) of blake2b
of the input URL, so distinct URLs never share a file (a collision needs about
2**40 URLs) and the same URL always maps to the same file; SHARD is its first
two digits, so no directory grows past 1/256 of the crawl. READABLE is a
cosmetic, sanitized excerpt of host, path and query: only ``[A-Za-z0-9._-]``,
no runs of dots, at most 80 characters. Nothing the server says (redirects,
headers) takes part, and a name can hold no path separator and cannot start
with a dot, so it cannot leave DIR. Bodies are written to a temporary name and
renamed, so a file is either complete or absent; its record comes after it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_DOTS = re.compile(r"\.{2,}")
READABLE_MAX = 80
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)  # a planted symlink at the temporary name: refuse


def file_name(url: str) -> str:
    """The path, relative to DIR, where the body of ``url`` is stored (``/``-separated)."""
    digest = hashlib.blake2b(url.encode("utf-8", "surrogatepass"), digest_size=10).hexdigest()
    readable = readable_part(url)
    return f"{digest[:2]}/{digest}_{readable}" if readable else f"{digest[:2]}/{digest}"


def readable_part(url: str) -> str:
    """A short, safe excerpt of ``url`` for humans (uniqueness comes from the hash)."""
    text = _SCHEME.sub("", url)
    text = _DOTS.sub(".", _UNSAFE.sub("_", text))
    return text[:READABLE_MAX].strip("._-")


class SaveDir:
    """Writes bodies into one directory; see the module docstring."""

    def __init__(self, path: str) -> None:
        os.makedirs(path, exist_ok=True)
        self.root = os.path.realpath(path)
        self._shards: set[str] = set()
        self._tmp_suffix = f".part-{os.getpid()}"

    def save(self, url: str, body: bytes) -> str:
        """Store ``body`` for ``url``; return its path relative to the directory."""
        relative = file_name(url)
        shard, name = relative.split("/")
        shard_dir = os.path.join(self.root, shard)
        if shard not in self._shards:
            os.makedirs(shard_dir, exist_ok=True)
            # A shard that is a symlink (planted by someone else) must not take us elsewhere.
            if os.path.dirname(os.path.realpath(os.path.join(shard_dir, name))) != os.path.join(
                self.root, shard
            ):
                raise OSError(f"{shard_dir} is not a plain directory inside {self.root}")
            self._shards.add(shard)
        final = os.path.join(shard_dir, name)
        temp = os.path.join(shard_dir, f".{name}{self._tmp_suffix}")
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _NOFOLLOW, 0o644)
            with open(fd, "wb") as f:
                f.write(body)
            os.replace(temp, final)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
        return relative
