"""One fit of :class:`~lightning_multigrid.callback.hooks.MultigridCallback`: what it builds and decides.

:class:`RunSettings` is what the user gave the callback (validated when the callback is built).
:class:`MultigridRun` is created at Lightning's first train-loader request of a fit, when the
dataset, the per-device batch, the world size and any restored checkpoint are all known. It builds
the schedule, checks it (:mod:`~lightning_multigrid.schedule.config_checks`, :mod:`~lightning_multigrid.callback.model_probe`),
converts BN, and from then on answers every per-epoch and per-batch question as a pure function of
``(schedule, epoch, batch)``, so a run resumed from any checkpoint trains exactly what the
uninterrupted run trains. The callback only forwards Lightning's hooks to it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch

from lightning_multigrid import adapters
from lightning_multigrid.batchnorm import convert as bn
from lightning_multigrid.batchnorm import precise as precise_bn
from lightning_multigrid.callback import compat
from lightning_multigrid.callback import model_probe as checks
from lightning_multigrid.callback.batch_access import batch_video, replace_batch_video
from lightning_multigrid.namespace import rank_zero_info, rank_zero_warn
from lightning_multigrid.sampling import loaders
from lightning_multigrid.schedule import config_checks as validation
from lightning_multigrid.schedule.lr import LrPolicy, apply_lr_factor
from lightning_multigrid.schedule.model_requirements import find_requirements
from lightning_multigrid.schedule.multigrid import MultigridSchedule
from lightning_multigrid.schedule.recipe import BaseRecipe, ClipShape

__all__ = ["RunSettings", "MultigridRun", "recipe_state", "precise_bn_allocation"]

# How a base-shape setting the user left unset is read from the dataset's ``base_shape``.
_FROM_BASE_SHAPE: dict[str, Callable[[ClipShape], Any]] = {
    "num_frames": lambda b: b.num_frames,
    "crop_size": lambda b: b.crop_size,
    "sampling_rate": lambda b: b.stride_range[0],
    "jitter_scales": lambda b: b.jitter_range,
}


@dataclass(frozen=True)
class RunSettings:
    """The callback's arguments, checked once (see :class:`MultigridCallback` for their meaning).

    ``cycle`` holds the :class:`BaseRecipe` fields of the method, ``base`` the base clip shape
    (``None``: read from the dataset); with ``owns_lr=False`` the LR is left to the user.
    """

    steps: tuple[int, ...]
    cycle: dict[str, Any]
    base: dict[str, Any]
    lr: LrPolicy
    owns_lr: bool
    precise_bn_batches: int
    precise_bn_budget: float
    follow_eval_schedule: bool
    baseline_epochs: int | None
    seed: int | None
    precise_bn_forward: Callable[[Any, Any], Any] | None
    probe_shapes: bool
    log_schedule: bool

    def __post_init__(self) -> None:
        if self.precise_bn_batches < 0:
            raise ValueError(f"precise_bn_batches must be >= 0, got {self.precise_bn_batches}")
        if not 0 < self.precise_bn_budget <= 1:
            raise ValueError(f"precise_bn_budget must be in (0, 1], got {self.precise_bn_budget}")
        if self.baseline_epochs is not None and self.baseline_epochs < 1:
            raise ValueError(f"baseline_epochs must be >= 1, got {self.baseline_epochs}")
        validation.check_batch_cap_setting(self.cycle["max_batch_factor"])

    def recipe(self, dataset: Any, baseline_epochs: int, global_batch: int, world_size: int = 1,
               saved: dict[str, Any] | None = None, existing: BaseRecipe | None = None) -> BaseRecipe:
        """The baseline recipe: these settings, unset base-shape fields from ``dataset.base_shape``;
        ``max_batch_factor`` applied (:func:`~.config_checks.with_batch_cap`)."""
        base: ClipShape | None = getattr(dataset, "base_shape", None)
        given = {}
        for name, value in self.base.items():
            if value is None and base is not None:
                value = _FROM_BASE_SHAPE[name](base)
            elif value is None and name in ("num_frames", "crop_size"):
                raise ValueError(f"MultigridCallback: pass `{name}=` or give the train dataset a `base_shape` ClipShape")
            if value is not None:  # unset stride and jitter take BaseRecipe's defaults
                given[name] = value
        recipe = BaseRecipe(steps=list(self.steps), max_epochs=baseline_epochs, batch_size=global_batch,
                            **given, **{**self.cycle, "max_batch_factor": None})
        size = len(dataset) if hasattr(dataset, "__len__") else None
        return validation.with_batch_cap(recipe, self.cycle["max_batch_factor"], size, world_size, saved, existing)


#: Recipe fields that change the LR alone, not which clips a sampler draws.
_LR_ONLY_FIELDS = ("gamma", "lr_scaling")


def recipe_state(recipe: BaseRecipe) -> dict[str, Any]:
    """``recipe`` as JSON-safe values (what a checkpoint stores and a resume compares)."""
    return _jsonable(asdict(recipe))


class MultigridRun:
    """Everything one fit needs, built at its first train-loader request (see the module doc)."""

    def __init__(
        self,
        settings: RunSettings,
        trainer: Any,
        pl_module: Any,
        loader: Any,
        patch: compat.TrainerPatch,
        baseline_epochs: int,
        base_lrs: list[list[float]],
        loaded_state: dict[str, Any],
    ) -> None:
        self.settings, self.patch, self.base_lrs, self.module = settings, patch, base_lrs, pl_module
        self.world_size, self.rank = trainer.world_size, trainer.global_rank
        # A resumed run keeps its checkpoint's seed; else the callback's, else seed_everything's.
        seed = loaded_state.get("seed", settings.seed)
        self.seed = int(os.environ.get("PL_GLOBAL_SEED", 0)) if seed is None else int(seed)
        self.user_val_every = trainer.check_val_every_n_epoch or 1
        keyed, self.batch_size = loaders.check_train_loader(loader)
        existing = getattr(getattr(loader, "batch_sampler", None), "schedule", None)
        self.schedule = MultigridSchedule(settings.recipe(
            keyed if keyed is not None else loader.dataset, baseline_epochs, self.batch_size * self.world_size,
            self.world_size, loaded_state.get("recipe"), None if existing is None else existing.recipe))
        theirs = {} if existing is None else recipe_state(existing.recipe)
        ours = recipe_state(self.schedule.recipe)
        # The sampler's keys do not depend on the LR (the callback's own schedule sets it).
        differ = "; ".join(f"{k}: sampler {theirs.get(k)!r} vs callback {v!r}" for k, v in ours.items()
                           if k not in _LR_ONLY_FIELDS and theirs.get(k) != v)
        if existing is not None and differ:
            raise ValueError(
                "MultigridCallback: the train loader already has a MultigridBatchSampler built from another "
                f"recipe ({differ}); let the callback build it (use a plain DataLoader) or give both the same settings"
            )
        _check_resumed_recipe(loaded_state.get("recipe"), self.schedule.recipe)
        validation.check_accumulation(trainer.accumulate_grad_batches, self.schedule.num_slots)
        r = self.schedule.recipe
        self.resample_base = None if keyed is not None else ClipShape(
            r.num_frames, r.crop_size, (r.sampling_rate,) * 2, r.jitter_scales)
        if self.resample_base is not None:
            rank_zero_info(
                f"MultigridCallback: {type(loader.dataset).__name__} does not accept (index, shape) keys, so its "
                "base-shape clips are resampled on the device to each grid's shape: the compute saving holds, "
                "the data cost does not shrink (see lightning_multigrid.adapters for the faster tiers)"
            )
        if self.resample_base is not None:
            checks.check_base_clips(loader.dataset, self.resample_base, loader.collate_fn)
        self.source: Any = self._source(loader, keyed)
        self.loader: Any = None
        self.loader_stage = -1
        self.lr_factor_now = 1.0
        self._check_and_prepare(trainer, pl_module)

    # -- setup ---------------------------------------------------------------------------------
    def _source(self, loader: Any, keyed: Any) -> loaders.LoaderSource:
        """Loaders over the dataset the sampler's keys index: key-aware, or tier 3 (base-shape clips)."""
        if keyed is None:
            assert self.resample_base is not None
            keyed = adapters.BaseShapeDataset(loader.dataset, self.resample_base)
        return loaders.LoaderSource(loader, keyed, self.schedule, self.seed, self.world_size, self.rank)

    def _check_and_prepare(self, trainer: Any, pl_module: Any) -> None:
        s, dataset, settings = self.schedule, self.source.dataset, self.settings
        requirements = find_requirements(pl_module)
        alpha = getattr(dataset, "slowfast_alpha", None)
        for warning in validation.validate_stages(s, self.world_size, len(dataset), alpha, requirements):
            rank_zero_warn(f"MultigridCallback: {warning}")
        checks.check_forward_defined(pl_module, settings.precise_bn_forward is not None, settings.precise_bn_batches)
        if settings.probe_shapes and (settings.precise_bn_forward is not None or settings.precise_bn_batches > 0):
            checks.probe_forward(
                pl_module, dataset, s, self.source.template.collate_fn, trainer.strategy.batch_to_device, self.forward,
                reshape=self.reshape if self.resample_base else None,
            )
        self.sync_groups: dict[int, Any] = {}
        if self.world_size > 1 and torch.distributed.is_available() and torch.distributed.is_initialized():
            # Sync-BN groups must be created by every rank, in the same order, before training.
            sizes = {p.sync_size for p in validation.stage_bn_plans(s, self.world_size) if p.mode == "sync"}
            self.sync_groups = {size: bn.new_sync_groups(size) for size in sorted(sizes)}
        if s.recipe.long_cycle:
            bn.convert_to_split_batchnorm(pl_module)
        self.precise_bn_batches = precise_bn_allocation(
            len(s.validation_epochs(self.user_val_every)), s.iterations(len(dataset), self.world_size),
            settings.precise_bn_batches, settings.precise_bn_budget)
        self.patch.set_max_epochs(s.max_epochs)
        # Training slots, precise BN and validation at every grid, with room for a last partial batch.
        shapes = 3 * len({(b, c.num_frames, c.crop_size) for e in range(s.max_epochs)
                          for b, c in zip(s.epoch_batch_sizes(e, self.world_size), s.clip_shapes(e))})
        if self.patch.ensure_recompile_limit(shapes) and checks.uses_compile(pl_module):  # silent without compile
            rank_zero_info(f"MultigridCallback: torch.compile may recompile for each of up to {shapes} input shapes "
                           "of this schedule; raised torch._dynamo.config.recompile_limit to that")
        if settings.log_schedule:
            from lightning_multigrid.schedule.report import format_schedule_table  # noqa: PLC0415 - report only

            rank_zero_info(
                f"MultigridCallback: baseline {s.recipe.max_epochs} epochs -> multigrid {s.max_epochs} epochs "
                f"on {self.world_size} device(s)\n" + format_schedule_table(
                    s, self.world_size, len(dataset), settings.lr if settings.owns_lr else None)
            )

    # -- loaders ---------------------------------------------------------------------------------
    def train_loader(self, trainer: Any, loader: Any) -> Any:
        """The loader of the epoch that will run: the fit's loader moved to that epoch, or a new one."""
        epoch = compat.epoch_to_run(trainer)
        self.loader_stage = self.schedule.stage_index_at(epoch)
        if self.loader is not None and loader.dataset is self.source.template.dataset:
            # A stage change: the same loader (and its workers) at the new epoch's len().
            self.loader.batch_sampler.set_epoch(epoch)
            return self.loader
        if self.loader is not None:
            self.loader.close()
        if loader is not self.source.template:  # the first request's loader was checked at setup
            keyed, _ = loaders.check_train_loader(loader)
            self.source = self._source(loader, keyed)
        self.loader = self.source.train_loader(self.batch_size, epoch, start_batch=compat.batches_done_in_epoch(trainer))
        return self.loader

    def needs_new_loader(self, epoch: int) -> bool:
        """Lightning fixes a loader's length when it builds it: a new stage needs a new loader."""
        return epoch < self.schedule.max_epochs and self.schedule.stage_index_at(epoch) != self.loader_stage

    def release(self) -> None:
        """Stop the fit's loader workers, drop its loaders and model; the schedule stays."""
        if self.loader is not None:
            self.loader.close()
        self.loader = self.source = self.module = None

    def state(self) -> dict[str, Any]:
        """What a checkpoint needs to resume this run exactly (the callback adds its version)."""
        state: dict[str, Any] = {"recipe": recipe_state(self.schedule.recipe), "max_epochs": self.schedule.max_epochs,
                                 "seed": self.seed, "world_size": self.world_size}
        trainer = getattr(self.module, "_trainer", None)
        if self.module is not None and trainer is not None:
            # Split statistics are not in the (plain-BN) model state; a mid-epoch resume needs them.
            state["split_bn"] = {"epoch": trainer.current_epoch, "statistics": bn.split_statistics(self.module)}
        return state

    # -- per epoch and per batch ---------------------------------------------------------------
    def enter_epoch(self, pl_module: Any, epoch: int, restart_splits: bool) -> None:
        """BN grouping and validation gating of ``epoch``."""
        s = self.schedule
        if s.recipe.long_cycle:
            self._apply_bn_plan(pl_module, epoch)
            if restart_splits:
                bn.restart_splits(pl_module)
        if self.settings.follow_eval_schedule:
            self.patch.set_validate_this_epoch(self.validates(epoch), epoch)

    def _apply_bn_plan(self, pl_module: Any, epoch: int) -> None:
        s = self.schedule
        plan = s.batch_norm_plan(s.per_device_batch_size(epoch, self.world_size), self.world_size)
        bn.apply_batchnorm_plan(pl_module, plan, self.sync_groups)

    def continue_epoch(self, trainer: Any, pl_module: Any, saved_splits: dict[str, Any] | None) -> None:
        """A mid-epoch resume gets no ``on_train_epoch_start``: apply the epoch's state, its split
        statistics from the checkpoint and the LR of the next batch (a no-op in any other start)."""
        done = compat.batches_done_in_epoch(trainer)
        if done == 0:
            return
        epoch = trainer.current_epoch
        self.enter_epoch(pl_module, epoch, restart_splits=False)
        if saved_splits and saved_splits["epoch"] == epoch:
            bn.load_split_statistics(pl_module, saved_splits["statistics"])
        self.set_lr(trainer, epoch, done)

    def validates(self, epoch: int) -> bool:
        if not self.settings.follow_eval_schedule:
            return (epoch + 1) % self.user_val_every == 0 or epoch + 1 == self.schedule.max_epochs
        return epoch in self.schedule.validation_epochs(self.user_val_every)

    def lr_factor(self, epoch: float) -> float:
        return self.settings.lr.factor(self.schedule, epoch)

    def set_lr(self, trainer: Any, epoch: int, batch_idx: int) -> None:
        """Set the LR of batch ``batch_idx`` before it starts, so any logger reads the right one."""
        if not self.settings.owns_lr:
            return
        self.lr_factor_now = self.lr_factor(epoch + batch_idx / max(trainer.num_training_batches, 1))
        apply_lr_factor(trainer.optimizers, self.base_lrs, self.lr_factor_now)

    def batch_values(self, epoch: int, batch_idx: int) -> dict[str, float]:
        """What the callback logs for a batch: its grid, batch size, LR factor and stage."""
        slot = self.schedule.batch_slot(batch_idx)
        shape = self.schedule.clip_shapes(epoch)[slot]
        sizes = self.schedule.epoch_batch_sizes(epoch, self.world_size)
        return {
            "multigrid/num_frames": float(shape.num_frames),
            "multigrid/crop_size": float(shape.crop_size),
            "multigrid/batch_size": float(sizes[slot]),
            "multigrid/lr_factor": float(self.lr_factor_now),
            "multigrid/stage": float(self.schedule.stage_index_at(epoch)),
        }

    def reshape_batch(self, batch: Any, epoch: int, batch_idx: int) -> None:
        """Tier 3: resample the batch to its slot's shape (a no-op for key-aware datasets)."""
        if self.resample_base is not None:
            shape = self.schedule.clip_shapes(epoch)[self.schedule.batch_slot(batch_idx)]
            self.reshape(batch, shape, (epoch, batch_idx, self.rank))

    def reshape(self, batch: Any, shape: ClipShape, where: tuple[int, ...] = (0,)) -> None:
        """Resample a batch of base-shape clips to ``shape`` in place (random choices are a pure
        function of the seed and ``where``, so a resumed run draws the same)."""
        assert self.resample_base is not None
        generator = torch.Generator().manual_seed(hash((self.seed, *where)) % (2**63))
        video = batch_video(batch)
        replace_batch_video(batch, adapters.resample_clips(video, self.resample_base, shape, generator))

    def forward(self, pl_module: Any, batch: Any) -> Any:
        return (self.settings.precise_bn_forward or checks.default_forward)(pl_module, batch)

    def precise_bn(self, trainer: Any, pl_module: Any, epoch: int) -> None:
        """Recompute BN statistics for the validation that follows: at the shape, batch and BN plan
        of the final stage (the base shape, which the user's validation loader feeds), not at the
        epoch's grid. The reference validates at the grid, so it computes them there; statistics of
        4-frame 45-pixel clips read by a 16-frame 64-pixel validation halved its accuracy after every
        stage change (issue 24)."""
        if not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in pl_module.modules()):
            return
        intermediate, final = self.precise_bn_batches
        last = self.schedule.max_epochs - 1
        count = final if epoch == last else intermediate
        if count == 0:
            return  # out of budget: this validation reads the running (merged) statistics
        loader = self.source.precise_bn_loader(epoch, count, shape_epoch=last)
        if loader is None:
            rank_zero_warn(f"MultigridCallback: precise BN skipped at epoch {epoch} (dataset smaller than one batch)")
            return
        base_shape = self.schedule.base_shape(last)

        def run(module: Any, batch: Any) -> Any:
            batch = trainer.strategy.batch_to_device(batch)
            if self.resample_base is not None:
                self.reshape(batch, base_shape, (epoch, -1, self.rank))
            return self.forward(pl_module, batch)

        switch = self.schedule.recipe.long_cycle and epoch != last
        if switch:
            self._apply_bn_plan(pl_module, last)
        try:
            used = precise_bn.update_bn_stats(pl_module, loader, num_batches=len(loader), forward=run)
        finally:
            if switch:  # the epoch's own split count again, every split starting from the new statistics
                self._apply_bn_plan(pl_module, epoch)
        rank_zero_info(f"MultigridCallback: precise BN over {used} batches at epoch {epoch}")


