"""Successful fetches: status, headers, bodies, encodings, methods, results' shape."""

from __future__ import annotations

import json

import polyfetch
from polyfetch._body import ACCEPT_ENCODING
from polyfetch.testing.checks._registry import check, shown
from polyfetch.testing.harness import Harness
from polyfetch.testing.servers import Servers


@check
def check_get_returns_status_headers_body(harness: Harness, servers: Servers) -> None:
    """A GET gives status, lower-cased headers, the whole body, the HTTP version and the
    result's bookkeeping."""
    url = f"{servers.http}/bytes/1000"
    r = harness.one(url)
    assert r.error is None and r.ok, shown(r)
    assert r.status == 200, shown(r)
    assert r.size == 1000 and r.body is not None and len(r.body) == 1000, shown(r)
    assert r.headers.get("content-length") == "1000", f"headers {dict(r.headers)}"
    assert r.content_type == "application/octet-stream", r.content_type
    assert r.final_url == url, f"final_url {r.final_url!r}, expected {url!r}"
    assert r.attempts == 1 and r.redirects == 0, shown(r)
    assert r.elapsed > 0, shown(r)
    assert r.http_version == "1.1", f"http_version {r.http_version!r}"
    assert r.to_record()["http_version"] == "1.1", r.to_record()


@check
def check_status_codes_are_results_not_errors(harness: Harness, servers: Servers) -> None:
    """HTTP 4xx/5xx are results with a status, not errors (and 404/500 are not retried)."""
    results = harness.run(
        [f"{servers.http}/status/404", f"{servers.http}/status/500"], backoff=0.01
    )
    assert [r.status for r in results] == [404, 500], [shown(r) for r in results]
    for r in results:
        assert r.error is None and not r.ok and r.attempts == 1, shown(r)


@check
def check_head_has_headers_and_no_body(harness: Harness, servers: Servers) -> None:
    """HEAD gives the headers (Content-Length included) and an empty body."""
    r = harness.one(f"{servers.http}/bytes/5000", method="HEAD")
    assert r.status == 200 and r.error is None, shown(r)
    assert r.headers.get("content-length") == "5000", f"headers {dict(r.headers)}"
    assert r.size == 0 and r.body == b"", shown(r)


@check
def check_head_is_not_limited_by_the_announced_length(harness: Harness, servers: Servers) -> None:
    """A HEAD's Content-Length over max_bytes is not a TooLarge: no body comes."""
    r = harness.one(f"{servers.http}/bytes/5000", method="HEAD", max_bytes=1000)
    assert r.error is None and r.status == 200, shown(r)


@check
def check_default_user_agent_and_custom_headers(harness: Harness, servers: Servers) -> None:
    """The default User-Agent and Accept-Encoding are sent; headers= and user_agent= apply."""
    plain = harness.one(f"{servers.http}/headers", headers={"X-Polyfetch-Test": "yes"})
    custom = harness.one(f"{servers.http}/headers", user_agent="my-bot/2")
    assert plain.ok and custom.ok, [shown(plain), shown(custom)]
    sent = json.loads(plain.body or b"{}")
    assert sent.get("user-agent") == polyfetch.DEFAULT_USER_AGENT, sent
    assert sent["user-agent"].startswith(f"polyfetch/{polyfetch.__version__}"), sent
    assert sent.get("x-polyfetch-test") == "yes", sent
    assert sent.get("accept-encoding") == ACCEPT_ENCODING, sent  # only what can be decoded
    assert json.loads(custom.body or b"{}").get("user-agent") == "my-bot/2", custom.body


@check
def check_keep_body_false_still_counts_size(harness: Harness, servers: Servers) -> None:
    """keep_body=False drops the body but still counts its decoded size."""
    r = harness.one(f"{servers.http}/gzip/50000", keep_body=False)
    assert r.status == 200 and r.body is None and r.size == 50000, shown(r)


@check
def check_gzip_and_deflate_are_decoded(harness: Harness, servers: Servers) -> None:
    """gzip and deflate bodies are decoded; chunked bodies are reassembled."""
    plain, gz, zl, chunked = harness.run(
        [
            f"{servers.http}/bytes/100000",
            f"{servers.http}/gzip/100000",
            f"{servers.http}/deflate/100000",
            f"{servers.http}/bytes/300000?chunked=1",
        ]
    )
    for r in (plain, gz, zl, chunked):
        assert r.ok and r.body is not None, shown(r)
    assert gz.headers.get("content-encoding") == "gzip", f"headers {dict(gz.headers)}"
    assert gz.body == plain.body, "the gzip body, decoded, differs from /bytes/100000"
    assert zl.body == plain.body, "the deflate body, decoded, differs from /bytes/100000"
    assert gz.size == zl.size == 100000, [shown(gz), shown(zl)]
    assert chunked.size == 300000, shown(chunked)
    assert chunked.body is not None and chunked.body[:100000] == plain.body, "chunked body differs"


@check
def check_brotli_is_decoded(harness: Harness, servers: Servers) -> None:
    """br and zstd bodies are decoded (brotli and zstd are dependencies of polyfetch)."""
    plain, br, zs = harness.run(
        [
            f"{servers.http}/bytes/100000",
            f"{servers.http}/brotli/100000",
            f"{servers.http}/zstd/100000",
        ]
    )
    assert br.ok and br.headers.get("content-encoding") == "br", shown(br)
    assert br.body == plain.body and br.size == 100000, shown(br)
    assert zs.ok and zs.headers.get("content-encoding") == "zstd", shown(zs)
    assert zs.body == plain.body and zs.size == 100000, shown(zs)


