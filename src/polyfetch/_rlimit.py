"""The descriptor limit: every connection is a file descriptor, so raise it before fetching."""

from __future__ import annotations

import contextlib


def raise_nofile_limit() -> None:
    """Soft RLIMIT_NOFILE up to the hard limit (aiohttp#4067, "too many open files")."""
    try:
        import resource
    except ImportError:  # not on Windows
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
    if soft != resource.RLIM_INFINITY and soft < want:
        # on failure keep the soft limit: the connection pools still bound our sockets
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
