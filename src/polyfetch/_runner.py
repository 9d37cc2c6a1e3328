"""The item runner: the whole life of one input item, written once for every backend.

Theory of operation. `Runner.run` (blocking-style backends: threads, gevent,
the greenlet hub) and `Runner.arun` (asyncio) are the same loop: make the
item's `Plan`, then until it is `Done`, sleep for each `Wait` and perform each
`Send` holding a host slot and a global slot (`polyfetch._slots`), then hand
the page to the post-processor and wait for it. A backend supplies only the
primitives the loop calls on its task group (`perform` one attempt, `sleep`,
`wait_future` without blocking peers) and how many items run at once.

Two rules live here and nowhere else:

* past the deadline is `TotalTimeout`: an attempt that ends at or after its
  deadline (or fails within a few ms of it: loops round timers) was stopped by
  it, whatever the backend saw - a socket shut down by a watchdog looks like a
  normal end of stream to ``http.client``, and a partial body is never a success;
* nothing is lost: anything an item's path raises - the planner, a slot, a
  backend, its error mapping, the post-processor, building the record, the item
  object itself - becomes that item's record with a `FetchError`. Only a
  backend's cancellation (a BaseException) ends a run without a record.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import random
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from polyfetch._body import Store
from polyfetch._pace import Pacer
from polyfetch._plan import Done, Plan, Response, Send, Wait, log, total_timeout
from polyfetch._robots import ROBOTS_MAX_BYTES, ROBOTS_REDIRECTS, Policy, Robots
from polyfetch._throttle import Throttle
from polyfetch._url import Target
from polyfetch.errors import FetchError, ProcessorFailed, SaveError, TotalTimeout, unexpected
from polyfetch.result import Result, item_url
from polyfetch.settings import Settings

if TYPE_CHECKING:
    from concurrent.futures import Future

    from polyfetch._cookies import Cookies
    from polyfetch._proxy import Proxies
    from polyfetch._slots import AsyncSlots, Slots
    from polyfetch.postprocess import PostProcessor

T = TypeVar("T")
Outcome = Response | FetchError
#: An attempt that fails this close to its deadline was stopped by it (timers round to 1 ms).
_SLACK = 0.01
_JITTER = random.Random()
#: What robots.txt said set a new pace: the attempt is planned again, not sent (see _denied).
REPLAN = TotalTimeout("replan")  # one source for every plan: seeding one per item costs a syscall


class Primitives(Protocol):
    """What a blocking-style backend's task group gives the runner."""

    def perform(self, send: Send) -> Outcome:
        """One HTTP attempt, ended by ``send.deadline``; raises only to cancel."""

    def sleep(self, seconds: float) -> None:
        """Let the others run for ``seconds``."""

    def wait_future(self, fut: Future[T]) -> T:
        """The future's result, waited for without blocking the other items."""


class AsyncPrimitives(Protocol):
    """What the asyncio backend's task groups give the runner."""

    async def perform(self, send: Send) -> Outcome:
        """One HTTP attempt, ended by ``send.deadline``; raises only to cancel."""

    async def sleep(self, seconds: float) -> None:
        """Let the others run for ``seconds``."""

    async def wait_future(self, fut: Future[T]) -> T:
        """The future's result, awaited."""


