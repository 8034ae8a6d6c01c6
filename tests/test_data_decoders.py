"""Decoding backends: probing, exact frames, decode-time resize, agreement, errors."""

from __future__ import annotations

import builtins
import pickle
from pathlib import Path

import decord
import numpy as np
import pytest
import torch

from lightning_multigrid.data import (
    DecoderUnavailableError,
    VideoDecodeError,
    VideoDecoder,
    VideoInfo,
    available_decoders,
    decoder_names,
    get_decoder,
    resized_size,
)
from lightning_multigrid.data.synthetic import CLASS_NAMES, _write_mp4, render_video

pytestmark = pytest.mark.usefixtures("single_torch_thread")

AVAILABLE = available_decoders()


def _video(root: Path) -> Path:
    return root / "videos" / "move_right" / "move_right_0000.mp4"


@pytest.fixture(scope="module")
def seek_video(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    """A 90-frame 96x64 video with a keyframe every 16 frames (decoders must seek), and its frames."""
    # Rotation: every frame differs clearly from its neighbours, so an off-by-one shows.
    frames = render_video(CLASS_NAMES.index("rotate_cw"), 96, 64, 90, np.random.default_rng(7))
    path = tmp_path_factory.mktemp("seek") / "seek.mp4"
    _write_mp4(path, frames, fps=25)
    return path, frames


def test_registry_names_and_errors() -> None:
    assert decoder_names() == ["decord", "torchcodec", "pyav"]
    # torchcodec is in the dev extra (make test installs it), so the ffmpeg-oracle tests run it too.
    assert {"decord", "torchcodec", "pyav"} <= set(AVAILABLE)
    with pytest.raises(ValueError, match="unknown backend 'nope'.*decord"):
        get_decoder("nope")


@pytest.mark.parametrize(
    ("failure", "message"),
    [(ImportError("No module named 'torchcodec'"), "pip install"), (OSError("libavutil.so.60: cannot open"), "FFmpeg")],
)
def test_torchcodec_unavailable_is_reported_clearly(
    monkeypatch: pytest.MonkeyPatch, failure: Exception, message: str
) -> None:
    """Not installed, or installed without the FFmpeg libraries it loads: one clear error each."""
    real_import = builtins.__import__

    def failing_import(name: str, *args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        if name.startswith("torchcodec"):
            raise failure
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", failing_import)
    with pytest.raises(DecoderUnavailableError, match=f"torchcodec.*{message}"):
        get_decoder("torchcodec")
    assert "torchcodec" not in available_decoders()


@pytest.mark.parametrize("name", AVAILABLE)
def test_probe_and_decode_exact_frames(name: str, synthetic_root: Path) -> None:
    decoder = get_decoder(name)
    assert isinstance(decoder, VideoDecoder)
    pickle.loads(pickle.dumps(decoder))  # decoders travel to loader workers
    path = _video(synthetic_root)
    info = decoder.probe(path)
    assert info == VideoInfo(num_frames=32, width=64, height=48, fps=15.0)
    indices = [31, 0, 5, 5, 17]  # any order, repeats allowed
    video = decoder.decode(path, indices, info=info)
    assert video.dtype == torch.uint8 and video.shape == (5, 3, 48, 64) and video.is_contiguous()
    assert torch.equal(video[2], video[3])
    assert not torch.equal(video[0], video[1])


@pytest.mark.parametrize("name", AVAILABLE)
def test_decoded_frames_match_rendered_frames_after_seeking(name: str, seek_video: tuple[Path, np.ndarray]) -> None:
    """Frame k decodes to rendered frame k (no off-by-one), also far after a seek."""
    path, rendered = seek_video
    indices = [0, 40, 41, 77, 89]
    video = get_decoder(name).decode(path, indices).permute(0, 2, 3, 1).float()
    reference = torch.from_numpy(rendered).float()
    for row, k in enumerate(indices):
        errors = (reference - video[row]).abs().mean(dim=(1, 2, 3))
        assert int(errors.argmin()) == k, f"{name}: decoded frame {k} looks like frame {int(errors.argmin())}"
        assert errors[k] < 3.0


def test_backends_agree_exactly_at_source_size(synthetic_root: Path, seek_video: tuple[Path, np.ndarray]) -> None:
    for path, indices in ((_video(synthetic_root), [0, 3, 30, 12]), (seek_video[0], [50, 51, 70, 3, 89, 50])):
        outputs = {name: get_decoder(name).decode(path, indices) for name in AVAILABLE}
        first = outputs[AVAILABLE[0]]
        for name, video in outputs.items():
            assert torch.equal(video, first), f"{name} differs from {AVAILABLE[0]} on {path.name}"


@pytest.mark.parametrize("short_side", [32, 40, 80])
def test_decode_time_resize_shape_and_agreement(seek_video: tuple[Path, np.ndarray], short_side: int) -> None:
    """Shrinking (decord/pyav scale while decoding) and enlarging give the same size in every backend.

    32 maps to a 48-px width, which decord 0.6 cannot scale to; it must fall back transparently.
    """
    path = seek_video[0]
    expected = resized_size(96, 64, short_side)
    reference = get_decoder("pyav").decode(path, [0, 45], short_side=None)
    reference = torch.nn.functional.interpolate(
        reference.float(), size=(expected[1], expected[0]), mode="bilinear", antialias=True
    )
    for name in AVAILABLE:
        for at_decode in (True, False):
            video = get_decoder(name, decode_time_resize=at_decode).decode(path, [0, 45], short_side=short_side)
            assert video.shape == (2, 3, expected[1], expected[0]), (name, at_decode)
            # Scalers differ in filter details only: close to a plain resize of the full frame.
            error = (video.float() - reference).abs().mean()
            assert error < (1.0 if not at_decode else 4.0), (name, at_decode)  # 1.0: uint8 rounding


def test_resized_size_rules() -> None:
    assert resized_size(64, 48, 42) == (56, 42)
    assert resized_size(64, 48, 21) == (30, 22)  # odd short side rounds up to even
    assert resized_size(48, 64, 30) == (30, 40)  # portrait
    assert resized_size(320, 240, 240) == (320, 240)
    for width, height in ((64, 48), (171, 128), (320, 240), (100, 100)):
        for short in range(16, 200, 7):
            w, h = resized_size(width, height, short)
            assert w % 2 == 0 and h % 2 == 0
            assert min(w, h) in (short, short + 1)
            assert abs(w / h - width / height) < 0.1
    with pytest.raises(ValueError):
        resized_size(64, 48, 0)


@pytest.mark.parametrize("name", AVAILABLE)
@pytest.mark.parametrize("kind", ["empty", "truncated", "truncated_data", "text", "missing"])
def test_broken_files_raise_video_decode_error(name: str, kind: str, broken_videos: dict[str, Path]) -> None:
    decoder = get_decoder(name)
    with pytest.raises(VideoDecodeError, match=broken_videos[kind].name):
        info = decoder.probe(broken_videos[kind])
        decoder.decode(broken_videos[kind], list(range(0, 32, 4)), info=info)


@pytest.mark.parametrize("name", AVAILABLE)
def test_out_of_range_frames_raise(name: str, synthetic_root: Path) -> None:
    decoder = get_decoder(name)
    with pytest.raises(VideoDecodeError, match="32"):
        decoder.decode(_video(synthetic_root), [0, 32])
    with pytest.raises(VideoDecodeError):
        decoder.decode(_video(synthetic_root), [-1])


def test_decord_ignores_global_bridge_state(synthetic_root: Path) -> None:
    """pytorchvideo sets decord's bridge to torch globally; results must not depend on it."""
    decoder = get_decoder("decord")
    plain = decoder.decode(_video(synthetic_root), [1, 2])
    decord.bridge.set_bridge("torch")
    try:
        bridged = decoder.decode(_video(synthetic_root), [1, 2])
    finally:
        decord.bridge.set_bridge("native")
    assert torch.equal(plain, bridged)
