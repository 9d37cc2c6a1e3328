"""The conformance checks, one module per concern, every check registered in `CHECKS`."""

from __future__ import annotations

from polyfetch.testing.checks import (  # noqa: F401  (importing registers the checks)
    basics,
    crawling,
    errors,
    input,
    limits,
    politeness,
    processing,
    proxies,
    redirects,
    requests,
    retries,
    scheduling,
    timeouts,
    tls,
)
from polyfetch.testing.checks._registry import CHECKS, Check, check

__all__ = ["CHECKS", "Check", "check"]
