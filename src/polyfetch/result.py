"""`Result`: the one record every input item gets, success or failure."""

from __future__ import annotations

from collections.abc import Mapping
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
    elapsed: float = 0.0
    #: Attempts made: 1 plus the retries (redirect hops are counted in ``redirects``).
    attempts: int = 0
    redirects: int = 0
    error: FetchError | None = None
    #: What the post-processor returned (None without ``process=`` or when the fetch failed).
    processed: Any = None
    process_error: ProcessError | None = None

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
        """A JSON-ready dict of everything but the body and headers."""
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
        }


def item_url(item: object) -> str:
    """`Result.url` for an input item: itself when it is a string, else its ``repr()``."""
    if isinstance(item, str):
        return item
    try:
        return repr(item)
    except Exception:  # an object whose repr raises still gets its record
        return f"<{type(item).__name__} object>"
