"""The test proxies' wrapper process (`polyfetch.testing.proxies`): ``python -m`` this."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from polyfetch.testing.proxies import PASSWORD, READY, USER


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _accepts(port: int) -> bool:
    import socket

    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return False
    return True


_PPROXY = (
    "import sys, asyncio; sys.modules['uvloop'] = None\n"  # pproxy breaks on uvloop's loop policy
    "asyncio.set_event_loop(asyncio.new_event_loop())\n"
    "from pproxy.server import main; sys.argv[0] = 'pproxy'; main()\n"
)


def _serve(directory: str, tls: list[str]) -> int:
    """The wrapper process: start the proxies, say where they are, wait for them."""
    import subprocess

    logs = Path(directory)
    logs.mkdir(parents=True, exist_ok=True)
    ports = [_free_port() for _ in range(5 if tls else 4)]
    common = ["--hostname", "127.0.0.1", "--num-workers", "1", "--num-acceptors", "1"]
    common += ["--log-level", "INFO"]
    children = []
    for port, auth, name in ((ports[0], None, "http"), (ports[1], True, "http-auth")):
        cmd = [sys.executable, "-m", "proxy", *common, "--port", str(port)]
        if auth:
            cmd += ["--basic-auth", f"{USER}:{PASSWORD}"]
        log = open(logs / f"{name}.log", "ab")  # noqa: SIM115 (the child's, for its life)
        children.append(subprocess.Popen(cmd, stdout=log, stderr=log))
    socks_cmd = [sys.executable, "-c", _PPROXY, "-v", "--auth", "0"]  # no IP remembered
    socks_cmd += ["-l", f"socks5://127.0.0.1:{ports[2]}"]
    socks_cmd += ["-l", f"socks5://127.0.0.1:{ports[3]}#{USER}:{PASSWORD}"]
    if tls:  # an https:// proxy: TLS to the proxy itself, with the given certificate
        socks_cmd += ["-l", f"http+ssl://127.0.0.1:{ports[4]}", "--ssl", ",".join(tls)]
    log = open(logs / "socks.log", "ab")  # noqa: SIM115
    children.append(subprocess.Popen(socks_cmd, stdout=log, stderr=log))
    until = time.monotonic() + 25
    while not all(_accepts(p) for p in ports):
        if time.monotonic() > until or any(c.poll() is not None for c in children):
            print("proxies failed to start", flush=True)
            return 1
        time.sleep(0.1)
    print(f"{READY} on {' '.join(map(str, ports))}", flush=True)
    try:
        for child in children:
            child.wait()
    finally:
        for child in children:
            child.kill()
    return 0


if __name__ == "__main__":
    sys.exit(_serve(sys.argv[1], sys.argv[2:]))
