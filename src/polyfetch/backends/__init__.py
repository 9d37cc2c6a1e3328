"""The five backends, by name, imported only when chosen.

Availability is checked with `importlib.util.find_spec`, never by importing:
importing aiohttp or urllib3 pulls in `ssl` and `socket` before gevent can patch them.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING, Final

from polyfetch.errors import BackendError

if TYPE_CHECKING:
    from polyfetch.backends._base import Backend

#: backend name -> (module, class, the packages it needs)
REGISTRY: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "threads": ("polyfetch.backends.threads", "ThreadsBackend", ("urllib3",)),
    "gevent": ("polyfetch.backends.gevent", "GeventBackend", ("gevent", "urllib3")),
    "asyncio": ("polyfetch.backends.asyncio", "AsyncioBackend", ("aiohttp",)),
    "greenlet": ("polyfetch.backends.greenlet", "GreenletBackend", ("greenlet", "h11")),
    "curl": ("polyfetch.backends.curl", "CurlBackend", ("pycurl", "greenlet", "h11")),
}
NAMES = tuple(REGISTRY)
#: The default of `Fetcher`, ClusterFetcher and the CLI: the fastest and cheapest wherever the
#: IO model decides (docs/benchmarks.md: latency-bound from 1,000 in flight, small and large
#: bodies), with nothing to patch.
DEFAULT: Final = "greenlet"


def missing(name: str) -> list[str]:
    """The packages backend ``name`` needs that are not installed."""
    return [pkg for pkg in REGISTRY[name][2] if importlib.util.find_spec(pkg) is None]


def available() -> list[str]:
    """The backends whose packages are installed."""
    return [name for name in NAMES if not missing(name)]


def load(name: str) -> type[Backend]:
    """The backend class called ``name``; `BackendError` with an install hint if it can't be had."""
    if name not in REGISTRY:
        raise BackendError(f"unknown backend {name!r}; choose one of {', '.join(NAMES)}")
    lacking = missing(name)
    if lacking:
        hint = "'polyfetch[gevent]'" if name == "gevent" else " ".join(lacking)
        raise BackendError(f"backend {name!r} needs {', '.join(lacking)}: pip install {hint}")
    module, cls, _ = REGISTRY[name]
    return getattr(importlib.import_module(module), cls)  # type: ignore[no-any-return]
