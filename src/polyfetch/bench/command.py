"""``polyfetch bench``: run the scenarios on every backend, write results, report and plots."""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
from dataclasses import asdict
from importlib import metadata
from typing import Any, TextIO

from polyfetch import backends
from polyfetch.bench import peers, plots, report, run
from polyfetch.bench.run import Cell, run_rounds, start_server, stop_server, summarize
from polyfetch.bench.scenarios import BUILDERS, Scenario, latency_levels, scenarios

#: what the bench extra brings: the plots' matplotlib, the tls scenario's trustme
BENCH_HINT = "pip install 'polyfetch[bench]'"

LIBRARIES = (
    *("polyfetch", "aiohttp", "uvloop", "urllib3", "gevent", "greenlet", "h11"),
    *("selectolax", "httpx", "requests", "matplotlib", "pycurl"),
)


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    libraries = {}
    for name in LIBRARIES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            libraries[name] = metadata.version(name)
    if "curl-cli" in peers.available():
        libraries["curl"] = subprocess.run(
            ["curl", "--version"], capture_output=True, text=True, check=False
        ).stdout.split()[1]
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30,
        "system": platform.platform(),
        "python": platform.python_version(),
        "libraries": libraries,
        "load_at_start": os.getloadavg()[0],
    }


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _choose(args: argparse.Namespace) -> tuple[list[str], list[str], list[str]] | str:
    """(scenarios, backends, peers) from the options, or what is wrong with them."""
    names = _split(args.scenarios)
    # from the registry, so that a backend added there is benchmarked with no change here
    wanted = backends.available() if args.backends == "auto" else _split(args.backends)
    bad = [n for n in names if n not in BUILDERS] + [b for b in wanted if b not in backends.NAMES]
    installed = peers.available()
    if args.peers == "auto":
        chosen = installed
    elif args.peers == "none":
        chosen = []
    else:
        chosen = _split(args.peers)
        bad += [p for p in chosen if p not in peers.NEEDS]
        if "curl-cli" in chosen and "curl-cli" not in installed:  # no pip line brings it
            return "curl is not on PATH (install curl, or leave it out of --peers)"
    if bad or not names or not wanted or (args.repeat is not None and args.repeat < 1):
        return f"bad arguments {bad}" if bad else "nothing to run"
    runnable = [b for b in wanted if not backends.missing(b)]
    return names, runnable, chosen


#: run in a fresh interpreter: module names in argv, {module: why it failed} on stdout
_IMPORT_CHECK = """
import importlib, json, sys
failed = {}
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
    except Exception as exc:  # whatever stops the import stops the bench
        failed[name] = str(exc) or type(exc).__name__
print(json.dumps(failed))
"""


def _cannot_import(modules: list[str]) -> dict[str, str]:
    """Module -> why importing it fails, tried for real in a fresh interpreter.

    Not in this process: every probe starts with this process's peak RSS as its own
    (Linux keeps ``ru_maxrss`` across exec), and matplotlib alone would add 40 MiB.
    """
    if not modules:
        return {}
    proc = subprocess.run(
        [sys.executable, "-c", _IMPORT_CHECK, *modules],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, MPLBACKEND="Agg"),  # no display needed to import pyplot
        check=False,
    )
    lines = proc.stdout.strip().splitlines()
    try:
        return dict(json.loads(lines[-1]))
    except (IndexError, ValueError):  # the check itself died (a crash inside an import)
        why = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
        return dict.fromkeys(modules, why)


def _cannot_run(plan: list[Scenario], named_peers: list[str]) -> tuple[str | None, str | None]:
    """(why the bench cannot start, why it cannot draw plots), checked before the first run.

    The tls scenario needs trustme, plots need matplotlib, a peer asked for by name its
    library: a missing one stops the bench at once, not after minutes of runs.
    """
    tls = [s.name for s in plan if any(p.tls for p in s.points)]
    needs = {m: f"peer {p}" for p in named_peers for m in peers.NEEDS[p]}
    if tls:  # start_server makes the run's certificate with it
        needs["trustme"] = f"the {', '.join(tls)} scenario"
    failed = _cannot_import([*needs, plots.NEEDS])
    for module, who in needs.items():
        if module in failed:
            hint = BENCH_HINT if module == "trustme" else "pip install 'polyfetch[peers]'"
            return f"{who} needs {module} ({failed[module]}): {hint}", None
    if plots.NEEDS in failed:
        return None, f"matplotlib cannot be imported ({failed[plots.NEEDS]})"
    return None, None


