"""One shard in a fresh interpreter: ``python -m polyfetch.distributed.runner BACKEND IN OUT``.

Started by `polyfetch.distributed.shard.run_shard` on a Dask worker, in a
session of its own. It patches gevent first thing when the backend is gevent
(this module and the packages above it import nothing gevent must patch),
reads the pickled `Shard` from IN, runs it with an ordinary `Fetcher` -
post-processing in the fetcher's own process pool, on this machine's cores,
the politeness state of the partition's previous shard restored first, its
items taken round robin by host (`partitions.interleave`); a
link-following crawl's shard through the crawl's own runner (`Fetcher._pages`:
the link reader composed beside the user's processor in that pool) - and
writes the pickled `ShardDone` (results, the links to follow for a crawl, and
the state for the next shard) to OUT (renamed into place, so OUT is whole or
absent). Exit status 0, or 2 when
the fetcher refuses the options.

It dies with its worker: a real OS thread (not a greenlet, under gevent)
blocks reading stdin, a pipe only the worker holds open; at EOF - the worker
exited or was killed - it SIGKILLs the runner's whole process group, the
post-processing pool included, so a killed worker leaves no orphans.
"""

from __future__ import annotations

import os
import signal
import sys


def main(argv: list[str]) -> int:
    """Run the shard in ``argv`` = [BACKEND, IN, OUT]; the exit status."""
    if len(argv) != 3:
        sys.stderr.write("usage: python -m polyfetch.distributed.runner BACKEND IN OUT\n")
        return 2
    backend, source, target = argv
    if backend == "gevent":
        from gevent import monkey

        monkey.patch_all()
    _die_with_parent()
    return _run(source, target)


def _die_with_parent() -> None:
    if "gevent.monkey" in sys.modules:
        from gevent.monkey import get_original

        start_thread = get_original("_thread", "start_new_thread")
    else:
        from _thread import start_new_thread as start_thread
    start_thread(_watch_stdin, ())


def _watch_stdin() -> None:
    try:
        while os.read(0, 4096):
            pass
    except OSError:
        pass
    os.killpg(os.getpgrp(), signal.SIGKILL)


def _run(source: str, target: str) -> int:
    import pickle
    from collections.abc import Iterator
    from dataclasses import replace
    from typing import Any

    from polyfetch import Fetcher
    from polyfetch.distributed import politeness
    from polyfetch.distributed.partitions import interleave
    from polyfetch.distributed.shard import Shard, ShardDone
    from polyfetch.errors import BackendError, ConfigError
    from polyfetch.frontier.crawler import LinkReader
    from polyfetch.result import Result

    with open(source, "rb") as f:
        shard: Shard = pickle.load(f)
    results = []
    links: list[tuple[Any, str | None]] | None = [] if shard.crawl else None
    try:
        with Fetcher(shard.backend, **shard.options) as fetcher:  # type: ignore[arg-type]
            # The politeness state lives on the fetcher's runner, made by __enter__.
            runner = fetcher._runner
            assert runner is not None
            politeness.restore(runner, shard.state)
            order = interleave(shard.items)  # every host early, not the last ones at the end
            items = [shard.items[i] for i in order]
            indexes = [shard.indexes[i] for i in order]
            if links is None:
                pages: Iterator[tuple[Result, Any, str | None]] = (
                    (r, None, None) for r in fetcher.map(items)
                )
            else:  # a crawl's shard: pages read as the crawl reads them on one machine
                reader = LinkReader(shard.follow, fetcher.settings)
                pages = fetcher._pages(reader, iter(items))
            for r, extracted, robots in pages:
                body = r.body if shard.bodies else None
                results.append(replace(r, index=indexes[r.index], body=body))
                if links is not None:
                    links.append((extracted, robots))
            state = politeness.capture(runner)
    except (ConfigError, BackendError) as exc:
        sys.stderr.write(f"{type(exc).__name__}: {exc}\n")
        return 2
    with open(target + ".part", "wb") as f:
        pickle.dump(ShardDone(results, state, links), f, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(target + ".part", target)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
