"""The gevent backend under real monkey patching, each check in a process of its own.

Patching changes the whole interpreter, so nothing here patches the test
process: the conformance suite runs again in a subprocess started with
``python -m gevent.monkey --module pytest``, and its failures fail this test.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT
    )


@pytest.mark.timeout(600)
def test_conformance_suite_under_real_gevent_patching():
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "gevent.monkey",
            "--module",
            "pytest",
            "tests/conformance",
            "-q",
            "-p",
            "no:cacheprovider",
            "--backends",
            "gevent",
        ],
        capture_output=True,
        text=True,
        timeout=580,
        cwd=ROOT,
        start_new_session=True,
        env={**os.environ, "PYTHONWARNINGS": "error::gevent.monkey.MonkeyPatchWarning"},
    )
    summary = proc.stdout.strip().splitlines()[-1:] or [proc.stderr[-2000:]]
    print(proc.stdout[-20000:])
    assert proc.returncode == 0, f"gevent conformance run failed: {summary[0]}"
    assert " passed" in summary[0]


def test_unpatched_process_is_refused_with_instructions():
    proc = _python(
        "from polyfetch import Fetcher, BackendError\n"
        "try:\n    Fetcher('gevent').__enter__()\n"
        "except BackendError as e:\n    print('refused:', e)\n"
    )
    assert "refused: gevent has not patched this process" in proc.stdout
    assert "monkey.patch_all()" in proc.stdout


def test_late_patching_is_detected():
    proc = _python(
        "import warnings; warnings.simplefilter('ignore')\n"
        "import urllib3\n"
        "from gevent import monkey; monkey.patch_all()\n"
        "from polyfetch import Fetcher, BackendError\n"
        "try:\n    Fetcher('gevent').__enter__()\n"
        "except BackendError as e:\n    print('refused:', e)\n"
    )
    assert "was imported before gevent patched the process" in proc.stdout, proc.stderr


def test_patching_after_import_polyfetch_works():
    proc = _python(
        "import polyfetch\n"
        "from gevent import monkey; monkey.patch_all()\n"
        "with polyfetch.Fetcher('gevent') as f:\n"
        "    print('ok', f.fetch('not a url').error.kind)\n"
    )
    assert "ok InvalidURL" in proc.stdout, proc.stderr


def test_cli_patches_before_importing_anything(tmp_path):
    urls = tmp_path / "urls.txt"
    urls.write_text("http://127.0.0.1:9/a\nhttp://127.0.0.1:9/b\n")  # port 9: refused
    out = tmp_path / "out.jsonl"
    cmd = [sys.executable, "-m", "polyfetch", "crawl", str(urls), "--backend", "gevent"]
    proc = subprocess.run(
        [*cmd, "-q", "--retries", "0", "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    assert out.read_text().count('"error": "ConnectError"') == 2, out.read_text()
