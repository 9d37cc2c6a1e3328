"""Proxies: HTTP (absolute-form and CONNECT) and SOCKS5, credentials, the environment, no_proxy.

Every check runs against real proxies on 127.0.0.1 (`polyfetch.testing.proxies`:
proxy.py and pproxy) and proves the way a request went from the proxy's own
access log. Each check takes the running proxies as ``proxies``; without them
(`check_backend`) it starts a set for itself.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator

from polyfetch.errors import BackendError, DNSError, ProxyAuthError, ProxyError, TLSError
from polyfetch.request import Request
from polyfetch.testing.checks._registry import check, shown
from polyfetch.testing.harness import Harness, SkipCheck
from polyfetch.testing.proxies import PASSWORD, ProxyServers, start_proxies
from polyfetch.testing.servers import Servers, closed_port, isolated_network

_ENV = tuple(f"{name}_proxy".upper() for name in ("http", "https", "all", "no"))
_ENV += tuple(name.lower() for name in _ENV)


@contextlib.contextmanager
def _running(proxies: ProxyServers | None, servers: Servers) -> Iterator[ProxyServers]:
    if proxies is not None:
        yield proxies
    else:
        with start_proxies(tls=tls_files(servers)) as started:
            yield started


def tls_files(servers: Servers) -> tuple[str, str]:
    """The test server's certificate (for localhost) and key, for the https:// proxy."""
    directory = os.path.dirname(servers.ca_file)
    return os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")


@contextlib.contextmanager
def environment(**values: str) -> Iterator[None]:
    """The proxy variables of ``os.environ`` set to ``values`` (the others unset), restored."""
    saved = {name: os.environ.pop(name) for name in _ENV if name in os.environ}
    os.environ.update(values)
    try:
        yield
    finally:
        for name in _ENV:
            os.environ.pop(name, None)
        os.environ.update(saved)


def _through(log: str) -> Callable[..., bool]:
    """A test of whether ``log`` (from now on) shows a request for a given text (waiting up
    to ``wait`` s for it: a proxy logs after the exchange)."""
    mark = ProxyServers.size(log)
    return lambda text, wait=3.0: text in ProxyServers.since(log, mark, text, wait)


def _https_port(servers: Servers) -> str:
    return servers.https.rsplit(":", 1)[1]


@check
def check_http_proxy_carries_http_and_https_targets(
    harness: Harness, servers: Servers, proxies: ProxyServers | None = None
) -> None:
    """An http:// proxy gets plain http requests in absolute form and https ones through
    CONNECT; the records show the target, never the proxy."""
    with _running(proxies, servers) as px:
        seen = _through(px.http_log)
        plain = servers.on(6, "/bytes/11")
        secure = f"{servers.https}/bytes/12"
        results = harness.run([plain, secure], proxy=px.http, ca_bundle=servers.ca_file)
        for r, size in zip(results, (11, 12), strict=True):
            assert r.error is None and r.status == 200 and r.size == size, shown(r)
        assert results[0].final_url == plain and results[1].final_url == secure
        assert seen(f"GET {plain.split('://')[1]}"), "the http request did not go through"
        assert seen(f"CONNECT localhost:{_https_port(servers)}"), "no CONNECT for https"


@check
def check_proxy_credentials_are_sent_and_refusals_are_proxy_errors(
    harness: Harness, servers: Servers, proxies: ProxyServers | None = None
) -> None:
    """Credentials in the proxy URL log in (HTTP Basic, SOCKS5 login); none or wrong ones
    are a ProxyAuthError (407, not retried) or a ProxyError (SOCKS5), whose message never
    holds the password."""
    with _running(proxies, servers) as px:
        urls = [servers.on(7, "/bytes/3"), f"{servers.https}/bytes/4"]
        ok = dict(ca_bundle=servers.ca_file, retries=1, backoff=0.01)
        for proxy in (px.login(px.http_auth), px.login("socks5h://" + px.socks_auth)):
            for r in harness.run(urls, proxy=proxy, **ok):
                assert r.error is None and r.status == 200, f"{proxy.split(':')[0]}: {shown(r)}"
        # the proxy's credentials go to the proxy only, never through the tunnel
        echo = harness.one(
            f"{servers.https}/anything", proxy=px.login(px.http_auth), ca_bundle=servers.ca_file
        )
        assert echo.status == 200, shown(echo)
        sent = {k.lower() for k in echo.json()["headers"]}
        assert "proxy-authorization" not in sent, f"the site got the proxy's credentials: {sent}"
        wrong = "wrong-pw-123"
        for proxy in (px.http_auth, px.login(px.http_auth, password=wrong)):
            for r in harness.run(urls, proxy=proxy, **ok):
                assert isinstance(r.error, ProxyAuthError), shown(r)
                assert r.attempts == 1, f"a 407 is not retried: {shown(r)}"
                assert wrong not in r.error.message and PASSWORD not in r.error.message
                assert px.http_auth.split("//")[1] in r.error.message, shown(r)
        socks = "socks5h://" + px.socks_auth
        for proxy in (socks, px.login(socks, password=wrong)):
            for r in harness.run(urls, proxy=proxy, retries=0, ca_bundle=servers.ca_file):
                # pproxy hangs up on a refused login: a ProxyError (not always ProxyAuthError)
                assert isinstance(r.error, ProxyError), shown(r)
                assert wrong not in r.error.message, shown(r)


