"""The argument parser of the ``lightning-multigrid`` subcommands: a bad argument is one line.

Stdlib only, so that :mod:`lightning_multigrid.cli.commands` and the data package's commands (see
:mod:`lightning_multigrid.cli.make_synthetic`) share it without importing each other.
"""

from __future__ import annotations

import argparse
from typing import Any, NoReturn

__all__ = ["OneLineErrorParser"]


class OneLineErrorParser(argparse.ArgumentParser):
    """Bad arguments give one line on stderr and exit code 2: no usage dump, no traceback.

    :meth:`error` prints :meth:`error_line` and raises ``SystemExit(2)``; a command that returns
    its exit code instead catches that ``SystemExit`` (``--help`` raises one with code 0).

    Args:
        see_help: end every error line with `` (see --help)``.
        *args, **kwargs: :class:`argparse.ArgumentParser`'s.
    """

    def __init__(self, *args: Any, see_help: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.see_help = see_help

    def error_line(self, message: str) -> str:
        """``"<prog>: error: <message>"`` and a newline: the one line an error prints."""
        return f"{self.prog}: error: {message}{' (see --help)' if self.see_help else ''}\n"

    def error(self, message: str) -> NoReturn:
        self.exit(2, self.error_line(message))
