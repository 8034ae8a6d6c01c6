"""Every backend returns ffmpeg's own frame i for real encoded files, or refuses the file by name.

The oracle is the ``ffmpeg`` program's decode of the same file (``tests/real_files.py``), never the
code under test. Files: constant and variable frame rate, jittery timestamps, AVI with B-frames,
AVI with empty "dropped frame" index entries, rotation metadata, long GOP with B-frames, VP9,
truncated MP4/AVI/WebM, audio only, text named ``.mp4``.
"""

from __future__ import annotations

import re

import av
import numpy as np
import pytest
import torch

from lightning_multigrid.data.decode_errors import VideoDecodeError
from lightning_multigrid.data.decoder_base import resized_size
from lightning_multigrid.data.decoders import available_decoders, get_decoder
from lightning_multigrid.data.video_index import build_frame_index
from tests.real_files import ODD_SIZES, RealFile, ffmpeg_frames

#: Largest per-pixel difference accepted between a backend's RGB and ffmpeg's. PyAV wheels carry
#: their own FFmpeg libraries, whose YUV->RGB conversion may round a unit or two differently from
#: Debian's ffmpeg; the wrong frame of testsrc2 differs by far more (checked below).
TOLERANCE = 2
BACKENDS = available_decoders()
NAMES = [
    "cfr.mp4", "vfr.mp4", "jitter.mp4", "bframes.avi", "dropped.avi", "longgop.mp4", "vp9.webm",
    "faststart.mp4", "rotated.mp4", "rotated180.mp4", "rotated270.mp4", "trimmed.mp4", "truncated.mp4", "truncated.avi", "truncated.webm",
    "audio_only.mp4", "text.mp4", *(f"size_{w}x{h}.mp4" for w, h in ODD_SIZES),
]


@pytest.fixture(scope="module")
def oracle(real_files: dict[str, RealFile]) -> dict[str, np.ndarray]:
    return {name: ffmpeg_frames(f.path, f.display_size) for name, f in real_files.items() if f.expect != "refuse"}


