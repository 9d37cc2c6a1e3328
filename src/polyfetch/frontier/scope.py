"""Which discovered URLs a crawl may fetch: the scope of its seeds, and the user's patterns.

The scope is taken from the seeds, as wget and Scrapy users expect:

* ``host`` (the default, wget's): the URL's host is one of the seeds' hosts (any port, any
  scheme: ``http://h/`` and ``https://h/`` are one site);
* ``domain``: the URL's registrable domain (``docs.python.org`` -> ``python.org``,
  ``a.example.co.uk`` -> ``example.co.uk``) is one of the seeds'. Domains come from the
  Public Suffix List that publicsuffixlist ships, private suffixes included
  (``user.github.io`` is a site of its own), never downloaded at run time; an IP address or
  a name with no public suffix (``localhost``) is its own domain;
* ``prefix`` (wget's ``--no-parent``): the URL starts with one of the seeds' directories,
  the seed up to the last ``/`` of its path (``http://h/docs/a.html`` -> ``http://h/docs/``);
* ``any``: every http(s) URL, limited only by the patterns, depth and page limits.

``accept`` and ``reject`` are regular expressions searched in the whole canonical URL (as
wget's ``--accept-regex`` and ``--reject-regex``): a URL must match ``accept`` when it is
given and must not match ``reject``. Seeds are never refused by the scope they define.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Literal

from polyfetch import _url
from polyfetch.errors import ConfigError, FetchError

ScopeName = Literal["host", "domain", "prefix", "any"]
SCOPES: tuple[ScopeName, ...] = ("host", "domain", "prefix", "any")


def registrable_domain() -> Callable[[str], str]:
    """A function from host to its registrable domain (``docs.python.org`` ->
    ``python.org``), from the Public Suffix List that publicsuffixlist ships (private
    suffixes included: ``user.github.io`` is its own); an IP address, a public suffix or a
    name with none (``localhost``) is its own domain."""
    try:
        from publicsuffixlist import PublicSuffixList
    except ImportError:  # a dependency of the core: only a broken install lacks it
        raise ConfigError("domains need publicsuffixlist: pip install publicsuffixlist") from None
    suffixes = PublicSuffixList()  # the list the package ships: nothing is downloaded

    def domain(host: str) -> str:
        if _is_ip(host):
            return host
        return suffixes.privatesuffix(host) or host

    return domain


def _is_ip(host: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class Scope:
    """Decides whether a canonical URL is inside the crawl (see the module docstring)."""

    __slots__ = ("_accept", "_domain", "_keys", "_prefixes", "_reject", "kind")

    def __init__(
        self,
        kind: str = "host",
        *,
        accept: str | re.Pattern[str] | None = None,
        reject: str | re.Pattern[str] | None = None,
    ) -> None:
        if kind not in SCOPES:
            raise ConfigError(f"scope must be one of {', '.join(SCOPES)}, got {kind!r}")
        self.kind = kind
        self._accept = _pattern(accept, "accept")
        self._reject = _pattern(reject, "reject")
        self._domain = registrable_domain() if kind == "domain" else None
        self._keys: set[str] = set()  # seed hosts or domains
        self._prefixes: list[str] = []  # seed directories (kind "prefix")

    def add_seed(self, target: _url.Target) -> None:
        """Widen the scope to one more seed."""
        if self.kind == "prefix":
            path = canonical(target).split("?", 1)[0]
            directory = path[: path.rfind("/") + 1]  # canonical() gives every URL a path
            if directory not in self._prefixes:
                self._prefixes.append(directory)
        elif self.kind != "any":
            self._keys.add(self._key(target.host))

    def _key(self, host: str) -> str:
        return self._domain(host) if self._domain is not None else host

    def refuses(self, target: _url.Target) -> str | None:
        """Why ``target`` is outside the crawl (a sentence), or None when it is inside."""
        url = canonical(target)
        if self.kind == "host" or self.kind == "domain":
            if self._key(target.host) not in self._keys:
                return f"{self.kind} {self._key(target.host)} is not a seed's"
        elif self.kind == "prefix" and not any(url.startswith(p) for p in self._prefixes):
            return "not under a seed's directory"
        if self._accept is not None and self._accept.search(url) is None:
            return "does not match accept"
        if self._reject is not None and self._reject.search(url) is not None:
            return "matches reject"
        return None


def _pattern(value: str | re.Pattern[str] | None, name: str) -> re.Pattern[str] | None:
    if value is None or isinstance(value, re.Pattern):
        return value
    if not isinstance(value, str):
        raise ConfigError(f"{name} must be a regular expression string, got {value!r}")
    try:
        return re.compile(value)
    except re.error as exc:
        raise ConfigError(f"{name} is not a valid regular expression: {exc}") from None


def canonical(target: _url.Target) -> str:
    """The URL a crawl fetches and deduplicates ``target`` as: `polyfetch._url`'s normal form,
    with the root path written out (``http://h`` is ``http://h/``, as yarl writes ``http://h/?q``)."""
    url = target.url
    if url.find("/", len(target.scheme) + 3) == -1 and "?" not in url:
        return url + "/"
    return url


def target_of(url: object) -> _url.Target | FetchError:
    """The checked target of a discovered URL, or why it is not one (`InvalidURL`...)."""
    try:
        return _url.parse(url)
    except FetchError as exc:
        return exc
