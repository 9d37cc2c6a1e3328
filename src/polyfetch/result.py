"""`Result`: the one record every input item gets, success or failure."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from polyfetch.errors import FetchError, ProcessError


@dataclass(frozen=True, slots=True)
class Result:
    """The outcome of fetching one input item.

    ``url`` is the item as given (``repr()`` of it when it was not a string) and
    ``index`` its position in the input, so results that stream back in
    completion order can be matched to their inputs. A failed fetch has
    ``error`` set and keeps whatever was known (``attempts``, ``elapsed``).
    HTTP 4xx/5xx are not errors: they have a ``status`` and ``error is None``.
    """

    url: str
    index: int = 0
    final_url: str | None = None
    status: int | None = None
    #: Response headers, names lower-cased; repeated headers joined with ", ".
    headers: Mapping[str, str] = field(default_factory=dict)
    #: The decoded body, or None when ``keep_body=False`` or the fetch failed.
    body: bytes | None = None
    #: Decoded body size in bytes (counted even when the body is not kept).
    size: int = 0
    #: The HTTP version of the final response: "1.0", "1.1", "2" or "3" (None without one).
    http_version: str | None = None
    #: Seconds from the item's start to its record: rate and backoff waits included.
    elapsed: float = 0.0
    #: Attempts made: 1 plus the retries (redirect hops are counted in ``redirects``).
    attempts: int = 0
    redirects: int = 0
    error: FetchError | None = None
    #: What the post-processor returned (None without ``process=`` or when the fetch failed).
    processed: Any = None
    process_error: ProcessError | None = None
    #: A `polyfetch.Request`'s ``meta``, unchanged (None for URL strings).
    meta: Any = None
    #: In a crawl (`polyfetch.Fetcher.crawl`): links from the seeds to this page (0: a seed);
    #: None outside a crawl.
    depth: int | None = None
    #: In a crawl: the page this URL was found on (None for a seed).
    referrer: str | None = None
    #: In a crawl: the page's robots directives (``<meta name="robots">`` and
    #: ``X-Robots-Tag``), e.g. ``"noindex,nofollow"``; None when it has none.
    robots: str | None = None
    #: The response's header lines as the backend got them (see `header_list`).
    raw_headers: Iterable[tuple[str | bytes, str | bytes]] = field(
        default=(), repr=False, compare=False
    )

    @property
    def header_list(self) -> list[tuple[str, str]]:
        """Every response header line in order, names lower-cased, repeats (Set-Cookie) apart."""
        return header_pairs(self.raw_headers)

    @property
    def text(self) -> str:
        """The body as text: the charset of Content-Type, else as the ``html`` processor
        decides (BOM, ``<meta charset>``, UTF-8, windows-1252); "" without a body."""
        if not self.body:
            return ""
        from polyfetch._charset import decode_html

        return decode_html(self.body, self.headers.get("content-type"))[0]

    def json(self) -> Any:
        """The body parsed as JSON (raises `ValueError` when it is not JSON or there is none)."""
        import json

        if self.body is None:
            raise ValueError(f"no body to parse as JSON ({self.url})")
        return json.loads(self.body)

    @property
    def ok(self) -> bool:
        """True when a response arrived and its status is below 400."""
        return self.error is None and self.status is not None and self.status < 400

    @property
    def content_type(self) -> str | None:
        """The media type of the response, without parameters, lower-cased."""
        value = self.headers.get("content-type")
        return value.split(";", 1)[0].strip().lower() if value else None

    def to_record(self) -> dict[str, Any]:
        """A JSON-ready dict of everything but the body and headers (``meta`` when there is
        one; ``depth``, ``referrer`` and ``robots`` in a crawl)."""
        return {
            "url": self.url,
            "index": self.index,
            "final_url": self.final_url,
            "status": self.status,
            "size": self.size,
            "http_version": self.http_version,
            "elapsed_ms": round(self.elapsed * 1000, 3),
            "attempts": self.attempts,
            "redirects": self.redirects,
            "error": self.error.kind if self.error else None,
            "error_message": self.error.message if self.error else None,
            "content_type": self.content_type,
            "processed": self.processed,
            "process_error": self.process_error.kind if self.process_error else None,
            "process_error_message": self.process_error.message if self.process_error else None,
            **({"meta": self.meta} if self.meta is not None else {}),
            **(
                {"depth": self.depth, "referrer": self.referrer, "robots": self.robots}
                if self.depth is not None
                else {}
            ),
        }


def item_url(item: object) -> str:
    """`Result.url` for an input item: itself when it is a string, else its ``repr()``."""
    if isinstance(item, str):
        return item
    try:
        return repr(item)
    except Exception:  # an object whose repr raises still gets its record
        return f"<{type(item).__name__} object>"


def header_pairs(raw: Iterable[tuple[str | bytes, str | bytes]]) -> list[tuple[str, str]]:
    """Header lines as (lower-cased name, value) strings; bytes are latin-1."""
    return [
        (
            (name if isinstance(name, str) else name.decode("latin-1")).lower(),
            value if isinstance(value, str) else value.decode("latin-1"),
        )
        for name, value in raw
    ]
