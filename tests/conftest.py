"""Shared fixtures: real servers on 127.0.0.1 in their own processes, and the backend matrix.

The servers run as subprocesses (never in the test process), so the gevent
run - a separate, fully patched pytest process - uses them exactly as the
others do. ``--backends`` picks the backends; by default every available
backend except gevent, or only gevent when this process is monkey patched.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import polyfetch
from polyfetch import Fetcher, Result
from polyfetch.bench.run import stop

TESTS = Path(__file__).parent

# A shell starts background jobs with SIGINT ignored, and children inherit SIG_IGN (Python
# then installs no KeyboardInterrupt handler): the Ctrl+C tests need SIGINT to mean what it
# means in a terminal, for this process and every process the tests start.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
GEVENT_PATCHED = "gevent.monkey" in sys.modules and sys.modules["gevent.monkey"].is_module_patched(
    "socket"
)
#: True inside a private network namespace (scripts/test runs the suite in one): DNS
#: queries then fail on the spot instead of leaving the machine.
ISOLATED_NETWORK = {name for _, name in socket.if_nameindex()} <= {"lo"}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--backends",
        default=None,
        help="comma-separated backends for the conformance suite "
        "(default: all available but gevent; only gevent in a patched process)",
    )


def selected_backends(config: pytest.Config) -> list[str]:
    chosen = config.getoption("--backends")
    if chosen:
        return [b.strip() for b in chosen.split(",") if b.strip()]
    if GEVENT_PATCHED:
        return ["gevent"]
    return [b for b in polyfetch.available_backends() if b != "gevent"]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        metafunc.parametrize("backend", selected_backends(metafunc.config))


def _start(cmd: list[str], prefix: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, text=True, start_new_session=True, cwd=TESTS.parent
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.startswith(prefix):
        _stop(proc)
        raise RuntimeError(f"{cmd} did not start: {line!r}")
    return proc, line


_stop = stop  # the benchmark's: SIGTERM the process group, SIGKILL after 10 s


@dataclass(frozen=True)
class Servers:
    """Where the test servers listen, and the CA that signed the HTTPS one."""

    http: str  #: http://127.0.0.1:PORT (the aiohttp test server)
    https: str  #: https://localhost:PORT (same server, TLS; the certificate names localhost)
    raw: str  #: http://127.0.0.1:PORT (raw-socket server for malformed replies)
    port: int
    ca_file: str  #: PEM of the test CA

    def alias(self, path: str) -> str:
        """The same server under another host name (``localhost``), for per-host tests."""
        return f"http://localhost:{self.port}{path}"

    def stats(self) -> dict[str, dict[str, int]]:
        with urllib.request.urlopen(f"{self.http}/stats", timeout=10) as resp:
            return json.load(resp)  # type: ignore[no-any-return]

    def reset_stats(self) -> None:
        urllib.request.urlopen(f"{self.http}/stats/reset", timeout=10).close()


@pytest.fixture(scope="session")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("localhost")  # not 127.0.0.1: that name tests the mismatch
    tmp = tmp_path_factory.mktemp("tls")
    ca_file, cert_file, key_file = tmp / "ca.pem", tmp / "cert.pem", tmp / "key.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    web, line = _start(
        [
            sys.executable,
            "-m",
            "polyfetch.server",
            "--port",
            "0",
            "--https-port",
            "0",
            "--certfile",
            str(cert_file),
            "--keyfile",
            str(key_file),
        ],
        "polyfetch test server listening on",
    )
    raw, raw_line = _start([sys.executable, str(TESTS / "rawserver.py")], "rawserver listening")
    try:
        http_url, https_url = line.split(" on ", 1)[1].split()
        yield Servers(
            http=http_url,
            https=https_url.replace("127.0.0.1", "localhost"),
            raw="http://" + raw_line.rsplit(" ", 1)[1],
            port=int(http_url.rsplit(":", 1)[1]),
            ca_file=str(ca_file),
        )
    finally:
        _stop(web)
        _stop(raw)


@pytest.fixture
def run(backend: str) -> Callable[..., list[Result]]:
    """Fetch a list of URLs on the backend under test; results sorted back into input order."""

    def run(urls: list[object], **options: object) -> list[Result]:
        with Fetcher(backend, **options) as fetcher:  # type: ignore[arg-type]
            results = list(fetcher.map(urls))
        assert sorted(r.index for r in results) == list(range(len(urls))), "one result per item"
        return sorted(results, key=lambda r: r.index)

    return run


@pytest.fixture
def one(run: Callable[..., list[Result]]) -> Callable[..., Result]:
    """Fetch a single URL on the backend under test."""

    def one(url: object, **options: object) -> Result:
        return run([url], **options)[0]

    return one


def closed_port() -> int:
    """A local port nobody listens on (connections to it are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
