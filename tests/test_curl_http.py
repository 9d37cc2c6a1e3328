"""HTTP/2 and HTTP/3 on the curl backend, against a real server (hypercorn, tests/h2_server.py).

The server reports each request's client address (one per connection) and the HTTP version
it spoke, so the tests see multiplexing from the server's side, not from libcurl's word.
The other backends speak HTTP/1.1 only and refuse http2=/http3= before they start.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from polyfetch import AsyncFetcher, BackendError, Fetcher
from polyfetch.testing import start_process, stop

pytest.importorskip("pycurl")
pytest.importorskip("hypercorn")
SERVER = Path(__file__).parent / "h2_server.py"


@pytest.fixture(scope="module")
def h2(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(base https URL, CA bundle) of a hypercorn serving HTTP/1.1, HTTP/2 and HTTP/3."""
    trustme = pytest.importorskip("trustme")
    tmp = tmp_path_factory.mktemp("h2")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert.private_key_pem.write_to_path(tmp / "key.pem")
    cert.cert_chain_pems[0].write_to_path(tmp / "cert.pem")
    ca.cert_pem.write_to_path(tmp / "ca.pem")
    proc, line = start_process(
        [sys.executable, str(SERVER), str(tmp / "cert.pem"), str(tmp / "key.pem")], "ready "
    )
    try:
        yield f"https://127.0.0.1:{line.split()[1]}", str(tmp / "ca.pem")
    finally:
        stop(proc)


def _fetch_many(h2: tuple[str, str], **options: object) -> tuple[set[str | None], set[str], int]:
    """40 overlapping requests: (versions in the results, versions the server saw, connections)."""
    base, ca = h2
    urls = [f"{base}/v?delay=50&i={i}" for i in range(40)]
    with Fetcher("curl", ca_bundle=ca, concurrency=20, per_host=20, **options) as f:  # type: ignore[arg-type]
        results = list(f.map(urls))
    for r in results:
        assert r.ok and r.body is not None, r
    seen = [json.loads(r.body) for r in results if r.body is not None]
    clients = {tuple(s["client"]) for s in seen}
    return {r.http_version for r in results}, {s["http_version"] for s in seen}, len(clients)


def test_http2_multiplexes_requests_over_one_connection(h2):
    ours, theirs, connections = _fetch_many(h2, http2=True)
    assert ours == {"2"} and theirs == {"2"}, (ours, theirs)
    assert connections <= 2, f"40 requests, 20 at a time, took {connections} connections"


def test_http3_over_quic(h2):
    ours, theirs, connections = _fetch_many(h2, http3=True)
    assert ours == {"3"} and theirs == {"3"}, (ours, theirs)
    assert connections <= 2, f"40 requests, 20 at a time, took {connections} connections"


def test_curl_speaks_http11_unless_asked(h2):
    """libcurl's own default would negotiate HTTP/2; like the other backends, curl stays on 1.1."""
    ours, theirs, connections = _fetch_many(h2)
    assert ours == {"1.1"} and theirs == {"1.1"}, (ours, theirs)
    assert connections > 2, "HTTP/1.1 has one request per connection at a time"


@pytest.mark.parametrize("option", ["http2", "http3"])
@pytest.mark.parametrize("name", ["threads", "gevent", "asyncio", "greenlet"])
def test_other_backends_refuse_http2_and_http3(name, option):
    f = Fetcher(name, **{option: True})  # type: ignore[arg-type, misc]
    with pytest.raises(BackendError, match=rf"{option}=True.*HTTP/1\.1 only.*backend=.curl."):
        f.__enter__()
    f.close()


@pytest.mark.asyncio
async def test_async_fetcher_refuses_http2():
    f = AsyncFetcher(http2=True)
    with pytest.raises(BackendError, match=r"HTTP/1\.1 only"):
        await f.__aenter__()
    await f.aclose()
