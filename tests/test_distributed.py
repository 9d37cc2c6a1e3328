"""``polyfetch crawl --cluster`` and `polyfetch.distributed` on real Dask clusters on 127.0.0.1.

One LocalCluster (3 worker processes, so 3 partitions, in a helper process of
its own) serves most tests; the Ctrl+C test starts ``--cluster local:2``
itself, and the worker-kill test runs on ``dask scheduler`` + two ``dask
worker`` commands. The host splitter's cluster-wide limits are counted by a
test server answering on 60 loopback addresses (60 hosts). Every wait is
bounded; every process is killed by process group at the end. The rules of
the splitter itself are checked without a cluster in ``test_partitions``.
"""

from __future__ import annotations

import json
import os
import random
import re
import secrets
import signal
import subprocess
import sys
import urllib.request
from collections import Counter, deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

import pytest

import polyfetch
from polyfetch.testing import site
from polyfetch.testing.servers import EXTRA_HOSTS, start_process, stop
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
from tests.test_crawl_follow import follow_records, pages

pytest.importorskip("distributed", reason="the cluster extra: pip install -e '.[cluster]'")

BACKENDS = polyfetch.available_backends()
#: Record fields that depend on timing, not on what was fetched.
TIMING = {"elapsed_ms"}
#: The hosts of the `many_hosts` server.
MANY = [f"127.0.1.{i}" for i in range(1, 61)]


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    with local_cluster(3) as address:
        yield address


@pytest.fixture(scope="module")
def many_hosts() -> Iterator[int]:
    """The test server on the 60 addresses of `MANY`, one port: 60 hosts; yields the port."""
    cmd = [sys.executable, "-m", "polyfetch.server", "--host", MANY[0], "--port", "0"]
    for host in MANY[1:]:
        cmd += ["--also", host]
    proc, line = start_process(cmd, "polyfetch test server listening on")
    try:
        yield int(line.rsplit(":", 1)[1])
    finally:
        stop(proc)


def follow_key(pages: int, *, fast: bool = False) -> str:
    """The key of a generated site (`polyfetch.testing.site`) no other test shares."""
    return f"{pages}-{'fast' if fast else 'c'}{secrets.token_hex(5)}"


def _get(url: str) -> dict[str, dict[str, int]]:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.load(resp)  # type: ignore[no-any-return]


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
    bases = [servers.http] + [f"http://{h}:{servers.port}" for h in EXTRA_HOSTS[:7]]
    pulled: list[int] = []

    def urls() -> Iterator[str]:
        for i in range(n):
            pulled.append(i)
            yield f"{bases[i % 8]}/bytes/{i % 7}?i={i}" if i != 5 else "not a url"

    client = Client(cluster, set_as_default=False)
    try:
        with ClusterFetcher(client, "greenlet", shard_size=size, shards=shards) as fetcher:
            got = []
            for result in fetcher.map(urls()):
                got.append(result)
                # buffered by partition, in flight, and the rest of the shard being handed out
                assert len(pulled) <= len(got) + (2 * shards + 1) * size  # never the whole input
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


def test_library_map_takes_the_items_its_results_bring(servers, cluster):
    """A frontier's shape: the input answers WAIT while results still in flight may bring
    more, and each result handed out brings two links, until depth 2."""
    from polyfetch.distributed import WAIT, ClusterFetcher

    bases = [servers.http] + [f"http://{h}:{servers.port}" for h in EXTRA_HOSTS[:5]]
    queue = deque(f"{base}/bytes/1?d=0&n={i}" for i, base in enumerate(bases))
    out = 0  # items given to map() whose result has not come back

    def frontier() -> Iterator[object]:
        nonlocal out
        while queue or out:
            if queue:
                out += 1
                yield queue.popleft()
            else:
                yield WAIT

    got = []
    # shards of 50: only the WAITs make map() send the few items it has
    with ClusterFetcher(cluster, "greenlet", shard_size=50) as fetcher:
        for r in fetcher.map(frontier()):
            out -= 1
            got.append(r)
            query = parse_qs(urlsplit(r.url).query)
            depth, n = int(query["d"][0]), query["n"][0]
            if depth < 2:
                base = r.url.split("/bytes/")[0]
                queue.extend(f"{base}/bytes/1?d={depth + 1}&n={n}.{k}" for k in (0, 1))
    assert all(r.status == 200 for r in got)
    assert len(got) == len({r.url for r in got}) == 6 + 12 + 24
    assert sorted(r.index for r in got) == list(range(42))


