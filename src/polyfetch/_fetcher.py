"""`Fetcher` and `AsyncFetcher`: the public face of the core.

``map()`` pulls input lazily and keeps at most ``concurrency`` items between
"submitted" and "handed back to the caller"; that single window bounds the
threads, greenlets, tasks and finished-but-unread results of every backend.
Each item is run by the core's `polyfetch._runner.Runner` inside the
backend's task group (`polyfetch.backends._base`).
"""

from __future__ import annotations

from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Callable,
    Generator,
    Iterable,
    Iterator,
)
from contextlib import aclosing
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, TypedDict, Unpack

from polyfetch import backends
from polyfetch._runner import Runner
from polyfetch._schedule import WAIT, HostQueues
from polyfetch._slots import AsyncSlots, Slots
from polyfetch.backends._base import (
    AsyncCapable,
    AsyncGroup,
    Backend,
    Group,
    check_http_versions,
    check_proxy,
)
from polyfetch.errors import BackendError
from polyfetch.result import Result
from polyfetch.settings import Settings

if TYPE_CHECKING:
    from concurrent.futures import Executor
    from http.cookiejar import CookieJar

    from polyfetch._proxy import Proxies
    from polyfetch.frontier import Frontier
    from polyfetch.frontier.crawler import Crawler, LinkReader, Page
    from polyfetch.postprocess import PostProcessor

BackendName = Literal["threads", "gevent", "asyncio", "greenlet", "curl"]


class Options(TypedDict, total=False):
    """Keyword options of `Fetcher` and `AsyncFetcher` (defaults in `polyfetch.Settings`).

    concurrency: requests in flight at once, over all hosts.
    per_host: requests in flight at once to one host name.
    timeout: seconds one item may take in all: attempts, backoff and redirects.
    connect_timeout: seconds to open a connection (TCP and TLS).
    read_timeout: seconds allowed between two bytes of the response.
    retries: further attempts after connect errors, timeouts and a status in retry_statuses.
    retry_statuses: statuses worth another attempt (default 429, 502, 503, 504).
    backoff / max_backoff: base and cap, in seconds, of the exponential backoff.
    max_redirects: redirects followed before `TooManyRedirects`.
    max_bytes: body size limit, on the wire and decompressed, before `TooLarge`.
    headers: extra request headers (they override the defaults).
    user_agent: the User-Agent header (default names polyfetch and its version).
    method: the HTTP method of URL strings (any token; a `Request` may name its own).
    retry_methods: methods retried after a failure or a retryable status (default: the
        idempotent ones; POST and PATCH only when listed); a failed connect is always retried.
    cookies: True for a cookie jar of the fetcher's own, or an `http.cookiejar.CookieJar`
        (e.g. a `MozillaCookieJar` loaded from a file); None (default): no cookies.
    keep_body: keep bodies in results (False still counts ``size``).
    verify: verify TLS certificates; ca_bundle: a PEM file to verify against.
    uvloop: use uvloop for the asyncio backend when it is installed.
    http2: negotiate HTTP/2 over TLS and multiplex (curl backend only; others refuse).
    http3: try HTTP/3 over QUIC first (curl backend only; others refuse).
    rate: attempts per second to one host (retries and redirects included); None: no limit.
    process: post-processor for each fetched page: a module-level callable, a
        "package.module:function" string, or a built-in name ("html", "sha256", "text").
    executor: where processing runs: "process" (default), "thread", "inline", or an Executor.
    workers: processes (or threads) for processing; default: the CPU count.
    process_timeout: seconds one item's processing may take before `ProcessTimeout`.
    lookahead: items ``map()`` reads ahead of those running, waiting in per-host queues, so
        that one host's items never hold up another host's (memory grows with it).
    robots: obey each origin's robots.txt (fetched once, cached); a disallowed URL's record
        has a `RobotsDisallowed` error and no request is made. Its Crawl-delay paces the
        host (the stricter of it and ``rate``), capped at ``max_crawl_delay`` seconds.
    auto_throttle: lower a host's concurrency and pace when its latency climbs or it answers
        429/503, raise them again while it is healthy, within ``per_host`` and ``rate``.
    proxy: a proxy URL for every request (``http://``, ``https://``, ``socks5://``,
        ``socks5h://``, with optional ``user:password@``); "" for none whatever the
        environment says; None (default): from the environment (``trust_env``).
    no_proxy: hosts that go direct (curl's ``--noproxy``: a comma list or a list of hosts,
        domains, IPs and CIDR blocks, ``*`` for every host); None: the environment's.
    trust_env: read ``http_proxy``, ``https_proxy``, ``all_proxy`` and ``no_proxy`` (curl's
        rules; read once, when the fetcher is made). False ignores them.
    """

    concurrency: int
    per_host: int
    timeout: float
    connect_timeout: float
    read_timeout: float
    retries: int
    retry_statuses: Iterable[int]
    backoff: float
    max_backoff: float
    max_redirects: int
    max_bytes: int
    headers: dict[str, str] | list[tuple[str, str]]
    user_agent: str
    method: str
    retry_methods: Iterable[str]
    cookies: bool | CookieJar | None
    keep_body: bool
    verify: bool
    ca_bundle: str | None
    uvloop: bool
    http2: bool
    http3: bool
    rate: float | None
    process: Callable[[Result], Any] | str | None
    executor: str | Executor
    workers: int | None
    process_timeout: float | None
    lookahead: int
    robots: bool
    max_crawl_delay: float
    auto_throttle: bool
    proxy: str | None
    no_proxy: str | Iterable[str] | None
    trust_env: bool


