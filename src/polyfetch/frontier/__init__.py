"""The crawl frontier: URLs found while fetching, joined to the running window.

`Frontier` (`core`) is the state of one crawl, written once and without IO:
seeds and discovered URLs numbered, deduplicated on their canonical form,
checked against the scope (`scope`), depth and page limits, queued in order of
depth in bounded memory (spilling to a `journal` file), and handed to
``map()`` as its input. `Crawler` (`crawler`) ties it to a fetcher: how a page's
links are read (`links`, in the post-processing pool) and the seeds that
sitemaps give (`sitemaps`). `polyfetch.Fetcher.crawl` and
`polyfetch.AsyncFetcher.crawl` are the ways in; ``polyfetch crawl --follow`` is
the command. `seen` holds the bounded sets the crawl command dedups with.
"""

from __future__ import annotations

from polyfetch.frontier.core import REASONS, Frontier, FrontierStats
from polyfetch.frontier.scope import SCOPES

__all__ = ["REASONS", "SCOPES", "Frontier", "FrontierStats"]
