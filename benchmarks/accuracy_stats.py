"""Statistics, tables and the figure of ``benchmarks/accuracy.py`` (pure numpy + matplotlib).

* :func:`paired_bootstrap`: the mean test difference to the baseline in points, with a 95% CI from
  resampling seeds (paired: a variant's seed with the same seed's baseline) and, within each drawn
  seed, test videos (paired: the same videos for both), so the CI holds both sources of noise;
* :func:`time_to_accuracy`: training wall-clock until val first reaches a target;
* :func:`report`: the ``accuracy.json`` fields; :func:`plot`: val against wall-clock, mean and band.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["format_sweep", "format_table", "paired_bootstrap", "plot", "report", "time_to_accuracy"]

#: "The baseline's accuracy" for the time-to-accuracy measure: its final val minus this.
TOLERANCE = 0.01


def paired_bootstrap(baseline: list[list[int]], variant: list[list[int]], resamples: int = 2000,
                     seed: int = 0) -> tuple[float, tuple[float, float]]:
    """Mean (variant - baseline) accuracy in points and its 95% percentile CI.

    ``baseline[s][i]`` / ``variant[s][i]``: whether test video ``i`` was right at seed ``s``.
    """
    b = np.asarray(baseline, dtype=float)
    v = np.asarray(variant, dtype=float)
    if b.shape != v.shape or b.ndim != 2:
        raise ValueError(f"paired_bootstrap: per-seed, per-video results of equal shape needed, got {b.shape} and {v.shape}")
    diff = v - b  # seeds x videos
    mean = 100 * float(diff.mean())
    rng = np.random.default_rng(seed)
    n_seeds, n_videos = diff.shape
    stats = np.empty(resamples)
    for k in range(resamples):
        seeds = rng.integers(0, n_seeds, size=n_seeds)
        videos = rng.integers(0, n_videos, size=(n_seeds, n_videos))
        stats[k] = diff[seeds[:, None], videos].mean()
    low, high = np.percentile(100 * stats, [2.5, 97.5])
    return mean, (float(low), float(high))


def time_to_accuracy(curve: list[dict[str, Any]], target: float) -> float | None:
    """Training seconds at the first validation with ``val_top1 >= target`` (``None``: never)."""
    for point in curve:
        if point["val_top1"] is not None and point["val_top1"] >= target - 1e-9:
            return float(point["train_s"])
    return None


def _final_val(curve: list[dict[str, Any]]) -> float | None:
    values = [p["val_top1"] for p in curve if p["val_top1"] is not None]
    return values[-1] if values else None


def report(runs: dict[str, list[dict[str, Any]]], seeds: list[int], resamples: int = 2000) -> dict[str, Any]:
    """``accuracy.json``'s ``seeds`` and ``variants`` (per variant: lists per seed, then the summary)."""
    baseline = runs["baseline"]
    targets = [(_final_val(r["val_curve"]) or 0.0) - TOLERANCE for r in baseline]
    variants: dict[str, Any] = {}
    for name, seed_runs in runs.items():
        entry: dict[str, Any] = {
            "callback_kwargs": seed_runs[0]["callback_kwargs"],
            "test_top1": [r["test_top1"] for r in seed_runs],
            "train_s": [r["train_s"] for r in seed_runs],
            "iterations": [r["iterations"] for r in seed_runs],
            "max_epochs": [r["max_epochs"] for r in seed_runs],
            "time_to_baseline_accuracy_s": [time_to_accuracy(r["val_curve"], t) for r, t in zip(seed_runs, targets)],
            "val_curve": [r["val_curve"] for r in seed_runs],
            "test_top1_mean": float(np.mean([r["test_top1"] for r in seed_runs])),
            "train_s_mean": float(np.mean([r["train_s"] for r in seed_runs])),
        }
        if name != "baseline":
            mean, ci = paired_bootstrap([r["test_correct"] for r in baseline], [r["test_correct"] for r in seed_runs],
                                        resamples)
            entry["test_diff_mean_points"] = mean
            entry["test_diff_ci95_points"] = list(ci)
            entry["speedup_train_s"] = entry["train_s_mean"] and float(np.mean([r["train_s"] for r in baseline])) / entry["train_s_mean"]
        variants[name] = entry
    return {"seeds": seeds, "num_test_videos": len(baseline[0]["test_correct"]), "tolerance": TOLERANCE,
            "variants": variants}