class Runner:
    """Runs the items of one fetcher; shared by all its ``map()`` and ``fetch()`` calls."""

    __slots__ = (
        "_aslots",
        "_gate",
        "_robots_runner",
        "_slots",
        "_store",
        "cookies",
        "pacer",
        "post",
        "proxies",
        "robots",
        "settings",
        "throttle",
    )

    def __init__(
        self,
        settings: Settings,
        *,
        slots: Slots | None = None,
        aslots: AsyncSlots | None = None,
        post: PostProcessor | None = None,
        lock: Callable[[], Any] | None = None,
        proxies: Proxies | None = None,
    ) -> None:
        """``lock`` makes a backend semaphore of 1 (for ``robots``: one fetch per origin);
        ``proxies`` is the fetcher's chooser (`Proxies.build`, made when the fetcher is)."""
        self.settings = settings
        self._slots = slots
        self._aslots = aslots
        self.post = post
        #: The per-host pace every plan of this fetcher shares: ``rate``, Crawl-delay, throttle.
        self.pacer: Pacer | None = None
        if settings.rate or settings.robots or settings.auto_throttle:
            self.pacer = Pacer(settings.rate)
        #: The proxy chooser every plan shares (None: no proxy anywhere, the common case).
        self.proxies = proxies
        #: The per-host auto-throttle (`polyfetch._throttle`), or None.
        self.throttle: Throttle | None = None
        if settings.auto_throttle:
            assert self.pacer is not None
            self.throttle = Throttle(settings.per_host, self.pacer)
        #: robots.txt verdicts (`polyfetch._robots`), fetched by a runner of their own.
        self.robots: Robots | None = None
        self._robots_runner: Runner | None = None
        self._gate: Callable[[Target], FetchError | None] | None = None
        self._store: Store | None = None  #: where every plan's bodies go (None: as settings say)
        if settings.robots:
            if lock is None:
                raise ValueError("robots=True needs the backend's lock factory")
            self.robots = Robots(settings.user_agent, settings.max_crawl_delay, lock)
            self._gate = self.robots.known
            robots_settings = replace(
                settings,
                method="GET",
                max_bytes=ROBOTS_MAX_BYTES,
                max_redirects=ROBOTS_REDIRECTS,
                keep_body=True,
                process=None,
                robots=False,
                auto_throttle=False,
            )
            self._robots_runner = Runner(robots_settings, slots=slots, aslots=aslots)
            self._robots_runner.pacer = self.pacer
            self._robots_runner.proxies = self.proxies  # robots.txt goes the same way
            # The backends read bodies by their own settings: robots.txt's cap and keeping
            # its body (whatever keep_body says) travel with its attempts.
            self._robots_runner._store = Store(ROBOTS_MAX_BYTES, keep=True)
        #: The cookie jar every plan of this fetcher shares (None: cookies off).
        self.cookies: Cookies | None = None
        # `is not`, not truthiness: an empty CookieJar is falsy (it has a __len__)
        if settings.cookies is not None and settings.cookies is not False:
            from polyfetch._cookies import Cookies

            self.cookies = Cookies(None if settings.cookies is True else settings.cookies)  # type: ignore[arg-type]

    def sibling(self, post: PostProcessor | Any | None) -> Runner:
        """This runner with another post-processor (anything with ``submit``) or none: the
        same slots, pace, robots.txt verdicts, throttle, cookies and proxies."""
        twin = copy.copy(self)
        twin.post = post
        return twin

    def _plan(self, item: object, index: int, started: float) -> Plan:
        """The item's `Plan`, sharing this fetcher's pace, cookies, robots gate and proxies."""
        plan = Plan(
            item,
            index,
            self.settings,
            started,
            _JITTER,
            self.pacer,
            self.cookies,
            self._gate,
            self.proxies,
        )
        if self._store is not None:
            plan.store = self._store
        return plan

    def run(self, item: object, index: int, group: Primitives) -> Result:
        """The one record of ``item``, fetched (and processed) with ``group``'s primitives."""
        started = time.monotonic()
        result: Result | None = None
        try:
            plan = self._plan(item, index, started)
            action = plan.advance(None, started)
            while not isinstance(action, Done):
                if isinstance(action, Wait):
                    group.sleep(action.seconds)
                    action = plan.advance(None, time.monotonic())
                elif self.robots is not None and (verdict := self._denied(action, group)):
                    action = plan.unsent(None if verdict is REPLAN else verdict, time.monotonic())
                else:
                    action = plan.advance(self._attempt(action, group), time.monotonic())
            result = action.result
            if plan.store is not None and plan.store.path is not None:
                result = saved(result, plan.store)
            post = self.post
            if post is None or result.error is not None:
                return result
            fut = post.submit(result)
            try:
                return _processed(group.wait_future(fut))
            finally:
                fut.cancel()  # a no-op when done; frees its place in the queue when abandoned
        except Exception as exc:
            return _failed(item, index, started, exc, result)

    def _attempt(self, send: Send, group: Primitives) -> Outcome:
        key = send.target.host_key
        slots = self._slots
        if slots is not None and not slots.acquire(key, send.deadline):
            return total_timeout(send)
        started = time.monotonic() if self.throttle is not None else 0.0
        try:
            outcome = group.perform(send)
        except Exception as exc:  # a backend's bug is this attempt's error, not the run's
            outcome = unexpected(exc)
        finally:
            if slots is not None:
                slots.release(key)
        if send.proxy is not None:
            from polyfetch._proxy import proxied

            outcome = proxied(send.proxy, outcome)
        outcome = _past_deadline(outcome, send)
        if self.throttle is not None:
            now = time.monotonic()
            self.throttle.observe(key, outcome, now - started, now)
        return outcome

    def _denied(self, send: Send, group: Primitives) -> FetchError | None:
        """Why robots.txt forbids this attempt (None: it may go), fetching it if need be;
        `REPLAN` when it was not known yet and set a Crawl-delay, which the attempt's
        booked start predates: the plan then books it again."""
        robots = self.robots
        assert robots is not None and self._robots_runner is not None
        if robots.cached(send.target) is not None:
            return None  # known: the plan asked the gate before booking this attempt
        origin = robots.origin(send.target)
        lock = robots.lock(origin)
        try:
            got = lock.acquire(send.deadline)
        except BaseException:
            robots.unlock(origin)
            raise
        if not got:
            robots.unlock(origin)
            return total_timeout(send)
        try:
            policy = robots.cached(send.target)  # fetched while this item waited?
            if policy is None:
                result = self._robots_runner.run(f"{origin}/robots.txt", -1, group)
                policy = self._learn(send, result)
        finally:
            robots.unlock(origin).release()
        verdict = policy.verdict(send.target, robots.agent)
        return REPLAN if verdict is None and policy.crawl_delay else verdict

    def _learn(self, send: Send, result: Result) -> Policy:
        """Keep what a robots.txt fetch says; its Crawl-delay becomes the host's pace."""
        assert self.robots is not None
        policy = self.robots.store(send.target, result)
        if policy.crawl_delay and self.pacer is not None:
            self.pacer.ask(send.target.host_key, policy.crawl_delay, time.monotonic())
        return policy

    async def arun(self, item: object, index: int, group: AsyncPrimitives) -> Result:
        """`run` for asyncio."""
        started = time.monotonic()
        result: Result | None = None
        try:
            plan = self._plan(item, index, started)
            action = plan.advance(None, started)
            while not isinstance(action, Done):
                if isinstance(action, Wait):
                    await group.sleep(action.seconds)
                    action = plan.advance(None, time.monotonic())
                elif self.robots is not None and (verdict := await self._adenied(action, group)):
                    action = plan.unsent(None if verdict is REPLAN else verdict, time.monotonic())
                else:
                    outcome = await self._aattempt(action, group)
                    action = plan.advance(outcome, time.monotonic())
            result = action.result
            if plan.store is not None and plan.store.path is not None:
                result = saved(result, plan.store)
            post = self.post
            if post is None or result.error is not None:
                return result
            fut = post.submit(result)
            try:
                return _processed(await group.wait_future(fut))
            finally:
                fut.cancel()
        except Exception as exc:
            return _failed(item, index, started, exc, result)

    async def _aattempt(self, send: Send, group: AsyncPrimitives) -> Outcome:
        key = send.target.host_key
        slots = self._aslots
        assert slots is not None
        if not (slots.take(key) or await slots.wait(key, send.deadline)):
            return total_timeout(send)
        started = time.monotonic() if self.throttle is not None else 0.0
        try:
            outcome = await group.perform(send)
        except Exception as exc:
            outcome = unexpected(exc)
        finally:
            slots.release(key)
        if send.proxy is not None:
            from polyfetch._proxy import proxied

            outcome = proxied(send.proxy, outcome)
        outcome = _past_deadline(outcome, send)
        if self.throttle is not None:
            now = time.monotonic()
            self.throttle.observe(key, outcome, now - started, now)
        return outcome

    async def _adenied(self, send: Send, group: AsyncPrimitives) -> FetchError | None:
        """`_denied` for asyncio."""
        robots = self.robots
        assert robots is not None and self._robots_runner is not None
        if robots.cached(send.target) is not None:
            return None
        origin = robots.origin(send.target)
        lock = robots.lock(origin)
        try:
            got = lock.take() or await lock.wait(send.deadline)
        except BaseException:
            robots.unlock(origin)
            raise
        if not got:
            robots.unlock(origin)
            return total_timeout(send)
        try:
            policy = robots.cached(send.target)  # fetched while this item waited?
            if policy is None:
                result = await self._robots_runner.arun(f"{origin}/robots.txt", -1, group)
                policy = self._learn(send, result)
        finally:
            robots.unlock(origin).give()
        verdict = policy.verdict(send.target, robots.agent)
        return REPLAN if verdict is None and policy.crawl_delay else verdict


