"""The per-host queues, the auto-throttle's algorithm, robots.txt verdicts and the pacer's
per-host intervals, driven directly (no IO; time passed in)."""

from __future__ import annotations

import pytest

from polyfetch import Fetcher
from polyfetch._pace import Pacer
from polyfetch._plan import Response
from polyfetch._robots import UNREACHABLE_TTL, Robots, product_token
from polyfetch._schedule import NO_HOST, HostQueues, host_of
from polyfetch._throttle import MAX_GAP, Throttle
from polyfetch._url import parse
from polyfetch.errors import ConfigError, ReadTimeout, RobotsDisallowed, TooManyRedirects
from polyfetch.result import Result


def test_host_of() -> None:
    assert host_of("http://a.example/x") == "a.example"
    assert host_of("HTTP://A.example:80/x") == "a.example"
    assert host_of("not a url") == NO_HOST
    assert host_of(42) == NO_HOST


class _HostileURL:
    @property
    def url(self) -> str:
        raise RuntimeError("no url for you")


def test_a_hostile_item_has_no_host_and_still_gets_its_record() -> None:
    assert host_of(_HostileURL()) == NO_HOST
    with Fetcher("threads", concurrency=4, per_host=1) as f:
        (r,) = list(f.map([_HostileURL()]))
    assert r.error is not None and r.index == 0


def _drain(q: HostQueues) -> list[int]:
    started = []
    while (nxt := q.next()) is not None:
        started.append(nxt[1])
    return started


def test_host_sorted_input_starts_every_host_and_takes_turns() -> None:
    q = HostQueues(window=4, per_host=1, lookahead=100)
    items = [f"http://{h}/{i}" for h in "abc" for i in range(3)]  # a a a b b b c c c
    started = [i for i, url in enumerate(items) if q.add(url, i)]
    assert started == [0, 3, 6]  # one per host, in input order
    assert _drain(q) == []  # every host is at its limit
    for index in (0, 3, 6):
        q.done(index)
    assert _drain(q) == [1, 4, 7]  # hosts take turns
    assert q.running == 3 and q.queued == 3


def test_window_and_look_ahead_bound_what_is_started_and_read() -> None:
    q = HostQueues(window=2, per_host=1, lookahead=2)
    assert q.add("http://a/1", 0) and q.add("http://b/1", 1)
    assert not q.wants_input()  # the window is full: reading stops (input stays lazy)
    q.done(0)
    assert q.wants_input()
    assert not q.add("http://b/2", 2)  # b is at its limit: it waits, read ahead
    assert q.wants_input()
    assert not q.add("http://b/3", 3)
    assert not q.wants_input()  # the look-ahead is full
    assert q.blocked_on() == "b"


def test_items_without_a_host_are_never_held() -> None:
    q = HostQueues(window=3, per_host=1, lookahead=10)
    assert q.add("http://a/1", 0)
    assert not q.add("http://a/2", 1)
    assert q.add("garbage", 2) and q.add(None, 3)
    assert q.blocked_on() is None


def test_blocked_on_names_the_host_that_fills_the_look_ahead() -> None:
    q = HostQueues(window=10, per_host=1, lookahead=3)
    for i in range(4):
        q.add(f"http://slow.example/{i}", i)
    assert q.blocked_on() == "slow.example"


def test_lookahead_is_validated() -> None:
    with pytest.raises(ConfigError, match="lookahead"):
        Fetcher(lookahead=0)


def _ok(status: int = 200) -> Response:
    return Response(status=status, headers={}, body=b"", size=0)


def test_throttle_slow_starts_then_halves_on_pushback_and_recovers() -> None:
    pacer = Pacer(None)
    t = Throttle(per_host=8, pacer=pacer)
    assert t.limit("h") == 1  # a host not seen yet starts at 1
    now = 0.0
    for _ in range(7):
        now += 0.1
        t.observe("h", _ok(), 0.1, now)
    assert t.limit("h") == 8  # slow start: +1 per healthy answer, up to per_host
    now += 0.1
    t.observe("h", _ok(429), 0.1, now)
    assert t.limit("h") == 4
    assert pacer.gap("h") >= 0.25  # pushback spaces the starts too
    t.observe("h", _ok(503), 0.1, now + 0.001)
    assert t.limit("h") == 4, "one halving per round trip"
    for _ in range(200):
        now += 0.1
        t.observe("h", _ok(), 0.1, now)
    assert t.limit("h") == 8  # recovered, additively
    assert pacer.gap("h") == 0.0  # the pushback interval decayed away


def test_throttle_backs_off_when_latency_climbs_and_on_timeouts() -> None:
    t = Throttle(per_host=16, pacer=Pacer(None))
    now = 0.0
    for _ in range(20):
        now += 0.05
        t.observe("h", _ok(), 0.05, now)
    assert t.limit("h") == 16
    for _ in range(3):
        now += 1.0
        t.observe("h", _ok(), 1.0, now)  # 20x slower answers
    assert t.limit("h") < 16
    before = t.limit("h")
    now += 5
    t.observe("h", ReadTimeout("slow"), 5.0, now)
    assert t.limit("h") <= max(1, before // 2)


def test_throttle_pushback_gap_is_capped() -> None:
    pacer = Pacer(None)
    t = Throttle(per_host=4, pacer=pacer)
    for i in range(40):
        t.observe("h", _ok(503), 0.1, float(i))
    assert pacer.gap("h") == MAX_GAP
    assert t.limit("h") == 1


def test_pacer_floor_from_robots_and_rate() -> None:
    pacer = Pacer(10.0)  # 0.1 s for everyone
    pacer.ask("h", 2.0, now=0.0)
    assert pacer.gap("h") == 2.0 and pacer.gap("other") == 0.1
    pacer.throttle("h", 0.5, now=0.0)
    assert pacer.gap("h") == 2.0  # the stricter one holds
    pacer.throttle("h", 0.0, now=0.0)
    assert pacer.gap("h") == 2.0


def _result(status: int | None = 200, body: bytes = b"", error: object = None) -> Result:
    return Result(url="u", status=status, body=body, error=error)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("result", "allowed"),
    [
        (_result(404), True),  # unavailable: allow all
        (_result(401), True),
        (_result(None, error=TooManyRedirects("6 redirects")), True),
        (_result(429), False),  # unreachable for now
        (_result(500), False),
        (_result(None, error=ReadTimeout("x")), False),
        (_result(200, b"User-agent: *\nDisallow: /\n"), False),
        (_result(200, b"User-agent: other\nDisallow: /\n"), True),
    ],
)
def test_robots_status_rules(result: Result, allowed: bool) -> None:
    clock = [0.0]
    robots = Robots("polyfetch/1.0 (+x)", 30.0, lambda: None, now=lambda: clock[0])
    target = parse("http://h.example/page")
    policy = robots.store(target, result)
    verdict = policy.verdict(target, robots.agent)
    assert (verdict is None) is allowed, verdict
    if not allowed and result.status != 200:
        assert isinstance(verdict, RobotsDisallowed)
        clock[0] += UNREACHABLE_TTL + 1
        assert robots.cached(target) is None  # asked again after a while


def test_robots_crawl_delay_is_capped_and_product_token() -> None:
    assert product_token("polyfetch/1.2 (+https://x)") == "polyfetch"
    assert product_token("MyBot") == "MyBot"
    robots = Robots("polyfetch/1", 5.0, lambda: None)
    target = parse("http://h.example/")
    policy = robots.store(target, _result(200, b"User-agent: *\nCrawl-delay: 60\n"))
    assert policy.crawl_delay == 5.0
