"""``prepare --layout packed``: one file per video, the same pixels as frame folders, resume,
verification, the report, and training from it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lightning_multigrid.cli.prepare import prepare_main
from lightning_multigrid.data import build_dataset
from lightning_multigrid.data.decode_errors import VideoDecodeError
from lightning_multigrid.data.frame_folders import FRAME_READER
from lightning_multigrid.data.frame_pack import PACKED_EXT, PACKED_READER, packed_meta
from lightning_multigrid.data.prepare import (
    REPORT_NAME,
    PrepareOptions,
    prepare_dataset,
)
from lightning_multigrid.sampling.keys import ClipKey, ClipShape

pytestmark = pytest.mark.usefixtures("single_torch_thread")

QUIET = {"progress": False, "workers": 1, "splits": ["train.csv", "val.csv"]}
SHAPE = ClipShape(4, 24, (1, 2), (24, 40))


@pytest.fixture(scope="module")
def stores(synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The session dataset prepared both ways, with the half level."""
    base = tmp_path_factory.mktemp("stores")
    out = {}
    for layout in ("folders", "packed"):
        out[layout] = base / layout
        prepare_dataset(synthetic_root, out[layout], PrepareOptions(layout=layout, levels=["half"], **QUIET))
    return out


def test_one_file_per_video_with_the_folders_bytes(stores: dict[str, Path]) -> None:
    packed = sorted(stores["packed"].rglob(f"*{PACKED_EXT}"))
    folders = sorted(p.parent for p in stores["folders"].rglob("frames.json"))
    assert len(packed) == len(folders) == 12 and not [p for p in stores["packed"].rglob("*.jpg")]
    assert all(p.is_file() for p in packed) and not [d for d in stores["packed"].rglob("*") if d.is_dir() and
                                                     not any(d.iterdir())]
    # Every stored frame (both levels) is byte for byte the frame folder's file.
    meta = packed_meta(packed[0])
    with open(packed[0], "rb") as handle:
        raw = handle.read()
    data_start = PACKED_READER.probe(packed[0]).data_start
    for level in ("", "half"):
        offsets = meta["offsets"][level]
        for i in range(meta["num_frames"]):
            file = folders[0] / level / f"{i + 1:06d}.jpg"
            assert raw[data_start + offsets[i] : data_start + offsets[i + 1]] == file.read_bytes()
    report = json.loads((stores["packed"] / REPORT_NAME).read_text())
    assert report["bytes_written"] == sum(p.stat().st_size for p in packed)


def test_packed_and_folders_decode_the_same_pixels(stores: dict[str, Path]) -> None:
    packed = sorted(stores["packed"].rglob(f"*{PACKED_EXT}"))[1]
    folder = sorted(p.parent for p in stores["folders"].rglob("frames.json"))[1]
    for short_side, box in [(None, None), (48, (3, 5, 40)), (24, (0, 2, 24)), (30, None)]:
        if box is None:
            a, b = PACKED_READER.decode(packed, [0, 7, 7, 31], short_side), FRAME_READER.decode(folder, [0, 7, 7, 31], short_side)
        else:
            a = PACKED_READER.decode_crop(packed, [0, 7, 31], short_side, box)
            b = FRAME_READER.decode_crop(folder, [0, 7, 31], short_side, box)
        assert torch.equal(a, b)
    # Against an independent decode of the stored JPEG (Pillow): frame 7 at the stored size.
    expected = np.asarray(Image.open(folder / "000008.jpg").convert("RGB"))
    np.testing.assert_array_equal(PACKED_READER.decode(packed, [7])[0].permute(1, 2, 0).numpy(), expected)


def test_training_reads_the_packed_layout(stores: dict[str, Path], synthetic_root: Path) -> None:
    lines = (stores["packed"] / "train.csv").read_text().split()
    assert lines[0].endswith(PACKED_EXT)
    packed = build_dataset("csv", stores["packed"], "train.csv", "train", SHAPE)
    folders = build_dataset("csv", stores["folders"], "train.csv", "train", SHAPE)
    assert len(packed) == len(folders) == 8
    for i in range(len(packed)):
        torch.manual_seed(i)
        a = packed[ClipKey(i, SHAPE)]
        torch.manual_seed(i)
        b = folders[ClipKey(i, SHAPE)]
        assert torch.equal(a["video"], b["video"]) and torch.equal(a["label"], b["label"])
    # The folder format finds packed files beside class folders.
    shutil.copytree(stores["packed"] / "videos", stores["packed"].parent / "by_class")
    by_class = build_dataset("folder", stores["packed"].parent / "by_class", None, "val", SHAPE)
    assert all(r.path.endswith(PACKED_EXT) for r in by_class.records) and len(by_class) == 12
    assert by_class[0]["video"].shape == (3, 4, 24, 24)


def test_packed_resume_and_damage(synthetic_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "packed"
    first = prepare_dataset(synthetic_root, out, PrepareOptions(layout="packed", **QUIET))
    files = sorted(out.rglob(f"*{PACKED_EXT}"))
    (files[0].parent / f".tmp-left-by-kill-1{PACKED_EXT}").write_bytes(b"partial")  # a hard kill's leftover
    files[1].unlink()
    again = prepare_dataset(synthetic_root, out, PrepareOptions(layout="packed", **QUIET))
    assert (again.skipped_done, again.converted) == (11, 1) and again.bytes_written == first.bytes_written
    assert not list(out.rglob(".tmp-*"))
    with pytest.raises(ValueError, match="was prepared with"):
        prepare_dataset(synthetic_root, out, PrepareOptions(**QUIET))  # same OUT as folders
    # A damaged file names itself; a truncated one names the frame.
    data = files[2].read_bytes()
    files[2].write_bytes(data[: len(data) - 100])
    with pytest.raises(VideoDecodeError, match=rf"{files[2].name}: cannot read frame 31"):
        PACKED_READER.decode(files[2], [31])
    files[2].write_bytes(b"garbage" * 10)
    with pytest.raises(VideoDecodeError, match="not a packed frame file"):
        PACKED_READER.probe(files[2])


def test_packed_needs_a_path_based_format(synthetic_root: Path, tmp_path: Path) -> None:
    assert prepare_main([str(synthetic_root), str(tmp_path / "x"), "--format", "ssv2", "--layout", "packed",
                         "--no-progress"]) == 2
    assert prepare_main([str(synthetic_root), str(tmp_path / "y"), "--layout", "packed", "--levels", "half",
                         "--splits", "val.csv", "--no-progress", "--workers", "1"]) == 0
    assert len(list((tmp_path / "y").rglob(f"*{PACKED_EXT}"))) == 4
