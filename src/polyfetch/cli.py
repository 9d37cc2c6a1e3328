"""The ``polyfetch`` command: ``crawl``, ``serve``, ``demo`` and ``bench``.

`main()` never calls `sys.exit` and takes its streams as arguments, so tests
drive it without a terminal. When ``--backend gevent`` is on the command line,
gevent patches the process before anything else is imported: that is why this
module imports only argparse and the package's light modules at the top, and
the crawl's modules (and rich) only once a crawl starts.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import IO, Any, NoReturn, TextIO

from polyfetch._version import __version__
from polyfetch.backends import NAMES


def _patch_gevent_if_asked(argv: Sequence[str]) -> None:
    if any(a == "--cluster" or a.startswith("--cluster=") for a in argv):
        return  # gevent runs in the shards' own processes; the Dask client stays unpatched
    for i, arg in enumerate(argv):
        if arg == "--backend=gevent" or (arg == "--backend" and argv[i + 1 : i + 2] == ["gevent"]):
            import importlib.util

            if importlib.util.find_spec("gevent") is None:
                return  # the fetcher refuses the backend with an install hint: one line, exit 2
            from gevent import monkey

            monkey.patch_all()
            return


class UsageExit(Exception):
    """argparse wanted to exit: ``status``, and ``message`` (one line, or "") for stderr."""

    def __init__(self, status: int, message: str = "") -> None:
        super().__init__(status, message)
        self.status, self.message = status, message


class Parser(argparse.ArgumentParser):
    """An argparse parser that raises `UsageExit` instead of exiting, and whose usage
    errors are one line (the error and a ``--help`` hint) instead of the usage block."""

    def error(self, message: str) -> NoReturn:
        """Raise a one-line usage error that names this (sub)command."""
        # Flattened: an argument echoed back (unrecognized ones are not quoted) may hold a
        # line break.
        one_line = " ".join(message.splitlines())
        raise UsageExit(2, f"{self.prog}: error: {one_line} (see {self.prog} --help)\n")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        """Raise instead of exiting (after --help and --version)."""
        raise UsageExit(status, message or "")

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        """Parse; refuse ``--option=--``, which Python 3.11's argparse stores as ``[]``
        without calling the option's type (a list where a number belongs)."""
        parsed, extras = super().parse_known_args(args, namespace)
        for action in self._actions:
            if not action.option_strings or action.nargs is not None:
                continue
            value = getattr(parsed, action.dest, None)
            if isinstance(value, list) and (value == [] or [] in value):  # [] in: -H=-- appended
                self.error(f"argument {'/'.join(action.option_strings)}: expected one argument")
        return parsed, extras


