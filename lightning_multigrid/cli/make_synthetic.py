"""``lightning-multigrid make-synthetic``: the command line of :mod:`lightning_multigrid.data.synthetic`.

:func:`make_synthetic_main` returns its exit code (2 on bad arguments, with one line on stderr);
:func:`parse_size` reads ``WIDTHxHEIGHT`` (the benchmarks use it too).
"""

from __future__ import annotations

import argparse
import sys

from ..data.synthetic import MAX_CLASSES, make_synthetic_dataset
from .parser import OneLineErrorParser

__all__ = ["make_synthetic_main", "parse_size"]


def parse_size(text: str) -> tuple[int, int]:
    """``"64x48"`` -> ``(64, 48)``; an ``argparse`` type (its error names the expected form)."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT like 64x48, got {text!r}") from None
    return width, height


def make_synthetic_main(argv: list[str] | None = None) -> int:
    """``lightning-multigrid make-synthetic OUT_DIR [...]``; returns the exit code (2 on bad arguments)."""
    parser = OneLineErrorParser(
        prog="lightning-multigrid make-synthetic",
        description="Write a synthetic temporal-reasoning video dataset (h264 mp4 + Kinetics-style CSVs).",
        see_help=False,
    )
    parser.add_argument("out_dir", metavar="OUT_DIR", help="directory to write")
    # Each dest is make_synthetic_dataset's parameter (the metavar keeps the option's name in --help).
    parser.add_argument("--classes", dest="num_classes", metavar="CLASSES", type=int, default=4, help=f"number of classes, 1..{MAX_CLASSES} (default 4)")
    parser.add_argument("--videos-per-class", type=int, default=20, help="videos per class, >= 3 (default 20)")
    parser.add_argument("--size", type=parse_size, default=(64, 48), help="WIDTHxHEIGHT, even (default 64x48)")
    parser.add_argument("--frames", dest="num_frames", metavar="FRAMES", type=int, default=32, help="frames per video (default 32)")
    parser.add_argument("--fps", type=int, default=15, help="frame rate (default 15)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--extra-test-per-class", type=int, default=0,
                        help="further test-only videos per class (default 0)")
    parser.add_argument("--overwrite", action="store_true", help="regenerate even if present")
    try:
        args = parser.parse_args(argv)
        out = make_synthetic_dataset(**vars(args))
    except SystemExit as exc:  # --help (0), or bad arguments, already reported in one line (2)
        return int(exc.code or 0)
    except (ValueError, FileExistsError) as exc:
        sys.stderr.write(parser.error_line(str(exc)))
        return 2
    total = args.num_classes * (args.videos_per_class + args.extra_test_per_class)
    print(f"synthetic dataset: {total} videos, {args.num_classes} classes in {out}")
    return 0
