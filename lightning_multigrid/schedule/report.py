"""Human-readable views of a :class:`~lightning_multigrid.schedule.multigrid.MultigridSchedule`.

Used by the ``lightning-multigrid schedule`` command and logged once by the callback at setup.
Pure Python apart from the optional plot (matplotlib, imported lazily).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path

from lightning_multigrid.schedule.lr import REFERENCE_LR, LrPolicy
from lightning_multigrid.schedule.multigrid import MultigridSchedule
from lightning_multigrid.schedule.recipe import Stage

__all__ = ["format_schedule_table", "plot_schedule", "schedule_json", "stage_lr_values", "stage_lr_text"]

#: LR readings an epoch in the plot.
_LR_POINTS_PER_EPOCH = 4
#: How close to a stage's end its last LR is read (the LR just before the next stage starts).
_JUST_BEFORE = 1e-9


def stage_lr_values(schedule: MultigridSchedule, stage: Stage, lr: LrPolicy = REFERENCE_LR) -> list[float]:
    """The relative LR where a stage starts, at each step or warmup end inside it and just before it ends.

    Consecutive equal values are kept once: a step-policy stage is one value (``[8.0]``), the
    fine-tuning split two (``[0.01, 0.001]``), a cosine or warming-up stage its first and last.
    """
    points: list[float] = [stage.start_epoch]
    if lr.name == "step":  # the step rule changes only there
        points += [m for m in schedule.lr_milestones if stage.start_epoch < m < stage.end_epoch]
    if stage.start_epoch < lr.warmup_epochs < stage.end_epoch:
        points.append(lr.warmup_epochs)
    points = sorted(points) + [stage.end_epoch - _JUST_BEFORE]
    values: list[float] = []
    for factor in (float(f"{lr.factor(schedule, e):.12g}") for e in points):
        if not values or f"{factor:.4g}" != f"{values[-1]:.4g}":
            values.append(factor)
    return values


def stage_lr_text(schedule: MultigridSchedule, stage: Stage, lr: LrPolicy | None = REFERENCE_LR) -> str:
    """Relative LR(s) within a stage, e.g. ``'8'`` or ``'0.01 -> 0.001'``; ``'-'`` when the LR is not set."""
    if lr is None:
        return "-"
    return " -> ".join(f"{f:.4g}" for f in stage_lr_values(schedule, stage, lr))


def format_schedule_table(
    schedule: MultigridSchedule, world_size: int = 1, num_samples: int | None = None, lr: LrPolicy | None = REFERENCE_LR
) -> str:
    """A fixed-width table of every stage plus the theoretical speed-up.

    ``lr`` is the policy whose relative LR the last column shows (``None``: the module sets the LR).
    """
    r = schedule.recipe
    header = (
        "epochs", "LR stage", "T", "S", "batch", "per-dev", "short cycle (crop x batch)",
        "BN", "stride", "rel. LR",
    )
    rows = [header]
    for stage in schedule.stages:
        per_device = schedule.per_device_batch_size(stage.start_epoch, world_size)
        sizes = schedule.epoch_batch_sizes(stage.start_epoch, world_size)
        slots = schedule.short_cycle_slots(stage.start_epoch)
        short = ", ".join(f"{slot.crop_size}x{size}" for slot, size in zip(slots, sizes)) if r.short_cycle_crop_factors else "-"
        plan = schedule.batch_norm_plan(per_device, world_size)
        bn = {"plain": "plain", "split": f"split/{plan.num_splits}", "sync": f"sync/{plan.sync_size}"}[plan.mode]
        lo, hi = schedule.stride_range(stage.start_epoch)
        rows.append(
            (
                f"[{stage.start_epoch},{stage.end_epoch})",
                "fine-tune" if stage.is_finetune else str(stage.lr_stage),
                str(stage.num_frames),
                str(stage.crop_size),
                str(stage.batch_factor * r.batch_size),
                str(per_device),
                short,
                bn + ("*" if plan.reason else ""),
                f"{lo}-{hi}" if hi > lo else str(lo),
                stage_lr_text(schedule, stage, lr),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    baseline = f"baseline: {r.max_epochs} epochs, milestones {list(r.steps)}, (T, S, B) = ({r.num_frames}, {r.crop_size}, {r.batch_size})"
    cycles = " + ".join(n for n, on in (("long cycle", r.long_cycle), ("short cycle", bool(r.short_cycle_crop_factors))) if on) or "no cycle"
    footer = [
        "",
        baseline,
        f"multigrid ({cycles}): {schedule.max_epochs} epochs, LR milestones {schedule.lr_milestones}"
        + _policy_text(lr),
        f"theoretical speed-up: {schedule.theoretical_speedup(num_samples, world_size):.2f}x"
        + (f" (for {num_samples} clips on {world_size} devices)" if num_samples else " (iterations, large-dataset limit)"),
    ]
    if r.max_batch_factor is not None:
        # The iteration ratio undercounts a capped run's saving: its capped iterations are cheaper.
        footer.append(f"long-cycle batch factor capped at {r.max_batch_factor} (max_batch_factor): the same epochs "
                      "in more, cheaper iterations")
    fallbacks = {
        schedule.batch_norm_plan(schedule.per_device_batch_size(s.start_epoch, world_size), world_size).reason
        for s in schedule.stages
    } - {""}
    footer += [f"* BN falls back to plain: {reason}" for reason in sorted(fallbacks)]
    return "\n".join(lines + footer)


def schedule_json(
    schedule: MultigridSchedule, num_samples: int | None = None, world_size: int = 1, lr: LrPolicy | None = REFERENCE_LR
) -> dict:
    """The ``schedule --json`` object: :meth:`MultigridSchedule.to_dict`, plus the LR policy and
    each stage's ``relative_lr`` (:func:`stage_lr_values`) when the callback sets the LR."""
    summary = schedule.to_dict(num_samples, world_size)
    summary["lr_policy"] = None if lr is None else asdict(lr)
    if lr is not None:
        for entry, stage in zip(summary["stages"], schedule.stages):
            entry["relative_lr"] = stage_lr_values(schedule, stage, lr)
    return summary


