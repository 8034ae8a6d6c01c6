"""Decoding throughput (clips/s) per backend and per multigrid grid shape.

The shapes are those of the Kinetics-400 SlowFast 8x8 multigrid recipe (T0=32, r0=2, S0=224 for
256-pixel frames) scaled to the benchmark videos: with 320x240 sources, S0 = 240 * 224/256 = 210,
giving the long-cycle base shapes (8, 148), (16, 148), (16, 210), (32, 210) and the short-cycle
crops 105 and 148, with the schedule's stride and jitter ranges. Every shape is decoded through the
real training path (``VideoClipDataset.__getitem__`` with a ``ClipKey``: sampling, decode, random
crop, flip, normalise), with and without decode-time resizing, in the main process (best of three
short runs, to damp the noise of a shared machine) and in N DataLoader worker processes (clock
started at the first batch, so worker start-up is excluded). By default every clip opens its file
cold (no cached probe), as in a first epoch; ``--warm`` caches probes.

Usage::

    python benchmarks/decode.py [--quick] [--out benchmarks/results/decode.json]

Defaults finish in about 3 minutes on 2 CPU cores; ``--quick`` in about 30 seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from lightning_multigrid.data import available_decoders, get_decoder, make_synthetic_dataset
from lightning_multigrid.data.clip_dataset import VideoClipDataset
from lightning_multigrid.data.datasets import CsvVideoDataset
from lightning_multigrid.sampling.keys import ClipKey
from lightning_multigrid.schedule.multigrid import MultigridSchedule
from lightning_multigrid.schedule.recipe import BaseRecipe, ClipShape

# The K400 SlowFast 8x8 recipe (see docs: spec section 3), with S0 scaled to the source size.
K400_STEPS = [0, 94, 154, 196]
K400_MAX_EPOCHS = 239
T0, R0 = 32, 2


@dataclass(frozen=True)
class GridShape:
    """A shape to benchmark and where it comes from in the schedule."""

    label: str
    shape: ClipShape


@dataclass
class Result:
    backend: str
    decode_time_resize: bool
    label: str
    num_frames: int
    crop_size: int
    stride_range: tuple[int, int]
    jitter_range: tuple[int, int]
    workers: int
    clips: int
    seconds: float
    clips_per_s: float


def grid_shapes(source_short_side: int, quick: bool) -> list[GridShape]:
    """The distinct clip shapes of the first LR stage of the scaled K400 multigrid schedule."""
    crop = round(source_short_side * 224 / 256)
    recipe = BaseRecipe(
        steps=K400_STEPS, max_epochs=K400_MAX_EPOCHS, num_frames=T0, crop_size=crop, batch_size=64, sampling_rate=R0
    )
    schedule = MultigridSchedule(recipe)
    shapes: dict[ClipShape, str] = {}
    for stage in schedule.stages:
        if stage.lr_stage != 0:
            continue
        slots = schedule.short_cycle_slots(stage.start_epoch)
        for k, slot in enumerate(slots):
            is_base = k == len(slots) - 1
            if quick and not is_base and k != 0:
                continue
            shape = ClipShape(
                stage.num_frames,
                slot.crop_size,
                schedule.stride_range(stage.start_epoch),
                schedule.jitter_range(slot.crop_size),
            )
            label = f"{'long-cycle base' if is_base else f'short-cycle slot {k}'} (b={stage.batch_factor}x{slot.batch_multiplier})"
            if is_base or shape not in shapes:  # a slot equal to the base shape is listed as the base
                shapes[shape] = label
    out = [GridShape(label, shape) for shape, label in shapes.items()]
    if quick:  # the four base shapes and the smallest short-cycle clip
        bases = [g for g in out if g.label.startswith("long")]
        smallest = min((g for g in out if not g.label.startswith("long")), key=lambda g: g.shape.num_frames * g.shape.crop_size**2)
        out = bases + [smallest]
    return out


def measure_in_process(
    dataset: VideoClipDataset, shape: ClipShape, seconds: float, min_clips: int, repeats: int = 3
) -> tuple[int, float]:
    """Clips and time of the fastest of ``repeats`` runs of ``seconds / repeats`` each.

    The best run is the least disturbed by other processes on a shared machine (as in timeit).
    """
    torch.manual_seed(0)
    best: tuple[int, float] | None = None
    index = 0
    for _ in range(repeats):
        count, start = 0, time.perf_counter()
        while True:
            dataset[ClipKey(index % len(dataset), shape)]
            count += 1
            index += 1
            elapsed = time.perf_counter() - start
            if elapsed >= seconds / repeats and count >= min_clips:
                break
        if best is None or count / elapsed > best[0] / best[1]:
            best = (count, elapsed)
    assert best is not None
    return best


def measure_workers(dataset: VideoClipDataset, shape: ClipShape, workers: int, clips: int, batch_size: int) -> tuple[int, float]:
    """Throughput of ``workers`` DataLoader processes; the clock starts at the first batch (startup excluded)."""
    keys = [ClipKey(i % len(dataset), shape) for i in range(clips + batch_size)]
    batches = [keys[i : i + batch_size] for i in range(0, len(keys) - batch_size + 1, batch_size)]
    torch.manual_seed(0)
    loader = DataLoader(dataset, batch_sampler=batches, num_workers=workers, prefetch_factor=2)
    iterator = iter(loader)
    next(iterator)
    count, start = 0, time.perf_counter()
    for batch in iterator:
        count += len(batch["label"])
    return count, time.perf_counter() - start


def make_sources(data_dir: Path, quick: bool) -> Path:
    """320x240, 64-frame 30 fps h264 videos (generated once; reused while the parameters match)."""
    return make_synthetic_dataset(
        data_dir, num_classes=4, videos_per_class=3, size=(320, 240), num_frames=64, fps=30, seed=0
    )


def format_table(results: list[Result]) -> str:
    header = f"{'backend':<11}{'resize':<8}{'T':>4}{'S':>5}  {'stride':<8}{'jitter':<11}{'workers':>8}{'clips/s':>10}  shape"
    lines = [header, "-" * len(header)]
    for r in results:
        lines.append(
            f"{r.backend:<11}{'decode' if r.decode_time_resize else 'after':<8}{r.num_frames:>4}{r.crop_size:>5}  "
            f"{'{}-{}'.format(*r.stride_range):<8}{'{}-{}'.format(*r.jitter_range):<11}{r.workers:>8}{r.clips_per_s:>10.1f}  {r.label}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer shapes and shorter runs (~30 s)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/decode.json"), help="JSON output")
    parser.add_argument("--data-dir", type=Path, default=Path("data/bench_320x240"), help="where the source videos go")
    parser.add_argument("--backends", nargs="*", default=None, help="default: every available backend")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2, help="N for the multi-process runs")
    parser.add_argument("--seconds", type=float, default=None, help="time per in-process measurement")
    parser.add_argument("--warm", action="store_true", help="cache video probes (default: every clip opens cold)")
    args = parser.parse_args(argv)
    seconds = args.seconds if args.seconds is not None else (0.4 if args.quick else 1.2)
    backends = args.backends or available_decoders()
    torch.set_num_threads(1)  # like a loader worker; the main process decodes one clip at a time

    started = time.perf_counter()
    root = make_sources(args.data_dir, args.quick)
    probe = get_decoder("pyav").probe(next((root / "videos").rglob("*.mp4")))
    shapes = grid_shapes(min(probe.width, probe.height), args.quick)
    print(
        f"sources: {probe.width}x{probe.height}, {probe.num_frames} frames; {len(shapes)} shapes; "
        f"backends {backends}; workers 0 and {args.workers}; probes {'cached' if args.warm else 'cold'}",
        flush=True,
    )
    results: list[Result] = []
    for backend in backends:
        for at_decode in (True, False):
            if backend == "torchcodec" and at_decode:
                continue  # torchcodec always resizes after decoding
            decoder = get_decoder(backend, decode_time_resize=at_decode)
            dataset = CsvVideoDataset(
                root, "train.csv", shapes[-1].shape, "train", decoder=decoder, cache_probes=args.warm
            )
            for grid in shapes:
                clips, elapsed = measure_in_process(dataset, grid.shape, seconds, min_clips=2)
                rate = clips / elapsed
                runs = [(0, clips, elapsed)]
                if args.workers > 0 and (at_decode or not args.quick or backend == "torchcodec"):
                    budget = max(4 * args.workers, round(rate * args.workers * seconds))
                    runs.append((args.workers, *measure_workers(dataset, grid.shape, args.workers, budget, 2)))
                for workers, count, spent in runs:
                    result = Result(
                        backend, decoder.decode_time_resize, grid.label, grid.shape.num_frames,
                        grid.shape.crop_size, grid.shape.stride_range, grid.shape.jitter_range,  # type: ignore[arg-type]
                        workers, count, round(spent, 4), round(count / spent, 2),
                    )
                    results.append(result)
                    print(format_table([result]).splitlines()[-1], flush=True)

    table = format_table(results)
    print("\n" + table)
    total = time.perf_counter() - started
    print(f"\ntotal {total:.0f} s")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "meta": {
            "quick": args.quick,
            "source": {"width": probe.width, "height": probe.height, "frames": probe.num_frames, "fps": probe.fps},
            "recipe": {"T0": T0, "r0": R0, "S0": round(min(probe.width, probe.height) * 224 / 256), "steps": K400_STEPS},
            "workers": args.workers,
            "seconds_per_measurement": seconds,
            "probes": "cached" if args.warm else "cold",
            "cpu_count": os.cpu_count(),
            "python": sys.version.split()[0],
            "torch": torch.__version__,
            "platform": platform.platform(),
            "total_seconds": round(total, 1),
        },
        "results": [asdict(r) for r in results],
    }
    args.out.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
