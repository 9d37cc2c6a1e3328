"""The greenlet hub's worker reuse: a task's greenlet runs the next task, and nothing of a
finished task (a kill, a wake-up) reaches the task that follows it in the same worker."""

from __future__ import annotations

import time
import weakref

from greenlet import getcurrent

from polyfetch.backends.hub import Hub, Waiter


def _run(hub: Hub, until: list[object], n: int) -> None:
    """Run the hub, a turn at a time, until ``until`` holds ``n`` entries (at most 5 s)."""
    deadline = time.monotonic() + 5
    while len(until) < n:
        assert time.monotonic() < deadline, f"only {until} after 5 s"
        waiter = Waiter(getcurrent())
        hub.wake(waiter)  # a turn of the hub per loop: tasks run, then we look again
        hub.block(waiter)


def test_one_worker_runs_tasks_one_after_another() -> None:
    hub = Hub()
    seen: list[object] = []
    try:
        hub.spawn(lambda: seen.append(getcurrent()))
        _run(hub, seen, 1)
        hub.spawn(lambda: seen.append(getcurrent()))
        _run(hub, seen, 2)
        assert seen[0] is seen[1]  # the same greenlet, not a new one per task
        assert hub.idle == [seen[0]]
        assert not hub.tasks
    finally:
        hub.close()
    assert hub.idle == []
    assert seen[0].dead  # type: ignore[attr-defined]  # close ends the idle workers


class _Owner:
    """What a task's ``on_exit`` belongs to, e.g. a fetcher's group and all it holds."""

    def __init__(self, log: list[object]) -> None:
        self.log = log

    def exited(self, task: object) -> None:
        self.log.append(task)


def test_a_parked_worker_keeps_nothing_of_its_tasks_alive() -> None:
    hub = Hub()
    ended: list[object] = []
    try:
        refs = []
        for _ in range(2):  # the first on a new worker, the second on the same worker, reused
            owner = _Owner(ended)
            refs.append(weakref.ref(owner))
            hub.spawn(lambda: None, on_exit=owner.exited)
            _run(hub, ended, 1)
            del owner
            ended.clear()
            assert len(hub.idle) == 1
            assert refs[-1]() is None  # no cycle to wait for: freed as soon as it ended
        assert all(ref() is None for ref in refs)
    finally:
        hub.close()


def test_a_kill_queued_for_a_finished_task_spares_the_next_one() -> None:
    hub = Hub()
    events: list[object] = []
    parked: list[Waiter] = []

    def first() -> None:
        waiter = Waiter(getcurrent())
        parked.append(waiter)
        hub.park(waiter)
        events.append(("first", getcurrent()))

    def second() -> None:
        hub.sleep(0.01)  # parked when the stale kill comes up
        events.append(("second", getcurrent()))

    def trigger() -> None:
        # In this order, in one hub turn: `first` is woken and ends, `second` starts in the
        # worker `first` left, then the kill meant for `first` comes up.
        hub.wake(parked[0])
        hub.spawn(second)
        hub.kill(task)
        events.append("trigger")

    try:
        task = hub.spawn(first)
        hub.spawn(lambda: None)  # lets `first` park before the trigger runs
        _run(hub, parked, 1)
        hub.spawn(trigger)
        _run(hub, events, 3)
        names = [e if isinstance(e, str) else e[0] for e in events]
        assert names == ["trigger", "first", "second"]
        assert events[1][1] is events[2][1]  # type: ignore[index]  # one worker ran both
        assert task.killed and not task
    finally:
        hub.close()


def test_a_task_killed_before_it_starts_never_runs() -> None:
    hub = Hub()
    ran: list[str] = []
    exited: list[object] = []
    try:
        task = hub.spawn(lambda: ran.append("ran"), on_exit=exited.append)
        hub.kill(task)
        _run(hub, exited, 1)
        assert ran == [] and exited == [task] and not hub.tasks
        assert hub.idle == []  # no worker was needed for it
    finally:
        hub.close()


def _wave(hub: Hub, n: int) -> set[object]:
    """``n`` tasks parked at once, then woken in one turn: the workers that ran them."""
    parked: list[Waiter] = []
    done: list[object] = []

    def task() -> None:
        waiter = Waiter(getcurrent())
        parked.append(waiter)
        hub.park(waiter)
        done.append(getcurrent())

    for _ in range(n):
        hub.spawn(task)
    _run(hub, parked, n)
    for waiter in parked:
        hub.wake(waiter)
    _run(hub, done, n)
    return set(done)


def test_a_wave_as_wide_as_the_concurrency_keeps_every_worker_for_the_next() -> None:
    hub = Hub(concurrency=600)
    try:
        first = _wave(hub, 600)
        assert len(first) == 600 and len(hub.idle) == 600
        assert _wave(hub, 600) == first  # the second wave made no greenlet
    finally:
        hub.close()
    assert all(worker.dead for worker in first)  # type: ignore[attr-defined]


def test_without_a_concurrency_the_hub_keeps_256_idle_workers() -> None:
    hub = Hub()
    try:
        assert len(_wave(hub, 300)) == 300 and len(hub.idle) == 256
    finally:
        hub.close()
