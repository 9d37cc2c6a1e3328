"""Pool workers never run the caller's ``__main__``, however the caller was started.

Spawned processes normally re-run the parent's main module first; when the
script came from stdin there is no file to run and every worker died. Each
entry point here is a real interpreter fetching real pages from the test
server and processing them in a real pool.
"""

from __future__ import annotations

import ast
import contextlib
import inspect
import json
import os
import select
import signal
import subprocess
import sys
import textwrap
import time
from multiprocessing import popen_spawn_posix
from pathlib import Path

import pytest

from polyfetch.postprocess import _spawn
from tests.conftest import Servers

ROOT = Path(__file__).parent.parent
WAIT = 120  # seconds: the bound on every interpreter run here

# Statements only at the top level, each compound one followed by a blank line, so that the
# same text runs as a script, with -c and typed at an interactive prompt.
SCRIPT = """\
import json
from polyfetch import Fetcher
from polyfetch.errors import ConfigError
base = {base}
urls = [f"{{base}}/html/3000?i={{i}}" for i in range(6)]
with Fetcher("threads", process="html", workers=2) as fetcher:
    results = list(fetcher.map(urls))

def mine(result):
    return 1

refused = None
try:
    with Fetcher("threads", process=mine, workers=1) as fetcher:
        list(fetcher.map(urls[:1]))
except ConfigError as exc:
    refused = str(exc)

rows = [[r.error is None, str(r.process_error), "title" in (r.processed or ())] for r in results]
print("RES" + "ULT", json.dumps({{"rows": rows, "refused": refused}}))
"""


def env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "TERM": "dumb", "PYTHONSTARTUP": "", **extra}


def run(cmd: list[str], stdin: str | None = None, cwd: Path = ROOT) -> tuple[str, str]:
    """Run ``cmd`` in a session of its own; kill what is left of it afterwards."""
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        env=env(),
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(stdin, timeout=WAIT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"{cmd} did not finish in {WAIT} s:\n{out[-2000:]}\n{err[-3000:]}")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    return out, err


def run_on_a_terminal(code: str, **extra_env: str) -> str:
    """Type ``code`` at an interactive prompt on a pseudo-terminal; what the terminal showed."""
    master, slave = os.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-q"],
        cwd=ROOT,
        env=env(**extra_env),
        stdin=slave,
        stdout=slave,
        stderr=slave,
        start_new_session=True,
    )
    os.close(slave)
    shown = b""
    try:
        os.write(master, code.encode() + b"\n")
        deadline = time.monotonic() + WAIT
        while b"RESULT " not in shown or not shown.rstrip().endswith(b">>>"):
            left = deadline - time.monotonic()
            if left <= 0 or proc.poll() is not None:
                pytest.fail(f"the interactive session gave no result:\n{shown[-4000:]!r}")
            if select.select([master], [], [], min(left, 1.0))[0]:
                shown += os.read(master, 65536)
        os.write(master, b"exit()\n")
        proc.wait(30)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        os.close(master)
    return shown.decode(errors="replace")


def result_of(shown: str) -> dict[str, object]:
    line = next(line for line in shown.splitlines() if line.startswith("RESULT "))
    return json.loads(line[len("RESULT ") :])  # type: ignore[no-any-return]


@pytest.mark.parametrize("entry", ["stdin", "-c", "-i", "terminal", "basic-terminal"])
def test_every_entry_point_processes_every_item(servers: Servers, tmp_path: Path, entry: str):
    code = SCRIPT.format(base=repr(servers.http))
    if entry == "stdin":  # python - <<EOF
        out, err = run([sys.executable, "-"], stdin=code)
    elif entry == "-c":
        out, err = run([sys.executable, "-c", code])
    elif entry == "-i":  # an interactive session fed through a pipe
        out, err = run([sys.executable, "-i"], stdin=code)
    elif entry == "terminal":  # 3.13+: the new REPL, whose __main__ is _pyrepl/__main__.py
        out, err = run_on_a_terminal(code), ""
    else:  # the REPL of 3.11 and 3.12, which 3.13+ keeps behind PYTHON_BASIC_REPL
        if sys.version_info < (3, 13):
            pytest.skip("before 3.13 the terminal's REPL is the basic one: 'terminal' ran it")
        out, err = run_on_a_terminal(code, PYTHON_BASIC_REPL="1"), ""
    try:
        got = result_of(out)
    except StopIteration:
        pytest.fail(f"no result:\n{out[-2000:]}\n{err[-4000:]}")
    assert got["rows"] == [[True, "None", True]] * 6, err[-4000:]  # fetched, then parsed
    # A processor typed there exists nowhere a worker could import it from: refused, clearly.
    assert "defined interactively, with -c or in a script read from stdin" in str(got["refused"])