class Fetcher:
    """Fetch many URLs concurrently on one of the backends; use it as a context manager.

    >>> with Fetcher(backend="threads", concurrency=50) as f:   # doctest: +SKIP
    ...     for result in f.map(urls):
    ...         print(result.url, result.status, result.error)
    """

    def __init__(
        self, backend: BackendName | type[Backend] = backends.DEFAULT, **options: Unpack[Options]
    ) -> None:
        self.settings = Settings.build(**options)  # type: ignore[arg-type]
        #: The proxy chooser, the environment read now, once (None: no proxy anywhere).
        self._proxies = _proxies(self.settings)
        if isinstance(backend, type):  # a backend class of one's own (see polyfetch.testing)
            self._backend_cls: type[Backend] = backend
            self.backend_name: str = getattr(backend, "name", backend.__name__)
        else:
            self._backend_cls = backends.load(backend)
            self.backend_name = backend
        self._backend: Backend | None = None
        self._runner: Runner | None = None
        self._queues: HostQueues | None = None
        self._frontier: Frontier | None = None
        self._crawl_post: PostProcessor | None = None  # made by crawl() when process is None
        self._closed = False

    def __enter__(self) -> Fetcher:
        self._started()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _started(self) -> tuple[Backend, Runner]:
        if self._closed:
            raise RuntimeError("this Fetcher is closed")
        if self._backend is None or self._runner is None:
            check_http_versions(self._backend_cls, self.settings)
            check_proxy(self._backend_cls, self.settings)
            backend = self._backend_cls(self.settings)
            backend.start()
            try:
                runner = _runner(
                    backend, self.settings, _post_processor(self.settings), self._proxies
                )
            except BaseException:
                backend.close()
                raise
            self._backend, self._runner = backend, runner
        return self._backend, self._runner

    def map(self, urls: Iterable[object]) -> Iterator[Result]:
        """Fetch every item of ``urls`` (URL strings or `polyfetch.Request`s), yielding one
        `Result` per item as each finishes (anything else gets an `InvalidURL` record).

        Input is consumed lazily; closing the iterator early cancels what is in flight.
        """
        backend, runner = self._started()
        yield from self._map(backend, runner, iter(urls))

    def _map(self, backend: Backend, runner: Runner, items: Iterator[object]) -> Iterator[Result]:
        """``map()`` with ``runner``; ``items`` may answer `WAIT` (a crawl's frontier)."""
        group = backend.group(runner)
        queues = _queues(self.settings, runner)
        self._queues = queues
        if queues is None:
            yield from _windowed(group, items, self.settings.concurrency)
            return
        index = 0
        exhausted = waiting = False
        try:
            while True:
                while (ready := queues.next()) is not None:
                    group.spawn(*ready)
                waiting = False
                while not exhausted and queues.wants_input():
                    try:
                        item = next(items)
                    except StopIteration:
                        exhausted = True
                        break
                    if item is WAIT:
                        waiting = True
                        break
                    if queues.add(item, index):
                        group.spawn(item, index)
                    index += 1
                if not queues.running:
                    _stalled(waiting)
                    return
                result = group.next_result()
                queues.done(result.index)
                yield result
        finally:
            if queues.running:
                group.cancel()

    def crawl(
        self, seeds: Iterable[object] | Frontier, **options: Unpack[CrawlOptions]
    ) -> Iterator[Result]:
        """Fetch the seeds and what their pages link to, yielding one `Result` per page.

        Links found on a page join the same running window (per-host limits, rate,
        robots.txt and the auto-throttle apply to them as to any item); each record has
        ``depth`` and ``referrer``. ``seeds``: URLs or `polyfetch.Request`s (a seed that
        is no URL gets an error record; one given twice is fetched once), or a
        `polyfetch.frontier.Frontier` of one's own. See `CrawlOptions` for the options.
        """
        backend, runner = self._started()
        crawler, records = _crawler(self.settings, seeds, options)
        try:
            yield from records
            pages = self._pages(crawler.links, crawler.frontier)
            try:
                if options.get("sitemaps"):
                    reader = crawler.sitemaps()
                    while urls := reader.next_round():
                        for result in self._map(backend, runner.sibling(None), iter(urls)):
                            reader.take(result)
                    crawler.frontier.mark_sitemaps_read()
                self._frontier = crawler.frontier
                for page in pages:
                    yield from crawler.take(page)
                yield from crawler.frontier.close()
            finally:
                pages.close()
        finally:
            self._frontier = None
            if not isinstance(seeds, _frontier_class()):
                crawler.frontier.release()

    def _pages(self, links: LinkReader, items: Iterator[object]) -> Generator[Page, None, None]:
        """``map()`` through the crawl's runner: each page read back with the links to follow
        from it. The runner is made now (its pool started, a missing link reader refused);
        the crawl uses this, and so does a cluster's shard runner, to read pages the same way."""
        backend, runner = self._started()
        crawl_runner = _crawl_runner(self, runner, links)
        return _read_pages(links, self._map(backend, crawl_runner, items))

    def drain(self) -> None:
        """Let the running ``map()`` or ``crawl()`` finish what is in flight and start nothing
        more: it then ends without records for the items it read ahead but never started
        (the crawl's first Ctrl+C; ``--resume`` fetches them). Safe to call from a signal
        handler."""
        if self._queues is not None:
            self._queues.draining = True
        if self._frontier is not None:
            self._frontier.stop()

    def blocked_on(self) -> str | None:
        """The host whose waiting items fill the look-ahead of the latest ``map()``, if reading
        the input has stopped for it (the crawl then goes at that host's pace)."""
        return self._queues.blocked_on() if self._queues is not None else None

    def fetch(self, url: object) -> Result:
        """Fetch one URL or `Request` (with the same retries, redirects and limits as `map`)."""
        return next(iter(self.map([url])))

    @property
    def cookie_jar(self) -> CookieJar | None:
        """The fetcher's cookie jar (made when it starts, with ``cookies=True``), or None."""
        return _jar(self.settings, self._runner)

    def close(self) -> None:
        """Cancel what is in flight and release every socket, thread, greenlet and session."""
        self._closed = True
        backend, self._backend = self._backend, None
        runner, self._runner = self._runner, None
        if backend is not None:
            backend.close()
        _close_posts(runner, self)

    def __repr__(self) -> str:
        return f"<Fetcher backend={self.backend_name!r} concurrency={self.settings.concurrency}>"