def main(args: argparse.Namespace, argv: list[str], out: TextIO, err: TextIO) -> int:
    """Run the benchmark; exit 0 when every run succeeded, 1 otherwise, 2 for bad options.

    Ctrl+C stops it (the run in progress is killed with its process group) and the
    files are written with what was measured, marked ``interrupted``; exit 130.
    """
    chosen = _choose(args)
    if isinstance(chosen, str):
        err.write(f"polyfetch bench: {chosen}\n")
        return 2
    names, runnable, peer_names = chosen
    repeat = args.repeat or (1 if args.quick else 3)
    plan = scenarios(names, quick=args.quick)
    # auto peers were found installed; a broken one is a failed record, as any failed run
    cannot, no_plots = _cannot_run(plan, peer_names if args.peers not in ("auto", "none") else [])
    if cannot is not None:
        err.write(f"polyfetch bench: {cannot}\n")
        return 2
    cells = _cells(plan, runnable, peer_names)
    os.makedirs(args.out, exist_ok=True)
    results: dict[str, Any] = {
        "command": shlex.join(["polyfetch", "bench", *argv]),
        "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "repeat": repeat,
        "quick": args.quick,
        "machine": machine(),
        "scenarios": [scenario_record(s) for s in plan],
        "cells": [{"point": c.point.key, "client": c.client} for c in cells],
    }
    if no_plots is not None:
        results["plots_skipped"] = no_plots
    runs: dict[str, list[dict[str, Any]]] = {cell.key: [] for cell in cells}
    results["runs"] = runs  # filled as runs end (the cells' keys stay when delays change)
    try:
        with tempfile.TemporaryDirectory(prefix="polyfetch-bench-") as tmp:
            server = start_server(
                tmp if any(c.point.tls for c in cells) else None,
                os.path.join(tmp, "nginx")
                if any(c.point.static or c.point.delayed for c in cells)
                else None,
            )
            results["static_server"] = server.static
            try:
                burst = _burst_client(runnable)
                if "latency" in names and burst:  # delays the server can serve at every c
                    # 10,000 requests: ~0.3 s of nginx's CPU, 30 clock ticks to divide by
                    found = [
                        run.capacity(server, burst, c, requests=1000 if args.quick else 10_000)
                        for c in latency_levels(args.quick)
                    ]
                    results["capacity"] = found
                    measured = {f["concurrency"]: f["capacity"] for f in found if "capacity" in f}
                    plan = scenarios(names, quick=args.quick, capacity=measured)
                    cells = _cells(plan, runnable, peer_names)
                    results["scenarios"] = [scenario_record(s) for s in plan]
                    results["cells"] = [{"point": c.point.key, "client": c.client} for c in cells]
                with _Display(err, len(cells) * repeat) as display:
                    for cell, record in run_rounds(cells, server, repeat):
                        runs[cell.key].append(record)
                        display.done(cell, record)
            finally:
                stop_server(server)
    except KeyboardInterrupt:  # keep what was measured: the report says it is partial
        results["interrupted"] = True
        err.write("polyfetch bench: interrupted; writing what was measured\n")
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    written = plots.write(results, args.out) if no_plots is None else []
    with open(os.path.join(args.out, "report.md"), "w") as f:
        f.write(report.markdown(results, written))
    print_tables(results, out, wide=args.wide)
    if no_plots is not None:
        err.write(f"polyfetch bench: plots skipped: {no_plots}; {BENCH_HINT}\n")
        out.write(f"results.json and report.md written to {args.out}/\n")
    else:
        out.write(f"results.json, report.md and {len(written)} plots written to {args.out}/\n")
    if results.get("interrupted"):
        return 130
    failed = any("failed" in r for records in runs.values() for r in records)
    return 1 if failed else 0


def _cells(plan: list[Scenario], runnable: list[str], peer_names: list[str]) -> list[Cell]:
    return [
        Cell(point, client)
        for scenario in plan
        for point in scenario.points
        for client in runnable + ([f"peer:{p}" for p in peer_names] if point.peers else [])
    ]


