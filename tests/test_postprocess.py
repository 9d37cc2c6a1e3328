"""The post-processing engine, against real process pools.

Processors that misbehave on purpose live in ``tests/processors_fixture.py``
(worker processes import them by name). Behaviour under Ctrl+C and under
gevent's patching changes a whole process, so those checks run in
subprocesses started in their own session and killed by process group.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

import pytest

from polyfetch.errors import ConfigError, ProcessorFailed, ProcessTimeout, ReadError, WorkerDied
from polyfetch.postprocess import PostProcessor, engine, transport
from polyfetch.postprocess.builtins import decode_html, html, sha256, text
from polyfetch.result import Result

ROOT = Path(__file__).parent.parent
FIXTURE = "tests.processors_fixture"
WAIT = 30  # seconds: the bound on every wait for a future


def page(index: int = 0, query: str = "", body: bytes = b"<p>x</p>", **fields: Any) -> Result:
    url = f"http://127.0.0.1/p{index}?{query}"
    return Result(url=url, index=index, final_url=url, status=200, body=body, **fields)


@pytest.fixture
def make() -> Iterator[Callable[..., PostProcessor]]:
    """Start PostProcessors that are closed after the test, whatever happens."""
    started: list[PostProcessor] = []

    def make(process: object, **options: Any) -> PostProcessor:
        pp = PostProcessor(process, **options)  # type: ignore[arg-type]
        started.append(pp)
        return pp.start()

    yield make
    for pp in started:
        pp.close()


def results(pp: PostProcessor, pages: list[Result]) -> list[Result]:
    return [f.result(WAIT) for f in [pp.submit(p) for p in pages]]


def spool_files(pp: PostProcessor) -> list[str]:
    """The files in the spool of ``pp``, but for the shared segments of its live workers."""
    assert pp._engine is not None and pp._engine.spool is not None
    pool = pp._engine.pool
    live = {os.path.basename(w.segment.path) for w in pool.workers.values()} if pool else set()
    return [name for name in os.listdir(pp._engine.spool.path) if name not in live]


def running(pp: PostProcessor) -> int:
    """How many items the workers of ``pp`` run right now."""
    pool = pp._engine.pool if pp._engine is not None else None
    return sum(pool.running(w) is not None for w in pool.workers.values()) if pool else 0


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def run_script(tmp_path: Path, code: str, *args: str, gevent: bool = False) -> dict[str, Any]:
    """Run ``code`` in a fresh interpreter (its own session); return the JSON it prints last."""
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(code))
    cmd = [sys.executable, *(["-m", "gevent.monkey"] if gevent else []), str(script), *args]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"{script.name} did not finish in 120 s:\n{out[-2000:]}\n{err[-4000:]}")
    finally:
        # Pool workers and the resource tracker are in the script's process group.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, err[-4000:]
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


# -- built-in processors ---------------------------------------------------------------------

LINKS_PAGE = b"""<!doctype html><html lang=" de-CH "><head><title>  A \n title </title>
<style>p { color: red }</style></head><body>
<a href="/abs">1</a> <a href="rel/x?y=1#frag">2</a> <a href="//other.example/p">3</a>
<a href="https://secure.example/s">4</a> <a href="mailto:a@b.c">5</a>
<a href="javascript:void(0)">6</a>
<a href="#top">7</a> <a href="?q=2">8</a> <a href="../up">9</a> <a href=" /abs ">10</a>
<a href="/abs#again">11</a> <a href="ftp://files.example/">12</a> <a>13</a>
<script>document.write("hidden")</script><ul><li>one</li><li>two</li></ul>
<p>hel<b>lo</b> wor<script>x</script>ld</p></body></html>"""


def test_html_title_links_text_and_lang():
    base = "http://site.example/dir/page?old=1"
    headers = {"content-type": "text/html"}
    out = html(Result(url="u", final_url=base, status=200, headers=headers, body=LINKS_PAGE))
    assert out["title"] == "A title"
    assert out["lang"] == "de-CH"
    assert out["links"] == [
        "http://site.example/abs",
        "http://site.example/dir/rel/x?y=1",
        "http://other.example/p",
        "https://secure.example/s",
        "http://site.example/dir/page?q=2",
        "http://site.example/up",
    ]
    assert out["text_length"] == len("1 2 3 4 5 6 7 8 9 10 11 12 13 one two hello world")
    assert (out["charset"], out["charset_source"]) == ("utf-8", "utf-8")


def test_html_honours_base_href_and_returns_plain_types():
    body = b'<html><head><base href="/base/"></head><body><a href="x">x</a></body></html>'
    out = html(Result(url="u", final_url="https://h.example/a/b", status=200, body=body))
    assert out["links"] == ["https://h.example/base/x"]

    def plain(value: object) -> bool:
        if type(value) in (dict,):
            return all(type(k) is str and plain(v) for k, v in value.items())  # type: ignore[union-attr]
        if type(value) is list:
            return all(plain(v) for v in value)  # type: ignore[union-attr]
        return type(value) in (str, int, type(None))

    assert plain(html(page(body=LINKS_PAGE)))


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        ("café".encode("cp1252"), "text/html; charset=ISO-8859-1", ("cp1252", "header")),
        ("日本語".encode("shift_jis"), 'text/html; charset="Shift_JIS"', ("shift_jis", "header")),
        (
            b'<meta charset="windows-1251">' + "Привет".encode("cp1251"),
            "text/html",
            ("cp1251", "meta"),
        ),
        (
            b'<meta http-equiv="Content-Type" content="text/html; charset=koi8-r">'
            + "Привет".encode("koi8_r"),
            None,
            ("koi8-r", "meta"),
        ),
        (b"<meta charset=utf-16><p>x</p>", None, ("utf-8", "meta")),  # WHATWG: utf-16 in meta
        ("naïve".encode(), None, ("utf-8", "utf-8")),
        ("naïve".encode("cp1252"), None, ("cp1252", "fallback")),
        (b"\xef\xbb\xbf" + "é".encode(), "text/html; charset=latin1", ("utf-8", "bom")),
        ("é".encode("cp1252"), "text/html; charset=bogus", ("cp1252", "fallback")),
    ],
)
def test_charset_detection(body: bytes, content_type: str | None, expected: tuple[str, str]):
    decoded, charset, source = decode_html(body, content_type)
    assert (charset, source) == expected
    assert "\ufffd" not in decoded


def test_html_reports_the_charset_it_used():
    body = b'<html><head><meta charset="windows-1252"><title>Caf\xe9</title></head></html>'
    out = html(page(body=body))
    assert out["title"] == "Café"
    assert (out["charset"], out["charset_source"]) == ("cp1252", "meta")


def test_text_and_sha256():
    assert text(page(body=LINKS_PAGE)).endswith("13 one two hello world")
    assert "hidden" not in text(page(body=LINKS_PAGE))
    assert "color" not in text(page(body=LINKS_PAGE))
    assert sha256(page(body=b"abc")) == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )
    with pytest.raises(ValueError, match="keep_body=False"):
        sha256(Result(url="u", status=200, body=None))


# -- configuration ---------------------------------------------------------------------------


def _nested() -> Callable[[Result], int]:
    def inner(result: Result) -> int:
        return 1

    return inner


class _Callable:
    def __call__(self, result: Result) -> int:
        return 1


@pytest.mark.parametrize(
    ("process", "message"),
    [
        (lambda r: 1, "is a lambda"),
        (_nested(), "defined inside a function"),
        (_Callable(), "has no importable name"),
        ("nope", "neither a built-in"),
        ("no_such_module_xyz:f", "ModuleNotFoundError"),
        ("os:no_such_function", "AttributeError"),
        ("os:sep", "not callable"),
        ("a b:c", "neither a built-in"),
        (42, "must be a callable"),
    ],
)
def test_unusable_processors_are_refused_at_start(process: object, message: str):
    pp = PostProcessor(process)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=message):
        pp.start()
    pp.close()


def test_in_process_executors_take_any_callable(make: Callable[..., PostProcessor]):
    for executor in ("thread", "inline"):
        pp = make(lambda r: r.index * 2, executor=executor)
        assert pp.submit(page(21)).result(WAIT).processed == 42
        assert make(_nested(), executor=executor).submit(page()).result(WAIT).processed == 1


@pytest.mark.parametrize(
    "options",
    [{"executor": "fork"}, {"executor": object()}, {"workers": 0}, {"timeout": 0}],
)
def test_bad_options(options: dict[str, Any]):
    with pytest.raises(ConfigError):
        PostProcessor("html", **options)


def test_main_script_functions(tmp_path: Path):
    out = run_script(
        tmp_path,
        """
        import json
        from polyfetch.errors import ConfigError
        from polyfetch.postprocess import PostProcessor
        from polyfetch.result import Result

        def top(result):
            return "top-level"

        if __name__ == "__main__":
            def guarded(result):
                return "guarded"

            out = {}
            try:
                PostProcessor(guarded).start()
            except ConfigError as exc:
                out["guarded"] = str(exc)
            with PostProcessor(top, workers=1) as pp:
                page = Result(url="u", status=200, body=b"")
                out["top"] = pp.submit(page).result(30).processed
            with PostProcessor(guarded, executor="thread") as pp:
                out["thread"] = pp.submit(page).result(30).processed
            print(json.dumps(out))
        """,
    )
    assert "is not defined at the top level" in out["guarded"]
    assert out["top"] == "top-level"
    assert out["thread"] == "guarded"


def test_importing_the_package_is_light():
    code = (
        "import sys, json, polyfetch.postprocess\n"
        "mods = ['multiprocessing', 'concurrent.futures.process', 'selectolax', 'lxml', "
        "'socket', 'ssl', 'asyncio', 'gevent']\n"
        "print(json.dumps([m for m in mods if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert json.loads(out.stdout) == [], out.stderr


# -- the process pool ------------------------------------------------------------------------


def test_process_pool_matches_inline_and_passes_failed_fetches(make: Callable[..., PostProcessor]):
    pages = [page(i, body=LINKS_PAGE * (1 + i % 50)) for i in range(40)]  # 1-40 KiB
    failed = Result(url="http://x/", index=99, error=ReadError("reset"))
    pp = make("html", workers=2)
    got = results(pp, [*pages, failed])
    expected = results(make("html", executor="inline"), pages)
    assert [r.processed for r in got[:-1]] == [r.processed for r in expected]
    assert all(
        r.process_error is None and r.body == p.body for r, p in zip(got, pages, strict=False)
    )
    assert got[-1] is failed
    assert pp.statistics()["processed"] == 40
    assert spool_files(pp) == []


def test_processor_that_raises(make: Callable[..., PostProcessor]):
    pp = make(f"{FIXTURE}:boom", workers=2)
    got = results(pp, [page(i, "boom=1" if i == 2 else "") for i in range(6)])
    error = got[2].process_error
    assert isinstance(error, ProcessorFailed)
    assert error.message.startswith("ValueError: bad page 2 (at ")
    assert "processors_fixture.py:" in error.message and error.message.endswith(" in boom)")
    assert [r.process_error for i, r in enumerate(got) if i != 2] == [None] * 5


def test_unpicklable_value(make: Callable[..., PostProcessor]):
    error = make(f"{FIXTURE}:unpicklable", workers=1).submit(page()).result(WAIT).process_error
    assert isinstance(error, ProcessorFailed)
    assert "cannot be sent back" in error.message and "lock" in error.message


def test_worker_that_cannot_import_the_processor(make, tmp_path, monkeypatch):
    module = tmp_path / "only_in_parent_xyz.py"
    module.write_text("def f(result):\n    return 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    pp = make("only_in_parent_xyz:f", workers=1)  # resolved in the parent
    module.unlink()
    sys.path.remove(str(tmp_path))  # and workers start without it
    got = results(pp, [page(0), page(1)])
    assert all(isinstance(r.process_error, ProcessorFailed) for r in got)
    assert "ModuleNotFoundError" in got[0].process_error.message  # type: ignore[union-attr]
    assert pp.statistics()["replaced"] == 0  # an ordinary error, not a dead worker


def test_worker_that_dies_on_an_item(make: Callable[..., PostProcessor]):
    pp = make(f"{FIXTURE}:die", workers=2)
    pages = [page(i, "die=exit" if i == 3 else "s=0.05", body=b"y" * 40_000) for i in range(12)]
    got = results(pp, pages)
    error = got[3].process_error
    assert isinstance(error, WorkerDied)
    assert (
        error.message == "the worker process died (exit code 1) while processing this item, twice"
    )
    assert all(r.process_error is None for i, r in enumerate(got) if i != 3)
    assert sorted(r.index for r in got) == list(range(12))
    stats = pp.statistics()
    assert stats["replaced"] == 2 and stats["worker_died"] == 1 and stats["processed"] == 11
    assert spool_files(pp) == []
    # and the run goes on
    assert all(r.process_error is None for r in results(pp, [page(20), page(21)]))


def test_death_is_resubmitted_once(make: Callable[..., PostProcessor], tmp_path: Path):
    pp = make(f"{FIXTURE}:die", workers=2)
    marker = tmp_path / "died"
    got = results(pp, [page(0, f"die=exit&once={marker}"), page(1, "s=0.2")])
    assert marker.exists()
    assert [r.process_error for r in got] == [None, None]
    assert pp.statistics()["resubmitted"] >= 1


def test_worker_killed_from_outside(make: Callable[..., PostProcessor], tmp_path: Path):
    pp = make(f"{FIXTURE}:sleep", workers=2)
    pidfile = tmp_path / "pid"
    victim = pp.submit(page(0, f"s=0.5&pidfile={pidfile}"))
    others = [pp.submit(page(i, "s=0.1")) for i in range(1, 6)]
    assert wait_until(pidfile.exists)
    first = int(pidfile.read_text())
    os.kill(first, signal.SIGKILL)  # as the OOM killer would
    result = victim.result(WAIT)
    assert result.process_error is None  # blamed once, resubmitted, done
    assert int(pidfile.read_text()) != first
    assert all(f.result(WAIT).process_error is None for f in others)
    assert pp.statistics()["replaced"] == 1


def test_a_worker_killed_while_idle_blames_nobody(make: Callable[..., PostProcessor], tmp_path):
    pp = make(f"{FIXTURE}:sleep", workers=2)
    assert all(r.process_error is None for r in results(pp, [page(0), page(1)]))  # both up
    pidfile = tmp_path / "pid"
    busy = pp.submit(page(2, f"s=0.6&pidfile={pidfile}"))
    assert wait_until(pidfile.exists)
    engine_ = pp._engine
    assert engine_ is not None and engine_.pool is not None
    idle = {w.pid for w in engine_.pool.workers.values()} - {int(pidfile.read_text())}
    os.kill(idle.pop(), signal.SIGKILL)
    assert busy.result(WAIT).process_error is None  # lost with the pool, resubmitted, done
    stats = pp.statistics()
    assert stats["replaced"] == 1 and stats["resubmitted"] == 0 and stats["worker_died"] == 0


def test_innocent_neighbours_are_not_blamed(make: Callable[..., PostProcessor]):
    # The crasher breaks the pool twice while its neighbours run in the other worker.
    pp = make(f"{FIXTURE}:die", workers=2)
    pages = [page(0, "die=exit")] + [page(i, "s=0.3") for i in range(1, 4)]
    got = results(pp, pages)
    assert isinstance(got[0].process_error, WorkerDied)
    assert [r.process_error for r in got[1:]] == [None, None, None]


def test_a_mixed_run_loses_nothing_and_duplicates_nothing(make, tmp_path: Path):
    pp = make(f"{FIXTURE}:die", workers=2)
    # SIGKILL, as the OOM killer would: once (then fine), and always.
    kinds = {9: f"die=kill&once={tmp_path / 'once'}", 14: "die=kill"}
    pages = [page(i, kinds.get(i, f"s=0.0{i % 4}"), body=b"w" * (i * 1500)) for i in range(24)]
    futures = [pp.submit(p) for p in pages]
    got = [f.result(WAIT) for f in futures]
    assert [r.index for r in got] == list(range(24))
    died = {r.index for r in got if isinstance(r.process_error, WorkerDied)}
    assert died == {14}
    assert f"(exit code {-signal.SIGKILL})" in got[14].process_error.message  # type: ignore[union-attr]
    assert all(r.processed["index"] == r.index for r in got if r.index not in died)
    stats = pp.statistics()
    assert stats["processed"] + stats["worker_died"] == stats["submitted"] == 24
    assert spool_files(pp) == []


def test_timeout_kills_the_stuck_worker_and_recovers(make: Callable[..., PostProcessor]):
    pp = make(f"{FIXTURE}:hang", workers=2, timeout=1.0)
    started = time.monotonic()
    futures = [
        pp.submit(page(i, "hang=1" if i == 0 else "s=0.2", body=b"z" * 50_000)) for i in range(6)
    ]
    stuck = futures[0].result(WAIT)
    assert time.monotonic() - started >= 1.0
    assert isinstance(stuck.process_error, ProcessTimeout)
    ran = float(re.search(r"ran for ([0-9.]+) s", stuck.process_error.message).group(1))  # type: ignore[union-attr]
    assert 1.0 <= ran < 2.0  # timed from the moment the worker started it
    assert all(f.result(WAIT).process_error is None for f in futures[1:])
    assert all(r.process_error is None for r in results(pp, [page(10, "s=0.1"), page(11)]))
    stats = pp.statistics()
    assert stats["timeouts"] == 1 and stats["replaced"] == 1 and stats["worker_died"] == 0
    assert spool_files(pp) == []


def test_timeout_counts_from_the_start_not_the_queue(make: Callable[..., PostProcessor]):
    # each runs 0.5 s of a 2 s timeout (room for a loaded machine); the fifth waits 2 s
    pp = make(f"{FIXTURE}:sleep", workers=1, timeout=2.0)
    got = results(pp, [page(i, "s=0.5") for i in range(5)])
    assert [r.process_error for r in got] == [None] * 5


def test_thread_timeout_completes_the_future(make: Callable[..., PostProcessor]):
    pp = make(f"{FIXTURE}:sleep", executor="thread", workers=1, timeout=0.3)
    started = time.monotonic()
    error = pp.submit(page(0, "s=1.5")).result(WAIT).process_error
    assert isinstance(error, ProcessTimeout)
    assert time.monotonic() - started < 1.2  # the thread still runs; close() waits for it


def test_big_pages_and_values_go_through_files(make: Callable[..., PostProcessor]):
    pp = make(f"{FIXTURE}:reverse", workers=2)
    bodies = [bytes([i]) * (200_000 + i) for i in range(10)]
    got = results(pp, [page(i, body=b) for i, b in enumerate(bodies)])
    assert [r.processed for r in got] == [b[::-1] for b in bodies]
    path = pp._engine.spool.path  # type: ignore[union-attr]
    assert spool_files(pp) == []
    pp.close()
    assert not os.path.exists(path)


def test_bodies_past_a_segment_place_go_through_files(make: Callable[..., PostProcessor]):
    pp = make(f"{FIXTURE}:reverse", workers=1)
    bodies = [b"s" * 150_000, bytes(range(256)) * 6000, b"t" * 200]  # shared memory, file, inline
    assert len(bodies[1]) > transport.PLACE
    got = results(pp, [page(i, body=b) for i, b in enumerate(bodies)])
    assert [r.processed for r in got] == [b[::-1] for b in bodies]
    assert spool_files(pp) == []


def test_workers_start_and_import_the_processor_before_the_first_page(tmp_path: Path):
    out = run_script(
        tmp_path,
        """
        import json, sys, time
        from polyfetch.postprocess import PostProcessor

        with PostProcessor("tests.processors_fixture:sleep", workers=2) as pp:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                pool = pp._engine.pool
                if pool and len(pool.workers) == 2 and all(w.ready for w in pool.workers.values()):
                    break
                time.sleep(0.01)
            ready = [w.ready for w in pp._engine.pool.workers.values()]
            print(json.dumps({"ready": ready, "submitted": pp.statistics()["submitted"]}))
        """,
    )
    assert out == {"ready": [True, True], "submitted": 0}  # ready, with no page handed over


def test_default_workers_are_the_cpus_this_process_may_use():
    from polyfetch.postprocess import default_workers

    assert default_workers() == len(os.sched_getaffinity(0))
    assert PostProcessor("sha256")._workers == default_workers()


def test_spools_of_killed_processes_are_swept():
    code = "from polyfetch.postprocess import transport; print(transport.Spool().path)"
    leaked = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    ).stdout.strip()  # a process that exits without closing its spool, as a killed one would
    assert os.path.isdir(leaked)
    spool = transport.Spool()
    try:
        assert not os.path.exists(leaked)
    finally:
        spool.close()


# -- cancellation and close ------------------------------------------------------------------


def test_cancelled_futures_are_tolerated(make, caplog: pytest.LogCaptureFixture):
    pp = make(f"{FIXTURE}:sleep", workers=1)
    futures = [pp.submit(page(i, "s=0.3", body=b"c" * 40_000)) for i in range(5)]
    assert wait_until(lambda: running(pp) == 1)
    assert all(f.cancel() for f in futures[:3])  # running, in the call queue, queued
    assert [f.result(WAIT).process_error for f in futures[3:]] == [None, None]
    assert wait_until(lambda: pp.statistics()["cancelled"] == 3)
    assert spool_files(pp) == []
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_close_waits_briefly_for_running_items_and_cancels_the_queue(make):
    pp = make(f"{FIXTURE}:sleep", workers=2)
    futures = [pp.submit(page(i, "s=0.3")) for i in range(10)]
    assert wait_until(lambda: running(pp) == 2)
    started = time.monotonic()
    pp.close()
    assert time.monotonic() - started < engine.CLOSE_GRACE + 1
    done, _ = wait(futures, timeout=0)
    assert len(done) == 10
    finished = [f for f in futures if not f.cancelled()]
    assert 2 <= len(finished) <= 5  # 1 per worker, + up to workers + 1 in the call queue
    assert all(f.result().process_error is None for f in finished)


def test_close_kills_what_runs_too_long(make, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(engine, "CLOSE_GRACE", 0.3)
    pp = make(f"{FIXTURE}:sleep", workers=2)
    futures = [pp.submit(page(i, "s=60")) for i in range(4)]
    assert wait_until(lambda: running(pp) == 2)
    pids = [w.pid for w in pp._engine.pool.workers.values()]  # type: ignore[union-attr]
    started = time.monotonic()
    pp.close()
    assert time.monotonic() - started < 3
    assert all(f.cancelled() for f in futures)
    assert wait_until(lambda: all(gone(pid) for pid in pids))


def test_close_is_idempotent_and_submit_after_close_raises(make):
    pp = make("sha256", workers=1)
    pp.close()
    pp.close()
    with pytest.raises(RuntimeError, match="closed"):
        pp.submit(page())


def test_a_forgotten_post_processor_cleans_up_when_collected():
    pp = PostProcessor("sha256", workers=1).start()
    assert pp.submit(page(body=b"x" * 50_000)).result(WAIT).process_error is None
    engine_ = pp._engine
    assert engine_ is not None and engine_.spool is not None
    del pp
    gc.collect()
    assert not engine_.thread.is_alive() and not os.path.exists(engine_.spool.path)


# -- other executors -------------------------------------------------------------------------


def test_inline_future_is_done_at_once(make: Callable[..., PostProcessor]):
    future = make("sha256", executor="inline").submit(page(body=b"abc"))
    assert future.done() and future.result().processed.startswith("ba7816bf")


def test_callers_executors_are_used_and_not_shut_down(make: Callable[..., PostProcessor]):
    with ThreadPoolExecutor(2) as threads:
        pp = make(lambda r: r.index + 1, executor=threads)
        assert pp.submit(page(1)).result(WAIT).processed == 2
        pp.close()
        assert threads.submit(int, "7").result(WAIT) == 7
    import multiprocessing

    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as processes:
        pp = make(f"{FIXTURE}:reverse", executor=processes)
        body = b"a" * 100_000 + b"b"
        assert pp.submit(page(body=body)).result(60).processed == body[::-1]
        pp.close()
        assert processes.submit(int, "8").result(60) == 8


def test_asyncio_can_await_the_future(make: Callable[..., PostProcessor]):
    pp = make("sha256", executor="thread", workers=1)

    async def main() -> str:
        result = await asyncio.wrap_future(pp.submit(page(body=b"abc")))
        return result.processed  # type: ignore[no-any-return]

    assert asyncio.run(main()).startswith("ba7816bf")


# -- whole processes: Ctrl+C and gevent ------------------------------------------------------

SIGINT_SCRIPT = """
import json, os, signal, time
from polyfetch.postprocess import PostProcessor
from polyfetch.result import Result

