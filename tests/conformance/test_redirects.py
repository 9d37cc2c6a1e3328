"""Redirects: followed by the core, within a limit, across hosts, private headers dropped."""

from __future__ import annotations

import json

from polyfetch import TooManyRedirects


def test_redirect_chain(servers, one):
    r = one(f"{servers.http}/redirect/3")
    assert r.status == 200 and r.body == b"redirected"
    assert r.redirects == 3 and r.final_url == f"{servers.http}/redirect/0"
    assert r.url == f"{servers.http}/redirect/3"


def test_redirect_limit_zero_refuses_redirects(servers, one):
    r = one(f"{servers.http}/redirect/1", max_redirects=0)
    assert isinstance(r.error, TooManyRedirects) and r.redirects == 0


def test_cross_host_redirect_drops_authorization(servers, run):
    same = f"{servers.http}/redirect-to?url=/headers"
    other = f"{servers.http}/redirect-to?url={servers.alias('/headers')}"
    kept, dropped = run([same, other], headers={"Authorization": "Bearer secret"})
    assert json.loads(kept.body)["authorization"] == "Bearer secret"
    assert "authorization" not in json.loads(dropped.body)
    assert dropped.final_url == servers.alias("/headers")


def test_credentials_in_url_become_basic_auth(servers, one):
    r = one(servers.http.replace("http://", "http://user:pa%20ss@") + "/headers")
    assert json.loads(r.body)["authorization"] == "Basic dXNlcjpwYSBzcw=="
    assert "user" not in r.final_url
