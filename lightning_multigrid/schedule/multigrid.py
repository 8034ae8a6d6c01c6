"""Multigrid schedule arithmetic (Wu et al., CVPR 2020), pure Python: no torch import.

Everything the callback, the sampler and the ``schedule`` command need to know about *when* which
clip shape is used is computed here from the baseline recipe, deterministically. The long-cycle
arithmetic reproduces the reference implementation number for number (see ``docs/method.md``);
its known defects are fixed:

* long cycle without short cycle builds its fine-tuning phase from the last shape (the reference
  indexed a short-cycle shape that does not exist and crashed);
* the BatchNorm split factor is validated instead of truncated with ``int()``;
* sync-BN groups larger than the available devices fall back to plain BN with a reason;
* the cosine policy keeps the long-cycle batch-factor scaling instead of silently dropping it;
* batch counts are exact (:func:`batches_per_epoch`), never an estimate.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from lightning_multigrid.schedule.recipe import (
    BaseRecipe,
    BatchNormPlan,
    ClipShape,
    ShortCycleSlot,
    Stage,
)
from lightning_multigrid.schedule.slots import batches_per_epoch, samples_per_rank

__all__ = ["MultigridSchedule"]


@dataclass
class MultigridSchedule:
    """The multigrid schedule derived from a :class:`BaseRecipe`.

    Attributes:
        recipe: the baseline recipe.
        stages: the non-empty stages in order (the fine-tuning phase is the last one).
        lr_milestones: epochs where the relative LR changes, starting with 0.
        lr_factors: relative LR (before the base LR) from each milestone on.
        max_epochs: total multigrid epochs.
        iter_saving: iterations saved by the long cycle's reshuffled stages (mean batch factor).
    """

    recipe: BaseRecipe
    stages: list[Stage] = field(init=False)
    lr_milestones: list[int] = field(init=False)
    lr_factors: list[float] = field(init=False)
    max_epochs: int = field(init=False)
    iter_saving: float = field(init=False)

    def __post_init__(self) -> None:
        r = self.recipe
        if r.long_cycle:
            self._build_long_cycle()
        else:
            # Short cycle only stretches the baseline by epoch_factor; with no cycle at all the
            # schedule is the baseline itself (useful to run a baseline through the same code).
            factor = r.epoch_factor if r.short_cycle_crop_factors else 1.0
            self.max_epochs = int(r.max_epochs * factor)
            self.lr_milestones = [int(s * factor) for s in r.steps]
            self.lr_factors = [r.gamma**i for i in range(len(r.steps))]
            bounds = self.lr_milestones + [self.max_epochs]
            self.stages = [
                Stage(i, 1, r.num_frames, r.crop_size, bounds[i], bounds[i + 1])
                for i in range(len(r.steps))
                if bounds[i + 1] > bounds[i]
            ]
            self.iter_saving = 1.0
        self._stage_ends = [s.end_epoch for s in self.stages]

    # ----------------------------------------------------------------------------------------
    # Long-cycle arithmetic (reference-exact)
    # ----------------------------------------------------------------------------------------
    def long_cycle_grids(self) -> list[list[tuple[int, int, float]]]:
        """Per long-cycle factor, its ``(b, T, S)`` shapes; the last one is the factor's base.

        With the short cycle on, the first two ``S`` values are the *unrounded* short-cycle crops,
        exactly as the reference computes them (they only enter the batch-factor average).
        """
        r = self.recipe
        default_size = float(r.num_frames * r.crop_size**2)
        grids = []
        for tf, sf in r.long_cycle_factors:
            base_t = int(round(r.num_frames * tf))
            base_s = int(round(r.crop_size * sf))
            # Without short-cycle factors in use (cycle off, or every crop under the floor): the base only.
            ts = [(base_t, r.crop_size * f) for f in r.short_cycle_crop_factors] + [(base_t, base_s)]
            grids.append([(int(round(default_size / (t * s * s))), t, s) for t, s in ts])
        return grids

    def _build_long_cycle(self) -> None:
        r = self.recipe
        grids = self.long_cycle_grids()
        avg_b = [sum(g[0] for g in grid) / len(grid) for grid in grids]
        raw: list[tuple[int, tuple[int, int, int], float]] = []
        total_iters = 0.0
        for k in range(len(r.steps) - 1):
            stage_epochs = r.steps[k + 1] - r.steps[k]
            for i, grid in enumerate(grids):
                epochs = stage_epochs * avg_b[i] / sum(avg_b)
                total_iters += epochs / avg_b[i]
                b, t, s = grid[-1]
                raw.append((k, (b, t, int(s)), epochs))
        self.iter_saving = r.steps[-1] / total_iters
        # Fine-tuning at the default shape: the LAST factor's base shape (the reference indexed
        # grid[2], which only exists with the short cycle on).
        ft_epochs = (r.max_epochs - r.steps[-1]) / self.iter_saving * avg_b[-1]
        b, t, s = grids[-1][-1]
        raw.append((len(r.steps) - 1, (b, t, int(s)), ft_epochs))

        scale = r.max_epochs * r.epoch_factor / sum(e for _, _, e in raw)
        stages: list[Stage] = []
        cumulative = 0.0
        previous_end = 0
        for index, (lr_stage, (b, t, s), epochs) in enumerate(raw):
            cumulative += epochs * scale
            end = int(round(cumulative))
            is_ft = index == len(raw) - 1
            if end > previous_end:
                # The epochs are the reference's arithmetic; max_batch_factor only splits them into more steps.
                stages.append(Stage(lr_stage, r.capped_batch_factor(b), t, s, previous_end, end, is_ft))
            previous_end = max(previous_end, end)
        self.stages = stages
        self.max_epochs = stages[-1].end_epoch

        # Relative LR: gamma**lr_stage times the long-cycle base batch factor (linear scaling, or its
        # square root with lr_scaling="sqrt");
        # the fine-tuning phase is halved: the first half keeps the previous relative LR.
        # The first half of fine-tuning takes the LR of the last long-cycle grid of the last LR
        # stage, gamma**(L-1) * b, as the reference does, even when that stage rounded to 0 epochs
        # and was dropped (taking the last *kept* stage's LR would double it in the SSv2 recipe).
        last_grid_factor = r.gamma ** (len(r.steps) - 2) * r.lr_batch_scale(r.capped_batch_factor(grids[-1][-1][0]))
        segments: list[tuple[int, float]] = []
        for stage in stages:
            factor = r.gamma**stage.lr_stage * r.lr_batch_scale(stage.batch_factor)
            if stage.is_finetune:
                midpoint = (stage.start_epoch + stage.end_epoch) // 2
                segments.append((stage.start_epoch, last_grid_factor))
                # The fine-tuning stage's own lr_stage is the number of baseline LR stages.
                segments.append((midpoint, r.gamma**stage.lr_stage * r.lr_batch_scale(stage.batch_factor)))
            else:
                segments.append((stage.start_epoch, factor))
        # Drop empty segments (a 1-epoch fine-tuning phase has an empty first half).
        bounds = [s for s, _ in segments] + [self.max_epochs]
        kept = [(s, f) for (s, f), e in zip(segments, bounds[1:]) if e > s]
        self.lr_milestones = [s for s, _ in kept]
        self.lr_factors = [f for _, f in kept]

    # ----------------------------------------------------------------------------------------
    # Per-epoch queries
    # ----------------------------------------------------------------------------------------
    def stage_index_at(self, epoch: int) -> int:
        """Index into :attr:`stages` of the stage that contains ``epoch`` (clamped to the last)."""
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        return min(bisect.bisect_right(self._stage_ends, epoch), len(self.stages) - 1)

    def stage_at(self, epoch: int) -> Stage:
        """The stage that contains ``epoch``."""
        return self.stages[self.stage_index_at(epoch)]

    def short_cycle_slots(self, epoch: int) -> list[ShortCycleSlot]:
        """The short-cycle slots of ``epoch`` in iteration order (one slot if the cycle is off).

        Slot crops are ``round(S0 * f)`` for the two factors, then the current base crop ``S``;
        batch multipliers are ``round((S / (f * S0))**2)`` for the first two and 1 for the last.
        """
        r = self.recipe
        base_s = self.stage_at(epoch).crop_size
        slots = [
            ShortCycleSlot(int(round(r.crop_size * f)), max(1, int(round((base_s / (f * r.crop_size)) ** 2))))
            for f in r.short_cycle_crop_factors
        ]
        return slots + [ShortCycleSlot(base_s, 1)]

    @property
    def num_slots(self) -> int:
        """Short-cycle slots per cycle (the same in every epoch; 1 without the short cycle)."""
        return len(self.recipe.short_cycle_crop_factors) + 1 if self.recipe.short_cycle else 1

    def batch_slot(self, batch_idx: int) -> int:
        """The short-cycle slot of an epoch's ``batch_idx``-th batch: slots rotate from each epoch's first batch."""
        return batch_idx % self.num_slots

    def clip_shapes(self, epoch: int) -> list[ClipShape]:
        """The clip shape of each short-cycle slot at ``epoch``, in iteration order."""
        stage = self.stage_at(epoch)
        stride = self.stride_range(epoch)
        return [
            ClipShape(stage.num_frames, slot.crop_size, stride, self.jitter_range(slot.crop_size))
            for slot in self.short_cycle_slots(epoch)
        ]

    def base_shape(self, epoch: int) -> ClipShape:
        """The stage's own clip shape at ``epoch`` (the short cycle's last slot): what precise BN and
        on-device resampling use."""
        return self.clip_shapes(epoch)[-1]

    def stride_range(self, epoch: int) -> tuple[int, int]:
        """Inclusive temporal stride range: ``[r0, r0 * (T0 // T)]`` for the epoch's ``T``."""
        r = self.recipe
        t = self.stage_at(epoch).num_frames
        return (r.sampling_rate, r.sampling_rate * max(1, r.num_frames // t))

    def jitter_range(self, crop_size: int) -> tuple[int, int]:
        """Short-side rescale range for a crop: ``[round(j_min * crop / S0), j_max]`` (the spec's rule);
        with ``spatial_coarsening="crop"`` the base crop's ``[j_min, j_max]`` for every crop."""
        jmin, jmax = self.recipe.jitter_scales  # type: ignore[misc]
        if self.recipe.spatial_coarsening == "crop":
            return (jmin, jmax)
        return (max(crop_size, int(round(jmin * crop_size / self.recipe.crop_size))), jmax)

    def global_batch_size(self, epoch: int) -> int:
        """Global clips per iteration of the long-cycle base shape at ``epoch``."""
        return self.stage_at(epoch).batch_factor * self.recipe.batch_size

    def per_device_batch_size(self, epoch: int, world_size: int = 1) -> int:
        """Per-device base batch at ``epoch``; the global batch must divide evenly."""
        total = self.global_batch_size(epoch)
        if total % world_size:
            stage = self.stage_at(epoch)
            raise ValueError(
                f"batch_size: global batch {total} of stage {self.describe_stage(stage)} is not "
                f"divisible by {world_size} devices"
            )
        return total // world_size

    def lr_factor(self, epoch: float) -> float:
        """The reference's relative LR (multiply by the base LR) at a fractional epoch: piecewise
        constant over :attr:`lr_milestones`. Cosine and warmup policies: :mod:`lightning_multigrid.schedule.lr`."""
        i = max(0, bisect.bisect_right(self.lr_milestones, epoch) - 1)
        return self.lr_factors[i]

    def is_eval_epoch(self, epoch: int, eval_period: int = 1) -> bool:
        """Whether ``epoch`` (0-based) ends with evaluation/checkpointing (the reference's rule).

        With the long cycle: the last epoch of every stage plus about ``eval_freq`` per stage
        (spec section 4). Without it there are no long-cycle stages, and the reference evaluates
        every ``eval_period`` epochs (its ``TRAIN.EVAL_PERIOD``). The last epoch always qualifies.
        """
        if epoch + 1 >= self.max_epochs:
            return True
        if not self.recipe.long_cycle:
            return (epoch + 1) % eval_period == 0
        stage = self.stage_at(epoch)
        period = max((stage.end_epoch - stage.start_epoch) // self.recipe.eval_freq + 1, 1)
        return (stage.end_epoch - 1 - epoch) % period == 0

    def eval_epochs(self, eval_period: int = 1) -> list[int]:
        """All evaluation/checkpoint epochs (0-based); see :meth:`is_eval_epoch`."""
        return [e for e in range(self.max_epochs) if self.is_eval_epoch(e, eval_period)]

    def validation_epochs(self, every_n_epochs: int = 1) -> list[int]:
        """The epochs that validate when the user also asks for ``check_val_every_n_epoch=N``.

        With the long cycle, every N-th of the schedule's eval epochs (``N`` thins the schedule, it
        does not intersect with it: intersecting would validate K400 6 times for N=5 and miss the
        final epoch); without it, every N-th epoch. The final epoch is always validated.
        """
        if every_n_epochs < 1:
            raise ValueError(f"check_val_every_n_epoch must be >= 1, got {every_n_epochs}")
        if not self.recipe.long_cycle:
            return self.eval_epochs(every_n_epochs)
        evals = self.eval_epochs()
        chosen = {e for i, e in enumerate(evals) if (i + 1) % every_n_epochs == 0}
        return sorted(chosen | {self.max_epochs - 1})

    def batch_norm_plan(self, per_device_batch: int, world_size: int = 1) -> BatchNormPlan:
        """BatchNorm grouping for a per-device batch (validated, never truncated).

        ``per_device_batch / bn_base_size`` groups are used when that is a whole number greater
        than 1; a batch that is not a multiple of ``bn_base_size`` raises, because its groups
        would silently differ in size. Below ``bn_base_size``, statistics are synchronised across
        ``bn_base_size / per_device_batch`` devices when that many exist and divide the world;
        otherwise plain BN is used and :attr:`BatchNormPlan.reason` says why.
        """
        base = self.recipe.bn_base_size
        if per_device_batch < 1:
            raise ValueError(f"per-device batch must be positive, got {per_device_batch}")
        if per_device_batch == base:
            return BatchNormPlan("plain")
        if per_device_batch > base:
            if per_device_batch % base:
                raise ValueError(
                    f"bn_base_size: per-device batch {per_device_batch} is not a multiple of "
                    f"bn_base_size={base}; choose a batch size or bn_base_size so that it divides"
                )
            return BatchNormPlan("split", num_splits=per_device_batch // base)
        if base % per_device_batch:
            return BatchNormPlan(
                "plain",
                reason=f"per-device batch {per_device_batch} does not divide bn_base_size={base}",
            )
        group = base // per_device_batch
        if group > world_size or world_size % group:
            return BatchNormPlan(
                "plain",
                reason=(
                    f"sync BN over {group} devices needs a world size that is a multiple of {group}; "
                    f"have {world_size}"
                ),
            )
        return BatchNormPlan("sync", sync_size=group)

    # ----------------------------------------------------------------------------------------
    # Cost
    # ----------------------------------------------------------------------------------------
    def epoch_batch_sizes(self, epoch: int, world_size: int = 1) -> list[int]:
        """Per-device batch size of each short-cycle slot at ``epoch``."""
        return self.slot_batch_sizes(epoch, self.per_device_batch_size(epoch, world_size), scaled=True)

    def slot_batch_sizes(self, epoch: int, device_batch: int, scaled: bool = False) -> list[int]:
        """Batch size of each short-cycle slot at ``epoch`` for a base batch of ``device_batch`` clips
        (what a batch sampler knows, without the world size); ``scaled``: already the stage's batch."""
        per_device = device_batch if scaled else self.stage_at(epoch).batch_factor * device_batch
        return [per_device * slot.batch_multiplier for slot in self.short_cycle_slots(epoch)]

    def iterations(self, num_samples: int | None = None, world_size: int = 1, drop_last: bool = True) -> float:
        """Total training iterations of the multigrid schedule.

        With ``num_samples`` the count is exact for a ``DistributedSampler``-style split
        (``ceil(num_samples / world_size)`` per rank). Without it, the count per clip is returned
        (the limit of a very large dataset), which is what the theoretical speed-up uses.
        """
        total = 0.0
        for epoch in range(self.max_epochs):
            sizes = self.epoch_batch_sizes(epoch, world_size)
            if num_samples is None:
                total += len(sizes) / sum(sizes) / world_size
            else:
                total += batches_per_epoch(samples_per_rank(num_samples, world_size), sizes, drop_last)
        return total

    def baseline_iterations(self, num_samples: int | None = None, world_size: int = 1, drop_last: bool = True) -> float:
        """Total training iterations of the baseline recipe (fixed shape, ``max_epochs``)."""
        r = self.recipe
        if num_samples is None:
            return r.max_epochs / r.batch_size
        per_rank = samples_per_rank(num_samples, world_size)
        return r.max_epochs * batches_per_epoch(per_rank, [r.batch_size // world_size], drop_last)

    def theoretical_speedup(self, num_samples: int | None = None, world_size: int = 1) -> float:
        """Baseline iterations / multigrid iterations (cost per iteration is about constant)."""
        return self.baseline_iterations(num_samples, world_size) / self.iterations(num_samples, world_size)

    # ----------------------------------------------------------------------------------------
    # Presentation
    # ----------------------------------------------------------------------------------------
    def describe_stage(self, stage: Stage) -> str:
        """A short human label, e.g. ``'[0,73) T=8 S=158 b=8'``."""
        return (
            f"[{stage.start_epoch},{stage.end_epoch}) T={stage.num_frames} S={stage.crop_size} "
            f"b={stage.batch_factor}" + (" fine-tune" if stage.is_finetune else "")
        )

    def to_dict(self, num_samples: int | None = None, world_size: int = 1) -> dict:
        """A JSON-serialisable summary (the ``schedule --json`` output)."""
        r = self.recipe
        return {
            "max_epochs": self.max_epochs,
            "baseline_max_epochs": r.max_epochs,
            "lr_milestones": list(self.lr_milestones),
            # 12 significant digits: 0.08 rather than 0.08000000000000002.
            "lr_factors": [float(f"{f:.12g}") for f in self.lr_factors],
            "stages": [
                {
                    "lr_stage": s.lr_stage,
                    "batch_factor": s.batch_factor,
                    "num_frames": s.num_frames,
                    "crop_size": s.crop_size,
                    "start_epoch": s.start_epoch,
                    "end_epoch": s.end_epoch,
                    "is_finetune": s.is_finetune,
                    "global_batch_size": s.batch_factor * r.batch_size,
                    "short_cycle": [
                        {"crop_size": slot.crop_size, "batch_multiplier": slot.batch_multiplier,
                         "jitter_range": list(self.jitter_range(slot.crop_size))}
                        for slot in self.short_cycle_slots(s.start_epoch)
                    ],
                    "stride_range": list(self.stride_range(s.start_epoch)),
                }
                for s in self.stages
            ],
            "eval_epochs": self.eval_epochs(),
            "iter_saving": self.iter_saving,
            "theoretical_speedup": self.theoretical_speedup(num_samples, world_size),
        }
