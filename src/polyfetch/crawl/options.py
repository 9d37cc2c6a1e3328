"""The ``crawl`` subcommand's arguments: argparse only, imported before gevent may patch.

Fetcher options default to None here, so that only what the user gave is passed
on and `polyfetch.Settings` stays the one place that holds the defaults (the
help text quotes them from there).
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable

from polyfetch.backends import DEFAULT, NAMES
from polyfetch.crawl import curlopts
from polyfetch.distributed.partitions import DEFAULT_SHARD_SIZE, PARTITION_BY
from polyfetch.settings import MAX_LOOKAHEAD, Settings

#: The default backend: the library's (`polyfetch.backends.DEFAULT`), chosen by measurement.
DEFAULT_BACKEND = DEFAULT
#: Seconds in-flight requests get to finish after the first Ctrl+C.
DEFAULT_GRACE = 2.0
#: How duplicates are recognised (``--dedup``).
DEDUP_MODES = ("canonical", "exact", "off")
#: Memory for the exact duplicate filter before it moves to a temporary file.
DEFAULT_DEDUP_MIB = 64

BACKEND_HELP = (
    f"how requests wait: {', '.join(NAMES)} (default: %(default)s, as in the library); "
    "README.md's 'Choosing a backend' says which wins where"
)

DESCRIPTION = """\
Fetch every URL of URLS_FILE (or stdin: -), one per line, and write one record per URL
(or one request object per line, JSON Lines: see "JSON Lines input" below).

Input is read lazily; blank lines and lines starting with # are skipped. A line
that is not a usable http(s) URL gets an error record (InvalidURL), never a crash.
Duplicates are fetched once: a line whose URL, in canonical form (scheme and
host lower-cased, default port, fragment and dot segments dropped, percent-
encoding normalised), was on an earlier line gets a record with duplicate_of
(that line's number) and no request. --dedup exact compares the lines as they
are; --dedup off fetches every line. Memory stays bounded: a 64-bit blake2b
fingerprint and a line number per URL (32-64 bytes), in memory up to
--dedup-memory, then in an unlinked temporary file mapped with mmap. The chance
that two distinct URLs share a fingerprint (one would then not be fetched) is
about N^2/2^65 for N distinct URLs: 3e-6 for 10 million, 7e-5 for 50 million.

URLs wait for their host in per-host queues, read ahead up to --lookahead
lines, so a host-sorted list keeps every host busy: a URL starts as soon as
both a place in -c and one of its host's --per-host places are free, hosts
taking turns. When the look-ahead holds only URLs of hosts at their limit,
reading pauses and the crawl goes at those hosts' pace (the progress line says
"waiting on host X"): raise --lookahead for lists with long runs of one host.

--robots: each origin's robots.txt is fetched once (cached 24 h) and obeyed
for our User-Agent's product token (RFC 9309: a 4xx robots.txt allows
everything; 5xx, 429 or unreachable disallows everything for now, asked again
after 60 s); a disallowed URL's record has error RobotsDisallowed and no
request is made. Its Crawl-delay (or Request-rate) paces the host, the stricter
of it and --rate, at most --max-crawl-delay seconds apart.

--auto-throttle: each host starts at 1 request in flight and grows by one per
healthy answer up to --per-host, then more slowly; 429/503 answers, timeouts
and refused connections halve it and space its requests out; a latency that
climbs past twice the lowest seen halves it too (TCP-style AIMD, see README).

