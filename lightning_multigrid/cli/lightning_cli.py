"""LightningCLI over :class:`VideoClassifier` + :class:`VideoDataModule`.

``lightning-multigrid fit --config examples/configs/synthetic_demo.yaml`` trains from a recipe;
``MultigridCallback`` is configured under ``trainer.callbacks`` like any other callback::

    trainer:
      max_epochs: 239            # the BASELINE epochs; the callback derives the multigrid ones
      callbacks:
        - class_path: lightning_multigrid.MultigridCallback
          init_args: {steps: [0, 94, 154, 196]}
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence

from lightning_multigrid.data import VideoDataModule
from lightning_multigrid.models import VideoClassifier
from lightning_multigrid.namespace import lightning_module

# The default namespace's LightningCLI (LIGHTNING_MULTIGRID_NAMESPACE chooses it, like the classes).
LightningCLI = importlib.import_module(f"{lightning_module.__name__}.cli").LightningCLI

__all__ = ["MultigridLightningCLI", "run_cli"]


class MultigridLightningCLI(LightningCLI):  # type: ignore[misc,valid-type]
    """LightningCLI over this package's model and data classes (subclasses allowed).

    ``model.num_classes`` is the single place a recipe names the class count; it is linked into
    ``data.num_classes`` (multi-hot targets need it, and the two must agree in the hparams).
    """

    def add_arguments_to_parser(self, parser) -> None:  # type: ignore[no-untyped-def]
        parser.link_arguments("model.num_classes", "data.num_classes")


def run_cli(args: Sequence[str] | None = None) -> MultigridLightningCLI:
    """Run ``fit|validate|test|predict`` (``args`` as after the program name)."""
    return MultigridLightningCLI(
        VideoClassifier,
        VideoDataModule,
        args=list(args) if args is not None else None,
        save_config_kwargs={"overwrite": True},
        parser_kwargs={"prog": "lightning-multigrid"},
    )
