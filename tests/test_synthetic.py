"""The synthetic temporal-reasoning dataset: content, layout, determinism, caching, CLI, speed."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from lightning_multigrid.data import (
    SYNTHETIC_CLASS_NAMES,
    get_decoder,
    make_synthetic_dataset,
    make_synthetic_main,
)
from lightning_multigrid.data.synthetic import render_video

pytestmark = pytest.mark.usefixtures("single_torch_thread")


def _object_mask(frames: np.ndarray) -> np.ndarray:
    """Pixels that differ from the per-pixel median over time (the moving/changing object)."""
    frames = frames.astype(np.float32)
    background = np.median(frames, axis=0)
    return np.abs(frames - background).sum(-1) > 60


def _render(name: str, seed: int = 0, width: int = 64, height: int = 48, frames: int = 32) -> np.ndarray:
    return render_video(SYNTHETIC_CLASS_NAMES.index(name), width, height, frames, np.random.default_rng(seed))


@pytest.mark.parametrize("seed", range(3))
def test_paired_classes_differ_only_in_time_direction(seed: int) -> None:
    xs = np.arange(64)
    for name, sign in (("move_left", -1), ("move_right", 1)):
        mask = _object_mask(_render(name, seed))
        first, last = mask[0], mask[-1]  # object centroid moves left (-) or right (+)
        x0 = (first.sum(0) * xs).sum() / max(first.sum(), 1)
        x1 = (last.sum(0) * xs).sum() / max(last.sum(), 1)
        assert np.sign(x1 - x0) == sign, (name, seed)
    for name, sign in (("grow", 1), ("shrink", -1)):
        area = _object_mask(_render(name, seed)).sum((1, 2))
        assert np.sign(area[-1] - area[0]) == sign, (name, seed)
    for name in ("appear", "vanish"):
        video = _render(name, seed).astype(np.float32)
        change = np.abs(np.diff(video, axis=0)).sum((1, 2, 3))
        switch = int(change.argmax())
        assert 5 <= switch <= 26, (name, seed)  # switches in the middle, not at the ends
    for name, sign in (("rotate_cw", 1), ("rotate_ccw", -1)):
        mask = _object_mask(_render(name, seed))
        cy, cx = np.argwhere(mask.all(0) | mask.any(0)).mean(0)  # rough centre of the sweep
        angles = []
        for k in (0, 4):
            ys, xs = np.nonzero(mask[k])
            far = np.argmax((ys - cy) ** 2 + (xs - cx) ** 2)  # the tip of the hand
            angles.append(math.atan2(ys[far] - cy, xs[far] - cx))
        turn = (angles[1] - angles[0] + math.pi) % (2 * math.pi) - math.pi
        assert np.sign(turn) == sign, (name, seed)  # y points down: positive = clockwise


def test_single_frames_do_not_reveal_the_class() -> None:
    """The first frame of 'grow' and the last of 'shrink' come from the same size distribution."""
    grow = [_object_mask(_render("grow", s))[0].sum() for s in range(10)]
    shrink = [_object_mask(_render("shrink", s))[-1].sum() for s in range(10)]
    assert abs(np.mean(grow) - np.mean(shrink)) < 0.5 * np.std(grow + shrink) + 20


def test_layout_splits_and_labels(synthetic_root: Path) -> None:
    assert (synthetic_root / "classes.txt").read_text().split() == list(SYNTHETIC_CLASS_NAMES[:4])
    manifest = json.loads((synthetic_root / "manifest.json").read_text())
    assert manifest["num_classes"] == 4 and manifest["size"] == [64, 48] and manifest["num_frames"] == 32
    all_paths = []
    for split, per_class in (("train", 2), ("val", 1), ("test", 1)):
        lines = (synthetic_root / f"{split}.csv").read_text().splitlines()
        labels = [int(line.split()[1]) for line in lines]
        assert sorted(labels) == sorted(list(range(4)) * per_class), split
        for line in lines:
            path, label = line.split()
            assert path.startswith(f"videos/{SYNTHETIC_CLASS_NAMES[int(label)]}/")
            all_paths.append(path)
    assert len(set(all_paths)) == 16
    info = get_decoder("pyav").probe(synthetic_root / all_paths[0])
    assert (info.num_frames, info.width, info.height, info.fps) == (32, 64, 48, 15.0)


def test_motion_survives_encoding(synthetic_root: Path) -> None:
    """Decoded frames stay close to the rendered ones, so the temporal cue is not lost."""
    path = synthetic_root / "videos" / "move_right" / "move_right_0001.mp4"
    rendered = render_video(1, 64, 48, 32, np.random.default_rng([0, 1, 1]))
    decoded = get_decoder("decord").decode(path, list(range(32))).permute(0, 2, 3, 1).numpy()
    error = np.abs(decoded.astype(np.float32) - rendered.astype(np.float32)).mean()
    assert error < 3.0
    # The frame-to-frame change (the motion) is well above the coding error.
    motion = np.abs(np.diff(rendered.astype(np.float32), axis=0)).max(axis=(1, 2, 3))
    assert motion.min() > 10 * error


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def test_deterministic_and_cached(tmp_path: Path) -> None:
    # 80 videos: before x264's mbtree/lookahead were turned off, 3-14 of 80 differed between runs.
    many = {"num_classes": 8, "videos_per_class": 10, "size": (64, 64), "seed": 1}
    assert _digest(make_synthetic_dataset(tmp_path / "x", **many)) == _digest(make_synthetic_dataset(tmp_path / "y", **many))
    first = make_synthetic_dataset(tmp_path / "a", num_classes=4, videos_per_class=8, seed=3)
    second = make_synthetic_dataset(tmp_path / "b", num_classes=4, videos_per_class=8, seed=3)
    assert _digest(first) == _digest(second)  # same seed, same bytes
    other = make_synthetic_dataset(tmp_path / "c", num_classes=4, videos_per_class=8, seed=4)
    assert _digest(other) != _digest(first)

    video = next((first / "videos").rglob("*.mp4"))
    stamp = video.stat().st_mtime_ns
    make_synthetic_dataset(first, num_classes=4, videos_per_class=8, seed=3)
    assert video.stat().st_mtime_ns == stamp  # same parameters: nothing rewritten
    make_synthetic_dataset(first, num_classes=2, videos_per_class=3, seed=3)
    assert len(list((first / "videos").rglob("*.mp4"))) == 6  # new parameters: regenerated
    assert json.loads((first / "manifest.json").read_text())["num_classes"] == 2
    (first / "val.csv").unlink()
    make_synthetic_dataset(first, num_classes=2, videos_per_class=3, seed=3)  # incomplete: repaired
    assert (first / "val.csv").is_file()


def test_extra_test_videos_leave_train_and_val_unchanged(tmp_path: Path) -> None:
    kwargs = dict(num_classes=2, videos_per_class=5, size=(32, 24), num_frames=8, seed=5)
    plain = make_synthetic_dataset(tmp_path / "plain", **kwargs)
    more = make_synthetic_dataset(tmp_path / "more", extra_test_per_class=3, **kwargs)
    for split in ("train", "val"):
        assert (more / f"{split}.csv").read_text() == (plain / f"{split}.csv").read_text()
    plain_test = (plain / "test.csv").read_text().splitlines()
    more_test = (more / "test.csv").read_text().splitlines()
    assert set(plain_test) < set(more_test) and len(more_test) == len(plain_test) + 2 * 3
    for line in set(more_test) - set(plain_test):  # the extra ones are numbered after the others
        assert int(line.split()[0].rsplit("_", 1)[1].split(".")[0]) >= 5
    assert json.loads((more / "manifest.json").read_text())["extra_test_per_class"] == 3
    assert "extra_test_per_class" not in json.loads((plain / "manifest.json").read_text())
    with pytest.raises(ValueError, match="extra_test_per_class"):
        make_synthetic_dataset(tmp_path / "bad", extra_test_per_class=-1, **kwargs)


def test_refuses_foreign_directories_and_bad_parameters(tmp_path: Path) -> None:
    (tmp_path / "mine.txt").write_text("precious")
    with pytest.raises(FileExistsError, match="not a synthetic dataset directory"):
        make_synthetic_dataset(tmp_path, videos_per_class=3)
    for kwargs, match in (
        ({"num_classes": 9}, "num_classes"),
        ({"videos_per_class": 2}, "videos_per_class"),
        ({"size": (63, 48)}, "even"),
        ({"num_frames": 1}, "num_frames"),
    ):
        with pytest.raises(ValueError, match=match):
            make_synthetic_dataset(tmp_path / "x", **kwargs)


def test_all_eight_classes_render(tmp_path: Path) -> None:
    root = make_synthetic_dataset(tmp_path, num_classes=8, videos_per_class=3, size=(32, 24), num_frames=8)
    labels = sorted(int(line.split()[1]) for line in (root / "train.csv").read_text().splitlines())
    assert labels == list(range(8))
    video = get_decoder("decord").decode(next((root / "videos" / "vanish").glob("*.mp4")), [0, 7])
    assert video.shape == (2, 3, 24, 32) and video.dtype == torch.uint8


def test_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = make_synthetic_main(
        [str(tmp_path / "cli"), "--classes", "2", "--videos-per-class", "3", "--size", "32x24", "--frames", "8", "--seed", "1"]
    )
    assert code == 0 and "6 videos, 2 classes" in capsys.readouterr().out
    assert json.loads((tmp_path / "cli" / "manifest.json").read_text())["size"] == [32, 24]
    for argv, match in (
        ([str(tmp_path / "y"), "--size", "big"], "--size"),
        ([str(tmp_path / "y"), "--classes", "12"], "num_classes"),
        ([str(tmp_path / "y"), "--frames", "x"], "--frames"),
        ([], "OUT_DIR"),
    ):
        assert make_synthetic_main(argv) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and match in err and err.startswith("lightning-multigrid make-synthetic: error:")
    assert make_synthetic_main(["--help"]) == 0
    assert "make-synthetic" in capsys.readouterr().out
