"""Stored frame levels and crop-before-resize decoding (issue #20) against an independent oracle:
Pillow's full decode of the stored JPEG, resized to the whole rescaled frame, then cropped."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lightning_multigrid.data import make_synthetic_dataset, resized_size
from lightning_multigrid.data import transforms as T
from lightning_multigrid.data.datasets import CsvVideoDataset
from lightning_multigrid.data.decode_errors import VideoDecodeError
from lightning_multigrid.data.frame_folders import FRAME_READER, META_NAME
from lightning_multigrid.data.frame_store import Level, choose_level, crop_region
from lightning_multigrid.data.prepare import PrepareOptions, convert_video, prepare_dataset
from lightning_multigrid.sampling.keys import ClipKey, ClipShape

pytestmark = pytest.mark.usefixtures("single_torch_thread")

SIZE = (128, 96)  # large enough for a half level and DCT scaling, small enough to be fast


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_synthetic_dataset(tmp_path_factory.mktemp("src"), num_classes=2, videos_per_class=3, size=SIZE,
                                  num_frames=12, seed=3)


@pytest.fixture(scope="module")
def leveled(videos: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("levels") / "clip"
    source = sorted((videos / "videos").rglob("*.mp4"))[0]
    convert_video(str(source), str(target), short_side=None, quality=95, levels=("half",))
    return target


def _oracle(file: Path, size: tuple[int, int], box: tuple[int, int, int] | None) -> np.ndarray:
    """The documented transform done the plain way: whole frame decoded and resized by Pillow, then cut."""
    frame = Image.open(file).convert("RGB").resize(size, Image.Resampling.BILINEAR)
    array = np.asarray(frame, dtype=np.float32)
    if box is None:
        return array
    top, left, side = box
    return array[top : top + side, left : left + side]


def test_choose_level_is_the_smallest_covering_one() -> None:
    levels = [Level("", 320, 240), Level("half", 160, 120)]
    assert choose_level(levels, (160, 120)).name == "half"
    assert choose_level(levels, (162, 122)).name == ""  # the half level would be enlarged
    assert choose_level(levels, (400, 300)).name == ""  # nothing covers: the largest, never a smaller one
    assert crop_region((160, 120), (10, 20, 100), (320, 240)) == (20, 220, 40, 240)  # exact 2x: whole pixels


def test_prepare_levels_writes_and_describes_the_half_level(leveled: Path) -> None:
    meta = json.loads((leveled / META_NAME).read_text())
    assert meta["levels"] == [{"name": "half", "width": SIZE[0] // 2, "height": SIZE[1] // 2}]
    full, half = sorted(leveled.glob("*.jpg")), sorted((leveled / "half").glob("*.jpg"))
    assert [f.name for f in full] == [f.name for f in half] and len(full) == meta["num_frames"]
    assert Image.open(half[0]).size == (SIZE[0] // 2, SIZE[1] // 2)
    # The half level is the full frame averaged over 2x2 blocks (then JPEG-coded at quality 95).
    averaged = np.asarray(Image.open(full[3]).convert("RGB"), np.float32).reshape(SIZE[1] // 2, 2, SIZE[0] // 2, 2, 3).mean((1, 3))
    assert np.abs(np.asarray(Image.open(half[3]).convert("RGB"), np.float32) - averaged).mean() < 2.0
    assert meta["bytes"] == sum(f.stat().st_size for f in leveled.rglob("*.jpg"))


@pytest.mark.parametrize(("short_side", "box"), [
    (96, None), (96, (0, 0, 96)), (96, (10, 27, 64)), (72, (5, 9, 60)), (60, (3, 11, 48)),
    (48, (0, 0, 48)), (48, (7, 13, 40)), (40, (2, 5, 32)), (24, (1, 3, 20)), (120, (17, 30, 100)),
])
def test_crop_decode_matches_full_decode_resize_and_crop(leveled: Path, short_side: int, box: tuple | None) -> None:
    """Against the level the reader must choose (the half level up to its own size, else the full
    one): at most half a stored pixel of box rounding and libjpeg's DCT scaling apart."""
    info = FRAME_READER.probe(leveled)
    size = resized_size(info.width, info.height, short_side)
    level = leveled / "half" if size[1] <= SIZE[1] // 2 else leveled
    indices = [4, 1, 4]
    if box is None:
        ours = FRAME_READER.decode(leveled, indices, short_side=short_side, info=info)
    else:
        ours = FRAME_READER.decode_crop(leveled, indices, short_side, box, info=info)
    for row, index in enumerate(indices):
        expected = _oracle(level / f"{index + 1:06d}.jpg", size, box)
        got = ours[row].permute(1, 2, 0).numpy().astype(np.float32)
        assert got.shape == expected.shape
        # Measured: mean 0-1.0 grey levels (2.1 at short side 24, DCT-scaled first); edges of the
        # synthetic shapes differ by up to ~70 levels where the box moves by a fraction of a pixel.
        assert np.abs(got - expected).mean() < 2.5, (short_side, box)
    assert torch.equal(ours[0], ours[2])


def test_small_clips_read_only_the_half_level(leveled: Path, tmp_path: Path) -> None:
    """Which files a clip opens: a short side the half level covers never touches the full frames."""
    copy = tmp_path / "clip"
    shutil.copytree(leveled, copy)
    for frame in copy.glob("*.jpg"):
        frame.write_bytes(b"gone")
    info = FRAME_READER.probe(copy)
    assert FRAME_READER.decode_crop(copy, [0, 5], SIZE[1] // 2, (0, 0, 40), info=info).shape == (2, 3, 40, 40)
    with pytest.raises(VideoDecodeError, match=r"clip/000006.jpg: cannot read frame 5"):
        FRAME_READER.decode_crop(copy, [5], SIZE[1] // 2 + 2, (0, 0, 40), info=info)


def test_training_items_are_the_crop_of_the_rescaled_clip(videos: Path, tmp_path: Path) -> None:
    """A dataset item (crop-before-resize) against the same random draws applied the plain way:
    decode the whole clip at the drawn short side, then :func:`random_crop`."""
    out = tmp_path / "frames"
    prepare_dataset(videos, out, PrepareOptions(splits=["train.csv"], levels=["half"], progress=False, workers=1))
    shape = ClipShape(4, 40, (1, 2), (40, 90))
    dataset = CsvVideoDataset(out, "train.csv", shape, "train", random_flip=False)
    for index in range(len(dataset)):
        torch.manual_seed(index)
        item = dataset[ClipKey(index, shape)]
        record = dataset.records[item["index"]]
        info = FRAME_READER.probe(record.path)
        torch.manual_seed(index)
        indices, _ = T.random_clip_indices(info.num_frames, 4, shape.stride_range)
        short_side = T.random_short_side(shape.jitter_range)
        size = resized_size(info.width, info.height, short_side)
        level = Path(record.path) / ("half" if size[1] <= SIZE[1] // 2 else "")
        whole = torch.stack([torch.from_numpy(_oracle(level / f"{i + 1:06d}.jpg", size, None)).permute(2, 0, 1)
                             for i in indices])
        expected = T.random_crop(whole, 40)
        assert item["video"].shape == (3, 4, 40, 40)
        assert (item["video"].permute(1, 0, 2, 3).float() - expected).abs().mean() < 2.5


def test_unknown_level_is_refused(videos: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="levels: unknown"):
        prepare_dataset(videos, tmp_path / "x", PrepareOptions(splits=["train.csv"], levels=["quarter"], progress=False))
