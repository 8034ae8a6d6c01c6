"""Temporal sampling and spatial transforms on uint8 (T, C, H, W) video."""

from __future__ import annotations

import pytest
import torch

from lightning_multigrid.data import (
    center_crop,
    clip_indices,
    normalize_video,
    pack_pathways,
    random_clip_indices,
    random_crop,
    random_horizontal_flip,
    random_short_side,
    resize_short_side,
    segment_indices,
    spatial_crop,
    uniform_clip_indices,
)

pytestmark = pytest.mark.usefixtures("single_torch_thread")


def _video(t: int = 4, h: int = 6, w: int = 10) -> torch.Tensor:
    # Pixel value encodes its column, so crops and flips can be read back.
    return torch.arange(w, dtype=torch.uint8).expand(t, 3, h, w).contiguous()


def test_clip_indices_clamp_when_video_is_short() -> None:
    assert clip_indices(100, 4, 3, 10) == [10, 13, 16, 19]
    assert clip_indices(5, 4, 2, 0) == [0, 2, 4, 4]  # repeats the last frame, keeps direction
    with pytest.raises(ValueError):
        clip_indices(0, 4, 1, 0)


def test_random_clip_indices_honours_stride_range_and_bounds() -> None:
    torch.manual_seed(0)
    strides, starts = set(), set()
    for _ in range(300):
        indices, stride = random_clip_indices(64, 8, (2, 5))
        assert 2 <= stride <= 5
        assert all(b - a == stride for a, b in zip(indices, indices[1:], strict=False))
        assert 0 <= indices[0] and indices[-1] <= 63
        strides.add(stride)
        starts.add(indices[0])
    assert strides == {2, 3, 4, 5}  # inclusive at both ends
    assert 0 in starts and 64 - (7 * 2 + 1) in starts


def test_random_sampling_is_deterministic_for_a_torch_seed() -> None:
    def draw() -> list:
        torch.manual_seed(123)
        return [random_clip_indices(50, 8, (1, 4)) for _ in range(5)] + [random_short_side((40, 60)) for _ in range(5)]

    assert draw() == draw()
    generator = torch.Generator().manual_seed(5)
    first = random_clip_indices(50, 8, (1, 4), generator=generator)
    generator.manual_seed(5)
    assert random_clip_indices(50, 8, (1, 4), generator=generator) == first


def test_uniform_clip_indices_spread_over_the_video() -> None:
    assert uniform_clip_indices(100, 4, 2, 0, 1) == [46, 48, 50, 52]  # centre
    assert uniform_clip_indices(100, 4, 2, 0, 3)[0] == 0
    assert uniform_clip_indices(100, 4, 2, 2, 3)[-1] == 99
    assert uniform_clip_indices(5, 4, 2, 1, 2) == [0, 2, 4, 4]
    with pytest.raises(ValueError):
        uniform_clip_indices(100, 4, 2, 3, 3)


def test_segment_indices_train_and_test() -> None:
    torch.manual_seed(0)
    for _ in range(50):
        indices = segment_indices(40, 8, train=True)
        assert [i // 5 for i in indices] == list(range(8))  # one frame inside each segment
    assert segment_indices(40, 8, train=False) == [2, 7, 12, 17, 22, 27, 32, 37]  # middles
    assert segment_indices(40, 4, train=False, clip_index=0, num_clips=2) == [2, 12, 22, 32]
    assert segment_indices(3, 6, train=False) == [0, 0, 1, 1, 2, 2]  # fewer frames than segments


def test_random_short_side_stays_in_range_and_prefers_even() -> None:
    torch.manual_seed(0)
    draws = {random_short_side((48, 60)) for _ in range(300)}
    assert draws == set(range(48, 61, 2))
    assert {random_short_side((49, 51)) for _ in range(50)} == {50}
    assert random_short_side((21, 21)) == 21
    assert {random_short_side((21, 24), even=False) for _ in range(100)} == {21, 22, 23, 24}


def test_resize_short_side() -> None:
    video = torch.zeros(2, 3, 48, 64, dtype=torch.uint8)
    assert resize_short_side(video, 42).shape == (2, 3, 42, 56)
    assert resize_short_side(video.transpose(-1, -2), 24).shape == (2, 3, 32, 24)
    assert resize_short_side(video, 48) is video


def test_random_and_centre_crop() -> None:
    video = _video()
    torch.manual_seed(0)
    lefts = set()
    for _ in range(100):
        crop = random_crop(video, 6)
        assert crop.shape == (4, 3, 6, 6)
        lefts.add(int(crop[0, 0, 0, 0]))
        assert torch.equal(crop[0], crop[-1])  # same window for all frames
    assert lefts == set(range(5))
    assert int(center_crop(video, 6)[0, 0, 0, 0]) == 2
    with pytest.raises(ValueError, match="does not fit"):
        random_crop(video, 7)


def test_three_crops_along_the_long_side() -> None:
    video = _video()  # landscape 6x10
    assert [int(spatial_crop(video, 6, i, 3)[0, 0, 0, 0]) for i in range(3)] == [0, 2, 4]
    portrait = torch.arange(10, dtype=torch.uint8).view(1, 1, 10, 1).expand(1, 3, 10, 6)
    assert [int(spatial_crop(portrait, 6, i, 3)[0, 0, 0, 0]) for i in range(3)] == [0, 2, 4]
    assert int(spatial_crop(video, 6, 0, 1)[0, 0, 0, 0]) == 2
    with pytest.raises(ValueError, match="1 or 3"):
        spatial_crop(video, 6, 0, 2)


def test_horizontal_flip() -> None:
    video = _video()
    assert torch.equal(random_horizontal_flip(video, p=1.0), video.flip(-1))
    assert random_horizontal_flip(video, p=0.0) is video
    torch.manual_seed(0)
    flipped = sum(int(random_horizontal_flip(video)[0, 0, 0, 0]) == 9 for _ in range(200))
    assert 60 < flipped < 140


def test_normalize_video_layout_and_values() -> None:
    video = torch.full((4, 3, 2, 2), 255, dtype=torch.uint8)
    video[:, 1] = 0
    out = normalize_video(video)
    assert out.shape == (3, 4, 2, 2) and out.dtype == torch.float32
    assert torch.allclose(out[0], torch.tensor((1 - 0.45) / 0.225))
    assert torch.allclose(out[1], torch.tensor(-0.45 / 0.225))
    out = normalize_video(video, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    assert out.max() == 1.0 and out.min() == 0.0
    with pytest.raises(TypeError, match="uint8"):
        normalize_video(video.float())


def test_pack_pathways() -> None:
    video = torch.arange(8, dtype=torch.float32).view(1, 8, 1, 1).expand(3, 8, 2, 2)
    slow, fast = pack_pathways(video, 4)
    assert fast.shape == (3, 8, 2, 2) and slow.shape == (3, 2, 2, 2)
    assert slow[0, :, 0, 0].tolist() == [0.0, 4.0]
    with pytest.raises(ValueError, match="T=6"):
        pack_pathways(video[:, :6], 4)
