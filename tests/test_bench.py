"""``polyfetch bench``: the quick run end to end, its peers, its failure records and verdicts.

Timings are never asserted: only that every run happened, fetched what it was
given, and left well-formed results, report and plots behind.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import replace

import pytest

import polyfetch
from polyfetch.bench import nginx, peers, report, run
from polyfetch.bench.run import (
    Cell,
    Server,
    command,
    cpu_seconds,
    run_cell,
    start_server,
    stop_server,
    summarize,
)
from polyfetch.bench.scenarios import BUILDERS, Point, scenarios
from polyfetch.cli import main
from polyfetch.server import build_html
from tests.conftest import closed_port

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
@pytest.mark.timeout(300)  # the bench's own bound below: 70 s alone, more beside the suite
def test_quick_run_writes_results_report_and_plots(tmp_path):
    out = tmp_path / "bench"
    proc = subprocess.run(
        [sys.executable, "-m", "polyfetch", "bench", "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        start_new_session=True,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert results["repeat"] == 1 and results["machine"]["cores"] >= 1
    assert {"python", "cpu", "libraries"} <= set(results["machine"])
    # sized, as the bench sized them, for the capacity it measured first at each concurrency
    found = {f["concurrency"]: f for f in results["capacity"]}
    assert set(found) == {10, 100} and all(f["capacity"] >= f["rps"] > 0 for f in found.values())
    measured = {c: f["capacity"] for c, f in found.items()}
    planned = scenarios(list(BUILDERS), quick=True, capacity=measured)
    assert [s["name"] for s in results["scenarios"]] == list(BUILDERS)
    points = {p.key: p for s in planned for p in s.points}
    assert {c["point"] for c in results["cells"]} == set(points)
    for cell in results["cells"]:
        (record,) = results["runs"][f"{cell['point']}/{cell['client']}"]
        point = points[cell["point"]]
        assert "failed" not in record, record
        assert record["answered"] == record["ok"] == point.requests, record
        assert record["cpu_s"] > 0 and record["wall_s"] > 0 and record["rss_mib"] > 0
        assert record["p99_ms"] >= record["p50_ms"] > 0
        assert (record["efficiency"] is None) == (point.latency_ms == 0)
        if point.executor == "process":  # the pool's workers were counted, apart
            assert record["children_rss_mib"] > 0
            assert record["workers_us_per_request"] > 0 < record["parent_us_per_request"]
            parts = record["parent_us_per_request"] + record["workers_us_per_request"]
            assert abs(parts - record["cpu_us_per_request"]) < 1, record
    assert results["static_server"].startswith("nginx " if nginx.available() else "the built-in")
    clients = {c["client"] for c in results["cells"]}
    assert set(polyfetch.available_backends()) <= clients
    assert {"peer:aiohttp", "peer:urllib3-threads", "peer:urllib3-gevent"} <= clients

    text = (out / "report.md").read_text()
    for scenario in planned:
        assert f"## {scenario.title}" in text
    assert "## When each model wins" in text
    assert text.count("| latency | concurrency ") == 2  # one verdict per quick latency point
    for name in ("latency_rps", "latency_efficiency", "cpu_by_executor", "tls_by_scheme"):
        png = out / f"{name}.png"
        assert png.read_bytes().startswith(PNG_MAGIC) and png.stat().st_size > 10_000
        assert f"]({name}.png)" in text
    assert "parent µs/req" in text and "its workers" in text  # the hand-off's cost, shown
    assert "When" not in proc.stderr  # the tables and verdicts went to stdout
    assert "wins with" in proc.stdout


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The benchmark's own server, with the HTTPS listener and CA it makes for the tls scenario,
    and nginx for static points when it is on PATH."""
    tmp = tmp_path_factory.mktemp("bench-server")
    started = start_server(str(tmp), str(tmp / "nginx"))
    try:
        yield started
    finally:
        stop_server(started)


def _probes(mark: str) -> list[int]:
    """Pids of benchmark probes alive now that inherited ``mark`` in their environment: this
    test's, not those of a bench another test (or anyone on the machine) runs meanwhile."""
    found = []
    tag = f"POLYFETCH_TEST_RUN={mark}".encode()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError):
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"polyfetch.bench.probe" not in f.read():
                    continue
            with open(f"/proc/{pid}/environ", "rb") as f:
                if tag in f.read().split(b"\0"):
                    found.append(int(pid))
    return found