def test_a_script_file_is_not_run_again_in_the_workers(servers: Servers, tmp_path: Path):
    marker = tmp_path / "imports"
    script = tmp_path / "script.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import os
            from polyfetch import Fetcher

            with open({str(marker)!r}, "a") as file:  # unguarded: what spawn would re-run
                file.write(f"{{os.getpid()}}\\n")

            if __name__ == "__main__":
                urls = [f"{servers.http}/html/500?i={{i}}" for i in range(4)]
                with Fetcher("asyncio", process="sha256", workers=2) as fetcher:
                    print(sum(r.process_error is None for r in fetcher.map(urls)))
            """
        )
    )
    out, err = run([sys.executable, str(script)])
    assert out.split() == ["4"], err[-3000:]
    assert len(marker.read_text().split()) == 1  # the parent only, not each worker again


def test_processors_of_main_modules(tmp_path: Path):
    # A top-level function of a module run with -m still works (the worker runs that module
    # as __mp_main__ when it first needs it); a package's __main__ is refused up front.
    package = tmp_path / "mainpkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    body = """
        import json
        from polyfetch.errors import ConfigError
        from polyfetch.postprocess import PostProcessor
        from polyfetch.result import Result

        def where(result):
            return __name__

        if __name__ == "__main__":
            try:
                with PostProcessor(where, workers=1) as pp:
                    page = Result(url="u", status=200, body=b"")
                    print(json.dumps(pp.submit(page).result(60).processed))
            except ConfigError as exc:
                print(json.dumps("refused: " + str(exc)))
        """
    (package / "run.py").write_text(textwrap.dedent(body))
    (package / "__main__.py").write_text(textwrap.dedent(body))
    out, err = run([sys.executable, "-m", "mainpkg.run"], cwd=tmp_path)
    assert json.loads(out) == "__mp_main__", err[-3000:]
    out, err = run([sys.executable, "-m", "mainpkg"], cwd=tmp_path)
    assert "is defined in mainpkg.__main__, which worker processes cannot run" in json.loads(out)


def _tree(source: str) -> str:
    """A function's AST without annotations, as text: blind to comments and formatting."""
    node = ast.parse(textwrap.dedent(source)).body[0]
    assert isinstance(node, ast.FunctionDef)
    node.returns = None
    for arg in node.args.args:
        arg.annotation = None
    return ast.dump(node)


def test_our_launch_is_cpythons_but_for_the_preparation_data():
    # `_spawn._Popen._launch` is a copy: a Python whose own differs needs it looked at again.
    theirs = inspect.getsource(popen_spawn_posix.Popen._launch)  # type: ignore[attr-defined]
    theirs = theirs.replace("spawn.get_preparation_data(", "preparation_data(")
    theirs = theirs.replace("from . import", "from multiprocessing import")
    assert _tree(inspect.getsource(_spawn._Popen._launch)) == _tree(theirs)


def test_a_main_script_that_fails_in_the_worker_fails_each_item_clearly(tmp_path: Path):
    script = tmp_path / "picky.py"
    script.write_text(
        textwrap.dedent(
            """
            import json
            from polyfetch.postprocess import PostProcessor
            from polyfetch.result import Result

            def top(result):
                return "top"

            if __name__ != "__main__":
                raise RuntimeError("run me only as a script")

            if __name__ == "__main__":
                with PostProcessor(top, workers=1) as pp:
                    pages = [Result(url="u", index=i, status=200, body=b"") for i in range(3)]
                    errors = [pp.submit(p).result(60).process_error for p in pages]
                    print(json.dumps([[type(e).__name__, str(e)] for e in errors]))
            """
        )
    )
    out, err = run([sys.executable, str(script)])
    got = json.loads(out)
    assert [kind for kind, _ in got] == ["ProcessorFailed"] * 3, err[-3000:]
    assert f"the main script {script} failed in the worker" in got[0][1]
    assert "RuntimeError: run me only as a script" in got[0][1]
