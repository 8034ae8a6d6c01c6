"""MultigridCallback: multigrid training as a drop-in Lightning callback (hooks only).

The callback is a thin event shell over pure parts: :mod:`~lightning_multigrid.schedule` (what
shape, LR and BN grouping each epoch has), :mod:`~lightning_multigrid.checks` (setup-time
validation), :mod:`~lightning_multigrid.loaders` (the train and precise-BN loaders) and
:mod:`~lightning_multigrid.compat` (the few private Lightning touches, all restored at teardown).

Every hook derives its state from ``(schedule, epoch, batch)`` alone, so a run resumed from any
checkpoint (end of a stage, end of an epoch, mid-epoch) trains exactly what the uninterrupted run
trains. Checkpoints hold plain-BN tensors, so a trained model loads without this package.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any, Literal

import torch
from typing_extensions import override

from lightning_multigrid import adapters, checks, compat, loaders, precise_bn, validation
from lightning_multigrid import batchnorm as bn
from lightning_multigrid.keys import ClipShape
from lightning_multigrid.lr import LrPolicy, apply_lr_factor, read_base_lrs
from lightning_multigrid.namespace import Callback, rank_zero_info, rank_zero_warn
from lightning_multigrid.schedule import (
    BaseRecipe,
    MultigridSchedule,
    epoch_clip_shapes,
)

__all__ = ["MultigridCallback"]

#: Lightning's ``max_epochs`` when none is given: never a baseline recipe, almost always a mistake.
_LIGHTNING_DEFAULT_MAX_EPOCHS = 1000


class MultigridCallback(Callback):
    """Train with the multigrid method (Wu et al., CVPR 2020) by adding one callback.

    Give the Trainer the *baseline* recipe (``max_epochs``, the train loader's per-device batch,
    the dataset's base clip shape) plus the baseline LR ``steps``; the callback derives the
    multigrid schedule, sets the real number of epochs and does the rest in place.

    Requirements: a map-style train dataset that accepts ``(index, shape)`` keys (or a ``Subset``
    / ``ConcatDataset`` of such datasets, see :mod:`lightning_multigrid.keys`) and has a
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
        bn_base_size: clips per BatchNorm statistics group.
        precise_bn_batches: at most this many batches for precise BN before each validation
            (0 disables it; the reference uses 200).
        precise_bn_budget: precise BN's forward-only batches over the whole run are at most this
            fraction of the training iterations (the reference's 200 batches at ~40 evaluations
            are about 3% of a Kinetics run; on a small dataset the same 200 would dominate).
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
        if precise_bn_batches < 0:
            raise ValueError(f"precise_bn_batches must be >= 0, got {precise_bn_batches}")
        if not 0 < precise_bn_budget <= 1:
            raise ValueError(f"precise_bn_budget must be in (0, 1], got {precise_bn_budget}")
        if baseline_epochs is not None and baseline_epochs < 1:
            raise ValueError(f"baseline_epochs must be >= 1, got {baseline_epochs}")
        self.steps = [int(s) for s in steps]
        self.lr_policy = lr_policy
        # Validated now (a bad name fails when the callback is built), None: the LR is left alone.
        self._lr = LrPolicy(lr_policy or "step", float(warmup_epochs), warmup_start_factor, cosine_end_factor)
        self.cycle_settings: dict[str, Any] = dict(
            gamma=gamma, epoch_factor=epoch_factor, long_cycle=long_cycle, short_cycle=short_cycle,
            long_cycle_factors=[tuple(f) for f in long_cycle_factors],
            short_cycle_factors=list(short_cycle_factors), bn_base_size=bn_base_size, eval_freq=eval_freq,
        )
        self.base_settings: dict[str, Any] = dict(
            num_frames=num_frames, crop_size=crop_size, sampling_rate=sampling_rate, jitter_scales=jitter_scales
        )
        self.precise_bn_batches = precise_bn_batches
        self.precise_bn_budget = precise_bn_budget
        self._precise_bn_per_call = 0
        self.follow_eval_schedule = follow_eval_schedule
        self.baseline_epochs = baseline_epochs
        self.seed = seed
        self.precise_bn_forward = precise_bn_forward
        self.probe_shapes = probe_shapes
        self.log_schedule = log_schedule

        self.schedule: MultigridSchedule | None = None
        self.world_size = 1
        self._patch: compat.TrainerPatch | None = None
        self._module: torch.nn.Module | None = None
        self._dataset: Any = None
        self._resample_base: ClipShape | None = None
        self._template: Any = None
        self._loader: Any = None
        self._batch_size = 0
        self._base_lrs: list[list[float]] = []
        self._sync_groups: dict[int, Any] = {}
        self._user_val_every: int = 1
        self._loader_stage = -1
        self._loaded_state: dict[str, Any] = {}
        self._current_lr_factor = 1.0

    # ------------------------------------------------------------------------------------------
    # setup and teardown
    # ------------------------------------------------------------------------------------------
    @override
    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        if stage != "fit":
            return
        epochs = self.baseline_epochs or trainer.max_epochs
        if epochs is None or epochs < 1 or (self.baseline_epochs is None and epochs == _LIGHTNING_DEFAULT_MAX_EPOCHS):
            raise ValueError(
                f"MultigridCallback: Trainer(max_epochs={trainer.max_epochs}) is not a baseline recipe "
                f"({_LIGHTNING_DEFAULT_MAX_EPOCHS} is Lightning's default when max_epochs is unset). Set "
                "Trainer(max_epochs=...) to the BASELINE number of epochs (the callback derives the "
                "multigrid epochs), or pass MultigridCallback(baseline_epochs=...)"
            )
        self.baseline_epochs = int(epochs)
        self.schedule = None  # built at the first train-loader request of this fit
        num_slots = len(self.cycle_settings["short_cycle_factors"]) + 1
        validation.check_trainer_flags(
            trainer.max_steps, trainer.accumulate_grad_batches, self.cycle_settings["short_cycle"], num_slots
        )
        self.world_size = trainer.world_size
        if self.seed is None:
            self.seed = int(os.environ.get("PL_GLOBAL_SEED", 0))
        self._user_val_every = trainer.check_val_every_n_epoch or 1
        self._module = pl_module
        self._patch = compat.TrainerPatch(trainer)
        # The train loader is read at Lightning's first request (after every setup() and any
        # checkpoint restore), so a module that builds its data in setup() works.
        self._patch.wrap_train_loader(lambda loader: self._train_loader(trainer, pl_module, loader))

    @override
    def teardown(self, trainer: Any, pl_module: Any, stage: str) -> None:
        if stage != "fit":
            return
        bn.revert_to_batchnorm(pl_module)
        if self._patch is not None:
            self._patch.restore()
            self._patch = None
        # Release the fit's loaders (and with them any persistent workers); the schedule stays readable.
        self._loader = self._template = self._dataset = self._module = None

    def _train_loader(self, trainer: Any, pl_module: Any, loader: Any) -> Any:
        keyed, batch_size = loaders.check_train_loader(loader)
        if self.schedule is None:
            self._start(trainer, pl_module, loader, keyed, batch_size)
            self._loader = None
        assert self.schedule is not None and self.seed is not None
        epoch = compat.epoch_to_run(trainer)
        self._loader_stage = self.schedule.stage_index_at(epoch)
        if self._loader is not None and loader.dataset is self._template.dataset:
            # A stage change: the same loader (and its persistent workers) at the new epoch's len().
            self._loader.batch_sampler.set_epoch(epoch)
            return self._loader
        self._template, self._dataset = loader, self._view(loader, keyed)
        self._loader = loaders.train_loader(
            loader, self._dataset, self.schedule, batch_size, epoch, self.seed, self.world_size,
            trainer.global_rank, start_batch=compat.batches_done_in_epoch(trainer),
        )
        return self._loader

    def _view(self, loader: Any, keyed: Any) -> Any:
        """The dataset the sampler's keys index: key-aware, or tier 3 (base-shape clips)."""
        if keyed is not None:
            return keyed
        assert self._resample_base is not None
        return adapters.BaseShapeDataset(loader.dataset, self._resample_base)

    def _start(self, trainer: Any, pl_module: Any, loader: Any, keyed: Any, batch_size: int) -> None:
        """Build and validate everything once the train loader is known."""
        existing = getattr(loader, "batch_sampler", None)
        self.schedule = MultigridSchedule(self._recipe(keyed if keyed is not None else loader.dataset,
                                                       batch_size * self.world_size))
        r = self.schedule.recipe
        self._resample_base = None
        if keyed is None:
            self._resample_base = ClipShape(r.num_frames, r.crop_size, (r.sampling_rate,) * 2, r.jitter_scales)
            rank_zero_info(
                f"MultigridCallback: {type(loader.dataset).__name__} does not accept (index, shape) keys, so its "
                "base-shape clips are resampled on the device to each grid's shape: the compute saving holds, "
                "the data cost does not shrink (see lightning_multigrid.adapters for the faster tiers)"
            )
        dataset = self._view(loader, keyed)
        self._dataset, self._batch_size, self._template = dataset, batch_size, loader
        existing_schedule = getattr(existing, "schedule", None)
        if existing_schedule is not None and existing_schedule.recipe != self.schedule.recipe:
            raise ValueError(
                "MultigridCallback: the train loader already has a MultigridBatchSampler built from another "
                "recipe; let the callback build it (use a plain DataLoader) or give both the same settings"
            )
        self._check_resumed_recipe()
        for warning in validation.validate_stages(
            self.schedule, self.world_size, len(dataset), getattr(dataset, "slowfast_alpha", None),
            checks.find_requirements(pl_module),
        ):
            rank_zero_warn(f"MultigridCallback: {warning}")
        if self.probe_shapes and (self.precise_bn_forward is not None or self.precise_bn_batches > 0):
            checks.probe_forward(
                pl_module, dataset, self.schedule, loader.collate_fn, trainer.strategy.batch_to_device,
                self.precise_bn_forward or checks.default_forward,
                reshape=self._reshape if self._resample_base else None,
            )
        if self.world_size > 1 and torch.distributed.is_available() and torch.distributed.is_initialized():
            # Sync-BN groups must be created by every rank, in the same order, before training.
            sizes = {p.sync_size for p in validation.stage_bn_plans(self.schedule, self.world_size) if p.mode == "sync"}
            self._sync_groups = {size: bn.new_sync_groups(size) for size in sorted(sizes)}
        if self.schedule.recipe.long_cycle:
            bn.convert_to_split_batchnorm(pl_module)
        calls = len(self.schedule.validation_epochs(self._user_val_every))
        budget = int(self.precise_bn_budget * self.schedule.iterations(len(dataset), self.world_size) / max(calls, 1))
        self._precise_bn_per_call = min(self.precise_bn_batches, max(1, budget))
        assert self._patch is not None
        self._patch.set_max_epochs(self.schedule.max_epochs)
        # Training slots, precise BN and validation at every grid, with room for a last partial batch.
        shapes = 3 * len({(b, c.num_frames, c.crop_size) for e in range(self.schedule.max_epochs)
                          for b, c in zip(self.schedule.epoch_batch_sizes(e, self.world_size), epoch_clip_shapes(self.schedule, e))})
        if self._patch.ensure_recompile_limit(shapes):
            rank_zero_info(f"MultigridCallback: torch.compile may recompile for each of up to {shapes} input shapes "
                           "of this schedule; raised torch._dynamo.config.recompile_limit to that")
        if self.log_schedule:
            from lightning_multigrid.schedule_report import format_schedule_table

            rank_zero_info(
                f"MultigridCallback: baseline {self.baseline_epochs} epochs -> multigrid "
                f"{self.schedule.max_epochs} epochs on {self.world_size} device(s)\n"
                + format_schedule_table(self.schedule, self.world_size, len(dataset))
            )

    def _recipe(self, dataset: Any, global_batch: int) -> BaseRecipe:
        base: ClipShape | None = getattr(dataset, "base_shape", None)
        derived = {
            "num_frames": lambda b: b.num_frames,
            "crop_size": lambda b: b.crop_size,
            "sampling_rate": lambda b: b.stride_range[0],
            "jitter_scales": lambda b: b.jitter_range,
        }
        values = dict(self.base_settings)
        for name, from_base in derived.items():
            if values[name] is None and base is not None:
                values[name] = from_base(base)
            elif values[name] is None and name in ("num_frames", "crop_size"):
                raise ValueError(f"MultigridCallback: pass `{name}=` or give the train dataset a `base_shape` ClipShape")
        # Unset stride and jitter take BaseRecipe's defaults.
        given = {k: v for k, v in values.items() if v is not None}
        return BaseRecipe(
            steps=self.steps, max_epochs=int(self.baseline_epochs or 0), batch_size=global_batch,
            **given, **self.cycle_settings,
        )

    # ------------------------------------------------------------------------------------------
    # per-epoch and per-iteration state
    # ------------------------------------------------------------------------------------------
    @override
    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        if self.lr_policy is None:
            rank_zero_warn(
                "MultigridCallback(lr_policy=None): the LR is left to your scheduler, so the long cycle's "
                "linear LR scaling by batch factor is not applied"
            )
        elif trainer.lr_scheduler_configs:
            names = ", ".join(type(c.scheduler).__name__ for c in trainer.lr_scheduler_configs)
            raise ValueError(
                f"MultigridCallback(lr_policy={self.lr_policy!r}) sets the LR every iteration, but the module "
                f"also configures LR scheduler(s): {names}. Remove them from configure_optimizers, or pass "
                "lr_policy=None to keep yours (without the long cycle's LR scaling)."
            )
        # Read before a resumed optimizer state (restored after this hook) overwrites `lr`.
        self._base_lrs = read_base_lrs(trainer.optimizers)

    @override
    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        # A mid-epoch resume gets no on_train_epoch_start: apply the epoch's state here.
        done = compat.batches_done_in_epoch(trainer)
        if self.schedule is not None and done > 0:
            self._enter_epoch(trainer, pl_module, restart_splits=False)
            saved = self._loaded_state.get("split_bn")
            if saved and saved["epoch"] == trainer.current_epoch:
                bn.load_split_statistics(pl_module, saved["statistics"])
            self._set_lr(trainer, trainer.current_epoch, done)

    @override
    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        if self.schedule is None:
            return
        self._enter_epoch(trainer, pl_module, restart_splits=True)
        self._set_lr(trainer, trainer.current_epoch, 0)

    def _enter_epoch(self, trainer: Any, pl_module: Any, restart_splits: bool) -> None:
        s = self.schedule
        assert s is not None and self._patch is not None
        epoch = trainer.current_epoch
        self._patch.request_loader_reload(False)  # this epoch's loader is built
        if s.recipe.long_cycle:
            plan = s.batch_norm_plan(s.per_device_batch_size(epoch, self.world_size), self.world_size)
            bn.apply_batchnorm_plan(pl_module, plan, self._sync_groups)
            if restart_splits:
                bn.restart_splits(pl_module)
        if self.follow_eval_schedule:
            self._patch.set_validate_this_epoch(self._validates(epoch), epoch)

    def _validates(self, epoch: int) -> bool:
        assert self.schedule is not None
        if not self.follow_eval_schedule:
            return (epoch + 1) % self._user_val_every == 0 or epoch + 1 == self.schedule.max_epochs
        return epoch in self.schedule.validation_epochs(self._user_val_every)

    def lr_factor(self, epoch: float) -> float:
        """Relative LR at a fractional epoch (what the callback multiplies base LRs by)."""
        assert self.schedule is not None
        return self._lr.factor(self.schedule, epoch)

    def _set_lr(self, trainer: Any, epoch: int, batch_idx: int) -> None:
        """Set the LR of batch ``batch_idx`` before it starts, so any logger reads the right one."""
        if self.lr_policy is None:
            return
        self._current_lr_factor = self.lr_factor(epoch + batch_idx / max(trainer.num_training_batches, 1))
        apply_lr_factor(trainer.optimizers, self._base_lrs, self._current_lr_factor)

    @override
    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        s = self.schedule
        if s is None:
            return
        epoch = trainer.current_epoch
        slots = epoch_clip_shapes(s, epoch)
        sizes = s.epoch_batch_sizes(epoch, self.world_size)
        slot = batch_idx % len(slots)
        if self._resample_base is not None:
            self._reshape(batch, slots[slot], (epoch, batch_idx, trainer.global_rank))
        pl_module.log_dict(
            {
                "multigrid/num_frames": float(slots[slot].num_frames),
                "multigrid/crop_size": float(slots[slot].crop_size),
                "multigrid/batch_size": float(sizes[slot]),
                "multigrid/lr_factor": float(self._current_lr_factor),
                "multigrid/stage": float(s.stage_index_at(epoch)),
            },
            on_step=True, on_epoch=False, batch_size=1, rank_zero_only=True,
        )

    @override
    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.schedule is None:
            return
        epoch = trainer.current_epoch
        if batch_idx + 1 >= trainer.num_training_batches:
            # Precise BN only where a validation (and so a checkpoint) follows.
            if self.precise_bn_batches and self._validates(epoch):
                self._precise_bn(trainer, pl_module, epoch)
        else:
            self._set_lr(trainer, epoch, batch_idx + 1)

    @override
    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        s = self.schedule
        if s is None or self._patch is None:
            return
        following = trainer.current_epoch + 1
        # Lightning fixes a loader's length when it builds it: a new stage needs a new loader.
        if following < s.max_epochs and s.stage_index_at(following) != self._loader_stage:
            self._patch.request_loader_reload(True)

    def _precise_bn(self, trainer: Any, pl_module: Any, epoch: int) -> None:
        """Recompute BN statistics at the epoch's base shape (no short cycle)."""
        if not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in pl_module.modules()):
            return
        assert self.schedule is not None and self.seed is not None
        loader = loaders.precise_bn_loader(
            self._template, self._dataset, self.schedule, epoch, self._precise_bn_per_call, self.seed,
            self.world_size, trainer.global_rank,
        )
        if loader is None:
            rank_zero_warn(f"MultigridCallback: precise BN skipped at epoch {epoch} (dataset smaller than one batch)")
            return
        forward = self.precise_bn_forward or checks.default_forward
        strategy = trainer.strategy
        base_shape = epoch_clip_shapes(self.schedule, epoch)[-1]

        def run(module: Any, batch: Any) -> Any:
            batch = strategy.batch_to_device(batch)
            if self._resample_base is not None:
                self._reshape(batch, base_shape, (epoch, -1, trainer.global_rank))
            return forward(pl_module, batch)

        used = precise_bn.update_bn_stats(pl_module, loader, num_batches=len(loader), forward=run)
        rank_zero_info(f"MultigridCallback: precise BN over {used} batches at epoch {epoch}")

    def _reshape(self, batch: Any, shape: ClipShape, where: tuple[int, ...] = (0,)) -> None:
        """Tier 3: resample a batch of base-shape clips to ``shape`` in place (random choices are a
        pure function of the seed and ``where``, so a resumed run draws the same)."""
        assert self._resample_base is not None and self.seed is not None
        generator = torch.Generator().manual_seed(hash((self.seed, *where)) % (2**63))
        video = adapters.batch_video(batch)
        adapters.replace_batch_video(batch, adapters.resample_clips(video, self._resample_base, shape, generator))

    # ------------------------------------------------------------------------------------------
    # resume
    # ------------------------------------------------------------------------------------------
    @override
    def state_dict(self) -> dict[str, Any]:
        if self.schedule is None:
            return {}
        state: dict[str, Any] = {
            "version": self.STATE_VERSION,
            "recipe": _jsonable(asdict(self.schedule.recipe)),
            "max_epochs": self.schedule.max_epochs,
            "seed": self.seed,
            "world_size": self.world_size,
        }
        trainer = getattr(self._module, "_trainer", None)
        if self._module is not None and trainer is not None:
            # Split statistics are not in the (plain-BN) model state; a mid-epoch resume needs them.
            state["split_bn"] = {"epoch": trainer.current_epoch, "statistics": bn.split_statistics(self._module)}
        return state

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Keep the checkpoint's state; it is checked against this run's recipe once that is known."""
        self._loaded_state = dict(state_dict)
        if "seed" in state_dict:
            self.seed = state_dict["seed"]

    def _check_resumed_recipe(self) -> None:
        saved = self._loaded_state.get("recipe")
        if saved is None or self.schedule is None:
            return
        now = _jsonable(asdict(self.schedule.recipe))
        changed = {k: (saved.get(k), now[k]) for k in now if saved.get(k) != now[k]}
        if changed:
            detail = "; ".join(f"{k}: checkpoint {a} vs now {b}" for k, (a, b) in changed.items())
            raise ValueError(
                "MultigridCallback: the checkpoint was trained with a different multigrid recipe, so the "
                f"resumed schedule would not match ({detail}). Resume with the same Trainer/DataModule/"
                "callback settings."
            )


def _jsonable(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, float) and math.isfinite(value):
        return round(value, 12)
    return value
