"""The proxy chooser (`polyfetch._proxy`) without IO: URLs, curl's environment rules, no_proxy,
redaction, and the planner putting a proxy on each attempt (redirect hops re-decide)."""

from __future__ import annotations

import json
import random

import pytest

from polyfetch import ConfigError, Fetcher, ProxyAuthError, ProxyError, Request
from polyfetch._plan import Plan, RequestSend, Response, Send
from polyfetch._proxy import NoProxy, Proxies, Proxy, parse, proxied
from polyfetch.errors import ConnectError, DNSError, InvalidRequest, ReadError
from polyfetch.settings import Settings
from polyfetch.testing import closed_port


def test_proxy_urls_parse_with_curls_defaults():
    assert parse("proxy.test") == Proxy("http", "proxy.test", 1080)
    assert parse("https://p.test") == Proxy("https", "p.test", 443)
    p = parse("socks5h://u%40x:p%3Aw@[::1]:9050")
    assert (p.scheme, p.host, p.port, p.username, p.password) == (
        "socks5h",
        "::1",
        9050,
        "u@x",
        "p:w",
    )
    assert p.url == "socks5h://[::1]:9050" and p.remote_dns and p.socks
    assert not parse("socks5://h:1").remote_dns


@pytest.mark.parametrize("bad", ["ftp://h:1", "http://", "http://h:99999", "http://h:1/path", 5])
def test_unusable_proxy_urls_are_config_errors_without_the_password(bad):
    with pytest.raises(ConfigError) as info:
        Settings(proxy=bad if not isinstance(bad, str) else bad.replace("//", "//u:hunter2@"))
    assert "hunter2" not in str(info.value)


def test_credentials_never_shown():
    p = parse("http://user:hunter2@h:8080")
    assert "hunter2" not in repr(p) and "hunter2" not in str(p) and "hunter2" not in p.url
    assert p.authorization == "Basic dXNlcjpodW50ZXIy"
    err = proxied(p, ConnectError("cannot connect to http://user:hunter2@h:8080"))
    assert isinstance(err, ProxyError) and "hunter2" not in err.message and "h:8080" in err.message
    assert isinstance(proxied(p, Response(407, {}, b"", 0)), ProxyAuthError)
    assert proxied(p, ReadError("x")) == ReadError("x")
    assert isinstance(proxied(p, DNSError("cannot resolve host 'h'")), ProxyError)
    assert isinstance(proxied(parse("socks5://h:1"), DNSError("t")), DNSError)  # the target's


def test_environment_as_curl_reads_it():
    env = {"HTTP_PROXY": "http://upper:1", "HTTPS_PROXY": "http://s:2", "no_proxy": ".skip.test"}
    chooser = Proxies.build(None, None, True, env)
    assert chooser is not None
    assert chooser.choose("http", "a.test") is None  # upper-case HTTP_PROXY: ignored (httpoxy)
    assert chooser.choose("https", "a.test") == Proxy("http", "s", 2)
    assert chooser.choose("https", "skip.test") is None
    assert chooser.choose("https", "www.skip.test") is None
    env = {"http_proxy": "h:1", "ALL_PROXY": "socks5h://all:3", "https_proxy": "s:2"}
    chooser = Proxies.build(None, None, True, env)
    assert chooser is not None and chooser.choose("http", "x").host == "h"  # type: ignore[union-attr]
    assert Proxies.build(None, None, True, {"all_proxy": "a:1"}).choose("https", "x").host == "a"  # type: ignore[union-attr]
    assert Proxies.build(None, None, False, env) is None  # trust_env=False
    assert Proxies.build(None, None, True, {}) is None
    assert Proxies.build("", None, True, env) is None  # proxy="": none at all
    assert Proxies.build(None, None, True, {**env, "NO_PROXY": "*"}) is None
    with pytest.raises(ConfigError, match="https_proxy"):
        Proxies.build(None, None, True, {"https_proxy": "ftp://x"})


def test_explicit_proxy_still_honours_no_proxy():
    chooser = Proxies.build("http://p:1", None, True, {"no_proxy": "10.0.0.0/8,[::1]"})
    assert chooser is not None
    assert chooser.choose("http", "10.1.2.3") is None and chooser.choose("http", "::1") is None
    assert chooser.choose("http", "11.0.0.1") == Proxy("http", "p", 1)
    chooser = Proxies.build("http://p:1", ["a.test"], True, {"no_proxy": "*"})  # option wins
    assert chooser is not None and chooser.choose("http", "a.test") is None
    assert chooser.choose("http", "b.test") is not None


def test_no_proxy_entries():
    bypass = NoProxy("example.com, .other.test ,host:8080,192.168.0.0/16,,")
    for host in ("example.com", "www.example.com", "other.test", "a.other.test", "host"):
        assert bypass.bypass(host), host
    for host in ("badexample.com", "example.org", "192.169.0.1", "hostx"):
        assert not bypass.bypass(host), host
    assert bypass.bypass("192.168.3.4")
    assert not NoProxy("")


def plan(item: object, **options) -> Plan:
    settings = Settings.build(**options)
    return Plan(
        item=item,
        index=0,
        settings=settings,
        started=100.0,
        rng=random.Random(1),
        proxies=Proxies.build(settings.proxy, settings.no_proxy, False),
    )


