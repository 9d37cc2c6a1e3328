"""``python -m polyfetch`` is the ``polyfetch`` command."""

from polyfetch.cli import run

run()
