"""Successful fetches: status, headers, bodies, encodings, methods, results' shape."""

from __future__ import annotations

import json

import polyfetch
from polyfetch import Fetcher


def test_get_returns_status_headers_body(servers, one):
    r = one(f"{servers.http}/bytes/1000")
    assert r.error is None and r.ok
    assert r.status == 200
    assert r.size == 1000 and r.body is not None and len(r.body) == 1000
    assert r.headers["content-length"] == "1000"
    assert r.content_type == "application/octet-stream"
    assert r.final_url == f"{servers.http}/bytes/1000"
    assert r.attempts == 1 and r.redirects == 0
    assert r.elapsed > 0


def test_status_codes_are_results_not_errors(servers, run):
    results = run([f"{servers.http}/status/404", f"{servers.http}/status/500"], backoff=0.01)
    assert [r.status for r in results] == [404, 500]
    assert all(r.error is None and not r.ok and r.attempts == 1 for r in results)


def test_head_has_headers_and_no_body(servers, one):
    r = one(f"{servers.http}/bytes/5000", method="HEAD")
    assert r.status == 200 and r.error is None
    assert r.headers["content-length"] == "5000"
    assert r.size == 0 and r.body == b""


def test_head_is_not_limited_by_the_announced_length(servers, one):
    r = one(f"{servers.http}/bytes/5000", method="HEAD", max_bytes=1000)
    assert r.error is None and r.status == 200


def test_default_user_agent_and_custom_headers(servers, run):
    plain, custom = run([f"{servers.http}/headers"], headers={"X-Polyfetch-Test": "yes"}) + run(
        [f"{servers.http}/headers"], user_agent="my-bot/2"
    )
    sent = json.loads(plain.body)
    assert sent["user-agent"] == polyfetch.DEFAULT_USER_AGENT
    assert sent["user-agent"].startswith(f"polyfetch/{polyfetch.__version__}")
    assert sent["x-polyfetch-test"] == "yes"
    assert sent["accept-encoding"] == "gzip, deflate"
    assert json.loads(custom.body)["user-agent"] == "my-bot/2"


def test_keep_body_false_still_counts_size(servers, one):
    r = one(f"{servers.http}/gzip/50000", keep_body=False)
    assert r.status == 200 and r.body is None and r.size == 50000


def test_gzip_and_deflate_are_decoded(servers, run):
    plain, gz, zl, chunked = run(
        [
            f"{servers.http}/bytes/100000",
            f"{servers.http}/gzip/100000",
            f"{servers.http}/deflate/100000",
            f"{servers.http}/bytes/300000?chunked=1",
        ]
    )
    assert gz.headers["content-encoding"] == "gzip"
    assert gz.body == plain.body and zl.body == plain.body
    assert gz.size == zl.size == 100000
    assert chunked.size == 300000 and chunked.body[:100000] == plain.body


def test_body_delimited_by_connection_close(servers, one):
    r = one(f"{servers.raw}/close-delimited")
    assert r.error is None and r.status == 200 and r.size == 5000


def test_one_result_per_item_whatever_the_item(servers, run):
    items = [
        f"{servers.http}/bytes/10",
        None,
        42,
        b"http://127.0.0.1/",
        "",
        "   ",
        "not a url",
        "ftp://example.org/",
        "http://",
        "http://[::1",
        "http://host:99999/",
        "mailto:x@y",
        "http://exa mple.org/",
        f"{servers.http}/bytes/10",
        "\x00\x01",
        "https://",
    ]
    results = run(items)
    assert len(results) == len(items)
    assert results[0].ok and results[13].ok
    assert [r.url for r in results[:3]] == [items[0], "None", "42"]
    for r in results[1:13]:
        assert isinstance(r.error, polyfetch.InvalidURL), (r.url, r.error)
    assert isinstance(results[7].error, polyfetch.UnsupportedScheme)


def test_results_stream_in_completion_order(servers, backend):
    with Fetcher(backend, concurrency=4) as f:
        order = [r.index for r in f.map([f"{servers.http}/delay/800", f"{servers.http}/delay/1"])]
    assert order == [1, 0]


def test_fetch_one_and_fetch_inside_map(servers, backend):
    with Fetcher(backend, concurrency=4) as f:
        assert f.fetch(f"{servers.http}/bytes/7").size == 7
        inner = [f.fetch(f"{servers.http}/bytes/3").size for _ in f.map([servers.http] * 3)]
        again = list(f.map([f"{servers.http}/bytes/5"] * 5))
    assert inner == [3, 3, 3]
    assert [r.size for r in again] == [5] * 5