def test_ctrl_c_keeps_what_was_measured_and_leaves_no_probe(tmp_path):
    out = tmp_path / "bench"
    mark = uuid.uuid4().hex
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "polyfetch",
            "bench",
            "--quick",
            "--peers",
            "none",
            "--scenarios",
            "throughput,latency",
            "--out",
            str(out),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env={**os.environ, "POLYFETCH_TEST_RUN": mark},  # inherited by its probes
    )
    try:
        assert proc.stderr is not None
        first = proc.stderr.readline()  # "[1/N] ..." once the first run has ended
        assert first.startswith("[1/"), first
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl+C does
        _, err = proc.communicate(timeout=60)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    results = json.loads((out / "results.json").read_text())
    assert results["interrupted"] is True
    done = [r for records in results["runs"].values() for r in records if "failed" not in r]
    assert 1 <= len(done) < len(results["cells"])
    assert "**Interrupted: partial results.**" in (out / "report.md").read_text()
    deadline = time.monotonic() + 10
    while _probes(mark) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _probes(mark) == []


def _point(path: str, n: int = 20, **kw: object) -> Point:
    return Point("test", 4, n, 4, path, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("peer", peers.available())
def test_every_peer_fetches_every_url_and_reports_errors(server, peer):
    ok = run_cell(Cell(_point("/bytes/100?i={i}"), f"peer:{peer}"), server)
    assert "failed" not in ok, ok
    assert ok["ok"] == ok["answered"] == 20 and ok["errors"] == {}
    refused = run_cell(
        Cell(_point("/?i={i}", n=3), f"peer:{peer}"),
        replace(server, http=f"http://127.0.0.1:{closed_port()}"),
    )
    assert refused["answered"] == 3 and refused["ok"] == 0, refused
    assert sum(refused["errors"].values()) == 3


@pytest.mark.parametrize("peer", ["geventhttpclient", "pycurl"])
def test_peer_is_bounded_and_reads_large_bodies(server, peer):
    pytest.importorskip(peer)
    cell = Cell(_point("/delay/50?size=100&i={i}", n=12), f"peer:{peer}")
    patched = command(cell, server)[1:4] == ["-m", "gevent.monkey", "--module"]
    assert patched == (peer in peers.GEVENT_PATCHED)
    urllib.request.urlopen(f"{server.http}/stats/reset", timeout=10).close()
    record = run_cell(cell, server)
    assert record["ok"] == record["answered"] == 12 and record["errors"] == {}, record
    with urllib.request.urlopen(f"{server.http}/stats", timeout=10) as resp:
        total = json.load(resp)["_total"]
    # 50 ms responses keep every slot busy: a serial loop would peak at 1, an unbounded one at 12
    assert total["requests"] == 12 and total["peak"] == 4, total
    large = run_cell(Cell(_point("/bytes/1048576?i={i}", n=6), f"peer:{peer}"), server)
    assert large["ok"] == 6 and large["errors"] == {}, large


def test_greenlet_is_held_against_geventhttpclient_as_threads_against_urllib3():
    cpu = {"threads": 400.0, "peer:urllib3-threads": 300.0, "greenlet": 250.0}
    cpu["peer:geventhttpclient"] = 125.0
    rows = {
        f"throughput/100/{c}": {"cpu_us_per_request": v, "rps": 1e6 / v} for c, v in cpu.items()
    }
    results = {"scenarios": [{"points": [{"key": "throughput/100"}]}]}
    threads, greenlet = report.layer_costs(results, rows)  # asyncio: no aiohttp row, no sentence
    assert threads.startswith("throughput/100: threads vs urllib3-threads: threads spends 400 µs")
    assert "raw urllib3-threads 300 (1.33x); req/s 0.75x raw." in threads
    assert greenlet.startswith("throughput/100: greenlet vs geventhttpclient: greenlet spends 250")
    assert "anchor geventhttpclient 125 (2.00x); req/s 0.50x anchor." in greenlet


def _bench_with_broken(tmp_path, modules: tuple[str, ...], *options: str):
    """``polyfetch bench`` where each of ``modules`` raises ImportError when imported."""
    broken = tmp_path / "broken"
    broken.mkdir()
    for module in modules:  # found first on the path, as a missing or broken install fails
        (broken / f"{module}.py").write_text(f"raise ImportError('{module} broken for the test')\n")
    path = os.pathsep.join(filter(None, [str(broken), os.environ.get("PYTHONPATH")]))
    argv = ["--quick", "--scenarios", "throughput", "--backends", "asyncio", "--peers", "none"]
    return subprocess.run(
        [sys.executable, "-m", "polyfetch", "bench", *argv, *options, "--out", str(tmp_path / "b")],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, PYTHONPATH=path),
        start_new_session=True,
    )


