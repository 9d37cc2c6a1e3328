"""The options of ``polyfetch bench``: argparse only, so building the CLI parser stays light."""

from __future__ import annotations

import argparse

from polyfetch import backends
from polyfetch.bench import peers
from polyfetch.bench.scenarios import BUILDERS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``polyfetch bench``, each help ending with its default."""
    parser.add_argument(
        "--scenarios",
        default=",".join(BUILDERS),
        help=f"comma-separated, of {', '.join(BUILDERS)} (default: all)",
    )
    parser.add_argument(
        "--backends",
        default="auto",
        help=f"comma-separated, of {', '.join(backends.NAMES)}; 'auto' = every backend "
        "whose packages are installed (default: %(default)s)",
    )
    parser.add_argument(
        "--peers",
        default="auto",
        help="comma-separated raw libraries and other clients to run beside the backends "
        f"({', '.join(peers.NEEDS)}); 'auto' = those installed, 'none' = no peers "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--repeat", type=int, help="interleaved runs per cell (default: 3; 1 with --quick)"
    )
    parser.add_argument(
        "--out", default="bench-results", help="output directory (default: %(default)s)"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small sizes, one run each: under a minute (default: off)",
    )
    parser.add_argument(
        "--wide",
        action="store_true",
        help="print every column (wall and CPU seconds, workers' RSS, efficiency, the model, "
        "the server's CPU), not the compact set; report.md always has them all (default: off)",
    )
