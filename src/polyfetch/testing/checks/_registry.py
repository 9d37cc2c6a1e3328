"""The registry of checks, in the order `check_backend` runs them."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from polyfetch.result import Result
from polyfetch.testing.harness import Harness
from polyfetch.testing.servers import Servers

#: a check: raises AssertionError (or `SkipCheck`) for the harness under test
Check = Callable[[Harness, Servers], None]
F = TypeVar("F", bound=Check)

#: every check by name, in the order they are defined
CHECKS: dict[str, Check] = {}


def check(fn: F) -> F:
    """Register ``fn`` as a check (its name must start with ``check_``)."""
    assert fn.__name__.startswith("check_"), fn.__name__
    CHECKS[fn.__name__] = fn
    return fn


def shown(r: Result) -> str:
    """A result in one line, for assertion messages."""
    error = f"{r.error.kind}: {r.error.message}" if r.error is not None else None
    return (
        f"<{r.url!r}: status={r.status} error={error} size={r.size} "
        f"attempts={r.attempts} redirects={r.redirects} elapsed={r.elapsed:.2f}s>"
    )
