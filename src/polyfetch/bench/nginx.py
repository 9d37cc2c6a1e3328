"""nginx as the static server of throughput runs, started as our own process.

The built-in server is Python: past a few thousand requests a second it is the
bottleneck, and the bench would measure it instead of the clients. nginx serves
the same paths (``/bytes/100``, ``/bytes/1024``, ``/bytes/1048576``, and the ~100 KB HTML
page ``/html/102400`` of the cpu scenario: files made here, the query string ignored) from one
worker on 127.0.0.1. With the echo
module (Debian's ``libnginx-mod-http-echo``) it also serves ``/delay/{ms}``: the
100-byte file after ``ms`` milliseconds, a timer in C where the built-in server
spends ~270 µs of Python per request. Everything it writes (config, pid, logs,
temp files) stays in the directory given; it runs in the foreground in its own
process group, so `stop` kills master and worker alike.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass

from polyfetch.testing.servers import stop as stop  # kills the process group: master and worker

#: the body sizes served, as ``/bytes/{size}``
SIZES = (100, 1024, 1048576)
#: the HTML pages served, as ``/html/{size}`` (the built-in server's pages, byte for byte)
HTML_SIZES = (102400,)

#: where Debian's nginx looks for dynamic modules (``nginx -V``: ``--modules-path``)
_MODULES = "/usr/lib/nginx/modules"
ECHO_MODULE = os.path.join(_MODULES, "ngx_http_echo_module.so")

# echo_sleep takes seconds: the milliseconds of the path become "0.005", "0.050", "1.000"
_DELAYS = r"""
        location ~ ^/delay/(\d)$ { echo_sleep 0.00$1; echo_exec /bytes/100; }
        location ~ ^/delay/(\d\d)$ { echo_sleep 0.0$1; echo_exec /bytes/100; }
        location ~ ^/delay/(\d\d\d)$ { echo_sleep 0.$1; echo_exec /bytes/100; }
        location ~ ^/delay/(\d+)(\d\d\d)$ { echo_sleep $1.$2; echo_exec /bytes/100; }"""

_CONFIG = """\
{load}daemon off;
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
    types {{
        text/html html htm; text/css css; text/plain txt; text/xml xml;
        application/javascript js; application/json json; image/png png; image/svg+xml svg;
        image/jpeg jpg jpeg; image/gif gif; application/gzip gz;
    }}
    server {{{listen}
        root {dir}/www;
        location /html/ {{ default_type "text/html; charset=utf-8"; }}{delays}
    }}
}}
"""


@dataclass(frozen=True)
class Nginx:
    """A running nginx: its master process, base URL, version, and whether it serves
    ``/delay/{ms}`` (the echo module loaded)."""

    proc: subprocess.Popen[str]
    base: str
    version: str
    delays: bool = False


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


def start(
    directory: str,
    *,
    prefix: list[str] | None = None,
    timeout: float = 10.0,
    also: Sequence[str] = (),
) -> Nginx:
    """nginx serving `SIZES` from ``directory``, and ``/delay/{ms}`` when the echo module is
    installed and loads; ``prefix`` wraps the command (``taskset -c 1``); ``also``: more
    addresses (``127.2.0.1``...) served on the same port, so that one nginx plays many hosts.

    Raises RuntimeError with nginx's own words if it does not answer within ``timeout``.
    """
    addresses = ["127.0.0.1", *also]
    if os.path.exists(ECHO_MODULE):
        try:
            return _start(directory, prefix, timeout, addresses, delays=True)
        except RuntimeError as exc:  # built for another nginx: serve the files without it
            if ECHO_MODULE not in str(exc):
                raise
    return _start(directory, prefix, timeout, addresses, delays=False)


def _start(
    directory: str,
    prefix: list[str] | None,
    timeout: float,
    addresses: Sequence[str],
    *,
    delays: bool,
) -> Nginx:
    www = os.path.join(directory, "www", "bytes")
    os.makedirs(www, exist_ok=True)
    os.makedirs(os.path.join(directory, "tmp"), exist_ok=True)
    for size in SIZES:
        with open(os.path.join(www, str(size)), "wb") as f:
            f.write(b"x" * size)
    from polyfetch.server import build_html

    pages = os.path.join(directory, "www", "html")
    os.makedirs(pages, exist_ok=True)
    for size in HTML_SIZES:
        with open(os.path.join(pages, str(size)), "wb") as f:
            f.write(build_html(size))
    # as root the worker would run as nobody, who cannot read a private temp dir
    user = "user root;\n" if os.geteuid() == 0 else ""
    for attempt in range(3):  # the port may be taken between choosing and binding it
        port = _free_port()
        conf = os.path.join(directory, "nginx.conf")
        with open(conf, "w") as f:
            f.write(
                _CONFIG.format(
                    dir=directory,
                    listen="".join(
                        f"\n        listen {a}:{port} reuseport backlog=8192;" for a in addresses
                    ),
                    user=user,
                    load=f"load_module {ECHO_MODULE};\n" if delays else "",
                    delays=_DELAYS if delays else "",
                )
            )
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
            return Nginx(proc, f"http://127.0.0.1:{port}", version(), delays)
        stop(proc)
        with open(said) as f:
            why = f.read().strip()
        if "Address already in use" not in why or attempt == 2:
            raise RuntimeError(f"nginx did not start: {why or 'no answer'}")
    raise AssertionError("unreachable")
