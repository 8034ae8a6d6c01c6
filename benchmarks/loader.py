"""Does the loader keep up with the trainer at every multigrid grid? (issue #12)

For every grid (clip shape and batch) of a schedule, by default the demo recipe of
``benchmarks/speedup.py``, this measures

* the clips/s the loader delivers (``DataLoader`` over the training dataset, ``ClipKey`` batches of
  that grid, collate included), per input (video files through each decoder, or frame folders
  written by ``prepare``) and per worker count (0 = the main process; worker start-up excluded);
* the clips/s the trainer consumes at that grid: the demo model's compute-only rate (forward,
  loss, backward, SGD step on a random batch of that shape);
* the per-clip load cost split into open (probe and container/reader open), decode,
  convert/resize (colour conversion, rescale, tensor copies), augment (sampling, crop, flip,
  normalise) and collate, measured on the real code path by timing wrappers around its pieces,
  in CPU time of the main process (robust to other processes' load; see ``stage_timing``).

* per grid, input and decode place (``decode_on``: ``workers``, or ``device`` where the loader
  workers only read encoded frames), the loader's CPU per iteration (batch x CPU ms per clip)
  relative to the base grid's (issue #20: every grid feeds the model the same pixels per
  iteration, so the loader's CPU per iteration should not grow at the small grids); the rows
  ``grids`` of ``loader.json`` (``T``, ``S``, ``batch_size``, ``input``, ``decode_on``,
  ``cpu_ms_per_clip``, ``cpu_ms_per_iteration``, ``relative_to_base``).

The acceptance figure of issue #12 is the per-clip load cost at the coarsest grid over the
base grid's with frame-folder input (wanted: <= 1/4). Timings on a shared machine are noisy:
compare ratios within one run. Results: a table on stdout, ``loader.md`` and ``loader.json``
under ``--out-dir``.

Usage::

    python benchmarks/loader.py [--quick] [--video-size 320x240] [--workers 0 2] [--inputs frames ...]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from lightning_multigrid.cli.make_synthetic import parse_size
from lightning_multigrid.data import make_synthetic_dataset
from lightning_multigrid.data.datasets import CsvVideoDataset
from lightning_multigrid.data.device_decode import EncodedBatch, collate_clips, decode_batch
from lightning_multigrid.data.prepare import PrepareOptions, prepare_dataset
from lightning_multigrid.sampling.keys import ClipKey
from lightning_multigrid.schedule.multigrid import MultigridSchedule
from lightning_multigrid.schedule.recipe import ClipShape

sys.path.insert(0, str(Path(__file__).resolve().parent))
import stage_timing  # noqa: E402 - benchmarks/ sibling module

STAGES = ("open", "decode", "convert_resize", "augment", "collate")
#: The prepared inputs: (name, prepare's levels, prepare's layout).
STORES = (("frames", [], "folders"), ("frames+half", ["half"], "folders"), ("packed+half", ["half"], "packed"))


# --------------------------------------------------------------------------------------------
# Grids
# --------------------------------------------------------------------------------------------
def demo_schedule(short_side: int | None = None) -> tuple[MultigridSchedule, dict[str, Any]]:
    """The schedule of ``benchmarks/speedup.py``'s default (demo) recipe, and that recipe's options.

    With ``short_side`` (stored frames larger than the demo's), S0 and the jitter are scaled so that S0
    is 224/256 of it (Kinetics' ratio) and the package's defaults choose the grids at that S0, as they
    would for a real recipe: 320x240 sources give S0 = 210 and the reference's grids, both cycles.
    """
    import speedup  # noqa: PLC0415 - sibling scripts, imported for their defaults only
    import speedup_run  # noqa: PLC0415

    args = speedup.build_parser().parse_args([])
    scale = 1.0 if short_side in (None, args.crop_size) else short_side * 224 / 256 / args.crop_size
    jitter = tuple(round(j * scale) for j in args.jitter_scales)
    cfg = speedup_run.RunConfig(
        kind="multigrid", data_dir="", model=args.model, num_classes=args.num_classes, num_frames=args.num_frames,
        crop_size=round(args.crop_size * scale), sampling_rate=args.sampling_rate, batch_size=args.batch_size,
        epochs=args.epochs, steps=list(args.steps), gamma=args.gamma, lr=args.lr, warmup_epochs=args.warmup_epochs,
        weight_decay=args.weight_decay, bn_base_size=args.bn_base_size, precise_bn_batches=0, eval_freq=args.eval_freq,
        devices=1, accelerator="cpu", num_workers=0, threads=None, decoder=args.decoder, seed=0,
        test_num_clips=1, test_num_crops=1, jitter_scales=list(jitter),
    )
    recipe = speedup_run.make_recipe(cfg, jitter_scales=jitter)
    return MultigridSchedule(recipe), {"model": args.model, "num_classes": args.num_classes,
                                       "video_frames": args.video_frames, "video_size": args.video_size}


def schedule_grids(schedule: MultigridSchedule) -> list[dict[str, Any]]:
    """Every distinct (shape, batch) the schedule trains at, coarsest first; the base grid is last."""
    grids: dict[tuple, dict[str, Any]] = {}
    for stage in schedule.stages:
        batches = schedule.epoch_batch_sizes(stage.start_epoch)
        for slot, batch in zip(schedule.short_cycle_slots(stage.start_epoch), batches):
            shape = ClipShape(stage.num_frames, slot.crop_size, schedule.stride_range(stage.start_epoch),
                              schedule.jitter_range(slot.crop_size))
            grids.setdefault((shape, batch), {"shape": shape, "batch_size": batch})
    return sorted(grids.values(), key=lambda g: (g["shape"].num_frames * g["shape"].crop_size ** 2, -g["batch_size"]))


# --------------------------------------------------------------------------------------------
# Measurements
# --------------------------------------------------------------------------------------------
def loader_rate(dataset: CsvVideoDataset, shape: ClipShape, batch: int, workers: int, clips: int) -> float:
    """Clips/s a DataLoader delivers at ``shape``; with workers the clock starts at the first batch."""
    batches = max(2, -(-clips // batch)) + (1 if workers else 0)
    keys = [[ClipKey((b * batch + i) % len(dataset), shape) for i in range(batch)] for b in range(batches)]
    torch.manual_seed(0)
    loader = DataLoader(dataset, batch_sampler=keys, num_workers=workers, collate_fn=collate_clips)
    iterator = iter(loader)
    if workers:
        next(iterator)  # worker start-up is a per-stage cost, reported by speedup.py, not a rate
    count, start = 0, time.perf_counter()
    for item in iterator:
        count += len(item["label"])
    return count / (time.perf_counter() - start)


def stage_costs(dataset: CsvVideoDataset, shape: ClipShape, batch: int, clips: int) -> dict[str, float]:
    """Per-clip CPU milliseconds of each stage, in the main process, cold probes (as a first epoch)."""
    torch.manual_seed(0)
    timer = stage_timing.StageTimer()
    count, collate_s, device_s = 0, 0.0, 0.0
    with timer.instrument(dataset):
        while count < clips:
            items = [timer.item(dataset, ClipKey((count + i) % len(dataset), shape)) for i in range(batch)]
            start = time.process_time()  # CPU time, like the stage timer
            collated = collate_clips(items)
            collate_s += time.process_time() - start
            if isinstance(collated["video"], EncodedBatch):  # the training process's share, apart
                start = time.process_time()
                decode_batch(collated["video"], "cpu")
                device_s += time.process_time() - start
            count += batch
    costs = timer.per_clip_ms(count)
    costs["collate"] = 1e3 * collate_s / count
    costs["device_decode_cpu"] = 1e3 * device_s / count
    costs["total"] = sum(costs[s] for s in STAGES)
    return costs


def compute_rate(model_name: str, num_classes: int, shape: ClipShape, batch: int, iterations: int) -> float:
    """Compute-only clips/s of a training step (forward, loss, backward, SGD) at ``shape``: median step."""
    from lightning_multigrid.models import VideoClassifier  # noqa: PLC0415 - heavy import

    torch.manual_seed(0)
    module = VideoClassifier(model_name, num_classes)
    module.train()
    optimizer = torch.optim.SGD(module.parameters(), lr=1e-3, momentum=0.9)
    video = torch.randn(batch, 3, shape.num_frames, shape.crop_size, shape.crop_size)
    labels = torch.randint(0, num_classes, (batch,))
    steps = []
    for _ in range(iterations + 1):  # the first step allocates; it is not counted
        start = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(module(video), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        steps.append(time.perf_counter() - start)
    steps = sorted(steps[1:])
    return batch / steps[len(steps) // 2]


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------
def make_inputs(data_dir: Path, size: tuple[int, int], frames: int, videos_per_class: int, short_side: int | None) -> dict[str, Path]:
    """Synthetic h264 videos (the demo's generator) and the same videos as frame folders, without and
    with the half level (``prepare --levels half``)."""
    videos = make_synthetic_dataset(data_dir / f"videos_{size[0]}x{size[1]}", num_classes=4,
                                    videos_per_class=videos_per_class, size=size, num_frames=frames, seed=0)
    inputs = {"video": videos}
    for name, levels, layout in STORES:
        inputs[name] = data_dir / f"{name.replace('+', '_')}_{size[0]}x{size[1]}_{short_side or 'src'}"
        prepare_dataset(videos, inputs[name], PrepareOptions(short_side=short_side, progress=False, splits=["train.csv"],
                                                             levels=levels, layout=layout))
    return inputs


@dataclasses.dataclass(frozen=True)
class InputMode:
    """One way of feeding the loader: a stored input and where its frames are decoded."""

    name: str
    root: Path
    decoder: str
    decode_on: str = "workers"

    @property
    def label(self) -> str:
        return self.name if self.decode_on == "workers" else f"{self.name} (device decode)"

    def dataset(self, shape: ClipShape) -> CsvVideoDataset:
        return CsvVideoDataset(self.root, "train.csv", shape, "train", decoder=self.decoder, cache_probes=False,
                               random_flip=False, decode_on=self.decode_on)


def input_modes(inputs: dict[str, Path], decoders: list[str]) -> list[InputMode]:
    """Every input the benchmark measures: the videos through each decoder, then the prepared stores."""
    stores = [InputMode(name, inputs[name], "pyav") for name, *_ in STORES]
    on_device = [InputMode(name, inputs[name], "pyav", "device") for name in ("frames+half", "packed+half")]
    return [InputMode(f"video/{d}", inputs["video"], d) for d in decoders] + stores + on_device


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------
def format_tables(result: dict[str, Any]) -> str:
    """Markdown: throughput against consumption per grid, then the per-clip stage split."""
    lines = ["| grid (T x S, B) | input | workers | loader clips/s | trainer clips/s | loader / trainer |",
             "|---|---|---|---|---|---|"]
    for row in result["throughput"]:
        lines.append(f"| {row['grid']} | {_input_cell(row)} | {row['workers']} | {row['loader_clips_per_s']:.1f} | "
                     f"{row['trainer_clips_per_s']:.1f} | {row['loader_over_trainer']:.2f} |")
    lines += ["", "| grid (T x S, B) | input | " + " | ".join(f"{s} ms" for s in STAGES) + " | total CPU ms/clip |",
              "|---|---|" + "---|" * (len(STAGES) + 1)]
    for row in result["stages"]:
        cells = " | ".join(f"{row[s]:.2f}" for s in (*STAGES, "total"))
        lines.append(f"| {row['grid']} | {_input_cell(row)} | {cells} |")
    lines += ["", "| input | coarsest / base per-clip load cost |", "|---|---|"]
    for name, ratio in result["coarsest_over_base"].items():
        lines.append(f"| {name} | {ratio:.3f} |")
    lines += ["", "| grid (T x S, B) | input | decode on | loader CPU ms/clip | loader CPU ms/iteration | vs base grid "
              "| device decode ms/clip (CPU here) |", "|---|---|---|---|---|---|---|"]
    for row in result["grids"]:
        lines.append(f"| {row['T']}x{row['S']}, B={row['batch_size']} | {row['input']} | {row['decode_on']} | "
                     f"{row['cpu_ms_per_clip']:.2f} | {row['cpu_ms_per_iteration']:.1f} | {row['relative_to_base']:.2f} | "
                     f"{row['device_decode_cpu_ms_per_clip']:.2f} |")
    return "\n".join(lines)


def _input_cell(row: dict[str, Any]) -> str:
    return row["input"] if row.get("decode_on", "workers") == "workers" else f"{row['input']} (device decode)"


def per_iteration_rows(stages: list[dict[str, Any]], grids: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Loader CPU per iteration (clips x CPU ms per clip) per grid, input and decode place, relative to
    the base grid (the last one) of the same input and place: the figure of issue #20."""
    rows = []
    for stage in stages:
        grid = next(g for g in grids if grid_label(g) == stage["grid"])
        shape, batch = grid["shape"], grid["batch_size"]
        rows.append({"T": shape.num_frames, "S": shape.crop_size, "batch_size": batch, "input": stage["input"],
                     "decode_on": stage["decode_on"], "cpu_ms_per_clip": stage["total"],
                     "cpu_ms_per_iteration": stage["total"] * batch,
                     "device_decode_cpu_ms_per_clip": stage["device_decode_cpu"]})
    base_label = grid_label(grids[-1])
    for row in rows:
        base = next(s for s in stages if s["grid"] == base_label and (s["input"], s["decode_on"]) == (row["input"], row["decode_on"]))
        row["relative_to_base"] = row["cpu_ms_per_iteration"] / (base["total"] * grids[-1]["batch_size"])
    return rows


def grid_label(grid: dict[str, Any]) -> str:
    return f"{grid['shape'].num_frames}x{grid['shape'].crop_size}, B={grid['batch_size']}"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="two grids, few clips, PyAV and frames only (a test runs it)")
    parser.add_argument("--video-size", default=None,
                        help="source WIDTHxHEIGHT (default: the demo's); other sizes scale the recipe (see demo_schedule)")
    parser.add_argument("--frames-short-side", type=int, default=None, help="prepare's --short-side (default: source size)")
    parser.add_argument("--decoders", nargs="+", default=["pyav", "decord"], help="video decoders to compare")
    parser.add_argument("--inputs", nargs="+", default=None,
                        help="input modes to measure (default: all; names as in the report: video/pyav, frames, ...)")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="loader worker counts")
    parser.add_argument("--clips", type=int, default=96, help="clips per loader measurement")
    parser.add_argument("--data-dir", type=Path, default=Path("data/loader_bench"))
    parser.add_argument("--out-dir", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # a loader worker's setting; the compute rate uses it too (see meta)
    started = time.perf_counter()
    _, demo = demo_schedule()
    size = parse_size(args.video_size or demo["video_size"])
    stored_short = min(args.frames_short_side or min(size), min(size))
    schedule, _ = demo_schedule(stored_short)  # sources larger than the demo's: real-recipe sizes
    grids = schedule_grids(schedule)
    decoders, workers, clips, iterations = args.decoders, args.workers, args.clips, 5
    if args.quick:
        grids, decoders, workers, clips, iterations = [grids[0], grids[-1]], ["pyav"], [0], 8, 1
    inputs = make_inputs(args.data_dir, size, demo["video_frames"], 4 if args.quick else 8, args.frames_short_side)
    sources = [s for s in input_modes(inputs, decoders) if not args.inputs or s.name in args.inputs]
    print(f"{len(grids)} grids of the demo schedule; sources {size[0]}x{size[1]}, {demo['video_frames']} frames; "
          f"inputs {[s.label for s in sources]}; workers {workers}", flush=True)

    result: dict[str, Any] = {"throughput": [], "stages": [], "coarsest_over_base": {}}
    trainer_rates = {}
    for grid in grids:
        shape, batch = grid["shape"], grid["batch_size"]
        label = grid_label(grid)
        trainer_rates[label] = compute_rate(demo["model"], demo["num_classes"], shape, batch, iterations)
        for source in sources:
            dataset = source.dataset(shape)
            costs = stage_costs(dataset, shape, batch, max(clips, 2 * batch))
            result["stages"].append({"grid": label, "input": source.name, "decode_on": source.decode_on, **costs})
            for count in workers:
                rate = loader_rate(dataset, shape, batch, count, clips)
                row = {"grid": label, "num_frames": shape.num_frames, "crop_size": shape.crop_size, "batch_size": batch,
                       "input": source.name, "decode_on": source.decode_on, "workers": count, "loader_clips_per_s": rate,
                       "trainer_clips_per_s": trainer_rates[label], "loader_over_trainer": rate / trainer_rates[label]}
                result["throughput"].append(row)
                print(f"{label:16} {source.label:30} workers {count}: loader {rate:7.1f} clips/s, trainer "
                      f"{trainer_rates[label]:7.1f}; load {costs['total']:.2f} ms/clip", flush=True)
    for source in sources:
        per_clip = {row["grid"]: row["total"] for row in result["stages"]
                    if (row["input"], row["decode_on"]) == (source.name, source.decode_on)}
        result["coarsest_over_base"][source.label] = per_clip[grid_label(grids[0])] / per_clip[grid_label(grids[-1])]
    result["grids"] = per_iteration_rows(result["stages"], grids)
    result["meta"] = {
        "command": "python benchmarks/loader.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "quick": args.quick, "source_size": list(size), "source_frames": demo["video_frames"],
        "frames_short_side": args.frames_short_side, "model": demo["model"], "torch_threads": 1,
        "grids": [{"num_frames": g["shape"].num_frames, "crop_size": g["shape"].crop_size,
                   "stride_range": list(g["shape"].stride_range), "jitter_range": list(g["shape"].jitter_range),
                   "batch_size": g["batch_size"]} for g in grids],
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "cpu_count": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__,
        "seconds": round(time.perf_counter() - started, 1),
    }
    table = format_tables(result)
    print("\n" + table)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "loader.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out_dir / "loader.md").write_text(f"`{result['meta']['command']}`\n\n{table}\n")
    print(f"\nwritten {args.out_dir / 'loader.json'} and loader.md ({result['meta']['seconds']:.0f} s)")
    return result


if __name__ == "__main__":
    main()
