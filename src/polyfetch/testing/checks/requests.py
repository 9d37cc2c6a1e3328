"""`Request` items: methods, bodies, per-item options, meta; retry and redirect rules for
methods; repeated headers; cookies; text and JSON; bodies saved to a file. The server's
``/anything`` echoes what arrived, so what each backend sent is checked, not assumed."""

from __future__ import annotations

import json
import os
import tempfile
import uuid
from typing import Any

from polyfetch.errors import InvalidRequest, TooLarge, TotalTimeout
from polyfetch.request import Request
from polyfetch.result import Result
from polyfetch.testing.checks._registry import check, shown
from polyfetch.testing.harness import Harness
from polyfetch.testing.servers import Servers


def _echo(r: Result) -> dict[str, Any]:
    """What ``/anything`` saw of the request."""
    assert r.ok and r.body is not None, shown(r)
    return r.json()  # type: ignore[no-any-return]


@check
def check_methods_and_bodies_arrive(harness: Harness, servers: Servers) -> None:
    """Any method token is sent as given (upper-cased), with its body and Content-Length;
    without a body, GET (HEAD, OPTIONS, TRACE) says nothing of one, others Content-Length: 0."""
    url = f"{servers.http}/anything"
    items = [
        Request(url, method="PUT", data=b"\x00raw\xff"),
        Request(url, method="post", data="text é"),
        Request(url, method="DELETE"),
        Request(url, method="PURGE", data=b"x"),
        Request(url, method="POST"),
        Request(url),
    ]
    got = [_echo(r) for r in harness.run(items)]
    assert [e["method"] for e in got] == ["PUT", "POST", "DELETE", "PURGE", "POST", "GET"], got
    assert got[0]["body"] == "\x00raw\xff" and got[0]["headers"]["content-length"] == "5", got[0]
    assert got[1]["body"].encode("latin-1").decode("utf-8") == "text é", got[1]
    assert "content-type" not in got[0]["headers"], f"no type invented for bytes: {got[0]}"
    assert got[5]["body"] == "" and "content-length" not in got[5]["headers"], got[5]
    for e in (got[2], got[4]):
        assert e["body"] == "" and e["headers"].get("content-length") == "0", e


@check
def check_form_json_and_params_are_encoded(harness: Harness, servers: Servers) -> None:
    """data= fields are form-encoded, json= is JSON, params= extend the query (lists repeat)."""
    url = f"{servers.http}/anything?a=1"
    form, js = harness.run(
        [
            Request(url, method="POST", data={"name": "a b", "k": ["1", "2"]}, params={"p": "x"}),
            Request(url, method="POST", json={"n": [1, "é"]}, params=[("p", "1"), ("p", "2")]),
        ]
    )
    f, j = _echo(form), _echo(js)
    assert f["headers"]["content-type"] == "application/x-www-form-urlencoded", f
    assert f["form"] == {"name": ["a b"], "k": ["1", "2"]}, f
    assert f["args"] == {"a": "1", "p": "x"}, f
    assert j["headers"]["content-type"] == "application/json" and j["json"] == {"n": [1, "é"]}, j
    assert j["args"] == {"a": "1", "p": ["1", "2"]}, j


@check
def check_request_headers_meta_and_url(harness: Harness, servers: Servers) -> None:
    """A Request's headers win over the fetcher's; meta comes back unchanged in the Result
    and its record; the Result's url is the Request's."""
    url = f"{servers.http}/anything"
    meta = {"page": 3, "tags": ["a", None]}
    (r,) = harness.run(
        [Request(url, headers={"user-agent": "mine", "X-Extra": "1"}, meta=meta)],
        headers={"X-Extra": "fetcher", "X-Other": "2"},
    )
    sent = _echo(r)["headers"]
    assert sent["user-agent"] == "mine" and sent["x-extra"] == "1", sent
    assert sent["x-other"] == "2", sent
    assert r.meta == meta and r.to_record()["meta"] == meta, shown(r)
    assert r.url == url, r.url
    plain = harness.run([url])[0]
    assert plain.meta is None and "meta" not in plain.to_record(), plain.to_record()


@check
def check_per_item_overrides(harness: Harness, servers: Servers) -> None:
    """timeout, retries, max_bytes and max_redirects of one Request apply to it alone."""
    h = servers.http
    results = harness.run(
        [
            Request(f"{h}/delay/3000", timeout=0.3),
            Request(f"{h}/status/503", retries=0),
            f"{h}/status/503",
            Request(f"{h}/bytes/100", max_bytes=10),
            f"{h}/bytes/100",
            Request(f"{h}/redirect/2", max_redirects=1),
        ],
        retries=1,
        backoff=0.01,
        max_bytes=1000,
    )
    slow, once, twice, small, big, hops = results
    assert isinstance(slow.error, TotalTimeout) and slow.elapsed < 2, shown(slow)
    assert once.attempts == 1 and twice.attempts == 2, [shown(once), shown(twice)]
    assert isinstance(small.error, TooLarge) and big.ok and big.size == 100, [shown(small)]
    assert hops.error is not None and hops.error.kind == "TooManyRedirects", shown(hops)


