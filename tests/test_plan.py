"""The sans-IO planner with a fake clock: retries, backoff, Retry-After, redirects, deadlines."""

from __future__ import annotations

import random

import pytest

from polyfetch._plan import Done, Plan, Response, Send, Wait, retry_after
from polyfetch.errors import (
    ConnectError,
    InvalidURL,
    ProtocolError,
    ReadTimeout,
    TooManyRedirects,
    TotalTimeout,
    UnsupportedScheme,
)
from polyfetch.settings import Settings


def plan(url: object = "http://a.test/x", now: float = 100.0, **options) -> Plan:
    return Plan(
        item=url, index=7, settings=Settings.build(**options), started=now, rng=random.Random(1)
    )


def resp(status: int, **headers: str) -> Response:
    return Response(
        status=status,
        headers={k.replace("_", "-"): v for k, v in headers.items()},
        body=b"",
        size=0,
    )


def test_first_action_sends_with_timeouts_capped_by_the_deadline():
    p = plan(timeout=5, connect_timeout=10, read_timeout=2)
    send = p.advance(None, 100.0)
    assert isinstance(send, Send)
    assert send.target.url == "http://a.test/x" and send.method == "GET"
    assert send.connect_timeout == 5 and send.read_timeout == 2 and send.deadline == 105.0
    assert ("User-Agent", Settings().user_agent) in send.headers


def test_success_is_done_with_everything_known():
    p = plan()
    p.advance(None, 100.0)
    done = p.advance(resp(200, content_type="text/plain"), 100.25)
    assert isinstance(done, Done)
    r = done.result
    assert (r.status, r.attempts, r.index, r.elapsed, r.final_url) == (
        200,
        1,
        7,
        0.25,
        "http://a.test/x",
    )


def test_invalid_item_is_done_at_once():
    done = plan(url=None).advance(None, 100.0)
    assert isinstance(done, Done) and isinstance(done.result.error, InvalidURL)
    assert done.result.attempts == 0 and done.result.url == "None"


def test_a_records_error_keeps_no_traceback_nor_its_causes():
    # A traceback keeps the stack it was raised on, frames and locals; since 3.12 a finished
    # coroutine's frames also reach the event loop's through f_back, and results driven out
    # of a loop one step at a time then kept each other alive (1.1 GiB over 200,000 items).
    for url in ("nope", "http://[bad/"):  # raised by the URL check; the second from a ValueError
        error = plan(url=url).advance(None, 100.0).result.error
        assert isinstance(error, InvalidURL) and error.__traceback__ is None, url
        context = error.__context__
        assert context is None or context.__traceback__ is None, url
    p = plan(retries=0)
    p.advance(None, 100.0)
    try:  # a backend's error, raised from another and caught on its way to the planner
        try:
            raise OSError("timed out")
        except OSError as cause:
            raise ReadTimeout("no byte in 1 s") from cause
    except ReadTimeout as exc:
        raised = exc
    assert raised.__traceback__ is not None and raised.__cause__.__traceback__ is not None
    error = p.advance(raised, 100.0).result.error
    assert error is raised and error.__traceback__ is None
    assert isinstance(error.__cause__, OSError) and error.__cause__.__traceback__ is None


def test_retryable_errors_back_off_exponentially_with_jitter():
    p = plan(retries=3, backoff=1.0, max_backoff=3.0, timeout=100)
    p.advance(None, 100.0)
    waits = []
    now = 100.0
    for _ in range(3):
        action = p.advance(ConnectError("refused"), now)
        assert isinstance(action, Wait)
        waits.append(action.seconds)
        now += action.seconds
        assert isinstance(p.advance(None, now), Send)
    assert 0.5 <= waits[0] <= 1.0 and 1.0 <= waits[1] <= 2.0 and 1.5 <= waits[2] <= 3.0
    final = p.advance(ConnectError("refused"), now)
    assert isinstance(final, Done) and final.result.attempts == 4
    assert isinstance(final.result.error, ConnectError)


def test_non_retryable_error_is_final():
    p = plan(retries=5)
    p.advance(None, 100.0)
    assert isinstance(p.advance(ProtocolError("bad"), 100.0), Done)


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_retry_statuses_honour_retry_after(status):
    p = plan(retries=2, backoff=0.01)
    p.advance(None, 100.0)
    action = p.advance(resp(status, retry_after="7"), 100.0)
    assert action == Wait(7.0)


