"""``python -m polyfetch.testing BACKEND [CHECK ...]``: `check_backend` from the shell.

BACKEND is a registered backend's name, ``asyncio-async`` or ``module:Class``.
Exit status 0 when no check failed, 1 otherwise, 2 for usage errors.
"""

from __future__ import annotations

import sys

from polyfetch.errors import BackendError
from polyfetch.testing.runner import BackendCheckFailed, check_backend


def main(argv: list[str]) -> int:
    """Run the checks; the report goes to stdout, one line per check to stderr."""
    if not argv or argv[0].startswith("-"):
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        return 2
    try:
        report = check_backend(argv[0], only=argv[1:] or None)
    except BackendCheckFailed as exc:
        print(exc.report)
        return 1
    except (ValueError, ImportError, BackendError) as exc:
        print(f"polyfetch.testing: {exc}", file=sys.stderr)
        return 2
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
