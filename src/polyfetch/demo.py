"""``polyfetch demo``: the built-in server, one generated URL list on every backend, one table.

The demo is a one-point benchmark: the same machinery as ``polyfetch bench``
(a fresh process per run, interleaved repeats, the server's CPU beside the
client's), on a workload given by its options instead of the scenarios.
"""

from __future__ import annotations

import argparse
import json
from typing import Any, TextIO

from polyfetch import backends
from polyfetch.bench import command, report
from polyfetch.bench.run import Cell, run_rounds, start_server
from polyfetch.bench.scenarios import Point, Scenario
from polyfetch.testing.servers import stop


def _path(args: argparse.Namespace) -> str:
    if args.page == "html":
        return f"/html/{args.size}?i={{i}}"
    if args.delay:
        return f"/delay/{args.delay}?size={args.size}&i={{i}}"
    return f"/bytes/{args.size}?i={{i}}"


def _scenario(args: argparse.Namespace, executors: list[str]) -> Scenario:
    what = "HTML pages" if args.page == "html" else "GETs"
    title = (
        f"{args.requests} {what} of {args.size} B"
        + (f" after {args.delay} ms" if args.delay else "")
        + (f", processed by {args.process!r}" if args.process else "")
        + f", concurrency {args.concurrency}, built-in server on 127.0.0.1"
    )
    base = Point(
        "demo",
        args.concurrency,
        args.requests,
        args.concurrency,
        _path(args),
        latency_ms=args.delay,
        process=args.process,
        workers=args.workers,
    )
    points = [Point(**{**base.__dict__, "x": e, "executor": e}) for e in executors] or [base]
    axis = "executor" if executors else "concurrency"
    return Scenario("demo", title, "", axis, "req/s", tuple(points))


def main(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Run the demo; print the table on ``out``."""
    names = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = [b for b in names if b not in backends.NAMES]
    executors = [e for e in args.executors.split(",") if e] if args.process else []
    if args.process and not executors:
        executors = ["process"]
    unknown += [e for e in executors if e not in ("inline", "thread", "process")]
    if unknown or args.requests < 1 or args.concurrency < 1 or args.repeat < 1:
        err.write(f"polyfetch demo: bad arguments {unknown or ''}\n".replace(" []", ""))
        return 2
    runnable = [b for b in names if not backends.missing(b)]
    for name in names:
        if name not in runnable:
            hint = f"polyfetch[{name}]" if name == "gevent" else " ".join(backends.missing(name))
            err.write(f"polyfetch demo: skipping {name}: not installed (pip install '{hint}')\n")
    scenario = _scenario(args, executors)
    cells = [Cell(point, b) for point in scenario.points for b in runnable]
    server = start_server()
    try:
        runs: dict[str, list[dict[str, Any]]] = {cell.key: [] for cell in cells}
        for cell, record in run_rounds(cells, server, args.repeat):
            runs[cell.key].append(record)
    finally:
        stop(server.proc)
    results: dict[str, Any] = {
        "args": vars(args),
        "scenarios": [command.scenario_record(scenario)],
        "cells": [{"point": c.point.key, "client": c.client} for c in cells],
        "runs": runs,
    }
    command.print_tables(results, out, wide=args.wide)
    for finding in report.findings(results, report.summaries(results)):
        out.write(finding + "\n")
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(results, f, indent=1)
    return 0 if all("failed" not in r for records in runs.values() for r in records) else 1
