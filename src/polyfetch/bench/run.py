"""Running the matrix: the server, one fresh process per run, interleaved repeats.

Every (point, client) pair is a cell; a round runs each cell once, in order,
and rounds repeat, so machine drift hits every cell alike (A B C D A B C D).
The server runs in its own process; its CPU time per run is recorded, so a
saturated server cannot pass for a slow client. Static points (throughput,
large bodies) go to nginx when it is on PATH (`polyfetch.bench.nginx`), and the
latency points' delays too when it has the echo module: the built-in server,
being Python, would cap them at a few thousand requests a second.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from polyfetch.bench import nginx, peers
from polyfetch.bench.nginx import Nginx
from polyfetch.bench.scenarios import Point
from polyfetch.testing.servers import EXTRA_HOSTS, start_process, stop

#: seconds one run may take before it is killed and recorded as failed
RUN_TIMEOUT = 600.0


@dataclass(frozen=True)
class Cell:
    """One client on one point."""

    point: Point
    client: str  # a backend name, or "peer:NAME"

    @property
    def key(self) -> str:
        return f"{self.point.key}/{self.client}"


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its live children (nginx's worker), from /proc."""
    total = 0.0
    for each in os.listdir("/proc"):
        if not each.isdigit():
            continue
        with contextlib.suppress(OSError), open(f"/proc/{each}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
            if int(each) == pid or int(fields[1]) == pid:
                total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Server:
    """The built-in server's process, its base URLs, with TLS the CA file to trust, and the
    static server (nginx, or none) with what serves static points, for the report."""

    proc: subprocess.Popen[str]
    http: str
    https: str | None = None
    ca: str | None = None
    nginx: Nginx | None = None
    static: str = "the built-in server"

    def base(self, point: Point) -> str:
        if point.tls:
            if self.https is None:
                raise ValueError(f"{point.key} needs the server started with TLS")
            return self.https
        web = self._nginx_for(point)
        return web.base if web else self.http

    def serving(self, point: Point) -> subprocess.Popen[str]:
        """The process that answers ``point``: its CPU is the run's server CPU."""
        web = self._nginx_for(point)
        return web.proc if web else self.proc

    def _nginx_for(self, point: Point) -> Nginx | None:
        """nginx if it answers ``point``: a static file, or a delay when it has the module."""
        web = self.nginx
        if web is None or point.tls:
            return None
        return web if point.static or (point.delayed and web.delays) else None


def start_server(tls_dir: str | None = None, static_dir: str | None = None) -> Server:
    """The built-in test server in its own process group; with ``tls_dir``, HTTPS too; with
    ``static_dir``, nginx there for static points when it is on PATH and starts.

    The certificate (for 127.0.0.1 and localhost) and its CA are made there with
    trustme, for this run only.
    """
    cmd = [sys.executable, "-m", "polyfetch.server", "--port", "0"]
    for host in EXTRA_HOSTS:  # the "hosts" scenario's 20 hosts
        cmd += ["--also", host]
    ca = None
    if tls_dir is not None:
        import trustme

        authority = trustme.CA()
        cert = authority.issue_cert("127.0.0.1", "localhost")
        ca, pem = os.path.join(tls_dir, "ca.pem"), os.path.join(tls_dir, "server.pem")
        authority.cert_pem.write_to_path(ca)
        cert.private_key_and_cert_chain_pem.write_to_path(pem)
        cmd += ["--https-port", "0", "--certfile", pem, "--keyfile", pem]
    web, static = None, "the built-in server"
    if static_dir is not None:
        if not nginx.available():
            static += " (nginx is not on PATH)"
        else:
            try:
                web = nginx.start(static_dir)
            except RuntimeError as exc:
                static += f" ({exc})"
            else:
                static = f"nginx {web.version} (one worker)"
                if web.delays:
                    static += "; latency delays by nginx too, with its echo module"
    try:
        proc, line = start_process(cmd, "polyfetch test server listening on")
    except BaseException:
        if web is not None:
            stop(web.proc)
        raise
    urls = line.split(" on ", 1)[1].split()
    return Server(proc, urls[0], urls[1] if len(urls) > 1 else None, ca, web, static)


def stop_server(server: Server) -> None:
    """Stop the built-in server and nginx, if it runs."""
    try:
        stop(server.proc)
    finally:
        if server.nginx is not None:
            stop(server.nginx.proc)


def command(cell: Cell, server: Server) -> list[str]:
    """The probe's command line; gevent runs are patched by ``gevent.monkey`` before anything."""
    spec = json.dumps(
        {
            "client": cell.client,
            "point": asdict(cell.point),
            "base": server.base(cell.point),
            "ca": server.ca if cell.point.tls else None,
        }
    )
    name = cell.client.removeprefix("peer:")
    patched = cell.client == "gevent" or name in peers.GEVENT_PATCHED
    runner = ["-m", "gevent.monkey", "--module"] if patched else ["-m"]
    return [sys.executable, *runner, "polyfetch.bench.probe", spec]


def run_cell(cell: Cell, server: Server, prefix: Sequence[str] = ()) -> dict[str, Any]:
    """One measured run in a fresh process; a run that fails is a record with ``failed``.

    ``prefix`` wraps the probe's command (``taskset -c 0`` pins it to a CPU).
    """
    serving = server.serving(cell.point)
    cpu0 = cpu_seconds(serving.pid)
    proc = subprocess.Popen(
        [*prefix, *command(cell, server)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        out, err = "", f"killed after {RUN_TIMEOUT:.0f} s"
    finally:
        with contextlib.suppress(ProcessLookupError):  # leftover workers of the run
            os.killpg(proc.pid, signal.SIGKILL)
    record = _record(proc.returncode, out, err)
    if "failed" in record:
        record.update(client=cell.client, point=cell.point.key)
    record["server_cpu_s"] = cpu_seconds(serving.pid) - cpu0
    return record


def capacity(server: Server, client: str, concurrency: int, *, requests: int) -> dict[str, Any]:
    """What the latency path's server can serve at ``concurrency``: a burst of undelayed GETs
    of it, each of the first ``concurrency`` on a fresh connection, by ``client``.

    The record gives the rate seen (``rps``), the server's CPU as % of the wall time, and
    ``capacity``: the rate at one full core (requests / server CPU seconds), as a client
    slower than the server would understate it, and never below the rate seen (which it
    is with under 0.1 s of server CPU: too few clock ticks to divide by). {failed} when
    the burst fails.
    """
    n = max(requests, 2 * concurrency)
    point = Point("capacity", concurrency, n, concurrency, "/delay/0?size=100&i={i}", delayed=True)
    record = run_cell(Cell(point, client), server)
    found: dict[str, Any] = {"concurrency": concurrency, "client": client, "requests": n}
    if "failed" in record or record["ok"] != n:
        return found | {"failed": record.get("failed") or f"errors {record['errors']}"}
    cpu = record["server_cpu_s"]
    return found | {
        "rps": record["rps"],
        "server_cpu_pct": cpu / record["wall_s"] * 100,
        "capacity": max(record["rps"], n / cpu if cpu >= 0.1 else 0.0),
    }


def _record(status: int | None, out: str, err: str) -> dict[str, Any]:
    """The probe's JSON line, or a ``failed`` record saying why there is none."""
    lines = out.strip().splitlines()
    if status == 0 and lines:
        try:
            record = json.loads(lines[-1])
        except ValueError:
            return {"failed": f"not a figures line: {lines[-1][:200]!r}"}
        if isinstance(record, dict):
            return record
    tail = (err or out).strip().splitlines()[-1:] or [f"exit status {status}"]
    return {"failed": tail[0]}


def run_rounds(
    cells: list[Cell], server: Server, repeat: int
) -> Iterator[tuple[Cell, dict[str, Any]]]:
    """``repeat`` interleaved rounds of every cell: each run's record as it ends."""
    for _ in range(repeat):
        for cell in cells:
            yield cell, run_cell(cell, server)


def summarize(records: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Median figures of a cell's runs, with the min and max of its rate."""
    records = list(records)
    good = [r for r in records if "failed" not in r]
    if not good:
        return {"failed": records[0]["failed"] if records else "never ran"}
    good.sort(key=lambda r: r["wall_s"])
    row = dict(good[(len(good) - 1) // 2])  # the run of median wall time
    for name in ("cpu_s", "cpu_us_per_request", "p50_ms", "p99_ms", "rss_mib"):
        row[name] = statistics.median(r[name] for r in good)
    for name in ("parent_us_per_request", "workers_us_per_request"):  # with processing only
        if all(name in r for r in good):
            row[name] = statistics.median(r[name] for r in good)
    row["rps_min"] = min(r["rps"] for r in good)
    row["rps_max"] = max(r["rps"] for r in good)
    row["runs"] = len(good)
    return row
