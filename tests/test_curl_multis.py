"""Past 512 in flight the curl backend spreads its transfers over several ``CurlMulti``.

libcurl finds a reusable connection by walking the pool's connections to the host, so one
pool of thousands costs every transfer that walk; `polyfetch.backends.curl.Multis` keeps each
pool to its share. These tests run real transfers through two multis and check that both
carried them, that no multi made more easy handles than the concurrency, and that closing
releases every handle.
"""

from __future__ import annotations

import pytest

from polyfetch import Fetcher
from polyfetch.testing import Servers

pytest.importorskip("pycurl")

from polyfetch.backends import curl


def test_transfers_spread_over_multis_within_the_limit(servers: Servers) -> None:
    concurrency = curl._PER_MULTI + 88  # two multis
    urls = [f"{servers.http}/delay/300?i={i}" for i in range(2 * concurrency)]
    with Fetcher("curl", concurrency=concurrency, per_host=concurrency, timeout=60) as f:
        results = list(f.map(urls))
        multis = f._backend.client.multis  # type: ignore[union-attr]
        assert len(multis) == 2
        handles = [len(m._all) for m in multis]
    assert sorted(r.index for r in results if r.ok) == list(range(len(urls))), [
        r for r in results if not r.ok
    ][:3]
    # both carried transfers; a multi makes a handle only when all of its own are busy, and
    # no multi ever has more transfers than the fetcher's concurrency
    assert all(handles), handles
    assert max(handles) <= concurrency, handles
    assert all(not m._all and not m._watched for m in multis)  # closed: every handle released


def test_one_multi_up_to_its_share(servers: Servers) -> None:
    with Fetcher("curl", concurrency=curl._PER_MULTI) as f:
        assert f.fetch(f"{servers.http}/bytes/10").ok
        assert len(f._backend.client.multis) == 1  # type: ignore[union-attr]
