"""The built-in processors: ``html``, ``sha256`` and ``text``.

Each takes a `Result` and returns plain data (``str``, ``int``, ``list``,
``dict``, ``None``), never library objects: what a processor returns is
pickled back to the parent, and an object that drags a parse tree along (lxml's
"smart strings") costs more to send than it did to compute.

Parsing uses selectolax's Lexbor engine (it releases the GIL while parsing). On
the ~100 KiB page of the built-in server (``/html/102400``), parse + title +
hrefs took 0.95 ms against 1.7 ms for lxml (best of 40 interleaved samples),
and resolving its 877 links with `urllib.parse.urljoin` took 7.4 ms on its own
against 0.65 ms for `_Resolver`, which has fast paths for the common shapes
of ``href``. The whole `html` processor takes about 4 ms for that page.

Bytes become text the way browsers decide (`polyfetch._charset.decode_html`,
which `Result.text` uses too); the charset used and where it came from are
reported.
"""

from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

from polyfetch._charset import decode_html

if TYPE_CHECKING:
    from polyfetch.result import Result

__all__ = ["decode_html", "html", "sha256", "text"]

#: Elements whose content is never shown.
INVISIBLE = ["script", "style", "noscript", "template"]
#: Elements that separate words: a space goes before each, so "<li>a</li><li>b</li>" reads "a b".
_BLOCKS = (
    "address,article,aside,blockquote,br,caption,dd,details,div,dl,dt,fieldset,figcaption,"
    "figure,footer,form,h1,h2,h3,h4,h5,h6,header,hr,li,main,nav,ol,option,p,pre,section,"
    "summary,table,td,th,tr,ul"
)


#: A relative reference that is a path of plain segments (and perhaps a query or fragment):
#: no scheme (no ":" before the first "/"), no backslash, no whitespace, not "." or "..".
_PLAIN_PATH = re.compile(r"[A-Za-z0-9_~%+\-][A-Za-z0-9_~%+\-./]*(?:[?#][^\s\\]*)?\Z")
#: What `urljoin` rewrites in a path: dot segments and empty ones.
_DOTS = re.compile(r"(?:^|/)\.\.?(?:/|$|#)|//")


class _Resolver:
    """Absolute http(s) URLs from ``href`` values, without `urljoin` for the common cases.

    `urljoin` costs ~7-10 µs a call; most links are absolute, root-relative or a plain
    relative path (``library/os.html#os.sep``, documentation's usual shape) and need only a
    prefix. Anything else (dot segments, other schemes, backslashes) goes through `urljoin`.
    """

    def __init__(self, base: str) -> None:
        self.base = base
        parts = urlsplit(base)
        self.scheme = parts.scheme.lower()
        self.origin = f"{parts.scheme}://{parts.netloc}"
        self.without_query = base.split("#", 1)[0].split("?", 1)[0]
        path = parts.path or "/"
        #: the base's directory: what a plain relative path is appended to
        self.directory = self.origin + path[: path.rfind("/") + 1]

    def __call__(self, href: str) -> str | None:
        # HTML strips leading and trailing ASCII whitespace from URLs.
        href = href.strip(" \t\n\r\f")
        if not href or href[0] == "#":
            return None  # the page itself
        head = href[:8].lower()
        if head.startswith(("http://", "https://")):
            url = href
        elif href.startswith("//"):
            url = f"{self.scheme}:{href}"
        elif href[0] == "/" and "/." not in href and "\\" not in href:
            url = self.origin + href
        elif href[0] == "?":
            url = self.without_query + href
        elif _PLAIN_PATH.match(href) and not _DOTS.search(href.split("?", 1)[0]):
            url = self.directory + href
        else:
            try:
                url = urljoin(self.base, href)
            except ValueError:  # e.g. an unbalanced IPv6 bracket
                return None
            if not url[:8].lower().startswith(("http://", "https://")):
                return None
        return url.split("#", 1)[0]


def _parse(result: Result) -> tuple[Any, str, str]:
    from selectolax.lexbor import LexborHTMLParser

    body = _body(result)
    markup, charset, source = decode_html(body, result.headers.get("content-type"))
    return LexborHTMLParser(markup), charset, source


def _body(result: Result) -> bytes:
    if result.body is None:
        raise ValueError("the response body was not kept (keep_body=False)")
    return result.body


def _visible_text(tree: Any) -> str:
    tree.strip_tags(INVISIBLE)
    for node in tree.css(_BLOCKS):
        node.insert_before(" ")
    root = tree.body or tree.root
    return " ".join(root.text(separator="").split()) if root is not None else ""


def html(result: Result) -> dict[str, Any]:
    """Title, absolute links, visible text length, charset and language of an HTML page.

    Links are ``<a href>`` and ``<area href>`` resolved against ``<base href>``
    (itself resolved against ``result.final_url``), http and https only, without
    fragments, deduplicated in document order. ``nofollow`` lists those of them whose
    every link says ``rel="nofollow"``, and ``robots`` the page's ``<meta name="robots">``
    directives (``"noindex,nofollow"``; None without one), which a crawl honours.
    """
    tree, charset, source = _parse(result)
    node = tree.css_first("title")
    title = " ".join(node.text().split()) if node is not None else None
    root = tree.root
    lang = root.attributes.get("lang") if root is not None else None
    lang = (lang or "").strip() or (result.headers.get("content-language") or "").strip() or None
    links, nofollow = page_links(tree, result)
    return {
        "title": title,
        "links": links,
        "text_length": len(_visible_text(tree)),
        "charset": charset,
        "charset_source": source,
        "lang": lang,
        "robots": meta_robots(tree),
        "nofollow": nofollow,
    }


def page_links(tree: Any, result: Result) -> tuple[list[str], list[str]]:
    """The page's links (see `html`), and those of them that only rel="nofollow" links name."""
    page = result.final_url or result.url
    base = tree.css_first("base[href]")
    if base is not None:
        resolved = _Resolver(page)(base.attributes.get("href") or "")
        page = resolved or page
    resolve = _Resolver(page)
    links: dict[str, bool] = {}  # url -> followed by some link
    for anchor in tree.css("a[href], area[href]"):
        attributes = anchor.attrs  # lazy: not a dict of every attribute per link
        url = resolve(attributes.get("href") or "")
        if url is not None:
            rel = attributes.get("rel")
            followed = not rel or "nofollow" not in rel.lower().split()
            links[url] = links.get(url, False) or followed
    return list(links), [url for url, followed in links.items() if not followed]


#: The ``<meta name>`` values whose robots directives apply to polyfetch.
ROBOTS_NAMES = ("robots", "polyfetch")


def meta_robots(tree: Any) -> str | None:
    """The ``<meta name="robots">`` (or ``name="polyfetch"``) directives of a page, lower-cased
    and joined with commas (``"noindex,nofollow"``); None when the page has none."""
    found: list[str] = []
    for node in tree.css("meta[name][content]"):
        attributes = node.attributes
        if (attributes.get("name") or "").strip().lower() in ROBOTS_NAMES:
            content = (attributes.get("content") or "").lower()
            found.extend(d for d in (part.strip() for part in content.split(",")) if d)
    return ",".join(dict.fromkeys(found)) if found else None


def text(result: Result) -> str:
    """The visible text of an HTML page: scripts and styles removed, whitespace normalised."""
    tree, _, _ = _parse(result)
    return _visible_text(tree)


def sha256(result: Result) -> str:
    """The hex SHA-256 digest of the (decoded) body."""
    return hashlib.sha256(_body(result)).hexdigest()
