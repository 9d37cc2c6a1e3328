"""Proxies: which one an attempt goes through, decided once in the core for every backend.

Theory of operation. A fetcher's `Proxies` is built once (`Proxies.build`, from
`Settings` and, unless ``trust_env=False``, the environment read at that moment)
and shared by all its plans. For each attempt - a retry, and every redirect hop
too, since the target may change - the planner asks `Proxies.choose` for the
target's proxy and puts it on the `Send` (``send.proxy``); a backend only applies
it. Limits, rates, robots.txt and the auto-throttle stay keyed by the target host.

The environment, as curl reads it: ``http_proxy`` (lower case only: a CGI server
sets ``HTTP_PROXY`` from a request's ``Proxy:`` header, "httpoxy") for http
targets; ``https_proxy`` or ``HTTPS_PROXY`` for https ones; ``all_proxy`` or
``ALL_PROXY`` when the scheme's own is not set; ``no_proxy`` or ``NO_PROXY``, a
comma list of hosts that go direct: ``*`` (every host), a domain (``example.com``
or ``.example.com``: the domain and every name under it), an IP address or a
CIDR block (``10.0.0.0/8``, ``::1``). The lower-case name wins when both are set.
An explicit ``proxy=`` is used for every target, but ``no_proxy`` (the option,
or else the environment's) still applies, as with ``curl -x``. ``proxy=""``
means no proxy at all, whatever the environment says.

Proxy URLs: ``http://``, ``https://`` (TLS to the proxy), ``socks5://`` (the
client resolves the target's name) and ``socks5h://`` (the proxy resolves it),
with optional ``user:password@``; a URL without a scheme is ``http://`` and
without a port 1080 (443 for ``https://``), as curl has it. Credentials never
appear in records, logs or messages: `Proxy` shows itself as
``scheme://host:port``, and `proxied` scrubs them out of error messages.
"""

from __future__ import annotations

import base64
import ipaddress
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from polyfetch.errors import (
    ConfigError,
    ConnectError,
    ConnectTimeout,
    DNSError,
    FetchError,
    ProxyAuthError,
    ProxyError,
)

if TYPE_CHECKING:
    from polyfetch._plan import Response

SCHEMES = ("http", "https", "socks5", "socks5h")
HTTPS_PROXY_REFUSED = (
    "the greenlet backend cannot use an https:// proxy (TLS to the proxy, with the site's TLS "
    "inside it): use an http:// or socks5:// proxy, or the threads, gevent, asyncio or curl "
    "backend"
)
_DEFAULT_PORTS = {"http": 1080, "https": 443, "socks5": 1080, "socks5h": 1080}


@dataclass(frozen=True, slots=True)
class Proxy:
    """One proxy: where it is and how to log in; shown without its credentials."""

    scheme: str  #: "http", "https", "socks5" or "socks5h"
    host: str
    port: int
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        """``scheme://host:port``, without credentials (what may be shown)."""
        return f"{self.scheme}://{self.where}"

    @property
    def where(self) -> str:
        """``host:port``, IPv6 in brackets."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def socks(self) -> bool:
        """True for socks5:// and socks5h://."""
        return self.scheme.startswith("socks")

    @property
    def remote_dns(self) -> bool:
        """True when the proxy resolves the target's name (socks5h://; http(s) proxies do)."""
        return self.scheme != "socks5"

    @property
    def authorization(self) -> str | None:
        """The ``Proxy-Authorization`` value for an HTTP proxy with credentials."""
        if self.username is None:
            return None
        pair = f"{self.username}:{self.password or ''}".encode()
        return "Basic " + base64.b64encode(pair).decode("ascii")

    def __repr__(self) -> str:
        user = " (with credentials)" if self.username is not None else ""
        return f"Proxy({self.url}{user})"

    __str__ = __repr__

    def redact(self, text: str) -> str:
        """``text`` with this proxy's credentials taken out."""
        for secret in (self.password, self.username):
            if secret:
                text = text.replace(secret, "***")
        return text


def parse(text: object, error: type[Exception] = ConfigError) -> Proxy:
    """A proxy URL as a `Proxy`; raise ``error`` (credentials not repeated) if unusable."""
    if isinstance(text, Proxy):
        return text
    if not isinstance(text, str) or not text.strip():
        raise error(f"proxy must be a URL string, got {type(text).__name__}")
    raw = text.strip()
    if "://" not in raw:
        raw = "http://" + raw
    try:
        parts = urlsplit(raw)
        port = parts.port
        host = parts.hostname
    except ValueError as exc:
        raise error(f"invalid proxy URL: {_shown(raw)}: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise error(
            f"unsupported proxy scheme {scheme!r} in {_shown(raw)} "
            f"(use {', '.join(s + '://' for s in SCHEMES)})"
        )
    if not host:
        raise error(f"proxy URL has no host: {_shown(raw)}")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise error(f"a proxy URL is scheme://[user:password@]host[:port]: {_shown(raw)}")
    username = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password) if parts.password is not None else None
    return Proxy(scheme, host, port or _DEFAULT_PORTS[scheme], username, password)


def _shown(url: str) -> str:
    """A proxy URL as it may appear in a message: without its userinfo."""
    scheme, sep, rest = url.partition("://")
    return f"{scheme}{sep}{rest.rpartition('@')[2]}" if sep else url.rpartition("@")[2]


