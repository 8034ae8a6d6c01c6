"""Does multigrid keep the baseline's accuracy? ``make accuracy`` (issue 24).

Trains the same recipe as several variants, several seeds each, on the harder synthetic task
(``task="patterns"``: stripe orientation x direction of motion, >= 1000 test videos), and writes
``benchmarks/results/accuracy.json`` and ``accuracy.png``:

* ``baseline``: the Trainer alone (the baseline's step LR, no multigrid code in the loop);
* ``reference``: :class:`~lightning_multigrid.MultigridCallback` with the reference's schedule
  (PySlowFast's defaults: both cycles, the short cycle in every stage);
* ``long_cycle_only`` / ``short_cycle_only``: the reference with one cycle off;
* ``default``: the callback's own defaults (listed only when they differ from the reference).

Per variant and seed: final multi-view test top-1, training wall-clock (validation excluded),
iterations, the val curve against training wall-clock (validated every epoch, at the base shape),
and the time to the baseline's accuracy (training wall-clock until val first reaches the same seed's
baseline final val minus 1 point; null if never). Per variant: the mean test difference to the
baseline in points with a 95% bootstrap CI, paired by seed and by test video
(:mod:`accuracy_stats`).

``--sweep`` maps the regime instead (1 seed, the demo's task and model): the reference's and the
package default's test difference over dataset sizes x schedule lengths (``accuracy_sweep.json``).

Each training runs in a fresh interpreter (isolated timing and memory), one at a time.
"""

from __future__ import annotations

import argparse
import functools
import json
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import accuracy_stats  # noqa: E402 - benchmarks/ sibling module

__all__ = ["REFERENCE", "VARIANTS", "Setting", "main", "train_once"]

_CHILD_FLAG = "--_run"
#: The reference schedule (PySlowFast): the short cycle in every stage, whatever the clip size.
REFERENCE: dict[str, Any] = {"short_cycle_min_crop": 0, "spatial_coarsening": "rescale", "lr_scaling": "linear",
                             "max_batch_factor": None}
#: Callback arguments per variant (``None``: the baseline, no callback).
VARIANTS: dict[str, dict[str, Any] | None] = {
    "baseline": None,
    "reference": REFERENCE,
    "long_cycle_only": {**REFERENCE, "short_cycle": False},
    "short_cycle_only": {**REFERENCE, "long_cycle": False},
    "default": {},
}


@dataclass
class Setting:
    """One dataset and baseline recipe (the defaults: ``make accuracy``'s, chosen with the baseline alone)."""

    task: str = "patterns"
    num_classes: int = 8
    videos_per_class: int = 120
    extra_test_per_class: int = 102  # 24 + 102 = 126 test videos per class, 1008 in all
    video_size: tuple[int, int] = (64, 64)
    video_frames: int = 32
    data_seed: int = 0
    model: str = "slowfast_tiny"
    num_frames: int = 16
    crop_size: int = 64
    sampling_rate: int = 2
    jitter_scales: tuple[int, int] = (64, 72)
    batch_size: int = 4
    epochs: int = 12
    steps: list[int] = field(default_factory=lambda: [0, 7, 10])
    lr: float = 0.05
    weight_decay: float = 1e-4
    warmup_epochs: float = 2.0
    bn_base_size: int = 4
    precise_bn_batches: int = 8
    test_clips: int = 2
    test_crops: int = 3
    num_workers: int = 1
    threads: int = 1

    def data_dir(self, root: Path) -> Path:
        return root / (f"{self.task}_c{self.num_classes}_v{self.videos_per_class}_x{self.extra_test_per_class}"
                       f"_{self.video_size[0]}x{self.video_size[1]}_f{self.video_frames}_s{self.data_seed}")


