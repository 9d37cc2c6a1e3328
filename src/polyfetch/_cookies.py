"""The fetcher's cookie jar, applied by the planner to every attempt and every redirect hop.

The rules are the standard library's (`http.cookiejar`: domain and host-only
cookies, path, secure, expiry, the default policy's checks); this module only
adapts the planner's `Target` and header pairs to the request and response
objects `CookieJar` expects, the way `urllib.request` would hand them over.
`CookieJar` locks itself (an `RLock` around every lookup and update), so one jar
serves every OS thread of the threads backend, and the greenlets and tasks of
the others, without a lock of ours.

`http.cookiejar` imports `urllib.request`, hence `socket` and `ssl`: it is
imported when a fetcher with cookies starts, never by ``import polyfetch``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from http.cookiejar import CookieJar

    from polyfetch._url import Target

Headers = tuple[tuple[str, str], ...]


class Cookies:
    """A `CookieJar` seen by the planner: `add_header` before a send, `extract` after."""

    __slots__ = ("jar",)

    def __init__(self, jar: CookieJar | None = None) -> None:
        if jar is None:
            from http.cookiejar import CookieJar

            jar = CookieJar()
        self.jar = jar

    def add_header(self, target: Target, headers: Headers) -> Headers:
        """``headers`` with the jar's Cookie header for ``target`` added, if it has any."""
        req = _Request(target, headers)
        self.jar.add_cookie_header(req)  # type: ignore[arg-type]
        return headers + tuple(req.added) if req.added else headers

    def extract(
        self,
        target: Target,
        headers: Headers,
        raw: Iterable[tuple[str | bytes, str | bytes]],
    ) -> None:
        """Store the Set-Cookie headers of a response to a request for ``target``."""
        set_cookie = [
            (v if isinstance(v, str) else v.decode("latin-1"))
            for n, v in raw
            if (n if isinstance(n, str) else n.decode("latin-1")).lower() == "set-cookie"
        ]
        if set_cookie:
            self.jar.extract_cookies(_Response(set_cookie), _Request(target, headers))  # type: ignore[arg-type]


class _Request:
    """What `CookieJar` reads of a `urllib.request.Request` (and its one write)."""

    __slots__ = ("added", "headers", "target")

    unverifiable = False  # every request is one the caller asked for, redirects included

    def __init__(self, target: Target, headers: Headers) -> None:
        self.target = target
        self.headers = headers
        self.added: list[tuple[str, str]] = []

    @property
    def type(self) -> str:
        return self.target.scheme

    @property
    def host(self) -> str:
        return self.target.authority

    @property
    def origin_req_host(self) -> str:
        return self.target.host

    def get_full_url(self) -> str:
        return self.target.url

    def get_host(self) -> str:
        return self.target.authority

    def get_type(self) -> str:
        return self.target.scheme

    def get_origin_req_host(self) -> str:
        return self.target.host

    def is_unverifiable(self) -> bool:
        return False

    def has_header(self, name: str) -> bool:
        low = name.lower()
        return any(n.lower() == low for n, _ in self.headers) or any(
            n.lower() == low for n, _ in self.added
        )

    def get_header(self, name: str, default: str | None = None) -> str | None:
        low = name.lower()
        for n, v in self.headers:
            if n.lower() == low:
                return v
        return default

    def header_items(self) -> list[tuple[str, str]]:
        return list(self.headers) + self.added

    def add_unredirected_header(self, name: str, value: str) -> None:
        self.added.append((name, value))


class _Response:
    """What `CookieJar.extract_cookies` reads of a response: ``info().get_all()``."""

    __slots__ = ("set_cookie",)

    def __init__(self, set_cookie: list[str]) -> None:
        self.set_cookie = set_cookie

    def info(self) -> _Response:
        return self

    def get_all(self, name: str, default: list[str] | None = None) -> list[str] | None:
        if name.lower() == "set-cookie":
            return self.set_cookie
        return default