def precise_bn_allocation(num_calls: int, iterations: float, max_batches: int, budget: float) -> tuple[int, int]:
    """Precise-BN batches ``(at each other validation, at the final one)``.

    At most ``budget`` x ``iterations`` batches over the run, and ``max_batches`` per call. The
    final validation's statistics are the trained model's, so it is served first; what is left is
    spread over the other validations, which read the running (split-merged) statistics when their
    share is 0. A handful of clips estimates BN statistics worse than the running average does, so
    spreading a small budget thinly over every validation would make the model worse, not better.
    """
    total = int(budget * iterations)
    final = min(max_batches, max(1, total))
    return min(max_batches, max(0, total - final) // max(num_calls - 1, 1)), final


def _check_resumed_recipe(saved: dict[str, Any] | None, recipe: BaseRecipe) -> None:
    if saved is None:
        return
    now = recipe_state(recipe)
    if "short_cycle_min_crop" not in saved and recipe.short_cycle_crop_factors == (
            recipe.short_cycle_factors if recipe.short_cycle else ()):
        # A checkpoint from before the floor existed: the floor leaves this recipe's crops alone.
        saved = {**saved, "short_cycle_min_crop": now["short_cycle_min_crop"]}
    for option, reference in (("spatial_coarsening", "rescale"), ("lr_scaling", "linear"), ("max_batch_factor", None)):
        if option not in saved:  # a checkpoint from before the option: the reference's way
            saved = {**saved, option: reference}
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