# --------------------------------------------------------------------------------------------
# One training (child process)
# --------------------------------------------------------------------------------------------
def train_once(setting: Setting, data_dir: str, variant: str, kwargs: dict[str, Any] | None, seed: int,
               verbose: bool = True) -> dict[str, Any]:
    """Train and test one variant at one seed; returns its measurements and per-video test results."""
    import logging
    import warnings

    import pytorch_lightning as pl
    import torch
    from baseline_schedule import BaselineSchedule
    from speedup_monitor import RunMonitor

    from lightning_multigrid import MultigridCallback
    from lightning_multigrid.data.datamodule import VideoDataModule
    from lightning_multigrid.models import DefaultSGD, VideoClassifier
    from lightning_multigrid.schedule import BaseRecipe

    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    torch.set_num_threads(setting.threads)
    pl.seed_everything(seed, workers=True, verbose=False)
    datamodule = VideoDataModule(
        format="csv", root=data_dir, decoder="pyav", num_frames=setting.num_frames, crop_size=setting.crop_size,
        sampling_rate=setting.sampling_rate, jitter_scales=tuple(setting.jitter_scales),
        test_num_clips=setting.test_clips, test_num_crops=setting.test_crops, num_classes=setting.num_classes,
        batch_size=setting.batch_size, num_workers=setting.num_workers,
        persistent_workers=setting.num_workers > 0,
        random_flip=False,  # left/right motion is part of the labels
    )
    module = VideoClassifier(setting.model, setting.num_classes,
                             optimizer=functools.partial(DefaultSGD, lr=setting.lr, weight_decay=setting.weight_decay))
    monitor = RunMonitor(f"{variant}/{seed}", verbose=verbose)
    multigrid = None
    if kwargs is None:
        recipe = BaseRecipe(steps=setting.steps, max_epochs=setting.epochs, num_frames=setting.num_frames,
                            crop_size=setting.crop_size, batch_size=setting.batch_size,
                            sampling_rate=setting.sampling_rate, long_cycle=False, short_cycle=False)
        schedule_cb: Any = BaselineSchedule(recipe, setting.warmup_epochs, eval_epochs=list(range(setting.epochs)))
    else:
        # Validated every epoch (at the base shape) for the val curve; precise BN still serves the
        # final validation first (run.precise_bn_allocation), so the final model is the same.
        multigrid = schedule_cb = MultigridCallback(
            steps=setting.steps, warmup_epochs=setting.warmup_epochs, bn_base_size=setting.bn_base_size,
            precise_bn_batches=setting.precise_bn_batches, seed=seed, follow_eval_schedule=False,
            log_schedule=False, **kwargs,
        )
    trainer = pl.Trainer(
        max_epochs=setting.epochs, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
        callbacks=[schedule_cb, monitor], check_val_every_n_epoch=1,  # the monitor last (speedup_monitor)
        profiler=monitor.profiler,
    )
    monitor.fit_started()
    trainer.fit(module, datamodule=datamodule)
    monitor.fit_finished()
    results = trainer.test(module, datamodule=datamodule, verbose=False)
    ids, scores, labels = module.test_video_predictions
    order = ids.argsort()
    correct = (scores.argmax(dim=1) == labels)[order]
    summary = monitor.summary()
    return {
        "variant": variant, "seed": seed, "callback_kwargs": kwargs,
        "test_top1": float(results[0]["test/top1"]),
        "test_correct": [int(c) for c in correct.tolist()],
        "train_s": summary["train_s"], "iterations": summary["iterations"],
        "val_curve": [{"train_s": e["train_elapsed_s"], "epoch": e["epoch"], "val_top1": e["val_top1"]}
                      for e in summary["evaluations"]],
        "max_epochs": multigrid.schedule.max_epochs if multigrid is not None and multigrid.schedule else setting.epochs,
        "load_average": summary["load_average"],
    }


def _child_main(config_path: str, result_path: str) -> int:
    config = json.loads(Path(config_path).read_text())
    setting = Setting(**{**config["setting"], "video_size": tuple(config["setting"]["video_size"]),
                         "jitter_scales": tuple(config["setting"]["jitter_scales"])})
    result = train_once(setting, config["data_dir"], config["variant"], config["kwargs"], config["seed"],
                        config["verbose"])
    Path(result_path).write_text(json.dumps(result))
    return 0


