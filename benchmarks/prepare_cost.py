"""What storing a dataset for fast loading costs: frame folders (``prepare``) against short-GOP re-encodes.

On synthetic h264 sources (``make_synthetic_dataset``: smooth random-colour backgrounds with one
moving or changing object, x264 CRF 20, GOP 16), this writes

* frame folders with ``prepare`` at a given short side and JPEG quality;
* the alternative: the same videos re-encoded with x264 at the same size with a short GOP
  (every ``--gop``-th frame a keyframe, so a clip decodes at most ``gop - 1`` frames it does not
  need), read by the PyAV decoder;

and reports for each: disk bytes per hour of video, conversion time, and the per-clip load cost
(in-process, cold probes, the real dataset path) at the demo schedule's coarsest and base grids.
Synthetic frames compress far better than real footage: compare the options by their ratios.

Usage: ``python benchmarks/prepare_cost.py [--size 320x240] [--out benchmarks/results/prepare_cost.json]``
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import av
import torch

from lightning_multigrid.data import make_synthetic_dataset
from lightning_multigrid.data.datasets import CsvVideoDataset
from lightning_multigrid.data.decoder_base import resized_size
from lightning_multigrid.data.prepare import PrepareOptions, bytes_per_hour, prepare_dataset

sys.path.insert(0, str(Path(__file__).resolve().parent))
import loader  # noqa: E402 - sibling benchmark: the demo grids and the stage timing


def reencode(src: Path, out: Path, short_side: int, gop: int, crf: int) -> tuple[int, float, float]:
    """Re-encode every listed video at ``short_side`` with keyframes every ``gop`` frames.

    Returns (bytes, seconds of video, conversion seconds)."""
    start, total, duration = time.perf_counter(), 0, 0.0
    shutil.rmtree(out, ignore_errors=True)
    for split in ("train.csv",):
        lines = (src / split).read_text().split("\n")
        for line in filter(None, lines):
            relative = line.rsplit(" ", 1)[0]
            (out / relative).parent.mkdir(parents=True, exist_ok=True)
            with av.open(str(src / relative)) as source, av.open(str(out / relative), "w") as target:
                stream = source.streams.video[0]
                fps = stream.average_rate
                encoder = target.add_stream("libx264", rate=fps)
                width, height = resized_size(stream.codec_context.width, stream.codec_context.height, short_side)
                encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuv420p"
                encoder.codec_context.thread_count = 1
                encoder.options = {"crf": str(crf), "preset": "veryfast", "g": str(gop), "keyint_min": str(gop),
                                   "sc_threshold": "0"}
                count = 0
                for frame in source.decode(stream):
                    scaled = frame.reformat(width=width, height=height, format="yuv420p", interpolation="AREA")
                    scaled.pts, scaled.time_base = count, 1 / fps  # frame numbers the decoders can count
                    for packet in encoder.encode(scaled):
                        target.mux(packet)
                    count += 1
                for packet in encoder.encode():
                    target.mux(packet)
            total += (out / relative).stat().st_size
            duration += count / float(fps)
        shutil.copyfile(src / split, out / split)
    return total, duration, time.perf_counter() - start


def clip_costs(root: Path, decoder: str, grids: list[dict], clips: int) -> dict[str, float]:
    out = {}
    for name, grid in (("coarsest", grids[0]), ("base", grids[-1])):
        dataset = CsvVideoDataset(root, "train.csv", grid["shape"], "train", decoder=decoder, cache_probes=False,
                                  random_flip=False)
        out[f"{name}_ms_per_clip"] = loader.stage_costs(dataset, grid["shape"], grid["batch_size"], clips)["total"]
    out["coarsest_over_base"] = out["coarsest_ms_per_clip"] / out["base_ms_per_clip"]
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="320x240", help="source WIDTHxHEIGHT")
    parser.add_argument("--frames", type=int, default=64, help="frames per source video")
    parser.add_argument("--videos-per-class", type=int, default=8)
    parser.add_argument("--short-side", type=int, default=None, help="stored short side (default: the source's)")
    parser.add_argument("--qualities", type=int, nargs="+", default=[90, 75])
    parser.add_argument("--gops", type=int, nargs="+", default=[4, 1], help="re-encode GOP lengths (1: all-intra)")
    parser.add_argument("--crf", type=int, default=20, help="re-encode x264 CRF (the generator's own)")
    parser.add_argument("--clips", type=int, default=64, help="clips per per-clip cost measurement")
    parser.add_argument("--data-dir", type=Path, default=Path("data/prepare_cost"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/prepare_cost.json"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    width, height = (int(v) for v in args.size.lower().split("x"))
    short = args.short_side or min(width, height)
    src = make_synthetic_dataset(args.data_dir / f"videos_{width}x{height}", num_classes=4,
                                 videos_per_class=args.videos_per_class, size=(width, height),
                                 num_frames=args.frames, fps=30, seed=0)
    schedule, _ = loader.demo_schedule(short)
    grids = loader.schedule_grids(schedule)
    listed = [line.rsplit(" ", 1)[0] for line in (src / "train.csv").read_text().split("\n") if line]
    source_bytes = sum((src / p).stat().st_size for p in listed)
    rows = []
    hours = None
    for quality in args.qualities:
        out = args.data_dir / f"frames_{short}_q{quality}"
        shutil.rmtree(out, ignore_errors=True)
        summary = prepare_dataset(src, out, PrepareOptions(short_side=short, quality=quality, splits=["train.csv"],
                                                           progress=False, workers=1))
        hours = summary.video_seconds / 3600
        rows.append({"storage": f"frame folders, JPEG q{quality}", "bytes": summary.bytes_written,
                     "gib_per_hour": bytes_per_hour(summary) / 2**30, "convert_s": summary.seconds,
                     **clip_costs(out, "pyav", grids, args.clips)})
    for gop in args.gops:
        out = args.data_dir / f"h264_{short}_g{gop}"
        size, seconds, spent = reencode(src, out, short, gop, args.crf)
        rows.append({"storage": f"h264 CRF {args.crf}, GOP {gop} (PyAV decoder)", "bytes": size,
                     "gib_per_hour": size * 3600 / seconds / 2**30, "convert_s": spent,
                     **clip_costs(out, "pyav", grids, args.clips)})
    rows.append({"storage": "source h264 CRF 20, GOP 16 (PyAV decoder)", "bytes": source_bytes,
                 "gib_per_hour": source_bytes / (hours or 1) / 2**30, "convert_s": 0.0,
                 **clip_costs(src, "pyav", grids, args.clips)})
    header = "| storage | GiB per hour of video | convert s | coarsest ms/clip | base ms/clip | coarsest / base |"
    lines = [header, "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['storage']} | {r['gib_per_hour']:.3f} | {r['convert_s']:.1f} | {r['coarsest_ms_per_clip']:.2f} | "
                     f"{r['base_ms_per_clip']:.2f} | {r['coarsest_over_base']:.3f} |")
    table = "\n".join(lines)
    print(table)
    grid_info = [f"{g['shape'].num_frames}x{g['shape'].crop_size} B={g['batch_size']}" for g in (grids[0], grids[-1])]
    result = {"command": "python benchmarks/prepare_cost.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "sources": {"size": [width, height], "frames": args.frames, "fps": 30, "videos": len(listed),
                          "hours": hours}, "stored_short_side": short, "grids": grid_info, "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"grids {grid_info}; written {args.out}")
    return result


if __name__ == "__main__":
    main()