@pytest.mark.parametrize("modules", [("matplotlib",), ("matplotlib", "trustme")])
def test_without_matplotlib_the_runs_are_written_and_plots_skipped(tmp_path, modules):
    proc = _bench_with_broken(tmp_path, modules)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    (skipped,) = [line for line in proc.stderr.splitlines() if "plots skipped" in line]
    assert "matplotlib broken for the test" in skipped and "polyfetch[bench]" in skipped
    out = tmp_path / "b"
    (record,) = json.loads((out / "results.json").read_text())["runs"]["throughput/100/asyncio"]
    assert record["ok"] == 500, record
    text = (out / "report.md").read_text()
    assert "## Throughput-bound" in text and "Skipped: matplotlib cannot be imported" in text
    assert list(out.glob("*.png")) == []


@pytest.mark.parametrize(
    ("module", "options", "hint"),
    [
        ("trustme", ("--scenarios", "throughput,tls"), "polyfetch[bench]"),
        ("httpx", ("--peers", "aiohttp,httpx"), "polyfetch[peers]"),
    ],
)
def test_a_missing_package_stops_the_bench_before_the_first_run(tmp_path, module, options, hint):
    proc = _bench_with_broken(tmp_path, (module,), *options)
    assert proc.returncode == 2, proc.stderr[-3000:]
    (line,) = proc.stderr.splitlines()  # one line, no run's progress, no traceback
    assert line.startswith("polyfetch bench: ") and f"{module} broken for the test" in line
    assert hint in line
    assert not (tmp_path / "b").exists()


