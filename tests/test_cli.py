"""The command line, run as a user runs it: a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request

import polyfetch
from polyfetch.cli import main
from tests.conftest import _start, _stop


def test_demo_runs_every_backend_and_prints_one_table(tmp_path):
    out = tmp_path / "demo.json"
    proc = subprocess.run(
        [sys.executable, "-m", "polyfetch", "demo", "-n", "60", "-c", "10", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        start_new_session=True,
    )
    assert proc.returncode == 0, proc.stderr
    for backend in polyfetch.available_backends():
        assert backend in proc.stdout
    runs = json.loads(out.read_text())["runs"]
    assert set(runs) == {f"demo/10/{b}" for b in polyfetch.available_backends()}
    for figures in runs.values():
        assert figures[0]["ok"] == 60 and figures[0]["errors"] == {}
        assert figures[0]["rps"] > 0 and figures[0]["cpu_s"] > 0


def test_serve_answers():
    proc, line = _start(
        [sys.executable, "-m", "polyfetch", "serve", "--port", "0"],
        "polyfetch test server listening on",
    )
    try:
        base = line.split(" on ", 1)[1].split()[0]
        with urllib.request.urlopen(f"{base}/bytes/5", timeout=10) as resp:
            assert resp.status == 200 and len(resp.read()) == 5
    finally:
        _stop(proc)


def test_usage_errors_exit_2_without_traceback(capsys):
    assert main(["demo", "--requests", "many"]) == 2
    assert main(["no-such-command"]) == 2
    lines = capsys.readouterr().err.splitlines()  # one line each, no usage block
    assert lines == [
        "polyfetch demo: error: argument -n/--requests: invalid int value: 'many' "
        "(see polyfetch demo --help)",
        "polyfetch: error: argument COMMAND: invalid choice: 'no-such-command' "
        "(choose from 'crawl', 'get', 'serve', 'demo', 'bench') (see polyfetch --help)",
    ]


def test_version(capsys):
    assert main(["--version"]) == 0
    assert polyfetch.__version__ in capsys.readouterr().out