def test_retry_after_http_date():
    assert retry_after("Wed, 21 Oct 2015 07:28:10 GMT", 1445412480.0) == pytest.approx(10.0)
    assert retry_after("garbage", 0.0) is None
    assert retry_after(None, 0.0) is None
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 1445412490.0) == 0.0


def test_wait_that_would_pass_the_deadline_gives_up_with_the_response():
    p = plan(retries=3, timeout=10)
    p.advance(None, 100.0)
    done = p.advance(resp(503, retry_after="60"), 101.0)
    assert isinstance(done, Done) and done.result.status == 503 and done.result.error is None


def test_no_time_left_is_total_timeout():
    p = plan(retries=3, timeout=2, backoff=0.1)
    p.advance(None, 100.0)
    assert isinstance(p.advance(ReadTimeout("slow"), 101.0), Wait)
    done = p.advance(None, 102.5)
    assert isinstance(done, Done) and isinstance(done.result.error, TotalTimeout)


def test_total_timeout_from_a_backend_is_not_retried():
    p = plan(retries=3)
    p.advance(None, 100.0)
    assert isinstance(p.advance(TotalTimeout("deadline"), 130.0), Done)


def test_redirects_follow_and_count_and_drop_private_headers_across_hosts():
    p = plan(headers={"Authorization": "x", "X-Keep": "1"})
    p.advance(None, 100.0)
    same = p.advance(resp(301, location="/y"), 100.0)
    assert isinstance(same, Send) and same.target.url == "http://a.test/y"
    assert ("Authorization", "x") in same.headers
    other = p.advance(resp(302, location="https://b.test/z"), 100.0)
    assert isinstance(other, Send) and other.target.url == "https://b.test/z"
    assert all(k != "Authorization" for k, _ in other.headers) and ("X-Keep", "1") in other.headers
    done = p.advance(resp(200), 100.0)
    assert isinstance(done, Done) and done.result.redirects == 2
    assert done.result.final_url == "https://b.test/z" and done.result.url == "http://a.test/x"


def test_redirect_limit_and_bad_locations():
    p = plan(max_redirects=1)
    p.advance(None, 100.0)
    p.advance(resp(302, location="/a"), 100.0)
    done = p.advance(resp(302, location="/b"), 100.0)
    assert isinstance(done.result.error, TooManyRedirects)
    for location, error in [
        ("file:///etc/passwd", UnsupportedScheme),
        ("http://[bad/", InvalidURL),
        ("http://x\x00y/", InvalidURL),
    ]:
        p = plan()
        p.advance(None, 100.0)
        done = p.advance(resp(302, location=location), 100.0)
        assert isinstance(done, Done) and isinstance(done.result.error, error), location


def test_redirect_without_location_is_a_result():
    p = plan()
    p.advance(None, 100.0)
    done = p.advance(resp(302), 100.0)
    assert isinstance(done, Done) and done.result.status == 302


def test_rate_limit_spaces_attempts_per_host_and_counts_retries():
    from polyfetch._pace import Pacer

    pacer = Pacer(2.0)  # one attempt per 0.5 s per host
    first, second = (
        Plan(
            item="http://a.test/",
            index=i,
            settings=Settings.build(retries=1),
            started=100.0,
            pacer=pacer,
        )
        for i in range(2)
    )
    other = Plan(item="http://b.test/", index=2, settings=Settings(), started=100.0, pacer=pacer)
    assert isinstance(first.advance(None, 100.0), Send)
    assert second.advance(None, 100.0) == Wait(0.5)
    assert isinstance(other.advance(None, 100.0), Send)  # another host is not held up
    assert isinstance(second.advance(None, 100.5), Send)  # its booked start: no second booking
    retry = first.advance(resp(503, retry_after="0"), 100.5)
    assert retry == Wait(0.0)
    assert first.advance(None, 100.5) == Wait(0.5)  # the retry waits its turn too


def test_rate_limit_beyond_the_deadline_is_total_timeout():
    from polyfetch._pace import Pacer

    pacer = Pacer(0.1)
    plans = [plan(timeout=5) for _ in range(2)]
    plans[0].pacer = plans[1].pacer = pacer
    plans[0].advance(None, 100.0)
    done = plans[1].advance(None, 100.0)
    assert isinstance(done, Done) and isinstance(done.result.error, TotalTimeout)
