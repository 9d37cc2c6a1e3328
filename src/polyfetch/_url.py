"""URL checking and normalisation, done once in the core so every backend sees the same URL.

yarl does the parsing (IDNA hosts, percent-encoding); this module decides what
is fetchable: http(s) only, a plausible host, a usable port. Credentials in the
URL become a Basic ``Authorization`` header, because the clients under the
backends disagree on whether to honour them.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass

from yarl import URL

from polyfetch.errors import InvalidURL, UnsupportedScheme

SCHEMES = ("http", "https")
_HOST = re.compile(r"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*\.?")
_MAX_URL = 64 * 1024
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
#: URLs that yarl would give back unchanged: lower-case scheme and host, no default port, no
#: credentials, no percent-escapes, no fragment, a path of plain characters. Most inputs are
#: such URLs, and for them parsing is one match instead of building and rebuilding a URL.
_PLAIN = re.compile(
    r"(https?)://([a-z0-9_-]+(?:\.[a-z0-9_-]+)*)(?::([1-9][0-9]{0,4}))?"
    r"((?:/[A-Za-z0-9\-._~!$&'()*+,;=:@/]*)?(?:\?[A-Za-z0-9\-._~!$&'()*+,;=:@/?]+)?)"
)
_DEFAULT_PORT = {"http": 80, "https": 443}
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
#: An IPv4 address already in its canonical form (no leading zeros, four parts).
_DOTTED_QUAD = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")


@dataclass(frozen=True, slots=True)
class Target:
    """A checked absolute URL and the parts a backend needs to open and address it."""

    url: str  #: normalised, ASCII-only, no fragment, no credentials
    scheme: str
    host: str  #: ASCII (IDNA) host name or IP literal, IPv6 without brackets
    port: int
    target: str  #: path and query, the request target of the request line
    authority: str  #: the Host header value
    authorization: str | None  #: Basic credentials taken from the URL, if any

    @property
    def host_key(self) -> str:
        """What ``per_host`` limits count against: the host name, whatever the port."""
        return self.host


def parse(item: object) -> Target:
    """Check and normalise one input item; raise `InvalidURL` or `UnsupportedScheme`."""
    if type(item) is str:
        plain = _plain(item)
        if plain is not None:
            return plain
    elif not isinstance(item, str):
        raise InvalidURL(f"expected a URL string, got {type(item).__name__}")
    text = item.strip(" \t\r\n\f\v\0")
    if not text:
        raise InvalidURL("empty URL")
    if len(text) > _MAX_URL:
        raise InvalidURL(f"URL longer than {_MAX_URL} characters")
    if _CONTROL.search(text):
        raise InvalidURL("URL contains control characters")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: yarl would silently drop it
            raise InvalidURL("URL is not valid Unicode (lone surrogate)") from None
    try:
        url = URL(text)
    except (ValueError, TypeError, UnicodeError) as exc:
        raise InvalidURL(f"cannot parse URL: {exc}") from None
    return _check(url)


def canonical_ipv4(host: str) -> str | None:
    """The dotted quad of a host written as an IPv4 address in any form the WHATWG URL
    standard accepts (``127.1``, ``2130706433``, ``0x7f.0.0.1``, ``0177.0.0.01``), else None.

    Browsers and curl canonicalise these; aiohttp refuses them. Done here, once, so every
    backend connects to the same address and the per-host limits key on one name.
    Raises `InvalidURL` for a host that ends in a number but is no IPv4 address.
    """
    parts = host.split(".")
    if parts[-1] == "" and len(parts) > 1:
        parts.pop()  # a trailing dot
    if not _number(parts[-1]):
        return None  # a domain name
    found = [_number(p) for p in parts]
    numbers = [n for n in found if n is not None]
    if len(parts) > 4 or len(numbers) < len(found):
        raise InvalidURL(f"invalid host {host!r}: ends in a number but is no IPv4 address")
    *head, last = numbers
    if any(n > 255 for n in head) or last >= 256 ** (5 - len(parts)):
        raise InvalidURL(f"invalid host {host!r}: an IPv4 part is out of range")
    value = last
    for i, n in enumerate(head):
        value += n << (8 * (3 - i))
    return ".".join(str((value >> shift) & 255) for shift in (24, 16, 8, 0))


def _number(part: str) -> int | None:
    """A WHATWG IPv4 part: decimal, 0x hex or 0-prefixed octal; None if it is none of them."""
    try:
        if part[:2] in ("0x", "0X"):
            return int(part[2:] or "0", 16)
        if len(part) > 1 and part[0] == "0":
            return int(part[1:], 8)
        return int(part, 10) if part.isdigit() else None
    except ValueError:
        return None


def _plain(text: str) -> Target | None:
    """The `Target` of a URL that needs no normalising, without yarl; None for any other."""
    m = _PLAIN.fullmatch(text)
    if m is None:
        return None
    scheme, host, port_text, rest = m.groups()
    if host[-1].isdigit() and not _DOTTED_QUAD.fullmatch(host):
        return None  # an IPv4 address in another form (or an invalid one): the slow path
    path = rest.split("?", 1)[0]
    if "/." in path and any(seg in (".", "..") for seg in path.split("/")):
        return None  # dot segments: yarl removes them
    if rest.startswith("?") or len(host) > 253:
        return None  # yarl adds the "/" before the query; long hosts get the slow path's error
    port = int(port_text) if port_text else _DEFAULT_PORT[scheme]
    if port_text and (port == _DEFAULT_PORT[scheme] or port > 65535):
        return None
    return Target(
        url=text,
        scheme=scheme,
        host=host,
        port=port,
        target=rest or "/",
        authority=f"{host}:{port_text}" if port_text else host,
        authorization=None,
    )


def join(base: Target, location: str) -> Target:
    """Resolve a redirect's ``Location`` against the URL that answered it."""
    try:
        if _CONTROL.search(location):
            raise ValueError("control characters")
        url = URL(base.url).join(URL(location.strip()))
    except (ValueError, TypeError, UnicodeError) as exc:
        raise InvalidURL(f"redirect to an invalid URL {location!r}: {exc}") from None
    return _check(url)


