"""The greenlet hub's two HTTP parsers: every GET check passes on the h11 path too.

httptools serves GETs when it is installed (as in the test environment); h11
serves HEAD, and everything when httptools is missing. This runs the parsing
checks with httptools hidden, so the h11 path keeps its coverage.
"""

from __future__ import annotations

import pytest

from polyfetch import testing as t
from polyfetch.backends.hub import http

CHECKS = [
    t.check_get_returns_status_headers_body,
    t.check_gzip_and_deflate_are_decoded,
    t.check_body_delimited_by_connection_close,
    t.check_interim_responses_are_skipped,
    t.check_keep_alive_reuses_the_connection,
    t.check_bytes_after_a_response_are_not_the_next_one,
    t.check_malformed_and_broken_responses,
    t.check_max_bytes,
    t.check_trickle_cannot_outlive_total_timeout,
]


def test_httptools_serves_gets_here():
    assert http.httptools is not None, "the test environment installs httptools"


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
def test_h11_path(monkeypatch, servers, check):
    monkeypatch.setattr(http, "httptools", None)
    check(t.harness_for("greenlet"), servers)