def page(i, s):
    return Result(url=f"http://x/?s={s}", index=i, status=200, body=b"x")

if __name__ == "__main__":
    out = {}
    pp = PostProcessor("tests.processors_fixture:sleep", workers=2).start()
    futures = [pp.submit(page(i, 0.4)) for i in range(6)]
    time.sleep(0.2)
    try:
        os.killpg(0, signal.SIGINT)  # Ctrl+C: the whole process group, workers included
        time.sleep(10)
    except KeyboardInterrupt:
        out["interrupted"] = True
    out["errors"] = [str(f.result(30).process_error) for f in futures if f.result(30).process_error]
    out["replaced"] = pp.statistics()["replaced"]
    futures = [pp.submit(page(i, 0.3)) for i in range(8)]
    time.sleep(0.2)
    pids = [w.pid for w in pp._engine.pool.workers.values()]
    try:
        os.killpg(0, signal.SIGINT)
        time.sleep(10)
    except KeyboardInterrupt:
        started = time.monotonic()
        pp.close()
        out["close_seconds"] = time.monotonic() - started
    out["finished"] = sum(not f.cancelled() and f.result(0).process_error is None for f in futures)
    out["cancelled"] = sum(f.cancelled() for f in futures)
    time.sleep(0.3)
    out["workers_left"] = [p for p in pids if os.path.exists(f"/proc/{p}")]
    print(json.dumps(out))
