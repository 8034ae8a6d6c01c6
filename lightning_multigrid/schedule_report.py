"""Human-readable views of a :class:`~lightning_multigrid.schedule.MultigridSchedule`.

Used by the ``lightning-multigrid schedule`` command and logged once by the callback at setup.
Pure Python apart from the optional plot (matplotlib, imported lazily).
"""

from __future__ import annotations

from pathlib import Path

from lightning_multigrid.schedule import MultigridSchedule, Stage

__all__ = ["format_schedule_table", "plot_schedule", "stage_lr_text"]


def stage_lr_text(schedule: MultigridSchedule, stage: Stage) -> str:
    """Relative LR(s) within a stage, e.g. ``'8'`` or ``'0.01 -> 0.001'`` for the fine-tuning split."""
    factors = [schedule.lr_factor(stage.start_epoch)] + [
        f for m, f in zip(schedule.lr_milestones, schedule.lr_factors) if stage.start_epoch < m < stage.end_epoch
    ]
    return " -> ".join(f"{f:.4g}" for f in factors)


def format_schedule_table(schedule: MultigridSchedule, world_size: int = 1, num_samples: int | None = None) -> str:
    """A fixed-width table of every stage plus the theoretical speed-up."""
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
        short = ", ".join(f"{slot.crop_size}x{size}" for slot, size in zip(slots, sizes)) if r.short_cycle else "-"
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
                stage_lr_text(schedule, stage),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    baseline = f"baseline: {r.max_epochs} epochs, milestones {list(r.steps)}, (T, S, B) = ({r.num_frames}, {r.crop_size}, {r.batch_size})"
    cycles = " + ".join(n for n, on in (("long cycle", r.long_cycle), ("short cycle", r.short_cycle)) if on) or "no cycle"
    footer = [
        "",
        baseline,
        f"multigrid ({cycles}): {schedule.max_epochs} epochs, LR milestones {schedule.lr_milestones}",
        f"theoretical speed-up: {schedule.theoretical_speedup(num_samples, world_size):.2f}x"
        + (f" (for {num_samples} clips on {world_size} devices)" if num_samples else " (iterations, large-dataset limit)"),
    ]
    fallbacks = {
        schedule.batch_norm_plan(schedule.per_device_batch_size(s.start_epoch, world_size), world_size).reason
        for s in schedule.stages
    } - {""}
    footer += [f"* BN falls back to plain: {reason}" for reason in sorted(fallbacks)]
    return "\n".join(lines + footer)


def plot_schedule(
    schedule: MultigridSchedule, path: str | Path, world_size: int = 1, num_samples: int | None = None
) -> Path:
    """Write a PNG with T, S, global batch and relative LR against epoch, baseline beside multigrid.

    Every epoch is drawn, the last ones included (a step plot needs the end of the last epoch), and
    the title's speed-up is the table's (same ``world_size`` and ``num_samples``).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    r = schedule.recipe
    mg_epochs = list(range(schedule.max_epochs))
    base_epochs = list(range(r.max_epochs))
    base_lr = [r.gamma ** (sum(1 for s in r.steps if s <= e) - 1) for e in base_epochs]
    series: dict[str, tuple[list[float], list[float]]] = {
        "frames T": ([float(schedule.stage_at(e).num_frames) for e in mg_epochs], [float(r.num_frames)] * r.max_epochs),
        "crop S (base)": ([schedule.stage_at(e).crop_size for e in mg_epochs], [r.crop_size] * r.max_epochs),
        "global batch": ([schedule.global_batch_size(e) for e in mg_epochs], [r.batch_size] * r.max_epochs),
        "relative LR": ([schedule.lr_factor(e) for e in mg_epochs], base_lr),
    }
    fig, axes = plt.subplots(4, 1, figsize=(9, 9), sharex=True)
    for ax, (name, (mg, base)) in zip(axes, series.items()):
        # One more point at the end of the last epoch, so that the last step is drawn too.
        ax.step(mg_epochs + [schedule.max_epochs], mg + mg[-1:], where="post", label="multigrid")
        ax.step(base_epochs + [r.max_epochs], base + base[-1:], where="post", label="baseline", linestyle="--")
        ax.set_ylabel(name)
        if name == "relative LR":
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
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
