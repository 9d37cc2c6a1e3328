"""Moving pages and processed values across the process boundary in small messages.

Under gevent's full monkey patching, a `ProcessPoolExecutor` whose tasks send
*and* receive messages of ~32 KB or more deadlocks: its feeder and manager
threads are greenlets on one OS thread, the feeder blocks that thread in an
unpatched ``os.write`` on a full pipe, and the worker waits to send its result
to a reader that can never run (gevent#936, CONCURRENCY-NOTES.md). Pages of
100 KB are the normal case, so no message here may be large:

- a `Result` travels pickled, inline; a body larger than `THRESHOLD` is
  written raw into a file of a private spool directory and only its path is
  sent (`Spool.pack` in the parent, `unpack` in the worker);
- the worker pickles the processor's value itself (an unpicklable value becomes
  that item's error, not a broken pool) and sends it inline or, when larger
  than `THRESHOLD`, as a file whose path the parent chose (`encode_reply`,
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
from dataclasses import replace
from typing import Any

try:
    import fcntl
except ImportError:  # Windows: the pid in the name has to do
    fcntl = None  # type: ignore[assignment]

#: Messages above this size go through a file (gevent's deadlock starts near 32 KB).
THRESHOLD = 16 * 1024
PROTOCOL = pickle.HIGHEST_PROTOCOL

#: What a worker gets: the pickled `Result` (or the path of a file holding it) and the
#: path of a file holding its body raw, or None when the body travels in the pickle.
Payload = tuple[bytes | str, str | None]
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
        files: list[str] = []
        body = result.body
        body_path = None
        try:
            if body is not None and len(body) > THRESHOLD:
                body_path = os.path.join(self.path, f"in-{item}")
                files.append(body_path)
                _write(body_path, body)
                result = replace(result, body=None)
            meta: bytes | str = pickle.dumps(result, PROTOCOL)
            if len(meta) > THRESHOLD:  # headers or a URL that big: rare, but no exception
                files.append(os.path.join(self.path, f"in-{item}.meta"))
                _write(files[-1], meta)  # type: ignore[arg-type]
                meta = files[-1]
        except BaseException:
            for path in files:
                remove(path)
            raise
        return (meta, body_path), files

    def output_path(self, item: int, dispatch: int) -> str:
        return os.path.join(self.path, f"out-{item}-{dispatch}")

    def close(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        lock, self._lock = self._lock, None
        if lock is not None:
            os.close(lock)  # after the removal: nobody can sweep it from under us meanwhile


def unpack(payload: Payload) -> Any:
    """Inverse of `Spool.pack`, in the worker (the parent removes the files later)."""
    meta, body_path = payload
    result = pickle.loads(_read(meta) if isinstance(meta, str) else meta)
    return result if body_path is None else replace(result, body=_read(body_path))


def encode_reply(value: object, path: str) -> Reply:
    """A worker's reply for a value; raises if the value cannot be pickled."""
    data = pickle.dumps(value, PROTOCOL)
    if len(data) <= THRESHOLD:
        return ("ok", data)
    _write(path, data)
    return ("file", path)


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
