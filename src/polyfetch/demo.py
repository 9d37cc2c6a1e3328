"""``polyfetch demo``: the built-in server, the same URL list on every backend, one table.

Every backend runs in its own fresh process (``polyfetch measure``), one after
another, interleaved when repeated, so that gevent's patching or leftover
threads never leak from one measurement into the next. The server's own CPU
time per run is shown too: a saturated server would otherwise pass for a slow
client.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
from typing import Any, TextIO

from polyfetch import backends


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process, from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_server() -> tuple[subprocess.Popen[str], str]:
    """The built-in test server in its own process group; returns it and its base URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "polyfetch.server", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if " on " not in line:
        stop(proc)
        raise RuntimeError(f"the test server did not start: {line!r}")
    return proc, line.split(" on ", 1)[1].split()[0]


def stop(proc: subprocess.Popen[str]) -> None:
    """Stop a process started in its own session, and everything it started."""
    if proc.stdout is not None:
        proc.stdout.close()
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def run_one(
    backend: str, base: str, args: argparse.Namespace, executor: str | None = None
) -> dict[str, Any]:
    """One measured run of ``backend`` (with ``executor`` for processing) in a fresh interpreter."""
    cmd = [sys.executable, "-m", "polyfetch", "measure", "--backend", backend, "--base", base]
    cmd += ["-n", str(args.requests), "-c", str(args.concurrency), "--size", str(args.size)]
    cmd += ["--delay", str(args.delay), "--page", args.page]
    if args.process:
        cmd += ["--process", args.process, "--executor", executor or "process"]
        if args.workers:
            cmd += ["--workers", str(args.workers)]
    proc = subprocess.run(cmd, capture_output=True, text=True, start_new_session=True, timeout=600)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:]
        return {"backend": backend, "failed": tail[0] if tail else f"exit {proc.returncode}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Run the demo; print the table on ``out``."""
    names = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = [b for b in names if b not in backends.NAMES]
    executors = [e for e in args.executors.split(",") if e] if args.process else []
    unknown += [e for e in executors if e not in ("inline", "thread", "process")]
    if unknown or args.requests < 1 or args.concurrency < 1 or args.repeat < 1:
        err.write(f"polyfetch demo: bad arguments {unknown or ''}\n".replace(" []", ""))
        return 2
    runnable = [b for b in names if not backends.missing(b)]
    cells = [(b, e) for b in runnable for e in (executors or [None])]
    server, base = start_server()
    runs: dict[str, list[dict[str, Any]]] = {_label(*cell): [] for cell in cells}
    try:
        for _ in range(args.repeat):  # interleaved, so machine drift hits every cell alike
            for backend, executor in cells:
                cpu0 = _cpu_seconds(server.pid)
                figures = run_one(backend, base, args, executor)
                figures["server_cpu_s"] = _cpu_seconds(server.pid) - cpu0
                runs[_label(backend, executor)].append(figures)
    finally:
        stop(server)
    rows = [_median(label, found) for label, found in runs.items()]
    _print_table(rows, args, out)
    if "inline" in executors and "process" in executors:
        for backend in runnable:
            inline, pooled = runs[_label(backend, "inline")], runs[_label(backend, "process")]
            if all("failed" not in r for r in inline + pooled):
                ratio = statistics.median(r["rps"] for r in pooled) / statistics.median(
                    r["rps"] for r in inline
                )
                out.write(f"{backend}: the process pool gives {ratio:.2f}x inline's pages/s\n")
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump({"args": vars(args), "runs": runs}, f, indent=2)
    return 0 if all("failed" not in r for r in rows) else 1


def _label(backend: str, executor: str | None) -> str:
    return f"{backend}/{executor}" if executor else backend


def _median(label: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    good = [r for r in runs if "failed" not in r]
    if not good:
        return runs[0]
    good.sort(key=lambda r: r["wall_s"])
    row = dict(good[(len(good) - 1) // 2], backend=label)
    row["rps_min"] = min(r["rps"] for r in good)
    row["rps_max"] = max(r["rps"] for r in good)
    row["cpu_s"] = statistics.median(r["cpu_s"] for r in good)
    return row


def _print_table(rows: list[dict[str, Any]], args: argparse.Namespace, out: TextIO) -> None:
    from rich.console import Console
    from rich.table import Table

    what = "HTML pages" if args.page == "html" else "GETs"
    title = (
        f"{args.requests} {what} of {args.size} B"
        + (f" after {args.delay} ms" if args.delay else "")
        + (f", processed by {args.process!r}" if args.process else "")
        + f", concurrency {args.concurrency}, built-in server on 127.0.0.1"
    )
    table = Table(title=title)
    for col in (
        "backend",
        "req/s",
        "wall s",
        "client CPU s",
        "CPU µs/req",
        "p50 ms",
        "p99 ms",
        "peak RSS MiB",
        "server CPU s",
        "errors",
    ):
        table.add_column(col, justify="left" if col == "backend" else "right")
    for r in rows:
        if "failed" in r:
            table.add_row(r["backend"], *["-"] * 8, f"failed: {r['failed']}")
            continue
        errors = ", ".join(f"{k} {v}" for k, v in r["errors"].items()) or "0"
        table.add_row(
            r["backend"],
            f"{r['rps']:,.0f}",
            f"{r['wall_s']:.2f}",
            f"{r['cpu_s']:.2f}",
            f"{r['cpu_us_per_request']:.0f}",
            f"{r['p50_ms']:.1f}",
            f"{r['p99_ms']:.1f}",
            f"{r['rss_mib']:.0f}",
            f"{r['server_cpu_s']:.2f}",
            errors,
        )
    Console(file=out, width=140).print(table)
