"""No input makes map() raise or drop a record (hypothesis draws the inputs)."""

from __future__ import annotations

from polyfetch.testing.checks._registry import check
from polyfetch.testing.harness import Harness
from polyfetch.testing.servers import Servers, closed_port


@check
def check_map_returns_one_record_per_item_whatever_the_input(
    harness: Harness, servers: Servers, max_examples: int = 150
) -> None:
    """Lists of anything (text, URL-like strings, bytes, numbers, None) give one record each."""
    try:
        from hypothesis import HealthCheck, given, settings
        from hypothesis import strategies as st
    except ImportError:
        raise ImportError(
            "this check needs hypothesis: pip install hypothesis (or 'polyfetch[test]')"
        ) from None

    port = closed_port()
    # Hosts that never leave the machine: a closed local port, or names rejected before DNS.
    url_like = st.builds(
        lambda scheme, host, path, query: f"{scheme}://{host}{path}{query}",
        st.sampled_from(["http", "https", "HTTP", "ftp", "file", "", "javascript"]),
        st.sampled_from(
            [
                f"127.0.0.1:{port}",
                f"[::1]:{port}",
                "127.0.0.1:0",
                "127.0.0.1:99999",
                "",
                "a b",
                "127.0.0.1:-1",
                f"u:p@127.0.0.1:{port}",
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

    @settings(
        max_examples=max_examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
        database=None,  # no examples saved under the caller's working directory
    )
    @given(st.lists(anything, max_size=12))
    def one_record_per_item(items: list[object]) -> None:
        with harness.open(concurrency=4, retries=0, timeout=5) as f:
            results = list(f.map(items))
        indexes = sorted(r.index for r in results)
        assert indexes == list(range(len(items))), f"{items!r} gave indexes {indexes}"
        for r in results:
            assert r.error is not None or r.status is not None, f"neither status nor error: {r!r}"

    one_record_per_item()
