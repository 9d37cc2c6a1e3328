"""The plain-URL fast path of `polyfetch._url.parse` gives exactly what the yarl path gives."""

from __future__ import annotations

import string

from hypothesis import given, settings
from hypothesis import strategies as st
from yarl import URL

from polyfetch import _url

PATH_CHARS = string.ascii_letters + string.digits + "-._~!$&'()*+,;=:@/?%#"


def _slow(text: str) -> _url.Target:
    return _url._check(URL(text))


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from(["http", "https", "HTTP"]),
    st.sampled_from(["127.0.0.1", "localhost", "a.b-c.example", "x_y", "Host.Example", "h."]),
    st.sampled_from(["", ":80", ":443", ":8080", ":1", ":65535", ":0080"]),
    st.text(PATH_CHARS, max_size=30),
)
def test_fast_path_agrees_with_yarl(scheme, host, port, rest):
    text = f"{scheme}://{host}{port}" + (("/" + rest) if rest and rest[0] not in "?#" else rest)
    try:
        slow = _slow(text)
    except Exception as exc:
        fast = _url._plain(text)
        assert fast is None, (text, exc)
        return
    fast = _url._plain(text)
    if fast is not None:
        assert fast == slow, text
    assert _url.parse(text) == slow


def test_fast_path_takes_the_common_cases():
    for text in [
        "http://127.0.0.1:8000/bytes/100?i=5",
        "https://example.org/a/b.html",
        "http://example.org",
        "http://h/.well-known/x",
    ]:
        assert _url._plain(text) == _slow(text), text
    for text in ["http://h:80/", "http://H/", "http://h/a/../b", "http://h?q", "http://u@h/"]:
        assert _url._plain(text) is None, text
