"""The benchmark's workloads: each scenario exposes one regime, as a series of points.

A point is one configuration (URL list, concurrency, post-processing) measured
on every backend. Sizes are tuned so that the full run takes a few minutes on
2 cores and ``--quick`` well under one; the URL lists are generated, distinct
URLs on the built-in server, so no run is served from a client-side cache.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

#: The blocking call of the "blocking" scenario (see `polyfetch.bench.work.sdk_call`).
SDK_CALL = "polyfetch.bench.work:sdk_call"


@dataclass(frozen=True)
class Point:
    """One measured configuration; ``path`` is formatted with ``i``, the item's number."""

    scenario: str
    x: int | str  # the value this point stands for on the scenario's axis
    requests: int
    concurrency: int
    path: str
    latency_ms: int = 0  # wait per item a perfect client cannot avoid (server delay, SDK call)
    process: str | None = None
    executor: str | None = None
    workers: int | None = None
    peers: bool = False  # whether the raw libraries run here too
    tls: bool = False  # over HTTPS, trusting a CA made for the run
    hosts: int = 0  # spread over this many hosts (127.0.0.2, ...), sorted by host; 0: one
    per_host: int | None = None  # the client's per-host limit (None: concurrency)
    static: bool = False  # a file of `polyfetch.bench.nginx.SIZES`: nginx serves it when it can
    delayed: bool = False  # ``/delay/{ms}``: nginx serves it when it has the echo module

    def urls(self, base: str) -> list[str]:
        """The point's URL list on the server at ``base`` (with ``hosts``, host-sorted)."""
        if not self.hosts:
            return [base + self.path.format(i=i) for i in range(self.requests)]
        each = math.ceil(self.requests / self.hosts)
        return [
            base.replace("127.0.0.1", f"127.0.0.{2 + i // each}") + self.path.format(i=i)
            for i in range(self.requests)
        ]

    @property
    def ideal_s(self) -> float | None:
        """The makespan of a client with no CPU cost: ceil(N / concurrency) x latency, or
        with ``hosts`` the busiest host's ceil(N / hosts / per_host) rounds if longer."""
        if not self.latency_ms:
            return None
        rounds = math.ceil(self.requests / self.concurrency)
        if self.hosts and self.per_host:
            rounds = max(rounds, math.ceil(self.requests / self.hosts / self.per_host))
        return rounds * self.latency_ms / 1000

    @property
    def key(self) -> str:
        """A short unique name, e.g. ``latency/c=100`` or ``cpu/process``."""
        return f"{self.scenario}/{self.x}"


@dataclass(frozen=True)
class Scenario:
    """A named series of points and the question it answers."""

    name: str
    title: str
    question: str
    axis: str  # what ``Point.x`` is: "concurrency" or "executor"
    unit: str  # what ``rps`` counts, for the report
    points: tuple[Point, ...] = field(default_factory=tuple)


#: enough rounds that start-up (threads, pools, imports) is a small part of the makespan
_LATENCY_REQUESTS = {10: 200, 100: 2000, 1000: 10_000, 5000: 15_000}


#: the delays a latency point may get, shortest first (ms)
DELAYS_MS = (100, 200, 500, 1000, 2000, 5000)


def latency_delay_ms(concurrency: int, capacity: float | None) -> int:
    """The shortest of `DELAYS_MS` at which ``concurrency`` in flight asks the server for
    under half its ``capacity`` (req/s), so that the server is never what a run measures."""
    for delay in DELAYS_MS:
        if not capacity or concurrency / (delay / 1000) < capacity / 2:
            return delay
    return DELAYS_MS[-1]


def latency_levels(quick: bool) -> tuple[int, ...]:
    """The concurrency of each latency point."""
    return (10, 100) if quick else (10, 100, 1000, 5000)


def _latency(quick: bool, capacity: Mapping[int, float] | None = None) -> Scenario:
    points = []
    for c in latency_levels(quick):
        delay = latency_delay_ms(c, (capacity or {}).get(c))
        points.append(
            Point(
                "latency",
                c,
                requests=2 * c if quick else _LATENCY_REQUESTS[c],
                concurrency=c,
                path=f"/delay/{delay}?size=100&i={{i}}",
                latency_ms=delay,
                delayed=True,
            )
        )
    delays = sorted({p.latency_ms for p in points})
    said = f"{delays[0]} ms" if len(delays) == 1 else f"{delays[0]} to {delays[-1]} ms"
    why = " (c / delay under half the server's capacity, measured at each c)" if capacity else ""
    return Scenario(
        "latency",
        f"Latency-bound: every response takes {said}{why}, concurrency rising",
        "Where does each model stop scaling as concurrency rises?",
        "concurrency",
        "req/s",
        tuple(points),
    )


