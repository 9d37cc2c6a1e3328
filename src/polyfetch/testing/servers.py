"""The test servers, each in a process group of its own, and how to stop them.

`start_servers` runs the built-in aiohttp server (``python -m polyfetch.server``,
HTTP and HTTPS with a certificate from a trustme CA made on the spot) and the
misbehaving raw-socket server (``python -m polyfetch.testing.rawserver``) on
127.0.0.1. Every process starts in a new session and `stop` kills its whole
process group, so nothing a server started outlives it. Module-level imports
stay light (no socket, subprocess or urllib) so that a gevent user can import
this before patching.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import subprocess

#: seconds a server may take to print its "listening" line
START_TIMEOUT = 30.0
#: seconds between SIGTERM and SIGKILL of a process group in `stop`
STOP_GRACE = 10.0


def start_process(
    cmd: Sequence[str],
    ready: str,
    *,
    cwd: str | os.PathLike[str] | None = None,
    timeout: float = START_TIMEOUT,
) -> tuple[subprocess.Popen[str], str]:
    """Start ``cmd`` in its own session; wait for a first stdout line starting with ``ready``.

    Returns the process and that line. Raises `RuntimeError` (after stopping the
    process) if the line is something else or does not come within ``timeout``.
    """
    import subprocess

    proc = subprocess.Popen(
        list(cmd), stdout=subprocess.PIPE, text=True, start_new_session=True, cwd=cwd
    )
    line = _first_line(proc, timeout)
    if line is None or not line.startswith(ready):
        kill_group(proc)  # first: closing a pipe under a blocked readline() would wait for it
        stop(proc)
        raise RuntimeError(f"{list(cmd)} did not start: {line!r}")
    return proc, line


def _first_line(proc: subprocess.Popen[str], timeout: float) -> str | None:
    """The process's first stdout line, or None if none comes within ``timeout``."""
    assert proc.stdout is not None
    lines: list[str] = []

    def read() -> None:
        with contextlib.suppress(OSError, ValueError):  # stop() closed the pipe under us
            lines.append(proc.stdout.readline())  # type: ignore[union-attr]

    # readline() cannot time out; a helper thread reads, and stop() ends it by closing the pipe
    reader = threading.Thread(target=read, name="first-line", daemon=True)
    reader.start()
    reader.join(timeout)
    return lines[0].strip() if lines else None


def kill_group(proc: subprocess.Popen[str]) -> None:
    """SIGKILL the process group of a process started in its own session (if still there)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def stop(proc: subprocess.Popen[str]) -> None:
    """Stop a process started in its own session, and everything it started.

    SIGTERM to the process group, SIGKILL after `STOP_GRACE` seconds.
    """
    import subprocess

    if proc.stdout is not None:
        proc.stdout.close()
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(STOP_GRACE)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@dataclass(frozen=True)
class Servers:
    """Where the test servers listen, and the CA that signed the HTTPS one."""

    http: str  #: http://127.0.0.1:PORT (the aiohttp test server)
    https: str  #: https://localhost:PORT (same server, TLS; the certificate names localhost)
    raw: str  #: http://127.0.0.1:PORT (raw-socket server for malformed replies)
    port: int  #: the HTTP port of the aiohttp server
    ca_file: str  #: PEM of the test CA
    #: More addresses the aiohttp server answers on, same port: one host each (127.0.0.2, ...).
    hosts: tuple[str, ...] = ()

    def on(self, host: int, path: str) -> str:
        """``path`` on the server as the ``host``-th of its extra hosts (0-based)."""
        return f"http://{self.hosts[host]}:{self.port}{path}"

    def alias(self, path: str) -> str:
        """The same server under another host name (``localhost``), for per-host checks."""
        return f"http://localhost:{self.port}{path}"

    def stats(self) -> dict[str, dict[str, int]]:
        """The server's per-Host in-flight and peak counts (``_total`` for all hosts)."""
        import urllib.request

        with urllib.request.urlopen(f"{self.http}/stats", timeout=10) as resp:
            return json.load(resp)  # type: ignore[no-any-return]

    def reset_stats(self) -> None:
        """Forget the peaks and request counts (in-flight counts stay true)."""
        import urllib.request

        urllib.request.urlopen(f"{self.http}/stats/reset", timeout=10).close()


def _trustme():  # type: ignore[no-untyped-def]
    try:
        import trustme
    except ImportError:
        raise ImportError(
            "polyfetch.testing needs trustme for its HTTPS server: "
            "pip install trustme (it is in the 'test' extra: pip install 'polyfetch[test]')"
        ) from None
    return trustme


#: The extra loopback addresses every test server also listens on (Linux routes all of
#: 127.0.0.0/8 to the loopback interface): enough hosts for the per-host scheduling checks.
EXTRA_HOSTS = tuple(f"127.0.0.{i}" for i in range(2, 22))


@contextlib.contextmanager
def start_servers(directory: str | os.PathLike[str] | None = None) -> Iterator[Servers]:
    """Run both test servers on 127.0.0.1 for the ``with`` block; stop them after.

    The CA and the server's certificate (for ``localhost`` only, so that
    ``https://127.0.0.1`` is a name mismatch) are written to ``directory``, a
    temporary directory by default.
    """
    trustme = _trustme()
    with contextlib.ExitStack() as stack:
        if directory is None:
            directory = stack.enter_context(tempfile.TemporaryDirectory(prefix="polyfetch-tls-"))
        tls = Path(directory)
        ca = trustme.CA()
        cert = ca.issue_cert("localhost")
        ca_file, cert_file, key_file = tls / "ca.pem", tls / "cert.pem", tls / "key.pem"
        ca.cert_pem.write_to_path(str(ca_file))
        cert.cert_chain_pems[0].write_to_path(str(cert_file))
        cert.private_key_pem.write_to_path(str(key_file))
        web_cmd = [sys.executable, "-m", "polyfetch.server", "--port", "0", "--https-port", "0"]
        for host in EXTRA_HOSTS:
            web_cmd += ["--also", host]
        web, line = start_process(
            [*web_cmd, "--certfile", str(cert_file), "--keyfile", str(key_file)],
            "polyfetch test server listening on",
        )
        stack.callback(stop, web)
        raw, raw_line = start_process(
            [sys.executable, "-m", "polyfetch.testing.rawserver"], "rawserver listening"
        )
        stack.callback(stop, raw)
        http_url, https_url = line.split(" on ", 1)[1].split()
        yield Servers(
            http=http_url,
            https=https_url.replace("127.0.0.1", "localhost"),
            raw="http://" + raw_line.rsplit(" ", 1)[1],
            port=int(http_url.rsplit(":", 1)[1]),
            ca_file=str(ca_file),
            hosts=EXTRA_HOSTS,
        )


def closed_port() -> int:
    """A local port nobody listens on (connections to it are refused)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def isolated_network() -> bool:
    """True inside a private network namespace (only loopback): DNS queries fail on the spot."""
    import socket

    return {name for _, name in socket.if_nameindex()} <= {"lo"}
