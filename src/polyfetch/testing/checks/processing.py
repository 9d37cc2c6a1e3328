"""Post-processing from every backend: built-ins, failing processors, dying and stuck workers."""

from __future__ import annotations

import tempfile
from pathlib import Path

from polyfetch.errors import ConfigError, ProcessorFailed, ProcessTimeout, WorkerDied
from polyfetch.testing.checks._registry import check, shown
from polyfetch.testing.harness import Harness
from polyfetch.testing.processors import MODULE
from polyfetch.testing.servers import Servers, closed_port

#: executors besides the default process pool
OTHER_EXECUTORS = ("inline", "thread")


@check
def check_builtin_html_in_a_process_pool(harness: Harness, servers: Servers) -> None:
    """The built-in html processor runs in a process pool and gives title and absolute links."""
    urls = [f"{servers.http}/html/20000?i={i}" for i in range(8)]
    for r in harness.run(urls, process="html", workers=2):
        assert r.process_error is None, f"{shown(r)}: {r.process_error!r}"
        page = r.processed
        assert page["title"] and page["links"], page
        for link in page["links"]:
            assert link.startswith(("http://", "https://")), f"not absolute: {link!r}"


@check
def check_other_executors(harness: Harness, servers: Servers, executor: str | None = None) -> None:
    """The inline and thread executors (or only ``executor``) process every page."""
    for case in [executor] if executor else OTHER_EXECUTORS:
        urls = [f"{servers.http}/bytes/100?i={i}" for i in range(5)]
        results = harness.run(urls, process="sha256", executor=case)
        digests = {r.processed for r in results}
        assert len(digests) == 1, f"executor {case}: digests {digests}"
        assert len(results[0].processed) == 64, f"executor {case}: {results[0].processed!r}"


@check
def check_failing_processor_is_recorded_and_the_run_goes_on(
    harness: Harness, servers: Servers
) -> None:
    """A processor that raises gives that item a ProcessorFailed naming the exception."""
    urls = [f"{servers.http}/bytes/10?i={i}" + ("&boom=1" if i % 3 == 0 else "") for i in range(9)]
    results = harness.run(urls, process=f"{MODULE}:boom", workers=2)
    for i, r in enumerate(results):
        if i % 3 == 0:
            assert isinstance(r.process_error, ProcessorFailed), f"{shown(r)}: {r.process_error!r}"
            message = r.process_error.message
            assert "ValueError" in message and "bad page" in message, message
        else:
            assert r.process_error is None and r.status == 200, f"{shown(r)}: {r.process_error!r}"


@check
def check_failed_fetches_are_not_processed(harness: Harness, servers: Servers) -> None:
    """Only fetched pages are processed."""
    bad, good = harness.run(
        [f"http://127.0.0.1:{closed_port()}/", f"{servers.http}/bytes/3"],
        process=f"{MODULE}:echo",
        retries=0,
        workers=1,
    )
    assert bad.error is not None and bad.processed is None and bad.process_error is None, (
        f"{shown(bad)}: processed {bad.processed!r}, {bad.process_error!r}"
    )
    assert good.processed is not None and good.processed["size"] == 3, good.processed


@check
def check_killed_workers_are_replaced(harness: Harness, servers: Servers) -> None:
    """A killed worker is replaced; its item is retried once, WorkerDied the second time."""
    with tempfile.TemporaryDirectory(prefix="polyfetch-check-") as tmp:
        once = Path(tmp) / "died-once"
        urls = [
            f"{servers.http}/bytes/10?die=kill&once={once}",
            f"{servers.http}/bytes/10?die=kill",
        ]
        urls += [f"{servers.http}/bytes/10?i={i}" for i in range(6)]
        results = harness.run(urls, process=f"{MODULE}:die", workers=2)
    first, second = results[0], results[1]
    assert first.process_error is None, f"died once, then ran: {first.process_error!r}"
    assert first.processed is not None and first.processed["size"] == 10, first.processed
    died = second.process_error
    assert isinstance(died, WorkerDied), f"dies every time, got {died!r}"
    for r in results[2:]:
        assert r.process_error is None, f"{shown(r)}: {r.process_error!r}"


@check
def check_stuck_processor_times_out_and_the_pool_recovers(
    harness: Harness, servers: Servers
) -> None:
    """A processor stuck past process_timeout is a ProcessTimeout; the others still run."""
    urls = [f"{servers.http}/bytes/10?hang=1"] + [
        f"{servers.http}/bytes/10?i={i}" for i in range(4)
    ]
    results = harness.run(urls, process=f"{MODULE}:hang", workers=2, process_timeout=1.5)
    assert isinstance(results[0].process_error, ProcessTimeout), repr(results[0].process_error)
    for r in results[1:]:
        assert r.process_error is None and r.processed, f"{shown(r)}: {r.process_error!r}"


@check
def check_big_bodies_and_big_results(harness: Harness, servers: Servers) -> None:
    """1 MiB bodies and 1 MiB results cross the process boundary (gevent's deadlock case)."""
    results = harness.run(
        [f"{servers.http}/bytes/{2**20}?i={i}" for i in range(24)],
        process=f"{MODULE}:reverse",
        workers=2,
        concurrency=12,
    )
    for r in results:
        assert r.process_error is None, f"{shown(r)}: {r.process_error!r}"
        assert r.body is not None and r.processed == r.body[::-1], f"{shown(r)}: wrong result"


@check
def check_a_processor_that_cannot_be_imported_is_refused_before_fetching(
    harness: Harness, servers: Servers
) -> None:
    """A processor that cannot be imported is a ConfigError when the fetcher starts."""
    try:
        with harness.open(process="no_such_module:fn"):
            pass
    except ConfigError as exc:
        assert "no_such_module" in str(exc), f"the error does not name the module: {exc}"
    else:
        raise AssertionError("a processor that cannot be imported was accepted")