def _one_point(name: str, title: str, question: str, point: Point) -> Scenario:
    return Scenario(name, title, question, "concurrency", "req/s", (point,))


def _throughput(quick: bool) -> Scenario:
    n = 500 if quick else 5000
    return _one_point(
        "throughput",
        "Throughput-bound: 100-byte bodies, no delay, concurrency 100",
        "What does one request cost each stack in CPU?",
        Point("throughput", 100, n, 100, "/bytes/100?i={i}", peers=True, static=True),
    )


def _large(quick: bool) -> Scenario:
    n = 20 if quick else 200
    return _one_point(
        "large",
        "Large bodies: 1 MiB each, concurrency 10",
        "What do copying and buffering cost?",
        Point("large", 10, n, 10, "/bytes/1048576?i={i}", peers=True, static=True),
    )


def _cpu(quick: bool) -> Scenario:
    n = 60 if quick else 1000
    base = Point("cpu", "inline", n, 50, "/html/102400?i={i}", process="html", static=True)
    points = tuple(replace(base, x=e, executor=e) for e in ("inline", "thread", "process"))
    return Scenario(
        "cpu",
        "CPU-heavy post-processing: the html processor on 100 KiB pages, concurrency 50",
        "What does the GIL cost, what does the process pool give back, and what does handing "
        "a page over cost the fetching process (parent µs/req, beside the workers')?",
        "executor",
        "pages/s",
        points,
    )


def _blocking(quick: bool) -> Scenario:
    sdk_ms, c = 50, 50
    n = 40 if quick else 200
    base = Point(
        "blocking",
        "inline",
        n,
        c,
        f"/bytes/100?sdk_ms={sdk_ms}&i={{i}}",
        latency_ms=sdk_ms,
        process=SDK_CALL,
    )
    points = (
        replace(base, executor="inline"),
        replace(base, x="thread", executor="thread", workers=c),
    )
    return Scenario(
        "blocking",
        f"A blocking library call ({sdk_ms} ms, stdlib urllib) per item, concurrency {c}",
        "Which models make a synchronous SDK call concurrent, and what must the others do?",
        "executor",
        "items/s",
        points,
    )


def _tls(quick: bool) -> Scenario:
    n = 300 if quick else 3000
    plain = Point("tls", "http", n, 100, "/bytes/100?i={i}")
    return Scenario(
        "tls",
        "TLS: the same 100-byte GETs over http and https (keep-alive), concurrency 100",
        "What does TLS cost each stack per request?",
        "scheme",
        "req/s",
        (plain, replace(plain, x="https", tls=True)),
    )


def _hosts(quick: bool) -> Scenario:
    delay, hosts, each = 100, 20, 10 if quick else 30
    point = Point(
        "hosts",
        40,
        requests=hosts * each,
        concurrency=40,
        path=f"/delay/{delay}?size=100&i={{i}}",
        latency_ms=delay,
        hosts=hosts,
        per_host=2,
    )
    return _one_point(
        "hosts",
        f"A host-sorted list: {hosts} hosts x {each} URLs in order, {delay} ms each, "
        "concurrency 40, 2 per host",
        "Does the client keep every host busy, or wait on one host at a time?",
        point,
    )


BUILDERS = {
    "latency": _latency,
    "throughput": _throughput,
    "large": _large,
    "cpu": _cpu,
    "blocking": _blocking,
    "tls": _tls,
    "hosts": _hosts,
}


def scenarios(
    names: list[str], *, quick: bool, capacity: Mapping[int, float] | None = None
) -> list[Scenario]:
    """The named scenarios, in the order given, sized for a quick or a full run; the latency
    scenario's delays fit the server's ``capacity`` (req/s) measured at each concurrency."""
    return [
        _latency(quick, capacity) if name == "latency" else BUILDERS[name](quick) for name in names
    ]
