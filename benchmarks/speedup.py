"""Multigrid vs. baseline: measured wall-clock speed-up at equal accuracy (issue #6).

Run as ``python benchmarks/speedup.py [options]``. One invocation trains the same network on the same
data twice, from the same seed, base LR and optimizer:

* ``baseline``: a plain Trainer at the fixed base shape ``(B0, T0, S0)`` for ``--epochs`` epochs,
  step LR (``--gamma`` at the ``--steps`` milestones), no multigrid code at all;
* ``multigrid``: the same Trainer plus :class:`~lightning_multigrid.MultigridCallback`, which derives
  its schedule from that baseline recipe.

Data path (``--input frames``, the default): the synthetic videos are generated, converted once to
JPEG frame folders (``lightning-multigrid prepare``, resumable, into ``<data-dir>_frames``), and
both runs train on the frame folders; ``--input video`` decodes the video files instead.

Each run happens in a fresh Python process (so per-run peak memory and start-up are not shared)
and reports: training wall-clock (everything inside ``Trainer.fit`` except validation) and total
wall-clock (fit + multi-view test), iterations, peak memory, validation top-1 against elapsed
training time, final validation and multi-view test top-1. Training time is split into compute
(steps), data wait (the loader did not keep up), precise BN, loader rebuilds, epoch starts and
start-up (see :class:`speedup_monitor.RunMonitor`, which reads Lightning's profiler events). Per grid (clip shape and batch): iterations, clips/s,
compute-only clips/s, data wait, and the compute efficiency against the ideal
``T0*S0^2/(T*S^2)``; the multigrid run's compute floor (schedule iterations x measured compute
time per iteration, per grid) and its training time over that floor (:mod:`speedup_grids`).
The measured speed-up (baseline training time / multigrid training time) is printed next to the
theoretical one (baseline iterations / multigrid iterations from
:class:`~lightning_multigrid.schedule.multigrid.MultigridSchedule`). ``--seeds N`` repeats both runs for N
seeds and reports each seed's and the mean test top-1 difference. Results go to
``<out-dir>/speedup.json`` and ``<out-dir>/speedup.png``.

``--overhead`` adds the callback-overhead check: the callback with a single full-size long-cycle
grid and no short cycle (so every iteration has the baseline's shape and batch) against a plain
Trainer, for ``--overhead-epochs`` epochs without validation; it reports the per-iteration time
ratio of that one pair of runs.

Timings taken while other processes load the machine are noisy; the JSON records the load average
before and after each run so that a reader can judge.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from lightning_multigrid.cli.make_synthetic import parse_size
from lightning_multigrid.schedule.multigrid import MultigridSchedule

sys.path.insert(0, str(Path(__file__).resolve().parent))
import speedup_grids  # noqa: E402 - benchmarks/ sibling modules
from speedup_report import format_report, grid_report, plot_curves, speedups, time_budget  # noqa: E402
from speedup_run import RunConfig, make_recipe  # noqa: E402

__all__ = ["build_parser", "main"]

DEFAULT_OUT_DIR = "benchmarks/results"
RESULT_NAME = "speedup.json"
PLOT_NAME = "speedup.png"


def build_parser() -> argparse.ArgumentParser:
    """The command-line options (defaults: the CPU demo recipe, see ``docs``/the module docstring)."""
    p = argparse.ArgumentParser(
        prog="python benchmarks/speedup.py",
        description="Train baseline and multigrid on the same data and report the measured speed-up.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    d = p.add_argument_group("data")
    d.add_argument("--data-dir", default="data/synthetic",
                   help="synthetic dataset directory; generated (make_synthetic_dataset) if absent or if its "
                        "manifest differs from the options below; a directory with train/val/test.csv and no "
                        "manifest is used as it is")
    d.add_argument("--num-classes", type=int, default=4, help="synthetic classes")
    d.add_argument("--videos-per-class", type=int, default=120, help="synthetic videos per class (60/20/20 split)")
    d.add_argument("--extra-test-videos", type=int, default=30,
                   help="further test-only synthetic videos per class (train/val unchanged): with the defaults "
                        "24 + 30 = 54 per class, 216 in all, so one test video is 0.46 points, under the "
                        "1-point accuracy bar")
    d.add_argument("--video-size", default="64x64",
                   help="synthetic video WIDTHxHEIGHT (square: a square crop then sees the whole action)")
    d.add_argument("--video-frames", type=int, default=32, help="frames per synthetic video")
    d.add_argument("--input", choices=("frames", "video"), default="frames",
                   help="frames: convert the videos once to JPEG frame folders (lightning-multigrid prepare) and "
                        "train both runs on those; video: decode the video files in every epoch")
    d.add_argument("--frames-dir", default=None,
                   help="where the frame folders go (default: <data-dir>_frames); redone when the videos change")
    d.add_argument("--decoder", default="pyav",
                   help="decoding backend: decord, pyav or torchcodec (pyav: ~40%% faster than decord on the tiny demo files)")
    d.add_argument("--num-workers", type=int, default=1,
                   help="loader worker processes per run (default: with --threads 1, one core computes and one "
                        "loads, as on a GPU machine the device computes and the CPU loads)")
    r = p.add_argument_group("baseline recipe")
    r.add_argument("--model", default="slowfast_tiny", help="zoo model name")
    r.add_argument("--num-frames", type=int, default=16, help="T0, frames per clip")
    r.add_argument("--crop-size", type=int, default=64, help="S0, crop side (>= 64: the short cycle uses S0/2)")
    r.add_argument("--sampling-rate", type=int, default=2, help="r0, temporal stride")
    r.add_argument("--jitter-scales", type=int, nargs=2, default=[64, 72], metavar=("MIN", "MAX"),
                   help="training short-side rescale range at S0 (the DataModule's own default, S0*8/7 .. S0*10/7, "
                        "crops the moving objects of 64 px videos out of view)")
    r.add_argument("--batch-size", type=int, default=4, help="B0 per device")
    r.add_argument("--epochs", type=int, default=24, help="baseline epochs")
    r.add_argument("--steps", type=int, nargs="+", default=[0, 14, 20], help="baseline LR milestones (start with 0)")
    r.add_argument("--gamma", type=float, default=0.1, help="LR decay at each milestone")
    r.add_argument("--lr", type=float, default=0.05, help="base LR at B0 (SGD, Nesterov momentum 0.9)")
    r.add_argument("--warmup-epochs", type=float, default=2.0, help="linear warmup, in each run's own epochs")
    r.add_argument("--weight-decay", type=float, default=1e-4)
    r.add_argument("--bn-base-size", type=int, default=4, help="multigrid: clips per BN statistics group (= B0)")
    r.add_argument("--precise-bn-batches", type=int, default=8,
                   help="multigrid: precise-BN batches (0: off); 8 x B0 = 15%% of the demo's training clips")
    r.add_argument("--eval-freq", type=int, default=3, help="multigrid: evaluations per long-cycle stage")
    r.add_argument("--test-clips", type=int, default=2, help="multi-view test: temporal clips per video")
    r.add_argument("--test-crops", type=int, default=3, choices=(1, 3), help="multi-view test: crops per video")
    h = p.add_argument_group("hardware and run")
    h.add_argument("--devices", type=int, default=1)
    h.add_argument("--accelerator", default="auto", help="cpu, gpu or auto")
    h.add_argument("--threads", type=int, default=1,
                   help="torch intra-op threads per run (0: torch's default, one per core). Threads plus workers "
                        "beyond the cores make the model and the loader fight: multigrid's small grids need up to "
                        "3x the baseline's loader CPU per iteration, so it loses more (benchmarks/README.md)")
    h.add_argument("--seed", type=int, default=0, help="data and training seed (further seeds: --seeds)")
    h.add_argument("--seeds", type=int, default=1,
                   help="train both runs with seeds seed, seed+1, ... and report each seed's and the mean test "
                        "top-1 difference (timings and the tables are the first seed's)")
    h.add_argument("--out-dir", default=DEFAULT_OUT_DIR)
    h.add_argument("--overhead", action="store_true", help="also run the callback-overhead check")
    h.add_argument("--overhead-epochs", type=int, default=3, help="epochs of each overhead run (>= 2)")
    h.add_argument("--only", choices=("baseline", "multigrid"), default=None,
                   help="run one of the two trainings only (exploration; no speed-up is computed)")
    h.add_argument("--quick", action="store_true",
                   help="a tiny configuration that finishes in seconds (tests); overrides the recipe options")
    h.add_argument("--quiet", action="store_true", help="no progress lines from the runs")
    return p


def _apply_quick(args: argparse.Namespace) -> None:
    """A tiny but complete configuration: every code path runs, nothing is meaningful."""
    args.model = "slow_tiny"
    args.num_frames, args.crop_size, args.sampling_rate = 4, 64, 2
    args.batch_size, args.bn_base_size = 2, 2
    args.epochs, args.steps = 2, [0, 1]
    args.num_classes, args.videos_per_class, args.video_frames = 4, 15, 16
    args.video_size = "64x48"
    args.extra_test_videos = 0
    args.precise_bn_batches = 2
    args.test_clips, args.test_crops = 2, 1
    args.num_workers = 0
    args.threads = args.threads or 1
    args.overhead_epochs = 2



# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------
def prepare_data(args: argparse.Namespace) -> tuple[Path, dict[str, Any]]:
    """Generate (or reuse) the dataset; returns its path and a description for the report."""
    root = Path(args.data_dir)
    has_lists = all((root / f"{s}.csv").is_file() for s in ("train", "val", "test"))
    if has_lists and not (root / "manifest.json").is_file():
        return root, {"generated": False, "source": "existing csv dataset (no synthetic manifest)"}
    from lightning_multigrid.data.synthetic import make_synthetic_dataset

    try:
        width, height = parse_size(args.video_size)
    except argparse.ArgumentTypeError as err:
        raise SystemExit(f"--video-size: {err}") from None
    manifest = root / "manifest.json"
    before = manifest.stat().st_mtime_ns if manifest.is_file() else None
    start = time.perf_counter()
    # A no-op when the same dataset is already there; otherwise (re)written.
    make_synthetic_dataset(
        root, num_classes=args.num_classes, videos_per_class=args.videos_per_class, size=(width, height),
        num_frames=args.video_frames, seed=args.seed, extra_test_per_class=args.extra_test_videos,
    )
    seconds = time.perf_counter() - start
    info = json.loads(manifest.read_text())
    info.update({"generated": manifest.stat().st_mtime_ns != before, "generation_s": round(seconds, 2)})
    return root, info


def frame_folders(video_root: Path, args: argparse.Namespace) -> tuple[Path, dict[str, Any]]:
    """The dataset as JPEG frame folders (``lightning-multigrid prepare``), converted once.

    Resumable and skipped when done; redone from scratch when the synthetic videos changed (their
    manifest is kept beside the frames). Both runs train on the result: the same data path.
    """
    import shutil

    from lightning_multigrid.data.prepare import PrepareOptions, prepare_dataset

    out = Path(args.frames_dir) if args.frames_dir else video_root.with_name(video_root.name + "_frames")
    manifest = video_root / "manifest.json"
    source = manifest.read_text() if manifest.is_file() else None
    stamp = out / "source_manifest.json"
    if source is not None and out.exists() and (not stamp.is_file() or stamp.read_text() != source):
        shutil.rmtree(out)  # frames of other videos
    start = time.perf_counter()
    summary = prepare_dataset(video_root, out, PrepareOptions(format="csv", progress=False))
    if source is not None:
        stamp.write_text(source)
    return out, {"frames_dir": str(out), "prepare_s": round(time.perf_counter() - start, 2),
                 "videos_converted": summary.converted, "videos_already_done": summary.skipped_done,
                 "frames_bytes": summary.bytes_written}


def _count_lines(path: Path) -> int:
    return sum(1 for line in path.read_text().splitlines() if line.strip() and not line.startswith("#"))


def _num_classes(root: Path) -> int:
    classes = root / "classes.txt"
    if classes.is_file():
        return _count_lines(classes)
    labels = [int(line.rsplit(None, 1)[-1].rsplit(",", 1)[-1]) for line in (root / "train.csv").read_text().splitlines() if line.strip()]
    return max(labels) + 1


# --------------------------------------------------------------------------------------------
# The child process: one training run
# --------------------------------------------------------------------------------------------
# --------------------------------------------------------------------------------------------
# The parent process: plan, run both, report
# --------------------------------------------------------------------------------------------
def _run_child(cfg: RunConfig, workdir: Path) -> dict[str, Any]:
    """Run one training in a fresh interpreter (isolated timing and peak memory)."""
    config_path = workdir / f"{cfg.kind}.config.json"
    result_path = workdir / f"{cfg.kind}.result.json"
    config_path.write_text(json.dumps(asdict(cfg)))
    result_path.unlink(missing_ok=True)
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve().with_name("speedup_run.py")), str(config_path), str(result_path)],
        # pytorchvideo's import-time deprecation warnings are noise here.
        env={**os.environ, "PYTHONWARNINGS": os.environ.get("PYTHONWARNINGS", "ignore::FutureWarning")},
    )
    if proc.returncode != 0 or not result_path.is_file():
        raise RuntimeError(f"the {cfg.kind} run failed (exit code {proc.returncode}); see its output above")
    result = json.loads(result_path.read_text())
    result["process_s"] = time.perf_counter() - start
    return result


def _run_pair(cfg: RunConfig, only: str | None, workdir: Path, log: Any) -> dict[str, dict[str, Any]]:
    """Baseline then multigrid (or ``only`` one of them) at ``cfg.seed``."""
    runs = {}
    for kind in ("baseline", "multigrid"):
        if only and kind != only:
            continue
        log(f"== {kind} (seed {cfg.seed}): {cfg.model}, (B0, T0, S0) = ({cfg.batch_size * cfg.devices}, "
            f"{cfg.num_frames}, {cfg.crop_size}), baseline {cfg.epochs} epochs, steps {cfg.steps}")
        runs[kind] = _run_child(RunConfig(**{**asdict(cfg), "kind": kind}), workdir)
    return runs


def _baseline_eval_epochs(epochs: int, count: int) -> list[int]:
    """``count`` evaluation epochs spread evenly over ``epochs``, the last epoch always included."""
    count = max(1, min(count, epochs))
    return sorted({max(0, math.ceil((i + 1) * epochs / count) - 1) for i in range(count)})


def _overhead(cfg: RunConfig, epochs: int, workdir: Path, log: Any) -> dict[str, Any]:
    """Callback vs. plain Trainer at the base shape, no validation, one run each."""
    runs = {}
    for kind in ("overhead-plain", "overhead-callback"):
        # Two milestones: the long cycle needs an LR stage before the last one (its single grid
        # is the base shape, so both runs train identical shapes, batches and epochs).
        sub = RunConfig(**{**asdict(cfg), "kind": kind, "epochs": epochs, "steps": [0, epochs - 1],
                           "validate": False, "test": False, "eval_epochs": []})
        log(f"== {kind}: {epochs} epochs at T={cfg.num_frames} S={cfg.crop_size} B={cfg.batch_size}")
        runs[kind] = _run_child(sub, workdir)
    plain, cb = runs["overhead-plain"], runs["overhead-callback"]
    if plain["iterations"] != cb["iterations"]:
        raise RuntimeError(f"overhead runs differ in iterations: plain {plain['iterations']}, callback {cb['iterations']}")
    return {
        "epochs": epochs,
        "iterations": plain["iterations"],
        "plain_s_per_iteration": plain["seconds_per_iteration"],
        "callback_s_per_iteration": cb["seconds_per_iteration"],
        "ratio": cb["seconds_per_iteration"] / plain["seconds_per_iteration"],
        "median_step_ratio": cb["median_step_s"] / plain["median_step_s"],
        "plain": plain,
        "callback": cb,
    }


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the benchmark; returns the report (also written to ``<out-dir>/speedup.json``)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.quick:
        _apply_quick(args)
    if args.overhead and args.overhead_epochs < 2:
        parser.error(f"--overhead-epochs: at least 2 (an LR stage and the final one), got {args.overhead_epochs}")
    log = (lambda *a: None) if args.quiet else (lambda *a: print(*a, flush=True))
    wall_start = time.perf_counter()
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    data_dir, data_info = prepare_data(args)
    num_classes = _num_classes(data_dir)
    num_train = _count_lines(data_dir / "train.csv")
    train_dir = data_dir
    if args.input == "frames":
        train_dir, frames_info = frame_folders(data_dir, args)
        data_info.update(frames_info)
        log(f"frame folders: {train_dir} (prepared in {frames_info['prepare_s']:.1f}s, "
            f"{frames_info['videos_converted']} videos converted)")
    cfg = RunConfig(
        kind="baseline", data_dir=str(train_dir.resolve()), model=args.model, num_classes=num_classes,
        num_frames=args.num_frames, crop_size=args.crop_size, sampling_rate=args.sampling_rate,
        jitter_scales=list(args.jitter_scales) if args.jitter_scales else None, batch_size=args.batch_size,
        epochs=args.epochs, steps=list(args.steps), gamma=args.gamma, lr=args.lr,
        warmup_epochs=args.warmup_epochs, weight_decay=args.weight_decay, bn_base_size=args.bn_base_size,
        precise_bn_batches=args.precise_bn_batches, eval_freq=args.eval_freq, devices=args.devices,
        accelerator=args.accelerator, num_workers=args.num_workers, threads=args.threads, decoder=args.decoder,
        seed=args.seed, test_num_clips=args.test_clips, test_num_crops=args.test_crops, verbose=not args.quiet,
    )
    schedule = MultigridSchedule(make_recipe(cfg, num_samples=num_train))  # validates the recipe before any training
    cfg.eval_epochs = _baseline_eval_epochs(cfg.epochs, len(schedule.eval_epochs()))
    log(f"data: {data_dir} ({num_train} training clips, {num_classes} classes)"
        + (f", generated in {data_info['generation_s']:.1f}s" if data_info.get("generated") else ""))
    if not args.quiet and args.only != "baseline":
        from lightning_multigrid.schedule.report import format_schedule_table

        print(format_schedule_table(schedule, cfg.devices, num_train), flush=True)

    runs: dict[str, dict[str, Any]] = {}
    per_seed: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="speedup-") as tmp:
        workdir = Path(tmp)
        for seed in range(args.seed, args.seed + max(1, args.seeds)):
            seed_runs = _run_pair(RunConfig(**{**asdict(cfg), "seed": seed}), args.only, workdir, log)
            runs = runs or seed_runs  # timings and tables: the first seed's
            per_seed.append({"seed": seed, **{f"{k}_test_top1": r.get("test_top1") for k, r in seed_runs.items()},
                             **({"measured_speedup": seed_runs["baseline"]["train_s"] / seed_runs["multigrid"]["train_s"]}
                                if len(seed_runs) == 2 else {})})
        overhead = _overhead(cfg, args.overhead_epochs, workdir, log) if args.overhead else None

    report: dict[str, Any] = {
        "command": "python benchmarks/speedup.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "config": {k: v for k, v in asdict(cfg).items() if k not in ("kind", "verbose", "validate", "test")},
        "data": {**data_info, "path": str(data_dir), "num_train_clips": num_train,
                 "num_val_videos": _count_lines(data_dir / "val.csv"),
                 "num_test_videos": _count_lines(data_dir / "test.csv")},
        "runs": runs,
        "speedup": speedups(args, cfg, num_train, runs.get("baseline"), runs.get("multigrid")),
        "machine": {"cpu_count": os.cpu_count(), "platform": sys.platform},
    }
    report["grids"] = grid_report(cfg, schedule, num_train, runs)
    report["time_budget"] = time_budget(runs.get("multigrid"), report["grids"].get("multigrid"))
    report["seeds"] = speedup_grids.seeds_summary(per_seed)
    if overhead is not None:
        report["overhead"] = overhead
    report["wall_clock_s"] = time.perf_counter() - wall_start
    json_path = out_dir / RESULT_NAME
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    png_path = plot_curves(report, out_dir / PLOT_NAME)
    if not args.quiet:
        print()
        print(format_report(report))
        print(f"\nwrote {json_path} and {png_path} ({report['wall_clock_s']:.0f}s in all)")
    return report


if __name__ == "__main__":
    main()
