"""One measured run of one backend, in the current process: what ``polyfetch demo`` spawns.

Each backend runs in a fresh interpreter (gevent's patching changes the whole
process), and this module is that interpreter's job: fetch a generated URL
list, optionally post-process every page, then print one JSON line of figures.
CPU time counts this process and its reaped children (the processing workers).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time
from collections import Counter
from typing import Any, TextIO, cast

from polyfetch import BackendName, Fetcher


def urls(base: str, n: int, size: int, delay: int, page: str = "bytes") -> list[str]:
    """The generated URL list: distinct URLs of ``size``-byte pages, after ``delay`` ms."""
    if page == "html":
        return [f"{base}/html/{size}?i={i}" for i in range(n)]
    if delay:
        return [f"{base}/delay/{delay}?size={size}&i={i}" for i in range(n)]
    return [f"{base}/bytes/{size}?i={i}" for i in range(n)]


def _cpu() -> float:
    own, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def measure(backend: str, targets: list[str], concurrency: int, **options: Any) -> dict[str, Any]:
    """Fetch ``targets`` and return wall time, CPU time, latency percentiles and errors."""
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    statuses: Counter[int] = Counter()
    processed = 0
    wall0, cpu0 = time.perf_counter(), _cpu()
    name = cast(BackendName, backend)
    with Fetcher(
        name,
        concurrency=concurrency,
        per_host=concurrency,
        timeout=120,
        keep_body=bool(options.get("process")),
        **options,
    ) as fetcher:
        for result in fetcher.map(targets):
            latencies.append(result.elapsed)
            if result.error is not None:
                errors[result.error.kind] += 1
            elif result.process_error is not None:
                errors[result.process_error.kind] += 1
            elif result.status is not None:
                statuses[result.status] += 1
                processed += result.processed is not None
    wall, cpu = time.perf_counter() - wall0, _cpu() - cpu0
    quantiles = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else latencies * 99
    return {
        "backend": backend,
        "executor": options.get("executor") if options.get("process") else None,
        "requests": len(targets),
        "concurrency": concurrency,
        "ok": statuses.get(200, 0),
        "processed": processed,
        "errors": dict(errors),
        "wall_s": wall,
        "rps": len(targets) / wall if wall else 0.0,
        "cpu_s": cpu,
        "cpu_us_per_request": cpu / len(targets) * 1e6 if targets else 0.0,
        "p50_ms": quantiles[49] * 1000,
        "p99_ms": quantiles[98] * 1000,
        "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main(args: argparse.Namespace, out: TextIO) -> int:
    """The hidden ``polyfetch measure`` subcommand."""
    targets = urls(args.base, args.requests, args.size, args.delay, args.page)
    options: dict[str, Any] = {}
    if args.process:
        options = {"process": args.process, "executor": args.executor, "workers": args.workers}
    out.write(json.dumps(measure(args.backend, targets, args.concurrency, **options)) + "\n")
    out.flush()
    return 0
