"""`Crawler`: what `Fetcher.crawl` and `AsyncFetcher.crawl` share around the `Frontier`.

How a page's links are found (``follow``):

* None (the default): the page's links, for HTML responses only
  (`polyfetch.frontier.links`), read in the post-processing pool beside the user's
  processor in one hand-off (`polyfetch.postprocess.spec.compose`), or taken from the
  ``html`` processor's value when that is the processor: a page is parsed once;
  ``nofollow`` (``rel``, ``<meta name="robots">``, ``X-Robots-Tag``) honoured;
* a callable: called here, in the fetching process, with each `Result` that has a
  response, after processing; it returns URLs (relative ones are resolved against the
  page's final URL) or `polyfetch.Request` objects (a POST found on a page, pagination);
* a ``"module:function"`` name: the same, but run in the pool, as processors are.

The fetcher's runner is shared: the crawl runs items through a sibling runner
(the same slots, pace, robots.txt verdicts and cookies) whose post-processor is
`_View`, which picks per page what the pool runs. Everything else - scope,
dedup, depth order, limits - is the frontier's.

The two halves are apart because a cluster crawl runs them on different
machines: `LinkReader` (the view, and reading each result back into a `Page`:
the record, the links to follow, the ``X-Robots-Tag`` directives) runs where
pages are fetched - `polyfetch.Fetcher`, or a cluster's shard runner - and
`Crawler` (the frontier, seeds, sitemaps) where the crawl is decided, taking
each `Page` with `Crawler.take`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from polyfetch.errors import ConfigError, ProcessorFailed
from polyfetch.frontier import links as _links
from polyfetch.frontier.core import Frontier, links_of
from polyfetch.frontier.links import Extracted
from polyfetch.frontier.sitemaps import SitemapReader
from polyfetch.result import Result, item_url

if TYPE_CHECKING:
    from polyfetch.postprocess import PostProcessor
    from polyfetch.postprocess.spec import Processor
    from polyfetch.settings import Settings

Follow = Callable[[Result], Iterable[object]] | str | None
#: A page read back: its record as the user sees it, the links to follow from it (None:
#: none) and its ``X-Robots-Tag`` directives for polyfetch (`Frontier.finish`'s arguments).
Page = tuple[Result, "Extracted | None", "str | None"]
#: The link reader workers run (a processor, by name).
EXTRACT = "polyfetch.frontier.links:extract"
#: The built-in processor whose value already holds the links.
_HTML = "html"


class _View:
    """The crawl runner's post-processor: hands each page to the pool with what it needs."""

    __slots__ = ("_composite", "_html_only", "_mode", "_post", "_user", "modes")

    def __init__(
        self,
        post: PostProcessor,
        composite: Processor | None,
        *,
        user: bool,
        html_only: bool,
        mode: str | None,
    ) -> None:
        self._post = post
        self._composite = composite  # what reads the links (and runs the user's processor)
        self._user = user  # the fetcher has a processor of the user's
        self._html_only = html_only  # the composite is for HTML pages only
        self._mode = mode  # how pages submitted without the composite are read back
        #: index -> how the page was submitted: "composite", or "html" (the html processor)
        self.modes: dict[int, str] = {}

    def submit(self, result: Result) -> Future[Result]:
        composite = self._composite
        if composite is not None and not (self._html_only and not _links.is_html(result)):
            self.modes[result.index] = "composite"
            return self._post.submit(result, composite)
        if not self._user:
            return _done(result)
        if self._mode is not None:
            self.modes[result.index] = self._mode
        return self._post.submit(result)

    def close(self) -> None:
        """Nothing of its own to close (the fetcher closes the pool)."""


def _done(result: Result) -> Future[Result]:
    future: Future[Result] = Future()
    future.set_result(result)
    return future


