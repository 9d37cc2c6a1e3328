"""No input makes map() raise or drop a record, on any backend (hypothesis)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from polyfetch import Fetcher
from tests.conftest import closed_port

PORT = closed_port()
# Hosts that never leave the machine: a closed local port, or names rejected before DNS.
url_like = st.builds(
    lambda scheme, host, path, query: f"{scheme}://{host}{path}{query}",
    st.sampled_from(["http", "https", "HTTP", "ftp", "file", "", "javascript"]),
    st.sampled_from(
        [
            f"127.0.0.1:{PORT}",
            f"[::1]:{PORT}",
            "127.0.0.1:0",
            "127.0.0.1:99999",
            "",
            "a b",
            "127.0.0.1:-1",
            f"u:p@127.0.0.1:{PORT}",
        ]
    ),
    st.text(max_size=30),
    st.text(max_size=20).map(lambda s: "?" + s if s else ""),
)
anything = st.one_of(
    st.text(max_size=80),
    url_like,
    st.binary(max_size=20),
    st.integers(),
    st.none(),
    st.floats(allow_nan=True),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(anything, max_size=12))
def test_map_returns_one_record_per_item_whatever_the_input(backend, items):
    with Fetcher(backend, concurrency=4, retries=0, timeout=5) as f:
        results = list(f.map(items))
    assert sorted(r.index for r in results) == list(range(len(items)))
    for r in results:
        assert r.error is not None or r.status is not None