class AsyncFetcher:
    """`Fetcher` for code already inside an asyncio event loop (the asyncio backend).

    >>> async with AsyncFetcher(concurrency=100) as f:   # doctest: +SKIP
    ...     async for result in f.map(urls):
    ...         ...
    """

    def __init__(self, **options: Unpack[Options]) -> None:
        self.settings = Settings.build(**options)  # type: ignore[arg-type]
        #: The proxy chooser, the environment read now, once (None: no proxy anywhere).
        self._proxies = _proxies(self.settings)
        self._backend_cls = backends.load("asyncio")
        self._backend: AsyncCapable | None = None
        self._runner: Runner | None = None
        self._queues: HostQueues | None = None
        self._frontier: Frontier | None = None
        self._crawl_post: PostProcessor | None = None
        self._closed = False

    async def __aenter__(self) -> AsyncFetcher:
        await self._started()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _started(self) -> tuple[AsyncCapable, Runner]:
        if self._closed:
            raise RuntimeError("this AsyncFetcher is closed")
        if self._backend is None or self._runner is None:
            check_http_versions(self._backend_cls, self.settings)
            check_proxy(self._backend_cls, self.settings)
            backend = self._backend_cls(self.settings)
            if not isinstance(backend, AsyncCapable):
                raise BackendError("the asyncio backend cannot run inside a caller's loop")
            await backend.astart()
            try:
                runner = _runner(
                    backend, self.settings, _post_processor(self.settings), self._proxies
                )
            except BaseException:
                await backend.aclose()
                raise
            self._backend, self._runner = backend, runner
        return self._backend, self._runner

    async def map(self, urls: Iterable[object] | AsyncIterable[object]) -> AsyncIterator[Result]:
        """Fetch every item, yielding results as they finish; input may be sync or async."""
        backend, runner = await self._started()
        async with aclosing(self._map(backend, runner, _aiter(urls))) as results:
            async for result in results:
                yield result

    async def _map(
        self, backend: AsyncCapable, runner: Runner, items: AsyncIterator[object]
    ) -> AsyncGenerator[Result, None]:
        """`Fetcher._map` for asyncio."""
        group = backend.agroup(runner)
        queues = _queues(self.settings, runner)
        self._queues = queues
        if queues is None:
            async with aclosing(_awindowed(group, items, self.settings.concurrency)) as results:
                async for result in results:
                    yield result
            return
        index = 0
        exhausted = waiting = False
        try:
            while True:
                while (ready := queues.next()) is not None:
                    group.spawn(*ready)
                waiting = False
                while not exhausted and queues.wants_input():
                    try:
                        item = await anext(items)
                    except StopAsyncIteration:
                        exhausted = True
                        break
                    if item is WAIT:
                        waiting = True
                        break
                    if queues.add(item, index):
                        group.spawn(item, index)
                    index += 1
                if not queues.running:
                    _stalled(waiting)
                    return
                result = await group.next_result()
                queues.done(result.index)
                yield result
        finally:
            if queues.running:
                await group.cancel()

    async def crawl(
        self, seeds: Iterable[object] | Frontier, **options: Unpack[CrawlOptions]
    ) -> AsyncIterator[Result]:
        """`Fetcher.crawl` for asyncio."""
        backend, runner = await self._started()
        crawler, records = _crawler(self.settings, seeds, options)
        try:
            for record in records:
                yield record
            crawl_runner = _crawl_runner(self, runner, crawler.links)
            if options.get("sitemaps"):
                reader = crawler.sitemaps()
                while urls := reader.next_round():
                    plain = runner.sibling(None)
                    async with aclosing(self._map(backend, plain, _aiter(urls))) as found:
                        async for result in found:
                            reader.take(result)
                crawler.frontier.mark_sitemaps_read()
            self._frontier = crawler.frontier
            async with aclosing(
                self._map(backend, crawl_runner, _aiter(crawler.frontier))
            ) as results:
                async for result in results:
                    for record in crawler.finish(result):
                        yield record
                for record in crawler.frontier.close():
                    yield record
        finally:
            self._frontier = None
            if not isinstance(seeds, _frontier_class()):
                crawler.frontier.release()

    def drain(self) -> None:
        """`Fetcher.drain`."""
        if self._queues is not None:
            self._queues.draining = True
        if self._frontier is not None:
            self._frontier.stop()

    async def fetch(self, url: object) -> Result:
        """Fetch one URL or `Request`."""
        async for result in self.map([url]):
            return result
        raise AssertionError("map() yields one result per item")

    @property
    def cookie_jar(self) -> CookieJar | None:
        """The fetcher's cookie jar (made when it starts, with ``cookies=True``), or None."""
        return _jar(self.settings, self._runner)

    async def aclose(self) -> None:
        """Cancel what is in flight and close the session."""
        self._closed = True
        backend, self._backend = self._backend, None
        runner, self._runner = self._runner, None
        if backend is not None:
            await backend.aclose()
        _close_posts(runner, self)