Each record is written whole and flushed, so a killed run leaves complete lines;
--resume continues such a run. Records (JSON Lines, or CSV with a header) hold:
url, line, final_url, status, size, elapsed_ms, attempts, redirects, error,
error_message, content_type, processed, process_error, process_error_message,
duplicate_of, and with --save-dir: file (the body's path relative to DIR) and
save_error.
"""

EPILOG = """\
Ctrl+C: the first stops reading input and gives in-flight requests --grace
seconds to finish; what is still running then is cancelled and gets NO record:
run the same command again with --resume (which needs -o FILE) to finish exactly
those URLs and the unread rest. A second Ctrl+C exits at once; the output stays
valid (whole records only).

--follow: the seeds (URLs, files of URLs, or -) and then the pages their HTML
links lead to, each recorded once with depth (its shortest distance from a seed),
referrer and robots; links out of --scope, past --depth or --max-pages are
counted (--record-refused: recorded). With -o FILE the frontier's journal,
FILE.frontier, makes --resume exact after Ctrl+C or a kill; it is removed when
the crawl ends whole. See docs/following-links.md.

--cluster: the same crawl on a Dask cluster. Hosts are split among partitions
(one per worker slot, by a hash of the host), and each partition's URLs are
cut into shards (--shard-size) as they are read; a partition has one shard in
flight at a time, on a worker in a fresh process, with the whole --per-host,
--rate and robots.txt of its hosts, and its records are written, as above,
when the whole shard is done. A worker killed mid-shard has its shard rerun by
Dask and no URL gets two records; Ctrl+C and --resume work as above (shards
that do not finish within --grace are cancelled and left to --resume). With
--follow the frontier stays here: the links a shard reads on its pages come
back with its records, and each goes to its own host's partition.

exit status: 0 every URL read got a record (whatever its outcome); 1 with
--fail-on-error when a record has an error or a status >= 400, or when a shard
failed on the cluster; 2 usage errors (bad option, unreadable input, unusable
output, unreachable cluster); 130 interrupted.
"""
EPILOG += "\n" + curlopts.HELP_TEXT

#: Seconds one page's processing may take with --process, unless --process-timeout says.
DEFAULT_PROCESS_TIMEOUT = 60.0
#: Upper bounds past which a number would only exhaust the machine (every request in flight
#: holds a socket and a slot, every worker is a process) or overflow a C integer downstream
#: (gevent's semaphore, zlib's max_length).
MAX_CONCURRENCY = 100_000
#: The longest timeout the CLI passes on (about 11.6 days): what ``inf`` stands for.
MAX_SECONDS = 1e6
MAX_WORKERS = 1024
MAX_BYTES = 2**40
MAX_DEDUP_MIB = 2**20
MAX_SHARD_SIZE = 10_000_000

_SIZE = re.compile(r"(\d+)\s*([kmg]i?b?|b)?", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 2**10, "m": 2**20, "g": 2**30}
_NO_LIMIT = ("none", "inf", "infinity")


def size(text: str) -> int:
    """A byte count: ``1000``, ``64K``, ``10M``, ``1GiB`` (binary units), at most 1024G."""
    match = _SIZE.fullmatch(text.strip())
    try:
        value = int(match.group(1)) * _UNITS[(match.group(2) or "").lower()[:1]] if match else -1
    except ValueError:  # more digits than int() converts
        value = -1
    if not 0 <= value <= MAX_BYTES:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a size from 0 to 1024G (e.g. 500000, 64K, 10M)"
        )
    return value


def header(text: str) -> tuple[str, str]:
    """A request header given as ``"Name: value"``."""
    name, sep, value = text.partition(":")
    if not sep or not name.strip() or name != name.strip():
        raise argparse.ArgumentTypeError(f"invalid header {text!r} (expected 'Name: value')")
    return name, value.strip()


def _float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def grace(text: str) -> float:
    """A number of seconds > 0; ``inf`` means no limit (nan, 0 and negatives are refused)."""
    value = _float(text)
    if value is None or not value > 0:  # `not >`: nan compares false
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number of seconds > 0 (or inf: no limit)"
        )
    return value


def seconds(text: str) -> float:
    """A timeout: seconds > 0, where ``inf`` (or anything over `MAX_SECONDS`) is `MAX_SECONDS`."""
    # Not inf itself: with no total deadline, a connect timeout, a --rate pause or a
    # Retry-After becomes a wait of any length, and the greenlet hub (epoll: at most 2**31 ms)
    # and the threads backend (socket timeouts: at most ~9.2e9 s) fail on such waits.
    return min(grace(text), MAX_SECONDS)


def seconds_or_none(text: str) -> float:
    """A number of seconds > 0, or ``0``/``none``/``inf`` for no limit (returned as inf);
    more than `MAX_SECONDS` is no limit too."""
    if text.strip().lower() in _NO_LIMIT:
        return math.inf
    value = _float(text)
    if value == 0:
        return math.inf
    if value is None or not value > 0:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number of seconds > 0 (or 0, none: no limit)"
        )
    return math.inf if value > MAX_SECONDS else value


def rate(text: str) -> float | None:
    """Requests per second > 0 (fractions allowed); ``inf`` means no limit (None)."""
    value = _float(text)
    if value is None or not value > 0:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number of requests per second > 0 (or inf: no limit)"
        )
    return None if math.isinf(value) else value


def wait(text: str) -> float:
    """A backoff: seconds >= 0, at most `MAX_SECONDS`."""
    value = _float(text)
    if value is None or not value >= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds >= 0")
    return min(value, MAX_SECONDS)


def statuses(text: str) -> frozenset[int]:
    """HTTP statuses to retry: comma-separated, e.g. ``429,503``; ``none`` for none."""
    if text.strip().lower() == "none":
        return frozenset()
    parts = [p.strip() for p in text.split(",")]
    if not all(p.isdigit() and 100 <= int(p) <= 599 for p in parts):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a comma-separated list of HTTP statuses (e.g. 429,503) or none"
        )
    return frozenset(map(int, parts))


def whole(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number from ``low`` to ``high`` (None: no upper bound)."""
    span = f">= {low}" if high is None else f"from {low} to {high}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:  # also "1.5", "1e3" and numbers of more digits than int() converts
            value = None
        if value is None or value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number {span}")
        return value

    parse.__name__ = f"whole number {span}"
    return parse


GET_DESCRIPTION = """\
Fetch each URL given, with every fetching option of polyfetch crawl (retries,
limits, timeouts, TLS, --backend), and write one record per URL to stdout (or
-o FILE); with --body (or -O FILE) write the bodies instead, in the order given,
and with -i the status line and headers before each. A failed fetch is one line
on stderr. Nothing is skipped: a URL given twice is fetched twice.

exit status: 0 every URL was fetched with a status below 400; 1 otherwise (an
error, or a status >= 400); 2 usage errors; 130 interrupted.

-X, -d, --json, -b, --cookie-jar-out, --http2 and --http3 work as in polyfetch
crawl (polyfetch crawl --help says how, under "Requests" and "Cookies").
"""

#: what `polyfetch get` does not ask for, as `polyfetch crawl` would take it
GET_DEFAULTS = dict(
    input=None,
    save_dir=None,
    resume=False,
    fail_on_error=True,
    quiet=True,
    no_progress=True,
    dedup="off",
    dedup_memory=DEFAULT_DEDUP_MIB,
    lookahead=None,
    cluster=None,
    shard_size=None,
    shards_in_flight=None,
    partition_by=None,
    inputs=None,
    follow=False,
)


def add_get_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``polyfetch get URL...``: crawl's fetching and processing options, and
    where the records or bodies go."""
    p = parser
    p.add_argument("urls", nargs="+", metavar="URL", help="http(s) URLs to fetch")
    out = p.add_argument_group("output")
    out.add_argument("-o", "--output", metavar="FILE", help="write records here (default: stdout)")
    out.add_argument(
        "--format", choices=("jsonl", "csv"), default="jsonl", help="record format (default: jsonl)"
    )
    out.add_argument(
        "-O",
        dest="body_to",
        metavar="FILE",
        help="write the bodies to FILE (- for stdout), in the order given; records then go "
        "only to -o FILE",
    )
    out.add_argument(
        "--body", dest="body_to", action="store_const", const="-", help="the same as -O -"
    )
    out.add_argument(
        "-i",
        "--include",
        action="store_true",
        help="write the status line and the headers before each body (implies --body)",
    )
    _log_arguments(out)
    _fetch_arguments(p)
    curlopts.add_arguments(p, crawl=False)
    p.set_defaults(**GET_DEFAULTS)


def _log_arguments(out: argparse._ArgumentGroup) -> None:
    out.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="log why each URL took what it took - every attempt, retry (reason and wait), "
        "Retry-After, redirect, --rate wait and processor failure - on stderr (no progress "
        "display then); -vv adds the HTTP libraries' own debug logs. Not with --cluster",
    )
    out.add_argument("--log", metavar="FILE", help="write that log to FILE (implies -v)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add every ``crawl`` option to ``parser``."""
    p = parser
    p.add_argument(
        "inputs",
        nargs="*",
        metavar="URLS_FILE",
        help="one URL (or JSON request object) per line; - for stdin. With --follow, any "
        "number of seeds: URLs, files of them, or -",
    )
    out = p.add_argument_group("output")
    out.add_argument("-o", "--output", metavar="FILE", help="write records here (default: stdout)")
    out.add_argument(
        "--format",
        choices=("jsonl", "csv"),
        default="jsonl",
        help="record format (default: %(default)s)",
    )
    out.add_argument(
        "--save-dir",
        metavar="DIR",
        help="store bodies in DIR as SHARD/HASH_READABLE-PART (names come from a hash of the "
        "input URL, never from the server): the record's file field names it",
    )
    out.add_argument(
        "--resume",
        action="store_true",
        help="with -o FILE: skip URLs FILE already has records for and append the rest "
        "(a torn last line from a killed run is cut off first)",
    )
    out.add_argument(
        "--fail-on-error",
        action="store_true",
        help="exit 1 if any record has an error or a status >= 400",
    )
    out.add_argument("-q", "--quiet", action="store_true", help="no progress and no summary")
    _log_arguments(out)
    out.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress display (it is off anyway when stderr is not a terminal)",
    )

    inp = p.add_argument_group("input")
    inp.add_argument(
        "--dedup",
        choices=DEDUP_MODES,
        default="canonical",
        help="how duplicates are found: canonical URLs, exact lines, or off: fetch every "
        "line (default: %(default)s)",
    )
    inp.add_argument(
        "--no-dedup",
        dest="dedup",
        action="store_const",
        const="off",
        help="the same as --dedup off",
    )
    inp.add_argument(
        "--lookahead",
        type=whole(1, MAX_LOOKAHEAD),
        metavar="N",
        help=f"lines read ahead of those running, waiting in per-host queues, 1 to "
        f"{MAX_LOOKAHEAD:,} (default: {Settings().lookahead:,}; each waiting URL costs ~200 "
        "bytes)",
    )
    inp.add_argument(
        "--dedup-memory",
        type=whole(1, MAX_DEDUP_MIB),
        default=DEFAULT_DEDUP_MIB,
        metavar="MIB",
        help=f"memory for the duplicate filter before it moves to a memory-mapped temporary "
        f"file, 1 to {MAX_DEDUP_MIB} (default: %(default)s MiB: up to about 4 million URLs in "
        "memory; up to 1.5 times as much while the table grows)",
    )

    _follow_arguments(p)
    _fetch_arguments(p)
    curlopts.add_arguments(p, crawl=True)
    _cluster_arguments(p)
    p.set_defaults(urls=None, body_to=None, include=False, follow=False)