@check
def check_post_is_retried_only_when_allowed(harness: Harness, servers: Servers) -> None:
    """A POST that gets a 503 is not sent again, unless POST is in retry_methods (then it is,
    like a GET always is); the fetcher-level method follows the same rule."""
    h = servers.http
    keys = [uuid.uuid4().hex for _ in range(4)]
    post, allowed, get = harness.run(
        [
            Request(f"{h}/flaky/{keys[0]}?fails=1", method="POST", data=b"x"),
            Request(f"{h}/flaky/{keys[1]}?fails=1", method="POST", retry_methods=["POST"]),
            f"{h}/flaky/{keys[2]}?fails=1",
        ],
        retries=2,
        backoff=0.01,
    )
    assert post.status == 503 and post.attempts == 1, shown(post)
    assert allowed.status == 200 and allowed.attempts == 2, shown(allowed)
    assert get.status == 200 and get.attempts == 2, shown(get)
    (fetcher_post,) = harness.run(
        [f"{h}/flaky/{keys[3]}?fails=1"], method="POST", retries=2, backoff=0.01
    )
    assert fetcher_post.status == 503 and fetcher_post.attempts == 1, shown(fetcher_post)


@check
def check_redirects_change_methods_as_the_rfc_says(harness: Harness, servers: Servers) -> None:
    """301/302 turn a POST into a GET, 303 anything but HEAD; the body and its headers go.
    307/308 keep the method and the body. A PUT through a 302 stays a PUT."""
    h = servers.http

    def hop(status: int, method: str) -> Request:
        return Request(
            f"{h}/redirect-to?url=/anything&status={status}",
            method=method,
            data={"f": "v"},
        )

    items = [hop(301, "POST"), hop(302, "POST"), hop(303, "PUT"), hop(307, "POST")]
    items += [hop(308, "PATCH"), hop(302, "PUT")]
    got = [_echo(r) for r in harness.run(items)]
    for e in got[:3]:
        assert e["method"] == "GET" and e["body"] == "", e
        assert "content-type" not in e["headers"] and "content-length" not in e["headers"], e
    for e, method in zip(got[3:], ["POST", "PATCH", "PUT"], strict=True):
        assert e["method"] == method and e["form"] == {"f": ["v"]}, e
    (head,) = harness.run([Request(f"{h}/redirect-to?url=/anything&status=303", method="HEAD")])
    assert head.status == 200 and head.redirects == 1 and head.body == b"", shown(head)


@check
def check_repeated_headers_are_kept_apart(harness: Harness, servers: Servers) -> None:
    """Several Set-Cookie lines: apart in header_list (names lower-cased), joined in headers."""
    r = harness.one(f"{servers.http}/cookies/set?a=1&b=2&c=3")
    assert r.ok, shown(r)
    cookies = [v for n, v in r.header_list if n == "set-cookie"]
    assert cookies == ["a=1", "b=2", "c=3"], r.header_list
    assert r.headers["set-cookie"] == "a=1, b=2, c=3", dict(r.headers)
    assert ("content-type", "application/json; charset=utf-8") in r.header_list, r.header_list


@check
def check_cookies_are_sent_on_later_requests_and_redirect_hops(
    harness: Harness, servers: Servers
) -> None:
    """With cookies=True, a cookie set by one response goes with the next request, and one set
    by a redirect response with the next hop; without it, no Cookie header is ever sent."""
    h = servers.http
    with harness.open(cookies=True) as session:
        hop = session.fetch(f"{h}/cookies/set?s=1&t=2&redirect=/cookies")
        assert hop.redirects == 1 and hop.json()["cookies"] == {"s": "1", "t": "2"}, shown(hop)
        later = session.fetch(Request(f"{h}/cookies"))
        assert later.json()["cookies"] == {"s": "1", "t": "2"}, later.json()
        session.fetch(f"{h}/cookies/set?s=&attrs=Max-Age%3D0")  # expired: removed from the jar
        assert session.fetch(f"{h}/cookies").json()["cookies"] == {"t": "2"}
    with harness.open() as session:
        hop = session.fetch(f"{h}/cookies/set?s=1&redirect=/cookies")
        assert hop.json()["header"] is None, hop.json()


