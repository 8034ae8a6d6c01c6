"""MultigridCallback: multigrid training as a drop-in Lightning callback.

The callback is a thin event shell over :mod:`lightning_multigrid.schedule` (the functional core).
It reads the schedule and tells the other parts what to do; nothing else knows the epoch:

============================  ==========================================================================
hook                          what happens
============================  ==========================================================================
``setup("fit")``              build the schedule from the trainer's (baseline) ``max_epochs`` and the
                              train loader's dataset/batch; validate every stage (batch vs. devices and
                              BN splits, model T/S requirements, SlowFast alpha, shape-key support);
                              set the real number of epochs; convert BatchNorm3d to split BN in place;
                              wrap the train-loader source so each loader gets a
                              :class:`~lightning_multigrid.sampler.MultigridBatchSampler`
``on_fit_start``              record each param group's base LR (before a resumed optimizer state
                              overwrites it); refuse an LR scheduler it would fight with
``on_train_epoch_start``      set the epoch's BN plan (split count / sync group) in place; decide whether
                              this epoch validates (the schedule's eval epochs)
``on_train_batch_start``      set the LR for the fractional epoch; log ``multigrid/*``
``on_train_batch_end``        on the last batch of an eval epoch: precise BN (before validation runs)
``on_train_epoch_end``        make Lightning rebuild the train loader when the next epoch starts a new
                              stage (its length changes, and Lightning fixes the length per loader)
``teardown("fit")``           merge split statistics and restore plain BatchNorm3d modules
============================  ==========================================================================

Checkpoints always hold plain-BN tensors (split BN writes merged statistics into its state dict), so
a model trained with multigrid loads into the plain network with ``strict=True``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any, Literal

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.utilities import rank_zero_info, rank_zero_warn
from torch.utils.data import DataLoader, DistributedSampler

from lightning_multigrid import batchnorm as bn
from lightning_multigrid.keys import ClipKey, ClipShape, accepts_clip_keys
from lightning_multigrid.sampler import (
    MultigridBatchSampler,
    SeededRandomSampler,
    epoch_clip_shapes,
)
from lightning_multigrid.schedule import (
    DEFAULT_LONG_CYCLE_FACTORS,
    DEFAULT_SHORT_CYCLE_FACTORS,
    BaseRecipe,
    BatchNormPlan,
    MultigridSchedule,
    batches_per_epoch,
)

__all__ = ["MultigridCallback"]

# DataLoader attributes carried over when the train loader is rebuilt around the batch sampler.
_LOADER_ATTRIBUTES = (
    "num_workers", "collate_fn", "pin_memory", "timeout", "worker_init_fn", "multiprocessing_context",
    "generator", "persistent_workers", "pin_memory_device", "in_order",
)


class MultigridCallback(Callback):
    """Train with the multigrid method (Wu et al., CVPR 2020) by adding one callback.

    Give the Trainer the *baseline* recipe (``max_epochs``, the train loader's per-device batch,
    the dataset's base clip shape) plus the baseline LR ``steps``; the callback derives the
    multigrid schedule, sets the real number of epochs and does the rest in place.

    Requirements: the train dataset is map-style and accepts ``(index, shape)`` keys
    (``accepts_clip_keys = True``, see :mod:`lightning_multigrid.keys`) and has a ``base_shape``
    (or pass ``num_frames``/``crop_size``/...); the optimizer's LR is owned by the callback unless
    ``lr_policy=None``.

    Args:
        steps: baseline LR milestones in epochs, starting with 0 (e.g. ``[0, 94, 154, 196]``).
        gamma: LR decay per baseline step.
        lr_policy: ``"step"`` (reference), ``"cosine"`` (cosine over the multigrid epochs, keeping
            the long cycle's batch-factor scaling) or ``None`` (leave the LR alone: then the long
            cycle's linear LR scaling is NOT applied, and a warning says so).
        warmup_epochs: linear warmup length in multigrid epochs (fractional allowed).
        warmup_start_factor: relative LR at the start of warmup.
        cosine_end_factor: relative LR at the end of the cosine policy.
        epoch_factor: multigrid trains this many times the baseline's epochs.
        long_cycle: change the clip shape between epochs.
        short_cycle: rotate three crop sizes within each epoch.
        long_cycle_factors: ``(T factor, S factor)`` per long-cycle grid.
        short_cycle_factors: the two short-cycle crop factors relative to S0.
        bn_base_size: clips per BatchNorm statistics group.
        precise_bn_batches: batches for precise BN on eval epochs (0 disables it).
        eval_freq: evaluations per long-cycle stage.
        follow_eval_schedule: validate only on the schedule's eval epochs (the reference's rule);
            ``False`` keeps the Trainer's own ``check_val_every_n_epoch``.
        num_frames: ``T0``; defaults to the train dataset's ``base_shape.num_frames``.
        crop_size: ``S0``; defaults to ``base_shape.crop_size``.
        sampling_rate: ``r0``; defaults to ``base_shape.stride_range[0]``.
        jitter_scales: baseline short-side rescale range; defaults to ``base_shape.jitter_range``.
        seed: shuffling seed; defaults to ``PL_GLOBAL_SEED`` (set by ``seed_everything``) or 0.
        precise_bn_forward: ``fn(pl_module, batch)`` for precise BN; default feeds
            ``batch["video"]`` (dict batches) or ``batch[0]`` (tuples) to ``pl_module``.
        log_schedule: print the schedule table once (rank zero) at setup.
    """

    def __init__(
        self,
        steps: Sequence[int],
        gamma: float = 0.1,
        lr_policy: Literal["step", "cosine"] | None = "step",
        warmup_epochs: float = 0.0,
        warmup_start_factor: float = 0.1,
        cosine_end_factor: float = 0.0,
        epoch_factor: float = 1.5,
        long_cycle: bool = True,
        short_cycle: bool = True,
        long_cycle_factors: Sequence[tuple[float, float]] = DEFAULT_LONG_CYCLE_FACTORS,
        short_cycle_factors: Sequence[float] = DEFAULT_SHORT_CYCLE_FACTORS,
        bn_base_size: int = 8,
        precise_bn_batches: int = 200,
        eval_freq: int = 3,
        follow_eval_schedule: bool = True,
        num_frames: int | None = None,
        crop_size: int | None = None,
        sampling_rate: int | None = None,
        jitter_scales: tuple[int, int] | None = None,
        seed: int | None = None,
        precise_bn_forward: Callable[[pl.LightningModule, Any], Any] | None = None,
        log_schedule: bool = True,
    ) -> None:
        if lr_policy not in ("step", "cosine", None):
            raise ValueError(f"lr_policy must be 'step', 'cosine' or None, got {lr_policy!r}")
        if warmup_epochs < 0:
            raise ValueError(f"warmup_epochs must be >= 0, got {warmup_epochs}")
        if precise_bn_batches < 0:
            raise ValueError(f"precise_bn_batches must be >= 0, got {precise_bn_batches}")
        self.steps = [int(s) for s in steps]
        self.gamma = gamma
        self.lr_policy = lr_policy
        self.warmup_epochs = float(warmup_epochs)
        self.warmup_start_factor = warmup_start_factor
        self.cosine_end_factor = cosine_end_factor
        self.epoch_factor = epoch_factor
        self.long_cycle = long_cycle
        self.short_cycle = short_cycle
        self.long_cycle_factors = [tuple(f) for f in long_cycle_factors]
        self.short_cycle_factors = list(short_cycle_factors)
        self.bn_base_size = bn_base_size
        self.precise_bn_batches = precise_bn_batches
        self.eval_freq = eval_freq
        self.follow_eval_schedule = follow_eval_schedule
        self.num_frames = num_frames
        self.crop_size = crop_size
        self.sampling_rate = sampling_rate
        self.jitter_scales = jitter_scales
        self.seed = seed
        self.precise_bn_forward = precise_bn_forward
        self.log_schedule = log_schedule

        self.schedule: MultigridSchedule | None = None
        self.world_size = 1
        self._base_lrs: list[list[float]] = []
        self._sync_groups: dict[int, Any] = {}
        self._user_reload_every: int = 0
        self._user_check_val_every: int | None = 1
        self._batch_size = 0  # per-device baseline batch
        self._dataset: Any = None
        self._loader_template: DataLoader | None = None
        self._bn_layers: list[torch.nn.Module] = []
        self._saved_state: dict[str, Any] | None = None
        self._current_lr_factor = 1.0

    # ------------------------------------------------------------------------------------------
    # setup: build and validate everything before the first step
    # ------------------------------------------------------------------------------------------
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        if trainer.max_epochs is None or trainer.max_epochs < 1:
            raise ValueError(
                "MultigridCallback: set Trainer(max_epochs=...) to the BASELINE number of epochs; "
                "the callback derives the multigrid epochs from it."
            )
        source = trainer.fit_loop._data_source  # Lightning 2.x: where train loaders come from
        loader = source.dataloader()
        self._loader_template = self._check_loader(loader)
        self._dataset = loader.dataset
        self.world_size = trainer.world_size
        self.seed = self.seed if self.seed is not None else int(os.environ.get("PL_GLOBAL_SEED", 0))

        self.schedule = MultigridSchedule(self._recipe(self._dataset, self._batch_size * self.world_size, trainer))
        self._validate_stages(pl_module)
        # Sync-BN groups must be created by every rank, in the same order, before training.
        if trainer.world_size > 1 and torch.distributed.is_available() and torch.distributed.is_initialized():
            for size in sorted({p.sync_size for p in self._stage_bn_plans() if p.mode == "sync"}):
                self._sync_groups[size] = bn.new_sync_groups(size)

        baseline_epochs = trainer.max_epochs
        trainer.fit_loop.max_epochs = self.schedule.max_epochs
        self._bn_layers = bn.convert_to_split_batchnorm(pl_module) if self.long_cycle else []
        self._user_reload_every = trainer.reload_dataloaders_every_n_epochs
        self._user_check_val_every = trainer.check_val_every_n_epoch
        original = source.dataloader
        source.dataloader = lambda: self._multigrid_loader(original(), trainer)  # type: ignore[method-assign]

        if self.log_schedule:
            from lightning_multigrid.schedule_report import format_schedule_table

            rank_zero_info(
                f"MultigridCallback: baseline {baseline_epochs} epochs -> multigrid {self.schedule.max_epochs} "
                f"epochs on {self.world_size} device(s)\n"
                + format_schedule_table(self.schedule, self.world_size, len(self._dataset))
            )

    def _check_loader(self, loader: Any) -> DataLoader:
        if not isinstance(loader, DataLoader):
            raise TypeError(
                "MultigridCallback needs a single torch DataLoader as the train loader, got "
                f"{type(loader).__name__}; combined or iterable loaders cannot take a batch sampler"
            )
        dataset = loader.dataset
        if isinstance(dataset, torch.utils.data.IterableDataset) or not hasattr(dataset, "__len__"):
            raise TypeError(
                f"MultigridCallback needs a map-style train dataset; {type(dataset).__name__} is iterable "
                "(pytorchvideo's video datasets are: use lightning_multigrid.data datasets instead)"
            )
        if not accepts_clip_keys(dataset):
            raise TypeError(
                f"train dataset {type(dataset).__name__} does not accept (index, shape) keys: set "
                "`accepts_clip_keys = True` on it and decode `ClipKey.shape` in __getitem__ "
                "(see lightning_multigrid.keys.unpack_key)"
            )
        batch_size = loader.batch_size or getattr(loader.batch_sampler, "batch_size", None)
        if not batch_size:
            raise ValueError("MultigridCallback: cannot tell the train loader's batch size")
        self._batch_size = int(batch_size)
        return loader

    def _recipe(self, dataset: Any, global_batch: int, trainer: pl.Trainer) -> BaseRecipe:
        base: ClipShape | None = getattr(dataset, "base_shape", None)

        def pick(value: Any, from_base: Callable[[ClipShape], Any], name: str) -> Any:
            if value is not None:
                return value
            if base is None:
                raise ValueError(
                    f"MultigridCallback: pass `{name}=` or give the train dataset a `base_shape` ClipShape"
                )
            return from_base(base)

        return BaseRecipe(
            steps=self.steps,
            max_epochs=int(trainer.max_epochs),  # type: ignore[arg-type]
            num_frames=pick(self.num_frames, lambda b: b.num_frames, "num_frames"),
            crop_size=pick(self.crop_size, lambda b: b.crop_size, "crop_size"),
            batch_size=global_batch,
            sampling_rate=pick(self.sampling_rate, lambda b: b.stride_range[0], "sampling_rate"),
            jitter_scales=self.jitter_scales if self.jitter_scales is not None else (base.jitter_range if base else None),
            gamma=self.gamma,
            epoch_factor=self.epoch_factor,
            long_cycle=self.long_cycle,
            short_cycle=self.short_cycle,
            long_cycle_factors=self.long_cycle_factors,
            short_cycle_factors=self.short_cycle_factors,
            bn_base_size=self.bn_base_size,
            eval_freq=self.eval_freq,
        )

    def _stage_bn_plans(self) -> list[BatchNormPlan]:
        s = self.schedule
        assert s is not None
        plans = []
        for stage in s.stages:
            per_device = s.per_device_batch_size(stage.start_epoch, self.world_size)
            try:
                plans.append(s.batch_norm_plan(per_device, self.world_size) if self.long_cycle else BatchNormPlan("plain"))
            except ValueError as err:
                raise ValueError(f"stage {s.describe_stage(stage)}: {err}") from None
        return plans

    def _validate_stages(self, pl_module: pl.LightningModule) -> None:
        """Fail at setup, naming the stage, for anything that would fail at epoch 140."""
        s = self.schedule
        assert s is not None
        for stage, plan in zip(s.stages, self._stage_bn_plans()):
            if plan.reason:
                rank_zero_warn(f"MultigridCallback: stage {s.describe_stage(stage)}: plain BN ({plan.reason})")
        requirements = _find_requirements(pl_module)
        alpha = getattr(self._dataset, "slowfast_alpha", None)
        per_rank = -(-len(self._dataset) // self.world_size)
        for stage in s.stages:
            where = f"multigrid stage {s.describe_stage(stage)}"
            sizes = s.epoch_batch_sizes(stage.start_epoch, self.world_size)
            if batches_per_epoch(per_rank, sizes, drop_last=True) == 0:
                raise ValueError(
                    f"{where}: the first short-cycle batch needs {sizes[0]} clips per device but the train "
                    f"dataset has only {per_rank} per device; use more data or a smaller batch_size"
                )
            if alpha and stage.num_frames % alpha:
                raise ValueError(
                    f"{where}: T={stage.num_frames} is not divisible by the dataset's SlowFast alpha={alpha}; "
                    "change num_frames or long_cycle_factors"
                )
            if requirements is not None:
                from lightning_multigrid.models import check_clip_shape

                for shape in epoch_clip_shapes(s, stage.start_epoch):
                    check_clip_shape(requirements, shape.num_frames, shape.crop_size, where)

    # ------------------------------------------------------------------------------------------
    # the train loader
    # ------------------------------------------------------------------------------------------
    def _multigrid_loader(self, loader: Any, trainer: pl.Trainer) -> DataLoader:
        """Rebuild the user's train loader around a MultigridBatchSampler for the coming epoch.

        Called by Lightning inside its loader request (so a DistributedSampler can still be
        injected into the batch sampler when ``use_distributed_sampler=True``).
        """
        loader = self._check_loader(loader)
        dataset = loader.dataset
        if self.world_size > 1:
            # Our own distributed split, so use_distributed_sampler=False works too; Lightning may
            # replace it with its own DistributedSampler, which is equivalent.
            inner: Any = DistributedSampler(
                dataset, num_replicas=self.world_size, rank=trainer.global_rank, shuffle=True, seed=self.seed
            )
        else:
            inner = SeededRandomSampler(dataset, seed=self.seed)
        epoch = trainer.current_epoch
        inner.set_epoch(epoch)
        # Always drop the last partial batch: it would be the only batch whose size the BN
        # splits do not divide, and ranks must agree on batch counts anyway.
        batch_sampler = MultigridBatchSampler(
            inner, batch_size=self._batch_size, drop_last=True, schedule=self.schedule, epoch=epoch
        )
        kwargs = {name: getattr(loader, name) for name in _LOADER_ATTRIBUTES if hasattr(loader, name)}
        if loader.num_workers > 0:
            kwargs["prefetch_factor"] = loader.prefetch_factor
        else:
            kwargs.pop("persistent_workers", None)
        return DataLoader(dataset, batch_sampler=batch_sampler, **kwargs)

    # ------------------------------------------------------------------------------------------
    # per-epoch and per-iteration changes
    # ------------------------------------------------------------------------------------------
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.schedule is None:
            return
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
        self._base_lrs = [
            [float(g.get("initial_lr", g["lr"])) for g in opt.param_groups] for opt in trainer.optimizers
        ]

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.schedule is None:
            return
        epoch = trainer.current_epoch
        # The loader for this epoch is built; go back to the user's reload setting.
        trainer.reload_dataloaders_every_n_epochs = self._user_reload_every
        if self.long_cycle:
            per_device = self.schedule.per_device_batch_size(epoch, self.world_size)
            plan = self.schedule.batch_norm_plan(per_device, self.world_size)
            # Restart every split from the merged statistics each epoch: a resumed run then matches
            # an uninterrupted one exactly (split buffers are not checkpointed, merged ones are).
            bn.apply_batchnorm_plan(pl_module, plan, self._sync_groups)
        if self.follow_eval_schedule and self._user_check_val_every is not None:
            evaluate = self.schedule.is_eval_epoch(epoch) and (epoch + 1) % self._user_check_val_every == 0
            # Lightning validates when (epoch + 1) % check_val_every_n_epoch == 0.
            trainer.check_val_every_n_epoch = 1 if evaluate else epoch + 2

    def lr_factor(self, epoch: float) -> float:
        """Relative LR at a fractional epoch (what the callback multiplies base LRs by)."""
        assert self.schedule is not None and self.lr_policy is not None
        return self.schedule.lr_factor(
            epoch, self.lr_policy, self.warmup_epochs, self.warmup_start_factor, self.cosine_end_factor
        )

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int) -> None:
        s = self.schedule
        if s is None:
            return
        epoch = trainer.current_epoch
        if self.lr_policy is not None:
            fraction = batch_idx / max(trainer.num_training_batches, 1)
            self._current_lr_factor = self.lr_factor(epoch + fraction)
            for opt, base_lrs in zip(trainer.optimizers, self._base_lrs):
                for group, base_lr in zip(opt.param_groups, base_lrs):
                    group["lr"] = base_lr * self._current_lr_factor
        slots = epoch_clip_shapes(s, epoch)
        slot = batch_idx % len(slots)
        per_device = s.per_device_batch_size(epoch, self.world_size)
        multiplier = s.short_cycle_slots(epoch)[slot].batch_multiplier
        pl_module.log_dict(
            {
                "multigrid/num_frames": float(slots[slot].num_frames),
                "multigrid/crop_size": float(slots[slot].crop_size),
                "multigrid/batch_size": float(per_device * multiplier),
                "multigrid/lr_factor": float(self._current_lr_factor),
                "multigrid/stage": float(s.stage_index_at(epoch)),
            },
            on_step=True,
            on_epoch=False,
            batch_size=1,
            rank_zero_only=True,
        )

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        s = self.schedule
        if s is None or self.precise_bn_batches == 0 or not self._has_batchnorm(pl_module):
            return
        last = batch_idx + 1 >= trainer.num_training_batches
        if last and s.is_eval_epoch(trainer.current_epoch):
            self._precise_bn(trainer, pl_module)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        s = self.schedule
        if s is None:
            return
        epoch = trainer.current_epoch
        if epoch + 1 < s.max_epochs and s.stage_index_at(epoch + 1) != s.stage_index_at(epoch):
            # Lightning fixes a loader's length when it builds it: a new stage needs a new loader.
            trainer.reload_dataloaders_every_n_epochs = 1

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage == "fit" and self._bn_layers:
            bn.revert_to_batchnorm(pl_module)
            self._bn_layers = []

    # ------------------------------------------------------------------------------------------
    # precise BN
    # ------------------------------------------------------------------------------------------
    @staticmethod
    def _has_batchnorm(module: torch.nn.Module) -> bool:
        return any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in module.modules())

    def _precise_bn(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Recompute BN statistics at the epoch's base shape (no short cycle)."""
        s = self.schedule
        assert s is not None and self._loader_template is not None
        epoch = trainer.current_epoch
        base_shape = epoch_clip_shapes(s, epoch)[-1]
        batch_size = s.per_device_batch_size(epoch, self.world_size)
        n = len(self._dataset)
        generator = torch.Generator().manual_seed(self.seed + 7919 * epoch + trainer.global_rank)
        order = torch.randperm(n, generator=generator).tolist()
        num_batches = min(self.precise_bn_batches, n // batch_size)
        if num_batches == 0:
            rank_zero_warn(f"MultigridCallback: precise BN skipped (dataset of {n} < one batch of {batch_size})")
            return
        batches = [
            [ClipKey(i, base_shape) for i in order[b * batch_size : (b + 1) * batch_size]] for b in range(num_batches)
        ]
        template = self._loader_template
        loader = DataLoader(
            self._dataset,
            batch_sampler=batches,
            num_workers=template.num_workers,
            collate_fn=template.collate_fn,
            pin_memory=template.pin_memory,
            worker_init_fn=template.worker_init_fn,
        )
        forward = self.precise_bn_forward or _default_forward
        strategy = trainer.strategy

        def run(module: torch.nn.Module, batch: Any) -> Any:
            return forward(pl_module, strategy.batch_to_device(batch))

        used = bn.update_bn_stats(pl_module, loader, num_batches=num_batches, forward=run)
        rank_zero_info(f"MultigridCallback: precise BN over {used} batches of {base_shape} at epoch {epoch}")

    # ------------------------------------------------------------------------------------------
    # resume
    # ------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        if self.schedule is None:
            return {}
        return {
            "recipe": _jsonable(asdict(self.schedule.recipe)),
            "max_epochs": self.schedule.max_epochs,
            "seed": self.seed,
            "world_size": self.world_size,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Check the checkpoint's recipe against this run's (both are built at setup)."""
        if not state_dict or self.schedule is None:
            self._saved_state = state_dict
            return
        saved = state_dict["recipe"]
        now = _jsonable(asdict(self.schedule.recipe))
        changed = {k: (saved.get(k), now[k]) for k in now if saved.get(k) != now[k]}
        if changed:
            detail = "; ".join(f"{k}: checkpoint {a} vs now {b}" for k, (a, b) in changed.items())
            raise ValueError(
                "MultigridCallback: the checkpoint was trained with a different multigrid recipe, so the "
                f"resumed schedule would not match ({detail}). Resume with the same Trainer/DataModule/"
                "callback settings."
            )
        self.seed = state_dict.get("seed", self.seed)


def _jsonable(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, float) and math.isfinite(value):
        return round(value, 12)
    return value


def _default_forward(pl_module: pl.LightningModule, batch: Any) -> Any:
    if isinstance(batch, dict):
        return pl_module(batch["video"])
    if isinstance(batch, (list, tuple)):
        return pl_module(batch[0])
    return pl_module(batch)


def _find_requirements(module: torch.nn.Module) -> Any:
    """The first ``multigrid_requirements`` attribute on the module or a submodule (zoo models set it)."""
    for sub in module.modules():
        requirements = getattr(sub, "multigrid_requirements", None)
        if requirements is not None:
            return requirements
    return None
