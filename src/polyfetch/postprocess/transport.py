"""Moving pages and processed values across the process boundary in small messages.

Under gevent's full monkey patching, a `ProcessPoolExecutor` whose tasks send
*and* receive messages of ~32 KB or more deadlocks: its feeder and manager
threads are greenlets on one OS thread, the feeder blocks that thread in an
unpatched ``os.write`` on a full pipe, and the worker waits to send its result
to a reader that can never run (gevent#936, CONCURRENCY-NOTES.md). Pages of
100 KB are the normal case, so no message here may be large:

- a `Result` travels pickled, inline; a body larger than `THRESHOLD` does not.
  A worker of the owned pool gets it copied into its `Segment`, shared memory
  it maps from the spool: a page costs a copy and no system call. A bigger
  body, or one for a caller's executor, is written raw into a file of the
  spool and only its path is sent (`Spool.pack` in the parent, `unpack` in the
  worker);
- the worker pickles the processor's value itself (an unpicklable value becomes
  that item's error, not a broken pool) and sends it inline or, when larger
  than `THRESHOLD` (`REPLY_INLINE` in the owned pool, whose pipes have room
  for it), as a file whose path the parent chose (`encode_reply`,
  `decode_reply`).

The spool lives in ``/dev/shm`` when it exists (memory, not disk; it holds at
most the bodies the fetcher's window already keeps in memory) and is removed by
`Spool.close`. Files are named after the item (and the dispatch, for
values), and the engine removes every file an item may have left when it is
done with it, whatever became of it. A process killed before it could close its
spool leaves it behind; the next spool anyone makes removes it (`Spool`).
"""

from __future__ import annotations

import contextlib
import os
import pickle
import shutil
import tempfile
from dataclasses import fields as dataclass_fields
from operator import attrgetter
from typing import Any

try:
    import fcntl
except ImportError:  # Windows: the pid in the name has to do
    fcntl = None  # type: ignore[assignment]

#: Messages above this size go through a file (gevent's deadlock starts near 32 KB).
THRESHOLD = 16 * 1024
#: Replies up to this size travel inline in the owned pool, whose pipes hold every reply
#: a worker can owe at once (`PIPE_BUFFER`): a worker never blocks writing one.
REPLY_INLINE = 64 * 1024
#: The socket buffer each end of an owned worker's pipe asks for: room for `_pool.DEPTH`
#: inline replies and requests with their headers, so that no write to it ever blocks.
PIPE_BUFFER = 512 * 1024
#: Bytes of a body place in a worker's `Segment`; bigger bodies go through files.
PLACE = 1024 * 1024
#: What a worker of the owned pool says once it is ready for pages.
READY = b"r"
PROTOCOL = pickle.HIGHEST_PROTOCOL

#: What a worker gets: the pickled `Result` (or the path of a file holding it) and where
#: its body is when it is not in the pickle: the path of a file holding it raw, or
#: ``(offset, length)`` in the worker's shared segment (`Segment`).
Payload = tuple[bytes | str, str | tuple[int, int] | None]
#: A reply from a worker: ("ok", pickled value), ("file", path) or ("error", message).
Reply = tuple[str, Any]


