"""``lightning-multigrid prepare``: the command line of :mod:`lightning_multigrid.data.prepare`."""

from __future__ import annotations

import argparse
import sys

from lightning_multigrid.data.frame_store import LEVEL_DIRS
from lightning_multigrid.data.prepare import (
    PrepareOptions,
    bytes_per_hour,
    merge_shards,
    prepare_dataset,
)
from lightning_multigrid.data.prepare_layout import DEFAULT_SPLITS
from lightning_multigrid.data.prepare_shard import Shard

__all__ = ["prepare_main"]


def prepare_main(argv: list[str] | None = None) -> int:
    """``lightning-multigrid prepare SRC OUT [...]``; returns the exit code (2: bad arguments, 1: failed)."""
    parser = argparse.ArgumentParser(
        prog="lightning-multigrid prepare",
        description="Convert a video dataset (csv, folder, ssv2 or charades layout) into JPEG frame folders "
                    "with split files pointing at them. Re-running resumes and skips finished videos.",
    )
    parser.add_argument("src", metavar="SRC", help="the video dataset directory (split paths are relative to it)")
    parser.add_argument("out", metavar="OUT", help="where the frame folders and split files go")
    parser.add_argument("--format", default="csv", choices=sorted(DEFAULT_SPLITS), help="annotation format (default csv)")
    parser.add_argument("--splits", nargs="+", default=None,
                        help="split files (folder format: split subfolders); default: the conventional names found in SRC")
    parser.add_argument("--labels-file", default=None, help="SSv2 labels JSON (default: labels.json beside the split)")
    parser.add_argument("--short-side", type=int, default=None,
                        help="rescale frames to this short side (never enlarged; default: keep the source size). "
                             "Choose at least the largest training jitter size.")
    parser.add_argument("--quality", type=int, default=90, help="JPEG quality 1-100 (default 90)")
    parser.add_argument("--layout", choices=("folders", "packed"), default="folders",
                        help="folders: one JPEG file per frame; packed: one file per video (frames, levels and an "
                             "offset index; csv and folder formats)")
    parser.add_argument("--levels", nargs="*", default=[], choices=LEVEL_DIRS,
                        help="also store every frame at half the short side (in half/): clips whose jittered short side "
                             "fits it decode a quarter of the pixels (+47%% disk on the synthetic 320x240 set)")
    parser.add_argument("--workers", type=int, default=PrepareOptions.workers, help="processes (default: all cores)")
    parser.add_argument("--max-failure-rate", type=float, default=PrepareOptions.max_failure_rate,
                        help="stop when more than this fraction of the videos is unreadable (training's rule and default)")
    parser.add_argument("--min-failures", type=int, default=PrepareOptions.min_failures,
                        help="unreadable videos before --max-failure-rate applies (training's rule and default)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--shard", default=None, metavar="I/N",
                        help="convert only part I of N (0 <= I < N; e.g. $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT); "
                             "writes prepare_report.shard-I-of-N.json and no split files")
    parser.add_argument("--merge", action="store_true",
                        help="after all N shards ran into OUT: write the split files and the merged report")
    args = parser.parse_args(argv)
    if args.merge and args.shard:
        parser.error("--merge and --shard exclude each other (merge once, after every shard)")
    options = PrepareOptions(format=args.format, splits=args.splits, labels_file=args.labels_file,
                             short_side=args.short_side, quality=args.quality, levels=args.levels, layout=args.layout,
                             workers=args.workers, max_failure_rate=args.max_failure_rate,
                             min_failures=args.min_failures, progress=not args.no_progress, shard=args.shard)
    try:
        summary = (merge_shards if args.merge else prepare_dataset)(args.src, args.out, options)
    except (ValueError, FileNotFoundError) as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:
        print(f"{parser.prog}: {exc}", file=sys.stderr)
        return 1
    for failure in summary.failed:
        print(f"skipped unreadable video {failure['path']}: {failure['error']}", file=sys.stderr)
    for path in summary.missing:
        print(f"skipped missing video {path}", file=sys.stderr)
    per_hour = bytes_per_hour(summary)
    what = "merged shards: " if args.merge else f"shard {args.shard}: " if args.shard else ""
    print(f"{what}prepared {summary.converted} videos ({summary.skipped_done} already done, {len(summary.failed)} unreadable, "
          f"{len(summary.missing)} missing) in {summary.seconds:.1f} s; {summary.bytes_written / 2**20:.1f} MiB"
          + (f", {per_hour / 2**30:.2f} GiB per hour of video" if per_hour else "")
          + (f"; report {Shard.parse(args.shard).report_name}; run --merge after every shard" if args.shard else
             f"; split files: {', '.join(summary.split_files) or 'none (folder layout)'}"))
    return 0
