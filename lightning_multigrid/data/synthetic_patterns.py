"""The harder synthetic task ("patterns"): classes that need temporal order *and* spatial detail.

Each class is a (stripe orientation, direction of motion) pair: a striped disk with horizontal or
vertical stripes 3-4.5 pixels apart (at 64 px) moves left, right, up or down. A single frame cannot
tell the direction, and the orientation is only visible at close to full resolution (at half
resolution the stripes are at the Nyquist limit). A plain distractor disk moves in a random direction
at the same time, so the model has to bind the motion to the striped object, and per-pixel noise
hides the finest stripes in some videos. Everything else (colours, sizes, positions, speeds, phase) is
random; every video is a function of ``(seed, class, number)``.

Written by :func:`~lightning_multigrid.data.synthetic.make_synthetic_dataset` with ``task="patterns"``
(same layout, manifest and split rules as the default ``"actions"`` task). Pure numpy.
"""

from __future__ import annotations

import math

import numpy as np

from .synthetic_drawing import background as draw_background
from .synthetic_drawing import disk, object_colour

__all__ = ["PATTERN_CLASS_NAMES", "render_pattern_video"]

_DIRECTIONS = {"left": (0.0, -1.0), "right": (0.0, 1.0), "up": (-1.0, 0.0), "down": (1.0, 0.0)}
#: Ordered so that any prefix of 4 holds both orientations and both horizontal directions.
PATTERN_CLASS_NAMES: tuple[str, ...] = tuple(
    f"{o}_{d}" for d in ("left", "right", "up", "down") for o in ("hstripes", "vstripes")
)
#: Per-pixel Gaussian noise (RGB units) and the stripes' contrast: the difficulty, chosen with the
#: baseline alone (benchmarks/README.md, issue 24).
NOISE_STD = 10.0
STRIPE_CONTRAST = (0.35, 0.6)


def _path(rng: np.random.Generator, direction: tuple[float, float], radius: float, height: int, width: int,
          num_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Centre positions of a disk travelling 30-60% of the free space in ``direction`` (dy, dx)."""
    dy, dx = direction
    free_y, free_x = height - 2 * radius, width - 2 * radius
    along_free = free_x if dx else free_y
    travel = rng.uniform(0.3, 0.6) * along_free
    start = radius + rng.uniform(0, along_free - travel)
    across = radius + rng.uniform(0, free_y if dx else free_x)
    t = np.arange(num_frames, dtype=np.float32) / max(num_frames - 1, 1)
    along = start + travel * t
    if (dx or dy) < 0:
        along = along[::-1]
    return (np.full_like(along, across), along) if dx else (along, np.full_like(along, across))


def render_pattern_video(label: int, width: int, height: int, num_frames: int, rng: np.random.Generator) -> np.ndarray:
    """Render one clip of class ``label`` as ``uint8`` ``(num_frames, height, width, 3)`` RGB."""
    orientation, direction = PATTERN_CLASS_NAMES[label].split("_")
    short = min(width, height)
    scale = short / 64.0
    background = draw_background(rng, height, width)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)

    radius = rng.uniform(0.11, 0.17) * short
    period = rng.uniform(3.0, 4.5) * scale
    phase = rng.uniform(0, 2 * math.pi)
    contrast = rng.uniform(*STRIPE_CONTRAST)
    colour = object_colour(rng)
    ys, xs = _path(rng, _DIRECTIONS[direction], radius, height, width, num_frames)

    d_radius = rng.uniform(0.11, 0.17) * short
    d_colour = object_colour(rng)
    d_dir = list(_DIRECTIONS.values())[int(rng.integers(4))]
    d_ys, d_xs = _path(rng, d_dir, d_radius, height, width, num_frames)

    frames = np.empty((num_frames, height, width, 3), dtype=np.uint8)
    for k in range(num_frames):
        image = background.copy()
        cover = disk(yy, xx, float(d_ys[k]), float(d_xs[k]), d_radius)[..., None]
        image = image * (1 - cover) + d_colour * cover
        # Stripes move with the object (texture fixed to it): only orientation and motion differ.
        coordinate = (yy - ys[k]) if orientation == "hstripes" else (xx - xs[k])
        shade = 1.0 - contrast * (0.5 + 0.5 * np.sin(2 * math.pi * coordinate / period + phase))
        cover = disk(yy, xx, float(ys[k]), float(xs[k]), radius)[..., None]
        image = image * (1 - cover) + (colour * shade[..., None]) * cover
        image = image + rng.normal(0.0, NOISE_STD, size=image.shape)
        frames[k] = np.clip(image, 0, 255).astype(np.uint8)
    return frames