class LinkReader:
    """How a crawl's pages are read where they are fetched: what the pool runs beside the
    user's processor, and each result read back into a `Page`."""

    def __init__(self, follow: Follow, settings: Settings) -> None:
        if follow is not None and not callable(follow) and not isinstance(follow, str):
            raise ConfigError(
                f"follow must be a callable, a 'module:function' name or None, got {follow!r}"
            )
        self.follow = follow
        self._inline = callable(follow)
        self._user = settings.process is not None
        from polyfetch.postprocess.spec import BUILTINS

        #: the default link reader, and the user's processor is the html one (by its name in
        #: full on a cluster's shard)
        self._from_html = follow is None and settings.process in (_HTML, BUILTINS[_HTML])
        self.view: _View | None = None

    def pool(self) -> str | None:
        """The processor the pool must run beside the user's, by name (None: none)."""
        if self._inline or self._from_html:
            return None
        return self.follow if isinstance(self.follow, str) else EXTRACT  # type: ignore[return-value]

    def start(self, post: PostProcessor | None) -> _View | None:
        """The post-processor of the crawl's runner, ``post`` being the fetcher's (made with
        the `pool` processor when the user has none); None: no processing at all."""
        if post is None:
            return None  # follow runs here and the user has no processor
        composite = None
        name = self.pool()
        if name is not None:
            from polyfetch.postprocess.spec import compose, resolve

            problem = missing(name)
            if problem is not None:
                raise ConfigError(problem)
            reader = resolve(name, in_process=False)
            own = post.processor
            assert own is not None
            composite = compose(reader, own) if self._user else compose(reader)
            post.check_other(composite)
        self.view = _View(
            post,
            composite,
            user=self._user,
            html_only=self.follow is None,
            mode=_HTML if self._from_html else None,
        )
        return self.view

    def read(self, result: Result) -> Page:
        """``result``, come back from the crawl's runner, as the frontier takes it."""
        result, extracted = self._links(result)
        header = None
        if "x-robots-tag" in result.headers:
            header = _links.directives(result.header_list)
            nofollow = header is not None and not _links.follows(header)
            if nofollow and extracted is not None and self.follow is None:
                extracted = ([], extracted[1])
        return result, extracted, header

    def _links(self, result: Result) -> tuple[Result, Extracted | None]:
        """The page's result as the user sees it, and what to follow from it."""
        mode = self.view.modes.pop(result.index, None) if self.view is not None else None
        if mode == "composite":
            return self._unwrap(result)
        if mode == _HTML:
            if result.error is None and _links.is_html(result):
                return result, _links.follow_html(result.processed)
            return result, None
        if self._inline and result.error is None:
            try:
                found = self.follow(result)  # type: ignore[misc,operator]
                return result, (links_of(found or (), _base(result)), None)
            except Exception as exc:
                from polyfetch.postprocess._worker import describe

                error = ProcessorFailed(f"follow raised {describe(exc)}")
                return replace(result, process_error=result.process_error or error), None
        return result, None

    def _unwrap(self, result: Result) -> tuple[Result, Extracted | None]:
        replies = result.processed
        if result.process_error is not None or not isinstance(replies, tuple):
            return result, None  # the hand-off failed (worker died, timeout): no links
        (tag, found), *user = replies
        extracted: Any = None
        error = None
        if tag == "error":
            error = ProcessorFailed(f"reading the page's links failed: {found}")
        elif self.follow is None:
            extracted = found
        elif found is not None:
            extracted = (links_of(found, _base(result)), None)
        processed = None
        if user:
            (user_tag, value) = user[0]
            if user_tag == "value":
                processed = value
            else:
                error = ProcessorFailed(value)
        return replace(result, processed=processed, process_error=error), extracted


def missing(name: str) -> str | None:
    """Why the link reader ``name`` (a `LinkReader.pool` name) cannot run here, or None."""
    if name == EXTRACT:
        import importlib.util

        if importlib.util.find_spec("selectolax") is None:
            return (
                "following links needs selectolax to read pages: "
                "pip install 'polyfetch[html]' (or give follow= a function)"
            )
    return None


class Crawler:
    """One crawl: its frontier, how links are found (`links`), the records it hands back."""

    def __init__(self, frontier: Frontier, follow: Follow, settings: Settings) -> None:
        self.frontier = frontier
        self.links = LinkReader(follow, settings)

    def seed(self, seeds: Iterable[object]) -> list[Result]:
        """Add the seeds; the records of those that are not URLs (duplicates are fetched once)."""
        records = []
        for item in seeds:
            why = self.frontier.seed(item)
            if why is not None and not isinstance(why, int):
                records.append(Result(url=item_url(item), index=-1, error=why, depth=0))
        return records

    def sitemaps(self) -> SitemapReader:
        """The sitemap rounds for the seeds' origins."""
        return SitemapReader(self.frontier, self.frontier.origins)

    def finish(self, result: Result) -> list[Result]:
        """The records ready after ``result`` came back from this machine's crawl runner."""
        return self.take(self.links.read(result))

    def take(self, page: Page) -> list[Result]:
        """The records ready after ``page`` was read, here or on a cluster's shard (see
        `Frontier.finish`)."""
        return self.frontier.finish(*page)


def _base(result: Result) -> str:
    return result.final_url or result.url
