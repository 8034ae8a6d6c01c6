"""Clip datasets: every format, (index, shape) keys, SlowFast, multi-view, sampling ranges, bad files."""

from __future__ import annotations

import json
import logging
import os
import pickle
import typing
from pathlib import Path

import pytest
import torch

from lightning_multigrid.data import (
    CharadesDataset,
    CsvVideoDataset,
    FolderVideoDataset,
    SplitFileDataset,
    SSv2Dataset,
    VideoClipDataset,
    VideoRecord,
    available_decoders,
    build_dataset,
    get_decoder,
)
from lightning_multigrid.data.failures import SKIPPED_VIDEOS_FILE, report_skipped_videos
from lightning_multigrid.sampling.keys import ClipKey, accepts_clip_keys
from lightning_multigrid.schedule.recipe import ClipShape

pytestmark = pytest.mark.usefixtures("single_torch_thread")

AVAILABLE = available_decoders()
# The synthetic videos are 64x48: S0 = 48 * 224/256 = 42, jitter (48, 60), T0 = 8 at stride 4.
BASE = ClipShape(8, 42, (4, 4), (48, 60))


class RecordingDecoder:
    """Wraps a real decoder and records every decode call's indices and short side."""

    name = "recording"

    def __init__(self, inner: str = "decord") -> None:
        self.inner = get_decoder(inner)
        self.calls: list[tuple[list[int], int | None]] = []

    def probe(self, path):  # noqa: ANN001, ANN201
        return self.inner.probe(path)

    def decode(self, path, frame_indices, short_side=None, info=None):  # noqa: ANN001, ANN201
        self.calls.append((list(frame_indices), short_side))
        return self.inner.decode(path, frame_indices, short_side, info)


def _csv(root: Path, split: str = "train", **options) -> CsvVideoDataset:  # noqa: ANN003
    return CsvVideoDataset(root, f"{split}.csv", BASE, split, **options)


# --------------------------------------------------------------------------------------------
# Shapes and keys
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("decoder", AVAILABLE)
def test_csv_items_have_the_key_shape(synthetic_root: Path, decoder: str) -> None:
    dataset = _csv(synthetic_root, decoder=decoder)
    assert accepts_clip_keys(dataset) and dataset.base_shape == BASE
    assert len(dataset) == 8 and dataset.num_classes == 4
    assert dataset.classes == ["move_left", "move_right", "grow", "shrink"]
    item = dataset[3]
    assert item["video"].shape == (3, 8, 42, 42) and item["video"].dtype == torch.uint8
    assert item["label"].dtype == torch.int64 and item["label"].shape == ()
    assert item["label"].item() == int(dataset.records[3].label) and item["index"] == 3
    for key, expected in [
        (ClipKey(1, ClipShape(16, 30, (1, 2), (34, 60))), (3, 16, 30, 30)),
        (ClipKey(5, ClipShape(2, 21, (4, 16), (24, 60))), (3, 2, 21, 21)),
        ((7, ClipShape(32, 42, (1, 1), (48, 60))), (3, 32, 42, 42)),
        (torch.tensor(2), (3, 8, 42, 42)),
    ]:
        assert dataset[key]["video"].shape == expected, key
    with pytest.raises(TypeError, match="ClipShape"):
        dataset[(1, 2)]
    with pytest.raises(IndexError):
        dataset[8]


def test_slowfast_pathways_and_divisibility(synthetic_root: Path) -> None:
    dataset = _csv(synthetic_root, slowfast_alpha=4, normalize=True)  # packed in the worker
    slow, fast = dataset[0]["video"]
    assert fast.shape == (3, 8, 42, 42) and slow.shape == (3, 2, 42, 42)
    # PySlowFast's slow pathway: linspace(0, 7, 2) -> frames 0 and 7 of the fast clip.
    assert torch.equal(slow, fast[:, [0, 7]])
    slow, fast = dataset[ClipKey(1, ClipShape(16, 30, (1, 2), (34, 60)))]["video"]
    assert fast.shape == (3, 16, 30, 30) and slow.shape == (3, 4, 30, 30)
    with pytest.raises(ValueError, match=r"divisible by slowfast_alpha=4.*T=6"):
        dataset[ClipKey(0, ClipShape(6, 30))]
    with pytest.raises(ValueError, match="slowfast_alpha=3"):
        _csv(synthetic_root, slowfast_alpha=3)


