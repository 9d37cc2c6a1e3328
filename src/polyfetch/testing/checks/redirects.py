"""Redirects: followed by the core, within a limit, across hosts, private headers dropped."""

from __future__ import annotations

import json
import urllib.parse
import uuid

from polyfetch.errors import TooManyRedirects
from polyfetch.testing.checks._registry import check, shown
from polyfetch.testing.harness import Harness
from polyfetch.testing.servers import Servers


@check
def check_redirect_chain(harness: Harness, servers: Servers) -> None:
    """A chain of redirects is followed; the result counts them and gives the final URL."""
    r = harness.one(f"{servers.http}/redirect/3")
    assert r.status == 200 and r.body == b"redirected", shown(r)
    assert r.redirects == 3, shown(r)
    assert r.final_url == f"{servers.http}/redirect/0", f"final_url {r.final_url!r}"
    assert r.url == f"{servers.http}/redirect/3", f"url {r.url!r}"


@check
def check_attempts_count_retries_not_redirect_hops(harness: Harness, servers: Servers) -> None:
    """``attempts`` is 1 + retries on every backend: redirect hops are ``redirects`` only, and
    do not use up the retries of the hop that needs them."""
    r = harness.one(f"{servers.http}/redirect/3")
    assert (r.status, r.attempts, r.redirects) == (200, 1, 3), shown(r)
    flaky = urllib.parse.quote(f"/flaky/{uuid.uuid4().hex}?fails=1&retry_after=0", safe="")
    r = harness.one(f"{servers.http}/redirect-to?url={flaky}", retries=1, backoff=0.01)
    assert (r.status, r.attempts, r.redirects) == (200, 2, 1), shown(r)


@check
def check_redirect_limit_zero_refuses_redirects(harness: Harness, servers: Servers) -> None:
    """max_redirects=0 makes the first redirect a TooManyRedirects."""
    r = harness.one(f"{servers.http}/redirect/1", max_redirects=0)
    assert isinstance(r.error, TooManyRedirects) and r.redirects == 0, shown(r)


@check
def check_cross_host_redirect_drops_authorization(harness: Harness, servers: Servers) -> None:
    """Authorization is kept on a same-host redirect and dropped on a cross-host one."""
    same = f"{servers.http}/redirect-to?url=/headers"
    other = f"{servers.http}/redirect-to?url={servers.alias('/headers')}"
    kept, dropped = harness.run([same, other], headers={"Authorization": "Bearer secret"})
    assert kept.ok and dropped.ok, [shown(kept), shown(dropped)]
    kept_headers = json.loads(kept.body or b"{}")
    assert kept_headers.get("authorization") == "Bearer secret", kept_headers
    dropped_headers = json.loads(dropped.body or b"{}")
    assert "authorization" not in dropped_headers, f"sent to the other host: {dropped_headers}"
    assert dropped.final_url == servers.alias("/headers"), f"final_url {dropped.final_url!r}"


@check
def check_credentials_in_url_become_basic_auth(harness: Harness, servers: Servers) -> None:
    """user:password@ in the URL is sent as Basic auth and left out of final_url."""
    r = harness.one(servers.http.replace("http://", "http://user:pa%20ss@") + "/headers")
    assert r.ok, shown(r)
    sent = json.loads(r.body or b"{}")
    assert sent.get("authorization") == "Basic dXNlcjpwYSBzcw==", sent
    assert r.final_url is not None and "user" not in r.final_url, f"final_url {r.final_url!r}"
