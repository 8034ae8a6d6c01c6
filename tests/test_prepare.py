"""``prepare``: every format, interruption and resume, corrupt sources, re-runs, same training data."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image

from lightning_multigrid.cli.commands import main as cli_main
from lightning_multigrid.data import build_dataset
from lightning_multigrid.data.frame_folders import META_NAME
from lightning_multigrid.data.prepare import REPORT_NAME, PrepareOptions, prepare_dataset
from lightning_multigrid.sampling.keys import ClipKey
from lightning_multigrid.schedule.recipe import ClipShape

pytestmark = pytest.mark.usefixtures("single_torch_thread")

SHAPE = ClipShape(4, 32, (2, 4), (32, 36))
QUIET = {"progress": False, "workers": 1}


def _videos(root: Path) -> list[Path]:
    return sorted((root / "videos").rglob("*.mp4"))


def _done_folders(out: Path) -> list[Path]:
    return sorted(p.parent for p in out.rglob(META_NAME))


@pytest.fixture()
def source(synthetic_root: Path, tmp_path: Path) -> Path:
    """A private copy of the session dataset (16 videos, 64x48, 32 frames) that tests may damage."""
    return Path(shutil.copytree(synthetic_root, tmp_path / "videos_src"))


def _same_items(videos: Path, frames: Path, fmt: str, split_file: str | None, split: str, **kw) -> None:
    """Datasets on the videos and on the frame folders: same records order, labels and clip shapes."""
    a = build_dataset(fmt, videos, split_file, split, SHAPE, decoder="pyav", **kw)
    b = build_dataset(fmt, frames, split_file, split, SHAPE, **kw)
    assert len(a) == len(b) > 0
    assert [Path(r.path).with_suffix("").relative_to(videos) for r in a.records] == [
        Path(r.path).relative_to(frames) for r in b.records]
    assert [r.label for r in a.records] == [r.label for r in b.records]
    for i in range(len(a)):
        x, y = a[ClipKey(i, SHAPE)], b[ClipKey(i, SHAPE)]
        assert x["video"].shape == y["video"].shape
        assert torch.equal(x["label"], y["label"])


def test_csv_output_trains_like_the_videos(synthetic_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "frames"
    summary = prepare_dataset(synthetic_root, out, PrepareOptions(**QUIET))
    assert summary.converted == summary.videos == 16 and not summary.failed
    assert {"train.csv", "val.csv", "test.csv", "classes.txt"} <= set(summary.split_files)
    assert (out / "classes.txt").read_text() == (synthetic_root / "classes.txt").read_text()
    meta = json.loads((_done_folders(out)[0] / META_NAME).read_text())
    assert (meta["num_frames"], meta["width"], meta["height"]) == (32, 64, 48)
    for split in ("train", "val", "test"):
        _same_items(synthetic_root, out, "csv", f"{split}.csv", split, test_num_clips=2)
    report = json.loads((out / REPORT_NAME).read_text())
    assert report["bytes_written"] == sum(f.stat().st_size for d in _done_folders(out) for f in d.glob("*.jpg"))
    hours = 16 * 32 / 15 / 3600  # 16 videos of 32 frames at 15 fps
    assert report["bytes_per_video_hour"] == pytest.approx(report["bytes_written"] / hours)


def test_short_side_and_quality(synthetic_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "small"
    prepare_dataset(synthetic_root, out, PrepareOptions(short_side=24, quality=50, splits=["val.csv"], **QUIET))
    folders = _done_folders(out)
    assert len(folders) == 4
    assert Image.open(folders[0] / "000001.jpg").size == (32, 24)  # resized_size(64, 48, 24)
    with pytest.raises(ValueError, match="was prepared with"):  # same OUT, other settings
        prepare_dataset(synthetic_root, out, PrepareOptions(short_side=32, splits=["val.csv"], **QUIET))
    prepare_dataset(synthetic_root, tmp_path / "big", PrepareOptions(short_side=480, splits=["val.csv"], **QUIET))
    assert Image.open(_done_folders(tmp_path / "big")[0] / "000001.jpg").size == (64, 48)  # never enlarged


def test_interrupted_run_resumes_and_rerun_skips_done_work(source: Path, tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "frames"
    saves = {"count": 0}
    original_save = Image.Image.save

    def save_then_interrupt(self, *args, **kwargs):  # noqa: ANN001, ANN202
        saves["count"] += 1
        if saves["count"] == 3 * 32 + 5:  # inside the fourth video
            raise KeyboardInterrupt
        return original_save(self, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", save_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        prepare_dataset(source, out, PrepareOptions(**QUIET))
    monkeypatch.setattr(Image.Image, "save", original_save)
    done = _done_folders(out)
    assert len(done) == 3
    # A hard kill (no cleanup) leaves a temp folder and could leave a folder without its marker.
    stale = done[0].parent / ".tmp-left-by-kill-123"
    stale.mkdir()
    unfinished = out / "videos" / "grow" / "grow_0003"
    unfinished.mkdir(parents=True, exist_ok=True)
    (unfinished / "000001.jpg").write_bytes(b"half")
    stamps = {d: (d / META_NAME).stat().st_mtime_ns for d in done}

    summary = prepare_dataset(source, out, PrepareOptions(progress=False, workers=2))  # resumes, in parallel
    assert (summary.skipped_done, summary.converted, summary.failed) == (3, 13, [])
    assert not list(out.rglob(".tmp-*")) and len(_done_folders(out)) == 16
    assert all((d / META_NAME).stat().st_mtime_ns == t for d, t in stamps.items())  # not rewritten
    assert len(list(unfinished.glob("*.jpg"))) == 32

    again = prepare_dataset(source, out, PrepareOptions(**QUIET))
    assert (again.skipped_done, again.converted, again.videos) == (16, 0, 16)
    assert again.bytes_written == summary.bytes_written
    _same_items(source, out, "csv", "train.csv", "train")


def test_corrupt_videos_are_skipped_and_reported(source: Path, tmp_path: Path, capsys) -> None:
    videos = _videos(source)
    corrupt, missing = videos[1], videos[6]
    corrupt.write_text("this is not a video\n" * 20)
    missing.unlink()
    out = tmp_path / "frames"
    code = cli_main(["prepare", str(source), str(out), "--no-progress", "--workers", "1"])
    assert code == 0
    err = capsys.readouterr().err
    assert f"skipped unreadable video {corrupt}" in err and f"skipped missing video {missing}" in err
    report = json.loads((out / REPORT_NAME).read_text())
    assert [f["path"] for f in report["failed"]] == [str(corrupt)] and report["missing"] == [str(missing)]
    assert report["converted"] == 14
    listed = "".join((out / f"{s}.csv").read_text() for s in ("train", "val", "test"))
    assert corrupt.stem not in listed and missing.stem not in listed and listed.count("\n") == 14
    # Training's rule: more than max_failure_rate of the dataset's videos (and at least min_failures)
    # unreadable. 3 more corrupt files make 4 of the 15 present videos: 27% > 20%.
    for video in videos[2:5]:
        video.write_bytes(video.read_bytes()[:300])
    with pytest.raises(RuntimeError, match=r"4 of 1\d videos failed \(2\d% > max_failure_rate=0.2\)"):
        prepare_dataset(source, tmp_path / "strict", PrepareOptions(max_failure_rate=0.2, min_failures=2, **QUIET))
    assert json.loads((tmp_path / "strict" / REPORT_NAME).read_text())["failed"]  # reported all the same


def test_two_videos_for_one_folder_are_refused(source: Path, tmp_path: Path) -> None:
    video = _videos(source)[0]
    twin = video.with_suffix(".mkv")
    shutil.copyfile(video, twin)
    relative = twin.relative_to(source).as_posix()
    (source / "train.csv").write_text((source / "train.csv").read_text() + f"{relative} 0\n")
    with pytest.raises(ValueError, match="would both become") as refused:
        prepare_dataset(source, tmp_path / "out", PrepareOptions(**QUIET))
    assert str(video) in str(refused.value) and str(twin) in str(refused.value)
    assert not (tmp_path / "out" / "prepare_options.json").exists()  # nothing pinned by a refused run


def _ssv2_and_charades_layouts(root: Path, tmp_path: Path) -> tuple[Path, Path]:
    """The session videos as a flat SSv2 directory (JSON) and a Charades directory (CSV with actions)."""
    ssv2, charades = tmp_path / "ssv2", tmp_path / "charades"
    ssv2.mkdir()
    charades.mkdir()
    entries, rows, templates = [], [], {}
    for k, line in enumerate((root / "train.csv").read_text().split("\n")[:6]):
        path, label = line.rsplit(" ", 1)
        vid = f"v{k}"
        shutil.copyfile(root / path, ssv2 / f"{vid}.mp4")
        shutil.copyfile(root / path, charades / f"{vid}.mp4")
        templates[f"class [{label}]"] = label
        entries.append({"id": vid, "template": f"class [[{label}]]"})
        rows.append({"id": vid, "actions": f"c{int(label):03d} 0.0 1.0;c007 0.5 1.5"})
    (ssv2 / "train.json").write_text(json.dumps(entries))
    (ssv2 / "labels.json").write_text(json.dumps({t.replace("[", "").replace("]", ""): v for t, v in templates.items()}))
    with (charades / "train.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["id", "actions"])
        writer.writeheader()
        writer.writerows(rows)
    return ssv2, charades


def test_ssv2_charades_and_folder_formats(synthetic_root: Path, tmp_path: Path) -> None:
    ssv2, charades = _ssv2_and_charades_layouts(synthetic_root, tmp_path)
    prepare_dataset(ssv2, tmp_path / "ssv2_frames", PrepareOptions(format="ssv2", splits=["train.json"], **QUIET))
    _same_items(ssv2, tmp_path / "ssv2_frames", "ssv2", "train.json", "train")
    prepare_dataset(charades, tmp_path / "ch_frames", PrepareOptions(format="charades", splits=["train.csv"], **QUIET))
    _same_items(charades, tmp_path / "ch_frames", "charades", "train.csv", "train", num_classes=8)
    # Folder layout: <root>/<class>/<video>; a class whose only video is unreadable keeps its label rank.
    folder = tmp_path / "folder"
    for video in _videos(synthetic_root)[::4]:
        (folder / video.parent.name).mkdir(parents=True)
        shutil.copyfile(video, folder / video.parent.name / video.name)
    bad = next((folder / "move_left").iterdir())
    bad.write_bytes(b"")
    summary = prepare_dataset(folder, tmp_path / "folder_frames", PrepareOptions(format="folder", **QUIET))
    assert [f["path"] for f in summary.failed] == [str(bad)]
    frames = build_dataset("folder", tmp_path / "folder_frames", None, "train", SHAPE)
    assert frames.classes == sorted(p.name for p in folder.iterdir())
    assert [r.label for r in frames.records] == [frames.classes.index(Path(r.path).parent.name) for r in frames.records]


def _tree(out: Path) -> dict[str, bytes]:
    """Every file under ``out`` but the reports, by relative path."""
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and not p.name.startswith("prepare_report")}


def test_shards_merged_equal_one_unsharded_run(source: Path, tmp_path: Path, capsys) -> None:
    videos = _videos(source)
    videos[3].write_text("this is not a video\n" * 20)
    videos[9].unlink()
    single = tmp_path / "single"
    whole = prepare_dataset(source, single, PrepareOptions(**QUIET))
    sharded = tmp_path / "sharded"
    run = ["prepare", str(source), str(sharded), "--workers", "1"]
    assert cli_main([*run, "--shard", "0/3"]) == 0  # with progress: named by its shard
    printed = capsys.readouterr()
    assert "prepare 0/3" in printed.err and "shard 0/3: prepared" in printed.out
    assert cli_main([*run, "--shard", "1/3", "--no-progress"]) == 0
    assert not (sharded / "train.csv").exists()  # split files are the merge's
    assert cli_main(["prepare", str(source), str(sharded), "--merge"]) == 2
    assert "shards 2/3 have not reported" in capsys.readouterr().err
    assert cli_main([*run, "--shard", "2/3", "--no-progress"]) == 0
    parts = [json.loads((sharded / f"prepare_report.shard-{i}-of-3.json").read_text()) for i in range(3)]
    assert all(p["videos"] > 0 for p in parts) and sum(p["videos"] for p in parts) == 16  # disjoint, all videos
    assert cli_main(["prepare", str(source), str(sharded), "--merge"]) == 0
    assert _tree(sharded) == _tree(single)  # frame folders, metadata and split files, byte for byte
    merged, alone = json.loads((sharded / REPORT_NAME).read_text()), json.loads((single / REPORT_NAME).read_text())
    for key in ("videos", "converted", "missing", "frames_written", "bytes_written", "split_files"):
        assert merged[key] == alone[key], key
    assert [f["path"] for f in merged["failed"]] == [f["path"] for f in alone["failed"]] == [str(videos[3])]
    assert merged["shards"] == 3 and whole.converted == 14
    with pytest.raises(ValueError, match="expected I/N with 0 <= I < N"):
        prepare_dataset(source, tmp_path / "bad", PrepareOptions(shard="3/3", **QUIET))


def test_packed_shards_merged_equal_one_packed_run(source: Path, tmp_path: Path) -> None:
    """``--layout packed`` and ``--shard``/``--merge`` together: the merge lists the packed files."""
    single = tmp_path / "single"
    prepare_dataset(source, single, PrepareOptions(layout="packed", **QUIET))
    sharded = tmp_path / "sharded"
    for i in range(2):
        assert cli_main(["prepare", str(source), str(sharded), "--workers", "1", "--no-progress",
                         "--layout", "packed", "--shard", f"{i}/2"]) == 0
    assert cli_main(["prepare", str(source), str(sharded), "--merge"]) == 0
    tree = _tree(sharded)
    assert tree == _tree(single)
    listed = (sharded / "train.csv").read_text()
    assert listed.count(".mgframes") == len(listed.splitlines()) > 0  # the split names the packed files
