"""The owned process pool: workers the engine starts, talks to and replaces one at a time.

Each worker is a spawned process (`_spawn`) with a pipe of its own (a socket
pair). The engine thread writes requests into it and reads the replies, in
order, with at most `DEPTH` requests outstanding per worker: one running and
one waiting, so that a worker never idles while its next page is on the way.
There is no executor manager thread and no queue feeder thread, so a page
costs the parent one wake-up of the engine thread to hand it over and one to
take the reply, and nothing else.

Nothing written to a pipe can block: requests are small (`transport`), replies
at most `transport.REPLY_INLINE` bytes, and each end's buffer holds all that a
side can owe the other at once (`transport.PIPE_BUFFER`). Under gevent's
patching, where the engine thread is a greenlet on the main thread, a blocked
write would stall the hub, or deadlock it (gevent#936).

A worker that dies affects only its own items: the one it was running (its slot
in the shared array says which) is blamed, the one waiting behind it is handed
to another worker, and a new worker takes the dead one's place. The other
workers go on undisturbed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import struct
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from polyfetch.postprocess import _worker, transport

#: Requests a worker may have outstanding: the one it runs and the next.
DEPTH = 2
#: Seconds a worker asked to stop (its pipe closed) has before it is killed.
STOP_GRACE = 2.0

_SIGMASK = hasattr(signal, "pthread_sigmask")
#: The frame header of `multiprocessing.connection.Connection`: the message's size.
_HEADER = struct.Struct("!i")
#: Where the engine thread reads replies into (only it reads them).
_SCRATCH = bytearray(transport.PIPE_BUFFER)
_VIEW = memoryview(_SCRATCH)


@dataclass(eq=False)
class Worker:
    """One worker process, its end of the pipe, its shared memory, and the items handed
    to it, oldest first."""

    index: int
    process: Any
    conn: Any
    segment: transport.Segment
    ready: bool = False
    inflight: deque[Any] = field(default_factory=deque)
    #: Killed by the engine (a timeout, the close): its items are not to blame.
    killed: bool = False
    #: What was read from its pipe and does not make a whole message yet.
    pending: bytearray = field(default_factory=bytearray)

    @property
    def pid(self) -> int:
        return int(self.process.pid)

    def receive(self) -> list[bytes | memoryview] | None:
        """The whole messages its pipe holds now (read once: call when it is readable), or
        None at the end of file. Frames are `multiprocessing.connection.Connection`'s.

        A message may be a view of a buffer the next call reuses: use it before that.
        """
        # Into one reused buffer: `os.read` would allocate (mmap) and shrink (mremap) one
        # buffer per call, three system calls more per page.
        size = os.readv(self.conn.fileno(), [_SCRATCH])
        if not size:
            return None
        data: bytes | bytearray | memoryview
        if self.pending:
            self.pending += _VIEW[:size]
            data = self.pending
        else:
            data = _VIEW[:size]
        messages: list[bytes | memoryview] = []
        used = 0
        while len(data) - used >= 4:
            (length,) = _HEADER.unpack_from(data, used)
            if len(data) - used - 4 < length:
                break
            message = data[used + 4 : used + 4 + length]
            # A view of the scratch buffer, or a copy: the pending buffer shrinks below.
            messages.append(message if isinstance(message, memoryview) else bytes(message))
            used += 4 + length
        if data is self.pending:
            del self.pending[:used]
        else:
            self.pending += data[used:]
        return messages


class Pool:
    """The owned workers: ``size`` places, each held by one live worker at a time, and one
    `select.poll` watching their pipes and process sentinels (and the engine's wake-up)."""

    def __init__(
        self, size: int, context: Any, main: tuple[str, str] | None, name: str, spool: str
    ) -> None:
        """``main`` says where workers find a processor of ``__main__``; ``name`` is the
        processor they import before saying they are ready; ``spool`` holds their segments."""
        import select  # not at import: gevent must patch it first

        self.size = size
        self.context = context
        self.main = main
        self.name = name
        self.spool = spool
        self.slots = context.Array("q", size * _worker.SLOT, lock=False)
        self.workers: dict[int, Worker] = {}
        #: fd of a pipe or a process sentinel -> its worker
        self.fds: dict[int, Worker] = {}
        self.poller = select.poll()
        self._readable = select.POLLIN | select.POLLHUP | select.POLLERR
        self._spawned = 0

    def watch(self, fd: int) -> None:
        """Wake `wait` when ``fd`` is readable too."""
        self.poller.register(fd, self._readable)

    def wait(self, timeout: float | None) -> list[int]:
        """The fds that are readable (or closed) within ``timeout`` seconds."""
        events = self.poller.poll(None if timeout is None else timeout * 1000)
        return [fd for fd, _ in events]

    def spawn(self, index: int) -> Worker:
        """Start a worker in place ``index`` (raises OSError if it cannot be started).

        SIGINT is blocked while it starts: a spawned process inherits the signal mask
        of the thread that starts it, so no Ctrl+C can kill it before it has set
        SIGINT to be ignored (`_worker.initialize`).
        """
        import socket  # not at import: gevent must patch it first

        self._spawned += 1
        path = os.path.join(self.spool, f"segment-{index}-{self._spawned}")
        segment = transport.Segment(path, DEPTH, create=True)
        ours, theirs = self.context.Pipe(duplex=True)
        try:
            for conn in (ours, theirs):
                with socket.socket(fileno=os.dup(conn.fileno())) as sock:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, transport.PIPE_BUFFER)
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, transport.PIPE_BUFFER)
                # gevent's sockets leave their fd non-blocking, which `Connection` is not made
                # for; every read here follows a wait, and no write can block (see above).
                os.set_blocking(conn.fileno(), True)
            process = self.context.Process(
                target=_worker.serve,
                args=(theirs, self.slots, index, self.main, self.name, (path, DEPTH)),
                name=f"polyfetch-pp-{index}",
                daemon=True,  # multiprocessing's exit handler stops it if nothing else did
            )
            if _SIGMASK:
                # Started on demand, the resource tracker would unblock SIGINT in this thread.
                from multiprocessing import resource_tracker

                resource_tracker.ensure_running()
            old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT}) if _SIGMASK else None
            try:
                process.start()
            finally:
                if old is not None:
                    signal.pthread_sigmask(signal.SIG_SETMASK, old)
        except BaseException:
            ours.close()
            segment.close()
            raise
        finally:
            theirs.close()
        worker = Worker(index, process, ours, segment)
        self.workers[index] = worker
        for fd in (ours.fileno(), process.sentinel):
            self.fds[fd] = worker
            self.watch(fd)
        return worker

    def running(self, worker: Worker) -> tuple[int, float] | None:
        """(item id, start in `time.monotonic` seconds) of what ``worker`` runs now, if any."""
        base = worker.index * _worker.SLOT
        slots = self.slots
        item = slots[base + _worker.ITEM]
        start = slots[base + _worker.START]
        if not item or slots[base + _worker.PID] != worker.pid:
            return None  # idle, or the slot still tells of the worker this one replaced
        return item, start / 1e9

    def idle(self) -> Worker | None:
        """The ready worker with the fewest items, if one can take another."""
        best, held = None, DEPTH
        for worker in self.workers.values():
            n = len(worker.inflight)
            if worker.ready and not worker.killed and n < DEPTH and (best is None or n < held):
                best, held = worker, n
        return best

    def kill(self, worker: Worker) -> None:
        """SIGKILL a worker (a stuck one); its death is then seen like any other."""
        worker.killed = True
        if not exited(worker.process):  # never signal a pid that may have been reused
            with contextlib.suppress(ProcessLookupError):
                worker.process.kill()

    def remove(self, worker: Worker) -> int | None:
        """Forget a worker that has exited: close its pipe, reap it; its exit code if known."""
        self._forget(worker)
        worker.process.join(STOP_GRACE)
        if worker.process.exitcode is None:  # not exited after all: never left behind
            self.kill(worker)
            worker.process.join()
        return _exitcode(worker.process)

    def _forget(self, worker: Worker) -> None:
        self.workers.pop(worker.index, None)
        for fd in (worker.conn.fileno(), worker.process.sentinel):
            if self.fds.pop(fd, None) is not None:
                self.poller.unregister(fd)
        worker.conn.close()
        worker.segment.close()

    def close(self) -> None:
        """Stop every worker and reap it: idle ones by closing their pipe, busy ones killed."""
        workers = list(self.workers.values())
        for worker in workers:
            if worker.inflight or not worker.ready:
                self.kill(worker)
            self._forget(worker)  # end of file: an idle worker returns from `_worker.serve`
        deadline = time.monotonic() + STOP_GRACE
        for worker in workers:
            worker.process.join(max(0.0, deadline - time.monotonic()))
            if worker.process.exitcode is None:
                self.kill(worker)
                worker.process.join()


def exited(process: Any) -> bool:
    """Whether a worker has exited, told by its sentinel, which closes whoever reaps it."""
    from multiprocessing.connection import wait

    return bool(wait([process.sentinel], 0))


def _exitcode(process: Any) -> int | None:
    """The exit code of an exited worker, if it can still be had (see `_spawn`)."""
    for _ in range(10):
        code = process.exitcode
        if code is not None:
            return None if getattr(process._popen, "status_unknown", False) else code
        time.sleep(0.001)  # the sentinel can close a moment before the status is ready
    return None