class NoProxy:
    """A ``no_proxy`` list: which target hosts go direct (see the module docstring)."""

    __slots__ = ("_all", "_names", "_nets")

    def __init__(self, entries: str | Iterable[str]) -> None:
        if isinstance(entries, str):
            entries = entries.split(",")
        self._all = False
        self._names: list[str] = []
        self._nets: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for entry in entries:
            entry = entry.strip().lower()
            if not entry:
                continue
            if entry == "*":
                self._all = True
                continue
            if entry.startswith("[") and "]" in entry:  # [::1] or [::1]:8080
                entry = entry[1 : entry.index("]")]
            try:
                self._nets.append(ipaddress.ip_network(entry, strict=False))
                continue
            except ValueError:
                pass
            host = entry.rsplit(":", 1)[0] if entry.count(":") == 1 else entry  # host:port
            self._names.append(host.lstrip(".").rstrip("."))

    def __bool__(self) -> bool:
        return self._all or bool(self._names) or bool(self._nets)

    def bypass(self, host: str) -> bool:
        """True when ``host`` (a target's, lower-case) must not go through a proxy."""
        if self._all:
            return True
        if self._nets:
            try:
                address = ipaddress.ip_address(host)
            except ValueError:
                pass
            else:
                return any(address in net for net in self._nets)
        host = host.rstrip(".")
        return any(host == name or host.endswith("." + name) for name in self._names)


def _env(environ: Mapping[str, str], lower: str, upper: bool = True) -> str | None:
    """The first non-empty of ``lower`` and (if ``upper``) its upper-case name."""
    for name in (lower, lower.upper()) if upper else (lower,):
        value = environ.get(name)
        if value and value.strip():
            return value.strip()
    return None


class Proxies:
    """The proxy chooser of one fetcher: a proxy per scheme and a bypass list."""

    __slots__ = ("by_scheme", "no_proxy")

    def __init__(self, by_scheme: dict[str, Proxy | None], no_proxy: NoProxy) -> None:
        self.by_scheme = by_scheme
        self.no_proxy = no_proxy

    @classmethod
    def build(
        cls,
        proxy: str | None,
        no_proxy: str | Iterable[str] | None,
        trust_env: bool,
        environ: Mapping[str, str] | None = None,
    ) -> Proxies | None:
        """The chooser for these options (None: no attempt ever goes through a proxy)."""
        env: Mapping[str, str] = (os.environ if environ is None else environ) if trust_env else {}
        if proxy == "":
            return None
        if proxy is not None:
            chosen = parse(proxy)
            by_scheme: dict[str, Proxy | None] = {"http": chosen, "https": chosen}
        else:
            every = _env(env, "all_proxy")
            http = _env(env, "http_proxy", upper=False) or every
            https = _env(env, "https_proxy") or every
            by_scheme = {
                "http": _from_env(http, "http_proxy"),
                "https": _from_env(https, "https_proxy"),
            }
            if by_scheme["http"] is None and by_scheme["https"] is None:
                return None
        bypass = NoProxy(no_proxy if no_proxy is not None else _env(env, "no_proxy") or "")
        if bypass._all:
            return None
        return cls(by_scheme, bypass)

    def choose(self, scheme: str, host: str) -> Proxy | None:
        """The proxy for a target (None: go direct)."""
        proxy = self.by_scheme.get(scheme)
        if proxy is None or (self.no_proxy and self.no_proxy.bypass(host)):
            return None
        return proxy

    def __repr__(self) -> str:
        return f"Proxies({self.by_scheme!r})"


def _from_env(value: str | None, name: str) -> Proxy | None:
    if value is None:
        return None
    try:
        return parse(value)
    except ConfigError as exc:
        raise ConfigError(
            f"{exc} (from the environment: {name}; trust_env=False ignores it)"
        ) from None


def proxied(proxy: Proxy, outcome: Response | FetchError) -> Response | FetchError:
    """An attempt's outcome through ``proxy`` in the taxonomy's terms, written once for every
    backend: a 407 answer is `ProxyAuthError`, a failure to reach the proxy `ProxyError`,
    and no message carries the proxy's credentials."""
    if not isinstance(outcome, FetchError):
        if outcome.status == 407:
            how = "credentials rejected" if proxy.username is not None else "no credentials given"
            return ProxyAuthError(
                f"proxy {proxy.where} answered 407 Proxy Authentication Required ({how})"
            )
        return outcome
    message = proxy.redact(outcome.message)
    if isinstance(outcome, ProxyError):
        if proxy.where not in message:
            message = f"proxy {proxy.where}: {message}"
        return type(outcome)(message) if message != outcome.message else outcome
    if type(outcome) is ConnectError:  # the one connection an attempt opens is the proxy's
        return ProxyError(f"proxy {proxy.where}: {message}")
    if type(outcome) is DNSError and proxy.remote_dns:  # only the proxy's name is ours to resolve
        return ProxyError(f"proxy {proxy.where}: {message}")
    if type(outcome) is ConnectTimeout:
        return ConnectTimeout(f"{message} (through proxy {proxy.where})")
    if message != outcome.message:
        return type(outcome)(message)
    return outcome


def for_item(proxy: object, fetcher: Proxies | None) -> Proxies | None:
    """The chooser of a `Request` with its own ``proxy`` ("" : direct); raises
    `InvalidRequest` for an unusable URL. The fetcher's bypass list still applies."""
    from polyfetch.errors import InvalidRequest

    if proxy == "":
        return None
    chosen = parse(proxy, InvalidRequest)
    return Proxies(
        {"http": chosen, "https": chosen},
        fetcher.no_proxy if fetcher is not None else NoProxy(()),
    )
