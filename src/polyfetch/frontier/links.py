"""A page's links to follow, and the robots directives that say whether to follow them.

`extract` runs in a post-processing worker (it is a processor: workers import it by
name), so parsing never stalls the fetching: for an HTML response (by its
Content-Type, not the URL's extension) it gives the page's ``<a href>`` and ``<area
href>`` links, resolved against ``<base href>`` and the final URL, without those only
``rel="nofollow"`` links name, and none at all when ``<meta name="robots">`` (or
``name="polyfetch"``) says ``nofollow`` or ``none``. It is the ``html`` processor's link
reading (`polyfetch.postprocess.builtins.page_links`), so a crawl that processes with
``html`` parses each page once and takes the links from its value (`follow_html`).

`directives` reads the ``X-Robots-Tag`` response header in the parent: the
directives meant for every crawler, and those addressed to polyfetch's product token.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from polyfetch.request import Request
    from polyfetch.result import Result

#: Media types whose links a crawl follows.
HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
#: What `extract` gives for an HTML page: the links to follow and the meta robots directives.
Extracted = tuple[list["str | Request"], "str | None"]
_AGENT = "polyfetch"
#: ``X-Robots-Tag`` directives that take a value after a colon (not a crawler's name).
_VALUED = frozenset({"unavailable_after", "max-snippet", "max-image-preview", "max-video-preview"})
_NAMED = re.compile(r"\s*([A-Za-z0-9_.-]+)\s*:(.*)")


def is_html(result: Result) -> bool:
    """Whether the response says it is HTML (Content-Type; the URL's extension is ignored)."""
    return result.content_type in HTML_TYPES


def extract(result: Result) -> Extracted | None:
    """The links of an HTML page that may be followed, and its meta robots directives;
    None for a response that is not HTML (a processor: see the module docstring)."""
    if not is_html(result) or not result.body:
        return None
    from polyfetch.postprocess.builtins import _parse, meta_robots, page_links

    tree, _, _ = _parse(result)
    robots = meta_robots(tree)
    if robots is not None and not follows(robots):
        return [], robots
    found, nofollow = page_links(tree, result)
    if nofollow:
        skip = set(nofollow)
        found = [url for url in found if url not in skip]
    return list(found), robots


def follow_html(value: Any) -> Extracted | None:
    """`extract`'s answer from the ``html`` processor's value (None if it is not one)."""
    if not isinstance(value, dict) or not isinstance(value.get("links"), list):
        return None
    robots = value.get("robots")
    if robots is not None and not follows(robots):
        return [], robots
    links: list[str | Request] = value["links"]
    nofollow = value.get("nofollow")
    if nofollow:
        skip = set(nofollow)
        links = [url for url in links if url not in skip]
    return links, robots


def follows(robots: str) -> bool:
    """Whether robots directives (``"noindex,nofollow"``) let a crawler follow the links."""
    words = {word.strip() for word in robots.split(",")}
    return "nofollow" not in words and "none" not in words


def directives(header_lines: Iterable[tuple[str, str]]) -> str | None:
    """The ``X-Robots-Tag`` directives for polyfetch among response header lines (names
    lower-cased), joined with commas; None when there are none.

    A line may address one crawler (``X-Robots-Tag: otherbot: noindex``): only those for
    polyfetch's product token count beside the general ones.
    """
    found: list[str] = []
    for name, value in header_lines:
        if name != "x-robots-tag":
            continue
        named = _NAMED.match(value)
        if named is not None and named.group(1).lower() not in _VALUED:
            if named.group(1).lower() != _AGENT:
                continue  # meant for another crawler
            value = named.group(2)
        for part in value.split(","):
            word = part.strip().lower()
            if word and ":" not in word:
                found.append(word)
    return ",".join(dict.fromkeys(found)) if found else None


def merge(first: str | None, second: str | None) -> str | None:
    """Two sets of directives as one (None when both are None)."""
    if first is None or second is None:
        return first if second is None else second
    return ",".join(dict.fromkeys([*first.split(","), *second.split(",")]))