@check
def check_body_delimited_by_connection_close(harness: Harness, servers: Servers) -> None:
    """A body with neither Content-Length nor chunking ends at the connection's close."""
    r = harness.one(f"{servers.raw}/close-delimited")
    assert r.error is None and r.status == 200 and r.size == 5000, shown(r)


@check
def check_one_result_per_item_whatever_the_item(harness: Harness, servers: Servers) -> None:
    """Every item, whatever its type or shape, gets one result; unusable ones an InvalidURL."""
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
    results = harness.run(items)
    assert len(results) == len(items), f"{len(results)} results for {len(items)} items"
    assert results[0].ok and results[13].ok, [shown(results[0]), shown(results[13])]
    assert [r.url for r in results[:3]] == [items[0], "None", "42"], [r.url for r in results[:3]]
    for r in results[1:13]:
        assert isinstance(r.error, polyfetch.InvalidURL), shown(r)
    assert isinstance(results[7].error, polyfetch.UnsupportedScheme), shown(results[7])


@check
def check_results_stream_in_completion_order(harness: Harness, servers: Servers) -> None:
    """map() yields results as they finish, not in input order."""
    with harness.open(concurrency=4) as f:
        urls = [f"{servers.http}/delay/800", f"{servers.http}/delay/1"]
        order = [r.index for r in f.map(urls)]
    assert order == [1, 0], f"indexes in the order yielded: {order}"


@check
def check_fetch_one_and_fetch_inside_map(harness: Harness, servers: Servers) -> None:
    """fetch() works alone and inside a map() loop; the fetcher is reusable afterwards."""
    with harness.open(concurrency=4) as f:
        alone = f.fetch(f"{servers.http}/bytes/7")
        assert alone.size == 7, shown(alone)
        inner = [f.fetch(f"{servers.http}/bytes/3").size for _ in f.map([servers.http] * 3)]
        again = list(f.map([f"{servers.http}/bytes/5"] * 5))
    assert inner == [3, 3, 3], f"sizes fetched inside map(): {inner}"
    assert [r.size for r in again] == [5] * 5, [shown(r) for r in again]


@check
def check_interim_responses_are_skipped(harness: Harness, servers: Servers) -> None:
    """A 100 Continue interim response is skipped and the final one kept (http.client, under
    threads and gevent, skips no other 1xx: a 103 Early Hints would be their result)."""
    r = harness.one(f"{servers.raw}/informational", retries=0)
    assert r.error is None and r.status == 200 and r.body == b"ok", shown(r)


@check
def check_keep_alive_reuses_the_connection(harness: Harness, servers: Servers) -> None:
    """Requests one after another to one host ride one keep-alive connection."""
    with harness.open(concurrency=1, per_host=1) as session:
        bodies = [session.fetch(f"{servers.raw}/keep-alive?i={i}").body for i in range(5)]
    assert bodies == [b"1", b"2", b"3", b"4", b"5"], f"the server counted {bodies}"


@check
def check_bytes_after_a_response_are_not_the_next_one(harness: Harness, servers: Servers) -> None:
    """Junk after a response is never read as a response: never a wrong success.

    What is right differs by parser: the hub keeps the response and drops the connection;
    aiohttp fails the response (ProtocolError); urllib3 keeps it, reuses the connection and
    the next request there fails (ReadError, when the server closes it).
    """
    with harness.open(concurrency=1, per_host=1, retries=0, timeout=20) as session:
        first = session.fetch(f"{servers.raw}/junk-after")
        second = session.fetch(f"{servers.raw}/keep-alive")
    assert (first.error is None and first.body == b"ok") or first.error is not None, shown(first)
    if first.error is not None:
        assert first.error.kind == "ProtocolError", shown(first)
    assert (second.error is None and second.body == b"1") or second.status is None, shown(second)


@check
def check_a_stale_keep_alive_connection_is_not_an_attempt(
    harness: Harness, servers: Servers
) -> None:
    """A reused connection the server closed before answering is the pool's race: the
    request goes once more on a fresh connection, and ``attempts`` does not count it."""
    with harness.open(concurrency=1, per_host=1, retries=0) as session:
        results = [session.fetch(f"{servers.raw}/close-after-one?i={i}") for i in range(3)]
    for r in results:
        assert r.error is None and r.body == b"ok" and r.attempts == 1, shown(r)


@check
def check_ipv4_hosts_in_any_form_reach_the_same_address(harness: Harness, servers: Servers) -> None:
    """``127.1``, ``2130706433``, ``127.000.000.001`` and ``0x7f.0.0.1`` are 127.0.0.1, as the
    WHATWG URL standard (and browsers, curl) read them: the same target on every backend."""
    port = servers.port
    forms = ["127.1", "2130706433", "127.000.000.001", "0x7f.0.0.1"]
    results = harness.run([f"http://{h}:{port}/bytes/3" for h in forms])
    for r in results:
        assert r.ok and r.size == 3, shown(r)
        assert r.final_url == f"http://127.0.0.1:{port}/bytes/3", shown(r)
    bad = harness.one(f"http://256.0.0.1:{port}/")
    assert bad.error is not None and bad.error.kind == "InvalidURL", shown(bad)