@check
def check_socks5_resolves_locally_and_socks5h_at_the_proxy(
    harness: Harness, servers: Servers, proxies: ProxyServers | None = None
) -> None:
    """socks5h:// hands the proxy the host name, socks5:// an address we resolved (pproxy's
    log shows which); a name only we fail to resolve is a DNSError through socks5://."""
    with _running(proxies, servers) as px:
        port = servers.port
        seen = _through(px.socks_log)
        r = harness.one(f"http://localhost:{port}/bytes/5", proxy="socks5h://" + px.socks)
        assert r.status == 200, shown(r)
        assert seen(f"-> localhost:{port}"), "socks5h: the proxy was not given the name"
        seen = _through(px.socks_log)
        r = harness.one(servers.on(8, "/bytes/6"), proxy="socks5://" + px.socks)
        assert r.status == 200, shown(r)
        assert seen(f"-> {servers.hosts[8]}:{port}"), "socks5: the request did not go through"
        secure = f"{servers.https}/bytes/7"
        r = harness.one(secure, proxy="socks5h://" + px.socks, ca_bundle=servers.ca_file)
        assert r.status == 200 and r.size == 7, shown(r)
        if isolated_network():  # no DNS query may leave: only then ask for a missing name
            name = "no-such-host.invalid"
            r = harness.one(f"http://{name}/", proxy="socks5://" + px.socks, retries=0)
            assert isinstance(r.error, DNSError), f"socks5:// resolves here: {shown(r)}"
            seen = _through(px.socks_log)
            r = harness.one(f"http://{name}/", proxy="socks5h://" + px.socks, retries=0)
            # pproxy accepts the CONNECT, fails to resolve, hangs up: a ReadError or ProxyError
            assert r.error is not None and not isinstance(r.error, DNSError), shown(r)
            assert seen(f"-> {name}:80"), "socks5h:// did not hand the proxy the name"


@check
def check_environment_and_no_proxy_choose_the_way(
    harness: Harness, servers: Servers, proxies: ProxyServers | None = None
) -> None:
    """http_proxy / HTTPS_PROXY / no_proxy are honoured as curl does (upper-case
    HTTP_PROXY is not), trust_env=False ignores them, no_proxy= and Request(proxy=) win."""
    with _running(proxies, servers) as px:
        dead = f"http://127.0.0.1:{closed_port()}"
        via, direct = servers.on(9, "/bytes/2"), servers.on(10, "/bytes/2")
        secure = f"{servers.https}/bytes/2"
        opts = dict(ca_bundle=servers.ca_file, retries=0)
        bypass = f"{servers.hosts[10]},.example.com"
        with environment(http_proxy=px.http, HTTPS_PROXY=px.http, no_proxy=bypass):
            seen = _through(px.http_log)
            for r in harness.run([via, direct, secure], **opts):
                assert r.status == 200, shown(r)
            assert seen(f"GET {via.split('://')[1]}"), "http_proxy was not used"
            assert seen("CONNECT localhost:"), "HTTPS_PROXY was not used"
            assert not seen(direct.split("://")[1], 0.3), "no_proxy did not bypass the proxy"
            # a dead proxy from the environment is not even tried with trust_env=False
            with environment(http_proxy=dead, HTTPS_PROXY=dead):
                for r in harness.run([via, secure], trust_env=False, **opts):
                    assert r.status == 200, f"trust_env=False: {shown(r)}"
        with environment(HTTP_PROXY=dead):  # httpoxy: curl ignores upper-case HTTP_PROXY
            r = harness.one(via, **opts)
            assert r.status == 200, f"HTTP_PROXY must be ignored: {shown(r)}"
        with environment(ALL_PROXY=dead):
            r = harness.one(via, **opts)
            assert isinstance(r.error, ProxyError), f"ALL_PROXY was not used: {shown(r)}"
        with environment():
            r = harness.one(via, proxy=dead, no_proxy=["127.0.0.0/8"], **opts)
            assert r.status == 200, f"no_proxy= (CIDR) must bypass: {shown(r)}"
            items = [
                Request(via, proxy=""),
                Request(direct, proxy=dead),
                Request(via, proxy="ftp://x"),
            ]
            a, b, c = harness.run(items, proxy=dead, **opts)
            assert a.status == 200, f"Request(proxy='') goes direct: {shown(a)}"
            assert isinstance(b.error, ProxyError), shown(b)
            assert c.error is not None and c.error.kind == "InvalidRequest", shown(c)


