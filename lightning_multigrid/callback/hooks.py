"""MultigridCallback: multigrid training as a drop-in Lightning callback (hooks only).

The callback is a thin event shell: each hook forwards to :class:`~lightning_multigrid.callback.run.MultigridRun`
(one fit's schedule, loaders, BN plan, LR and precise BN, built at the first train-loader request)
and :mod:`~lightning_multigrid.callback.compat` (the few private Lightning touches, all restored at teardown).

Every hook derives its state from ``(schedule, epoch, batch)`` alone, so a run resumed from any
checkpoint (end of a stage, end of an epoch, mid-epoch) trains exactly what the uninterrupted run
trains. Checkpoints hold plain-BN tensors, so a trained model loads without this package.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

from typing_extensions import override

from lightning_multigrid.batchnorm import convert as bn
from lightning_multigrid.callback import compat
from lightning_multigrid.callback.run import MultigridRun, RunSettings
from lightning_multigrid.namespace import Callback, rank_zero_warn
from lightning_multigrid.schedule import config_checks as validation
from lightning_multigrid.schedule.lr import LrPolicy, read_base_lrs
from lightning_multigrid.schedule.multigrid import MultigridSchedule
from lightning_multigrid.schedule.recipe import (
    DEFAULT_LR_SCALING,
    DEFAULT_SHORT_CYCLE_MIN_CROP,
    DEFAULT_SPATIAL_COARSENING,
    BaseRecipe,
)

__all__ = ["MultigridCallback"]


class MultigridCallback(Callback):
    """Train with the multigrid method (Wu et al., CVPR 2020) by adding one callback.

    Give the Trainer the *baseline* recipe (``max_epochs``, the train loader's per-device batch,
    the dataset's base clip shape) plus the baseline LR ``steps``; the callback derives the
    multigrid schedule, sets the real number of epochs and does the rest in place.

    Requirements: a map-style train dataset that accepts ``(index, shape)`` keys (or a ``Subset``
    / ``ConcatDataset`` of such datasets, see :mod:`lightning_multigrid.sampling.keys`) and has a
    ``base_shape`` (or pass ``num_frames``/``crop_size``/...); the optimizer's LR is owned by the
    callback unless ``lr_policy=None``.

    Args:
        steps: baseline LR milestones in epochs, starting with 0 (e.g. ``[0, 94, 154, 196]``).
        gamma: LR decay per baseline step.
        lr_policy: ``"step"`` (reference), ``"cosine"`` (keeps the long cycle's batch-factor
            scaling) or ``None`` (leave the LR alone, without the long cycle's LR scaling).
        warmup_epochs: linear warmup length in multigrid epochs (fractional allowed).
        warmup_start_factor: relative LR at the start of warmup.
        cosine_end_factor: relative LR at the end of the cosine policy.
        epoch_factor: multigrid trains this many times the baseline's epochs.
        long_cycle: change the clip shape between epochs.
        short_cycle: rotate three crop sizes within each epoch.
        long_cycle_factors: ``(T factor, S factor)`` per long-cycle grid.
        short_cycle_factors: the two short-cycle crop factors relative to S0.
        short_cycle_min_crop: short-cycle crops smaller than this many pixels are left out (0: the
            reference, every crop). The default, 64, keeps the reference at S0 >= 128 and drops the
            short cycle at S0 = 64, where its 32-pixel crops cost 8-15 points (issue 24).
        spatial_coarsening: ``"rescale"`` (the reference): a grid's smaller crop comes from a
            frame rescaled by ``S / S0`` (same field of view, lower resolution); ``"crop"``: from a
            frame rescaled as the base crop's (full resolution, smaller field of view). The default,
            ``"auto"``, is ``"crop"`` where a grid crops fewer than 64 pixels (S0 < 90) and the
            reference elsewhere: at S0=64 rescaled 45-pixel grids lost 34 points on a task that needs
            fine detail and cut ones gained 30 (issue 24; see :class:`~lightning_multigrid.schedule.BaseRecipe`).
        lr_scaling: how a long-cycle grid's LR follows its batch factor ``b``: ``"linear"`` (the
            reference, ``b``: 8x the base LR on the coarsest grid) or ``"sqrt"`` (``sqrt(b)``). The
            default, ``"auto"``, is ``"sqrt"`` where a grid crops fewer than 64 pixels (S0 < 90) and
            the reference elsewhere: at S0=64, 8x diverged in the first epochs and left 3 seeds of 5
            far below the baseline, while sqrt(8)x trained all 5 (issue 24).
        max_batch_factor: the largest long-cycle batch factor (``None``: the reference's, up to 8);
            a larger grid trains the same epochs in more, smaller iterations. The default,
            ``"auto"``, caps short runs only: where the uncapped schedule trains fewer than 600
            iterations on the train dataset, at 4, or at 2 if 4 still leaves it under 600
            (:func:`~lightning_multigrid.schedule.config_checks.short_run_batch_cap`). At S0=64 runs
            of 258-552 iterations lost 0.7-6.9 points uncapped and gained 0.3-7.5 capped (issue 24).
            A resumed run keeps its checkpoint's cap; a train loader with its own
            ``MultigridBatchSampler`` keeps that sampler's.
        bn_base_size: clips per BatchNorm statistics group.
        precise_bn_batches: at most this many batches for precise BN before each validation
            (0 disables it; the reference uses 200).
        precise_bn_budget: precise BN's forward-only batches over the whole run are at most this
            fraction of the training iterations (the reference's 200 batches at ~40 evaluations
            are about 3% of a Kinetics run; on a small dataset the same 200 would dominate). The
            final validation is served first; the others share the rest, or skip precise BN when
            nothing is left (see :func:`~lightning_multigrid.callback.run.precise_bn_allocation`).
        eval_freq: evaluations per long-cycle stage.
        follow_eval_schedule: validate on the schedule's eval epochs (the reference's rule; with
            ``check_val_every_n_epoch=N`` every N-th of them; the final epoch always); ``False``
            keeps the Trainer's own ``check_val_every_n_epoch``.
        baseline_epochs: the baseline's epochs; defaults to ``Trainer(max_epochs)``.
        num_frames, crop_size, sampling_rate, jitter_scales: ``T0``, ``S0``, ``r0`` and the
            rescale range; default to the train dataset's ``base_shape``.
        seed: shuffling seed; defaults to ``PL_GLOBAL_SEED`` (set by ``seed_everything``) or 0.
        precise_bn_forward: ``fn(pl_module, batch)`` for precise BN and the setup probe; default
            feeds ``batch["video"]`` (dict batches) or ``batch[0]`` (tuples) to ``pl_module``.
        probe_shapes: at setup, run one clip per distinct T of the schedule through the model so
            that shapes it cannot take fail before training.
        log_schedule: print the schedule table once (rank zero) when training starts.
    """

    STATE_VERSION = 2

    def __init__(
        self,
        steps: Sequence[int],
        gamma: float = BaseRecipe.gamma,
        lr_policy: Literal["step", "cosine"] | None = "step",
        warmup_epochs: float = 0.0,
        warmup_start_factor: float = LrPolicy.warmup_start_factor,
        cosine_end_factor: float = LrPolicy.cosine_end_factor,
        epoch_factor: float = BaseRecipe.epoch_factor,
        long_cycle: bool = BaseRecipe.long_cycle,
        short_cycle: bool = BaseRecipe.short_cycle,
        long_cycle_factors: Sequence[tuple[float, float]] = BaseRecipe.long_cycle_factors,
        short_cycle_factors: Sequence[float] = BaseRecipe.short_cycle_factors,
        short_cycle_min_crop: int = DEFAULT_SHORT_CYCLE_MIN_CROP,
        spatial_coarsening: Literal["rescale", "crop", "auto"] = DEFAULT_SPATIAL_COARSENING,
        lr_scaling: Literal["linear", "sqrt", "auto"] = DEFAULT_LR_SCALING,
        max_batch_factor: int | Literal["auto"] | None = "auto",
        bn_base_size: int = BaseRecipe.bn_base_size,
        precise_bn_batches: int = 200,
        precise_bn_budget: float = 0.03,
        eval_freq: int = BaseRecipe.eval_freq,
        follow_eval_schedule: bool = True,
        baseline_epochs: int | None = None,
        num_frames: int | None = None,
        crop_size: int | None = None,
        sampling_rate: int | None = None,
        jitter_scales: tuple[int, int] | None = None,
        seed: int | None = None,
        precise_bn_forward: Callable[[Any, Any], Any] | None = None,
        probe_shapes: bool = True,
        log_schedule: bool = True,
    ) -> None:
        self.settings = RunSettings(
            steps=tuple(int(s) for s in steps),
            cycle=dict(gamma=gamma, epoch_factor=epoch_factor, long_cycle=long_cycle, short_cycle=short_cycle,
                       long_cycle_factors=[tuple(f) for f in long_cycle_factors],
                       short_cycle_factors=list(short_cycle_factors), short_cycle_min_crop=short_cycle_min_crop,
                       spatial_coarsening=spatial_coarsening, lr_scaling=lr_scaling, bn_base_size=bn_base_size,
                       eval_freq=eval_freq, max_batch_factor=max_batch_factor),
            base=dict(num_frames=num_frames, crop_size=crop_size, sampling_rate=sampling_rate,
                      jitter_scales=jitter_scales),
            # Validated now (a bad name fails when the callback is built) even when the LR is left alone.
            lr=LrPolicy(lr_policy or "step", float(warmup_epochs), warmup_start_factor, cosine_end_factor),
            owns_lr=lr_policy is not None, precise_bn_batches=precise_bn_batches,
            precise_bn_budget=precise_bn_budget, follow_eval_schedule=follow_eval_schedule,
            baseline_epochs=baseline_epochs, seed=seed, precise_bn_forward=precise_bn_forward,
            probe_shapes=probe_shapes, log_schedule=log_schedule,
        )
        self.lr_policy = lr_policy
        self.schedule: MultigridSchedule | None = None  # this fit's, readable after it
        self._run: MultigridRun | None = None
        self._patch: compat.TrainerPatch | None = None
        self._baseline_epochs = 0
        self._base_lrs: list[list[float]] = []
        self._loaded_state: dict[str, Any] = {}

    @override
    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        if stage != "fit":
            return
        self._baseline_epochs = validation.baseline_epochs(self.settings.baseline_epochs, trainer.max_epochs)
        validation.check_trainer_flags(trainer.max_steps, trainer.accumulate_grad_batches)
        self.schedule = self._run = None  # built at the first train-loader request of this fit
        self._patch = compat.TrainerPatch(trainer)
        # The train loader is read at Lightning's first request (after every setup() and any
        # checkpoint restore), so a module that builds its data in setup() works.
        self._patch.wrap_train_loader(lambda loader: self._train_loader(trainer, pl_module, loader))

    def _train_loader(self, trainer: Any, pl_module: Any, loader: Any) -> Any:
        if self._run is None:
            assert self._patch is not None
            self._run = MultigridRun(self.settings, trainer, pl_module, loader, self._patch,
                                     self._baseline_epochs, self._base_lrs, self._loaded_state)
            self.schedule = self._run.schedule
        return self._run.train_loader(trainer, loader)

    @override
    def teardown(self, trainer: Any, pl_module: Any, stage: str) -> None:
        if stage != "fit":
            return
        bn.revert_to_batchnorm(pl_module)
        if self._patch is not None:
            self._patch.restore()
            self._patch = None
        if self._run is not None:
            self._run.release()

    @override
    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        names = [type(c.scheduler).__name__ for c in trainer.lr_scheduler_configs]
        if (warning := validation.check_lr_schedulers(self.lr_policy, names)) is not None:
            rank_zero_warn(warning)
        # Read before a resumed optimizer state (restored after this hook) overwrites `lr`.
        self._base_lrs[:] = read_base_lrs(trainer.optimizers)

    @override
    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        if self._run is not None:
            self._run.continue_epoch(trainer, pl_module, self._loaded_state.get("split_bn"))

    @override
    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        if self._run is not None:
            self._reload_loader(False)  # this epoch's loader is built
            self._run.enter_epoch(pl_module, trainer.current_epoch, restart_splits=True)
            self._run.set_lr(trainer, trainer.current_epoch, 0)

    @override
    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        if self._run is None:
            return
        self._run.reshape_batch(batch, trainer.current_epoch, batch_idx)
        if compat.logs_this_step(trainer):  # a logged value costs ~0.2 ms: only where a logger writes it
            pl_module.log_dict(self._run.batch_values(trainer.current_epoch, batch_idx),
                               on_step=True, on_epoch=False, batch_size=1, rank_zero_only=True)

    @override
    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self._run is None:
            return
        epoch = trainer.current_epoch
        if batch_idx + 1 < trainer.num_training_batches:
            self._run.set_lr(trainer, epoch, batch_idx + 1)
        elif self.settings.precise_bn_batches and self._run.validates(epoch):
            # Precise BN only where a validation (and so a checkpoint) follows.
            self._run.precise_bn(trainer, pl_module, epoch)

    @override
    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        if self._run is not None:
            self._reload_loader(self._run.needs_new_loader(trainer.current_epoch + 1))

    def _reload_loader(self, reload: bool) -> None:
        """The one switch of Lightning's train-loader rebuild. Lightning fixes a loader's length when
        it builds it, so the switch is on at the end of an epoch whose successor starts a new stage,
        and off again once that epoch has its loader (so validation loaders are not rebuilt)."""
        assert self._patch is not None
        self._patch.request_loader_reload(reload)

    def lr_factor(self, epoch: float) -> float:
        """Relative LR at a fractional epoch (what the callback multiplies base LRs by)."""
        if self._run is None:
            raise RuntimeError("MultigridCallback.lr_factor: the schedule is built when training starts")
        return self._run.lr_factor(epoch)

    @override
    def state_dict(self) -> dict[str, Any]:
        return {} if self._run is None else {"version": self.STATE_VERSION, **self._run.state()}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Keep the checkpoint's state; it is checked against this run's recipe once that is known."""
        self._loaded_state = dict(state_dict)
