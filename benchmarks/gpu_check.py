"""The accelerator check of issue #20: does the loader keep up with slowfast_r50 at every multigrid grid?

One command (at most ~8 minutes on one GPU) that prints and writes JSON (``gpu_check.json`` under
``--out-dir``) for:

* **demand**: slowfast_r50 training clips/s (forward, loss, backward, SGD step on synthetic input)
  per grid of the K400 multigrid recipe (``examples/configs/k400_slowfast_r50_multigrid.yaml``,
  per-device batch 8), in fp32 and bf16 autocast, with ``channels_last_3d`` on and off;
* **supply**: the clips/s a ``DataLoader`` delivers at each grid from a packed store with the half
  level (``prepare --layout packed --levels half`` of synthetic 320x240 videos), with the frames
  decoded by the workers and with device decoding (``decode_on="device"``: the batch's decode on
  the device is included), against the demand, with the machine's CPU count;
* **decode twice and compare**: one batch of JPEG frames decoded twice by the device path, which
  must agree exactly (torchvision's hardware-engine path was reported to corrupt memory, vision#9606),
  and against libjpeg-turbo on the CPU (largest difference in grey levels).

``--tiny --device cpu`` runs every part at toy sizes (a test runs it): nothing needs a GPU.

Usage::

    python benchmarks/gpu_check.py [--device cuda] [--tiny] [--out-dir benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from lightning_multigrid.data import make_synthetic_dataset
from lightning_multigrid.data.datasets import CsvVideoDataset
from lightning_multigrid.data.device_decode import EncodedBatch, collate_clips, decode_batch
from lightning_multigrid.data.prepare import PrepareOptions, prepare_dataset
from lightning_multigrid.data.transforms import pack_pathways
from lightning_multigrid.sampling.keys import ClipKey
from lightning_multigrid.schedule import MultigridSchedule
from lightning_multigrid.schedule.recipe import BaseRecipe

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loader import grid_label, schedule_grids  # noqa: E402 - benchmarks/ sibling module

#: The K400 SlowFast recipe (per-device batch 8) and its toy version for --tiny.
K400 = {"steps": [0, 94, 154, 196], "max_epochs": 239, "num_frames": 32, "crop_size": 224, "batch_size": 8,
        "sampling_rate": 2, "jitter_scales": (256, 320)}
TINY = {"steps": [0, 2, 3, 4], "max_epochs": 5, "num_frames": 16, "crop_size": 64, "batch_size": 2,
        "sampling_rate": 2, "jitter_scales": (64, 72)}
ALPHA = 4


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def training_rate(model_name: str, grid: dict[str, Any], device: torch.device, bf16: bool, channels_last: bool,
                  steps: int) -> float:
    """Median training clips/s of one step at the grid's shape on synthetic input."""
    from lightning_multigrid.models import VideoClassifier  # noqa: PLC0415 - heavy import

    shape, batch = grid["shape"], grid["batch_size"]
    module = VideoClassifier(model_name, num_classes=400).to(device)
    memory = torch.channels_last_3d if channels_last else torch.contiguous_format
    module = module.to(memory_format=memory)
    optimizer = torch.optim.SGD(module.parameters(), lr=1e-3, momentum=0.9)
    video = torch.randn(batch, 3, shape.num_frames, shape.crop_size, shape.crop_size, device=device)
    inputs = [x.contiguous(memory_format=memory) for x in pack_pathways(video, ALPHA)]
    labels = torch.randint(0, 400, (batch,), device=device)
    times = []
    for _ in range(steps + 1):  # the first step allocates and tunes; it is not counted
        sync(device)
        start = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = torch.nn.functional.cross_entropy(module(inputs), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        sync(device)
        times.append(time.perf_counter() - start)
    times = sorted(times[1:])
    return batch / times[len(times) // 2]


def loader_rate(dataset: CsvVideoDataset, grid: dict[str, Any], workers: int, batches: int,
                device: torch.device) -> float:
    """Clips/s delivered at the grid (decoded on ``device`` for device decoding), after the first batch."""
    shape, batch = grid["shape"], grid["batch_size"]
    keys = [[ClipKey((b * batch + i) % len(dataset), shape) for i in range(batch)] for b in range(batches + 1)]
    loader = DataLoader(dataset, batch_sampler=keys, num_workers=workers, collate_fn=collate_clips,
                        pin_memory=device.type == "cuda")
    iterator = iter(loader)
    next(iterator)  # worker start-up is not a rate
    sync(device)
    count, start = 0, time.perf_counter()
    for item in iterator:
        video = item["video"]
        if isinstance(video, EncodedBatch):
            video, _ = decode_batch(video, device)
        else:
            video = video.to(device, non_blocking=True)
        count += len(item["label"])
    sync(device)
    return count / (time.perf_counter() - start)


def decode_twice(store: Path, device: torch.device, frames: int) -> dict[str, Any]:
    """Decode the same JPEG frames twice on ``device`` in one batch each; compare them and the CPU decode."""
    from torchvision.io import ImageReadMode, decode_jpeg  # noqa: PLC0415

    from lightning_multigrid.data.frame_pack import PACKED_READER  # noqa: PLC0415

    files = sorted(store.rglob("*.mgframes"))
    data = []
    for file in files:
        info = PACKED_READER.probe(file)
        raw = file.read_bytes()
        offsets = info.offsets[""]
        data += [torch.frombuffer(bytearray(raw[info.data_start + a : info.data_start + b]), dtype=torch.uint8)
                 for a, b in zip(offsets, offsets[1:])]
        if len(data) >= frames:
            break
    data = data[:frames]

    def on_device() -> list[torch.Tensor]:
        if device.type == "cuda":
            out = decode_jpeg(data, mode=ImageReadMode.RGB, device=device)
            torch.cuda.current_stream(device).synchronize()
            return [x.cpu() for x in out]
        return list(decode_jpeg(data, mode=ImageReadMode.RGB))

    first, second = on_device(), on_device()
    reference = decode_jpeg(data, mode=ImageReadMode.RGB)
    mismatches = sum(not torch.equal(a, b) for a, b in zip(first, second))
    max_vs_cpu = max(int((a.int() - b.int()).abs().max()) for a, b in zip(first, reference))
    return {"frames": len(data), "twice_mismatched_frames": mismatches, "max_abs_diff_vs_cpu": max_vs_cpu,
            "ok": mismatches == 0}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--tiny", action="store_true", help="toy sizes: slowfast_tiny, 64x48 videos (a test runs it)")
    parser.add_argument("--workers", type=int, default=None, help="loader workers (default: CPU count - 1, at most 16)")
    parser.add_argument("--data-dir", type=Path, default=Path("data/gpu_check"))
    parser.add_argument("--out-dir", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args(argv)
    started = time.perf_counter()
    device = torch.device(args.device)
    cpus = os.cpu_count() or 1
    workers = args.workers if args.workers is not None else (0 if args.tiny else max(1, min(cpus - 1, 16)))
    recipe = BaseRecipe(**(TINY if args.tiny else K400))  # type: ignore[arg-type]
    grids = schedule_grids(MultigridSchedule(recipe))
    if args.tiny:  # the coarsest and the base grid
        grids = [grids[0], grids[-1]]
    model, steps, batches = ("slowfast_tiny", 1, 2) if args.tiny else ("slowfast_r50", 5, 8)
    size, frames = ((64, 48), 40) if args.tiny else ((320, 240), 80)
    videos = make_synthetic_dataset(args.data_dir / f"videos_{size[0]}x{size[1]}", num_classes=4,
                                    videos_per_class=3 if args.tiny else 16, size=size, num_frames=frames, seed=0)
    store = args.data_dir / f"packed_half_{size[0]}x{size[1]}"
    prepare_dataset(videos, store, PrepareOptions(layout="packed", levels=["half"], splits=["train.csv"],
                                                  progress=False, workers=max(1, cpus)))
    print(f"gpu_check on {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'}), "
          f"{cpus} CPUs, {workers} loader workers, {len(grids)} grids of {model}", flush=True)
    result: dict[str, Any] = {"demand": [], "supply": [], "meta": {
        "device": str(device), "cpu_count": cpus, "loader_workers": workers, "model": model, "tiny": args.tiny,
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None, "torch": torch.__version__}}
    result["decode_twice"] = decode_twice(store, device, 64 if args.tiny else 512)
    print(f"decode twice: {result['decode_twice']}", flush=True)
    for grid in grids:
        label = grid_label(grid)
        for bf16 in (False, True):
            for channels_last in (False, True):
                rate = training_rate(model, grid, device, bf16, channels_last, steps)
                result["demand"].append({"grid": label, "bf16": bf16, "channels_last_3d": channels_last,
                                         "train_clips_per_s": rate})
                print(f"{label:16} {'bf16' if bf16 else 'fp32'} channels_last_3d={channels_last!s:5}: "
                      f"{rate:8.1f} clips/s", flush=True)
        best = max(r["train_clips_per_s"] for r in result["demand"] if r["grid"] == label)
        for place in ("workers", "device"):
            dataset = CsvVideoDataset(store, "train.csv", grid["shape"], "train", decode_on=place)
            rate = loader_rate(dataset, grid, workers, batches, device)
            result["supply"].append({"grid": label, "decode_on": place, "loader_clips_per_s": rate,
                                     "best_train_clips_per_s": best, "supply_over_demand": rate / best})
            print(f"{label:16} loader, decode on {place:7}: {rate:8.1f} clips/s = {rate / best:.2f} x demand", flush=True)
    result["meta"]["seconds"] = round(time.perf_counter() - started, 1)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "gpu_check.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"written {args.out_dir / 'gpu_check.json'} ({result['meta']['seconds']:.0f} s)")
    return result


if __name__ == "__main__":
    main()
