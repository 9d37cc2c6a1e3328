"""Per-item work the benchmark plugs in as a post-processor.

`sdk_call` stands for the synchronous SDK every scraper ends up calling (a
database driver, a cloud client): a real blocking HTTP call made with the
standard library. Run ``inline``, it blocks whatever runs the item: a worker
thread (threads), a greenlet whose socket gevent has patched (cooperative), or
the whole event loop (asyncio, greenlet hub). Run with the ``thread`` executor,
it moves to a thread pool on every backend.
"""

from __future__ import annotations

import urllib.request
from urllib.parse import parse_qs, urlsplit

from polyfetch.result import Result


def sdk_call(result: Result) -> int:
    """Call ``/delay/{sdk_ms}`` on the item's server with urllib; return the status."""
    parts = urlsplit(result.url)
    ms = int(parse_qs(parts.query).get("sdk_ms", ["20"])[0])
    url = f"{parts.scheme}://{parts.netloc}/delay/{ms}"
    with urllib.request.urlopen(url, timeout=60) as resp:
        resp.read()
        return int(resp.status)