def _follow_arguments(p: argparse.ArgumentParser) -> None:
    """--follow and its scope and limits, in wget's and Scrapy's words."""
    from polyfetch.frontier.scope import SCOPES

    fol = p.add_argument_group("following links (--follow)")
    fol.add_argument(
        "--follow",
        action="store_true",
        help="crawl: fetch the seeds, then the pages their HTML links to, and so on "
        "(records get depth and referrer)",
    )
    fol.add_argument(
        "--depth",
        type=whole(0),
        metavar="N",
        help="links from a seed at most (0: the seeds alone; default: no limit)",
    )
    fol.add_argument(
        "--scope",
        choices=SCOPES,
        default="host",
        help="which links to follow: the seeds' hosts, their registrable domains, URLs "
        "under a seed's directory (prefix, wget's --no-parent) or any (default: %(default)s)",
    )
    fol.add_argument("--accept-regex", metavar="RE", help="follow only URLs that match RE")
    fol.add_argument("--reject-regex", metavar="RE", help="never follow URLs that match RE")
    fol.add_argument(
        "--max-pages", type=whole(1), metavar="N", help="fetch at most N pages (default: no limit)"
    )
    fol.add_argument(
        "--sitemaps",
        action="store_true",
        help="first read the seeds' sitemaps (robots.txt Sitemap: lines, else /sitemap.xml; "
        "indexes and gzip too) and take the pages they list as seeds, within --scope",
    )
    fol.add_argument(
        "--record-refused",
        action="store_true",
        help="write a record (error OutOfScope, TooDeep, PastMaxPages, RobotsDisallowed or "
        "InvalidURL) for each link not followed, not only count it",
    )
    fol.add_argument(
        "--frontier-memory",
        type=whole(1, 10_000_000),
        default=50_000,
        metavar="N",
        help="URLs kept in memory before the frontier spills to its file (default: %(default)s)",
    )