def _jar(settings: Settings, runner: Runner | None) -> CookieJar | None:
    if runner is not None and runner.cookies is not None:
        return runner.cookies.jar
    return settings.cookies if settings.cookies not in (None, False, True) else None  # type: ignore[return-value]


def _proxies(settings: Settings) -> Proxies | None:
    """The fetcher's proxy chooser (`polyfetch._proxy`); a bad proxy URL in the environment
    is a `ConfigError` now."""
    from polyfetch._proxy import Proxies

    return Proxies.build(settings.proxy, settings.no_proxy, settings.trust_env)


def _runner(
    backend: Backend | AsyncCapable, settings: Settings, post: Any, proxies: Proxies | None
) -> Runner:
    """The fetcher's runner, its slots waiting on ``backend``'s semaphores."""
    if isinstance(backend, AsyncCapable):
        aslots = AsyncSlots(settings, backend.async_semaphore)
        return Runner(
            settings,
            aslots=aslots,
            post=post,
            lock=lambda: backend.async_semaphore(1),
            proxies=proxies,
        )
    slots = Slots(settings, backend.semaphore, pooled=backend.pooled, threaded=backend.threaded)
    return Runner(
        settings, slots=slots, post=post, lock=lambda: backend.semaphore(1), proxies=proxies
    )