class Spool:
    """A private directory (mode 0700) for payloads too big for a pipe.

    A new spool first removes the ones left by processes that were killed
    before they could (SIGKILL, SIGTERM, the OOM killer). Its owner holds an
    exclusive `flock` on the directory for as long as it lives, and the kernel
    drops it whatever ends the process, so a spool whose lock can be taken is
    dead. A pid alone would not tell: pids are reused (a dead spool whose pid
    now runs something else would stay), and a process in another pid
    namespace sharing ``/dev/shm`` (containers of one pod) would look dead.
    The directory gets its ``.locked`` suffix only once locked, atomically by
    rename; a name without it (killed before the rename, or made by a version
    without locks) is judged by the pid in it, as before.
    """

    PREFIX = "polyfetch-pp-"
    LOCKED = ".locked"

    def __init__(self) -> None:
        shm = "/dev/shm"
        where = shm if os.path.isdir(shm) and os.access(shm, os.W_OK | os.X_OK) else None
        _sweep(where or tempfile.gettempdir(), self.PREFIX)
        self.path = tempfile.mkdtemp(prefix=f"{self.PREFIX}{os.getpid()}-", dir=where)
        self._lock: int | None = None
        if fcntl is not None:
            try:
                self._lock = _lock(self.path)
                os.rename(self.path, self.path + self.LOCKED)
                self.path += self.LOCKED
            except OSError:  # no locks here (some network file systems): the pid will do
                pass

    def pack(self, result: Any, item: int) -> tuple[Payload, list[str]]:
        """The message that carries ``result`` to a worker, and the files it made.

        A big body is written raw, not pickled: pickling would copy it once more.
        """
        meta, files, body = self.pack_meta(result, item)
        if body is None:
            return (meta, None), files
        try:
            path = self.body_file(item, body)
        except BaseException:
            for made in files:
                remove(made)
            raise
        return (meta, path), [*files, path]

    def pack_meta(self, result: Any, item: int) -> tuple[bytes | str, list[str], bytes | None]:
        """``result`` pickled without a big body (in a file if still too big), the files
        made, and the big body left out, which the caller sends its own way."""
        body = result.body
        cls, values = fields_of(result)
        if body is not None and len(body) > THRESHOLD:
            values = (*values[:_BODY], None, *values[_BODY + 1 :])
        else:
            body = None
        meta: bytes | str = pickle.dumps((cls, values), PROTOCOL)
        if len(meta) <= THRESHOLD:
            return meta, [], body
        path = os.path.join(self.path, f"in-{item}.meta")  # headers or a URL that big: rare
        _write(path, meta)  # type: ignore[arg-type]
        return path, [path], body

    def body_file(self, item: int, body: bytes) -> str:
        """A file holding ``body`` raw, for a worker to read."""
        path = os.path.join(self.path, f"in-{item}")
        try:
            _write(path, body)
        except BaseException:
            remove(path)
            raise
        return path

    def output_path(self, item: int, dispatch: int) -> str:
        return os.path.join(self.path, f"out-{item}-{dispatch}")

    def close(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        lock, self._lock = self._lock, None
        if lock is not None:
            os.close(lock)  # after the removal: nobody can sweep it from under us meanwhile


class Segment:
    """Shared memory for one worker's page bodies: ``places`` places of `PLACE` bytes.

    A file of the spool, mapped by the parent (which writes a body into a free
    place before sending its request) and by the worker (which copies it out);
    a place is free again once the worker has replied. Memory is used only
    where bodies were written.
    """

    def __init__(self, path: str, places: int, *, create: bool) -> None:
        import mmap

        self.path = path
        size = places * PLACE
        flags = os.O_RDWR | os.O_CREAT | os.O_EXCL if create else os.O_RDONLY
        fd = os.open(path, flags, 0o600)
        try:
            if create:
                os.ftruncate(fd, size)
            prot = mmap.PROT_READ | (mmap.PROT_WRITE if create else 0)
            self.memory = mmap.mmap(fd, size, prot=prot)
        finally:
            os.close(fd)
        self.free = list(range(places))

    def put(self, body: bytes) -> tuple[int, tuple[int, int]]:
        """Copy ``body`` (at most `PLACE` bytes) into a free place: (place, body location)."""
        place = self.free.pop()
        offset = place * PLACE
        self.memory[offset : offset + len(body)] = body
        return place, (offset, len(body))

    def close(self) -> None:
        self.memory.close()
        remove(self.path)


def unpack(payload: Payload, segment: Any = None) -> Any:
    """Inverse of `Spool.pack`, in the worker (the parent removes the files later); a body
    given as ``(offset, length)`` is read from the worker's shared ``segment``."""
    meta, body = payload
    cls, values = pickle.loads(_read(meta) if isinstance(meta, str) else meta)
    if body is not None:
        if isinstance(body, str):
            data = _read(body)
        else:
            offset, length = body
            data = segment[offset : offset + length]
        values = (*values[:_BODY], data, *values[_BODY + 1 :])
    return cls(*values)


def fields_of(result: Any) -> tuple[type, tuple[Any, ...]]:
    """A `Result`'s class and field values in order: what `evolve` and `unpack` rebuild
    it from. Faster than pickling the dataclass, which looks its fields up every time."""
    cls = type(result)
    getter = _GETTERS.get(cls)
    if getter is None:
        names = [f.name for f in dataclass_fields(cls)]
        assert names.index("body") == _BODY, "Result's fields moved: update transport._BODY"
        getter = _GETTERS[cls] = attrgetter(*names)
    return cls, getter(result)


def evolve(result: Any, **change: Any) -> Any:
    """``dataclasses.replace(result, **change)`` for a `Result`, without its field lookups."""
    cls, values = fields_of(result)
    if not change:
        return result
    names = _NAMES_OF.get(cls)
    if names is None:
        names = _NAMES_OF[cls] = {f.name: i for i, f in enumerate(dataclass_fields(cls))}
    new = list(values)
    for name, value in change.items():
        new[names[name]] = value
    return cls(*new)


#: Where `Result.body` is among its fields (`fields_of`).
_BODY = 5
_GETTERS: dict[type, Any] = {}
_NAMES_OF: dict[type, dict[str, int]] = {}


def encode_reply(value: object, path: str, inline: int = THRESHOLD) -> Reply:
    """A worker's reply for a value, in a file if its pickle is over ``inline`` bytes;
    raises if the value cannot be pickled."""
    data = pickle.dumps(value, PROTOCOL)
    if len(data) <= inline:
        return ("ok", data)
    _write(path, data)
    return ("file", path)


_TAGS = {"ok": b"o", "file": b"f", "error": b"e"}
_NAMES = {v[0]: k for k, v in _TAGS.items()}


def reply_bytes(reply: Reply) -> bytes:
    """A reply as an owned worker sends it: a tag byte, then the pickle, path or message."""
    tag, data = reply
    return _TAGS[tag] + (data if tag == "ok" else data.encode("utf-8", "replace"))


def read_reply(message: bytes | memoryview) -> Reply:
    """Inverse of `reply_bytes`, in the parent; an ``"ok"`` reply keeps a view of
    ``message``, to be decoded before the buffer under it is reused."""
    tag = _NAMES[message[0]]
    return (tag, message[1:] if tag == "ok" else bytes(message[1:]).decode("utf-8"))


def decode_reply(reply: Reply) -> Any:
    """The value of an ``"ok"`` or ``"file"`` reply, in the parent (the file is removed)."""
    tag, data = reply
    if tag != "file":
        return pickle.loads(data)
    try:
        with open(data, "rb") as file:
            return pickle.load(file)
    finally:
        remove(data)


def _sweep(parent: str, prefix: str) -> None:
    """Remove the spools in ``parent`` whose owner process is gone."""
    try:
        names = os.listdir(parent)
    except OSError:
        return
    for name in names:
        if not name.startswith(prefix):
            continue
        path = os.path.join(parent, name)
        if name.endswith(Spool.LOCKED):
            if fcntl is None:
                continue
            try:
                lock = _lock(path)  # taken: its owner is dead
            except OSError:
                continue  # held by its live owner (or not ours to open)
            try:
                shutil.rmtree(path, ignore_errors=True)
            finally:
                os.close(lock)
            continue
        pid = name[len(prefix) :].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)


def _lock(path: str) -> int:
    """An fd of directory ``path`` with an exclusive flock on it; raises OSError if held."""
    assert fcntl is not None
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's
    return True


def remove(path: str) -> None:
    """Remove a file that may not exist."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _write(path: str, data: bytes) -> None:
    # No rename dance: a path is only sent once its file is complete.
    with open(path, "wb") as file:
        file.write(data)


def _read(path: str) -> bytes:
    with open(path, "rb") as file:
        return file.read()
