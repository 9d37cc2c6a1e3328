"""robots.txt (RFC 9309): fetched once per origin through the fetcher itself, cached, obeyed.

The runner asks `Robots.cached` before each attempt; on a miss, one item per
origin fetches ``/robots.txt`` with the fetcher's own runner (same backend,
limits, TLS settings and pace; at most 5 redirects, `ROBOTS_MAX_BYTES`) while
the others wait on that origin's lock. What the answer means (RFC 9309 2.3.1):

* 2xx: the file, parsed by protego (wildcards, ``$``, the longest match wins,
  ``Crawl-delay``, ``Request-rate``), matched against our user agent's product
  token (``polyfetch`` for ``polyfetch/1.0 (+...)``);
* 4xx but 429 ("unavailable"), or more than 5 redirects: everything is allowed;
* 429, 5xx, and any failure to fetch ("unreachable"): everything is disallowed
  for now; the verdict is kept `UNREACHABLE_TTL` seconds, then asked again.

A verdict is kept `ROBOTS_TTL` seconds (RFC 9309: at most 24 hours). At most
`MAX_ORIGINS` origins are remembered, the least recently used forgotten first.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from polyfetch.errors import RobotsDisallowed, TooManyRedirects

if TYPE_CHECKING:
    from polyfetch._url import Target
    from polyfetch.result import Result

ROBOTS_TTL = 24 * 3600.0
UNREACHABLE_TTL = 60.0
#: RFC 9309 asks crawlers to parse at least 500 KiB.
ROBOTS_MAX_BYTES = 512 * 1024
ROBOTS_REDIRECTS = 5
MAX_ORIGINS = 10_000


def product_token(user_agent: str) -> str:
    """The product token robots.txt groups are matched against: ``polyfetch`` of
    ``polyfetch/1.0 (+https://...)``."""
    token = user_agent.strip().split("/", 1)[0].split(None, 1)
    return token[0] if token else "*"


@dataclass(frozen=True, slots=True)
class Policy:
    """What one origin's robots.txt says to us."""

    parser: Any  #: a protego.Protego, or None: allow or deny everything (``deny``)
    deny: RobotsDisallowed | None  #: the error of an origin whose robots.txt is unreachable
    crawl_delay: float | None  #: seconds between two requests asked for, if any
    expires: float  #: monotonic time after which robots.txt is fetched again

    def verdict(self, target: Target, agent: str) -> RobotsDisallowed | None:
        """None if ``target`` may be fetched, else the error for its record."""
        if self.deny is not None:
            return self.deny
        if self.parser is None or self.parser.can_fetch(target.url, agent):
            return None
        return RobotsDisallowed(f"robots.txt of {target.authority} disallows {target.url}")


class Robots:
    """The robots.txt verdicts of one fetcher, by origin (scheme and authority)."""

    def __init__(
        self,
        user_agent: str,
        max_crawl_delay: float,
        lock_factory: Callable[[], Any],
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self.agent = product_token(user_agent)
        self.max_crawl_delay = max_crawl_delay
        self._now = now
        self._policies: OrderedDict[str, Policy] = OrderedDict()
        self._guard = threading.Lock()  # the threads backend asks from many threads
        #: One lock per origin being fetched (a backend semaphore of 1), made on demand.
        self._lock_factory = lock_factory
        self._locks: dict[str, list[Any]] = {}  # origin -> [lock, users]

    @staticmethod
    def origin(target: Target) -> str:
        """What one robots.txt covers: scheme, host and port."""
        return f"{target.scheme}://{target.authority}"

    def cached(self, target: Target) -> Policy | None:
        """The fresh policy for ``target``'s origin, or None if it must be fetched."""
        key = self.origin(target)
        with self._guard:
            policy = self._policies.get(key)
            if policy is None:
                return None
            if policy.expires <= self._now():
                del self._policies[key]
                return None
            self._policies.move_to_end(key)
            return policy

    def known(self, target: Target) -> RobotsDisallowed | None:
        """The verdict on ``target`` if its origin's robots.txt is known (None: allowed, or
        not known yet: then the runner fetches it before the attempt)."""
        policy = self.cached(target)
        return None if policy is None else policy.verdict(target, self.agent)

    def lock(self, origin: str) -> Any:
        """The lock one item holds while it fetches ``origin``'s robots.txt (see `unlock`)."""
        with self._guard:
            entry = self._locks.get(origin)
            if entry is None:
                entry = self._locks[origin] = [self._lock_factory(), 0]
            entry[1] += 1
            return entry[0]

    def unlock(self, origin: str) -> Any:
        """Stop using ``origin``'s lock; it is returned so that it can still be released."""
        with self._guard:
            entry = self._locks[origin]
            entry[1] -= 1
            if not entry[1]:
                del self._locks[origin]
            return entry[0]

    def store(self, target: Target, result: Result) -> Policy:
        """Make and keep the policy that fetching robots.txt (``result``) gives."""
        now = self._now()
        error, status = result.error, result.status
        robots_url = f"{self.origin(target)}/robots.txt"
        parser = deny = None
        delay = None
        ttl = ROBOTS_TTL
        if error is None and status is not None and 200 <= status < 300:
            from protego import Protego

            text = (result.body or b"").decode("utf-8", "replace")
            parser = Protego.parse(text)
            delay = _delay(parser, self.agent)
        elif isinstance(error, TooManyRedirects) or (
            error is None and status is not None and 400 <= status < 500 and status != 429
        ):
            pass  # unavailable: allow everything
        else:
            why = f"status {status}" if error is None else f"{error.kind}: {error.message}"
            deny = RobotsDisallowed(f"{robots_url} is unreachable ({why}): disallowed for now")
            ttl = UNREACHABLE_TTL
        if delay is not None:
            delay = min(delay, self.max_crawl_delay)
        policy = Policy(parser, deny, delay, now + ttl)
        with self._guard:
            self._keep(self.origin(target), policy)
        return policy

    def _keep(self, origin: str, policy: Policy) -> None:
        self._policies[origin] = policy
        self._policies.move_to_end(origin)
        while len(self._policies) > MAX_ORIGINS:
            self._policies.popitem(last=False)

    def snapshot(self) -> list[tuple[str, Policy]]:
        """The fresh policies by origin, least recently used first, each ``expires`` made the
        seconds it has left: what `restore` needs to carry them to a fetcher in another
        process (monotonic clocks differ between processes), so robots.txt is not fetched
        again there."""
        now = self._now()
        with self._guard:
            return [
                (origin, replace(policy, expires=policy.expires - now))
                for origin, policy in self._policies.items()
                if policy.expires > now
            ]

    def restore(self, policies: Iterable[tuple[str, Policy]]) -> None:
        """Keep the policies of a `snapshot`, each for the time it had left."""
        now = self._now()
        with self._guard:
            for origin, policy in policies:
                self._keep(origin, replace(policy, expires=now + policy.expires))


def _delay(parser: Any, agent: str) -> float | None:
    """The seconds between requests asked for: the larger of Crawl-delay and Request-rate."""
    delays = []
    crawl_delay = parser.crawl_delay(agent)
    if crawl_delay is not None:
        delays.append(float(crawl_delay))
    rate = parser.request_rate(agent)
    if rate is not None and rate.requests:
        delays.append(rate.seconds / rate.requests)
    return max(delays) if delays else None
