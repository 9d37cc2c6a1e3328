"""What a partition's hosts taught one shard, carried to its next shard: politeness state.

A shard runs in a fresh process with a fresh `Fetcher`, which would start
every host from nothing: fetch robots.txt again, forget its Crawl-delay, and
let the auto-throttle probe the host from one request in flight. So the shard
runner `capture`s, when its shard is done, the fetcher's robots.txt verdicts
(`polyfetch._robots`), the pacer's per-host intervals and next starts
(`polyfetch._pace`) and the auto-throttle's per-host windows
(`polyfetch._throttle`); the client keeps that blob for the partition and hands
it to the partition's next shard, whose runner `restore`s it before fetching.
Since a partition has at most one shard in flight, the state moves along one
chain and never has to be merged. Times travel as seconds left, because
monotonic clocks differ between processes and machines.

The blob is opaque to the client (pickled, zlib-compressed) and bounded by the
fetcher's own caps (`polyfetch._robots.MAX_ORIGINS` policies and so on). A
blob that cannot be read (workers with different package versions) is
ignored: the shard then fetches robots.txt again, which is slower, not wrong.
"""

from __future__ import annotations

import pickle
import sys
import time
import zlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from polyfetch._runner import Runner


def capture(runner: Runner) -> bytes | None:
    """The politeness state of ``runner``'s fetcher (None: it keeps none)."""
    now = time.monotonic()
    state: dict[str, object] = {}
    if runner.robots is not None:
        state["robots"] = runner.robots.snapshot()
    if runner.pacer is not None:
        state["pacer"] = runner.pacer.snapshot(now)
    if runner.throttle is not None:
        state["throttle"] = runner.throttle.snapshot(now)
    if not state:
        return None
    return zlib.compress(pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL), 1)


def restore(runner: Runner, blob: bytes | None) -> None:
    """Give ``runner``'s fresh fetcher the state `capture` took from the one before."""
    if blob is None:
        return
    try:
        state = pickle.loads(zlib.decompress(blob))
    except Exception as exc:  # not ours to fail the shard over: robots.txt is fetched again
        sys.stderr.write(f"polyfetch: politeness state not restored: {type(exc).__name__}\n")
        return
    now = time.monotonic()
    if runner.robots is not None and "robots" in state:
        runner.robots.restore(state["robots"])
    if runner.pacer is not None and "pacer" in state:
        runner.pacer.restore(state["pacer"], now)
    if runner.throttle is not None and "throttle" in state:
        runner.throttle.restore(state["throttle"], now)