def _fmt(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def format_table(rep: dict[str, Any]) -> str:
    base_train = rep["variants"]["baseline"]["train_s_mean"]
    lines = [
        f"{len(rep['seeds'])} seeds, {rep['num_test_videos']} test videos (multi-view); time to the baseline's "
        f"accuracy = training s until val >= the seed's baseline final val - {100 * rep['tolerance']:.0f} point",
        "variant            test top-1 (mean)  diff, points [95% CI]   train s  speed-up  iterations  "
        "time to baseline acc. s",
    ]
    for name, v in rep["variants"].items():
        diff = "" if name == "baseline" else (f"{v['test_diff_mean_points']:+.1f} [{v['test_diff_ci95_points'][0]:+.1f}, "
                                                f"{v['test_diff_ci95_points'][1]:+.1f}]")
        times = ", ".join(_fmt(t, ".0f") for t in v["time_to_baseline_accuracy_s"])
        lines.append(f"{name:18s} {v['test_top1_mean']:17.3f}  {diff:22s} {v['train_s_mean']:8.0f}  "
                     f"{base_train / v['train_s_mean']:7.2f}x  {np.mean(v['iterations']):10.0f}  {times}")
    return "\n".join(lines)


def format_sweep(rep: dict[str, Any]) -> str:
    names = [k for k in ("reference", "default") if k in rep["cells"][0]]
    lines = ["train clips  epochs  baseline test  " + "  ".join(f"{n} diff (points)" for n in names)]
    for c in rep["cells"]:
        diffs = "  ".join(f"{c[n]['test_diff_points']:+20.1f}" for n in names)
        lines.append(f"{c['train_clips']:11d}  {c['epochs']:6d}  {c['baseline']['test_top1']:13.3f}  {diffs}")
    return "\n".join(lines)


def _step_curve(curve: list[dict[str, Any]], grid: np.ndarray) -> np.ndarray:
    """The last val at or before each time of ``grid`` (NaN before the first validation)."""
    times = np.array([p["train_s"] for p in curve], dtype=float)
    values = np.array([np.nan if p["val_top1"] is None else p["val_top1"] for p in curve], dtype=float)
    index = np.searchsorted(times, grid, side="right") - 1
    return np.where(index >= 0, values[np.clip(index, 0, None)], np.nan)


def plot(rep: dict[str, Any], path: Path) -> Path:
    """Val top-1 against training wall-clock: per variant the mean over seeds and its min-max band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for name, v in rep["variants"].items():
        curves = v["val_curve"]
        end = max(c[-1]["train_s"] for c in curves if c)
        grid = np.linspace(0, end, 300)
        stacked = np.vstack([_step_curve(c, grid) for c in curves])
        import warnings

        with warnings.catch_warnings():  # before a variant's first validation every seed is NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            mean, low, high = np.nanmean(stacked, axis=0), np.nanmin(stacked, axis=0), np.nanmax(stacked, axis=0)
        line, = ax.plot(grid, mean, label=f"{name} (test {v['test_top1_mean']:.3f})")
        ax.fill_between(grid, low, high, color=line.get_color(), alpha=0.15)
    finals = [_final_val(c) for c in rep["variants"]["baseline"]["val_curve"]]
    level = float(np.mean([f for f in finals if f is not None]))
    ax.axhline(level, color="black", linestyle="--", linewidth=1, label=f"baseline final val ({level:.3f})")
    ax.set_xlabel("training wall-clock, s (validation excluded)")
    ax.set_ylabel("val top-1")
    ax.set_title(f"val top-1 against wall-clock, mean and min-max over {len(rep['seeds'])} seeds")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