"""


def test_ctrl_c_does_not_break_the_pool_and_close_does_not_hang(tmp_path: Path):
    out = run_script(tmp_path, SIGINT_SCRIPT)
    assert out["interrupted"]
    assert out["errors"] == [] and out["replaced"] == 0
    assert out["close_seconds"] < engine.CLOSE_GRACE + 1
    # Running: one per worker, and up to workers + 1 more in the executor's call queue.
    assert 2 <= out["finished"] <= 5 and out["finished"] + out["cancelled"] == 8
    assert out["workers_left"] == []


REAPED_SCRIPT = """
import json, signal, subprocess, sys

def main():
    if sys.argv[1] == "gevent":
        subprocess.run([sys.executable, "-c", "pass"], check=True)  # libev now reaps every child
    else:
        signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps every child
    from polyfetch.postprocess import PostProcessor
    from polyfetch.result import Result

    with PostProcessor("tests.processors_fixture:die", workers=2) as pp:
        queries = ["die=kill" if i == 1 else "s=0.05" for i in range(8)]  # a full call queue
        futures = [
            pp.submit(Result(url=f"http://x/?{q}", index=i, status=200, body=b"x"))
            for i, q in enumerate(queries)
        ]
        errors = [str(f.result(60).process_error) for f in futures]
        print(json.dumps({"errors": errors, "replaced": pp.statistics()["replaced"]}))

