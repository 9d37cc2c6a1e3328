"""Real proxies on 127.0.0.1 for the proxy checks: proxy.py (HTTP, CONNECT) and pproxy (SOCKS5).

`start_proxies` runs, each in a session of its own (`stop` kills the whole
process group, so no proxy outlives the block), an HTTP proxy without and one
with Basic credentials (proxy.py, from PyPI's ``proxy.py``) and a SOCKS5 proxy
without and with a login (pproxy). Each writes its access log to a file, which
is how a check proves that a request went through a proxy and which name the
proxy was asked for (``localhost`` through socks5h://, an address through
socks5://). Started as ``python -m polyfetch.testing.proxies DIR``: the wrapper
picks free ports, starts both proxies as its children and prints one line once
every port accepts connections.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from polyfetch.testing.servers import start_process, stop

#: The login the authenticating proxies want.
USER, PASSWORD = "scraper", "s3cret-pw"
READY = "proxies listening"

__all__ = ["PASSWORD", "USER", "ProxyServers", "start_proxies"]


@dataclass(frozen=True)
class ProxyServers:
    """Where the test proxies listen, and their access logs."""

    http: str  #: http://127.0.0.1:PORT, no credentials needed
    http_auth: str  #: http://127.0.0.1:PORT, wants USER:PASSWORD (407 otherwise)
    socks: str  #: 127.0.0.1:PORT, SOCKS5 without a login (give it a scheme: socks5:// ...)
    socks_auth: str  #: 127.0.0.1:PORT, SOCKS5 wanting USER:PASSWORD
    http_log: str
    http_auth_log: str
    socks_log: str  #: pproxy's: the SOCKS5 proxies' and the https:// one's
    #: https://localhost:PORT (pproxy over TLS, the certificate given to `start_proxies`)
    https: str | None = None

    @staticmethod
    def login(url: str, user: str = USER, password: str = PASSWORD) -> str:
        """``url`` with credentials."""
        scheme, _, rest = url.partition("://")
        return f"{scheme}://{user}:{password}@{rest}"

    @staticmethod
    def size(log: str) -> int:
        """The log's size now, to read only what comes after (`since`)."""
        try:
            return os.path.getsize(log)
        except FileNotFoundError:
            return 0

    @staticmethod
    def since(log: str, mark: int, wait_for: str | None = None, timeout: float = 3.0) -> str:
        """What ``log`` got after ``mark`` (waiting up to ``timeout`` s for ``wait_for``:
        proxies write their access line after the exchange)."""
        until = time.monotonic() + timeout
        while True:
            with open(log, "rb") as f:
                f.seek(mark)
                text = f.read().decode("utf-8", "replace")
            if wait_for is None or wait_for in text or time.monotonic() > until:
                return text
            time.sleep(0.05)


@contextlib.contextmanager
def start_proxies(
    directory: str | os.PathLike[str] | None = None, tls: tuple[str, str] | None = None
) -> Iterator[ProxyServers]:
    """Run the test proxies for the ``with`` block; stop them (and their children) after.

    With ``tls`` (a certificate for ``localhost`` and its key, PEM files), an https://
    proxy too."""
    with contextlib.ExitStack() as stack:
        if directory is None:
            directory = stack.enter_context(tempfile.TemporaryDirectory(prefix="polyfetch-px-"))
        proc, line = start_process(
            [sys.executable, "-m", "polyfetch.testing._proxyserve", str(directory), *(tls or ())],
            READY,
        )
        stack.callback(stop, proc)
        http, http_auth, socks, socks_auth, *more = line.split(" on ", 1)[1].split()
        logs = Path(directory)
        yield ProxyServers(
            http=f"http://127.0.0.1:{http}",
            http_auth=f"http://127.0.0.1:{http_auth}",
            socks=f"127.0.0.1:{socks}",
            socks_auth=f"127.0.0.1:{socks_auth}",
            http_log=str(logs / "http.log"),
            http_auth_log=str(logs / "http-auth.log"),
            socks_log=str(logs / "socks.log"),
            https=f"https://localhost:{more[0]}" if more else None,
        )
