"""The ``lightning-multigrid`` command: :mod:`.commands` (the dispatcher, ``schedule`` and
``recipes``), :mod:`.lightning_cli` (``fit``/``validate``/``test`` through LightningCLI),
:mod:`.make_synthetic`, and :mod:`.parser` (the one argument parser every command uses).
"""

from lightning_multigrid.cli.commands import main

__all__ = ["main"]
