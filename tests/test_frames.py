"""Frame-folder input: the reader against ffmpeg's decode and PIL, reduced-size decoding, datasets."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lightning_multigrid.data import build_dataset, resized_size
from lightning_multigrid.data.decode_errors import VideoDecodeError
from lightning_multigrid.data.frame_folders import (
    FRAME_READER,
    META_NAME,
    find_videos,
    is_frame_folder,
)
from lightning_multigrid.data.prepare import PrepareOptions, convert_video
from lightning_multigrid.sampling.keys import ClipKey
from lightning_multigrid.schedule.recipe import ClipShape

pytestmark = pytest.mark.usefixtures("single_torch_thread")


def _ffmpeg_frames(path: Path) -> np.ndarray:
    """Every frame once, in presentation order, as ffmpeg decodes it (the project's reference)."""
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=width,height", "-of", "csv=p=0", str(path)],
        capture_output=True, text=True, check=True,
    ).stdout.strip().split(",")
    width, height = int(probe[0]), int(probe[1])
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-noautorotate", "-i", str(path), "-fps_mode", "passthrough",
         "-f", "rawvideo", "-pix_fmt", "rgb24", "-"], capture_output=True, check=True,
    ).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, height, width, 3)


@pytest.fixture(scope="module")
def moving_video(synthetic_root: Path) -> Path:
    # A moving object changes every frame, so a wrong frame number cannot go unnoticed.
    return sorted((synthetic_root / "videos" / "move_left").glob("*.mp4"))[0]