def _fetch_arguments(p: argparse.ArgumentParser) -> None:
    """Crawl's fetching and post-processing options, shared with ``get``."""
    d = Settings()
    net = p.add_argument_group("fetching")
    net.add_argument("--backend", choices=NAMES, default=DEFAULT_BACKEND, help=BACKEND_HELP)
    net.add_argument(
        "-c",
        "--concurrency",
        type=whole(1, MAX_CONCURRENCY),
        metavar="N",
        help=f"requests in flight, 1 to {MAX_CONCURRENCY} (default: {d.concurrency})",
    )
    net.add_argument(
        "--per-host",
        type=whole(1, MAX_CONCURRENCY),
        metavar="N",
        help=f"requests in flight per host name, 1 to {MAX_CONCURRENCY} (default: {d.per_host})",
    )
    net.add_argument(
        "--rate",
        type=rate,
        metavar="N",
        help="at most N requests per second to each host (retries and redirects count); "
        "N > 0, fractions allowed (0.5: one every 2 s); hosts are paced independently; a "
        "record's elapsed_ms includes its waits for the rate (default and inf: no limit)",
    )
    net.add_argument(
        "--robots",
        action="store_true",
        help="obey robots.txt and its Crawl-delay (see above)",
    )
    net.add_argument(
        "--max-crawl-delay",
        type=seconds,
        metavar="S",
        help=f"the longest Crawl-delay obeyed, seconds (default: {d.max_crawl_delay:g})",
    )
    net.add_argument(
        "--auto-throttle",
        action="store_true",
        help="adapt each host's concurrency and pace to its latency and 429/503 answers, "
        "within --per-host and --rate (see above)",
    )
    net.add_argument(
        "--timeout",
        type=seconds,
        metavar="S",
        help=f"seconds per URL in all: retries, backoff, redirects (default: {d.timeout:g}). "
        "Every timeout is a number of seconds > 0, fractions allowed; inf, or anything over "
        f"{MAX_SECONDS:.0f}, is {MAX_SECONDS:.0f} s (11.6 days): no limit in practice",
    )
    net.add_argument(
        "--connect-timeout",
        type=seconds,
        metavar="S",
        help=f"seconds to connect, TLS included (default: {d.connect_timeout:g})",
    )
    net.add_argument(
        "--read-timeout",
        type=seconds,
        metavar="S",
        help=f"seconds allowed between two bytes of a response (default: {d.read_timeout:g})",
    )
    net.add_argument(
        "--retries",
        type=whole(0),
        metavar="N",
        help=f"further attempts after connect errors, timeouts, resets and --retry-status "
        f"statuses, >= 0 (default: {d.retries})",
    )
    net.add_argument(
        "--retry-status",
        type=statuses,
        metavar="LIST",
        dest="retry_statuses",
        help="statuses worth a retry, comma-separated, or none (default: "
        f"{','.join(map(str, sorted(d.retry_statuses)))})",
    )
    net.add_argument(
        "--backoff",
        type=wait,
        metavar="S",
        help=f"the first retry's backoff, doubled for each next one, with jitter (half to all "
        f"of it); a Retry-After header wins (default: {d.backoff:g})",
    )
    net.add_argument(
        "--max-backoff",
        type=wait,
        metavar="S",
        help=f"the longest backoff (default: {d.max_backoff:g})",
    )
    net.add_argument(
        "-H",
        "--header",
        type=header,
        action="append",
        dest="headers",
        metavar="'NAME: VALUE'",
        help="extra request header; repeatable",
    )
    net.add_argument("-A", "--user-agent", metavar="UA", help="the User-Agent header")
    net.add_argument(
        "--max-bytes",
        type=size,
        metavar="SIZE",
        help=f"body limit, on the wire and decompressed: 0 to 1024G, in bytes or with K, M, G "
        f"(default: {d.max_bytes // 2**20}M)",
    )
    net.add_argument(
        "--max-redirects",
        type=whole(0),
        metavar="N",
        help=f"redirects to follow, >= 0 (default: {d.max_redirects})",
    )
    net.add_argument("-k", "--insecure", action="store_true", help="do not verify TLS certificates")
    net.add_argument("--cacert", metavar="PEM", help="verify TLS against this CA bundle only")
    net.add_argument(
        "-x",
        "--proxy",
        metavar="URL",
        help="send every request through this proxy: http://, https://, socks5:// (names "
        "resolved here) or socks5h:// (by the proxy), [user:password@]host[:port] (port "
        "default 1080); '' for none. Default: http_proxy, https_proxy (or HTTPS_PROXY), "
        "all_proxy from the environment, as curl reads them (not upper-case HTTP_PROXY)",
    )
    net.add_argument(
        "--noproxy",
        metavar="LIST",
        help="hosts that go direct, comma-separated: names (a domain covers its subdomains), "
        "IPs, CIDR blocks, '*' for all (default: no_proxy / NO_PROXY from the environment)",
    )
    net.add_argument(
        "--no-proxy-env",
        action="store_true",
        help="ignore the proxy variables of the environment (http_proxy, no_proxy, ...)",
    )
    net.add_argument(
        "--grace",
        type=grace,
        default=DEFAULT_GRACE,
        metavar="S",
        help="seconds in-flight requests get after the first Ctrl+C; inf: as long as they "
        "take (default: %(default)s)",
    )

    proc = p.add_argument_group("post-processing")
    proc.add_argument(
        "--process",
        metavar="NAME|MODULE:FUNCTION",
        help="hand each fetched page to this processor; its return value is the record's "
        "processed field",
    )
    proc.add_argument(
        "--process-timeout",
        type=seconds_or_none,
        metavar="S",
        help="seconds one page's processing may take: a processor still running then is "
        "killed (its worker is replaced) and the record gets process_error ProcessTimeout; "
        f"0 or none: no limit (default with --process: {DEFAULT_PROCESS_TIMEOUT:g})",
    )
    proc.add_argument(
        "--workers",
        type=whole(1, MAX_WORKERS),
        metavar="N",
        help=f"processes for --process, 1 to {MAX_WORKERS} (default: CPU count)",
    )


