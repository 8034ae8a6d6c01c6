"""The report of ``benchmarks/speedup.py``: speed-ups, the time budget, the printed table and the plot."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import speedup_grids
from speedup_run import RunConfig, make_recipe

from lightning_multigrid.schedule.multigrid import MultigridSchedule

__all__ = ["format_report", "grid_report", "plot_curves", "speedups", "time_budget"]


def grid_report(cfg: RunConfig, schedule: MultigridSchedule, num_train: int, runs: dict[str, Any]) -> dict[str, Any]:
    """Per run, the per-grid table (efficiency against the base grid; see :mod:`speedup_grids`)."""
    base = (cfg.num_frames, cfg.crop_size, cfg.batch_size)
    expected = {
        "baseline": {base: int(schedule.baseline_iterations(num_train, cfg.devices))},
        "multigrid": speedup_grids.schedule_grid_iterations(schedule, num_train, cfg.devices),
    }
    own = next((r for r in runs.get("baseline", {}).get("shapes", [])
                if (r["num_frames"], r["crop_size"], r["batch_size"]) == base), None)
    reference = own["compute_clips_per_s"] if own else None
    per_iteration = own["step_s"] / own["iterations"] if own and own["iterations"] else None
    return {name: speedup_grids.grid_table(run["shapes"], base, expected[name], reference, per_iteration)
            for name, run in runs.items()}


def time_budget(run: dict[str, Any] | None, grids: list[dict[str, Any]] | None) -> dict[str, Any]:
    """The multigrid run's training time against its compute floor, and what the rest went to."""
    if not run or not grids:
        return {}
    floor = speedup_grids.compute_floor(grids)
    parts = ("step_s", "data_wait_s", "loop_overhead_s", "precise_bn_s", "loader_rebuild_s", "epoch_start_wait_s",
             "startup_s", "other_s")
    return {
        "compute_floor_s": floor,
        "train_s": run["train_s"],
        "train_over_floor": run["train_s"] / floor if floor > 0 else None,
        "precise_bn_fraction": run["precise_bn_s"] / run["train_s"] if run["train_s"] > 0 else None,
        **{part: run[part] for part in parts},
    }


def speedups(args: argparse.Namespace, cfg: RunConfig, num_train: int, base: dict | None, mg: dict | None) -> dict[str, Any]:
    schedule = MultigridSchedule(make_recipe(cfg, num_samples=num_train, epoch_factor=1.5))
    world = cfg.devices
    out: dict[str, Any] = {
        "theoretical_speedup": schedule.theoretical_speedup(num_train, world),
        "theoretical_speedup_large_dataset": schedule.theoretical_speedup(None, world),
        "expected_baseline_iterations": int(schedule.baseline_iterations(num_train, world)),
        "expected_multigrid_iterations": int(schedule.iterations(num_train, world)),
        "multigrid_epochs": schedule.max_epochs,
    }
    if base and mg:
        out["measured_speedup"] = base["train_s"] / mg["train_s"]
        out["measured_speedup_total"] = base["total_s"] / mg["total_s"]
        out["measured_over_theoretical"] = out["measured_speedup"] / out["theoretical_speedup"]
        out["iterations_match_schedule"] = (
            base["iterations"] == out["expected_baseline_iterations"]
            and mg["iterations"] == out["expected_multigrid_iterations"]
        )
        if base.get("test_top1") is not None and mg.get("test_top1") is not None:
            out["test_top1_difference"] = mg["test_top1"] - base["test_top1"]
    return out


def _fmt(value: Any, spec: str = ".1f") -> str:
    return "n/a" if value is None else format(value, spec)


