"""`Frontier`: the URLs a crawl has yet to fetch, decided without doing any IO.

Theory of operation. A crawl is a loop: ``map()`` pulls URLs from the frontier
(it is ``map()``'s input iterator), fetches them, and for each result the crawl
hands the frontier the page's links (`finish`); the frontier numbers, dedups,
scopes and queues them, and ``map()`` pulls them into the same running window.
When its queue is empty but pages are still in flight, the frontier answers
`polyfetch._schedule.WAIT` ("nothing now"), and ``map()`` asks again after its
next result. It ends when nothing is queued and nothing is in flight.

Depth is the number of links from the seeds, as wget counts it: a page's depth
is its shortest distance from a seed, so ``max_depth`` gives the same pages
whatever order responses come back in. That holds because pages are *expanded*
(their links added) in order of depth: a page whose links would land at depth
d+1 waits ("held", its record too) while any page shallower than it is still
queued or in flight, so a URL is always first found by its shortest path. The
queue is then sorted by depth by construction. Held pages are few (a slow
shallow page holds up the deeper ones that finish meanwhile); past ``hold`` of
them the frontier hands out no deeper URL until the shallow ones are done.

Bounds: the queue keeps ``memory`` entries in memory and spills the rest to its
`Journal` file, in order; the set of URLs seen is a `FingerprintSet` (32-64
bytes per URL in memory, then a mapped file). A URL refused (out of scope, too
deep, past ``max_pages``, not a URL) is counted once, seen like the others.
Links repeated from page to page (a site's navigation) are dropped before any
parsing by a small set of the raw links handled lately.

Resume (the crawl command): with a journal path every entry and refusal is
written to the journal before the record of the page that found it, so after a
Ctrl+C or a kill `restore` rebuilds the seen-set and the queue from the journal,
skipping the entries that the output already records.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from polyfetch._schedule import WAIT
from polyfetch.errors import (
    FetchError,
    InvalidURL,
    NotFollowed,
    OutOfScope,
    PastMaxPages,
    RobotsDisallowed,
    TooDeep,
)
from polyfetch.frontier.journal import Entry, Journal, lines
from polyfetch.frontier.scope import Scope, canonical, target_of
from polyfetch.frontier.seen import FingerprintSet, LineSet
from polyfetch.request import Request
from polyfetch.result import Result

if TYPE_CHECKING:
    from polyfetch.frontier.links import Extracted

#: Entries kept in memory before the queue spills to its file.
DEFAULT_MEMORY = 50_000
#: Seed origins remembered for their sitemaps.
_MAX_ORIGINS = 10_000
#: Raw link strings remembered to skip repeats cheaply (two generations of this many).
_RECENT = 50_000
#: Why a URL was refused, and the error of its record when refused URLs are recorded.
REASONS: dict[str, type[FetchError]] = {
    "scope": OutOfScope,
    "depth": TooDeep,
    "limit": PastMaxPages,
    "robots": RobotsDisallowed,
    "invalid": InvalidURL,
}


@dataclass(slots=True)
class FrontierStats:
    """What the frontier has done so far, for progress lines and summaries."""

    #: entries numbered: seeds and URLs discovered, refused ones not included
    entries: int = 0
    #: entries waiting to be fetched (in the queue)
    waiting: int = 0
    #: pages fetched and handed back (records), refused ones not included
    pages: int = 0
    #: pages fetched and waiting for shallower pages before their links are added
    held: int = 0
    #: the deepest page handed back
    deepest: int = 0
    #: distinct URLs refused, by reason (`REASONS`)
    refused: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REASONS, 0))
    #: seeds given more than once
    duplicate_seeds: int = 0
    #: sitemaps read, and the URLs they listed
    sitemaps: int = 0
    sitemap_urls: int = 0

    @property
    def refused_total(self) -> int:
        """Distinct URLs refused, whatever the reason."""
        return sum(self.refused.values())


class Frontier:
    """The URLs of one crawl: seeds, then what the pages link to (see the module docstring).

    Args:
        scope: "host" (default), "domain", "prefix" or "any" (`polyfetch.frontier.scope`).
        max_depth: links from a seed at most (0: the seeds only); None: no limit.
        max_pages: pages fetched at most (URLs disallowed by robots.txt are not fetched);
            None: no limit.
        accept, reject: regular expressions a discovered URL must match / must not match.
        memory: entries kept in memory before the queue spills to a file.
        dedup_memory: bytes of the seen-set before it moves to a mapped file.
        hold: pages at most held back waiting for shallower ones (default 256).
        record_refused: make a record (a `Result` with a `NotFollowed` error or
            `RobotsDisallowed`) for each refused URL, not only count it.
        journal: the file that makes the crawl resumable (`restore`); None: a private
            spill file, made only if the queue outgrows ``memory``.
        tmpdir: where private spill files go (default: the system's).
    """

    def __init__(
        self,
        *,
        scope: str = "host",
        max_depth: int | None = None,
        max_pages: int | None = None,
        accept: str | None = None,
        reject: str | None = None,
        memory: int = DEFAULT_MEMORY,
        dedup_memory: int = 64 * 2**20,
        hold: int = 256,
        record_refused: bool = False,
        journal: str | None = None,
        tmpdir: str | None = None,
    ) -> None:
        _check_limit("max_depth", max_depth, 0)
        _check_limit("max_pages", max_pages, 1)
        _check_limit("memory", memory, 1)
        _check_limit("hold", hold, 1)
        self.scope = Scope(scope, accept=accept, reject=reject)
        self.max_depth = max_depth
        self.max_pages = max_pages
        self.record_refused = record_refused
        self.stats = FrontierStats()
        self._memory = memory
        self._hold = hold
        self._seen = FingerprintSet(dedup_memory, tmpdir)
        self._recent: set[str] = set()
        self._older: set[str] = set()
        self._journal = Journal(journal, keep=journal is not None, tmpdir=tmpdir)
        self._queue: deque[Entry] = deque()
        #: the journal offset of the first queued entry that is not in memory
        self._spilled_at: int | None = None
        #: entries to pass over when reading the journal back (``restore``: done ones)
        self._skip: Callable[[Entry], bool] | None = None
        #: entries queued, in flight or held, by depth; the lowest such depth
        self._count: dict[int, int] = {}
        self._low: int | None = None
        self._inflight: dict[int, Entry] = {}
        self._index = 0  # map()'s index of the next entry handed out
        self._budget = 0  # pages handed out, robots refusals given back
        self._held: dict[int, deque[tuple[Entry, Result, Extracted | None]]] = {}
        self._refusals: list[Result] = []
        self._closed = False
        self._stopped = False
        #: the seeds' origins (``scheme://host:port``), in order, for sitemaps
        self.origins: dict[str, None] = {}
        self._kept: list[FingerprintSet] = []  # closed by release()

    # -- filling ------------------------------------------------------------------------

    def seed(self, item: object, line: int | None = None) -> int | FetchError | None:
        """Add a seed (depth 0; it widens the scope). Returns None when it was queued, the
        ``line`` of its first copy (0 when it had none) when it was given before, or why
        it is no URL (an `InvalidURL`, an `InvalidRequest`...)."""
        url = item.url if isinstance(item, Request) else item
        target = target_of(url)
        if isinstance(target, FetchError):
            return target
        self._seeded(target)
        first = self._seen.first(_key(item, target), line or 0)
        if first is not None:
            self.stats.duplicate_seeds += 1
            return first
        self._queue_entry(item, 0, None, line)  # type: ignore[arg-type]  # str or Request
        return None

    def _seeded(self, target: Any) -> None:
        self.scope.add_seed(target)
        if len(self.origins) < _MAX_ORIGINS:
            self.origins[f"{target.scheme}://{target.authority}"] = None

    def add(self, item: object, depth: int, referrer: str | None = None) -> str | None:
        """Offer a discovered URL (absolute) or `Request` at ``depth``; the reason it was
        refused ("scope", "depth", "limit", "invalid"), "seen" for one already known, or
        None when it was queued."""
        if type(item) is str:
            if item in self._recent or item in self._older:
                return "seen"
            self._remember(item)
            target = target_of(item)
        elif isinstance(item, Request):
            target = target_of(item.url)
        else:
            self._refuse("invalid", repr(item), depth, referrer, seen=False)
            return "invalid"
        if isinstance(target, FetchError):
            shown = item if isinstance(item, str) else item.url  # type: ignore[attr-defined]
            self._refuse("invalid", str(shown)[:2000], depth, referrer, seen=False)
            return "invalid"
        key = _key(item, target)
        if self._seen.first(key, 0) is not None:
            return "seen"
        url = canonical(target)
        if self._closed:
            reason = "limit"
        elif self.max_depth is not None and depth > self.max_depth:
            reason = "depth"
        elif self.scope.refuses(target) is not None:
            reason = "scope"
        else:
            self._queue_entry(url if isinstance(item, str) else item, depth, referrer, None)  # type: ignore[arg-type]
            return None
        self._refuse(reason, url, depth, referrer)
        return reason

    def _remember(self, raw: str) -> None:
        recent = self._recent
        if len(recent) >= _RECENT:
            self._older, self._recent = recent, set()
            recent = self._recent
        recent.add(raw)

    def mark_seen(self, url: str) -> None:
        """Know ``url`` without fetching it (the target of a redirect that was fetched)."""
        target = target_of(url)
        if isinstance(target, FetchError):
            return
        key = canonical(target)
        if self._seen.first(key, 0) is None and self._journal.keep:
            self._journal.write_seen(key)

    def _queue_entry(
        self, item: str | Request, depth: int, referrer: str | None, line: int | None
    ) -> None:
        stats = self.stats
        stats.entries += 1
        entry = Entry(stats.entries, item, depth, referrer, line)
        journal = self._journal
        offset = journal.size
        if journal.keep:
            journal.write_entry(entry)
        if self._spilled_at is None and len(self._queue) < self._memory:
            self._queue.append(entry)
        else:
            if self._spilled_at is None:
                self._spilled_at = offset if journal.keep else journal.size
            if not journal.keep:
                journal.write_entry(entry)
        stats.waiting += 1
        self._count[depth] = self._count.get(depth, 0) + 1
        if self._low is None or depth < self._low:
            self._low = depth

    def _refuse(
        self, reason: str, url: str, depth: int, referrer: str | None, *, seen: bool = True
    ) -> None:
        self.stats.refused[reason] += 1
        if seen and self._journal.keep:
            self._journal.write_refused(reason, url)
        if self.record_refused:
            self._refusals.append(
                Result(
                    url=url,
                    index=-1,
                    error=REASONS[reason](_why(reason, self)),
                    depth=depth,
                    referrer=referrer,
                )
            )

    # -- the input of map() ---------------------------------------------------------------

    def __iter__(self) -> Iterator[object]:
        return self

    def __next__(self) -> object:
        """The next URL (or `Request`) to fetch, `WAIT`, or StopIteration at the end."""
        if self._stopped:
            raise StopIteration
        if self.max_pages is not None and self._budget >= self.max_pages:
            if self._inflight:
                return WAIT
            self._close()
            raise StopIteration
        queue = self._queue
        if not queue and self._spilled_at is not None:
            self._load()
        if not queue:
            if self._inflight:
                return WAIT
            raise StopIteration
        entry = queue[0]
        if self.stats.held >= self._hold and entry.depth != self._low:
            return WAIT  # deeper pages would only be held too: let the shallow ones finish
        queue.popleft()
        self.stats.waiting -= 1
        self._inflight[self._index] = entry
        self._index += 1
        self._budget += 1
        return entry.item

    def _load(self) -> None:
        assert self._spilled_at is not None
        entries, self._spilled_at = self._journal.read_entries(
            self._spilled_at, self._memory, self._skip
        )
        self._queue.extend(entries)

    def stop(self) -> None:
        """Hand out nothing more (Ctrl+C): what waits stays in the journal for a resume."""
        self._stopped = True

    @property
    def in_flight(self) -> int:
        """Entries handed to ``map()`` and not yet finished."""
        return len(self._inflight)

    # -- results ------------------------------------------------------------------------------

    def entry(self, index: int) -> Entry:
        """The entry ``map()`` fetched as item ``index`` (still in flight)."""
        return self._inflight[index]

    def finish(
        self, result: Result, extracted: Extracted | None, robots: str | None = None
    ) -> list[Result]:
        """Take the result of an entry and the links to follow from it (None: none); the
        records ready to hand back, in order: this page's and held ones' (or none yet, when
        it waits for shallower pages), each followed by the refusals its links caused.
        A discovered URL disallowed by robots.txt is a refusal, not a page."""
        entry = self._inflight.pop(result.index)
        if (
            type(result.error) is RobotsDisallowed
            and result.attempts == 0
            and entry.referrer is not None
        ):
            self._budget -= 1  # nothing was fetched
            self._done(entry.depth)
            if self.record_refused:
                self._refusals.append(
                    dataclasses.replace(result, depth=entry.depth, referrer=entry.referrer)
                )
            self.stats.refused["robots"] += 1
            return self._release([])
        if result.final_url is not None and result.final_url != result.url:
            self.mark_seen(result.final_url)
        if extracted is None or not extracted[0] or entry.depth == self._low:
            self._expand(entry, extracted)
            ready = [self._record(entry, result, _robots(extracted, robots))]
            ready.extend(self._take_refusals())
            self._done(entry.depth)
            return self._release(ready)
        self._held.setdefault(entry.depth, deque()).append(
            (entry, result, (extracted[0], _robots(extracted, robots)))
        )
        self.stats.held += 1
        return self._release([])

    def _expand(self, entry: Entry, extracted: Extracted | None) -> None:
        if extracted is None:
            return
        depth = entry.depth + 1
        referrer = entry.url
        add = self.add
        for link in extracted[0]:
            add(link, depth, referrer)

    def _record(self, entry: Entry, result: Result, robots: str | None) -> Result:
        stats = self.stats
        stats.pages += 1
        stats.deepest = max(stats.deepest, entry.depth)
        return dataclasses.replace(
            result, depth=entry.depth, referrer=entry.referrer, robots=robots
        )

    def _take_refusals(self) -> list[Result]:
        refusals, self._refusals = self._refusals, []
        return refusals

    def _done(self, depth: int) -> None:
        left = self._count[depth] - 1
        if left:
            self._count[depth] = left
            return
        del self._count[depth]
        if depth == self._low:
            self._low = min(self._count) if self._count else None

    def _release(self, ready: list[Result]) -> list[Result]:
        """Expand the held pages whose turn has come (no shallower page left); the journal
        is then flushed: it knows every link of the records handed back."""
        held = self._held
        while held and self._low is not None and self._low in held:
            depth = self._low
            pages = held[depth]
            entry, result, extracted = pages.popleft()
            if not pages:
                del held[depth]
            self.stats.held -= 1
            self._expand(entry, extracted)
            ready.append(self._record(entry, result, extracted[1] if extracted else None))
            ready.extend(self._take_refusals())
            self._done(depth)
        if self._refusals:
            ready.extend(self._take_refusals())
        if ready:
            self._journal.flush()
        return ready

    def _close(self) -> None:
        """``max_pages`` pages were handed out and have come back: refuse what waits."""
        if self._closed:
            return
        self._closed = True
        while True:
            if not self._queue and self._spilled_at is not None:
                self._load()
            if not self._queue:
                break
            entry = self._queue.popleft()
            self.stats.waiting -= 1
            self.stats.refused["limit"] += 1
            if self.record_refused:
                self._refusals.append(
                    Result(
                        url=entry.url,
                        index=-1,
                        error=PastMaxPages(_why("limit", self)),
                        depth=entry.depth,
                        referrer=entry.referrer,
                    )
                )
            self._done(entry.depth)

    def close(self) -> list[Result]:
        """The records still to hand back once ``map()`` has ended: held pages (their links
        refused past ``max_pages``) and refusals; after an interrupted ``map()`` (items left
        in flight), held pages are dropped instead: fetched again on resume."""
        interrupted = bool(self._inflight) or bool(self._queue) or self._spilled_at is not None
        ready: list[Result] = []
        if interrupted:
            self.stats.held = 0
            self._held.clear()
        else:
            self._closed = True
            while self._held:
                depth = min(self._held)
                self._low = depth
                ready = self._release(ready)
        ready.extend(self._take_refusals())
        self._journal.flush()
        return ready

    def flush(self) -> None:
        """Make the journal whole on disk: called before the records `finish` gave are
        written, so a resumed crawl knows every link they led to."""
        self._journal.flush()

    def release(self) -> None:
        """Free the seen-set, the spill file and what `restore` was given to keep."""
        self._seen.close()
        self._journal.close()
        for thing in self._kept:
            thing.close()
        self._kept.clear()

    # -- resume ------------------------------------------------------------------------------

    def restore(self, done_urls: FingerprintSet, done_lines: LineSet | None, pages: int) -> bool:
        """Read the journal back after an interrupted crawl: every URL it names is seen, and
        the entries that the output does not record (``done_urls`` for discovered ones by
        their URL, ``done_lines`` for seeds by their input line) are queued again, in order.
        ``pages``: the pages the output records. ``done_urls`` is the frontier's to close.
        Returns whether the sitemaps were read whole."""
        self._kept.append(done_urls)
        journal = self._journal
        assert journal.path is not None and journal.keep
        marks: set[str] = set()
        stats = self.stats

        def done(entry: Entry) -> bool:
            if entry.line is not None:
                return done_lines is not None and entry.line in done_lines
            return entry.url in done_urls

        for raw in lines(journal.path):
            kind = raw[:1]
            if kind in (b"E", b"J"):
                entry = journal.parse(raw)
                assert entry is not None
                stats.entries = max(stats.entries, entry.n)
                item = entry.item
                target = target_of(entry.url)
                if isinstance(target, FetchError):
                    continue
                self._seen.first(_key(item, target), entry.line or 0)
                if entry.referrer is None:  # a seed: it widened the scope
                    self._seeded(target)
                if not done(entry):
                    stats.waiting += 1
                    self._count[entry.depth] = self._count.get(entry.depth, 0) + 1
            elif kind == b"X":
                _, reason, url = raw[:-1].decode("utf-8", "surrogateescape").split("\t")
                self._seen.first(url, 0)
                if reason in stats.refused:
                    stats.refused[reason] += 1
            elif kind == b"S":
                self._seen.first(raw[2:-1].decode("utf-8", "surrogateescape"), 0)
            elif kind == b"M":
                marks.add(raw[2:-1].decode())
        self._low = min(self._count) if self._count else None
        self._spilled_at = 0 if stats.waiting else None
        self._skip = done
        stats.pages = pages
        self._budget = pages
        journal.size = journal.tell()
        return "sitemaps" in marks

    def mark_sitemaps_read(self) -> None:
        """Note in the journal that the sitemaps were read whole (not read again on resume)."""
        if self._journal.keep:
            self._journal.write_mark("sitemaps")
            self._journal.flush()


def _key(item: object, target: Any) -> str:
    """The dedup key: the canonical URL, or for a `Request` that is more than a GET, the
    method, the URL with its ``params`` and a digest of its headers and body."""
    url = canonical(target)
    if not isinstance(item, Request):
        return url
    method = (item.method or "GET").upper()
    if method == "GET" and all(
        getattr(item, name) is None for name in ("headers", "params", "data", "json")
    ):
        return url
    import hashlib

    parts = (method, item.headers, item.params, item.data, item.json)
    digest = hashlib.blake2b(repr(parts).encode("utf-8", "surrogatepass"), digest_size=16)
    return f"{method} {url}\n{digest.hexdigest()}"  # a URL holds no line break: no clash


def _robots(extracted: Extracted | None, header: str | None) -> str | None:
    from polyfetch.frontier.links import merge

    return merge(extracted[1] if extracted is not None else None, header)


def _why(reason: str, frontier: Frontier) -> str:
    if reason == "depth":
        return f"more than max_depth={frontier.max_depth} links from the seeds"
    if reason == "limit":
        return f"found after max_pages={frontier.max_pages} pages"
    if reason == "scope":
        return f"outside the crawl's scope ({frontier.scope.kind} of the seeds, accept/reject)"
    return "not a URL the crawl can fetch"


def _check_limit(name: str, value: int | None, low: int) -> None:
    from polyfetch.errors import ConfigError

    if value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ConfigError(f"{name} must be a whole number >= {low}, got {value!r}")


def links_of(values: Iterable[object], base: str) -> list[str | Request]:
    """What a ``follow`` function returned, made absolute against the page's URL ``base``."""
    from urllib.parse import urljoin

    out: list[str | Request] = []
    for value in values:
        if isinstance(value, str):
            try:
                out.append(urljoin(base, value.strip()).split("#", 1)[0])
            except ValueError:
                out.append(value)  # refused as invalid by the frontier
        elif isinstance(value, Request):
            try:
                url = urljoin(base, value.url) if isinstance(value.url, str) else value.url
            except ValueError:
                url = value.url
            out.append(value if url == value.url else dataclasses.replace(value, url=url))
        else:
            out.append(value)  # type: ignore[arg-type]  # refused as invalid
    return out


__all__ = ["REASONS", "WAIT", "Entry", "Frontier", "FrontierStats", "NotFollowed", "links_of"]
