"""nginx as the static server of throughput runs, started as our own process.

The built-in server is Python: past a few thousand requests a second it is the
bottleneck, and the bench would measure it instead of the clients. nginx serves
the same paths (``/bytes/100``, ``/bytes/1024``, ``/bytes/1048576``: files made
here, the query string ignored) from one worker on 127.0.0.1. Everything it
writes (config, pid, logs, temp files) stays in the directory given; it runs in
the foreground in its own process group, so `stop` kills master and worker alike.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass

from polyfetch.testing.servers import stop as stop  # kills the process group: master and worker

#: the body sizes served, as ``/bytes/{size}``
SIZES = (100, 1024, 1048576)

_CONFIG = """\
daemon off;
master_process on;
worker_processes 1;
{user}pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    client_body_temp_path {dir}/tmp/body;
    proxy_temp_path {dir}/tmp/proxy;
    fastcgi_temp_path {dir}/tmp/fastcgi;
    uwsgi_temp_path {dir}/tmp/uwsgi;
    scgi_temp_path {dir}/tmp/scgi;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 120s;
    keepalive_requests 10000000;
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{port} reuseport backlog=8192;
        root {dir}/www;
    }}
}}
"""


@dataclass(frozen=True)
class Nginx:
    """A running nginx: its master process, base URL and version."""

    proc: subprocess.Popen[str]
    base: str
    version: str


def available() -> bool:
    """Whether ``nginx`` is on PATH."""
    return shutil.which("nginx") is not None


def version() -> str:
    """nginx's version, e.g. ``1.22.1``."""
    out = subprocess.run(["nginx", "-v"], capture_output=True, text=True, check=False)
    return (out.stderr or out.stdout).strip().rsplit("/", 1)[-1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(directory: str, *, prefix: list[str] | None = None, timeout: float = 10.0) -> Nginx:
    """nginx serving `SIZES` from ``directory``; ``prefix`` wraps the command (``taskset -c 1``).

    Raises RuntimeError with nginx's own words if it does not answer within ``timeout``.
    """
    www = os.path.join(directory, "www", "bytes")
    os.makedirs(www, exist_ok=True)
    os.makedirs(os.path.join(directory, "tmp"), exist_ok=True)
    for size in SIZES:
        with open(os.path.join(www, str(size)), "wb") as f:
            f.write(b"x" * size)
    # as root the worker would run as nobody, who cannot read a private temp dir
    user = "user root;\n" if os.geteuid() == 0 else ""
    for attempt in range(3):  # the port may be taken between choosing and binding it
        port = _free_port()
        conf = os.path.join(directory, "nginx.conf")
        with open(conf, "w") as f:
            f.write(_CONFIG.format(dir=directory, port=port, user=user))
        cmd = [
            *(prefix or []),
            "nginx",
            "-p",
            directory,
            "-e",
            f"{directory}/error.log",
            "-c",
            conf,
        ]
        said = os.path.join(directory, "stderr.log")
        with open(said, "w") as stderr:  # a file, not a pipe: nothing to drain or close later
            proc = subprocess.Popen(
                cmd, stdout=subprocess.DEVNULL, stderr=stderr, text=True, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
            except OSError:
                time.sleep(0.02)
                continue
            return Nginx(proc, f"http://127.0.0.1:{port}", version())
        stop(proc)
        with open(said) as f:
            why = f.read().strip()
        if "Address already in use" not in why or attempt == 2:
            raise RuntimeError(f"nginx did not start: {why or 'no answer'}")
    raise AssertionError("unreachable")