@check
def check_cookie_domain_path_and_secure_rules(harness: Harness, servers: Servers) -> None:
    """A cookie without Domain is host-only (127.0.0.1's never goes to localhost), a Path
    limits where it goes, a Secure one is not sent over http, a foreign Domain is refused."""
    h = servers.http
    with harness.open(cookies=True) as session:
        for query in (
            "host=1&attrs=Path%3D/",
            "scoped=1&attrs=Path%3D/anything",
            "safe=1&attrs=Secure",
            "alien=1&attrs=Domain%3Dexample.com",
        ):
            assert session.fetch(f"{h}/cookies/set?{query}").ok
        here = session.fetch(f"{h}/cookies").json()["cookies"]
        assert here == {"host": "1"}, here
        scoped = session.fetch(f"{h}/anything/deeper").json()["headers"].get("cookie", "")
        assert sorted(scoped.split("; ")) == ["host=1", "scoped=1"], scoped
        other = session.fetch(servers.alias("/cookies")).json()
        assert other["header"] is None, f"127.0.0.1's cookies went to localhost: {other}"


@check
def check_a_jar_given_is_used_and_filled(harness: Harness, servers: Servers) -> None:
    """A CookieJar passed as cookies= supplies cookies and receives the new ones."""
    from http.cookiejar import Cookie, CookieJar

    jar = CookieJar()
    jar.set_cookie(
        Cookie(
            version=0,
            name="given",
            value="yes",
            port=None,
            port_specified=False,
            domain="127.0.0.1",
            domain_specified=False,
            domain_initial_dot=False,
            path="/",
            path_specified=True,
            secure=False,
            expires=None,
            discard=False,
            comment=None,
            comment_url=None,
            rest={},
        )
    )
    with harness.open(cookies=jar) as session:
        got = session.fetch(f"{servers.http}/cookies/set?new=1&redirect=/cookies").json()
    assert got["cookies"] == {"given": "yes", "new": "1"}, got
    assert sorted(c.name for c in jar) == ["given", "new"], list(jar)


@check
def check_text_and_json(harness: Harness, servers: Servers) -> None:
    """Result.text decodes with the response's charset (else as the html processor does),
    Result.json() parses the body."""
    js, page = harness.run(
        [Request(f"{servers.http}/anything", json={"k": "é"}), f"{servers.http}/html/2000"]
    )
    assert js.json()["json"] == {"k": "é"}, shown(js)
    assert js.body is not None and js.text == js.body.decode("utf-8"), shown(js)
    assert page.body is not None and page.text == page.body.decode("utf-8"), shown(page)
    assert "<html" in page.text[:300].lower(), page.text[:300]


@check
def check_bodies_saved_to_a_file_with_their_own_cap(harness: Harness, servers: Servers) -> None:
    """save_to streams the (decoded) body to a file, whole or not at all, capped by
    save_max_bytes while max_bytes still caps what memory holds."""
    h = servers.http
    with tempfile.TemporaryDirectory() as tmp:
        big, gz, over, missing = (os.path.join(tmp, n) for n in ("big", "gz", "over", "no/x"))
        results = harness.run(
            [
                Request(f"{h}/bytes/300000", save_to=big),
                Request(f"{h}/gzip/5000", save_to=gz),
                Request(f"{h}/bytes/300000?chunked=1", save_to=over, save_max_bytes=100000),
                Request(f"{h}/bytes/10", save_to=missing),
            ],
            max_bytes=1000,
        )
        saved, unzipped, capped, nowhere = results
        assert saved.ok and saved.body is None and saved.size == 300000, shown(saved)
        assert os.path.getsize(big) == 300000, os.path.getsize(big)
        with open(gz, "rb") as f:
            assert unzipped.ok and len(f.read()) == 5000, shown(unzipped)
        assert isinstance(capped.error, TooLarge), shown(capped)
        assert nowhere.error is not None and nowhere.error.kind == "SaveError", shown(nowhere)
        assert sorted(os.listdir(tmp)) == ["big", "gz"], f"left behind: {os.listdir(tmp)}"


@check
def check_requests_that_cannot_be_sent_get_a_typed_record(
    harness: Harness, servers: Servers
) -> None:
    """A bad method, data and json together, a streaming body or a bad header: each item gets
    its InvalidRequest record, without IO, and the others are fetched."""
    url = f"{servers.http}/anything"
    items: list[object] = [
        Request(url, method="GE T"),
        Request(url, data=b"x", json={}),
        Request(url, method="POST", data=iter([b"x"])),  # type: ignore[arg-type]
        Request(url, headers={"X": "a\r\nInjected: 1"}),
        Request(url, timeout=-1),
        Request(url),
    ]
    results = harness.run(items)
    for r in results[:5]:
        assert isinstance(r.error, InvalidRequest) and r.attempts == 0, shown(r)
    assert results[5].ok, shown(results[5])
    assert json.loads(results[5].body or b"{}")["method"] == "GET"