def _queues(settings: Settings, runner: Runner) -> HostQueues | None:
    """The per-host queues of one ``map()`` call; None when no host limit can bind (``per_host
    >= concurrency`` and no auto-throttle): the window alone then decides, at no cost."""
    throttle = runner.throttle
    if settings.per_host >= settings.concurrency and throttle is None:
        return None
    limit = throttle.limit if throttle is not None else None
    return HostQueues(settings.concurrency, settings.per_host, settings.lookahead, limit)


def _windowed(group: Group, items: Iterator[object], window: int) -> Iterator[Result]:
    """``map()`` without host queues: at most ``window`` items started and not handed back."""
    pending = index = 0
    exhausted = waiting = False
    try:
        while True:
            waiting = False
            while not exhausted and pending < window:
                try:
                    item = next(items)
                except StopIteration:
                    exhausted = True
                    break
                if item is WAIT:
                    waiting = True
                    break
                group.spawn(item, index)
                index += 1
                pending += 1
            if not pending:
                _stalled(waiting)
                return
            result = group.next_result()
            pending -= 1
            yield result
    finally:
        if pending:
            group.cancel()


async def _awindowed(
    group: AsyncGroup, items: AsyncIterator[object], window: int
) -> AsyncGenerator[Result, None]:
    """`_windowed` for `AsyncFetcher`."""
    pending = index = 0
    exhausted = waiting = False
    try:
        while True:
            waiting = False
            while not exhausted and pending < window:
                try:
                    item = await anext(items)
                except StopAsyncIteration:
                    exhausted = True
                    break
                if item is WAIT:
                    waiting = True
                    break
                group.spawn(item, index)
                index += 1
                pending += 1
            if not pending:
                _stalled(waiting)
                return
            result = await group.next_result()
            pending -= 1
            yield result
    finally:
        if pending:
            await group.cancel()


def _stalled(waiting: bool) -> None:
    """``map()`` has nothing in flight: the end, unless its input said `WAIT` (a bug of the
    input, which would then wait for ever)."""
    if waiting:
        raise RuntimeError("map()'s input answered WAIT with nothing in flight")


def _post_processor(settings: Settings, process: str | None = None) -> PostProcessor | None:
    """The started post-processor (of ``process`` instead of the settings' one, if given),
    or None; a bad processor is refused here, before any fetch."""
    process = process or settings.process  # type: ignore[assignment]
    if process is None:
        return None
    from polyfetch.postprocess import PostProcessor

    return PostProcessor(
        process,  # type: ignore[arg-type]
        executor=settings.executor,  # type: ignore[arg-type]
        workers=settings.workers,
        timeout=settings.process_timeout,
    ).start()


