"""No input makes map() raise or drop a record (hypothesis), and URL checking in the core."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from polyfetch import Fetcher, InvalidURL, UnsupportedScheme
from polyfetch._url import parse
from tests.conftest import closed_port

PORT = closed_port()
# Hosts that never leave the machine: a closed local port, or names rejected before DNS.
url_like = st.builds(
    lambda scheme, host, path, query: f"{scheme}://{host}{path}{query}",
    st.sampled_from(["http", "https", "HTTP", "ftp", "file", "", "javascript"]),
    st.sampled_from([f"127.0.0.1:{PORT}", f"[::1]:{PORT}", "127.0.0.1:0", "127.0.0.1:99999",
                     "", "a b", "127.0.0.1:-1", f"u:p@127.0.0.1:{PORT}"]),
    st.text(max_size=30),
    st.text(max_size=20).map(lambda s: "?" + s if s else ""),
)
anything = st.one_of(st.text(max_size=80), url_like, st.binary(max_size=20), st.integers(),
                     st.none(), st.floats(allow_nan=True))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(anything, max_size=12))
def test_map_returns_one_record_per_item_whatever_the_input(items):
    with Fetcher("threads", concurrency=4, retries=0, timeout=5) as f:
        results = list(f.map(items))
    assert sorted(r.index for r in results) == list(range(len(items)))
    for r in results:
        assert r.error is not None or r.status is not None


@given(st.text(max_size=200))
def test_parse_either_succeeds_or_raises_invalid_url(text):
    try:
        target = parse(text)
    except InvalidURL:
        return
    assert target.scheme in ("http", "https") and target.host and 0 < target.port < 65536
    assert target.url.isascii() and target.target.startswith("/")


@pytest.mark.parametrize(
    ("text", "url"),
    [
        ("  http://Example.COM/a b?q=1#frag\n", "http://example.com/a%20b?q=1"),
        ("http://例え.jp/パス", "http://xn--r8jz45g.jp/%E3%83%91%E3%82%B9"),
        ("https://h:443/", "https://h/"),
        ("http://[::1]:8080/x", "http://[::1]:8080/x"),
    ],
)
def test_parse_normalises(text, url):
    assert parse(text).url == url


@pytest.mark.parametrize(
    "text", ["", "example.com", "//x/y", "http://", "http://h:0/", "http://h:65536/",
             "http://exa mple/", "http://a\x00b/", "http:///path", "https://[::1/"])
def test_parse_rejects(text):
    with pytest.raises(InvalidURL):
        parse(text)


@pytest.mark.parametrize("text", ["ftp://h/", "file:///etc/passwd", "mailto:a@b", "ws://h/"])
def test_parse_rejects_other_schemes(text):
    with pytest.raises(UnsupportedScheme):
        parse(text)


def test_host_header_and_credentials():
    t = parse("http://user:secret@Host.test:8080/p?q")
    assert (t.authority, t.target, t.url) == ("host.test:8080", "/p?q", "http://host.test:8080/p?q")
    assert t.authorization == "Basic dXNlcjpzZWNyZXQ="
