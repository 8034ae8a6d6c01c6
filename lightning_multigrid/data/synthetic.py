"""A synthetic action dataset of real h264 mp4 files that needs temporal reasoning.

Every class comes in a pair that a single frame cannot tell apart: moving left/right,
growing/shrinking, rotating clockwise/counter-clockwise, appearing/vanishing. Backgrounds, colours, sizes,
positions, speeds and timings are random; every video is determined by ``(seed, class, number)``.

Layout written under ``out_dir``::

    videos/<class_name>/<class_name>_<k>.mp4
    train.csv  val.csv  test.csv      # Kinetics-style "relative/path.mp4 label" lines, 60/20/20 per class
    classes.txt                       # one class name per line, line number = label
    manifest.json                     # the parameters; a second call with the same ones is a no-op

Several classes are defined by left/right direction, so horizontal-flip augmentation changes their
label: train on this dataset with flipping off (the DataModule does so by default).

The ``lightning-multigrid make-synthetic`` command is :mod:`lightning_multigrid.cli.make_synthetic`.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .synthetic_drawing import background as _background
from .synthetic_drawing import disk as _disk
from .synthetic_drawing import object_colour as _object_colour

__all__ = [
    "CLASS_NAMES",
    "MAX_CLASSES",
    "is_synthetic_dataset",
    "make_synthetic_dataset",
    "render_video",
]

# Ordered so that the first four (the default, and the demo's set) carry their cue at every multigrid
# grid: translation and scale survive half resolution and a quarter of the frames, while a thin rotating
# hand is only a pixel or two wide in a 32 px crop (format 2 put rotation third, and a tiny SlowFast
# then reached 0.875 test top-1 under multigrid against the baseline's 1.00 on the same set).
CLASS_NAMES: tuple[str, ...] = (
    "move_left",
    "move_right",
    "grow",
    "shrink",
    "rotate_cw",
    "rotate_ccw",
    "appear",
    "vanish",
)
MAX_CLASSES = len(CLASS_NAMES)
_FORMAT_VERSION = 3
_MANIFEST = "manifest.json"
_OWNED = {"videos", "train.csv", "val.csv", "test.csv", "classes.txt", _MANIFEST}
# Constant rate factor of x264: low enough that a few-pixel motion per frame survives yuv420p.
_CRF = 20


# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------
def _square(yy: np.ndarray, xx: np.ndarray, cy: float, cx: float, half: float) -> np.ndarray:
    dist = np.maximum(np.abs(yy - cy), np.abs(xx - cx))
    return np.clip(half - dist + 0.5, 0.0, 1.0)


def _clock_hand(
    yy: np.ndarray, xx: np.ndarray, cy: float, cx: float, angle: float, length: float, thick: float
) -> np.ndarray:
    """A bar from the centre outwards at ``angle`` with a knob at its tip (no rotational symmetry).

    Image coordinates have y pointing down, so an increasing angle turns clockwise on screen.
    """
    dx, dy = xx - cx, yy - cy
    along = dx * math.cos(angle) + dy * math.sin(angle)
    across = -dx * math.sin(angle) + dy * math.cos(angle)
    bar = np.clip(thick / 2 - np.abs(across) + 0.5, 0, 1) * np.clip(
        np.minimum(along + 0.5, length - along + 0.5), 0, 1
    )
    tip_y, tip_x = cy + length * math.sin(angle), cx + length * math.cos(angle)
    return np.maximum(bar, _disk(yy, xx, tip_y, tip_x, thick * 1.1))


def render_video(label: int, width: int, height: int, num_frames: int, rng: np.random.Generator) -> np.ndarray:
    """Render one clip of class ``label`` as ``uint8`` ``(num_frames, height, width, 3)`` RGB."""
    name = CLASS_NAMES[label]
    background = _background(rng, height, width)
    colour = _object_colour(rng)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    short = min(width, height)
    t = np.arange(num_frames, dtype=np.float32)
    coverages: list[np.ndarray] = []

    if name in ("move_left", "move_right"):
        radius = rng.uniform(0.10, 0.18) * short
        # Travel 35-75% of the free width over the clip, starting where the whole path fits.
        free = width - 2 * radius
        travel = rng.uniform(0.35, 0.75) * free
        start = radius + rng.uniform(0, free - travel)
        cy = rng.uniform(radius, height - radius)
        xs = start + travel * t / max(num_frames - 1, 1)
        if name == "move_left":
            xs = xs[::-1]
        shape = _disk if rng.random() < 0.5 else _square
        coverages = [shape(yy, xx, cy, float(x), radius) for x in xs]
    elif name in ("rotate_cw", "rotate_ccw"):
        length = rng.uniform(0.28, 0.40) * short
        thick = max(2.0, rng.uniform(0.07, 0.11) * short)
        cy = rng.uniform(length + thick, height - length - thick) if height > 2 * (length + thick) else height / 2
        cx = rng.uniform(length + thick, width - length - thick) if width > 2 * (length + thick) else width / 2
        speed = math.radians(rng.uniform(4.0, 9.0))  # per frame: well below aliasing at stride 4
        sign = 1.0 if name == "rotate_cw" else -1.0
        angle0 = float(rng.uniform(0, 2 * math.pi))
        coverages = [
            np.maximum(_clock_hand(yy, xx, cy, cx, angle0 + sign * speed * float(k), length, thick), _disk(yy, xx, cy, cx, thick))
            for k in t
        ]
    elif name in ("grow", "shrink"):
        small, large = sorted(rng.uniform(0.08, 0.45, size=2) * short)
        if large - small < 0.15 * short:
            large = min(small + 0.15 * short, 0.48 * short)
        cy = rng.uniform(0.35, 0.65) * height
        cx = rng.uniform(0.35, 0.65) * width
        radii = small + (large - small) * t / max(num_frames - 1, 1)
        if name == "shrink":
            radii = radii[::-1]
        coverages = [_disk(yy, xx, cy, cx, float(r)) for r in radii]
    else:  # appear / vanish: present from (or until) a random frame, with a 2-frame fade
        half = rng.uniform(0.12, 0.22) * short
        cy = rng.uniform(half, height - half)
        cx = rng.uniform(half, width - half)
        switch = rng.uniform(0.3, 0.7) * num_frames
        visible = np.clip((t - switch) / 2.0 + 0.5, 0.0, 1.0)
        if name == "vanish":
            visible = 1.0 - visible
        body = _square(yy, xx, cy, cx, half) if rng.random() < 0.5 else _disk(yy, xx, cy, cx, half)
        coverages = [body * float(v) for v in visible]

    frames = np.empty((num_frames, height, width, 3), dtype=np.uint8)
    for k, cover in enumerate(coverages):
        alpha = cover[..., None]
        frames[k] = np.clip(background * (1 - alpha) + colour * alpha, 0, 255).astype(np.uint8)
    return frames


def _write_mp4(path: Path, frames: np.ndarray, fps: int) -> None:
    import av  # noqa: PLC0415 - only needed when writing

    from lightning_multigrid.data.video_index import one_swscale_thread

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        # The same frames must give the same bytes: one thread, and no macroblock-tree rate control
        # or lookahead, with which x264 gave different bitstreams for 3-14 of 80 videos per run
        # here, even single-threaded (measured; tests/test_synthetic.py checks it).
        stream.codec_context.thread_count = 1
        stream.options = {"crf": str(_CRF), "preset": "veryfast", "g": "16", "x264-params": "mbtree=0:rc-lookahead=0"}
        # The RGB -> YUV conversion in one swscale thread too: PyAV >= 17 converts with several by
        # default, and then the same frames do not always give the same bytes.
        single = one_swscale_thread()
        for index, frame in enumerate(frames):
            yuv = av.VideoFrame.from_ndarray(frame, format="rgb24").reformat(format="yuv420p", **single)
            yuv.pts = index
            for packet in stream.encode(yuv):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


# --------------------------------------------------------------------------------------------
# Dataset
# --------------------------------------------------------------------------------------------
def _split_counts(videos_per_class: int) -> tuple[int, int, int]:
    val = max(1, round(videos_per_class * 0.2))
    test = max(1, round(videos_per_class * 0.2))
    return videos_per_class - val - test, val, test


def _validate(
    num_classes: int, videos_per_class: int, size: Sequence[int], num_frames: int, fps: int, extra_test_per_class: int
) -> tuple[int, int]:
    if not 1 <= num_classes <= MAX_CLASSES:
        raise ValueError(f"num_classes must be in [1, {MAX_CLASSES}], got {num_classes}")
    if videos_per_class < 3:
        raise ValueError(f"videos_per_class must be >= 3 (train/val/test each get one), got {videos_per_class}")
    if len(size) != 2:
        raise ValueError(f"size must be (width, height), got {size!r}")
    width, height = int(size[0]), int(size[1])
    if width < 16 or height < 16 or width % 2 or height % 2:
        raise ValueError(f"size must be even and at least 16x16 (h264 with yuv420p), got {width}x{height}")
    if num_frames < 2:
        raise ValueError(f"num_frames must be >= 2, got {num_frames}")
    if fps < 1:
        raise ValueError(f"fps must be positive, got {fps}")
    if isinstance(extra_test_per_class, bool) or not isinstance(extra_test_per_class, int) or extra_test_per_class < 0:
        raise ValueError(f"extra_test_per_class: must be an integer >= 0, got {extra_test_per_class!r}")
    return width, height


def _read_manifest(out: Path) -> dict | None:
    """The parameters a generated dataset was written with, or ``None`` (absent or unreadable)."""
    try:
        manifest = json.loads((out / _MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def make_synthetic_dataset(
    out_dir: str | Path,
    num_classes: int = 4,
    videos_per_class: int = 20,
    size: tuple[int, int] = (64, 48),
    num_frames: int = 32,
    fps: int = 15,
    seed: int = 0,
    overwrite: bool = False,
    extra_test_per_class: int = 0,
    task: str = "actions",
) -> Path:
    """Write the synthetic dataset to ``out_dir`` (skipped if it is already there) and return its path.

    Args:
        out_dir: target directory (created).
        num_classes: number of classes, 1..8, taken in the order of :data:`CLASS_NAMES`.
        videos_per_class: videos per class (>= 3), split 60/20/20 into train/val/test.
        size: ``(width, height)``, both even.
        num_frames: frames per video.
        fps: frame rate written into the files.
        seed: everything (content and split) is a function of the seed.
        overwrite: regenerate even if a dataset with the same parameters exists, and allow
            replacing a directory that does not look like one this function wrote.
        extra_test_per_class: further test-only videos per class (numbered after the others).
            Train and val stay exactly as without them; a larger test set makes a one-point
            accuracy difference measurable (with 24 test videos per class, one video is 1.04 points).
        task: ``"actions"`` (this module's classes) or ``"patterns"`` (the harder task of
            :mod:`.synthetic_patterns`: stripe orientation x direction of motion, with a distractor).

    Raises:
        ValueError: invalid parameters.
        FileExistsError: ``out_dir`` holds other files and ``overwrite`` is off.
    """
    width, height = _validate(num_classes, videos_per_class, size, num_frames, fps, extra_test_per_class)
    class_names, render = _task(task)
    out = Path(out_dir)
    params = {
        "format_version": _FORMAT_VERSION,
        "num_classes": int(num_classes),
        "videos_per_class": int(videos_per_class),
        "size": [width, height],
        "num_frames": int(num_frames),
        "fps": int(fps),
        "seed": int(seed),
        "crf": _CRF,
    }
    if extra_test_per_class:  # absent when 0, so that datasets written before the option stay valid
        params["extra_test_per_class"] = int(extra_test_per_class)
    if task != "actions":  # absent for the default task, so that earlier datasets stay valid
        params["task"] = task
    manifest = out / _MANIFEST
    if not overwrite and _read_manifest(out) == params and _complete(out):
        return out
    if out.exists() and not overwrite and not manifest.is_file():
        foreign = sorted(p.name for p in out.iterdir() if p.name not in _OWNED)
        if foreign:
            raise FileExistsError(
                f"{out}: not a synthetic dataset directory (contains {foreign[:3]}); "
                "choose an empty directory or pass overwrite=True"
            )
    if manifest.exists():
        manifest.unlink()  # an interrupted rewrite must not look complete
    shutil.rmtree(out / "videos", ignore_errors=True)
    videos = out / "videos"
    videos.mkdir(parents=True, exist_ok=True)

    n_train, n_val, _ = _split_counts(videos_per_class)
    splits: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for label in range(num_classes):
        name = class_names[label]
        (videos / name).mkdir()
        # A per-class permutation decides the split, so the split is part of the seeded content.
        order = np.random.default_rng([seed, label, 1_000_003]).permutation(videos_per_class)
        for k in range(videos_per_class + extra_test_per_class):
            rng = np.random.default_rng([seed, label, k])
            relative = f"videos/{name}/{name}_{k:04d}.mp4"
            _write_mp4(out / relative, render(label, width, height, num_frames, rng), fps)
            if k >= videos_per_class:
                split = "test"
            else:
                rank = int(np.nonzero(order == k)[0][0])
                split = "train" if rank < n_train else "val" if rank < n_train + n_val else "test"
            splits[split].append(f"{relative} {label}")
    for split, lines in splits.items():
        (out / f"{split}.csv").write_text("\n".join(lines) + "\n")
    (out / "classes.txt").write_text("\n".join(class_names[:num_classes]) + "\n")
    manifest.write_text(json.dumps(params, indent=2) + "\n")
    return out


def _task(task: str) -> tuple[Sequence[str], Any]:
    """The class names and the render function of a synthetic task."""
    if task == "actions":
        return CLASS_NAMES, render_video
    if task == "patterns":
        from .synthetic_patterns import PATTERN_CLASS_NAMES, render_pattern_video  # noqa: PLC0415 - imports this module

        return PATTERN_CLASS_NAMES, render_pattern_video
    raise ValueError(f"task: must be 'actions' or 'patterns', got {task!r}")


def is_synthetic_dataset(path: str | Path) -> bool:
    """Whether ``path`` holds a dataset written by :func:`make_synthetic_dataset` (by its manifest)."""
    manifest = _read_manifest(Path(path))
    return manifest is not None and {"format_version", "num_classes", "crf"} <= manifest.keys()


def _complete(out: Path) -> bool:
    required = ["train.csv", "val.csv", "test.csv", "classes.txt"]
    if not all((out / name).is_file() for name in required):
        return False
    for split in ("train", "val", "test"):
        for line in (out / f"{split}.csv").read_text().splitlines():
            if line.strip() and not (out / line.rsplit(None, 1)[0]).is_file():
                return False
    return True