def test_no_proxy_costs_a_plain_send():
    send = plan("http://a.test/").advance(None, 100.0)
    assert type(send) is Send and send.proxy is None


def test_each_attempt_and_redirect_hop_chooses_its_proxy():
    p = plan("http://a.test/", proxy="http://u:pw@p.test:3128", no_proxy="direct.test")
    send = p.advance(None, 100.0)
    assert isinstance(send, RequestSend) and send.proxy == parse("http://u:pw@p.test:3128")
    assert not any(k.lower() == "proxy-authorization" for k, _ in send.headers)
    hop = p.advance(Response(302, {"location": "http://direct.test/"}, b"", 0), 100.1)
    assert isinstance(hop, Send) and hop.proxy is None
    hop = p.advance(Response(302, {"location": "https://b.test/"}, b"", 0), 100.2)
    assert isinstance(hop, Send) and hop.proxy is not None


def test_a_request_may_name_its_own_proxy():
    send = plan(Request("http://a.test/", proxy="socks5h://s:1")).advance(None, 100.0)
    assert isinstance(send, Send) and send.proxy == Proxy("socks5h", "s", 1)
    send = plan(Request("http://a.test/", proxy=""), proxy="http://p:1").advance(None, 100.0)
    assert isinstance(send, Send) and send.proxy is None
    done = plan(Request("http://a.test/", proxy="gopher://x")).advance(None, 100.0)
    assert isinstance(done.result.error, InvalidRequest)  # type: ignore[union-attr]


def test_greenlet_refuses_an_https_proxy_at_start():
    from polyfetch import BackendError

    with pytest.raises(BackendError, match="greenlet"), Fetcher("greenlet", proxy="https://p:1"):
        pass


@pytest.fixture(scope="module")
def proxies(tmp_path_factory):
    pytest.importorskip("proxy")
    from polyfetch.testing.proxies import start_proxies

    with start_proxies(tmp_path_factory.mktemp("proxies")) as running:
        yield running


def _cli(*argv: str) -> tuple[int, str, str]:
    import io

    from polyfetch.cli import main

    out, err = io.StringIO(), io.StringIO()
    status = main(list(argv), stdout=out, stderr=err, stdin=io.StringIO())
    return status, out.getvalue(), err.getvalue()


def test_cli_get_and_crawl_go_through_the_proxy_given(servers, proxies, tmp_path, monkeypatch):
    from polyfetch.testing.proxies import ProxyServers

    url = servers.on(13, "/bytes/4")
    mark = ProxyServers.size(proxies.http_auth_log)
    status, out, err = _cli("get", "-x", proxies.login(proxies.http_auth), url)
    assert status == 0, err
    assert json.loads(out)["status"] == 200
    assert f"GET {url.split('://')[1]}" in ProxyServers.since(
        proxies.http_auth_log, mark, wait_for="GET"
    )
    urls = tmp_path / "urls.txt"
    urls.write_text(f"{url}\n{servers.on(14, '/bytes/4')}\n")
    monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{closed_port()}")
    status, out, err = _cli("crawl", str(urls), "--noproxy", servers.hosts[13], "-q")
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["status"] for r in records] == [200, None], records  # the other: a dead proxy
    assert records[1]["error"] == "ProxyError", records
    assert "proxy" not in json.dumps(records[0]).lower(), records  # records show the target
    status, out, err = _cli("crawl", str(urls), "--no-proxy-env", "-q")
    assert [json.loads(line)["status"] for line in out.splitlines()] == [200, 200], out


def test_cli_refuses_an_unusable_proxy_with_exit_2():
    status, _, err = _cli("get", "-x", "ftp://u:hunter2@h", "http://127.0.0.1:1/")
    assert status == 2 and "proxy" in err and "hunter2" not in err


def test_greenlet_gives_an_https_proxy_from_a_request_a_proxy_error_record():
    with Fetcher("greenlet") as f:
        r = f.fetch(Request("http://127.0.0.1:1/", proxy="https://127.0.0.1:1"))
    assert isinstance(r.error, ProxyError) and "greenlet" in r.error.message, r


def test_debug_log_names_the_proxy_without_credentials(caplog):
    import logging

    with caplog.at_level(logging.DEBUG, logger="polyfetch"):
        plan("http://a.test/", proxy="http://u:hunter2@p.test:3128").advance(None, 100.0)
    text = caplog.text
    assert "via http://p.test:3128" in text and "hunter2" not in text


def test_curl_proxy_error_reads_407_as_a_status_not_inside_a_port() -> None:
    """libcurl names the target's port in a dead proxy's message ("localhost:40787"): that is a
    ProxyError; only a 407 answer is a ProxyAuthError."""
    pytest.importorskip("pycurl")
    from polyfetch.backends.curl import _proxy_error
    from polyfetch.errors import ProxyAuthError, ProxyError

    dead = _proxy_error(7, "Failed to connect to localhost:40787 over proxy 127.0.0.1: refused")
    assert type(dead) is ProxyError, dead
    assert type(_proxy_error(56, "CONNECT tunnel failed, response 407")) is ProxyAuthError