if __name__ == "__main__":
    main()
"""


@pytest.mark.parametrize("reaper", ["gevent", "sigchld-ignored"])
def test_workers_reaped_by_someone_else(tmp_path: Path, reaper: str):
    # Exit statuses lost to gevent's libev (or to SIGCHLD ignored) once hung the process.
    out = run_script(tmp_path, REAPED_SCRIPT, reaper, gevent=reaper == "gevent")
    assert out["errors"][:1] + out["errors"][2:] == ["None"] * 7
    # The exit code is unknown when the status was reaped elsewhere first (the usual case).
    died = r"the worker process died( \(exit code -9\))? while processing this item, twice"
    assert re.fullmatch(died, out["errors"][1])
    assert out["replaced"] == 2


GEVENT_SCRIPT = """
import json, os, sys, time

def main():
    import gevent, gevent.pool
    from gevent import monkey
    assert monkey.is_module_patched("socket") and monkey.is_module_patched("threading")
    from polyfetch.postprocess import PostProcessor
    from polyfetch.result import Result

    n, size, out = int(sys.argv[1]), 2**20, {}
    with PostProcessor("tests.processors_fixture:reverse", workers=2) as pp:
        spool = pp._engine.spool.path

        def one(i):
            body = i.to_bytes(4, "big") + bytes([i % 251]) * (size - 4)
            result = pp.submit(Result(url=f"http://x/{i}", index=i, status=200, body=body))
            result = result.result()
            return result.process_error is None and result.processed == body[::-1]

        started = time.monotonic()
        out["correct"] = sum(gevent.pool.Pool(100).imap_unordered(one, range(n)))
        out["seconds"] = time.monotonic() - started
        out["stats"] = pp.statistics()
        live = {os.path.basename(w.segment.path) for w in pp._engine.pool.workers.values()}
        out["spool_left"] = [name for name in os.listdir(spool) if name not in live]

    # fut.result() waits cooperatively: a ticker greenlet keeps running meanwhile.
    ticks = []

    def ticker():
        while True:
            ticks.append(time.monotonic())
            gevent.sleep(0.01)

    with PostProcessor("tests.processors_fixture:sleep", workers=1) as pp:
        pp.submit(Result(url="http://x/", status=200, body=b"")).result()  # workers up
        greenlet = gevent.spawn(ticker)
        started = time.monotonic()
        result = pp.submit(Result(url="http://x/?s=0.5", status=200, body=b"")).result()
        out["waited"] = time.monotonic() - started
        out["ticks"] = sum(t >= started for t in ticks)
        out["slept_ok"] = result.process_error is None
        greenlet.kill()
    print(json.dumps(out))