def test_library_refuses_what_workers_cannot_have(cluster):
    from polyfetch.distributed import ClusterFetcher

    with pytest.raises(polyfetch.ConfigError, match="lambda"):
        ClusterFetcher(cluster, process=lambda r: r)
    with pytest.raises(polyfetch.ConfigError, match="cannot be sent to the workers"):
        ClusterFetcher(cluster, executor=ThreadPoolExecutor(1))
    with pytest.raises(polyfetch.ConfigError, match="shard_size"):
        ClusterFetcher(cluster, shard_size=0)
    with pytest.raises(polyfetch.ConfigError, match="partition_by"):
        ClusterFetcher(cluster, partition_by="tld")


# -- limits for the whole crawl: the host splitter -----------------------------------------


def _crawl(crawls: Crawls, tmp_path: Path, urls: list[str], *args: str) -> tuple[str, list]:
    """Crawl ``urls`` to completion with ``args`` (a 90 s hang guard); its stderr and records."""
    source, out = tmp_path / "urls.txt", tmp_path / "out.jsonl"
    source.write_text("".join(f"{url}\n" for url in urls))
    done = crawls.run(str(source), "-o", str(out), *args, timeout=90)
    assert done.returncode == 0, done.stderr
    got = records(out.read_bytes())
    assert sorted(r["url"] for r in got) == sorted(urls)
    return done.stderr, got


@pytest.mark.timeout(150)
def test_hosts_split_among_partitions_keep_per_host_and_robots_cluster_wide(
    many_hosts, cluster, crawls, tmp_path
):
    port = many_hosts
    rules = quote("User-agent: *\nDisallow: /bytes/\n")
    for host in MANY:
        urllib.request.urlopen(f"http://{host}:{port}/robots-set?body={rules}", timeout=10).close()
    urllib.request.urlopen(f"http://{MANY[0]}:{port}/stats/reset", timeout=10).close()
    urls = [f"http://{h}:{port}/delay/200?i={i}" for h in MANY for i in range(4)]
    urls += [f"http://{h}:{port}/bytes/1" for h in MANY]  # disallowed: never requested
    random.Random(24).shuffle(urls)  # so that shards cut in input order would share hosts
    # 3 partitions of ~100 URLs, 4 shards each: a host's URLs span several shards
    args = ["-c", "4", "--per-host", "1", "--robots", "--cluster", cluster]
    stderr, got = _crawl(crawls, tmp_path, urls, *args, "--shard-size", "25")
    assert "3 partitions by host, shards of 25 URLs, each with --per-host 1" in stderr
    stats = _get(f"http://{MANY[0]}:{port}/stats")
    for host in MANY:
        assert stats[f"{host}:{port}"]["requests"] == 5  # 4 pages and one robots.txt
        assert stats[f"{host}:{port}"]["peak"] == 1  # counted by the server, cluster-wide
    # more in flight than one shard's -c 4: shards of several partitions ran at once
    assert stats["_total"]["peak"] > 4
    robots = _get(f"http://{MANY[0]}:{port}/robots-count")
    assert {robots[f"{host}:{port}"] for host in MANY} == {1}  # once per host, not per shard
    denied = [r for r in got if "/bytes/" in r["url"]]
    assert len(denied) == 60 and {r["error"] for r in denied} == {"RobotsDisallowed"}


def test_a_one_host_list_runs_as_one_partition_with_the_whole_per_host(
    servers, cluster, crawls, tmp_path
):
    servers.reset_stats()
    urls = [f"{servers.http}/delay/300?p={i}" for i in range(24)]
    args = ["-c", "8", "--per-host", "4", "--cluster", cluster, "--shard-size", "6"]
    stderr, _ = _crawl(crawls, tmp_path, urls, *args)
    stats = servers.stats()[f"127.0.0.1:{servers.port}"]
    assert stats["requests"] == 24
    assert stats["peak"] == 4  # not divided among the 3 slots, and never two shards at once
    assert "each with --per-host 4" in stderr


# -- following links: the frontier on the client, the links read on the workers -----------