def _burst_client(runnable: list[str]) -> str | None:
    """The fastest client at hand for the capacity burst: the raw pycurl loop, else a backend."""
    if "pycurl" in peers.available():
        return "peer:pycurl"
    return backends.DEFAULT if backends.DEFAULT in runnable else next(iter(runnable), None)


def scenario_record(scenario: Scenario) -> dict[str, Any]:
    """A scenario as stored in results.json, with each point's key and ideal makespan."""
    record = asdict(scenario)
    record["points"] = [dict(asdict(p), key=p.key, ideal_s=p.ideal_s) for p in scenario.points]
    return record


def print_tables(
    results: dict[str, Any], out: TextIO, *, wide: bool = False, width: int | None = None
) -> None:
    """Every scenario's table, then the verdicts, with rich, at the terminal's width (or
    ``width``): the compact columns, or all of them with ``wide``."""
    from rich import box
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(file=out, width=width)
    rows = report.summaries(results)
    for scenario in results["scenarios"]:
        header, body = report.table(results, rows, scenario, wide=wide)
        # The title as a line of its own: as the table's title it would wrap to the table's width.
        console.print(f"\n[bold]{escape(scenario['title'])}[/bold]", highlight=False)
        table = Table(box=box.SIMPLE_HEAD, show_edge=False, collapse_padding=True)
        for i, col in enumerate(header):
            # Who and where are never cut short.
            whole = col in ("c", scenario["axis"], "client")
            table.add_column(
                col if whole else col.replace(" ", "\n", 1),  # figures' headers: two lines
                justify="left" if whole or col == "errors" else "right",
                min_width=max(len(cells[i]) for cells in body) if whole and body else None,
            )
        for cells in body:
            table.add_row(*cells)
        # Too wide for the terminal (--wide at 80 columns): the terminal wraps the lines, but
        # rich would crop the last columns away.
        needed = _natural_width(table)
        (console if needed <= console.width else Console(file=out, width=needed)).print(table)
    for verdict in report.verdicts(results, rows):
        console.print(
            f"{verdict.scenario}, {verdict.contest}: {verdict.sentence(md=False)}", highlight=False
        )


def _natural_width(table: Any) -> int:
    """The width ``table`` takes when nothing limits it (rich's measure undercounts a table
    with collapsed padding)."""
    import io

    from rich.console import Console

    scratch = Console(file=io.StringIO(), width=10_000)
    with scratch.capture() as captured:
        scratch.print(table)
    return max(map(len, captured.get().splitlines()), default=0)


class _Display:
    """Progress while it runs: a live bar and table on a terminal, a line per run otherwise."""

    def __init__(self, err: TextIO, total: int) -> None:
        self.err, self.total, self.count = err, total, 0
        self.seen: dict[str, list[dict[str, Any]]] = {}
        self.live: Any = None

    def __enter__(self) -> _Display:
        if self.err.isatty():
            from rich.console import Console
            from rich.live import Live
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

            self.progress = Progress(
                "{task.description}", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()
            )
            self.task = self.progress.add_task("runs", total=self.total)
            self.live = Live(self._view(), console=Console(file=self.err), refresh_per_second=4)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.__exit__(*exc)

    def done(self, cell: Cell, record: dict[str, Any]) -> None:
        self.count += 1
        self.seen.setdefault(cell.key, []).append(record)
        if self.live is None:
            what = record.get("failed") or f"{record['rps']:,.0f}/s, {record['wall_s']:.2f} s"
            self.err.write(f"[{self.count}/{self.total}] {cell.point.key} {cell.client}: {what}\n")
            self.err.flush()
            return
        self.progress.update(self.task, completed=self.count, description=cell.point.key)
        self.live.update(self._view())

    def _view(self) -> Any:
        from rich.console import Group
        from rich.table import Table

        table = Table("point", "client", "runs", "req/s", "CPU µs/req", "p99 ms", "errors")
        for key, records in list(self.seen.items())[-16:]:
            r = summarize(records)
            point, client = key.rsplit("/", 1)
            if "failed" in r:
                table.add_row(point, client, str(len(records)), "-", "-", "-", r["failed"][:40])
            else:
                errors = sum(r["errors"].values())
                table.add_row(
                    point,
                    client,
                    str(len(records)),
                    f"{r['rps']:,.0f}",
                    f"{r['cpu_us_per_request']:,.0f}",
                    f"{r['p99_ms']:.1f}",
                    str(errors),
                )
        return Group(self.progress, table)
