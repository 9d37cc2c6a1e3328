"""`import polyfetch` must not import what gevent has to patch first (a subprocess checks)."""

from __future__ import annotations

import json
import subprocess
import sys

FORBIDDEN = [
    "socket",
    "ssl",
    "asyncio",
    "multiprocessing",
    "concurrent.futures.process",
    "gevent",
    "aiohttp",
    "urllib3",
    "greenlet",
    "pycurl",
    "selectors",
    "select",
]


def test_import_polyfetch_is_light():
    code = (
        "import sys, json, polyfetch\n"
        "import polyfetch.cli\n"
        f"print(json.dumps([m for m in {FORBIDDEN!r} if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_choosing_a_backend_imports_only_that_backend():
    code = (
        "import sys, json\nfrom polyfetch import Fetcher\n"
        "with Fetcher('threads') as f: pass\n"
        "mods = ['gevent', 'aiohttp', 'greenlet', 'h11', 'pycurl']\n"
        "print(json.dumps([m for m in mods if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []
