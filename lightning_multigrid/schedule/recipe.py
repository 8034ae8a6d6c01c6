"""The schedule's plain records: the baseline recipe it is derived from, and what it answers with.

:class:`BaseRecipe` is the input of :class:`~lightning_multigrid.schedule.multigrid.MultigridSchedule`,
validated on construction (every bad value raises ``ValueError`` naming the field);
:class:`Stage`, :class:`ShortCycleSlot` and :class:`BatchNormPlan` are its answers. Pure Python:
no torch import (gathered with the schedule's other names by :mod:`lightning_multigrid.schedule`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final, Literal

__all__ = [
    "DEFAULT_LONG_CYCLE_FACTORS",
    "DEFAULT_SHORT_CYCLE_FACTORS",
    "DEFAULT_SHORT_CYCLE_MIN_CROP",
    "DEFAULT_SPATIAL_COARSENING",
    "DEFAULT_LR_SCALING",
    "MIN_CROP_SIZE",
    "BaseRecipe",
    "is_batch_cap",
    "Stage",
    "ShortCycleSlot",
    "BatchNormPlan",
    "ClipShape",
]

SQRT2 = math.sqrt(2.0)
#: (temporal factor, spatial factor) per long-cycle grid, coarse to fine.
DEFAULT_LONG_CYCLE_FACTORS: tuple[tuple[float, float], ...] = (
    (0.25, 1 / SQRT2),
    (0.5, 1 / SQRT2),
    (0.5, 1.0),
    (1.0, 1.0),
)
#: Spatial factors (relative to the base crop S0) of the first two short-cycle slots.
DEFAULT_SHORT_CYCLE_FACTORS: tuple[float, float] = (0.5, 1 / SQRT2)
MIN_CROP_SIZE = 32
#: MultigridCallback's (and the schedule command's) short_cycle_min_crop: a 2x2 final feature map at
#: stride 32. BaseRecipe's own default stays 0, the reference's arithmetic.
DEFAULT_SHORT_CYCLE_MIN_CROP = 64
#: How a grid's smaller crop is taken (BaseRecipe.spatial_coarsening); the first is the reference's,
#: "auto" (the callback's default) resolves to one of the other two when the recipe is built.
SPATIAL_COARSENING = ("rescale", "crop", "auto")
#: The callback's and the schedule command's default (BaseRecipe's own stays the reference's "rescale").
DEFAULT_SPATIAL_COARSENING: Final = "auto"
#: How a long-cycle grid's LR follows its batch factor b (BaseRecipe.lr_scaling): "linear" (b, the
#: reference's), "sqrt" (sqrt(b)); "auto" (the callback's default) resolves when the recipe is built.
LR_SCALING = ("linear", "sqrt", "auto")
#: The callback's and the schedule command's default (BaseRecipe's own stays the reference's "linear").
DEFAULT_LR_SCALING: Final = "auto"

def is_batch_cap(value: object) -> bool:
    """Whether ``value`` is a valid :attr:`BaseRecipe.max_batch_factor`: ``None`` or an integer >= 1."""
    return value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= 1)


@dataclass(frozen=True)
class BaseRecipe:
    """The baseline training recipe that multigrid is derived from.

    Args:
        steps: LR milestones of the baseline in epochs, starting with 0 (e.g. ``[0, 94, 154, 196]``).
        max_epochs: baseline epochs; must exceed the last milestone.
        num_frames: ``T0``, frames per clip.
        crop_size: ``S0``, square crop side.
        batch_size: ``B0``, *global* clips per iteration (all devices together).
        sampling_rate: ``r0``, the baseline's temporal stride between sampled frames.
        jitter_scales: baseline random short-side rescale range ``(min, max)``; defaults to
            ``(round(S0 * 8/7), round(S0 * 10/7))``, i.e. (256, 320) for S0=224.
        gamma: LR decay per baseline step.
        epoch_factor: multigrid trains ``epoch_factor`` times the baseline's epochs.
        long_cycle: use the long cycle (shape changes between epochs).
        short_cycle: use the short cycle (three spatial sizes rotating within an epoch).
        long_cycle_factors: ``(T factor, S factor)`` per long-cycle grid, each in (0, 1].
        short_cycle_factors: the two short-cycle spatial factors relative to S0, each in (0, 1].
        bn_base_size: clips per BatchNorm statistics group.
        eval_freq: evaluations/checkpoints per long-cycle stage.
        short_cycle_min_crop: short-cycle slots whose crop ``round(S0 * f)`` is smaller are left
            out, in the schedule arithmetic too (0, the reference: none is; when every slot is left
            out, the short cycle is off). See :attr:`short_cycle_crop_factors`.
        spatial_coarsening: how a grid's smaller crop ``S`` is taken. ``"rescale"`` (the reference):
            from a frame rescaled by ``S / S0`` too (short side in ``[round(j_min * S / S0), j_max]``),
            the same field of view at a lower resolution. ``"crop"``: from a frame rescaled as the
            base crop's (``[j_min, j_max]``), a smaller field of view at the full resolution, for
            classes whose evidence is detail that lower resolutions lose. ``"auto"``: ``"crop"``
            where a grid in use crops fewer than :data:`DEFAULT_SHORT_CYCLE_MIN_CROP` pixels (S0 < 90
            with the default long-cycle factors), else ``"rescale"``; the built recipe holds the resolved value.
            The schedule arithmetic (batch sizes, epochs, LR) is the same either way.
        lr_scaling: how a long-cycle grid's relative LR follows its batch factor ``b``: ``"linear"``
            (the reference: ``b``, the linear-scaling rule) or ``"sqrt"`` (``sqrt(b)``: 2.83x instead
            of 8x on the coarsest grid). ``"auto"``: ``"sqrt"`` where a grid in use crops fewer than
            :data:`DEFAULT_SHORT_CYCLE_MIN_CROP` pixels (the small-clip regime where it was measured),
            else ``"linear"``; the built recipe holds the resolved value. Batch sizes and epochs are
            the same either way.
        max_batch_factor: the largest long-cycle batch factor ``b`` (``None``, the reference: no
            cap). A grid whose factor is larger trains at this one instead: the same epochs in more,
            smaller iterations, its LR following the capped factor. Short runs need the steps (issue
            24: 192 clips, 12 epochs lost 6.9 points uncapped and gained 0.3 capped at 4; see
            :func:`~lightning_multigrid.schedule.config_checks.short_run_batch_cap`, the callback's
            ``"auto"``).
    """

    steps: Sequence[int]
    max_epochs: int
    num_frames: int
    crop_size: int
    batch_size: int
    sampling_rate: int = 1
    jitter_scales: tuple[int, int] | None = None
    gamma: float = 0.1
    epoch_factor: float = 1.5
    long_cycle: bool = True
    short_cycle: bool = True
    long_cycle_factors: Sequence[tuple[float, float]] = DEFAULT_LONG_CYCLE_FACTORS
    short_cycle_factors: Sequence[float] = DEFAULT_SHORT_CYCLE_FACTORS
    bn_base_size: int = 8
    eval_freq: int = 3
    short_cycle_min_crop: int = 0
    spatial_coarsening: str = "rescale"
    lr_scaling: str = "linear"
    max_batch_factor: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "steps", tuple(int(s) for s in self.steps))
        object.__setattr__(
            self, "long_cycle_factors", tuple((float(t), float(s)) for t, s in self.long_cycle_factors)
        )
        object.__setattr__(self, "short_cycle_factors", tuple(float(f) for f in self.short_cycle_factors))
        if self.jitter_scales is None:
            object.__setattr__(
                self, "jitter_scales", (round(self.crop_size * 8 / 7), round(self.crop_size * 10 / 7))
            )
        else:
            object.__setattr__(self, "jitter_scales", tuple(int(j) for j in self.jitter_scales))
        self._validate()
        small_clips = any(self.small_crops())
        if self.spatial_coarsening == "auto":
            # Below the floor a frame rescaled by S / S0 loses detail that the full resolution shows
            # (issue 24: on a task whose classes are stripes 3-4.5 px apart, the long cycle's 45-pixel
            # rescaled grids cost 34 points of test top-1 at S0=64; cut at the base scale they gained 30).
            object.__setattr__(self, "spatial_coarsening", "crop" if small_clips else "rescale")
        if self.lr_scaling == "auto":
            # Issue 24, S0=64: at 8x the base LR the coarsest grid's first epochs diverged and left
            # 3 seeds of 5 at or near chance for the whole run; at sqrt(8)x all 5 learned.
            object.__setattr__(self, "lr_scaling", "sqrt" if small_clips else "linear")

    def small_crops(self, floor: int = DEFAULT_SHORT_CYCLE_MIN_CROP) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """The distinct crop sides under ``floor`` pixels that the grids in use take, sorted:
        ``(long cycle's, short cycle's)`` (the short cycle's after :attr:`short_cycle_min_crop`)."""
        def under(factors: Iterable[float]) -> tuple[int, ...]:
            return tuple(sorted({c for f in factors if (c := round(self.crop_size * f)) < floor}))

        return under(sf for _, sf in self.long_cycle_factors) if self.long_cycle else (), under(self.short_cycle_crop_factors)

    def capped_batch_factor(self, batch_factor: int) -> int:
        """A long-cycle grid's batch factor after :attr:`max_batch_factor`."""
        return batch_factor if self.max_batch_factor is None else min(batch_factor, self.max_batch_factor)

    def lr_batch_scale(self, batch_factor: int) -> float:
        """The relative LR a long-cycle batch factor brings (:attr:`lr_scaling`)."""
        return float(batch_factor) if self.lr_scaling == "linear" else math.sqrt(batch_factor)

    def _validate(self) -> None:
        def bad(name: str, why: str) -> ValueError:
            return ValueError(f"{name}: {why}")

        steps = self.steps
        if not steps or steps[0] != 0:
            raise bad("steps", f"must be a list of epochs starting with 0, got {list(steps)}")
        if any(b <= a for a, b in zip(steps, steps[1:])):
            raise bad("steps", f"must be strictly increasing, got {list(steps)}")
        if self.max_epochs <= steps[-1]:
            raise bad("max_epochs", f"must exceed the last step {steps[-1]}, got {self.max_epochs}")
        if self.long_cycle and len(steps) < 2:
            # The long cycle splits the LR stages before the last milestone among its grids; with a
            # single milestone there are none (the reference divides by zero here).
            raise bad(
                "steps",
                f"the long cycle needs at least two milestones (an LR stage before the final one), got "
                f"{list(steps)}; add one, e.g. [0, {max(1, self.max_epochs * 2 // 3)}], or turn the long cycle off",
            )
        for name in ("num_frames", "crop_size", "batch_size", "sampling_rate", "bn_base_size", "eval_freq"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise bad(name, f"must be a positive integer, got {value!r}")
        if isinstance(self.short_cycle_min_crop, bool) or not isinstance(self.short_cycle_min_crop, int) \
                or self.short_cycle_min_crop < 0:
            raise bad("short_cycle_min_crop", f"must be an integer >= 0, got {self.short_cycle_min_crop!r}")
        if self.spatial_coarsening not in SPATIAL_COARSENING:
            raise bad("spatial_coarsening", f"must be one of {SPATIAL_COARSENING}, got {self.spatial_coarsening!r}")
        if self.lr_scaling not in LR_SCALING:
            raise bad("lr_scaling", f"must be one of {LR_SCALING}, got {self.lr_scaling!r}")
        if not is_batch_cap(self.max_batch_factor):
            raise bad("max_batch_factor", f"must be None or an integer >= 1, got {self.max_batch_factor!r}")
        if self.crop_size < MIN_CROP_SIZE:
            raise bad("crop_size", f"must be at least {MIN_CROP_SIZE}, got {self.crop_size}")
        if not 0 < self.gamma <= 1:
            raise bad("gamma", f"must be in (0, 1], got {self.gamma}")
        if not self.epoch_factor > 0:
            raise bad("epoch_factor", f"must be positive, got {self.epoch_factor}")
        jmin, jmax = self.jitter_scales  # type: ignore[misc]
        if not self.crop_size <= jmin <= jmax:
            raise bad("jitter_scales", f"must satisfy crop_size <= min <= max, got {(jmin, jmax)}")
        if self.long_cycle:
            if not self.long_cycle_factors:
                raise bad("long_cycle_factors", "must not be empty when the long cycle is on")
            for tf, sf in self.long_cycle_factors:
                if not (0 < tf <= 1 and 0 < sf <= 1):
                    raise bad("long_cycle_factors", f"each factor must be in (0, 1], got {(tf, sf)}")
                if round(self.num_frames * tf) < 1:
                    raise bad(
                        "long_cycle_factors",
                        f"T factor {tf} rounds num_frames={self.num_frames} to 0 frames",
                    )
                if round(self.crop_size * sf) < MIN_CROP_SIZE:
                    raise bad(
                        "long_cycle_factors",
                        f"S factor {sf:.4g} gives crop {round(self.crop_size * sf)} < {MIN_CROP_SIZE}; use "
                        f"crop_size >= {math.ceil(MIN_CROP_SIZE / sf)} or a larger S factor",
                    )
        if self.short_cycle:
            if len(self.short_cycle_factors) != 2:
                raise bad("short_cycle_factors", f"needs exactly two factors, got {list(self.short_cycle_factors)}")
            for f in self.short_cycle_factors:
                if not 0 < f <= 1:
                    raise bad("short_cycle_factors", f"each factor must be in (0, 1], got {f}")
                if round(self.crop_size * f) < MIN_CROP_SIZE:
                    raise bad(
                        "short_cycle_factors",
                        f"factor {f:.4g} gives crop {round(self.crop_size * f)} < {MIN_CROP_SIZE}; use "
                        f"crop_size >= {math.ceil(MIN_CROP_SIZE / f)} or a larger factor",
                    )


    @property
    def short_cycle_crop_factors(self) -> tuple[float, ...]:
        """The short-cycle factors in use: none with the cycle off, else those whose crop
        ``round(S0 * f)`` is at least :attr:`short_cycle_min_crop`.

        Why a floor: a stride-32 backbone turns a 32-pixel crop (the short cycle's S0/2 at S0=64)
        into a 1x1 final feature map, and on such small clips the short cycle cost 8-15 points of
        test accuracy in our measurements while the long cycle alone cost none (issue 24,
        benchmarks/README.md). At the paper's S0=224 the crops are 112 and 158 (3x3 and 4x4 maps).
        """
        if not self.short_cycle:
            return ()
        return tuple(f for f in self.short_cycle_factors if round(self.crop_size * f) >= self.short_cycle_min_crop)


@dataclass(frozen=True)
class Stage:
    """A run of epochs ``[start_epoch, end_epoch)`` at one long-cycle base shape.

    ``lr_stage`` is the baseline LR stage it belongs to (``steps[k]..steps[k+1]`` is stage ``k``);
    the fine-tuning phase has ``lr_stage == len(steps) - 1``, the number of long-cycle LR stages,
    and ``is_finetune``.
    """

    lr_stage: int
    batch_factor: int
    num_frames: int
    crop_size: int
    start_epoch: int
    end_epoch: int
    is_finetune: bool = False

    @property
    def num_epochs(self) -> int:
        return self.end_epoch - self.start_epoch


@dataclass(frozen=True)
class ShortCycleSlot:
    """One short-cycle slot: a crop size and a batch multiplier of the per-device base batch."""

    crop_size: int
    batch_multiplier: int


@dataclass(frozen=True)
class BatchNormPlan:
    """How BatchNorm statistics are grouped for one per-device batch.

    ``mode`` is ``"split"`` (``num_splits`` groups on each device), ``"sync"`` (statistics shared
    across ``sync_size`` devices) or ``"plain"``. ``reason`` says why a requested mode fell back.
    """

    mode: Literal["plain", "split", "sync"]
    num_splits: int = 1
    sync_size: int = 1
    reason: str = ""


@dataclass(frozen=True)
class ClipShape:
    """The shape of one training clip on a multigrid grid.

    Attributes:
        num_frames: ``T``, frames per clip.
        crop_size: ``S``, side of the square spatial crop.
        stride_range: inclusive ``(min, max)`` temporal stride between sampled frames; the dataset
            draws one integer per clip, so a coarse grid covers the baseline's time span.
        jitter_range: inclusive ``(min, max)`` short side of the random rescale before cropping;
            scaled down with the crop so a smaller crop keeps the same field of view.
    """

    num_frames: int
    crop_size: int
    stride_range: tuple[int, int] = (1, 1)
    jitter_range: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if int(self.num_frames) != self.num_frames or self.num_frames < 1:
            raise ValueError(f"ClipShape.num_frames must be a positive int, got {self.num_frames!r}")
        if int(self.crop_size) != self.crop_size or self.crop_size < 1:
            raise ValueError(f"ClipShape.crop_size must be a positive int, got {self.crop_size!r}")
        lo, hi = self.stride_range
        if not (1 <= lo <= hi):
            raise ValueError(f"ClipShape.stride_range must satisfy 1 <= min <= max, got {self.stride_range!r}")
        object.__setattr__(self, "num_frames", int(self.num_frames))
        object.__setattr__(self, "crop_size", int(self.crop_size))
        object.__setattr__(self, "stride_range", (int(lo), int(hi)))
        if self.jitter_range is not None:
            jlo, jhi = self.jitter_range
            if not (self.crop_size <= jlo <= jhi):
                raise ValueError(
                    "ClipShape.jitter_range must satisfy crop_size <= min <= max, got "
                    f"{self.jitter_range!r} for crop_size {self.crop_size}"
                )
            object.__setattr__(self, "jitter_range", (int(jlo), int(jhi)))