def test_test_mode_multi_view(synthetic_root: Path) -> None:
    dataset = _csv(synthetic_root, "test", test_num_clips=2, test_num_crops=3, slowfast_alpha=2, normalize=True)
    assert len(dataset) == 4 * 6
    # At the base stride 4 an 8-frame window is 32 frames, the whole video, so both test clips would
    # coincide (reference window rule); at stride 2 the windows are [0, 16) and [16, 32).
    shape = ClipShape(8, 42, (2, 2))
    views = [dataset[ClipKey(i, shape)] for i in range(6, 12)]  # all views of the second video
    assert {v["video_index"] for v in views} == {1} and [v["view_index"] for v in views] == list(range(6))
    assert all(v["index"] == 6 + k for k, v in enumerate(views))
    for v in views:
        slow, fast = v["video"]
        assert fast.shape == (3, 8, 42, 42) and slow.shape == (3, 4, 42, 42)
    fast = [v["video"][1] for v in views]
    # The 56x42 frame gives three different 42x42 crops; the two clips differ in time.
    assert not torch.equal(fast[0], fast[1]) and not torch.equal(fast[1], fast[2])
    assert not torch.equal(fast[0], fast[3])
    # Evaluation is deterministic.
    assert torch.equal(dataset[ClipKey(7, shape)]["video"][1], fast[1])


def test_val_mode_is_one_deterministic_centre_view(synthetic_root: Path) -> None:
    dataset = _csv(synthetic_root, "val", test_num_clips=5, test_num_crops=3)
    assert len(dataset) == 4 and dataset.num_views == 1
    first, second = dataset[2], dataset[2]
    assert torch.equal(first["video"], second["video"])
    assert first["video_index"] == 2 and first["view_index"] == 0


