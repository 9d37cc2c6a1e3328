"""A generated web site of known link structure, for the crawl checks and benchmarks.

The built-in server serves it under ``/site/{n}-{token}/`` (`polyfetch.server`),
and `expected` computes, from the same model, exactly which URLs a crawl must
fetch for given seeds, scope and depth, and at which depth: a breadth-first
walk that honours what a crawler must (``rel="nofollow"``, ``<meta
name="robots">``, ``X-Robots-Tag``, ``<base href>``, HTML by Content-Type only).

Page ``p{i}.html`` (0 <= i < n) links to its children ``p{2i+1}`` and ``p{2i+2}``,
to ``p{(7i+3) mod n}`` (so a page's shortest path is often not its tree path)
and to ``p0``. Pages with ``i mod 17 == 9`` live at ``x/p{i}.html`` and carry
``<base href="/site/KEY/">``, so their relative links resolve only through the
base. Some pages add: a ``rel="nofollow"`` link to ``trap{i}.html`` (i mod 5 ==
2; never to be fetched), a link to ``doc{i}.html``, a text/plain page whose body
holds links that must not be followed (i mod 7 == 1), ``<meta name="robots"
content="nofollow">`` (i mod 11 == 4) or an ``X-Robots-Tag: nofollow`` header
(i mod 13 == 6). Page 0 also holds links in every malformed shape (``mailto:``,
``javascript:``, a fragment, ``ftp:``, an unbalanced IPv6 bracket, a 10 KB URL,
``../`` past the root, other hosts on 127.0.0.0/8). Each page answers after a
delay of ``(37 i) mod 23`` ms (``fast`` in the key: none; a token that starts
with ``ms{D}``, as in ``1000-ms100x1a2b``: D ms, a latency-bound site for
benchmarks), so responses come back out of order. The server records when each
path was first requested (``/site-log/KEY``), so a check can tell that no link
was fetched before the page that led to it was handed back.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

#: Pages at most in one generated site.
MAX_PAGES = 10_000_000
_KEY = re.compile(r"(\d+)-([A-Za-z0-9_]+)")
_FIXED_DELAY = re.compile(r"-ms(\d{1,5})")
#: The longest fixed delay a key may ask for, ms.
MAX_DELAY_MS = 10_000
_NAME = re.compile(r"(x/)?(p|trap|doc|orphan)(\d+)\.html")
#: Pages only the site's sitemap lists (``orphan{i}.html``).
ORPHANS = 3


@dataclass
class Page:
    """What the server answers for one path of the site."""

    status: int = 200
    content_type: str = "text/html; charset=utf-8"
    #: (href as written, rel="nofollow")
    links: list[tuple[str, bool]] = field(default_factory=list)
    meta_robots: str | None = None
    header_robots: str | None = None
    base: str | None = None
    delay_ms: int = 0
    title: str = ""
    #: the body as it is (a sitemap), instead of one rendered from the links
    body: bytes | None = None
    #: where a redirect (status 302) points
    location: str | None = None

    @property
    def html(self) -> bool:
        return self.content_type.startswith("text/html")


def size(key: str) -> int | None:
    """The page count of a site key (``"{n}-{token}"``), or None for a bad key."""
    m = _KEY.fullmatch(key)
    if m is None:
        return None
    n = int(m.group(1))
    return n if 1 <= n <= MAX_PAGES else None


def href(k: int) -> str:
    """How pages link to page ``k`` (relative to the site's directory)."""
    return f"x/p{k}.html" if k % 17 == 9 else f"p{k}.html"


def page(key: str, name: str, port: int, origin: str | None = None) -> Page:
    """The page at ``/site/{key}/{name}`` of a server listening on ``port``, asked for as
    ``origin`` (``http://HOST:PORT``: what a sitemap's URLs start with)."""
    n = size(key)
    if n is not None and name in ("sitemap.xml", "sitemap-1.xml.gz"):
        return _sitemap(key, name, origin or f"http://127.0.0.1:{port}")
    traps = _traps(name)
    if n is not None and traps is not None:
        return traps
    m = _NAME.fullmatch(name)
    if n is None or m is None:
        return Page(status=404, content_type="text/plain")
    sub, kind, number = m.group(1), m.group(2), int(m.group(3))
    if kind == "p" and number < n and bool(sub) == (number % 17 == 9):
        return _page(key, n, number, port)
    if kind == "trap" and number < n and not sub:
        return Page(links=[("p0.html", False)], title=f"trap {number}")
    if kind == "doc" and number < n and not sub:
        return Page(content_type="text/plain", links=[(f"trap{number}.html", False)])
    if kind == "orphan" and number < ORPHANS and not sub:
        return Page(links=[("p0.html", False)], title=f"orphan {number}")
    return Page(status=404, content_type="text/plain")


def _traps(name: str) -> Page | None:
    """Pages no link of the site leads to, for the checks that seed them: ``cal/{k}.html``
    links to ``cal/{k+1}.html`` for ever (only limits stop a crawl there), and
    ``loop{k}.html`` redirects to ``loop{(k+1) mod 3}.html`` (a redirect loop across pages)."""
    m = re.fullmatch(r"cal/(\d+)\.html", name)
    if m is not None:
        k = int(m.group(1))
        return Page(links=[(f"{k + 1}.html", False), (f"{k}.html", False)], title=f"day {k}")
    m = re.fullmatch(r"loop(\d+)\.html", name)
    if m is not None:
        k = int(m.group(1))
        return Page(status=302, content_type="text/plain", location=f"loop{(k + 1) % 3}.html")
    return None


def sitemap_urls(base: str, key: str) -> list[str]:
    """What the site's sitemaps list (``base``: ``http://HOST:PORT``): the orphans, a page
    links reach too, and a URL on another host (outside a host scope)."""
    pages = [f"{base}/site/{key}/orphan{i}.html" for i in range(ORPHANS)]
    port = urlsplit(base).port
    return [*pages, f"{base}/site/{key}/p5.html", f"http://localhost:{port}/elsewhere"]


def _sitemap(key: str, name: str, base: str) -> Page:
    """``sitemap.xml``: an index of ``sitemap-1.xml.gz`` and of itself (read once);
    ``sitemap-1.xml.gz``: a gzipped urlset of `sitemap_urls`."""
    import gzip

    ns = 'xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"'
    if name == "sitemap.xml":
        maps = [f"{base}/site/{key}/sitemap-1.xml.gz", f"{base}/site/{key}/sitemap.xml"]
        items = "".join(f"<sitemap><loc>{u}</loc></sitemap>" for u in maps)
        xml = f'<?xml version="1.0"?><sitemapindex {ns}>{items}</sitemapindex>'
        return Page(content_type="application/xml", body=xml.encode())
    items = "".join(f"<url><loc>{u}</loc></url>" for u in sitemap_urls(base, key))
    xml = f'<?xml version="1.0"?><urlset {ns}>{items}</urlset>'
    return Page(content_type="application/gzip", body=gzip.compress(xml.encode()))


def _page(key: str, n: int, i: int, port: int) -> Page:
    links = [(href(k), False) for k in (2 * i + 1, 2 * i + 2) if k < n]
    links += [(href((7 * i + 3) % n), False), (href(0), False)]
    if i % 5 == 2:
        links.append((f"trap{i}.html", True))
    if i % 7 == 1:
        links.append((f"doc{i}.html", False))
    if i == 0:
        links += [
            ("mailto:someone@example.com", False),
            ("javascript:void(0)", False),
            ("#top", False),
            ("ftp://127.0.0.2/file", False),
            ("http://[::1/broken", False),
            (f"http://127.0.0.3:{port}/" + "a" * 10_000, False),
            ("../../../../../../nowhere.html", False),
            (f"http://127.0.0.2:{port}/site/{key}/p1.html", False),
        ]
    return Page(
        links=links,
        meta_robots="nofollow" if i % 11 == 4 else None,
        header_robots="nofollow" if i % 13 == 6 else None,
        base=f"/site/{key}/" if i % 17 == 9 else None,
        delay_ms=_delay(key, i),
        title=f"page {i}",
    )


def _delay(key: str, i: int) -> int:
    if "fast" in key:
        return 0
    fixed = _FIXED_DELAY.search(key)
    return min(int(fixed.group(1)), MAX_DELAY_MS) if fixed else (37 * i) % 23


def render(p: Page) -> bytes:
    """The body of a page."""
    if p.body is not None:
        return p.body
    if not p.html:
        return "".join(f'<a href="{h}">{h}</a>\n' for h, _ in p.links).encode()
    head = f"<title>{p.title}</title>"
    if p.base is not None:
        head += f'<base href="{p.base}">'
    if p.meta_robots is not None:
        head += f'<meta name="robots" content="{p.meta_robots}">'
    anchors = "".join(
        f'<li><a href="{h}"{" rel=nofollow" if nofollow else ""}>{h[:40]}</a></li>'
        for h, nofollow in p.links
    )
    page = f"<!doctype html><html><head>{head}</head><body><ul>{anchors}</ul></body></html>"
    return page.encode()


def expected(
    seeds: list[str],
    *,
    scope: str = "host",
    max_depth: int | None = None,
    accept: str | None = None,
    sitemaps: list[str] = (),  # type: ignore[assignment]
) -> dict[str, int]:
    """Every URL a crawl from ``seeds`` must fetch, with its depth (breadth first; see the
    module docstring), the pages ``sitemaps`` lists within the scope being seeds too.
    Scope "host" or "prefix"; every seed is a page of one site."""
    found: dict[str, int] = {}
    queue: deque[tuple[str, int]] = deque()
    hosts, prefixes = set(), []
    for seed in seeds:
        parts = urlsplit(seed)
        hosts.add(parts.netloc)
        prefixes.append(seed[: seed.rfind("/") + 1])

    def inside(url: str) -> bool:
        if scope == "prefix":
            return any(url.startswith(p) for p in prefixes)
        return urlsplit(url).netloc in hosts

    for seed in [*seeds, *(u for u in sitemaps if inside(u))]:
        if seed not in found:
            found[seed] = 0
            queue.append((seed, 0))
    while queue:
        url, depth = queue.popleft()
        parts = urlsplit(url)
        m = re.fullmatch(r"/site/([^/]+)/(.*)", parts.path)
        if m is None or parts.netloc not in hosts:
            continue
        p = page(m.group(1), m.group(2), parts.port or 80)
        if p.status != 200 or not p.html or "nofollow" in (p.meta_robots or ""):
            continue
        if "nofollow" in (p.header_robots or ""):
            continue
        if max_depth is not None and depth >= max_depth:
            continue
        base = urljoin(url, p.base) if p.base else url
        for link, nofollow in p.links:
            if nofollow:
                continue
            try:
                target = urljoin(base, link).split("#", 1)[0]
                urlsplit(target)
            except ValueError:
                continue
            if not target.startswith(("http://", "https://")) or target in found:
                continue
            if not inside(target):
                continue
            if accept is not None and re.search(accept, target) is None:
                continue
            found[target] = depth + 1
            queue.append((target, depth + 1))
    return found
