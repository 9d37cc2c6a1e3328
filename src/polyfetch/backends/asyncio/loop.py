"""The private event loop behind the synchronous `Fetcher`: made, run in its thread, closed."""

from __future__ import annotations

import asyncio


def new_loop(want_uvloop: bool) -> asyncio.AbstractEventLoop:
    """A new loop: uvloop's when installed and wanted."""
    if want_uvloop:
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def run_loop(loop: asyncio.AbstractEventLoop) -> None:
    """The loop thread's body: run until stopped, then shut down async generators and
    the default executor (aiohttp resolves names there) and close."""
    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
    finally:
        try:
            loop.run_until_complete(loop.shutdown_asyncgens())
            # aiohttp's resolver runs getaddrinfo in the default executor: join its threads too
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            asyncio.set_event_loop(None)
            loop.close()
