"""The ``mribench`` command line: a thin layer over the library (parsing, printing, exit codes).

:func:`main` answers ``--version`` without importing the command modules (they pull in typer, rich
and, lazily, torch), so that ``mribench --version`` returns at once.
"""

from __future__ import annotations

import sys


def main() -> None:
    """Entry point of the ``mribench`` console script."""
    if sys.argv[1:] == ["--version"]:
        from mribench._version import __version__

        print(f"mribench {__version__}")
        return
    from mribench.cli.app import main as app_main

    app_main()


__all__ = ["main"]