def _check(url: URL) -> Target:
    scheme = url.scheme.lower()
    if not scheme:
        raise InvalidURL("URL has no scheme (expected http:// or https://)")
    if scheme not in SCHEMES:
        raise UnsupportedScheme(f"unsupported scheme {scheme!r} (only http and https)")
    try:
        host = url.raw_host
        port = url.port
    except (ValueError, UnicodeError) as exc:
        raise InvalidURL(f"bad host or port: {exc}") from None
    if not host:
        raise InvalidURL("URL has no host")
    if ":" not in host:
        ipv4 = canonical_ipv4(host)
        if ipv4 is not None and ipv4 != host:
            host, url = ipv4, url.with_host(ipv4)
    if ":" not in host and not _HOST.fullmatch(host):
        raise InvalidURL(f"invalid host {host!r}")
    if len(host) > 253:
        raise InvalidURL("host name longer than 253 characters")
    if not port or not 0 < port < 65536:
        raise InvalidURL(f"invalid port {port!r}")
    authorization = None
    if url.raw_user is not None:
        pair = f"{url.user or ''}:{url.password or ''}".encode()
        authorization = "Basic " + base64.b64encode(pair).decode("ascii")
    clean = url.with_user(None).with_fragment(None)
    authority = f"[{host}]" if ":" in host else host
    if port != (443 if scheme == "https" else 80):
        authority += f":{port}"
    return Target(
        url=str(clean),
        scheme=scheme,
        host=host,
        port=port,
        target=clean.raw_path_qs or "/",
        authority=authority,
        authorization=authorization,
    )