def _cluster_arguments(p: argparse.ArgumentParser) -> None:
    """The --cluster options (crawl only)."""
    clu = p.add_argument_group("cluster (Dask; pip install 'polyfetch[cluster]')")
    clu.add_argument(
        "--cluster",
        metavar="tcp://HOST:PORT|local:N",
        help="crawl on a Dask cluster: the address of a running scheduler, or local:N for N "
        "worker processes started for this run. Every other option keeps its meaning: "
        "--per-host and --rate hold for the whole crawl (a host is fetched by one shard at a "
        "time), -c and --workers apply to each shard",
    )
    clu.add_argument(
        "--shard-size",
        type=whole(1, MAX_SHARD_SIZE),
        metavar="N",
        help=f"URLs per shard: the unit a worker runs in a fresh process, reruns after a "
        f"crash and sends back (default: {DEFAULT_SHARD_SIZE})",
    )
    clu.add_argument(
        "--shards-in-flight",
        type=whole(1, MAX_CONCURRENCY),
        metavar="N",
        help="partitions of the hosts, i.e. shards in flight at most, one per partition "
        "(default: the cluster's worker threads)",
    )
    clu.add_argument(
        "--partition-by",
        choices=PARTITION_BY,
        help="what decides a URL's partition: its host (default), or its registrable domain, "
        "so that all the hosts of a site share one partition",
    )
