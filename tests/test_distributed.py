"""``polyfetch crawl --cluster`` and `polyfetch.distributed` on real Dask clusters on 127.0.0.1.

One LocalCluster (2 worker processes, in a helper process of its own) serves
most tests; the Ctrl+C test starts ``--cluster local:2`` itself, and the
worker-kill test runs on ``dask scheduler`` + two ``dask worker`` commands.
Every wait is bounded; every process is killed by process group at the end.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import polyfetch
from polyfetch.distributed.limits import divide
from tests.cluster_helpers import (
    FAST_CONNECT,
    cli_cluster,
    group_alive,
    local_cluster,
    runners,
)
from tests.conftest import Servers, closed_port
from tests.crawl_helpers import ROOT, Crawls, kill_group, line_count, records, wait_until
from tests.test_crawl import BAD_LINES, FAST, HTTP_CASES

pytest.importorskip("distributed", reason="the cluster extra: pip install -e '.[cluster]'")

BACKENDS = polyfetch.available_backends()
#: Record fields that depend on timing, not on what was fetched.
TIMING = {"elapsed_ms"}


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    with local_cluster(2) as address:
        yield address


@pytest.fixture
def crawls() -> Iterator[Crawls]:
    c = Crawls()
    yield c
    c.close()
    wait_until(lambda: not runners(), 15, "shard runners to end")


def _by_url(data: bytes, **kw: bool) -> dict[str, dict[str, object]]:
    """The fetched records by url (duplicate lines' records, which point at them, left out)."""
    got = [r for r in records(data, **kw) if r["duplicate_of"] is None]
    by_url = {r["url"]: {k: v for k, v in r.items() if k not in TIMING} for r in got}
    assert len(by_url) == len(got), "a URL was recorded twice"
    return by_url


# -- the same records as on one machine, on every backend ----------------------------------


@pytest.mark.timeout(200)  # the two crawls' own bounds (60 s and 90 s), and the fixtures
@pytest.mark.parametrize("cli_backend", BACKENDS)
def test_cluster_records_equal_single_machine(
    servers: Servers, cluster, crawls, tmp_path, cli_backend
):
    lines = [servers.http + p for p in HTTP_CASES] + list(BAD_LINES)
    lines += [f"{servers.raw}/{p}" for p in ("garbage", "short", "bad-status", "ok")]
    lines += [f"http://127.0.0.1:{closed_port()}/", servers.https + "/bytes/10"]
    lines += [f"{servers.http}/bytes/{n}" for n in range(1, 15)]
    urls = tmp_path / "urls.txt"
    urls.write_text("\n".join([*lines, "# comment", "", lines[0]]) + "\n")  # + a duplicate
    common = [str(urls), "--backend", cli_backend, *FAST, "--max-bytes", "1M"]
    common += ["--cacert", servers.ca_file, "--process", "sha256"]
    one, many = tmp_path / "one.jsonl", tmp_path / "many.jsonl"
    single = crawls.run(*common, "-o", str(one), timeout=60)
    assert single.returncode == 0, single.stderr
    # six shards, each a fresh process with its own sha256 pool: a hang guard with room for a
    # loaded 2-core machine (30 s ran out once beside the rest of the suite)
    done = crawls.run(
        *common, "-o", str(many), "--cluster", cluster, "--shard-size", "7", timeout=90
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "shards of 7 URLs" in done.stderr
    assert "; 1 duplicate" in done.stderr and "2 blank/comment" in done.stderr
    want, got = _by_url(one.read_bytes()), _by_url(many.read_bytes())
    assert len(want) == len(lines)
    for url in want:
        assert got[url] == want[url], url
    assert got.keys() == want.keys()


def test_save_dir_stores_bodies_on_the_client(servers, cluster, crawls, tmp_path):
    urls, out, save = tmp_path / "urls.txt", tmp_path / "out.jsonl", tmp_path / "save"
    urls.write_text("".join(f"{servers.http}/bytes/{n}\n" for n in (10, 20, 30)))
    args = [str(urls), "-o", str(out), "--save-dir", str(save), "--cluster", cluster, "-q"]
    done = crawls.run(*args, "--shard-size", "2")
    assert done.returncode == 0, done.stderr
    for r in records(out.read_bytes(), save=True):
        assert (save / r["file"]).stat().st_size == r["size"] == int(r["url"].rsplit("/", 1)[1])


# -- the library -------------------------------------------------------------------------


def test_library_map_streams_the_input_with_bounded_shards_in_flight(servers, cluster):
    from distributed import Client

    from polyfetch.distributed import ClusterFetcher

    size, shards, n = 4, 2, 40
    pulled: list[int] = []

    def urls() -> Iterator[str]:
        for i in range(n):
            pulled.append(i)
            yield f"{servers.http}/bytes/{i % 7}?i={i}" if i != 5 else "not a url"

    client = Client(cluster, set_as_default=False)
    try:
        with ClusterFetcher(client, "greenlet", shard_size=size, shards=shards) as fetcher:
            got = []
            for result in fetcher.map(urls()):
                got.append(result)
                assert len(pulled) <= len(got) + (shards + 1) * size  # never the whole input
            assert fetcher.fetch(f"{servers.http}/bytes/3").size == 3
        assert client.status == "running"  # a Client given is left open
    finally:
        client.close()
    assert sorted(r.index for r in got) == list(range(n))
    for r in got:
        if r.index == 5:
            assert r.error is not None and r.error.kind == "InvalidURL"
        else:
            assert r.status == 200 and r.size == r.index % 7 == len(r.body or b"")
            assert r.url.endswith(f"?i={r.index}")


def test_library_refuses_what_workers_cannot_have(cluster):
    from polyfetch.distributed import ClusterFetcher

    with pytest.raises(polyfetch.ConfigError, match="lambda"):
        ClusterFetcher(cluster, process=lambda r: r)
    with pytest.raises(polyfetch.ConfigError, match="cannot be sent to the workers"):
        ClusterFetcher(cluster, executor=ThreadPoolExecutor(1))
    with pytest.raises(polyfetch.ConfigError, match="shard_size"):
        ClusterFetcher(cluster, shard_size=0)


def test_limits_are_divided_so_their_sum_stays_within_the_whole_crawl_limit():
    assert divide(16, 10.0, 2) == divide(16, 10.0, 2)
    for per_host in (1, 3, 16, 100):
        for shards in (1, 2, 7, 500):
            lim = divide(per_host, 8.0, shards)
            assert lim.per_host >= 1 and lim.shards * lim.per_host <= per_host
            assert lim.rate is not None and lim.shards * lim.rate <= 8.0 + 1e-9
    assert divide(4, None, 2).rate is None


# -- global limits -------------------------------------------------------------------------


def _crawl(crawls: Crawls, tmp_path: Path, urls: list[str], *args: str) -> tuple[str, list]:
    """Crawl ``urls`` to completion with ``args``; its stderr and records."""
    source, out = tmp_path / "urls.txt", tmp_path / "out.jsonl"
    source.write_text("".join(f"{url}\n" for url in urls))
    done = crawls.run(str(source), "-o", str(out), *args)
    assert done.returncode == 0, done.stderr
    got = records(out.read_bytes())
    assert sorted(r["url"] for r in got) == sorted(urls)
    return done.stderr, got


def test_per_host_is_a_limit_for_the_whole_crawl(servers, cluster, crawls, tmp_path):
    servers.reset_stats()
    urls = [f"{servers.http}/delay/300?p={i}" for i in range(24)]
    args = ["-c", "8", "--per-host", "4", "--cluster", cluster, "--shard-size", "6"]
    stderr, _ = _crawl(crawls, tmp_path, urls, *args)
    stats = servers.stats()[f"127.0.0.1:{servers.port}"]
    assert stats["requests"] == 24
    assert stats["peak"] <= 4  # undivided, two shards would reach 8
    assert "2 in flight, each with --per-host 2" in stderr


def test_rate_is_divided_among_the_shards_in_flight(servers, cluster, crawls, tmp_path):
    urls = [f"{servers.http}/bytes/1?r={i}" for i in range(20)]
    # --per-host 20: 10 per shard, so no item waits in its host queue (elapsed starts there)
    args = [
        "-c",
        "10",
        "--per-host",
        "20",
        "--rate",
        "10",
        "--cluster",
        cluster,
        "--shard-size",
        "10",
    ]
    stderr, got = _crawl(crawls, tmp_path, urls, *args)
    # Each shard paces its 10 requests 1/5 s apart: its last waits 9/5 s (undivided: 0.9 s).
    assert max(r["elapsed_ms"] for r in got) >= 1700
    assert "--rate 5/s" in stderr


# -- faults --------------------------------------------------------------------------------


def test_ctrl_c_on_a_local_cluster_exits_130_and_resume_completes(servers, crawls, tmp_path):
    urls, out = tmp_path / "urls.txt", tmp_path / "out.jsonl"
    wanted = {f"{servers.http}/delay/400?c={i}" for i in range(60)}
    urls.write_text("\n".join(sorted(wanted)) + "\n")
    args = [str(urls), "-o", str(out), "-c", "2", "--cluster", "local:2", "--shard-size", "6"]
    proc = crawls.start(*args, "--grace", "0.2")
    wait_until(lambda: line_count(out) >= 6, 60, "the first shard's records")
    kill_group(proc, signal.SIGINT)  # the whole group, as a terminal does: workers included
    done = crawls.finish(proc, timeout=60)
    assert done.returncode == 130, done.stderr
    assert "Traceback" not in done.stderr and "--resume" in done.stderr
    first = records(out.read_bytes())
    assert 6 <= len(first) < len(wanted)
    again = crawls.run(*args, "--resume", timeout=90)
    assert again.returncode == 0, again.stderr
    got = [r["url"] for r in records(out.read_bytes())]
    assert len(got) == len(set(got)) and set(got) == wanted


def test_worker_killed_mid_shard_output_has_each_url_once_and_no_orphans(servers, crawls, tmp_path):
    urls, out, pidfile = tmp_path / "urls.txt", tmp_path / "out.jsonl", tmp_path / "pid"
    slow = f"{servers.http}/bytes/10?once={tmp_path / 'marker'}&pidfile={pidfile}&s=60"
    wanted = [slow] + [f"{servers.http}/bytes/10?k={i}" for i in range(19)]
    urls.write_text("\n".join(wanted) + "\n")
    with cli_cluster(tmp_path) as (address, _workers):
        proc = crawls.start(
            str(urls), "-o", str(out), "--cluster", address, "--shard-size", "5",
            "--process", "tests.cluster_helpers:sleep_once", "--workers", "1",
        )  # fmt: skip
        # The first shard's processing pool sleeps in the slow page: its runner is the group.
        wait_until(pidfile.exists, 60, "the slow page to be processed")
        runner = os.getpgid(int(pidfile.read_text()))
        worker = runners()[runner]
        os.kill(worker, signal.SIGKILL)  # the Dask worker process running that shard
        # The runner and its pool die with the worker, not 60 s later.
        wait_until(lambda: not group_alive(runner), 10, "the killed shard's processes to end")
        done = crawls.finish(proc, timeout=120)
        assert done.returncode == 0, done.stderr
    got = records(out.read_bytes())
    assert len(got) == len({r["url"] for r in got}), "a URL was recorded twice"
    assert {r["url"] for r in got} == set(wanted)
    assert {r["processed"] for r in got} == {"quick"}  # the slow page's shard was rerun


def test_unreachable_scheduler_exits_2_and_writes_nothing(tmp_path):
    urls, out = tmp_path / "urls.txt", tmp_path / "out.jsonl"
    urls.write_text("http://127.0.0.1/\n")
    address = f"tcp://127.0.0.1:{closed_port()}"
    cmd = [sys.executable, "-m", "polyfetch", "crawl", str(urls), "-o", str(out)]
    proc = subprocess.run(
        [*cmd, "--cluster", address],
        capture_output=True, text=True, timeout=60, cwd=ROOT, start_new_session=True,
        env={**os.environ, **FAST_CONNECT},
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith(
        f"polyfetch crawl: error: cannot reach the Dask scheduler at {address}"
    )
    assert len(proc.stderr.strip().splitlines()) == 1 and not out.exists()


def test_cluster_without_distributed_installed_exits_2_with_a_hint(tmp_path):
    urls, out = tmp_path / "urls.txt", tmp_path / "out.jsonl"
    urls.write_text("http://127.0.0.1/\n")
    code = (
        "import sys\nsys.modules['distributed'] = None  # as if it were not installed\n"
        "from polyfetch.cli import main\n"
        f"sys.exit(main(['crawl', {str(urls)!r}, '-o', {str(out)!r}, '--cluster', 'local:2']))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert proc.returncode == 2
    assert "pip install 'polyfetch[cluster]'" in proc.stderr and not out.exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["--shard-size", "5"],
        ["--shards-in-flight", "2"],
        ["--cluster", "local:0"],
        ["--cluster", "local:2", "--shard-size", "0"],
        ["--cluster", "local:2", "--shards-in-flight", "0"],
    ],
)
def test_cluster_usage_errors_exit_2(argv, tmp_path):
    urls = tmp_path / "urls.txt"
    urls.write_text("http://127.0.0.1/\n")
    proc = subprocess.run(
        [sys.executable, "-m", "polyfetch", "crawl", str(urls), *argv],
        capture_output=True, text=True, timeout=60, cwd=ROOT, start_new_session=True,
    )  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert len([x for x in proc.stderr.splitlines() if "error:" in x]) == 1, proc.stderr


def test_importing_the_package_imports_neither_distributed_nor_what_gevent_patches():
    code = (
        "import sys, json, polyfetch.distributed\n"
        "bad = ['distributed', 'dask', 'socket', 'ssl', 'asyncio', 'selectors', 'subprocess',"
        " 'multiprocessing']\n"
        "print(json.dumps([m for m in bad if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert json.loads(out.stdout) == [], out.stderr


def test_the_runner_is_light_before_it_patches():
    code = (
        "import sys, json, runpy\n"
        "sys.argv = ['runner']\n"
        "try:\n    runpy.run_module('polyfetch.distributed.runner', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        "print(json.dumps([m for m in ('socket', 'ssl', 'gevent') if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [], out.stderr