@check
def check_a_dead_proxy_gives_each_item_a_proxy_error(
    harness: Harness, servers: Servers, proxies: ProxyServers | None = None
) -> None:
    """Nobody listening at the proxy: every item gets one record, a ProxyError naming the
    proxy (not its credentials), retried as a connect failure."""
    port = closed_port()
    for proxy in (f"http://user:pw-zzz@127.0.0.1:{port}", f"socks5h://127.0.0.1:{port}"):
        urls = [servers.on(i, "/bytes/1") for i in range(3)] + [f"{servers.https}/bytes/1"]
        results = harness.run(urls, proxy=proxy, retries=1, backoff=0.01)
        for r in results:
            assert isinstance(r.error, ProxyError), shown(r)
            assert f"127.0.0.1:{port}" in r.error.message and "pw-zzz" not in r.error.message
            assert r.attempts == 2, shown(r)


@check
def check_per_host_limits_key_on_the_target_through_a_proxy(
    harness: Harness, servers: Servers, proxies: ProxyServers | None = None
) -> None:
    """per_host counts the target hosts, not the one proxy they all go through."""
    with _running(proxies, servers) as px:
        servers.reset_stats()
        urls = [servers.on(11, "/delay/60"), servers.on(12, "/delay/60")] * 8
        for r in harness.run(urls, proxy="socks5://" + px.socks, concurrency=8, per_host=2):
            assert r.status == 200, shown(r)
        stats = servers.stats()
        hosts = {k: v for k, v in stats.items() if k != "_total"}
        for host, counts in hosts.items():
            assert counts["peak"] <= 2, f"per_host=2, but {host} saw {counts}"
        assert stats["_total"]["peak"] >= 3, f"the proxy's host was the key: {stats['_total']}"


@check
def check_https_proxy_speaks_tls_to_the_proxy(
    harness: Harness, servers: Servers, proxies: ProxyServers | None = None
) -> None:
    """An https:// proxy: TLS to the proxy (verified like any server), then absolute-form or
    CONNECT inside it. The greenlet hub cannot nest TLS and refuses it at start."""
    if harness.name == "greenlet":
        check_https_proxy_refused_by_the_greenlet_backend(harness)
        return
    with _running(proxies, servers) as px:
        if px.https is None:
            raise SkipCheck("the test proxies were started without a certificate")
        seen = _through(px.socks_log)
        plain, secure = servers.on(15, "/bytes/8"), f"{servers.https}/bytes/9"
        for r in harness.run([plain, secure], proxy=px.https, ca_bundle=servers.ca_file):
            assert r.error is None and r.status == 200, shown(r)
        assert seen(f"-> {plain.split('://')[1].split('/')[0]}"), "not through the https proxy"
        assert seen(f"-> localhost:{_https_port(servers)}"), "https not through the proxy"
        r = harness.one(plain, proxy=px.https, retries=0)  # the proxy's CA is not trusted
        assert isinstance(r.error, TLSError | ProxyError), shown(r)


def check_https_proxy_refused_by_the_greenlet_backend(harness: Harness) -> None:
    """The greenlet hub cannot nest TLS: an https:// proxy is a BackendError at start."""
    try:
        with harness.open(proxy="https://127.0.0.1:1"):
            pass
    except BackendError as exc:
        assert "greenlet" in str(exc) and "https://" in str(exc)
    else:
        raise AssertionError("the greenlet backend took an https:// proxy")
