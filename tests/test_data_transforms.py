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
    segment_indices,
    spatial_crop,
    uniform_clip_indices,
)

pytestmark = pytest.mark.usefixtures("single_torch_thread")


def _video(t: int = 4, h: int = 6, w: int = 10) -> torch.Tensor:
    # Pixel value encodes its column, so crops and flips can be read back.
    return torch.arange(w, dtype=torch.uint8).expand(t, 3, h, w).contiguous()


def test_clip_indices_follow_the_reference_window_rule() -> None:
    # Window of T*r frames, linspace over it, truncated (hand-computed):
    # start 10, 4 frames, stride 3 -> window [10, 21]: 10, 13.67, 17.33, 21.
    assert clip_indices(100, 4, 3, 10) == [10, 13, 17, 21]
    # Window [0, 7] in a 5-frame video: 0, 2.33, 4.67 -> 4, 7 -> 4 (clamped, keeps direction).
    assert clip_indices(5, 4, 2, 0) == [0, 2, 4, 4]
    assert clip_indices(30, 1, 8, 3) == [3]
    with pytest.raises(ValueError):
        clip_indices(0, 4, 1, 0)


def test_top_stride_covers_the_baseline_span_at_every_grid() -> None:
    """Spec section 4: at the top stride r0*T0//T a coarse clip spans exactly T0*r0 frames."""
    from lightning_multigrid.schedule.multigrid import MultigridSchedule
    from lightning_multigrid.schedule.recipe import BaseRecipe

    for t0, r0, steps, max_epochs in ((32, 2, [0, 94, 154, 196], 239), (8, 8, [0, 44, 88, 118], 128),
                                      (64, 2, [0, 14, 18], 22), (16, 4, [0, 14, 20], 24)):
        s = MultigridSchedule(BaseRecipe(steps=steps, max_epochs=max_epochs, num_frames=t0, crop_size=224,
                                         batch_size=64, sampling_rate=r0))
        for stage in s.stages:
            lo, hi = s.stride_range(stage.start_epoch)
            assert hi == r0 * (t0 // stage.num_frames)
            for start in (0, 17):
                idx = clip_indices(10_000, stage.num_frames, hi, start)
                assert idx[0] == start and idx[-1] - idx[0] + 1 == t0 * r0, (t0, stage)
                assert idx == sorted(idx) and len(idx) == stage.num_frames
            # The bottom stride covers T/T0 of it.
            idx = clip_indices(10_000, stage.num_frames, lo, 0)
            assert idx[-1] + 1 == stage.num_frames * r0


def test_random_clip_indices_honours_stride_range_and_bounds() -> None:
    torch.manual_seed(0)
    strides, starts = set(), set()
    for _ in range(400):
        indices, stride = random_clip_indices(64, 8, (2, 5))
        assert 2 <= stride <= 5
        # The window of 8*stride frames lies inside the video.
        assert indices[-1] - indices[0] + 1 == 8 * stride
        assert 0 <= indices[0] and indices[-1] <= 63
        strides.add(stride)
        starts.add((stride, indices[0]))
    assert strides == {2, 3, 4, 5}  # inclusive at both ends
    # Starts reach both ends: 0 and 64 - 8*2 = 48 for stride 2.
    assert (2, 0) in starts and (2, 48) in starts and not any(st > 64 - 8 * sr for sr, st in starts)


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
    # Centre window of 8 frames in 100: start (100-8)//2 = 46, window [46, 53].
    assert uniform_clip_indices(100, 4, 2, 0, 1) == [46, 48, 50, 53]
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
    # PySlowFast: linspace(0, 7, 2) = [0, 7], not every 4th frame [0, 4].
    assert slow[0, :, 0, 0].tolist() == [0.0, 7.0]
    slow16, _ = pack_pathways(torch.arange(16.0).view(1, 16, 1, 1), 4)
    assert slow16.flatten().tolist() == [0.0, 5.0, 10.0, 15.0]
    batched_slow, _ = pack_pathways(video.unsqueeze(0), 4)
    assert torch.equal(batched_slow[0], slow)
    with pytest.raises(ValueError, match="T=6"):
        pack_pathways(video[:, :6], 4)