class SubcommandParser(Parser):
    """A subcommand's parser: arguments it does not know are its error, not the top
    level's, so the message names the subcommand (``polyfetch crawl: error: ...``)."""

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        """Parse, failing on anything left over (argparse would pass it to the top level)."""
        parsed, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed, extras


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    parser = Parser(
        prog="polyfetch",
        description="Fetch many URLs fast on threads, gevent, asyncio or a greenlet hub.",
    )
    parser.add_argument("--version", action="version", version=f"polyfetch {__version__}")
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=SubcommandParser
    )

    from polyfetch.crawl import options as crawl_options  # argparse only: safe before the patch

    crawl = sub.add_parser(
        "crawl",
        help="fetch a list of URLs (file or stdin) into JSON Lines or CSV records",
        description=crawl_options.DESCRIPTION,
        epilog=crawl_options.EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        # No abbreviations: `--backend gevent` must be spelled out for the early patch to see it.
        allow_abbrev=False,
    )
    crawl_options.add_arguments(crawl)

    get = sub.add_parser(
        "get",
        help="fetch the URLs given, like curl: records, or the bodies with --body / -O FILE",
        description=crawl_options.GET_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    crawl_options.add_get_arguments(get)

    serve = sub.add_parser(
        "serve",
        help="run the built-in test server (127.0.0.1 by default)",
        description="The built-in test server (aiohttp): /bytes/N, /delay/MS, /status/CODE, "
        "/redirect/N, /flaky/KEY, /drip, /gzip/N, /html/SIZE... (README.md lists them all).",
    )
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: %(default)s)"
    )
    serve.add_argument(
        "--port", type=int, default=8000, help="HTTP port; 0 picks a free one (default: 8000)"
    )
    serve.add_argument(
        "--https-port",
        type=int,
        default=None,
        help="also serve HTTPS on this port (needs --certfile and --keyfile; default: no HTTPS)",
    )
    serve.add_argument("--certfile", metavar="PEM", help="the HTTPS certificate (chain)")
    serve.add_argument("--keyfile", metavar="PEM", help="the HTTPS certificate's private key")

    demo = sub.add_parser(
        "demo",
        help="start the built-in server and fetch a generated URL list with each backend",
        description="Starts the built-in test server, fetches the same generated URL list "
        "with every backend (each in a fresh process) and prints one comparison table. "
        "Needs no network and no arguments.",
    )
    demo.add_argument("-n", "--requests", type=int, default=2000, help="URLs per backend")
    demo.add_argument("-c", "--concurrency", type=int, default=100)
    _workload_arguments(demo)
    demo.add_argument("--backends", default=",".join(NAMES), help="comma-separated")
    demo.add_argument(
        "--executors",
        default="",
        help="with --process: comma-separated executors to compare (inline,thread,process); "
        "the table then shows each backend with each, and process's speed-up over inline",
    )
    demo.add_argument("--repeat", type=int, default=1, help="runs per backend (median shown)")
    demo.add_argument("--json", dest="json_out", help="also write the raw figures here")
    demo.add_argument("--wide", action="store_true", help="print every column, not the compact set")

    bench = sub.add_parser(
        "bench",
        help="measure when each concurrency model wins: scenarios x backends, report and plots",
        description="Starts the built-in test server and runs every scenario on every backend "
        "(and the raw libraries), each run in a fresh process, in interleaved rounds. Writes "
        "results.json, report.md (with the winners, computed from the data) and PNG plots.",
    )
    from polyfetch.bench import options as bench_options  # argparse only

    bench_options.add_arguments(bench)

    return parser


def _workload_arguments(parser: argparse.ArgumentParser) -> None:
    """What each measured request fetches, and what processes it."""
    parser.add_argument("--size", type=int, default=1024, help="body size in bytes")
    parser.add_argument("--delay", type=int, default=0, help="server delay per request, ms")
    parser.add_argument(
        "--page",
        choices=("bytes", "html"),
        default="bytes",
        help="opaque bytes, or an HTML page with links (for --process html)",
    )
    parser.add_argument("--process", help="post-process each page (e.g. html, sha256, text)")
    parser.add_argument("--workers", type=int, help="processing workers (default: CPU count)")


def main(
    argv: Sequence[str] | None = None,
    *,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    stdin: IO[Any] | None = None,
) -> int:
    """Run the command line; return the exit status (2 for usage errors, 130 interrupted)."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    _patch_gevent_if_asked(args_list)
    out, err = stdout or sys.stdout, stderr or sys.stderr
    try:
        args = build_parser().parse_args(args_list)
    except UsageExit as exc:  # a usage error (one line), or the end of --help / --version
        err.write(exc.message)
        return exc.status
    if args.command in ("crawl", "get"):
        from polyfetch.crawl.run import main as crawl

        return crawl(args, stdin=stdin or sys.stdin, stdout=out, stderr=err)
    if args.command == "serve":
        from polyfetch import server

        if args.https_port is not None and not (args.certfile and args.keyfile):
            err.write("polyfetch serve: error: --https-port needs --certfile and --keyfile\n")
            return 2
        argv_server = ["--host", args.host, "--port", str(args.port)]
        if args.https_port is not None:
            argv_server += [
                "--https-port",
                str(args.https_port),
                "--certfile",
                args.certfile,
                "--keyfile",
                args.keyfile,
            ]
        return server.main(argv_server)
    if args.command == "bench":
        return bench_command_main(args, args_list, out, err)
    if args.command == "demo":
        from polyfetch import demo

        return demo.main(args, out, err)
    raise AssertionError(f"unhandled command {args.command!r}")


def bench_command_main(args: argparse.Namespace, argv: list[str], out: TextIO, err: TextIO) -> int:
    """``polyfetch bench`` (its modules import rich and matplotlib: only now)."""
    from polyfetch.bench import command

    return command.main(args, argv[1:], out, err)


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    run()