@pytest.mark.timeout(200)
def test_follow_on_the_cluster_records_the_site_each_page_once(servers, cluster, crawls, tmp_path):
    """The generated site's exact pages and depths, each once, with the user's processor
    beside the link reader in the shards' pools, and the same refusals as on one machine."""
    seed = f"{servers.http}/site/{follow_key(300)}/p0.html"
    common = [seed, "--follow", "--record-refused", "--process", "sha256", "-c", "8"]
    one, many = tmp_path / "one.jsonl", tmp_path / "many.jsonl"
    single = crawls.run(*common, "-o", str(one), timeout=60)
    assert single.returncode == 0, single.stderr
    # one host, so one partition: its shards of 60 take turns, pages of two depths in some
    done = crawls.run(
        *common, "-o", str(many), "--cluster", cluster, "--shard-size", "60", timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "shards of 60 URLs" in done.stderr
    want, got = follow_records(one.read_bytes()), follow_records(many.read_bytes())
    assert pages(got) == pages(want) == site.expected([seed])
    sha = re.compile(r"[0-9a-f]{64}")
    assert all(sha.fullmatch(r["processed"]) for r in got if r["attempts"])

    def refused(records: list[dict[str, object]]) -> Counter[tuple[object, object]]:
        return Counter((r["url"], r["error"]) for r in records if not r["attempts"])

    assert refused(got) == refused(want) and refused(got)
    summary = [line for line in done.stderr.splitlines() if line.lstrip().startswith("refused:")]
    assert summary and summary[0] in single.stderr.splitlines()
    assert not Path(f"{many}.frontier").exists(), "the journal of a whole crawl is removed"


def test_library_crawl_follows_a_named_function_on_the_workers(servers, cluster):
    """``follow="module:function"`` runs in the shards' pools: the same pages, depths and
    referrers' depths as the same crawl on one machine; a function object is refused."""
    from polyfetch.distributed import ClusterFetcher

    seed = f"{servers.http}/site/{follow_key(40, fast=True)}/p0.html"
    options = {"follow": "tests.cluster_helpers:every_href", "max_depth": 3}
    with polyfetch.Fetcher("threads") as fetcher:
        want = {r.url: r.depth for r in fetcher.crawl(seed, **options)}  # type: ignore[arg-type]
    with ClusterFetcher(cluster, "greenlet", shard_size=20) as fetcher:
        got = list(fetcher.crawl(seed, **options))  # type: ignore[arg-type]
        with pytest.raises(polyfetch.ConfigError, match="module:function"):
            next(iter(fetcher.crawl(seed, follow=lambda r: [])))
    assert len(got) == len({r.url for r in got}), "a page handed back twice"
    assert {r.url: r.depth for r in got} == want
    assert any("trap" in url for url in want)  # nofollow ignored: it was the function's call


@pytest.mark.timeout(200)
def test_follow_ctrl_c_then_sigkill_then_resume_records_each_page_once(
    servers, cluster, crawls, tmp_path
):
    """Ctrl+C (the shards in flight finish, none is sent), a --resume killed with SIGKILL,
    a last --resume: the union is the site's pages, each once, at its depth."""
    seed = f"{servers.http}/site/{follow_key(400)}/p0.html"
    out = tmp_path / "out.jsonl"
    args = [seed, "--follow", "-o", str(out), "-c", "4", "--cluster", cluster, "--grace", "20"]
    want = site.expected([seed])
    proc = crawls.start(*args, "--shard-size", "10")
    wait_until(lambda: line_count(out) >= 30, 60, "the first shards' records")
    kill_group(proc, signal.SIGINT)
    first = crawls.finish(proc, timeout=60)
    assert first.returncode == 130, first.stderr
    assert "Traceback" not in first.stderr and "--resume" in first.stderr
    left = follow_records(out.read_bytes())
    assert 30 <= len(left) < len(want)
    proc = crawls.start(*args, "--shard-size", "10", "--resume")
    wait_until(lambda: line_count(out) >= len(left) + 30, 60, "the resumed crawl's records")
    kill_group(proc)  # SIGKILL: the journal and the output are all that is left
    crawls.finish(proc, timeout=10)
    more = follow_records(out.read_bytes())
    assert more[: len(left)] == left and len(more) < len(want)
    again = crawls.run(*args, "--shard-size", "100", "--resume", timeout=90)
    assert again.returncode == 0, again.stderr
    got = follow_records(out.read_bytes())
    assert got[: len(more)] == more, "resume only appends"
    assert pages(got) == want  # each page once, at its depth


@pytest.mark.timeout(150)
def test_follow_on_many_hosts_keeps_per_host_and_robots_cluster_wide(
    many_hosts, cluster, crawls, tmp_path
):
    """One site on each of 18 hosts: the links a shard finds go to their host's partition,
    so the server never sees two requests at once on a host, and robots.txt once a host."""
    port, hosts = many_hosts, MANY[:18]
    k = follow_key(24)
    seeds = [f"http://{h}:{port}/site/{k}/p0.html" for h in hosts]
    urllib.request.urlopen(f"http://{MANY[0]}:{port}/stats/reset", timeout=10).close()
    robots = _get(f"http://{MANY[0]}:{port}/robots-count")
    out = tmp_path / "out.jsonl"
    args = ["--follow", "-o", str(out), "-c", "2", "--per-host", "1", "--robots"]
    done = crawls.run(*seeds, *args, "--cluster", cluster, "--shard-size", "60", timeout=120)
    assert done.returncode == 0, done.stderr
    assert pages(follow_records(out.read_bytes())) == site.expected(seeds)
    stats = _get(f"http://{MANY[0]}:{port}/stats")
    for host in hosts:
        assert stats[f"{host}:{port}"]["peak"] == 1, host  # counted by the server
    assert stats["_total"]["peak"] > 2  # more than one shard's -c 2: partitions side by side
    after = _get(f"http://{MANY[0]}:{port}/robots-count")
    for host in hosts:
        name = f"{host}:{port}"
        assert after[name] - robots.get(name, 0) == 1, host  # once per host, not per shard


# -- faults --------------------------------------------------------------------------------


def test_ctrl_c_on_a_local_cluster_exits_130_and_resume_completes(servers, crawls, tmp_path):
    urls, out = tmp_path / "urls.txt", tmp_path / "out.jsonl"
    bases = [servers.http] + [f"http://{h}:{servers.port}" for h in EXTRA_HOSTS]
    wanted = {f"{bases[i % len(bases)]}/delay/400?c={i}" for i in range(60)}
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


@pytest.mark.timeout(150)
def test_client_sigkilled_then_resume_records_each_url_once(servers, cluster, crawls, tmp_path):
    urls, out = tmp_path / "urls.txt", tmp_path / "out.jsonl"
    bases = [servers.http] + [f"http://{h}:{servers.port}" for h in EXTRA_HOSTS]
    wanted = [f"{bases[i % len(bases)]}/delay/100?k={i}" for i in range(150)]
    urls.write_text("\n".join(wanted) + "\n")
    args = [str(urls), "-o", str(out), "-c", "4", "--cluster", cluster, "--shard-size", "10"]
    proc = crawls.start(*args)
    wait_until(lambda: line_count(out) >= 10, 60, "the first shard's records")
    kill_group(proc)  # SIGKILL: the scheduler drops its shards, the workers kill their runners
    crawls.finish(proc, timeout=10)
    left = records(out.read_bytes())
    assert 10 <= len(left) < len(wanted)
    again = crawls.run(*args, "--resume", timeout=90)
    assert again.returncode == 0, again.stderr
    got = records(out.read_bytes())
    assert got[: len(left)] == left  # resume only appended
    assert sorted(r["url"] for r in got) == sorted(wanted)  # each URL once


@pytest.mark.timeout(240)
def test_worker_killed_mid_shard_output_has_each_url_once_and_no_orphans(servers, crawls, tmp_path):
    """A URL list, then a --follow crawl, each with the worker of its first shard killed
    while that shard's pool sleeps in the first page: the shard is rerun, nothing twice."""
    urls = tmp_path / "urls.txt"
    with cli_cluster(tmp_path) as (address, _workers):
        slow = _slow_once(tmp_path, "list")
        wanted = {f"{servers.http}/bytes/10{slow}"}
        wanted |= {f"{servers.http}/bytes/10?k={i}" for i in range(19)}
        urls.write_text("\n".join(sorted(wanted)) + "\n")
        got = records(_kill_first_worker(crawls, tmp_path, address, "list", str(urls)))
        seed = f"{servers.http}/site/{follow_key(40)}/p0.html{_slow_once(tmp_path, 'follow')}"
        found = _kill_first_worker(crawls, tmp_path, address, "follow", seed, "--follow")
    for records_, want in ((got, wanted), (follow_records(found), set(site.expected([seed])))):
        fetched = [r for r in records_ if r["attempts"]]
        assert len(fetched) == len({r["url"] for r in fetched}), "a URL was recorded twice"
        assert {r["url"] for r in fetched} == want
        assert {r["processed"] for r in fetched} == {"quick"}  # the slow page's shard was rerun


def _slow_once(tmp_path: Path, name: str) -> str:
    """The query that makes `tests.cluster_helpers.sleep_once` sleep 60 s on the first try."""
    return f"?once={tmp_path / name}.marker&pidfile={tmp_path / name}.pid&s=60"


def _kill_first_worker(
    crawls: Crawls, tmp_path: Path, address: str, name: str, *given: str
) -> bytes:
    """Crawl ``given`` on the cluster, killing the Dask worker whose shard sleeps in the
    page `_slow_once` marked; the output, once the crawl has ended (well)."""
    out, pidfile = tmp_path / f"{name}.jsonl", tmp_path / f"{name}.pid"
    size = "5" if name == "list" else "20"  # a site's levels make shards enough
    proc = crawls.start(
        *given, "-o", str(out), "--cluster", address, "--shard-size", size,
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
    return out.read_bytes()


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
        ["--partition-by", "domain"],
        ["--cluster", "local:2", "--partition-by", "tld"],
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