def test_help_shows_every_default(capsys):
    assert main(["bench", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines anywhere
    defaults = [
        ("--scenarios", "(default: all)"),
        ("--backends", "(default: auto)"),
        ("--peers", "(default: auto)"),
        ("--repeat", "(default: 3; 1 with --quick)"),
        ("--out", "(default: bench-results)"),
        ("--quick", "(default: off)"),
    ]
    help_text = text.split(" options: ", 1)[1]
    for (option, default), (following, _) in zip(defaults, [*defaults[1:], ("", "")], strict=True):
        own = help_text.split(f" {option} ", 1)[1]  # from this option to the next one
        own = own.split(f" {following} ", 1)[0] if following else own
        assert default in own, (option, own)


def test_blocking_call_runs_inside_the_item(server):
    point = _point(
        "/bytes/10?sdk_ms=30&i={i}",
        n=8,
        latency_ms=30,
        process="polyfetch.bench.work:sdk_call",
        executor="thread",
        workers=4,
    )
    urllib.request.urlopen(f"{server.http}/stats/reset", timeout=10).close()
    record = run_cell(Cell(point, "threads"), server)
    assert record["ok"] == 8 and record["errors"] == {}
    with urllib.request.urlopen(f"{server.http}/stats", timeout=10) as resp:
        counts = json.load(resp)
    assert counts["_total"]["requests"] == 16  # 8 fetches, 8 SDK calls


@pytest.mark.parametrize("client", polyfetch.available_backends())
def test_tls_points_trust_the_ca_made_for_the_run(server, client):
    record = run_cell(Cell(_point("/bytes/100?i={i}", tls=True), client), server)
    assert record["ok"] == 20 and record["errors"] == {}, record


def test_a_run_that_crashes_is_a_failed_record_not_a_crash(server):
    record = run_cell(Cell(_point("/bytes/1?i={i}"), "peer:no-such-peer"), server)
    assert "KeyError" in record["failed"]
    assert summarize([record]) == {"failed": record["failed"]}


def test_a_probe_that_prints_no_figures_is_a_failed_record():
    from polyfetch.bench.run import _record

    assert _record(0, "warning: something\n", "")["failed"].startswith("not a figures line")
    assert _record(0, "", "") == {"failed": "exit status 0"}
    assert _record(1, "", "Traceback...\nKeyError: 'x'\n") == {"failed": "KeyError: 'x'"}
    assert _record(0, '{"rps": 1.0}\n', "") == {"rps": 1.0}


def test_bad_options_exit_2(capsys):
    assert main(["bench", "--scenarios", "nope"]) == 2
    assert main(["bench", "--backends", "fibers"]) == 2
    assert main(["bench", "--repeat", "0"]) == 2
    assert main(["bench", "--peers", "no-such-peer"]) == 2
    assert capsys.readouterr().err.count("polyfetch bench:") == 4


def _results(rates: dict[str, list[float]], spread: tuple[float, ...] = (0.9, 1.0, 1.2)) -> dict:
    """A two-point latency scenario whose cells had the given req/s over repeated runs (one
    run per factor in ``spread``)."""
    points = [
        {
            "key": f"latency/{c}",
            "x": c,
            "requests": 100,
            "concurrency": c,
            "latency_ms": 100,
            "process": None,
        }
        for c in (10, 100)
    ]
    runs = {}
    for client, values in rates.items():
        for point, rps in zip(points, values, strict=True):
            runs[f"{point['key']}/{client}"] = [
                {
                    "rps": rps * f,
                    "wall_s": 100 / (rps * f),
                    "cpu_s": 1.0,
                    "cpu_us_per_request": 100.0,
                    "p50_ms": 1.0,
                    "p99_ms": 2.0,
                    "rss_mib": 1.0,
                    "efficiency": (100 // point["concurrency"]) * 0.1 / (100 / (rps * f)),
                    "children_rss_mib": 0.0,
                    "errors": {},
                }
                for f in spread
            ]
    scenario = {
        "name": "latency",
        "title": "Latency-bound: every response takes 100 ms, concurrency rising",
        "axis": "concurrency",
        "unit": "req/s",
        "points": points,
    }
    cells = [{"point": p["key"], "client": c} for p in points for c in rates]
    return {"scenarios": [scenario], "cells": cells, "runs": runs}


def test_verdicts_come_from_the_medians():
    results = _results({"threads": [90, 200], "asyncio": [95, 900], "peer:curl-cli": [99, 5000]})
    rows = report.summaries(results)
    assert rows["latency/100/asyncio"]["rps"] == 900  # the median of 810, 900, 1080
    assert (rows["latency/100/asyncio"]["rps_min"], rows["latency/100/asyncio"]["rps_max"]) == (
        810,
        1080,
    )
    low, high = report.verdicts(results, rows)
    assert (low.winner, low.runner_up) == ("asyncio", "threads")  # peers are not contestants
    assert high.winner == "asyncio" and high.over_runner_up == pytest.approx(4.5)
    found = report.findings(results, rows)
    assert "latency: threads falls below 50% of the ideal at concurrency 100" in " ".join(found)
    assert "latency: asyncio falls below" not in " ".join(found)


CLIENTS = {"threads": [90, 200], "asyncio": [95, 900], "peer:geventhttpclient": [99, 5000]}


@pytest.mark.parametrize("width", [80, 120])
def test_tables_fit_the_width_with_the_compact_columns(width):
    from io import StringIO

    from polyfetch.bench.command import print_tables

    out = StringIO()
    print_tables(_results(CLIENTS), out, width=width)
    text = out.getvalue()
    assert max(map(len, text.splitlines())) <= width, text
    flat = " ".join(text.split())
    for column in ("client", "req/s", "µs/req", "p50", "p99", "RSS", "errors"):
        assert column in flat, text
    for name in CLIENTS:  # names are never cut short
        assert f" {name} " in text, text
    assert "wall" not in text and "model" not in text  # those are --wide's
    assert "…" not in text  # nothing cut short
    assert "900 ±" in text  # three runs: the median and its spread


@pytest.mark.parametrize("width", [80, 120])
def test_wide_tables_show_every_column_that_has_a_value(width):
    from io import StringIO

    from polyfetch.bench.command import print_tables

    out = StringIO()
    print_tables(_results(CLIENTS, spread=(1.0,)), out, wide=True, width=width)
    text = out.getvalue()
    if width >= 120:  # narrower, the lines wrap in the terminal rather than lose columns
        assert max(map(len, text.splitlines())) <= width, text
    assert "…" not in text  # nothing cut short
    flat = " ".join(text.split())
    for column in ("wall", "efficiency", "errors"):
        assert column in flat, text
    assert "workers" not in flat  # no client had workers: the empty column is dropped
    assert " 900 " in text and "(900-900)" not in text and "±" not in text  # one run, one number
    assert "a single run" in flat  # the verdict says its margin was not measured against noise


def test_a_single_point_drops_the_point_column():
    results = _results(CLIENTS)
    scenario = results["scenarios"][0]
    scenario["points"] = scenario["points"][:1]
    results["cells"] = [c for c in results["cells"] if c["point"] == "latency/10"]
    header, body = report.table(results, report.summaries(results), scenario, wide=False)
    assert header[0] == "client" and [row[0] for row in body] == list(CLIENTS)


def test_curl_cli_is_apart_from_the_curl_backend_whose_raw_loop_is_pycurl():
    assert "curl" not in peers.NEEDS and "curl-cli" in peers.NEEDS
    assert peers.RAW_OF["curl"] == "pycurl" and "curl" not in peers.ANCHORS
    assert set(peers.RAW_OF) >= set(polyfetch.available_backends()) - {"curl"}


def test_backends_come_from_the_registry_unless_named():
    from polyfetch.bench.command import _choose
    from polyfetch.bench.options import add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    _, runnable, _ = _choose(parser.parse_args(["--peers", "none"]))
    assert runnable == polyfetch.available_backends()
    _, runnable, _ = _choose(parser.parse_args(["--backends", "asyncio", "--peers", "none"]))
    assert runnable == ["asyncio"]


needs_nginx = pytest.mark.skipif(not nginx.available(), reason="nginx is not on PATH")


@needs_nginx
def test_nginx_serves_every_size_in_its_own_group_and_dies_with_it(tmp_path):
    web = nginx.start(str(tmp_path))
    try:
        for size in nginx.SIZES:
            with urllib.request.urlopen(f"{web.base}/bytes/{size}?i=7", timeout=10) as resp:
                assert resp.status == 200 and len(resp.read()) == size
        for size in nginx.HTML_SIZES:  # the built-in server's page, byte for byte
            with urllib.request.urlopen(f"{web.base}/html/{size}?i=7", timeout=10) as resp:
                assert resp.headers["Content-Type"] == "text/html; charset=utf-8"
                assert resp.read() == build_html(size)
        assert web.delays == os.path.exists(nginx.ECHO_MODULE)
        if web.delays:  # milliseconds, as the built-in server's /delay/{ms}
            for ms in (5, 250, 1250):
                started = time.monotonic()
                with urllib.request.urlopen(f"{web.base}/delay/{ms}?i=3", timeout=10) as resp:
                    assert resp.status == 200 and len(resp.read()) == 100
                assert ms / 1000 <= time.monotonic() - started < ms / 1000 + 3
        assert os.getpgid(web.proc.pid) == web.proc.pid
        worker = [p for p in _group(web.proc.pid) if p != web.proc.pid]
        assert len(worker) == 1  # worker_processes 1
    finally:
        nginx.stop(web.proc)
    assert _group(web.proc.pid) == []
    assert {"error.log", "nginx.conf", "tmp", "www"} <= set(os.listdir(tmp_path))  # all it wrote


@needs_nginx
def test_an_echo_module_nginx_cannot_load_leaves_it_serving_files_only(tmp_path, monkeypatch):
    bogus = tmp_path / "ngx_http_echo_module.so"
    bogus.write_text("not a module")
    monkeypatch.setattr(nginx, "ECHO_MODULE", str(bogus))
    web = nginx.start(str(tmp_path / "nginx"))
    try:
        assert not web.delays
        with urllib.request.urlopen(f"{web.base}/bytes/100?i=1", timeout=10) as resp:
            assert resp.status == 200 and len(resp.read()) == 100
        with pytest.raises(urllib.error.HTTPError) as caught:  # no delays: the bench keeps them
            urllib.request.urlopen(f"{web.base}/delay/100?size=100&i=1", timeout=10)
        caught.value.close()
        assert caught.value.code == 404
    finally:
        nginx.stop(web.proc)


def _group(pgid: int) -> list[int]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError), open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[3]) == pgid and fields[0] != "Z":
                found.append(int(pid))
    return found


@needs_nginx
def test_static_points_go_to_nginx_and_its_cpu_is_the_runs(server):
    assert server.nginx is not None and server.static.startswith("nginx ")
    point = _point("/bytes/1024?i={i}", n=300, static=True)
    assert server.base(point) == server.nginx.base
    assert server.serving(point) is server.nginx.proc
    urllib.request.urlopen(f"{server.http}/stats/reset", timeout=10).close()
    before = cpu_seconds(server.nginx.proc.pid)
    record = run_cell(Cell(point, "greenlet"), server)
    assert record["ok"] == 300 and record["errors"] == {}, record
    with urllib.request.urlopen(f"{server.http}/stats", timeout=10) as resp:
        assert json.load(resp)["_total"]["requests"] == 0  # none reached the built-in server
    # the worker, not the idle master, does the serving: its CPU is counted
    assert cpu_seconds(server.nginx.proc.pid) >= before + record["server_cpu_s"] - 0.02
    assert server.base(_point("/bytes/1024?i={i}")) == server.http  # not static: built-in
    delay = _point("/delay/100?size=100&i={i}", n=5, delayed=True)
    assert server.base(delay) == (server.nginx.base if server.nginx.delays else server.http)
    assert server.serving(delay) is (server.nginx.proc if server.nginx.delays else server.proc)


def test_without_nginx_static_points_stay_on_the_built_in_server(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no nginx there
    started = start_server(None, str(tmp_path / "nginx"))
    try:
        assert started.nginx is None
        assert started.static == "the built-in server (nginx is not on PATH)"
        point = _point("/bytes/100?i={i}", n=5, static=True)
        assert started.base(point) == started.http and started.serving(point) is started.proc
    finally:
        stop_server(started)


def test_latency_delays_keep_the_server_under_half_its_capacity():
    from polyfetch.bench.scenarios import latency_delay_ms

    assert latency_delay_ms(5000, None) == 100  # not measured: the classic 100 ms
    assert latency_delay_ms(100, 8000) == 100  # 1,000 req/s asked of 8,000
    assert latency_delay_ms(1000, 8000) == 500  # 10,000 at 100 ms, 5,000 at 200: too many
    assert latency_delay_ms(5000, 12_000) == 1000
    assert latency_delay_ms(5000, 10) == 5000  # a server too slow for any: the longest
    # each concurrency its own capacity: the server copes with 10 in flight better than 5,000
    capacity = {10: 12_000, 100: 12_000, 1000: 12_000, 5000: 4_000}
    (latency,) = scenarios(["latency"], quick=False, capacity=capacity)
    for point in latency.points:
        assert point.concurrency / (point.latency_ms / 1000) < capacity[point.concurrency] / 2
        assert f"/delay/{point.latency_ms}?" in point.path and point.delayed
    assert [p.latency_ms for p in latency.points] == [100, 100, 200, 5000]
    assert "measured at each c" in latency.title


def test_capacity_is_a_burst_on_the_latency_path_at_the_points_concurrency(server):
    client = "peer:pycurl" if "pycurl" in peers.available() else "greenlet"
    urllib.request.urlopen(f"{server.http}/stats/reset", timeout=10).close()
    found = run.capacity(server, client, 150, requests=200)
    assert found["rps"] > 0 and found["server_cpu_pct"] >= 0 and found["client"] == client
    assert found["capacity"] >= found["rps"] and found["concurrency"] == 150
    assert found["requests"] == 300  # at least two rounds of the concurrency
    delays_on_nginx = server.nginx is not None and server.nginx.delays
    with urllib.request.urlopen(f"{server.http}/stats", timeout=10) as resp:
        total = json.load(resp)["_total"]
    # the server that serves the latency points' delays, and only it, took the burst
    assert total["requests"] == (0 if delays_on_nginx else 300)
    results = _results({"threads": [90, 200]})
    results["scenarios"][0]["question"] = "?"
    machine = {"cpu": "a CPU", "cores": 2, "memory_gib": 1, "system": "s", "python": "3"}
    failed = {"concurrency": 5000, "client": client, "requests": 10_000, "failed": "errors 3"}
    results |= {"command": "polyfetch bench", "started": "now", "repeat": 3}
    results |= {"capacity": [found, failed], "machine": machine | {"libraries": {}}}
    text = report.markdown(results, [])
    assert f"at each concurrency ({client}" in text
    assert f"c=150: {found['capacity']:,.0f} req/s ({found['rps']:,.0f} seen at " in text
    assert "c=5000: not measured (errors 3)" in text
