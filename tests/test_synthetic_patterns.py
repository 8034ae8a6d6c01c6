"""The harder synthetic task (task="patterns"): each class's cue is in the frames, checked by an
independent measurement (where the stripe energy is, frame by frame), and the dataset is written
like the default task's."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lightning_multigrid.data import synthetic_patterns
from lightning_multigrid.data.synthetic import make_synthetic_dataset
from lightning_multigrid.data.synthetic_patterns import PATTERN_CLASS_NAMES, render_pattern_video


def _stripe_centre(frame: np.ndarray, axis: int) -> tuple[float, float]:
    """Where the squared second difference along ``axis`` is strongest (stripes across that axis
    give a strong one; the plain distractor only at its rim), after a 9x9 box filter."""
    grey = frame.astype(float).mean(axis=2)
    second = np.diff(grey, n=2, axis=axis) ** 2
    kernel = np.ones(9) / 9
    smooth = np.apply_along_axis(lambda r: np.convolve(r, kernel, "same"), 0, second)
    smooth = np.apply_along_axis(lambda r: np.convolve(r, kernel, "same"), 1, smooth)
    # The centroid of the strongest region (the striped disk), not the argmax, which wanders in it.
    ys, xs = np.nonzero(smooth >= 0.5 * smooth.max())
    return float(ys.mean()), float(xs.mean())


@pytest.mark.parametrize("label", range(len(PATTERN_CLASS_NAMES)))
def test_every_class_moves_its_stripes_the_way_its_name_says(label, monkeypatch):
    orientation, direction = PATTERN_CLASS_NAMES[label].split("_")
    axis = 0 if orientation == "hstripes" else 1  # horizontal stripes vary along y
    for k in range(4):
        video = render_pattern_video(label, 64, 64, 32, np.random.default_rng([7, label, k]))
        assert video.shape == (32, 64, 64, 3) and video.dtype == np.uint8
        # The same video without its noise (same draws otherwise): the measurements need no denoising.
        monkeypatch.setattr(synthetic_patterns, "NOISE_STD", 0.0)
        clean = render_pattern_video(label, 64, 64, 32, np.random.default_rng([7, label, k]))
        monkeypatch.undo()
        assert 5 < np.abs(video.astype(float) - clean).mean() < 15  # the noise is there (std 10)
        (y0, x0), (y1, x1) = _stripe_centre(clean[0], axis), _stripe_centre(clean[-1], axis)
        dy, dx = y1 - y0, x1 - x0
        # Travel is >= 0.3 x (64 - 2 x 11) = 12.6 px along the motion; the distractor's rim can pull the
        # centroid of the strongest region back by a few pixels.
        along = dx if direction in ("left", "right") else dy
        sign = 1 if direction in ("right", "down") else -1
        assert sign * along >= 3, (PATTERN_CLASS_NAMES[label], k, dy, dx)  # (across: the distractor may pull)
        # Inside the striped disk the stripes' own orientation dominates.
        grey = clean[0].astype(float).mean(axis=2)
        energy = [np.pad(np.diff(grey, n=2, axis=a) ** 2, [(1, 1) if i == a else (0, 0) for i in range(2)])
                  for a in (axis, 1 - axis)]
        y, x = (int(round(c)) for c in _stripe_centre(clean[0], axis))
        window = (slice(max(y - 5, 0), y + 6), slice(max(x - 5, 0), x + 6))  # inside the striped disk
        along, across = energy[0][window].sum(), energy[1][window].sum()
        assert along > 1.2 * across


def test_patterns_dataset_layout_and_manifest(tmp_path):
    out = make_synthetic_dataset(tmp_path / "p", num_classes=4, videos_per_class=3, size=(64, 64),
                                 num_frames=8, extra_test_per_class=1, task="patterns")
    assert (out / "classes.txt").read_text().split() == list(PATTERN_CLASS_NAMES[:4])
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["task"] == "patterns"
    lines = {s: (out / f"{s}.csv").read_text().split("\n") for s in ("train", "val", "test")}
    assert [len([x for x in v if x]) for v in lines.values()] == [4, 4, 8]
    assert all((out / line.split()[0]).is_file() for v in lines.values() for line in v if line)
    # The default task's manifest has no "task" key, so datasets written before it stay valid.
    plain = make_synthetic_dataset(tmp_path / "a", num_classes=2, videos_per_class=3, size=(32, 32), num_frames=4)
    assert "task" not in json.loads((plain / "manifest.json").read_text())
    with pytest.raises(ValueError, match="task"):
        make_synthetic_dataset(tmp_path / "b", num_classes=2, videos_per_class=3, task="nope")