async def _aiter(urls: Iterable[object] | AsyncIterable[object]) -> AsyncIterator[object]:
    if isinstance(urls, AsyncIterable):
        async for item in urls:
            yield item
    else:
        for item in urls:
            yield item


class CrawlOptions(TypedDict, total=False):
    """Keyword options of `Fetcher.crawl` and `AsyncFetcher.crawl` (`polyfetch.frontier`).

    follow: how a page's links are found: None (default) its ``<a href>`` and ``<area
        href>`` links, HTML pages only, read in the processing pool, ``nofollow`` honoured;
        a callable run here on each `Result` with a response, returning URLs or `Request`s;
        or a ``"module:function"`` name, the same run in the pool.
    scope: "host" (default: the seeds' hosts), "domain" (their registrable domains),
        "prefix" (under a seed's directory) or "any".
    max_depth: links from a seed at most (0: the seeds alone); None: no limit.
    max_pages: pages fetched at most; None: no limit.
    accept, reject: regular expressions a discovered URL must / must not match.
    sitemaps: first read each seed origin's robots.txt ``Sitemap:`` lines (or
        ``/sitemap.xml``) and take the pages they list as seeds (within the scope).
    refused: also yield a record (a `NotFollowed` error, `RobotsDisallowed`, `InvalidURL`)
        for each discovered URL the crawl refuses; by default they are only counted.
    memory: URLs kept in memory before the frontier spills to a temporary file.
    """

    follow: Callable[[Result], Iterable[object]] | str | None
    scope: str
    max_depth: int | None
    max_pages: int | None
    accept: str | None
    reject: str | None
    sitemaps: bool
    refused: bool
    memory: int


def _crawler(
    settings: Settings, seeds: object, options: CrawlOptions
) -> tuple[Crawler, list[Result]]:
    """The crawl's `Crawler`, and the records of seeds that are no URLs."""
    from polyfetch.frontier import Frontier
    from polyfetch.frontier.crawler import Crawler

    known = set(CrawlOptions.__annotations__)
    unknown = set(options) - known
    if unknown:
        from polyfetch.errors import ConfigError

        raise ConfigError(f"unknown crawl option(s): {', '.join(sorted(unknown))}")
    follow = options.get("follow")
    if isinstance(seeds, Frontier):
        return Crawler(seeds, follow, settings), []
    frontier = Frontier(
        scope=options.get("scope", "host"),
        max_depth=options.get("max_depth"),
        max_pages=options.get("max_pages"),
        accept=options.get("accept"),
        reject=options.get("reject"),
        record_refused=bool(options.get("refused", False)),
        memory=options.get("memory", 50_000),
        hold=max(256, 4 * settings.concurrency),
    )
    try:
        crawler = Crawler(frontier, follow, settings)
        if isinstance(seeds, str):
            seeds = [seeds]  # one URL, not its characters
        return crawler, crawler.seed(seeds)  # type: ignore[arg-type]
    except BaseException:
        frontier.release()
        raise


def _crawl_runner(fetcher: Fetcher | AsyncFetcher, runner: Runner, links: LinkReader) -> Runner:
    """The crawl's runner: the fetcher's (same slots, pace, robots.txt, cookies) with the
    view of ``links`` as its post-processor, on the fetcher's pool or one made for links."""
    post = runner.post
    if post is None and links.pool() is not None:
        if fetcher._crawl_post is None:
            fetcher._crawl_post = _post_processor(fetcher.settings, links.pool())
        post = fetcher._crawl_post
    return runner.sibling(links.start(post))


def _read_pages(links: LinkReader, results: Iterator[Result]) -> Generator[Page, None, None]:
    try:
        for result in results:
            yield links.read(result)
    finally:
        results.close()  # type: ignore[attr-defined]  # map() cancels what is in flight


def _frontier_class() -> type[Frontier]:
    from polyfetch.frontier import Frontier

    return Frontier


def _close_posts(runner: Runner | None, fetcher: Fetcher | AsyncFetcher) -> None:
    """Stop the fetcher's processing pools (its own, and the one a crawl made)."""
    post, fetcher._crawl_post = fetcher._crawl_post, None
    if post is not None:
        post.close()
    if runner is not None and runner.post is not None:
        runner.post.close()