def format_report(report: dict[str, Any]) -> str:
    """The printed summary: one column per run, then the speed-ups and the per-shape throughput."""
    runs = {k: report["runs"][k] for k in ("baseline", "multigrid") if k in report["runs"]}
    rows = [
        ("training wall-clock (s)", lambda r: _fmt(r["train_s"])),
        ("  of which compute (steps, s)", lambda r: _fmt(r["step_s"])),
        ("  of which data wait (s)", lambda r: _fmt(r["data_wait_s"])),
        ("  of which loop overhead (s)", lambda r: _fmt(r.get("loop_overhead_s"))),
        ("  of which precise BN (s)", lambda r: _fmt(r["precise_bn_s"])),
        ("  of which loader rebuilds (s)", lambda r: _fmt(r["loader_rebuild_s"])),
        ("  of which epoch starts (s)", lambda r: _fmt(r["epoch_start_wait_s"])),
        ("  of which start-up (s)", lambda r: _fmt(r["startup_s"])),
        ("  of which other (s)", lambda r: _fmt(r["other_s"])),
        ("data-wait fraction", lambda r: _fmt(r["data_wait_fraction"], ".1%")),
        ("validation (s), passes", lambda r: f"{_fmt(r['val_s'])}, {len(r['evaluations'])}"),
        ("multi-view test (s)", lambda r: _fmt(r["test_s"])),
        ("total wall-clock (s)", lambda r: _fmt(r["total_s"])),
        ("epochs", lambda r: str(r["max_epochs"])),
        ("iterations", lambda r: str(r["iterations"])),
        ("clips seen", lambda r: str(r["clips"])),
        ("s / iteration", lambda r: _fmt(r["seconds_per_iteration"], ".3f")),
        ("peak RSS main / worker (MiB)", lambda r: f"{_fmt(r['peak_rss_mib'], '.0f')} / {_fmt(r['peak_worker_rss_mib'], '.0f')}"),
        ("peak GPU memory (MiB)", lambda r: _fmt(r["peak_gpu_mib"], ".0f")),
        ("final val top-1", lambda r: _fmt(r["final_val_top1"], ".3f")),
        (f"test top-1 ({report['config']['test_num_clips']}x{report['config']['test_num_crops']} views)",
         lambda r: _fmt(r["test_top1"], ".3f")),
    ]
    width = max(len(label) for label, _ in rows) + 2
    lines = [f"{'':{width}}" + "".join(f"{name:>14}" for name in runs)]
    for label, get in rows:
        lines.append(f"{label:{width}}" + "".join(f"{get(r):>14}" for r in runs.values()))
    s = report["speedup"]
    lines.append("")
    lines.append(f"theoretical speed-up (iterations, this dataset): {s['theoretical_speedup']:.2f}x "
                 f"({s['expected_baseline_iterations']} / {s['expected_multigrid_iterations']}); "
                 f"large-dataset limit {s['theoretical_speedup_large_dataset']:.2f}x")
    if "measured_speedup" in s:
        lines.append(f"measured speed-up (training wall-clock): {s['measured_speedup']:.2f}x   "
                     f"measured / theoretical: {s['measured_over_theoretical']:.2f}   "
                     f"total incl. evaluation: {s['measured_speedup_total']:.2f}x")
        if "test_top1_difference" in s:
            diff = s["test_top1_difference"]
            videos = report.get("data", {}).get("num_test_videos")
            per_video = f" (one test video = {100 / videos:.2f} points)" if videos else ""
            # The acceptance bar of issue #6: multigrid no worse than the baseline minus 1 point.
            verdict = "within" if diff >= -0.01 - 1e-6 else "NOT within"
            lines.append(f"test top-1 multigrid - baseline: {100 * diff:+.2f} points{per_video}: "
                         f"{verdict} the 1-point bar")
    lines.append("")
    lines.append("per grid; efficiency = (compute-only clips/s over the base grid's) / ideal T0*S0^2/(T*S^2):")
    for name, grids in report.get("grids", {}).items():
        lines.extend(speedup_grids.format_grids(name, grids))
    budget = report.get("time_budget")
    if budget:
        lines.append(
            f"multigrid compute floor {budget['compute_floor_s']:.1f}s (schedule iterations x measured compute "
            f"s/iteration per grid); training {budget['train_s']:.1f}s = {_fmt(budget['train_over_floor'], '.3f')} x "
            f"floor; precise BN {_fmt(budget['precise_bn_fraction'], '.1%')} of training"
        )
    seeds = report.get("seeds", {}).get("seeds", [])
    if len(seeds) > 1:
        lines.append("test top-1 difference per seed (multigrid - baseline): " + ", ".join(
            f"seed {e['seed']}: {_fmt(None if e['test_top1_difference'] is None else 100 * e['test_top1_difference'], '+.2f')}"
            for e in seeds) + f"; mean {_fmt(_points(report['seeds']['mean_test_top1_difference']), '+.2f')} points")
    if "overhead" in report:
        o = report["overhead"]
        lines.append("")
        lines.append(
            f"callback overhead at a fixed shape ({o['epochs']} epochs, {o['iterations']} iterations each): "
            f"s/iteration plain {o['plain_s_per_iteration']:.4f}, callback {o['callback_s_per_iteration']:.4f}, "
            f"ratio {o['ratio']:.3f} (median step ratio {o['median_step_ratio']:.3f})"
        )
    return "\n".join(lines)


def _points(value: float | None) -> float | None:
    return None if value is None else 100 * value


def plot_curves(report: dict[str, Any], path: Path) -> Path:
    """PNG of validation top-1 against elapsed training wall-clock for both runs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for name, style in (("baseline", "o-"), ("multigrid", "s-")):
        run = report["runs"].get(name)
        if not run:
            continue
        points = [(e["train_elapsed_s"] / 60, e["val_top1"]) for e in run["evaluations"] if e["val_top1"] is not None]
        if points:
            xs, ys = zip(*points)
            test = run.get("test_top1")
            label = f"{name} (test top-1 {test:.3f})" if test is not None else name
            ax.plot(xs, ys, style, markersize=3, label=label)
    s = report["speedup"]
    title = "validation top-1 vs. training wall-clock"
    if "measured_speedup" in s:
        title += f"\nmeasured speed-up {s['measured_speedup']:.2f}x (theoretical {s['theoretical_speedup']:.2f}x)"
    ax.set_title(title)
    ax.set_xlabel("training wall-clock (min, validation excluded)")
    ax.set_ylabel("val top-1")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