def _policy_text(lr: LrPolicy | None) -> str:
    """The footer's note of a policy other than the reference's plain step rule."""
    if lr is None:
        return " (LR left to the module)"
    notes = [] if lr.name == "step" else [f"cosine to {lr.cosine_end_factor:g}"]
    if lr.warmup_epochs:
        notes.append(f"warmup {lr.warmup_epochs:g} epochs from {lr.warmup_start_factor:g}")
    return f" ({', '.join(notes)})" if notes else ""


def plot_schedule(
    schedule: MultigridSchedule,
    path: str | Path,
    world_size: int = 1,
    num_samples: int | None = None,
    lr: LrPolicy | None = REFERENCE_LR,
) -> Path:
    """Write a PNG with T, S, global batch and relative LR against epoch, baseline beside multigrid.

    Every epoch is drawn, the last ones included (a step plot needs the end of the last epoch), and
    the title's speed-up is the table's (same ``world_size`` and ``num_samples``). Both LR curves
    follow ``lr``, the baseline's over its own epochs (as the benchmark's baseline run does), read
    ``_LR_POINTS_PER_EPOCH`` times an epoch so that warmup and cosine show their shape (``None``:
    the module sets the LR; the reference's step rule is drawn).
    """
    lr = lr or REFERENCE_LR
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    r = schedule.recipe
    # The baseline is the recipe with both cycles off: one grid, the step rule over its own epochs.
    baseline = MultigridSchedule(replace(r, long_cycle=False, short_cycle=False))
    panels: dict[str, tuple[int, Callable[[MultigridSchedule, float], float]]] = {  # readings an epoch, value
        "frames T": (1, lambda run, e: run.stage_at(int(e)).num_frames),
        "crop S (base)": (1, lambda run, e: run.stage_at(int(e)).crop_size),
        "global batch": (1, lambda run, e: run.global_batch_size(int(e))),
        "relative LR": (_LR_POINTS_PER_EPOCH, lr.factor),
    }
    fig, axes = plt.subplots(len(panels), 1, figsize=(9, 9), sharex=True)
    for ax, (name, (per_epoch, value)) in zip(axes, panels.items()):
        for run, label, style in ((schedule, "multigrid", "-"), (baseline, "baseline", "--")):
            epochs = [k / per_epoch for k in range(run.max_epochs * per_epoch)]
            values = [value(run, e) for e in epochs]
            # One more point at the end of the last epoch, so that the last step is drawn too.
            ax.step(epochs + [run.max_epochs], values + values[-1:], where="post", label=label, linestyle=style)
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
    axes[-1].set_yscale("log")
    axes[-1].set_xlabel("epoch")
    axes[-1].set_xlim(0, max(schedule.max_epochs, r.max_epochs))
    speedup = schedule.theoretical_speedup(num_samples, world_size)
    fig.suptitle(f"multigrid schedule: {speedup:.2f}x fewer iterations")
    # Above the plots, where it cannot cover a curve.
    fig.legend(*axes[0].get_legend_handles_labels(), loc="upper right", ncol=2, bbox_to_anchor=(0.98, 0.97))
    fig.tight_layout(rect=(0, 0, 1, 0.94))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