def run_child(setting: Setting, data_dir: Path, variant: str, kwargs: dict[str, Any] | None, seed: int,
              workdir: Path, verbose: bool) -> dict[str, Any]:
    """:func:`train_once` in a fresh interpreter."""
    config = workdir / f"{variant}-{seed}.config.json"
    out = workdir / f"{variant}-{seed}.result.json"
    config.write_text(json.dumps({"setting": asdict(setting), "data_dir": str(data_dir), "variant": variant,
                                  "kwargs": kwargs, "seed": seed, "verbose": verbose}))
    out.unlink(missing_ok=True)
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), _CHILD_FLAG, str(config), str(out)],
                          env={**__import__("os").environ, "PYTHONWARNINGS": "ignore::FutureWarning"})
    if proc.returncode != 0 or not out.is_file():
        raise RuntimeError(f"accuracy: the {variant} run (seed {seed}) failed with exit code {proc.returncode}")
    return json.loads(out.read_text())


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------
def prepare(setting: Setting, root: Path) -> Path:
    """Generate the videos (a no-op when present) and convert them once to frame folders."""
    from speedup import frame_folders

    from lightning_multigrid.data.synthetic import make_synthetic_dataset

    videos = make_synthetic_dataset(
        setting.data_dir(root), num_classes=setting.num_classes, videos_per_class=setting.videos_per_class,
        size=setting.video_size, num_frames=setting.video_frames, seed=setting.data_seed,
        extra_test_per_class=setting.extra_test_per_class, task=setting.task,
    )
    frames, _ = frame_folders(videos, argparse.Namespace(frames_dir=None))
    return frames


# --------------------------------------------------------------------------------------------
# Modes
# --------------------------------------------------------------------------------------------
def differs_from_reference() -> bool:
    """Whether the package default schedule is not the reference's (then ``default`` is a variant)."""
    import inspect

    from lightning_multigrid import MultigridCallback

    params = inspect.signature(MultigridCallback).parameters
    return any(params[name].default != value for name, value in REFERENCE.items())


def run_variants(setting: Setting, variants: list[str], seeds: list[int], data_root: Path, log: Any,
                 verbose: bool, workdir: Path) -> dict[str, list[dict[str, Any]]]:
    data_dir = prepare(setting, data_root)
    runs: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
    for seed in seeds:
        for variant in variants:
            start = time.perf_counter()
            result = run_child(setting, data_dir, variant, VARIANTS[variant], seed, workdir, verbose)
            log(f"{variant:17s} seed {seed}: test top-1 {result['test_top1']:.3f}, train {result['train_s']:.0f}s, "
                f"{result['iterations']} iterations ({time.perf_counter() - start:.0f}s with test)")
            runs[variant].append(result)
    return runs


def sweep(args: argparse.Namespace, base: Setting, data_root: Path, log: Any, workdir: Path) -> dict[str, Any]:
    """The regime map: reference and package default against the baseline, 1 seed per cell."""
    variants = ["baseline", "reference"] + (["default"] if differs_from_reference() else [])
    cells = []
    for videos_per_class in args.sweep_videos:
        for epochs in args.sweep_epochs:
            steps = [0, round(epochs * 7 / 12), round(epochs * 10 / 12)]
            setting = replace(base, videos_per_class=videos_per_class, epochs=epochs, steps=steps)
            runs = run_variants(setting, variants, [args.seed], data_root, log, not args.quiet, workdir)
            # Per class, 20% (at least 1) go to val and to test, the rest train (make_synthetic_dataset's split).
            cell: dict[str, Any] = {"videos_per_class": videos_per_class, "epochs": epochs, "steps": steps,
                                    "train_clips": (videos_per_class - 2 * max(1, round(videos_per_class * 0.2)))
                                    * setting.num_classes}
            for variant in variants:
                run = runs[variant][0]
                cell[variant] = {"test_top1": run["test_top1"], "train_s": run["train_s"],
                                 "iterations": run["iterations"]}
                if variant != "baseline":
                    cell[variant]["test_diff_points"] = 100 * (run["test_top1"] - runs["baseline"][0]["test_top1"])
            cells.append(cell)
    return {"task": base.task, "model": base.model, "seed": args.seed, "cells": cells}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--seeds", type=int, default=3, help="training seeds 0..N-1 (the data is the same)")
    p.add_argument("--seed", type=int, default=0, help="first seed")
    p.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=None,
                   help="default: all ('default' only when it differs from the reference)")
    p.add_argument("--epochs", type=int, default=Setting.epochs)
    p.add_argument("--steps", type=int, nargs="+", default=None, help="default: [0, 7, 10] x epochs / 12")
    p.add_argument("--videos-per-class", type=int, default=Setting.videos_per_class)
    p.add_argument("--extra-test-videos", type=int, default=Setting.extra_test_per_class)
    p.add_argument("--task", choices=["patterns", "actions"], default=Setting.task)
    p.add_argument("--data-root", default="data/accuracy")
    p.add_argument("--out-dir", default="benchmarks/results")
    p.add_argument("--bootstrap", type=int, default=2000, help="bootstrap resamples for the CI")
    p.add_argument("--sweep", action="store_true", help="the regime map instead (1 seed, the demo's task)")
    p.add_argument("--sweep-videos", type=int, nargs="+", default=[40, 120, 200], help="videos per class")
    p.add_argument("--sweep-epochs", type=int, nargs="+", default=[12, 24])
    p.add_argument("--quick", action="store_true", help="a tiny configuration for tests (nothing meaningful)")
    p.add_argument("--quiet", action="store_true")
    return p