if __name__ == "__main__":
    main()
"""


@pytest.mark.slow
def test_gevent_big_messages_do_not_deadlock(tmp_path: Path):
    out = run_script(tmp_path, GEVENT_SCRIPT, "500", gevent=True)
    assert out["correct"] == 500
    assert out["seconds"] < 100
    assert out["stats"]["processed"] == 500 and out["stats"]["replaced"] == 0
    assert out["spool_left"] == []
    assert out["slept_ok"] and out["waited"] >= 0.5
    assert out["ticks"] >= 10  # 10 ms ticks over 0.5 s: the hub ran while we waited


@pytest.mark.parametrize("executor", ["process", "thread", "inline"])
def test_a_composed_processor_runs_per_item_beside_the_pools_own(
    make: Callable[..., PostProcessor], executor: str
) -> None:
    """`compose` runs several processors in one hand-off; `submit(processor=)` picks it for
    one page, the pool's own processor still serving the others. A failing part costs the
    other parts nothing."""
    from polyfetch.postprocess.spec import compose, resolve

    pp = make("polyfetch.testing.processors:echo", executor=executor, workers=1)
    both = compose(
        resolve("sha256", in_process=False), resolve(f"{FIXTURE}:boom", in_process=False)
    )
    pp.check_other(both)
    body = b"<p>x</p>"
    plain, composed, failing = (
        pp.submit(page(0)).result(WAIT),
        pp.submit(page(1), both).result(WAIT),
        pp.submit(page(2, "boom=1"), both).result(WAIT),
    )
    assert plain.processed["index"] == 0  # the pool's own processor
    digest = sha256(page(1))
    assert composed.process_error is None
    assert composed.processed == (("value", digest), ("value", None))
    assert failing.processed[0] == ("value", sha256(page(2, "boom=1", body=body)))
    assert failing.processed[1][0] == "error" and "bad page 2" in failing.processed[1][1]