def test_files_are_the_awkward_cases_they_claim(real_files: dict[str, RealFile], oracle: dict[str, np.ndarray]) -> None:
    dropped = build_frame_index(real_files["dropped.avi"].path)
    assert dropped.container_frames > 3 * len(oracle["dropped.avi"])  # header counts the empty entries
    assert build_frame_index(real_files["rotated.mp4"].path).rotation in (90, 270)
    with av.open(str(real_files["trimmed.mp4"].path)) as container:  # packets the edit list hides
        assert sum(p.size > 0 for p in container.demux(video=0)) > len(oracle["trimmed.mp4"])
    timestamps = build_frame_index(real_files["vfr.mp4"].path).timestamps
    assert timestamps is not None and len({round(b - a, 3) for a, b in zip(timestamps, timestamps[1:])}) > 1
    for name, frames in oracle.items():
        assert len(frames) >= 8, name
        if real_files[name].expect == "prefix":
            frames = frames[: len(frames) // 2]  # ffmpeg's output of a damaged tail may repeat frames
        steps = np.abs(frames[1:].astype(int) - frames[:-1].astype(int)).reshape(len(frames) - 1, -1).max(axis=1)
        assert steps.min() > 10 * TOLERANCE, f"{name}: neighbouring frames too alike to tell apart"


def _assert_frames(video: torch.Tensor, expected: np.ndarray, indices: list[int], label: str) -> None:
    got = video.permute(0, 2, 3, 1).numpy().astype(int)
    assert got.shape == (len(indices), *expected.shape[1:]), label
    for k, i in enumerate(indices):
        diff = np.abs(got[k] - expected[i].astype(int)).max()
        assert diff <= TOLERANCE, f"{label}: frame {i} differs from ffmpeg's frame {i} by {diff}"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", NAMES)
def test_every_frame_is_ffmpegs_frame_or_the_file_is_refused(
    real_files: dict[str, RealFile], oracle: dict[str, np.ndarray], name: str, backend: str
) -> None:
    file = real_files[name]
    decoder = get_decoder(backend)
    path = str(file.path)
    if file.expect == "refuse":
        with pytest.raises(VideoDecodeError, match=re.escape(path) + r": (no video stream|not a readable video)"):
            decoder.probe(path)
        with pytest.raises(VideoDecodeError, match=re.escape(path)):
            decoder.decode(path, [0])
        return
    expected = oracle[name]
    info = decoder.probe(path)
    assert (info.width, info.height) == file.display_size
    if file.expect == "exact":
        assert info.num_frames == len(expected)
    else:  # truncated: the intact frames, never the damaged tail (which ffmpeg may still output)
        assert len(expected) // 2 <= info.num_frames <= len(expected)
    n = info.num_frames
    _assert_frames(decoder.decode(path, list(range(n)), info=info), expected, list(range(n)), f"{name}/{backend} all")
    shuffled = [n - 1, n // 2, 0, n // 2, 1]
    _assert_frames(decoder.decode(path, shuffled, info=info), expected, shuffled, f"{name}/{backend} shuffled")
    for i in (n // 3, 2 * n // 3, n - 1):  # single frames after a seek
        _assert_frames(decoder.decode(path, [i]), expected, [i], f"{name}/{backend} seek")
    with pytest.raises(VideoDecodeError, match=re.escape(path)):
        decoder.decode(path, [n], info=info)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", ["rotated.mp4", "cfr.mp4", "dropped.avi"])
def test_rescaled_frames_keep_display_orientation(real_files: dict[str, RealFile], name: str, backend: str) -> None:
    file = real_files[name]
    video = get_decoder(backend).decode(file.path, [0, 3], short_side=32)
    width, height = resized_size(*file.display_size, 32)
    assert tuple(video.shape) == (2, 3, height, width)


def test_decord_frames_are_used_only_when_its_numbering_matches(
    real_files: dict[str, RealFile], oracle: dict[str, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A decord reader whose frame timestamps disagree with the index is not trusted: PyAV decodes."""
    import decord  # noqa: PLC0415 - a hard dependency, patched here only
    calls: list[list[int]] = []
    original_batch = decord.VideoReader.get_batch
    original_timestamps = decord.VideoReader.get_frame_timestamp

    def recording_batch(self, indices):  # noqa: ANN001, ANN202
        calls.append(list(indices))
        return original_batch(self, indices)

    monkeypatch.setattr(decord.VideoReader, "get_batch", recording_batch)
    path, expected = str(real_files["cfr.mp4"].path), oracle["cfr.mp4"]
    decoder = get_decoder("decord")
    _assert_frames(decoder.decode(path, [7, 30]), expected, [7, 30], "trusted")
    assert calls == [[7, 30]]  # an intact, unrotated MP4: decord's own frames

    def shifted(self, indices):  # noqa: ANN001, ANN202 - as if decord's numbering ran 3 frames off
        times = original_timestamps(self, indices).copy()
        times[5:] += 3 / 15
        return times

    monkeypatch.setattr(decord.VideoReader, "get_frame_timestamp", shifted)
    calls.clear()
    _assert_frames(decoder.decode(path, [7, 30]), expected, [7, 30], "distrusted")
    assert calls == []  # decord's frames were never taken


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("size", ODD_SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_odd_frame_sizes_rescaled_are_ffmpegs_frames_rescaled(
    real_files: dict[str, RealFile], oracle: dict[str, np.ndarray], size: tuple[int, int], backend: str
) -> None:
    """Decode-time rescaling to every width (72 px among them) keeps the layout: the frames are
    ffmpeg's, rescaled. Scalers differ on testsrc2's sharp edges (swscale vs torchvision: up to 9.4
    levels mean at 40 px, measured), so the bound is on the mean; rows read with the wrong number of
    bytes per pixel shear the picture and miss it by far more."""
    import torchvision.transforms.v2.functional as TF  # noqa: PLC0415

    name = f"size_{size[0]}x{size[1]}.mp4"
    expected = torch.from_numpy(oracle[name].copy()).permute(0, 3, 1, 2)
    for short_side in (40, 48, 64):
        width, height = resized_size(*size, short_side)
        video = get_decoder(backend).decode(real_files[name].path, [0, 5, 19], short_side=short_side)
        assert tuple(video.shape) == (3, 3, height, width), f"{name}/{backend} at {short_side}"
        reference = TF.resize(expected[[0, 5, 19]], [height, width], antialias=True)
        mean = (video.float() - reference.float()).abs().mean().item()
        assert mean < 16, f"{name}/{backend} at short side {short_side}: mean difference {mean:.1f} from ffmpeg's frames"


def test_frames_unlike_the_probes_are_refused_naming_the_file(real_files: dict[str, RealFile]) -> None:
    """Any backend whose frames differ from the probe's (count, 3, H, W) is stopped at the decoder."""
    from lightning_multigrid.data.decoders import PyAVDecoder  # noqa: PLC0415

    class Transposed(PyAVDecoder):  # frames read with height and width swapped, as a buggy backend might
        def _decode(self, path, indices, short_side, info):  # noqa: ANN001, ANN202
            return super()._decode(path, indices, short_side, info).transpose(2, 3).contiguous()

    path = str(real_files["size_72x128.mp4"].path)
    with pytest.raises(VideoDecodeError, match=re.escape(path) + r": pyav returned frames of shape \(2, 3, 72, 128\).*\(2, 3, 128, 72\)"):
        Transposed().decode(path, [0, 1])