@pytest.fixture(scope="module")
def frame_folder(moving_video: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("frames") / "clip"
    convert_video(str(moving_video), str(target), short_side=None, quality=95)
    return target


def test_reader_returns_the_frames_ffmpeg_decodes(moving_video: Path, frame_folder: Path) -> None:
    reference = _ffmpeg_frames(moving_video).astype(np.float32)
    info = FRAME_READER.probe(frame_folder)
    assert (info.num_frames, info.width, info.height) == (reference.shape[0], reference.shape[2], reference.shape[1])
    frames = FRAME_READER.decode(frame_folder, range(info.num_frames), info=info)
    assert frames.dtype == torch.uint8 and frames.shape == (info.num_frames, 3, info.height, info.width)
    ours = frames.permute(0, 2, 3, 1).numpy().astype(np.float32)
    error = np.abs(ours[:, None] - reference[None]).mean(axis=(2, 3, 4))  # (ours, ffmpeg's) pairs
    # JPEG at quality 95 plus swscale's vs ffmpeg's RGB conversion: about one grey level per
    # pixel on average (1.1 measured at quality 90); consecutive frames differ by twice that.
    assert error.diagonal().max() < 2.0
    assert (error.argmin(axis=1) == np.arange(info.num_frames)).all()  # frame i is ffmpeg's frame i


def test_reader_equals_an_independent_decode_of_the_written_files(frame_folder: Path) -> None:
    info = FRAME_READER.probe(frame_folder)
    indices = [5, 0, 5, info.num_frames - 1]  # any order, repeats allowed
    frames = FRAME_READER.decode(frame_folder, indices, info=info).permute(0, 2, 3, 1).numpy()
    for row, index in enumerate(indices):
        expected = np.asarray(Image.open(frame_folder / f"{index + 1:06d}.jpg").convert("RGB"))
        np.testing.assert_array_equal(frames[row], expected)


@pytest.fixture(scope="module")
def large_frame_folder(moving_video: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same frames at 160x128: large enough for DCT-domain scaling at short sides <= 64."""
    target = tmp_path_factory.mktemp("large") / "clip"
    target.mkdir()
    for i, frame in enumerate(_ffmpeg_frames(moving_video)):
        Image.fromarray(frame).resize((160, 128), Image.BICUBIC).save(target / f"{i + 1:06d}.jpg", quality=95)
    return target


@pytest.mark.parametrize(("folder", "short_side"), [
    ("small", 16), ("small", 24), ("small", 32), ("small", 40), ("small", 72),
    ("large", 32), ("large", 48), ("large", 64), ("large", 100),
])
def test_reduced_size_decode(frame_folder: Path, large_frame_folder: Path, folder: str, short_side: int) -> None:
    """Frames at any short side, by either path (a full decode and resize; frames shrunk to at most
    half: DCT-domain scaling first), match a full decode resized with PIL."""
    frame_folder = frame_folder if folder == "small" else large_frame_folder
    info = FRAME_READER.probe(frame_folder)
    frames = FRAME_READER.decode(frame_folder, [0, 3], short_side=short_side, info=info)
    width, height = resized_size(info.width, info.height, short_side)
    assert frames.shape == (2, 3, height, width)
    # Against a full-size PIL decode resized with PIL: DCT-domain scaling changes only rounding.
    full = Image.open(frame_folder / "000004.jpg").convert("RGB").resize((width, height), Image.BILINEAR)
    error = np.abs(frames[1].permute(1, 2, 0).numpy().astype(np.float32) - np.asarray(full, np.float32)).mean()
    assert error < 4.0


def test_listing_probe_for_foreign_folders(frame_folder: Path, tmp_path: Path) -> None:
    """A Charades-style folder (``<id>-000001.jpg``, no metadata) reads the same frames."""
    foreign = tmp_path / "ABC12"
    foreign.mkdir()
    for jpg in sorted(frame_folder.glob("*.jpg")):
        shutil.copyfile(jpg, foreign / f"ABC12-{jpg.name}")
    info, ours = FRAME_READER.probe(foreign), FRAME_READER.probe(frame_folder)
    assert (info.num_frames, info.width, info.height, info.prefix) == (ours.num_frames, ours.width, ours.height, "ABC12-")
    assert torch.equal(FRAME_READER.decode(foreign, [2, 7], 24), FRAME_READER.decode(frame_folder, [2, 7], 24))
    (foreign / "ABC12-000003.jpg").unlink()  # a gap in the numbering
    with pytest.raises(VideoDecodeError, match="not numbered contiguously"):
        FRAME_READER.probe(foreign)


def test_bad_requests_name_the_folder(frame_folder: Path, tmp_path: Path) -> None:
    with pytest.raises(VideoDecodeError, match=r"clip: frame indices .* outside"):
        FRAME_READER.decode(frame_folder, [0, 10_000])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(VideoDecodeError, match="empty: no frame images"):
        FRAME_READER.probe(empty)
    broken = tmp_path / "broken"
    shutil.copytree(frame_folder, broken)
    (broken / "000002.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(VideoDecodeError, match="000002.jpg: cannot read frame 1"):
        FRAME_READER.decode(broken, [1])


def test_folder_format_finds_frame_folders_beside_videos(frame_folder: Path, moving_video: Path, tmp_path: Path) -> None:
    root = tmp_path / "data"
    (root / "a").mkdir(parents=True)
    (root / "b" / "nested").mkdir(parents=True)
    shutil.copytree(frame_folder, root / "a" / "clip0")
    shutil.copyfile(moving_video, root / "a" / "clip1.mp4")
    shutil.copytree(frame_folder, root / "b" / "nested" / "clip2")
    found = find_videos(root, (".mp4",))
    assert [Path(p).relative_to(root).as_posix() for p in found] == ["a/clip0", "a/clip1.mp4", "b/nested/clip2"]
    assert is_frame_folder(root / "a" / "clip0") and not is_frame_folder(root / "a")
    (root / "a" / "clip0" / META_NAME).unlink()  # found by its images alone
    shape = ClipShape(4, 32, (2, 2), (32, 36))
    dataset = build_dataset("folder", root, None, "val", shape, decoder="pyav")
    assert [r.label for r in dataset.records] == [0, 0, 1]
    for i in range(3):
        assert dataset[ClipKey(i, shape)]["video"].shape == (3, 4, 32, 32)


def test_prepare_options_defaults_follow_training() -> None:
    import inspect

    from lightning_multigrid.data.clip_dataset import VideoClipDataset

    params = inspect.signature(VideoClipDataset.__init__).parameters
    options = PrepareOptions()
    assert (options.max_failure_rate, options.min_failures) == (
        params["max_failure_rate"].default, params["min_failures"].default)
