"""Which Lightning namespace this package builds on: ``pytorch_lightning`` or ``lightning.pytorch``.

Both distributions ship the same Trainer under two import names, and a Trainer of one namespace
rejects a ``LightningModule`` of the other. Callbacks are duck-typed, so :class:`MultigridCallback`
works under either whatever its base class; this module picks the base that is installed,
preferring ``pytorch_lightning`` when both are.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["lightning_module", "Callback", "rank_zero_info", "rank_zero_warn"]


def _first_installed(*names: str) -> ModuleType:
    errors = []
    for name in names:
        try:
            return importlib.import_module(name)
        except ImportError as err:
            errors.append(f"{name}: {err}")
    raise ImportError(
        "lightning-multigrid needs Lightning 2.x: `pip install pytorch-lightning` or `pip install lightning` "
        f"({'; '.join(errors)})"
    )


#: The Lightning package this install builds on (``pytorch_lightning`` or ``lightning.pytorch``).
lightning_module: ModuleType = _first_installed("pytorch_lightning", "lightning.pytorch")
Callback = lightning_module.Callback
rank_zero_info = lightning_module.utilities.rank_zero_info
rank_zero_warn = lightning_module.utilities.rank_zero_warn
