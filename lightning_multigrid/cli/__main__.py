"""``python -m lightning_multigrid.cli``: the ``lightning-multigrid`` command."""

import sys

from lightning_multigrid.cli.commands import main

sys.exit(main())
