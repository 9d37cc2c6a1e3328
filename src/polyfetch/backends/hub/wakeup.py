"""A socketpair that lets any thread wake the hub out of ``selector.select``.

The model is trio's ``_wakeup_socketpair.py``: the read end sits in the hub's
selector; a thread queues its work first, then sends one byte. A full send
buffer (BlockingIOError) is fine - bytes already waiting guarantee the wake-up -
so the writer never blocks and many wake-ups cost one ``select`` return. The
hub drains the read end *before* running the queued work, so a byte sent after
the drain always leads to another round.
"""

from __future__ import annotations

import contextlib
import socket


class WakeupSocketpair:
    """Read end for the selector, write end for any thread."""

    def __init__(self) -> None:
        self.wakeup_sock, self.write_sock = socket.socketpair()
        self.wakeup_sock.setblocking(False)
        self.write_sock.setblocking(False)
        # Tiny buffers: a handful of pending bytes is all a wake-up needs.
        self.wakeup_sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)
        self.write_sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1)

    def fileno(self) -> int:
        """The read end, for the selector."""
        return self.wakeup_sock.fileno()

    def wakeup_thread_and_signal_safe(self) -> None:
        """Make the next (or current) ``select`` return; never blocks."""
        with contextlib.suppress(BlockingIOError):
            self.write_sock.send(b"\x00")

    def drain(self) -> None:
        """Consume every pending wake-up byte (in the hub, before running queued work)."""
        try:
            while True:
                self.wakeup_sock.recv(2**16)
        except BlockingIOError:
            pass

    def close(self) -> None:
        """Close both ends."""
        self.wakeup_sock.close()
        self.write_sock.close()
