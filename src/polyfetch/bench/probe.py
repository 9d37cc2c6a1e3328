"""One measured run, in a fresh interpreter: ``python -m polyfetch.bench.probe SPEC``.

Each run gets its own process so that gevent's patching, warm caches and
leftover threads never leak from one measurement into the next; the runner
starts gevent runs through ``python -m gevent.monkey`` so that the patch comes
first. SPEC is JSON: ``{"client": ..., "point": {...}, "base": ..., "ca": ...}``
where the client is a backend name or ``peer:NAME`` and ``ca`` the CA file of a
TLS point. Prints one JSON line of figures.
CPU time and peak RSS count this process and its reaped children (the
processing workers, or curl), which all finish before the figures are taken;
with post-processing, the fetching process's share and the workers' are also
given apart.
"""

from __future__ import annotations

import contextlib
import json
import resource
import statistics
import sys
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any, cast

from polyfetch.bench.scenarios import Point


def _cpu() -> tuple[float, float]:
    """CPU seconds of this process, and of its reaped children (processing workers, curl)."""
    own, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime, kids.ru_utime + kids.ru_stime


def _peak_rss_mib() -> float:
    """This process's peak RSS, from VmHWM: ``ru_maxrss`` would start at the runner's peak.

    Linux carries ``ru_maxrss`` across exec, so every probe would report at least the
    RSS of the `polyfetch bench` process that started it.
    """
    with contextlib.suppress(OSError), open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _fetch(backend: str, point: Point, urls: list[str], ca: str | None) -> list[tuple[float, str]]:
    """(seconds, outcome) per URL through polyfetch's `Fetcher`.

    The seconds run from the moment ``map()`` takes the URL from the input to the
    moment its result is handed over: what a caller waits, queueing inside the
    client included (`Result.elapsed` starts only when the backend starts the item).
    """
    from polyfetch import BackendName, Fetcher

    options: dict[str, Any] = {}
    if point.process:
        options = {"process": point.process, "executor": point.executor, "workers": point.workers}
    taken: list[float] = []

    def source() -> Iterator[str]:
        for url in urls:
            taken.append(time.perf_counter())
            yield url

    out = []
    with Fetcher(
        cast(BackendName, backend),
        concurrency=point.concurrency,
        per_host=point.per_host or point.concurrency,
        timeout=120,
        keep_body=bool(point.process),
        ca_bundle=ca,
        **options,
    ) as fetcher:
        for result in fetcher.map(source()):
            if result.error is not None:
                outcome = result.error.kind
            elif result.process_error is not None:
                outcome = result.process_error.kind
            else:
                outcome = str(result.status)
            out.append((time.perf_counter() - taken[result.index], outcome))
    return out


def measure(client: str, point: Point, base: str, ca: str | None = None) -> dict[str, Any]:
    """Run ``point`` with ``client``; wall and CPU time, latency percentiles, RSS, outcomes."""
    urls = point.urls(base)
    wall0, (own0, kids0) = time.perf_counter(), _cpu()
    if client.startswith("peer:"):
        from polyfetch.bench import peers

        outcomes = peers.run(client[5:], urls, point.concurrency)
    else:
        outcomes = _fetch(client, point, urls, ca)
    wall, (own, kids) = time.perf_counter() - wall0, _cpu()
    record = figures(client, point, outcomes, wall, own - own0 + kids - kids0)
    if point.process:  # the hand-off's cost shows in the fetching process's own share
        record["parent_us_per_request"] = (own - own0) / point.requests * 1e6
        record["workers_us_per_request"] = (kids - kids0) / point.requests * 1e6
    return record


def figures(
    client: str, point: Point, outcomes: list[tuple[float, str]], wall: float, cpu: float
) -> dict[str, Any]:
    """The record of one run: what `polyfetch bench` aggregates and stores."""
    latencies = sorted(seconds for seconds, _ in outcomes) or [0.0]
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else latencies * 99
    counts = Counter(outcome for _, outcome in outcomes)
    ok = counts.pop("200", 0)
    own = _peak_rss_mib()
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    ideal = point.ideal_s
    return {
        "client": client,
        "point": point.key,
        "requests": point.requests,
        "answered": len(outcomes),
        "ok": ok,
        "errors": dict(counts),
        "wall_s": wall,
        "rps": len(outcomes) / wall if wall else 0.0,
        "cpu_s": cpu,
        "cpu_us_per_request": cpu / point.requests * 1e6,
        "p50_ms": q[49] * 1000,
        "p99_ms": q[98] * 1000,
        "rss_mib": own,
        "children_rss_mib": kids,
        "efficiency": ideal / wall if ideal and wall else None,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the SPEC given as the only argument; print one JSON line."""
    spec = json.loads((argv if argv is not None else sys.argv[1:])[0])
    point = Point(**spec["point"])
    print(json.dumps(measure(spec["client"], point, spec["base"], spec.get("ca"))), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
