"""Shared fixtures: real servers on 127.0.0.1 in their own processes, and the backend matrix.

The servers (`polyfetch.testing.start_servers`) run as subprocesses, never in
the test process, so the gevent run - a separate, fully patched pytest process -
uses them exactly as the others do. ``--backends`` picks the backends; by
default every available backend except gevent, plus ``asyncio-async``
(`AsyncFetcher` in an event loop), or only gevent when this process is monkey
patched. The conformance tests are thin wrappers over `polyfetch.testing`'s checks.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import polyfetch
from polyfetch import Result
from polyfetch.testing import (
    ASYNC,
    Harness,
    Servers,
    SkipCheck,
    closed_port,
    harness_for,
    isolated_network,
    start_process,
    start_servers,
    stop,
)

__all__ = ["ISOLATED_NETWORK", "Servers", "closed_port"]

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
ISOLATED_NETWORK = isolated_network()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--backends",
        default=None,
        help="comma-separated backends for the conformance suite, asyncio-async for "
        "AsyncFetcher (default: all available but gevent, and asyncio-async; "
        "only gevent in a patched process)",
    )


def selected_backends(config: pytest.Config) -> list[str]:
    chosen = config.getoption("--backends")
    if chosen:
        return [b.strip() for b in chosen.split(",") if b.strip()]
    if GEVENT_PATCHED:
        return ["gevent"]
    available = polyfetch.available_backends()
    async_fetcher = [ASYNC] if "asyncio" in available else []
    return [b for b in available if b != "gevent"] + async_fetcher


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        metafunc.parametrize("backend", selected_backends(metafunc.config))


@pytest.hookimpl(wrapper=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> Iterator[None]:
    try:
        return (yield)
    except SkipCheck as exc:  # a check that cannot run here says so
        pytest.skip(str(exc))


def _start(cmd: list[str], prefix: str) -> tuple[object, str]:
    """Start a server in its own session from the repository's root; wait for its first line."""
    return start_process(cmd, prefix, cwd=TESTS.parent)


_stop = stop  # polyfetch.testing's: SIGTERM the process group, SIGKILL after 10 s


@pytest.fixture(scope="session")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    pytest.importorskip("trustme")
    with start_servers(tmp_path_factory.mktemp("tls")) as running:
        yield running


@pytest.fixture
def harness(backend: str) -> Harness:
    """The backend under test, as the checks drive it (`Fetcher`, or `AsyncFetcher`)."""
    return harness_for(backend)


@pytest.fixture
def run(harness: Harness) -> Callable[..., list[Result]]:
    """Fetch a list of URLs on the backend under test; results sorted back into input order."""
    return harness.run


@pytest.fixture
def one(harness: Harness) -> Callable[..., Result]:
    """Fetch a single URL on the backend under test."""
    return harness.one
