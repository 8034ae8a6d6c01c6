"""The one place that touches Lightning's private state, each use explained and restorable.

Lightning has no public hooks for three things multigrid needs, so this module reaches into the
fit loop, guarded by a feature test that fails with a clear message if a future Lightning moves
them:

* the train loader request (``fit_loop._data_source.dataloader``): wrapped so every train loader
  Lightning builds gets a :class:`~lightning_multigrid.sampling.sampler.MultigridBatchSampler` for the epoch
  that will actually run (Lightning fixes a loader's length when it builds it);
* the epoch that will run next (``fit_loop.epoch_progress.current.processed``): on a resume from an
  end-of-epoch checkpoint, ``trainer.current_epoch`` still names the finished epoch while the loader
  is built, so a loader built for it would train the previous stage's shapes;
* the batches already trained in a restarted epoch (``epoch_loop.batch_progress``), so a
  mid-epoch resume continues with the next batch instead of replaying the epoch's first ones;
* whether a logger writes this step's values (``trainer._logger_connector.should_update_logs``,
  which Lightning documents as valid in ``on_train_batch_start``): ``self.log`` costs ~0.2 ms a
  value, so the callback's per-batch values are logged only where they are written.

``torch.compile`` recompiles for every new input shape and falls back to eager, with a warning, after
``torch._dynamo.config.recompile_limit`` (8) shapes; a multigrid schedule has more, so
:meth:`TrainerPatch.ensure_recompile_limit` raises the limit to the schedule's shape count.

Public trainer settings that the callback changes (``max_epochs``, ``check_val_every_n_epoch``,
``reload_dataloaders_every_n_epochs``) are recorded by :class:`TrainerPatch` and restored at
teardown, as Lightning's own ``StochasticWeightAveraging`` restores what it changes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["TrainerPatch", "epoch_to_run", "batches_done_in_epoch", "logs_this_step"]


def _fit_loop(trainer: Any) -> Any:
    loop = getattr(trainer, "fit_loop", None)
    missing = [
        name
        for name, owner in (("_data_source", loop), ("epoch_progress", loop), ("epoch_loop", loop))
        if owner is None or not hasattr(owner, name)
    ]
    if missing:
        raise RuntimeError(
            "MultigridCallback supports Lightning 2.x, whose fit loop has `_data_source`, "
            f"`epoch_progress` and `epoch_loop`; this Trainer ({type(trainer).__module__}) lacks "
            f"{', '.join(missing)}. Install lightning / pytorch-lightning >=2.1,<3."
        )
    return loop


def _restored_epoch_finished(loop: Any) -> bool:
    """A checkpoint taken after the last training batch of an epoch (before its end hooks).

    Lightning then counts that epoch as done when its loop resets, which happens only after the
    train loader was built; evaluate its own restart rule now (idempotent) to build the right one.
    """
    if not loop.restarting:
        return False
    if not hasattr(loop, "update_restart_stage"):
        raise RuntimeError(
            "MultigridCallback: resuming needs the fit loop's restart stages (fit_loop.update_restart_stage) of "
            f"recent Lightning 2.x releases; this Trainer ({type(loop).__module__}) lacks them. Upgrade Lightning to resume."
        )
    loop.update_restart_stage()
    return bool(
        loop.restarted_mid_epoch
        and loop.epoch_loop.restarted_on_train_batch_end
        and loop.epoch_loop.batch_progress.is_last_batch
    )


def epoch_to_run(trainer: Any) -> int:
    """The epoch whose batches the next train loader will yield.

    ``epoch_progress.current.processed`` counts epochs whose batches all ran; Lightning passes it to
    ``set_epoch`` of the samplers, and it is right both in a fresh run and after any resume, except
    for a checkpoint taken after an epoch's last batch, which Lightning moves past on restart.
    """
    loop = _fit_loop(trainer)
    return int(loop.epoch_progress.current.processed) + int(_restored_epoch_finished(loop))


def batches_done_in_epoch(trainer: Any) -> int:
    """Batches of the epoch to run already trained (non-zero only while restarting mid-epoch)."""
    loop = _fit_loop(trainer)
    if not loop.restarting or _restored_epoch_finished(loop):
        return 0
    return int(loop.epoch_loop.batch_progress.current.processed)


def logs_this_step(trainer: Any) -> bool:
    """Whether values logged in this training batch reach the loggers (True if Lightning cannot say)."""
    flag = getattr(getattr(trainer, "_logger_connector", None), "should_update_logs", None)
    return True if flag is None else bool(flag)


class TrainerPatch:
    """Changes to trainer state that are undone by :meth:`restore` (called at teardown)."""

    def __init__(self, trainer: Any) -> None:
        self.trainer = trainer
        self._loop = _fit_loop(trainer)
        self._saved: dict[Any, Any] = {}
        self._source_patched = False

    def _remember(self, name: str, value: Any) -> None:
        self._saved.setdefault(name, value)

    def set_max_epochs(self, epochs: int) -> None:
        self._remember("max_epochs", self._loop.max_epochs)
        self._loop.max_epochs = epochs

    def set_validate_this_epoch(self, validate: bool, epoch: int) -> None:
        """Lightning validates after epoch ``e`` when ``(e + 1) % check_val_every_n_epoch == 0``."""
        self._remember("check_val_every_n_epoch", self.trainer.check_val_every_n_epoch)
        self.trainer.check_val_every_n_epoch = 1 if validate else epoch + 2

    def request_loader_reload(self, reload: bool) -> None:
        """Ask Lightning to rebuild the train loader when the next epoch starts (or stop asking)."""
        self._remember("reload_dataloaders_every_n_epochs", self.trainer.reload_dataloaders_every_n_epochs)
        self.trainer.reload_dataloaders_every_n_epochs = 1 if reload else self._saved["reload_dataloaders_every_n_epochs"]

    def wrap_train_loader(self, wrap: Callable[[Any], Any]) -> None:
        """Make every train-loader request return ``wrap(the user's loader)``."""
        source = self._loop._data_source
        if self._source_patched or "dataloader" in vars(source):
            raise RuntimeError(
                "MultigridCallback: the train-loader source is already wrapped (two MultigridCallbacks, "
                "or a previous fit that did not tear down); use one callback per Trainer"
            )
        original = source.dataloader
        source.dataloader = lambda: wrap(original())
        self._source_patched = True

    def ensure_recompile_limit(self, num_shapes: int) -> bool:
        """Let ``torch.compile`` keep a graph per input shape; True if the limit was raised."""
        try:
            import torch._dynamo.config as dynamo_config
        except ImportError:  # pragma: no cover - torch without dynamo
            return False
        name = "recompile_limit" if hasattr(dynamo_config, "recompile_limit") else "cache_size_limit"
        current = getattr(dynamo_config, name)
        if current >= num_shapes:
            return False
        self._saved.setdefault(("dynamo", name), current)
        setattr(dynamo_config, name, num_shapes)
        return True

    def restore(self) -> None:
        if self._source_patched:
            vars(self._loop._data_source).pop("dataloader", None)
            self._source_patched = False
        for name, value in self._saved.items():
            if name == "max_epochs":
                self._loop.max_epochs = value
            elif isinstance(name, tuple):  # a torch._dynamo.config setting
                import torch._dynamo.config as dynamo_config

                setattr(dynamo_config, name[1], value)
            else:
                setattr(self.trainer, name, value)
        self._saved.clear()
