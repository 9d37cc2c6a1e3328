"""A small greenlet hub: scheduler, sockets and HTTP/1.1 for the ``greenlet`` backend.

Imported only when that backend is chosen (it imports greenlet, socket, ssl and
selectors). The pieces, each in its own module:

* `loop` - the `Hub`: tasks, the one wait primitive, timers, the ready queue,
  cross-thread wake-ups (`wakeup`) and `Hub.wait_future`;
* `sync` - `Semaphore`, for the global and per-host attempt slots;
* `net` - name resolution in a thread pool, non-blocking connect, TLS, `Stream`;
* `http` - one HTTP/1.1 attempt with h11, and the keep-alive `Pool`.
"""

from __future__ import annotations

from polyfetch.backends.hub.http import Client, Pool
from polyfetch.backends.hub.loop import Hub, Task, Waiter, WaitTimeout
from polyfetch.backends.hub.net import DeadlineExpired, Resolver, Stream
from polyfetch.backends.hub.sync import Semaphore

__all__ = [
    "Client",
    "DeadlineExpired",
    "Hub",
    "Pool",
    "Resolver",
    "Semaphore",
    "Stream",
    "Task",
    "WaitTimeout",
    "Waiter",
]
