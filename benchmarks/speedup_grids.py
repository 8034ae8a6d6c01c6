"""Where the speed-up benchmark's multigrid time goes: per-grid efficiency, the compute floor, seeds.

Pure functions over the measurements :mod:`speedup` collects (no timing here), so that the report
explains what remains between the measured and the theoretical speed-up:

* per grid (clip shape ``T x S`` at batch ``B``): iterations, end-to-end and compute-only clips/s,
  the steady-state data wait, and the **compute efficiency**: the grid's compute-only clips/s over
  the base grid's, divided by the ideal ratio ``T0 * S0^2 / (T * S^2)`` (1.0: a clip costs in
  proportion to its pixels; below 1: the hardware computes small clips less efficiently);
* the **iteration cost against the baseline**: the grid's compute-only s/iteration over the
  baseline run's (every grid's iteration has the base grid's FLOPs, so the theoretical speed-up
  assumes 1.0; above 1: the iterations of that grid cost more here, e.g. because the loader's
  workers, busier at the small grids, take CPU from the model);
* the **compute floor**: the sum over grids of the schedule's iterations times that grid's mean
  compute-only time per iteration measured in the same run, i.e. the training time if loading,
  precise BN, loader rebuilds and everything outside steps cost nothing;
* over several seeds: the test top-1 difference per seed and its mean.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from lightning_multigrid.schedule.multigrid import MultigridSchedule
from lightning_multigrid.schedule.slots import slot_sequence

__all__ = ["schedule_grid_iterations", "grid_table", "compute_floor", "seeds_summary", "format_grids"]

Grid = tuple[int, int, int]  # (T, S, per-device batch)


def schedule_grid_iterations(schedule: MultigridSchedule, num_samples: int, world_size: int = 1) -> dict[Grid, int]:
    """Iterations per ``(T, S, B)`` the schedule trains on ``num_samples`` clips (drop_last, per rank)."""
    per_rank = -(-num_samples // world_size)
    counts: Counter[Grid] = Counter()
    for epoch in range(schedule.max_epochs):
        shapes = schedule.clip_shapes(epoch)
        for slot, size in slot_sequence(per_rank, schedule.epoch_batch_sizes(epoch, world_size), drop_last=True):
            counts[(shapes[slot].num_frames, shapes[slot].crop_size, size)] += 1
    return dict(counts)


def _key(row: dict[str, Any]) -> Grid:
    return int(row["num_frames"]), int(row["crop_size"]), int(row["batch_size"])


def grid_table(
    shapes: Sequence[dict[str, Any]],
    base: Grid,
    schedule_iterations: dict[Grid, int] | None = None,
    reference_compute: float | None = None,
    baseline_step_per_iteration: float | None = None,
) -> list[dict[str, Any]]:
    """One row per measured grid, with its efficiency against ``base`` ``(T0, S0, B0)``.

    Args:
        shapes: a run's ``"shapes"`` rows (``iterations``, ``clips``, ``step_s``, ``wait_s``, ...).
        base: the base grid; its compute-only clips/s is the efficiency's reference when the run
            trained it, else ``reference_compute`` (e.g. the baseline run's) is used.
        schedule_iterations: the schedule's iterations per grid (``None``: the measured ones).
        baseline_step_per_iteration: the baseline run's compute-only s/iteration (``None``: no
            ``cost_vs_baseline`` column).
    """
    t0, s0, _ = base
    own = next((r for r in shapes if _key(r) == base), None)
    reference = own["compute_clips_per_s"] if own and own.get("compute_clips_per_s") else reference_compute
    rows = []
    for row in shapes:
        t, s, b = _key(row)
        ideal = t0 * s0**2 / (t * s**2)
        compute = row.get("compute_clips_per_s")
        ratio = compute / reference if compute and reference else None
        step_s, wait_s = float(row["step_s"]), float(row["wait_s"])
        per_iteration = step_s / row["iterations"] if row["iterations"] else None
        rows.append({
            "num_frames": t, "crop_size": s, "batch_size": b,
            "iterations": int(row["iterations"]),
            "schedule_iterations": (schedule_iterations or {}).get((t, s, b), int(row["iterations"])),
            "clips_per_s": row.get("clips_per_s"),
            "compute_clips_per_s": compute,
            "step_s_per_iteration": per_iteration,
            "cost_vs_baseline": per_iteration / baseline_step_per_iteration
            if per_iteration and baseline_step_per_iteration else None,
            "wait_s": wait_s,
            "wait_over_step": wait_s / step_s if step_s > 0 else None,
            "compute_ratio": ratio,
            "ideal_ratio": ideal,
            "efficiency": ratio / ideal if ratio is not None else None,
            "efficiency_reference": "own base grid" if own and own.get("compute_clips_per_s") else "baseline run",
        })
    return rows


def compute_floor(grids: Sequence[dict[str, Any]]) -> float:
    """Sum over grids of the schedule's iterations x the grid's measured compute-only s/iteration."""
    return sum(g["schedule_iterations"] * g["step_s_per_iteration"] for g in grids if g["step_s_per_iteration"])


def seeds_summary(per_seed: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per-seed test top-1 of both runs and their difference, and the mean difference."""
    rows = []
    for entry in per_seed:
        base, mg = entry.get("baseline_test_top1"), entry.get("multigrid_test_top1")
        diff = mg - base if base is not None and mg is not None else None
        rows.append({**entry, "test_top1_difference": diff})
    diffs = [r["test_top1_difference"] for r in rows if r["test_top1_difference"] is not None]
    return {"seeds": rows, "mean_test_top1_difference": sum(diffs) / len(diffs) if diffs else None}


def _fmt(value: Any, spec: str = ".1f") -> str:
    return "n/a" if value is None else format(value, spec)


def format_grids(name: str, grids: Sequence[dict[str, Any]]) -> list[str]:
    """Table lines: per grid iterations, clips/s, compute-only clips/s, data wait, efficiency."""
    lines = [f"  {name}: grid (T, S, B) | iterations | clips/s | compute-only clips/s | data wait (s, % of "
             "step) | compute vs base, ideal, efficiency | s/iteration vs baseline's"]
    for g in grids:
        wait = f"{g['wait_s']:.1f}, {_fmt(g['wait_over_step'], '.0%')}"
        lines.append(
            f"    T={g['num_frames']:<3} S={g['crop_size']:<4} B={g['batch_size']:<4} {g['iterations']:6d} "
            f"{_fmt(g['clips_per_s']):>8} {_fmt(g['compute_clips_per_s']):>8}  {wait:>12}  "
            f"{_fmt(g['compute_ratio'], '.2f')}x / {g['ideal_ratio']:.2f}x = {_fmt(g['efficiency'], '.2f')}"
            f"  {_fmt(g.get('cost_vs_baseline'), '.2f')}"
        )
    return lines
