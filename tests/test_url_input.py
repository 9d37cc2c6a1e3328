"""URL checking and normalisation in the core (property-based and by example)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from polyfetch import InvalidURL, UnsupportedScheme
from polyfetch._url import parse


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
    "text",
    [
        "",
        "example.com",
        "//x/y",
        "http://",
        "http://h:0/",
        "http://h:65536/",
        "http://exa mple/",
        "http://a\x00b/",
        "http:///path",
        "https://[::1/",
    ],
)
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


def test_lone_surrogates_are_rejected_not_dropped():
    with pytest.raises(InvalidURL):
        parse("http://x/\udcff")
