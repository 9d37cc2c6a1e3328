"""Options at their extremes: inf timeouts, a huge size cap, a glacial rate, on every backend."""

from __future__ import annotations

import pytest

from polyfetch import ConfigError, Fetcher, Settings
from polyfetch.settings import MAX_CONCURRENCY

INF = float("inf")


@pytest.mark.parametrize(
    "options",
    [
        {"timeout": INF},
        {"timeout": INF, "connect_timeout": INF, "read_timeout": INF},
        {"timeout": INF, "max_bytes": 2**63},
        {"timeout": INF, "retries": 1, "backoff": 0.001},
    ],
    ids=["timeout", "every-timeout", "max-bytes", "retry"],
)
def test_unlimited_options_fetch_normally(harness, servers, options):
    from tests.conftest import closed_port

    ok, refused, busy = harness.run(
        [
            f"{servers.http}/gzip/1000",
            f"http://127.0.0.1:{closed_port()}/",
            f"{servers.http}/status/503?retry_after=0",
        ],
        **options,
    )
    assert ok.status == 200 and ok.size == 1000, ok
    assert refused.error is not None and refused.error.kind == "ConnectError", refused
    assert busy.status == 503 and busy.error is None, busy


def test_a_glacial_rate_lets_each_host_start_once(harness, servers):
    # one attempt per 10 million seconds and host: the first to each host goes at once
    first, other = harness.run(
        [f"{servers.http}/bytes/3", servers.alias("/bytes/4")], rate=1e-7, timeout=INF
    )
    assert first.size == 3 and other.size == 4


@pytest.mark.parametrize("name", ["concurrency", "per_host"])
def test_concurrency_beyond_what_any_backend_can_hold_is_refused(name):
    with pytest.raises(ConfigError, match=name):
        Settings.build(**{name: MAX_CONCURRENCY + 1})
    with pytest.raises(ConfigError, match=name):
        Fetcher("threads", **{name: 2**31})
