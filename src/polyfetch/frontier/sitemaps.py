"""Seeds from sitemaps: robots.txt ``Sitemap:`` lines, ``/sitemap.xml``, sitemap indexes.

`SitemapReader` is sans-IO: it says which URLs to fetch next (`next_round`) and
reads each response (`take`), adding the pages a sitemap lists to the frontier
at depth 0, with the sitemap as their referrer (the crawl's scope applies to
them; they do not widen it). For each seed's origin it first reads
``/robots.txt`` for ``Sitemap:`` lines (protego parses them), or, when there are
none, tries ``/sitemap.xml``. A sitemap index adds its sitemaps to the next
round. Every sitemap is read once (an index that lists itself ends there).

Hostile sitemaps stay bounded (sitemaps.org's limits): at most `MAX_BYTES`
decompressed (a gzip body, ``.xml.gz``, is inflated with that cap: a gzip bomb
stops there), `MAX_URLS` URLs each, `MAX_SITEMAPS` sitemaps per crawl and
`MAX_NESTING` levels of indexes. XML is parsed by defusedxml, which refuses
DTDs and entities (no "billion laughs", no external entities). A plain-text
sitemap (one URL a line) is read too. A sitemap that cannot be read is counted
(`errors`) and the crawl goes on from its seeds.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Iterable
from typing import TYPE_CHECKING

from polyfetch.frontier.scope import target_of

if TYPE_CHECKING:
    from polyfetch.frontier.core import Frontier
    from polyfetch.result import Result

MAX_BYTES = 50 * 2**20
MAX_URLS = 50_000
MAX_SITEMAPS = 1_000
MAX_NESTING = 4
_GZIP = b"\x1f\x8b"


class SitemapError(ValueError):
    """A sitemap that cannot be read (the message says why)."""


class SitemapReader:
    """The sitemap rounds of one crawl (see the module docstring)."""

    def __init__(self, frontier: Frontier, origins: Iterable[str]) -> None:
        self.frontier = frontier
        self._round: list[str] = [f"{origin}/robots.txt" for origin in dict.fromkeys(origins)]
        self._robots = set(self._round)
        self._sitemaps: set[str] = set()
        self._nesting = 0
        self._next: list[str] = []
        #: sitemaps that could not be read, with why
        self.errors: list[tuple[str, str]] = []

    def next_round(self) -> list[str]:
        """The URLs to fetch now (robots.txt files first, then sitemaps); [] when done."""
        urls, self._round = self._round, []
        return urls

    def take(self, result: Result) -> None:
        """Read one fetched robots.txt or sitemap; queue what it lists for the next round."""
        url = result.url
        if url in self._robots:
            origin = url[: -len("/robots.txt")]
            found = _robots_sitemaps(result) or [f"{origin}/sitemap.xml"]
            self._add_sitemaps(found)
            return
        if result.error is not None or result.status is None or not 200 <= result.status < 300:
            why = result.error.kind if result.error is not None else f"status {result.status}"
            self.errors.append((url, why))
            return
        try:
            kind, locs = parse(result.body or b"")
        except SitemapError as exc:
            self.errors.append((url, str(exc)))
            return
        stats = self.frontier.stats
        stats.sitemaps += 1
        if kind == "sitemapindex":
            if self._nesting < MAX_NESTING:
                self._add_sitemaps(locs)
            else:
                self.errors.append((url, f"sitemap indexes nested deeper than {MAX_NESTING}"))
            return
        stats.sitemap_urls += len(locs)
        for loc in locs:
            self.frontier.add(loc, 0, url)

    def _add_sitemaps(self, urls: Iterable[str]) -> None:
        for url in urls:
            if len(self._sitemaps) >= MAX_SITEMAPS:
                self.errors.append((url, f"more than {MAX_SITEMAPS} sitemaps"))
                return
            target = target_of(url)
            if isinstance(target, Exception) or target.url in self._sitemaps:
                continue
            self._sitemaps.add(target.url)
            if not self._round:
                self._nesting += 1
            self._round.append(target.url)


def _robots_sitemaps(result: Result) -> list[str]:
    if result.error is not None or result.status is None or not 200 <= result.status < 300:
        return []
    from protego import Protego

    text = (result.body or b"").decode("utf-8", "replace")
    return list(Protego.parse(text).sitemaps)


def parse(body: bytes) -> tuple[str, list[str]]:
    """``("urlset" | "sitemapindex", locs)`` of a sitemap body (XML, plain text, or either
    gzipped); `SitemapError` for one that cannot be read within the limits."""
    if body[:2] == _GZIP:
        body = _gunzip(body)
    if len(body) > MAX_BYTES:
        raise SitemapError(f"larger than {MAX_BYTES} bytes")
    head = body[:512].lstrip(b"\xef\xbb\xbf \t\r\n")
    if not head.startswith(b"<"):
        return "urlset", _text_sitemap(body)
    return _xml_sitemap(body)


def _gunzip(body: bytes) -> bytes:
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(body, MAX_BYTES + 1)
    except zlib.error as exc:
        raise SitemapError(f"bad gzip: {exc}") from None
    if len(out) > MAX_BYTES:
        raise SitemapError(f"inflates to more than {MAX_BYTES} bytes")
    return out


def _text_sitemap(body: bytes) -> list[str]:
    locs = []
    for raw in body.decode("utf-8", "replace").splitlines():
        line = raw.strip()
        if line.startswith(("http://", "https://")):
            locs.append(line)
            if len(locs) >= MAX_URLS:
                break
    return locs


def _xml_sitemap(body: bytes) -> tuple[str, list[str]]:
    from defusedxml import DefusedXmlException
    from defusedxml.ElementTree import iterparse

    kind = None
    locs: list[str] = []
    try:
        for event, element in iterparse(io.BytesIO(body), events=("start", "end")):
            name = element.tag.rsplit("}", 1)[-1]
            if kind is None:
                if name not in ("urlset", "sitemapindex"):
                    raise SitemapError(f"not a sitemap (its root is <{name}>)")
                kind = name
            elif event == "end" and name == "loc":
                text = (element.text or "").strip()
                if text:
                    locs.append(text)
                    if len(locs) >= MAX_URLS:
                        break
            if event == "end" and name in ("url", "sitemap"):
                element.clear()  # keep the parse's memory flat
    except (DefusedXmlException, SyntaxError) as exc:  # ParseError is a SyntaxError
        raise SitemapError(f"bad XML: {exc}") from None
    if kind is None:
        raise SitemapError("empty")
    return kind, locs