def test_training_is_deterministic_for_a_torch_seed(synthetic_root: Path) -> None:
    dataset = _csv(synthetic_root)
    torch.manual_seed(3)
    a = dataset[1]["video"]
    torch.manual_seed(3)
    b = dataset[1]["video"]
    c = dataset[1]["video"]
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_stride_and_jitter_ranges_are_honoured(synthetic_root: Path) -> None:
    recorder = RecordingDecoder()
    dataset = _csv(synthetic_root, decoder=recorder)
    shape = ClipShape(8, 30, (1, 4), (34, 44))
    torch.manual_seed(0)
    for i in range(60):
        assert dataset[ClipKey(i % len(dataset), shape)]["video"].shape == (3, 8, 30, 30)
    strides = set()
    for indices, short_side in recorder.calls:
        # A window of 8 * stride frames (32-frame videos fit it at stride <= 4: no clamping).
        window = indices[-1] - indices[0] + 1
        assert window % 8 == 0 and indices == sorted(indices)
        strides.add(window // 8)
        assert 34 <= short_side <= 44
    assert strides == {1, 2, 3, 4}
    assert {s for _, s in recorder.calls} == {34, 36, 38, 40, 42, 44}
    # Evaluation: the base stride and the crop as short side.
    recorder.calls.clear()
    _csv(synthetic_root, "test", decoder=recorder)[0]
    indices, short_side = recorder.calls[0]
    # Base stride 4: the 32-frame window linspace(0, 31, 8), truncated (hand-computed).
    assert indices == [0, 4, 8, 13, 17, 22, 26, 31] and short_side == 42


def test_random_flip_option(synthetic_root: Path) -> None:
    flipping = _csv(synthetic_root, random_flip=True, decoder="pyav")
    plain = _csv(synthetic_root, random_flip=False, decoder="pyav")
    shape = ClipShape(4, 42, (1, 1), (48, 48))  # 64x48 frame: only the crop position is random
    seen_flip = False
    for seed in range(12):
        torch.manual_seed(seed)
        a = flipping[ClipKey(0, shape)]["video"]
        torch.manual_seed(seed)
        b = plain[ClipKey(0, shape)]["video"]
        seen_flip |= not torch.equal(a, b)
    assert seen_flip


# --------------------------------------------------------------------------------------------
# Formats
# --------------------------------------------------------------------------------------------
def test_csv_parsing_variants(synthetic_root: Path, tmp_path: Path) -> None:
    video = next((synthetic_root / "videos").rglob("*.mp4"))
    lines = ["path,label", f"{video},3", "", "# comment", f"{video} 1"]
    (tmp_path / "list.csv").write_text("\n".join(lines) + "\n")
    dataset = CsvVideoDataset(tmp_path, "list.csv", BASE, "val", check_files=True)
    assert [r.label for r in dataset.records] == [3, 1] and dataset.num_classes == 4
    (tmp_path / "bad.csv").write_text(f"{video} 1\n{video} one\n")
    with pytest.raises(ValueError, match=r"bad.csv:2: label 'one'"):
        CsvVideoDataset(tmp_path, "bad.csv", BASE)
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        CsvVideoDataset(tmp_path, "nope.csv", BASE)


def test_csv_label_is_the_last_field_and_paths_may_hold_commas(synthetic_root: Path, tmp_path: Path) -> None:
    source = next((synthetic_root / "videos").rglob("*.mp4"))
    (tmp_path / "videos").mkdir()
    names = ["ride, fast.mp4", "two words.mp4", 'a "quoted", name.mp4', "plain.mp4"]
    for name in names:
        (tmp_path / "videos" / name).write_bytes(source.read_bytes())
    lines = [
        "videos/ride, fast.mp4 0",  # line 1: a comma in the path, not a header
        "videos/two words.mp4\t1",
        '"videos/a ""quoted"", name.mp4",2',
        "videos/plain.mp4 , 3",
    ]
    (tmp_path / "list.csv").write_text("\n".join(lines) + "\n")
    dataset = CsvVideoDataset(tmp_path, "list.csv", BASE, "val")
    assert [(Path(r.path).name, r.label) for r in dataset.records] == list(zip(names, [0, 1, 2, 3]))
    (tmp_path / "header.csv").write_text("file name, class id\n" + "\n".join(lines) + "\n")
    assert len(CsvVideoDataset(tmp_path, "header.csv", BASE).records) == 4
    (tmp_path / "late.csv").write_text(lines[0] + "\nvideos/plain.mp4, three\n")
    with pytest.raises(ValueError, match=r"late.csv:2: label 'three' is not an integer \(the label is the last"):
        CsvVideoDataset(tmp_path, "late.csv", BASE)
    (tmp_path / "nolabel.csv").write_text(lines[0] + "\n\n# note\nvideos/plain.mp4\n")
    with pytest.raises(ValueError, match=r"nolabel.csv:4: expected 'path label'"):
        CsvVideoDataset(tmp_path, "nolabel.csv", BASE)
    (tmp_path / "quote.csv").write_text('"videos/plain.mp4 3\n')
    with pytest.raises(ValueError, match=r"quote.csv:1: unterminated quoted path"):
        CsvVideoDataset(tmp_path, "quote.csv", BASE)


def test_folder_format(synthetic_root: Path) -> None:
    dataset = FolderVideoDataset(synthetic_root, "videos", BASE, "train")
    assert dataset.classes == sorted(["move_left", "move_right", "grow", "shrink"])
    assert len(dataset) == 16 and dataset.num_classes == 4
    for record in dataset.records:
        assert Path(record.path).parent.name == dataset.classes[record.label]
    assert dataset[ClipKey(5, ClipShape(4, 30, (1, 2), (34, 60)))]["video"].shape == (3, 4, 30, 30)
    built = build_dataset("folder", synthetic_root, "videos", "test", BASE, classes=dataset.classes, test_num_crops=3)
    assert len(built) == 48


@pytest.fixture()
def ssv2_root(synthetic_root: Path, tmp_path: Path) -> Path:
    """An SSv2-style layout: <id>.mp4 links plus labels/train JSON, two templates."""
    templates = ["Moving [something] from left to right", "Moving [something] from right to left"]
    labels = {t.replace("[", "").replace("]", ""): str(i) for i, t in enumerate(templates)}
    (tmp_path / "labels.json").write_text(json.dumps(labels))
    entries = []
    for k, name in enumerate(["move_right", "move_left"]):
        for path in sorted((synthetic_root / "videos" / name).glob("*.mp4"))[:2]:
            video_id = str(1000 + len(entries))
            os.symlink(path, tmp_path / f"{video_id}.mp4")
            entries.append({"id": video_id, "label": "x", "template": templates[k], "placeholders": ["x"]})
    entries.append({"id": "9999", "template": templates[0]})  # listed but absent on disk
    (tmp_path / "train.json").write_text(json.dumps(entries))
    return tmp_path


def test_ssv2_format_and_segment_sampling(ssv2_root: Path, caplog: pytest.LogCaptureFixture) -> None:
    recorder = RecordingDecoder()
    with caplog.at_level(logging.WARNING):
        dataset = build_dataset("ssv2", ssv2_root, "train.json", "train", BASE, decoder=recorder)
    assert "1 of 5 listed videos are missing" in caplog.text and "9999" in caplog.text
    assert len(dataset) == 4 and dataset.num_classes == 2
    assert [r.label for r in dataset.records] == [0, 0, 1, 1]
    assert dataset.sampling == "segment" and dataset.random_flip is False
    torch.manual_seed(0)
    for i in range(4):
        assert dataset[i]["video"].shape == (3, 8, 42, 42)
    for indices, _ in recorder.calls:
        assert [i // 4 for i in indices] == list(range(8))  # one frame per 4-frame segment
    recorder.calls.clear()
    test = SSv2Dataset(ssv2_root, "train.json", BASE, "test", labels_file="labels.json", decoder=recorder)
    test[0]
    assert recorder.calls[0][0] == [2, 6, 10, 14, 18, 22, 26, 30]  # segment middles
    (ssv2_root / "unlabelled.json").write_text(json.dumps([{"id": "1000"}]))
    with pytest.raises(ValueError, match="no 'template'"):
        SSv2Dataset(ssv2_root, "unlabelled.json", BASE, "test")


def test_charades_multi_label(synthetic_root: Path, tmp_path: Path) -> None:
    videos = sorted((synthetic_root / "videos").rglob("*.mp4"))[:3]
    for k, path in enumerate(videos):
        os.symlink(path, tmp_path / f"VID{k}.mp4")
    (tmp_path / "train.csv").write_text(
        "id,subject,scene,actions,length\n"
        'VID0,s,kitchen,"c092 11.90 21.20;c147 0.00 12.60",30\n'
        "VID1,s,hall,c003 0.00 5.00,30\n"
        "VID2,s,hall,,30\n"
    )
    dataset = build_dataset("charades", tmp_path, "train.csv", "train", BASE, num_classes=157, slowfast_alpha=4)
    assert isinstance(dataset, CharadesDataset) and dataset.multi_label
    target = dataset[0]["label"]
    assert target.dtype == torch.float32 and target.shape == (157,)
    assert target.nonzero().flatten().tolist() == [92, 147]
    assert dataset[1]["label"].nonzero().flatten().tolist() == [3]
    assert dataset[2]["label"].sum() == 0
    slow, fast = dataset.finish(dataset[ClipKey(0, ClipShape(16, 30, (1, 2), (34, 60)))]["video"])
    assert fast.shape == (3, 16, 30, 30) and slow.shape == (3, 4, 30, 30)
    with pytest.raises(ValueError, match="outside"):
        build_dataset("charades", tmp_path, "train.csv", "train", BASE, num_classes=100)


@pytest.mark.parametrize(("format", "empty"), [("csv", "# only a comment\n"), ("ssv2", "[]"), ("charades", "id,actions\n")])
def test_split_file_formats_share_one_constructor(tmp_path: Path, format: str, empty: str) -> None:
    """Every one-file format names a missing split file and refuses a split that lists no video."""
    (tmp_path / "labels.json").write_text(json.dumps({"a": "0"}))
    with pytest.raises(FileNotFoundError, match=f"split file {tmp_path / 'absent.txt'} does not exist"):
        build_dataset(format, tmp_path, "absent.txt", "train", BASE)  # type: ignore[arg-type]
    (tmp_path / "empty.txt").write_text(empty)
    with pytest.raises(ValueError, match=f"{tmp_path / 'empty.txt'}: no videos listed"):
        build_dataset(format, tmp_path, "empty.txt", "train", BASE)  # type: ignore[arg-type]


def test_a_new_split_file_format_only_parses(synthetic_root: Path, tmp_path: Path) -> None:
    """A user's format subclasses SplitFileDataset, writes read_split, and gets missing-file handling."""
    videos = sorted((synthetic_root / "videos").rglob("*.mp4"))[:2]

    class TsvDataset(SplitFileDataset):
        def read_split(self, root: Path, split_path: Path, options: dict) -> list[VideoRecord]:
            options.setdefault("num_classes", 3)
            return [VideoRecord(str(root / name), int(label))
                    for name, label in (line.split("\t") for line in split_path.read_text().splitlines())]

    (tmp_path / "list.tsv").write_text(f"{videos[0]}\t2\n{videos[1]}\t1\nmissing.mp4\t0\n")
    dataset = TsvDataset(tmp_path, "list.tsv", BASE, "val")
    assert [r.label for r in dataset.records] == [2, 1] and dataset.num_classes == 3
    assert dataset[0]["video"].shape == (3, 8, 42, 42)
    with pytest.raises(TypeError):
        TsvDataset(tmp_path, "list.tsv", BASE, "val", False)  # type: ignore[misc]  # check_files is keyword-only


# --------------------------------------------------------------------------------------------
# Robustness
# --------------------------------------------------------------------------------------------
def _good_and_broken(synthetic_root: Path, broken: dict[str, Path]) -> tuple[list[VideoRecord], list[int]]:
    """16 good videos (label 0) with the 4 broken files (label 1) at odd positions 1, 3, 5, 7.

    With 20 records a replacement step of 7919 is -1 (mod 20): a broken item's replacement is
    the good video just before it. Returns the records and the broken positions.
    """
    good = [VideoRecord(str(p), 0) for p in sorted((synthetic_root / "videos").rglob("*.mp4"))]
    bad = [VideoRecord(str(p), 1) for name, p in broken.items() if name != "missing"]
    records = list(good)
    positions = [1, 3, 5, 7]
    for position, record in zip(positions, bad, strict=True):
        records.insert(position, record)
    return records, positions


@pytest.mark.parametrize("decoder", AVAILABLE)
def test_bad_files_are_replaced_at_the_same_shape(
    synthetic_root: Path, broken_videos: dict[str, Path], decoder: str, caplog: pytest.LogCaptureFixture
) -> None:
    records, bad_positions = _good_and_broken(synthetic_root, broken_videos)
    dataset = VideoClipDataset(records, BASE, "train", decoder=decoder, max_failure_rate=0.6)
    shape = ClipShape(4, 30, (1, 2), (34, 60))
    with caplog.at_level(logging.WARNING):
        for _ in range(2):  # the second round must not warn again
            for i in bad_positions:
                item = dataset[ClipKey(i, shape)]
                assert item["video"].shape == (3, 4, 30, 30)
                assert item["label"].item() == 0  # a good video replaced it
                assert item["index"] == i - 1
    warnings = [r.getMessage() for r in caplog.records if "unreadable video" in r.getMessage()]
    assert len(warnings) == 4
    for name in ("empty", "truncated", "truncated_data", "text"):
        assert sum(str(broken_videos[name]) in message for message in warnings) == 1
    assert sorted(dataset.skipped_videos.entries()) == sorted(records[i].path for i in bad_positions)


def test_failure_rate_counts_distinct_videos_over_all_workers(synthetic_root: Path, broken_videos: dict[str, Path]) -> None:
    records, bad_positions = _good_and_broken(synthetic_root, broken_videos)  # 16 good + 4 bad videos
    dataset = VideoClipDataset(records, BASE, "train", max_failure_rate=0.1, min_failures=3)
    shape = ClipShape(2, 21, (1, 1), (24, 24))
    for _ in range(5):  # one bad video read again and again (a multi-view test, many epochs) counts once
        dataset[ClipKey(bad_positions[0], shape)]
    # Loader workers are copies of the dataset (pickled, re-made every epoch); they share the count.
    worker = pickle.loads(pickle.dumps(dataset))
    worker[ClipKey(bad_positions[1], shape)]  # 2 of 20 videos: below min_failures=3 (and 10% is not > 10%)
    other_worker = pickle.loads(pickle.dumps(dataset))
    with pytest.raises(RuntimeError, match=r"3 of 20 videos could not be decoded \(15% > max_failure_rate=0.1\)"):
        other_worker[ClipKey(bad_positions[2], shape)]
    assert len(dataset.skipped_videos) == 3


def test_half_bad_list_stops_with_two_workers(synthetic_root: Path, broken_videos: dict[str, Path]) -> None:
    records, bad_positions = _good_and_broken(synthetic_root, broken_videos)
    records = [r for i, r in enumerate(records) if i in bad_positions or i % 4 == 0][:8]  # 4 good, 4 bad
    dataset = VideoClipDataset(records, BASE, "train", max_failure_rate=0.1, max_retries=0)
    with pytest.raises(RuntimeError, match=r"3 of 8 videos could not be decoded"):
        for _epoch in range(3):
            workers = [pickle.loads(pickle.dumps(dataset)) for _ in range(2)]
            for i in range(len(records)):  # each worker loads every other item
                try:
                    workers[i % 2][i]
                except RuntimeError as exc:
                    if "all failed to load" not in str(exc):
                        raise


def test_skipped_videos_are_logged_once_per_run_and_saved(
    synthetic_root: Path, broken_videos: dict[str, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    records, bad_positions = _good_and_broken(synthetic_root, broken_videos)
    run_dir = tmp_path / "run"
    dataset = VideoClipDataset(records, BASE, "train", max_failure_rate=0.5, skipped_dir=run_dir / "skipped", source="list")
    with caplog.at_level(logging.WARNING):
        for _epoch in range(3):  # non-persistent workers: a fresh copy every epoch
            worker = pickle.loads(pickle.dumps(dataset))
            worker[bad_positions[0]]
    assert sum("unreadable video" in r.getMessage() for r in caplog.records) == 1
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        report = report_skipped_videos([dataset], run_dir / "checkpoints", stage="epoch 2")
    assert report == run_dir / "checkpoints" / SKIPPED_VIDEOS_FILE
    assert json.loads(report.read_text()) == {"list": dataset.skipped_videos.entries()}
    assert list(dataset.skipped_videos.entries()) == [records[bad_positions[0]].path]
    assert "[epoch 2] train split (list): 1 new unreadable video(s), 1 in all" in caplog.text


def test_multi_view_test_never_drops_or_duplicates_a_video(synthetic_root: Path, broken_videos: dict[str, Path]) -> None:
    records, bad_positions = _good_and_broken(synthetic_root, broken_videos)
    records = records[:-4] + [records[bad_positions[0]]]  # bad files in the middle and last
    dataset = VideoClipDataset(
        records, BASE, "test", test_num_clips=2, test_num_crops=3, max_failure_rate=0.3, slowfast_alpha=4,
        normalize=True,  # placeholders are finished like decoded clips
    )
    bad = {i for i, r in enumerate(records) if "broken" in r.path}
    items = [dataset[i] for i in range(len(dataset))]
    assert [item["video_index"] for item in items] == [v for v in range(len(records)) for _ in range(6)]
    assert [item["view_index"] for item in items] == list(range(6)) * len(records)
    assert {item["video_index"] for item in items if item["failed"]} == bad
    for item in items:
        assert [p.shape for p in item["video"]] == [(3, 2, 42, 42), (3, 8, 42, 42)]
        assert item["label"].item() == records[item["video_index"]].label
    assert len(dataset.skipped_videos) == len({records[i].path for i in bad})


def test_all_attempts_failing_raises_clearly(broken_videos: dict[str, Path]) -> None:
    records = [VideoRecord(str(p), 0) for p in broken_videos.values()]
    dataset = VideoClipDataset(records, BASE, "train", max_failure_rate=1.0, max_retries=2, source="mylist")
    with pytest.raises(RuntimeError, match="mylist: item 0 and 2 replacement videos all failed"):
        dataset[0]


def test_missing_files_reported_once_at_setup(
    synthetic_root: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    lines = (synthetic_root / "train.csv").read_text().splitlines()
    missing = [f"videos/gone/clip_{k}.mp4 0" for k in range(7)]
    (tmp_path / "list.csv").write_text("\n".join(lines + missing) + "\n")
    with caplog.at_level(logging.WARNING):
        dataset = CsvVideoDataset(synthetic_root, tmp_path / "list.csv", BASE)
    assert len(dataset) == len(lines)
    reports = [r.getMessage() for r in caplog.records]
    assert len(reports) == 1 and "7 of 15 listed videos are missing" in reports[0]
    assert "clip_0.mp4" in reports[0] and "clip_4.mp4" in reports[0] and "clip_6.mp4" not in reports[0]
    (tmp_path / "none.csv").write_text("\n".join(missing) + "\n")
    with pytest.raises(FileNotFoundError, match="none of the 7 listed videos exist"):
        CsvVideoDataset(synthetic_root, tmp_path / "none.csv", BASE)


def test_invalid_options_are_named(synthetic_root: Path) -> None:
    with pytest.raises(ValueError, match="split must be"):
        CsvVideoDataset(synthetic_root, "train.csv", BASE, "training")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="split must be"):
        build_dataset("csv", synthetic_root, "train.csv", "training", BASE)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="test_num_crops must be 1 or 3"):
        _csv(synthetic_root, "test", test_num_crops=2)
    with pytest.raises(ValueError, match="format must be one of"):
        build_dataset("kinetics", synthetic_root, "train.csv", "train", BASE)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown backend"):
        _csv(synthetic_root, decoder="ffmpeg")


def test_one_registry_of_formats_and_their_flip_rule(synthetic_root: Path) -> None:
    import lightning_multigrid.data.datasets
    from lightning_multigrid.data import (
        DATASET_FORMATS,
        DatasetFormat,
        VideoDataModule,
        dataset_format,
    )
    from lightning_multigrid.data.prepare_layout import DEFAULT_SPLITS

    assert list(DATASET_FORMATS) == ["csv", "folder", "ssv2", "charades"]
    assert set(DEFAULT_SPLITS) == set(DATASET_FORMATS)  # prepare knows the layout of every format
    assert DEFAULT_SPLITS["ssv2"][0] == "something-something-v2-train.json"  # the official file names
    assert DEFAULT_SPLITS["charades"][:2] == ("Charades_v1_train.csv", "Charades_v1_test.csv")
    # The type users (and the CLI) see names the same formats, in the same order.
    assert typing.get_args(DatasetFormat) == tuple(DATASET_FORMATS)
    hints = typing.get_type_hints(VideoDataModule.__init__, vars(lightning_multigrid.data.datasets))
    assert hints["format"] == DatasetFormat
    with pytest.raises(ValueError, match="format must be one of csv, folder, ssv2, charades; got 'kinetics'"):
        dataset_format("kinetics")
    with pytest.raises(ValueError, match="format must be one of csv, folder, ssv2, charades"):
        VideoDataModule(root=str(synthetic_root), format="kinetics")  # type: ignore[arg-type]
    # SSv2's classes are defined by direction: no flip by default, built directly or by the datamodule.
    assert dataset_format("ssv2").default_random_flip is False and dataset_format("csv").default_random_flip
