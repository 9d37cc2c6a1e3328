"""Last resort: whatever raises inside an item's path, the item gets its one record.

Each case makes one stage of the runner raise a plain exception for marked
items only (by patching the real function for the test), on every backend;
``map()`` must neither raise nor hang, every item must get exactly one record
(the marked ones a `FetchError`, the others their page), and the fetcher must
still close cleanly and fetch afterwards.
"""

from __future__ import annotations

import pytest

from polyfetch import FetchError
from polyfetch.testing.harness import ASYNC

MARK = "inject-fault"


class Injected(RuntimeError):
    """What the patched stage raises."""


def _marked(*values: object) -> bool:
    return any(MARK in str(v) for v in values)


def _patch(monkeypatch: pytest.MonkeyPatch, owner: object, name: str, sync: bool = True) -> None:
    """Wrap ``owner.name`` so that it raises `Injected` when any argument is marked."""
    real = getattr(owner, name)
    if sync:

        def wrapper(*args: object, **kwargs: object) -> object:
            if _marked(*args, *kwargs.values(), *(getattr(a, "target", None) for a in args)):
                raise Injected(f"injected into {name}")
            return real(*args, **kwargs)

    else:

        async def wrapper(*args: object, **kwargs: object) -> object:  # type: ignore[misc]
            if _marked(*args, *(getattr(a, "target", None) for a in args)):
                raise Injected(f"injected into {name}")
            return await real(*args, **kwargs)

    monkeypatch.setattr(owner, name, wrapper)


def _stage_planner(monkeypatch, backend):
    from polyfetch._plan import Plan

    real = Plan.advance

    def advance(self, outcome, now):
        if _marked(self.item):
            raise Injected("injected into the planner")
        return real(self, outcome, now)

    monkeypatch.setattr(Plan, "advance", advance)


def _stage_url(monkeypatch, backend):
    from polyfetch import _url

    _patch(monkeypatch, _url, "parse")


def _stage_record(monkeypatch, backend):
    from polyfetch._plan import Plan

    real = Plan._done

    def done(self, now):
        if _marked(self.item):
            raise Injected("injected into building the record")
        return real(self, now)

    monkeypatch.setattr(Plan, "_done", done)


def _stage_slots(monkeypatch, backend):
    """Taking a slot raises; slots see only the host, so marked items go to ``localhost``."""
    from polyfetch import _slots

    owner, name = (_slots.AsyncSlots, "take") if backend == "asyncio" else (_slots.Slots, "acquire")
    real = getattr(owner, name)

    def take(self, key, *args):
        if key == "localhost":
            raise Injected(f"injected into {name}")
        return real(self, key, *args)

    monkeypatch.setattr(owner, name, take)


def _stage_attempt(monkeypatch, backend):
    """The backend's own attempt code raises (a bug below the backend's error mapping)."""
    if backend in ("threads", "gevent"):
        from polyfetch.backends._blocking import BlockingClient

        _patch(monkeypatch, BlockingClient, "perform")
    elif backend == "greenlet":
        from polyfetch.backends.hub import Client

        _patch(monkeypatch, Client, "attempt")
    elif backend == "curl":
        from polyfetch.backends.curl import Multi

        _patch(monkeypatch, Multi, "attempt")
    else:
        from polyfetch.backends.asyncio import AsyncioBackend

        _patch(monkeypatch, AsyncioBackend, "_attempt", sync=False)


def _stage_error_mapping(monkeypatch, backend):
    """Mapping the library's exception onto the taxonomy raises (marked items hit a closed
    port, so every attempt fails and goes through the mapping)."""

    def boom(*args, **kwargs):
        raise Injected("injected into error mapping")

    if backend in ("threads", "gevent"):
        from polyfetch.backends import _blocking

        monkeypatch.setattr(_blocking, "map_error", boom)
    elif backend == "greenlet":
        from polyfetch.backends.hub import net

        monkeypatch.setattr(net, "ConnectError", boom)
    elif backend == "curl":
        from polyfetch.backends import curl

        monkeypatch.setattr(curl, "_error", boom)
    else:
        import polyfetch.backends.asyncio as aio

        monkeypatch.setattr(aio, "map_error", boom)


def _stage_processing(monkeypatch, backend):
    from polyfetch.postprocess import PostProcessor

    real = PostProcessor.submit

    def submit(self, result):
        if _marked(result.url):
            raise Injected("injected into post-processing")
        return real(self, result)

    monkeypatch.setattr(PostProcessor, "submit", submit)


STAGES = {
    "planner": _stage_planner,
    "url": _stage_url,
    "record": _stage_record,
    "slots": _stage_slots,
    "attempt": _stage_attempt,
    "error-mapping": _stage_error_mapping,
    "processing": _stage_processing,
}


@pytest.mark.parametrize("stage", STAGES)
def test_a_fault_at_any_stage_is_that_items_record(servers, harness, monkeypatch, stage):
    from tests.conftest import closed_port

    backend = "asyncio" if harness.name == ASYNC else harness.name
    good = [f"{servers.http}/bytes/10?i={i}" for i in range(6)]
    if stage == "error-mapping":
        bad = [f"http://127.0.0.1:{closed_port()}/{MARK}?i={i}" for i in range(3)]
    elif stage == "slots":
        bad = [servers.alias(f"/bytes/10?{MARK}={i}") for i in range(3)]
    else:
        bad = [f"{servers.http}/bytes/10?{MARK}={i}" for i in range(3)]
    items = [good[0], bad[0], good[1], good[2], bad[1], good[3], bad[2], good[4], good[5]]
    options = {"concurrency": 4, "per_host": 2, "retries": 1, "backoff": 0.01, "timeout": 20}
    if stage == "processing":
        options.update(process="sha256", executor="thread")
    STAGES[stage](monkeypatch, backend)
    with harness.open(**options) as session:
        results = list(session.map(items))
        monkeypatch.undo()
        assert session.fetch(good[0]).status == 200  # the fetcher still works
    assert sorted(r.index for r in results) == list(range(len(items))), "one record per item"
    for r in results:
        if MARK in r.url:
            failure = r.process_error if stage == "processing" else r.error
            assert failure is not None, (stage, r)
            assert "Injected" in failure.message and "injected into" in failure.message
            if stage != "processing":
                assert type(r.error) is FetchError and r.status is None
        else:
            assert r.error is None and r.status == 200, (stage, r)


class _Hostile:
    """An input item whose every method raises."""

    def __repr__(self) -> str:
        raise Injected("repr")

    def __str__(self) -> str:
        raise Injected("str")

    def __eq__(self, other: object) -> bool:
        raise Injected("eq")

    __hash__ = None  # type: ignore[assignment]


class _HostileStr(str):
    """A string whose methods raise: it passes isinstance(str) and fails later."""

    def strip(self, chars: str | None = None) -> str:
        raise Injected("strip")


def test_hostile_items_get_their_record(servers, harness):
    items = [_Hostile(), _HostileStr(f"{servers.http}/bytes/1"), f"{servers.http}/bytes/2"]
    with harness.open(concurrency=2) as session:
        results = sorted(session.map(items), key=lambda r: r.index)
    assert [r.index for r in results] == [0, 1, 2]
    assert results[0].url == "<_Hostile object>" and results[0].error is not None
    assert results[1].error is not None and results[1].status is None
    assert results[2].ok and results[2].size == 2
