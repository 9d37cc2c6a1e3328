"""Post-processing from every backend: built-ins, failing processors, dying and stuck workers."""

from __future__ import annotations

import pytest

from polyfetch import ConfigError, Fetcher
from polyfetch.errors import ProcessorFailed, ProcessTimeout, WorkerDied
from tests.conftest import closed_port

FIXTURE = "tests.processors_fixture"


def test_builtin_html_in_a_process_pool(servers, run):
    results = run([f"{servers.http}/html/20000?i={i}" for i in range(8)], process="html", workers=2)
    for r in results:
        assert r.process_error is None, r.process_error
        page = r.processed
        assert page["title"] and page["links"]
        assert all(link.startswith(("http://", "https://")) for link in page["links"])


@pytest.mark.parametrize("executor", ["inline", "thread"])
def test_other_executors(servers, run, executor):
    results = run(
        [f"{servers.http}/bytes/100?i={i}" for i in range(5)], process="sha256", executor=executor
    )
    assert len({r.processed for r in results}) == 1 and len(results[0].processed) == 64


def test_failing_processor_is_recorded_and_the_run_goes_on(servers, run):
    urls = [f"{servers.http}/bytes/10?i={i}" + ("&boom=1" if i % 3 == 0 else "") for i in range(9)]
    results = run(urls, process=f"{FIXTURE}:boom", workers=2)
    for i, r in enumerate(results):
        if i % 3 == 0:
            assert isinstance(r.process_error, ProcessorFailed)
            assert "ValueError" in r.process_error.message and "bad page" in r.process_error.message
        else:
            assert r.process_error is None and r.status == 200


def test_failed_fetches_are_not_processed(servers, run):
    bad, good = run(
        [f"http://127.0.0.1:{closed_port()}/", f"{servers.http}/bytes/3"],
        process=f"{FIXTURE}:echo",
        retries=0,
        workers=1,
    )
    assert bad.error is not None and bad.processed is None and bad.process_error is None
    assert good.processed["size"] == 3


def test_killed_workers_are_replaced(servers, run, tmp_path):
    once = tmp_path / "died-once"
    urls = [f"{servers.http}/bytes/10?die=kill&once={once}", f"{servers.http}/bytes/10?die=kill"]
    urls += [f"{servers.http}/bytes/10?i={i}" for i in range(6)]
    results = run(urls, process=f"{FIXTURE}:die", workers=2)
    assert results[0].process_error is None and results[0].processed["size"] == 10
    assert isinstance(results[1].process_error, WorkerDied)
    assert all(r.process_error is None for r in results[2:])


def test_stuck_processor_times_out_and_the_pool_recovers(servers, run):
    urls = [f"{servers.http}/bytes/10?hang=1"] + [
        f"{servers.http}/bytes/10?i={i}" for i in range(4)
    ]
    results = run(urls, process=f"{FIXTURE}:hang", workers=2, process_timeout=1.5)
    assert isinstance(results[0].process_error, ProcessTimeout)
    assert all(r.process_error is None and r.processed for r in results[1:])


def test_big_bodies_and_big_results(servers, run):
    # 1 MiB each way: under gevent this is the reproduced deadlock the transport avoids
    results = run(
        [f"{servers.http}/bytes/{2**20}?i={i}" for i in range(24)],
        process=f"{FIXTURE}:reverse",
        workers=2,
        concurrency=12,
    )
    for r in results:
        assert r.process_error is None and r.processed == r.body[::-1]


def test_a_processor_that_cannot_be_imported_is_refused_before_fetching(backend):
    with pytest.raises(ConfigError, match="no_such_module"):
        Fetcher(backend, process="no_such_module:fn").__enter__()
