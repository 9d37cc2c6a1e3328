"""The crawl itself: open input and output, run `Fetcher.map`, write records, decide the exit.

Imported by ``polyfetch.cli`` only after gevent had its chance to patch. The
fetch loop runs in the main thread (gevent and the greenlet hub need it there);
`signals.Interrupter` is what makes Ctrl+C reach it on every backend. Items
taken from the input but without a record yet are kept in ``pending`` (index ->
line), bounded by the fetcher's window; after an interruption they are the
requests that were cancelled, and ``--resume`` finishes them.

With ``--cluster`` the one difference is the fetcher: a
`polyfetch.distributed.ClusterFetcher`, whose ``map()`` has the same shape
(lazy, bounded, results by input index), so input, dedup, resume, records,
progress, Ctrl+C and exit statuses are this same code. Its window is at most
``2 * shards in flight * shard size`` items (buffered by partition, and in
flight), and results arrive a shard at a time.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import stat
import time
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING, Any, TextIO

from polyfetch import Fetcher
from polyfetch.crawl import curlopts, follow
from polyfetch.crawl.bodies import Bodies, binary
from polyfetch.crawl.inputs import (
    InputCounts,
    InputLine,
    NotFetched,
    canonical,
    count_lines,
    read_lines,
    select,
    sniff,
)
from polyfetch.crawl.options import DEFAULT_PROCESS_TIMEOUT
from polyfetch.crawl.outputs import (
    CsvWriter,
    JsonlWriter,
    LineWriter,
    OutputError,
    fields,
    make_record,
    read_recorded,
)
from polyfetch.crawl.progress import (
    NullProgress,
    RichProgress,
    Stats,
    frontier_status,
    summary,
)
from polyfetch.crawl.savedir import SaveDir
from polyfetch.crawl.signals import EXIT_INTERRUPTED, GraceOver, Interrupter, exit_now
from polyfetch.distributed.errors import ShardFailed
from polyfetch.errors import BackendError, ConfigError
from polyfetch.frontier.seen import FingerprintSet, LineSet
from polyfetch.request import Request
from polyfetch.result import Result

if TYPE_CHECKING:
    from http.cookiejar import MozillaCookieJar

    from polyfetch.distributed import ClusterFetcher
    from polyfetch.frontier import Frontier

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
PROG = "polyfetch crawl"


class UsageError(Exception):
    """A problem with the command line or its files: one line on stderr, exit status 2."""


class OutputFailed(Exception):
    """Writing a record failed (disk full, closed pipe): the ``__cause__`` says why."""


def main(args: argparse.Namespace, *, stdin: IO[Any], stdout: IO[Any], stderr: TextIO) -> int:
    """Run ``polyfetch crawl``; return the exit status."""
    stack = contextlib.ExitStack()
    crawl = Crawl(args, stdin, stdout, stderr)
    crawl.interrupter.install()
    try:
        try:
            stack.enter_context(logging_to(args, stderr))
            crawl.prepare()
        except UsageError as exc:
            stderr.write(f"{crawl._prog}: error: {exc}\n")
            return EXIT_USAGE
        return crawl.run()
    finally:
        crawl.interrupter.uninstall()
        crawl.close()
        stack.close()


@contextlib.contextmanager
def logging_to(args: argparse.Namespace, stderr: TextIO) -> Iterator[None]:
    """With -v or --log: the ``polyfetch`` logger at debug level, to stderr or the file
    (with -vv every library's logger too), for the length of the crawl."""
    verbose = args.verbose or (1 if args.log else 0)
    if not verbose:
        yield
        return
    try:
        handler = (
            logging.FileHandler(args.log, encoding="utf-8")
            if args.log
            else logging.StreamHandler(stderr)
        )
    except OSError as exc:
        raise UsageError(f"cannot write --log {args.log}: {exc.strerror or exc}") from None
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s"))
    target = logging.getLogger() if verbose > 1 else logging.getLogger("polyfetch")
    before = target.level
    target.addHandler(handler)
    target.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        target.removeHandler(handler)
        target.setLevel(before)
        handler.close()


class Crawl:
    """One run of the command; `prepare` opens everything, `run` fetches."""

    def __init__(
        self, args: argparse.Namespace, stdin: IO[Any], stdout: IO[Any], stderr: TextIO
    ) -> None:
        self.args = args
        inputs = getattr(args, "inputs", None) or []
        args.input = inputs[0] if len(inputs) == 1 else None
        self.stdin, self.stdout, self.stderr = stdin, stdout, stderr
        self.interrupter = Interrupter(args.grace, self._exit_now, self._first_interrupt)
        self.counts = InputCounts()
        self.stats = Stats()
        self.pending: dict[int, InputLine] = {}
        self.progress: NullProgress | RichProgress = NullProgress()
        self._closing: list[Any] = []
        self._input: IO[Any] | None = None
        self._out: IO[Any] | None = None
        self._seen: FingerprintSet | None = None
        self._done_lines: LineSet | None = None
        self._savedir: SaveDir | None = None
        self._writer: JsonlWriter | CsvWriter | None = None
        self._fetcher: Fetcher | ClusterFetcher | None = None
        self._finished = False
        self._prog = "polyfetch get" if args.urls is not None else PROG
        self._bodies: Bodies | None = None
        if args.include and args.body_to is None:
            args.body_to = "-"
        bodies_to_stdout = args.body_to == "-"
        #: records go nowhere when the bodies take stdout and -o names no file
        self._no_records = bodies_to_stdout and not args.output
        self._to_stdout = not args.output or args.output == "-"
        # -- requests: curl's options and JSON Lines input (`curlopts`, `jsonl`) --
        #: the input is JSON Lines (one request object per line)
        self._jsonl = False
        #: raw lines `sniff` read while deciding, given back to the reader
        self._replay: list[Any] = []
        #: the body of -d / --json (None: none), and the Content-Type it implies
        self._body: bytes | None = None
        self._body_type: str | None = None
        #: the cookie jar of -b / --cookie-jar-out (None: cookies off)
        self._jar: MozillaCookieJar | None = None
        # -- --follow (`follow`) --
        self._frontier: Frontier | None = None
        self._journal: str | None = None
        self._sitemaps_read = False

    # -- setting up ---------------------------------------------------------------------

    def prepare(self) -> None:
        """Check the options, open input and output, read what --resume skips."""
        a = self.args
        if a.resume and self._to_stdout:
            raise UsageError("--resume needs -o FILE (the output of the run to continue)")
        if len(getattr(a, "inputs", None) or []) > 1 and not a.follow:
            raise UsageError("give one URLS_FILE (or -); several seeds are for --follow")
        if a.follow:
            try:
                follow.check_options(a)
            except follow.FollowError as exc:
                raise UsageError(str(exc)) from None
        if a.cacert is not None and not os.access(a.cacert, os.R_OK):
            raise UsageError(f"cannot read --cacert {a.cacert}")
        self._input = self._open_input()
        self._prepare_requests()
        try:  # before the output is touched: a mistyped option must not truncate it
            self._fetcher = self._make_fetcher()
            self._check_http_versions()
        except (ConfigError, BackendError) as exc:
            raise UsageError(str(exc)) from None
        if a.save_dir is not None:
            try:
                self._savedir = SaveDir(a.save_dir)
            except OSError as exc:
                raise UsageError(f"cannot use --save-dir {a.save_dir}: {exc.strerror}") from None
        if a.follow:
            appending = self._prepare_follow()
        else:
            if a.dedup != "off":
                self._seen = FingerprintSet(a.dedup_memory * 2**20)
                self._closing.append(self._seen)
            if a.resume:
                self._done_lines = LineSet()
            appending = self._load_resume() if a.resume else False
        if a.body_to is not None:
            self._bodies = self._open_bodies()
        self.progress = self._make_progress()
        if self._no_records:
            return
        self._out = self._open_output()
        out = LineWriter(self._out)
        names = fields(save=a.save_dir is not None)
        if self._jsonl or a.follow:
            names.append("meta")
        if a.follow:
            names.extend(follow.FIELDS)
        self._writer = (
            CsvWriter(out, names, header=not appending) if a.format == "csv" else JsonlWriter(out)
        )

    def _prepare_follow(self) -> bool:
        """--follow: the frontier, its journal beside -o FILE, and with --resume what the
        output and the journal already hold. True if the output is appended to."""
        a = self.args
        self._journal = follow.journal_path(a)
        try:
            resumed = False
            if self._journal is not None:
                if os.path.exists(a.output):
                    self._check_not_input(a.output)
                resumed = follow.open_journal(self._journal, a.resume)
            self._frontier = follow.make_frontier(a, self._journal)
            self._closing.append(_Releaser(self._frontier))
            if resumed:
                self._done_lines, self._sitemaps_read = follow.restore(
                    self._frontier, a.output, a.format
                )
        except (follow.FollowError, ConfigError) as exc:
            raise UsageError(str(exc)) from None
        except OSError as exc:
            raise UsageError(f"cannot use {self._journal}: {exc.strerror or exc}") from None
        return bool(a.resume) and os.path.exists(a.output) and os.path.getsize(a.output) > 0

    def _prepare_requests(self) -> None:
        """-X, -d, --json, -b, --cookie-jar-out and the input's format: checked and read
        before anything is fetched or written (their mistakes are usage errors)."""
        a = self.args
        if self._input is not None and a.input_format != "text":
            try:
                found, self._replay = sniff(self._input)
            except OSError as exc:
                raise UsageError(f"cannot read the input: {exc.strerror or exc}") from None
            self._jsonl = a.input_format == "jsonl" or found
        try:
            self._body, self._body_type = curlopts.body(a, curlopts.stdin_for_bodies(a, self.stdin))
        except curlopts.BodyError as exc:
            raise UsageError(str(exc)) from None
        if self._body is not None and self._jsonl:
            raise UsageError(
                "-d and --json are for URL lists: each line of a JSON Lines input gives "
                "its own data or json"
            )
        if a.cookie_jar is not None or a.cookie_jar_out is not None:
            if a.cluster is not None:
                raise UsageError("-b and --cookie-jar-out do not work with --cluster")
            from polyfetch.crawl import cookiefile

            try:
                self._jar = cookiefile.load(a.cookie_jar)
            except cookiefile.CookieFileError as exc:
                raise UsageError(str(exc)) from None

    def _request_options(self) -> dict[str, Any]:
        """The fetcher options -X, -d, --json, -b, --http2 and --http3 give."""
        a = self.args
        options: dict[str, Any] = {}
        method = a.method or ("POST" if self._body is not None else None)
        if method is not None:
            options["method"] = method
        if self._body_type is not None:
            given = {name.lower() for name, _ in a.headers or ()}
            extra = [("Content-Type", self._body_type)]
            if a.json_data:
                extra.append(("Accept", "application/json"))
            options["headers"] = [
                *(a.headers or ()),
                *(h for h in extra if h[0].lower() not in given),
            ]
        if self._jar is not None:
            options["cookies"] = self._jar
        if a.http2:
            options["http2"] = True
        if a.http3:
            options["http3"] = True
        return options

    def _check_http_versions(self) -> None:
        """--http2 / --http3 on a backend without them: refused now, not once the output is
        truncated (the fetcher itself checks only when it starts)."""
        a = self.args
        if (a.http2 or a.http3) and a.cluster is None:
            from polyfetch import backends
            from polyfetch.backends._base import check_http_versions

            assert self._fetcher is not None
            check_http_versions(backends.load(a.backend), self._fetcher.settings)

    def _save_cookies(self) -> str | None:
        """Write --cookie-jar-out; what went wrong, or None."""
        if self._jar is None or self.args.cookie_jar_out is None:
            return None
        from polyfetch.crawl import cookiefile

        try:
            cookiefile.save(self._jar, self.args.cookie_jar_out)
        except cookiefile.CookieFileError as exc:
            return str(exc)
        return None

    def _open_bodies(self) -> Bodies:
        path = self.args.body_to
        if path == "-":
            stream = binary(self.stdout)
        else:
            try:
                stream = open(path, "wb")  # noqa: SIM115 - closed in close()
            except OSError as exc:
                raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None
            self._closing.append(stream)
        return Bodies(stream, self.stderr, headers=self.args.include, prog=self._prog)

    def _open_input(self) -> IO[Any] | None:
        if self.args.urls is not None or self.args.follow:
            return None  # the URLs are the arguments (--follow reads its seeds as it goes)
        path = self.args.input
        if path is None:
            if _isatty(self.stdin):
                raise UsageError("no input: give URLS_FILE, or - and pipe the URLs to stdin")
            path = "-"
        if path == "-":
            return getattr(self.stdin, "buffer", self.stdin)  # type: ignore[no-any-return]
        try:
            f = open(path, "rb")  # noqa: SIM115 - closed in close()
        except OSError as exc:
            raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
        self._closing.append(f)
        return f

    def _load_resume(self) -> bool:
        """Remember what the output already holds; True if it is not empty (CSV: has a header)."""
        path = self.args.output
        if not os.path.exists(path):
            return False
        self._check_not_input(path)
        try:
            key = canonical if self.args.dedup == "canonical" else str
            for url, line, duplicate_of in read_recorded(path, self.args.format):
                # JSON Lines: the key is the request's; `select` adds it as the line goes by
                if self._seen is not None and not self._jsonl:  # a duplicate's key: its first
                    self._seen.first(key(url), line if duplicate_of is None else duplicate_of)
                if self._done_lines is not None:
                    self._done_lines.add(line)
        except OutputError as exc:
            raise UsageError(str(exc)) from None
        except OSError as exc:
            raise UsageError(f"cannot resume from {path}: {exc.strerror or exc}") from None
        return os.path.getsize(path) > 0

    def _check_not_input(self, path: str) -> None:
        """Refuse an output that is the input file, named or on stdin (before it is truncated)."""
        inp = self.args.input
        if self.args.urls is not None:
            return
        with contextlib.suppress(OSError):
            if inp not in (None, "-") and os.path.samefile(inp, path):
                raise UsageError(f"the output {path} is the input file")
        if inp in (None, "-") and _same_regular_file(self.stdin, path):
            raise UsageError(f"the output {path} is the input file (on stdin)")

    def _open_output(self) -> IO[Any]:
        path = self.args.output
        if self._to_stdout:
            return getattr(self.stdout, "buffer", self.stdout)  # type: ignore[no-any-return]
        if os.path.exists(path):
            self._check_not_input(path)
        try:
            f = open(path, "ab" if self.args.resume else "wb")  # noqa: SIM115 - closed in close()
        except OSError as exc:
            raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None
        self._closing.append(f)
        return f

    def _make_fetcher(self) -> Fetcher | ClusterFetcher:
        """A `Fetcher`, or with --cluster a `ClusterFetcher` (connected: an unreachable
        scheduler is a usage error, found before the output is opened)."""
        a = self.args
        if a.cluster is None:
            if a.shard_size is not None or a.shards_in_flight is not None or a.partition_by:
                raise UsageError(
                    "--shard-size, --shards-in-flight and --partition-by need --cluster"
                )
            return Fetcher(a.backend, **self._fetcher_options())
        from polyfetch.distributed import ClusterFetcher

        fetcher = ClusterFetcher(
            a.cluster,
            a.backend,
            shard_size=a.shard_size,
            shards=a.shards_in_flight,
            partition_by=a.partition_by or "host",
            bodies=a.save_dir is not None,  # processing happens on the workers
            **self._fetcher_options(),
        )
        self._closing.append(fetcher)
        if not a.quiet:
            s = fetcher.settings
            rate = f", --rate {s.rate:g}/s" if s.rate is not None else ""
            self.stderr.write(
                f"{PROG}: on the Dask cluster {fetcher.address}: {fetcher.shards} partitions by "
                f"{fetcher.partition_by}, shards of {fetcher.shard_size} URLs, each with "
                f"--per-host {s.per_host}{rate}\n"
            )
        return fetcher

    def _fetcher_options(self) -> dict[str, Any]:
        a = self.args
        given = {
            "concurrency": a.concurrency,
            "per_host": a.per_host,
            "rate": a.rate,
            "lookahead": a.lookahead,
            "max_crawl_delay": a.max_crawl_delay,
            "timeout": a.timeout,
            "connect_timeout": a.connect_timeout,
            "read_timeout": a.read_timeout,
            "retries": a.retries,
            "retry_statuses": a.retry_statuses,
            "backoff": a.backoff,
            "max_backoff": a.max_backoff,
            "max_bytes": a.max_bytes,
            "max_redirects": a.max_redirects,
            "user_agent": a.user_agent,
            "ca_bundle": a.cacert,
            "proxy": a.proxy,
            "no_proxy": a.noproxy,
            "process": a.process,
            "workers": a.workers,
            "process_timeout": self._process_timeout(),
        }
        options = {k: v for k, v in given.items() if v is not None}
        options["headers"] = a.headers or []
        options["verify"] = not a.insecure
        if a.no_proxy_env:
            options["trust_env"] = False
        options["robots"] = a.robots
        options["auto_throttle"] = a.auto_throttle
        options.update(self._request_options())
        # Bodies are needed only to store them, process them or read their links; size is
        # counted anyway.
        options["keep_body"] = (
            a.save_dir is not None or a.process is not None or bool(a.body_to) or a.follow
        )
        return options

    def _process_timeout(self) -> float | None:
        """The CLI's default keeps one hanging processor from stalling a crawl for ever."""
        if self.args.process is None:
            return None
        given = self.args.process_timeout
        seconds = DEFAULT_PROCESS_TIMEOUT if given is None else given
        return None if math.isinf(seconds) else seconds  # inf: the option's "no limit"

    def _make_progress(self) -> NullProgress | RichProgress:
        a = self.args
        to_terminal = self._to_stdout and _isatty(self.stdout)  # records would garble the display
        logs_here = a.verbose and a.log is None  # log lines would garble the display
        if a.quiet or a.no_progress or not _isatty(self.stderr) or to_terminal or logs_here:
            return NullProgress()
        if a.follow:
            assert self._frontier is not None
            stats = self._frontier.stats
            return RichProgress(
                self.stderr, None, self._status, unit="pages", known=lambda: stats.waiting
            )
        total = count_lines(a.input) if a.input not in (None, "-") else None
        return RichProgress(self.stderr, total, self._status)

    # -- running ------------------------------------------------------------------------

    def run(self) -> int:
        """Fetch everything, write the records, print the summary; the exit status."""
        assert self._fetcher is not None
        started = time.monotonic()
        failure: str | None = None
        self.progress.start()
        try:
            try:
                with self._fetcher as fetcher:
                    results = (
                        self._follow_results(fetcher)
                        if self.args.follow
                        else fetcher.map(self._items())
                    )
                    try:
                        self._consume(results)
                    except GraceOver:
                        pass  # the map generator has cancelled what was in flight
                    except OutputFailed as exc:
                        failure = f"cannot write records: {exc.__cause__}"
                        self._silence_stdout(exc.__cause__)
                    except ShardFailed as exc:
                        failure = f"{exc}; the records written are whole: --resume finishes"
                    except OSError as exc:  # reading the input
                        failure = f"cannot read the input: {exc.strerror or exc}"
                    finally:
                        results.close()  # type: ignore[attr-defined]  # map() is a generator
            except (ConfigError, BackendError) as exc:
                self.stderr.write(f"{self._prog}: error: {exc}\n")
                return EXIT_USAGE
        finally:
            self._finished = True
            self.progress.update(self.stats, self.counts, force=True)
            self.progress.stop()
        cookie_failure = self._save_cookies()
        if failure is None:
            failure = cookie_failure
        wall = time.monotonic() - started
        interrupted = self.interrupter.interrupts > 0
        frontier = self._frontier
        if not self.args.quiet:
            self.stderr.write(
                summary(
                    self.stats,
                    self.counts,
                    wall,
                    unfinished=len(self.pending) if frontier is None else frontier.in_flight,
                    interrupted=interrupted,
                    frontier=frontier.stats if frontier is not None else None,
                )
            )
        if frontier is not None and failure is None and not interrupted:
            self._journal_done()
        if failure is not None:
            self.stderr.write(f"{self._prog}: error: {failure}\n")
            return EXIT_FAILED
        if interrupted:
            return EXIT_INTERRUPTED
        if self.args.fail_on_error and self.stats.failed:
            return EXIT_FAILED
        return EXIT_OK

    def _items(self) -> Iterator[object]:
        """What `Fetcher.map` pulls: one item per selected line, remembered in ``pending``."""
        lines = select(
            self._lines(),
            self.counts,
            seen=self._seen,
            key=canonical if self.args.dedup == "canonical" else str,
            line_key=self._request_key() if self._jsonl else None,
            done_lines=self._done_lines,
            stop=lambda: self.interrupter.stop_input,
        )
        body = self._body
        for index, line in enumerate(lines):
            self.pending[index] = line
            if line.reject is not None or line.duplicate_of is not None:
                yield NotFetched(line)
            elif line.request is not None:  # a JSON Lines request
                yield line.request
            elif body is None:  # plain URLs: strings, the fast path
                yield line.url
            else:  # -d / --json for every URL of the list
                yield Request(line.url, data=body)

    def _follow_results(self, fetcher: Fetcher | ClusterFetcher) -> Iterator[Result]:
        """--follow: the seed lines' own records (lines that are no URL, duplicates), then
        the crawl's."""
        frontier = self._frontier
        assert frontier is not None
        done = self._done_lines
        for line in follow.Seeds(self.args, self.stdin, self.counts).lines():
            if self.interrupter.stop_input:
                return
            if done is not None and line.number in done:
                self.counts.skipped_seen += 1
                continue
            record = follow.seed(frontier, line)
            if record is not None:
                yield record
        sitemaps = self.args.sitemaps and not self._sitemaps_read
        yield from fetcher.crawl(frontier, sitemaps=sitemaps)

    def _journal_done(self) -> None:
        """The crawl ended whole: its journal is of no more use."""
        if self._journal is not None and self._frontier is not None:
            self._frontier.release()
            with contextlib.suppress(OSError):
                os.unlink(self._journal)

    def _request_key(self) -> Any:
        """The dedup key of a JSON Lines line (`jsonl.request_key`)."""
        from polyfetch.crawl.jsonl import request_key

        canonical_urls = self.args.dedup == "canonical"
        return lambda line: request_key(line.request, canonical_urls=canonical_urls)

    def _lines(self) -> Iterator[InputLine]:
        if self.args.urls is None:
            assert self._input is not None
            if self._jsonl:
                from polyfetch.crawl.jsonl import read_requests

                yield from read_requests(self._input, self.counts, self._replay)
            else:
                yield from read_lines(self._input, self.counts, self._replay)
            return
        for number, url in enumerate(self.args.urls, 1):
            self.counts.lines = number
            yield InputLine(number, url)

    def _consume(self, results: Iterator[Result]) -> None:
        # The flags are set by hand, not with context managers: this runs once per record.
        intr, writer, pending, bodies = self.interrupter, self._writer, self.pending, self._bodies
        following = self.args.follow
        while not intr.grace_over:
            intr.waiting = True  # GraceOver may be raised from here ...
            try:
                intr.check_grace()
                result = next(results, None)
            finally:
                intr.waiting = False  # ... to here, and nowhere else
            if result is None:
                return
            intr.writing = True
            try:
                if following:
                    record = self._follow_record(result, follow.line_of(result))
                else:
                    line = pending.pop(result.index)
                    saved = self._save(result, line) if self._savedir is not None else None
                    record = make_record(result, line, saved)
                try:
                    if bodies is not None:
                        bodies.add(result)
                    if writer is not None:
                        writer.write(record)
                except OSError as exc:
                    raise OutputFailed from exc
            finally:
                intr.writing = False
                intr.written()
            self.stats.add(record)
            self.progress.update(self.stats, self.counts)

    def _follow_record(self, result: Result, line: InputLine | None) -> dict[str, Any]:
        """The record of a --follow result: a seed line's (``line``) or a found page's."""
        url = result.url
        number = line.number if line is not None else 0
        saved = self._save(result, InputLine(number, url)) if self._savedir is not None else None
        record = make_record(result, line or InputLine(number, url), saved)
        if line is None:
            record["line"] = None
        meta = follow.user_meta(result)
        record.pop("meta", None)
        record["meta"] = meta
        for name in follow.FIELDS:
            record[name] = getattr(result, name)
        return record

    def _save(self, result: Result, line: InputLine) -> tuple[str | None, str | None]:
        assert self._savedir is not None
        if result.body is None or result.error is not None:
            return None, None
        try:
            return self._savedir.save(line.url, result.body), None
        except OSError as exc:
            return None, f"{type(exc).__name__}: {exc.strerror or exc}"

    def _silence_stdout(self, exc: BaseException | None) -> None:
        """After a closed pipe on stdout, point it at /dev/null so the exit flush is quiet."""
        if isinstance(exc, BrokenPipeError) and self._to_stdout:
            with contextlib.suppress(Exception):
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, self.stdout.fileno())
                os.close(devnull)

    # -- Ctrl+C -------------------------------------------------------------------------

    def _status(self) -> str:
        if self._finished:
            return "interrupted" if self.interrupter.interrupts else "done"
        if self.interrupter.interrupts:
            return "stopping: finishing in-flight requests (Ctrl+C again: quit now)"
        if self._frontier is not None:
            return frontier_status(self._frontier.stats)
        blocked = getattr(self._fetcher, "blocked_on", None)
        host = blocked() if blocked is not None else None
        if host:
            return f"waiting on host {host} (its URLs fill the --lookahead)"
        return "crawling"

    def _first_interrupt(self) -> None:
        drain = getattr(self._fetcher, "drain", None)
        if drain is not None:  # what was read ahead but not started waits for --resume
            drain()
        if isinstance(self.progress, NullProgress) and not self.args.quiet:
            with contextlib.suppress(Exception):
                self.stderr.write(
                    f"{PROG}: stopping; in-flight requests get {self.args.grace:g} s "
                    "(Ctrl+C again to quit now)\n"
                )
                self.stderr.flush()

    def _exit_now(self) -> None:
        def flush() -> None:
            if self._out is not None:
                self._out.flush()
            if isinstance(self.progress, RichProgress):
                self.stderr.write("\x1b[?25h\n")  # rich hid the cursor
            self.stderr.write(f"{PROG}: interrupted twice: exiting now; --resume finishes\n")
            self.stderr.flush()

        exit_now(flush)

    def close(self) -> None:
        """Close the files this run opened."""
        for thing in reversed(self._closing):
            with contextlib.suppress(Exception):
                thing.close()
        self._closing.clear()


class _Releaser:
    """Closes (`Crawl.close`) what a frontier holds: its seen-set and its files."""

    def __init__(self, frontier: Frontier) -> None:
        self.frontier = frontier

    def close(self) -> None:
        self.frontier.release()


def _same_regular_file(stream: object, path: str) -> bool:
    """Whether ``stream`` (stdin) is the regular file at ``path`` (same device and inode)."""
    try:
        fd = stream.fileno()  # type: ignore[attr-defined]
        st, out = os.fstat(fd), os.stat(path)
    except (AttributeError, ValueError, OSError):  # no descriptor (io.StringIO), or gone
        return False
    return stat.S_ISREG(st.st_mode) and (st.st_dev, st.st_ino) == (out.st_dev, out.st_ino)


def _isatty(stream: object) -> bool:
    try:
        return bool(stream.isatty())  # type: ignore[attr-defined]
    except (AttributeError, ValueError, OSError):
        return False