def saved(result: Result, store: Store) -> Result:
    """A saved body's file put in place once its item is done: the final response's body
    whole at ``store.path``, or, when the item failed, no file (the partial one removed)."""
    import os

    assert store.path is not None
    part = store.part_path
    try:
        if result.error is None:
            os.replace(part, store.path)
            return result
        os.unlink(part)
    except FileNotFoundError:
        pass  # failed before any response: nothing was written
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(part)
        return replace(result, error=SaveError(f"cannot save to {store.path}: {exc}"))
    return result


def _past_deadline(outcome: Outcome, send: Send) -> Outcome:
    """The deadline rule (see the module docstring)."""
    late = time.monotonic() - send.deadline
    if (
        late >= -_SLACK
        and type(outcome) is not TotalTimeout
        and (late >= 0 or isinstance(outcome, FetchError))
    ):
        return total_timeout(send)
    return outcome


def _processed(result: Result) -> Result:
    """A processed result, its processor's failure logged."""
    if result.process_error is not None and log.isEnabledFor(logging.DEBUG):
        error = result.process_error
        log.debug(
            "item %d %s: processing failed: %s: %s",
            result.index,
            result.url,
            error.kind,
            error.message,
        )
    return result


def _failed(
    item: object, index: int, started: float, exc: Exception, fetched: Result | None
) -> Result:
    """The record of an item whose path raised: the fetch's result if it got that far (the
    processing failed), else a `FetchError` naming the exception."""
    log.debug("item %d: its path raised", index, exc_info=exc)
    try:
        if fetched is not None:
            message = f"processing could not be run: {unexpected(exc).message}"
            return replace(fetched, process_error=ProcessorFailed(message))
        return Result(
            url=item_url(item),
            index=index,
            elapsed=time.monotonic() - started,
            error=unexpected(exc),
        )
    except Exception:  # even building the record failed: the plainest record there is
        return Result(url="<item>", index=index, error=FetchError("unexpected failure"))
