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
    if not isinstance(item, str):
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