def _quick(setting: Setting) -> Setting:
    return replace(setting, num_classes=4, videos_per_class=15, extra_test_per_class=0, video_size=(64, 48),
                   video_frames=16, model="slow_tiny", num_frames=4, batch_size=2, bn_base_size=2, epochs=2,
                   steps=[0, 1], precise_bn_batches=2, test_clips=1, test_crops=1, num_workers=0)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = build_parser().parse_args(argv)
    log = (lambda *a: None) if args.quiet else (lambda *a: print(*a, flush=True))
    start = time.perf_counter()
    steps = args.steps or [0, round(args.epochs * 7 / 12), round(args.epochs * 10 / 12)]
    setting = Setting(task=args.task, videos_per_class=args.videos_per_class,
                      extra_test_per_class=args.extra_test_videos, epochs=args.epochs, steps=steps)
    if args.quick:
        setting = _quick(setting)
    out_dir, data_root = Path(args.out_dir), Path(args.data_root)
    out_dir.mkdir(parents=True, exist_ok=True)
    command = "python benchmarks/accuracy.py " + " ".join(argv if argv is not None else sys.argv[1:])
    import tempfile

    with tempfile.TemporaryDirectory(prefix="accuracy-") as tmp:
        if args.sweep:
            base = setting if args.quick else replace(setting, task="actions", extra_test_per_class=30)
            if args.quick:  # one cell at the tiny setting's size; 4 epochs: the fewest with 3 distinct steps
                args.sweep_videos, args.sweep_epochs = [setting.videos_per_class], [4]
            report = {"command": command, **sweep(args, base, data_root, log, Path(tmp))}
            report["wall_clock_s"] = time.perf_counter() - start
            path = out_dir / "accuracy_sweep.json"
            path.write_text(json.dumps(report, indent=2) + "\n")
            log(accuracy_stats.format_sweep(report))
            log(f"wrote {path} ({report['wall_clock_s']:.0f}s)")
            return report
        variants = args.variants or [v for v in VARIANTS if v != "default" or differs_from_reference()]
        if "baseline" not in variants:
            variants = ["baseline", *variants]
        seeds = list(range(args.seed, args.seed + args.seeds))
        runs = run_variants(setting, variants, seeds, data_root, log, not args.quiet, Path(tmp))
    report = accuracy_stats.report(runs, seeds, args.bootstrap)
    report.update(command=command, setting=asdict(setting), wall_clock_s=time.perf_counter() - start)
    path = out_dir / "accuracy.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    png = accuracy_stats.plot(report, out_dir / "accuracy.png")
    log(accuracy_stats.format_table(report))
    log(f"wrote {path} and {png} ({report['wall_clock_s']:.0f}s)")
    return report


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == _CHILD_FLAG:
        sys.exit(_child_main(sys.argv[2], sys.argv[3]))
    main()
