"""Records as arrays (issue 23): the vectorised list parser against the line-by-line rule, the
index's API, and a forked worker that reads every record without copying the index."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch.utils.data import DataLoader, Dataset

from lightning_multigrid.data import (
    CharadesDataset,
    CsvVideoDataset,
    VideoClipDataset,
    VideoRecord,
    list_file,
)
from lightning_multigrid.data.list_file import parse_list_line, read_list_file
from lightning_multigrid.data.record_index import RecordIndex
from lightning_multigrid.schedule.recipe import ClipShape

BASE = ClipShape(8, 42, (4, 4), (48, 60))


def _reference(text: str, split_path: Path, root: Path) -> list[tuple[str, int]]:
    """The list rule as the package applied it line by line before the index (the oracle)."""
    records, first = [], True
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{split_path}:{lineno}"
        path, label = parse_list_line(line, where)
        try:
            label_id = int(label)
        except ValueError:
            if first:
                first = False
                continue
            raise ValueError(
                f"{where}: label {label!r} is not an integer (the label is the last whitespace- or "
                f"comma-separated field; quote a path that ends in such a field), line {line!r}"
            ) from None
        first = False
        if label_id < 0:
            raise ValueError(f"{where}: label {label_id} is negative")
        full = Path(os.path.expanduser(path))  # the shell's rule: "~name" of an unknown user stays literal
        records.append((str(full if full.is_absolute() else root / full), label_id))
    return records


def _outcome(fn):  # noqa: ANN001, ANN202
    try:
        return fn()
    except ValueError as exc:
        return f"ValueError: {exc}"


PIECES = ["a", "b", "clip_3", "/", ".", "..", " ", "  ", "\t", ",", '"', "#", "~", "0", "7", "12", "-1", "+4",
          "\u00a0", "\u3000", "\u2028", "\x1f", "é", "日", "\r", "x y", "//", "./", "path", "label", "3", "05"]
LINE = st.lists(st.sampled_from(PIECES), max_size=8).map("".join)
ORDINARY = st.builds(lambda d, n, sep, lab: f"{d}/v_{n}.mp4{sep}{lab}", st.sampled_from(["cls", "a b", "x,y", "é"]),
                     st.integers(0, 99), st.sampled_from([" ", ",", " , ", "\t", "  "]), st.integers(0, 9999))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(st.one_of(ORDINARY, LINE), max_size=30), newline=st.sampled_from(["\n", "\r\n"]),
       trailing=st.booleans(), chunk=st.sampled_from([7, 64, 1 << 23]),
       root=st.sampled_from(["/data/k400", "rel/root", ".", "/"]))
def test_vectorised_parser_equals_the_line_rule(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lines: list[str],
                                                newline: str, trailing: bool, chunk: int, root: str) -> None:
    text = newline.join(lines) + (newline if trailing else "")
    split = tmp_path / "train.csv"
    split.write_bytes(text.encode())
    monkeypatch.setattr(list_file, "_CHUNK_BYTES", chunk)  # small chunks: lines and header state across chunks
    want = _outcome(lambda: _reference(split.read_text(), split, Path(root)))
    got = _outcome(lambda: [(r.path, r.label) for r in read_list_file(split, Path(root))])
    assert got == want


def test_a_large_list_parses_into_arrays_and_names_a_bad_line(tmp_path: Path) -> None:
    lines = ["path,label"] + [f"train/c{i % 7}/{i:08d}.mp4 {i % 7}" for i in range(300_000)]
    split = tmp_path / "train.csv"
    split.write_text("\n".join(lines) + "\n")
    index = read_list_file(split, tmp_path)
    assert len(index) == 300_000 and not index.multi_label
    assert index[123_456] == VideoRecord(str(tmp_path / f"train/c{123_456 % 7}/00123456.mp4"), 123_456 % 7)
    assert index.nbytes < 300_000 * 40  # ~23 bytes of path + 8 of offset + 8 of label per record
    lines[200_001] = "train/c1/broken.mp4 one"
    split.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"train.csv:200002: label 'one' is not an integer"):
        read_list_file(split, tmp_path)
    split.write_bytes(b"a.mp4 1\n\xff.mp4 2\n")
    with pytest.raises(ValueError, match="train.csv: not UTF-8"):
        read_list_file(split, tmp_path)


def test_record_index_is_a_sequence_of_video_records() -> None:
    records = [VideoRecord("/r/a.mp4", 2), VideoRecord("/r/sub/b.mp4", 0), VideoRecord("/elsewhere/c.mp4", 1)]
    index = RecordIndex.of(records, "/r/")
    assert list(index) == records and index[-1] == records[-1] and len(index) == 3
    assert index.prefix == "/r/" and index.nbytes < 200
    assert list(index[1:]) == records[1:] and list(index.select(np.array([True, False, True]))) == records[::2]
    assert list(index.select(np.array([2, 0]))) == [records[2], records[0]]
    assert list(pickle.loads(pickle.dumps(index))) == records
    with pytest.raises(IndexError, match="record 3 out of range for 3"):
        index[3]
    multi = RecordIndex.of([VideoRecord("x/a", (3, 5)), VideoRecord("x/b", ()), VideoRecord("y", 2)])
    assert [r.label for r in multi] == [(3, 5), (), (2,)] and multi.multi_label
    assert multi.record_of_label_value(2) == 2 and list(multi.select(np.array([2, 0]))) == [multi[2], multi[0]]
    assert RecordIndex.of([VideoRecord(Path("/r/a.mp4"), 1)], "/r/")[0] == VideoRecord("/r/a.mp4", 1)  # type: ignore[arg-type]
    outside = RecordIndex.of([VideoRecord("rel/a", 0), VideoRecord("other/b", 1)], "rel/")
    assert [r.path for r in outside] == ["rel/a", "other/b"]  # a path outside the prefix: all stored in full


def test_datasets_keep_records_as_an_index(synthetic_root: Path, tmp_path: Path) -> None:
    csv = CsvVideoDataset(synthetic_root, "train.csv", BASE, check_files=False)
    assert isinstance(csv.records, RecordIndex) and csv.records.prefix == f"{synthetic_root}/"
    plain = VideoClipDataset([VideoRecord(r.path, r.label) for r in csv.records], BASE, source="list")
    assert list(plain.records) == list(csv.records) and plain.num_classes == csv.num_classes
    (tmp_path / "c.csv").write_text("id,actions\nv1,c001 0 1;c003 1 2\nv2,\n")
    charades = CharadesDataset(tmp_path, "c.csv", BASE, num_classes=4, check_files=False)
    assert [r.label for r in charades.records] == [(1, 3), ()]
    with pytest.raises(ValueError, match=r"label \(1, 3\) of .*v1.mp4 outside \[0, 2\)"):
        CharadesDataset(tmp_path, "c.csv", BASE, num_classes=2, check_files=False)


def test_probe_cache_is_a_bounded_lru(synthetic_root: Path) -> None:
    dataset = CsvVideoDataset(synthetic_root, "train.csv", BASE, probe_cache_size=2)
    paths = [r.path for r in dataset.records][:3]
    for path in (paths[0], paths[1], paths[0], paths[2]):
        dataset.probe(path)
    assert list(dataset._info_cache) == [paths[0], paths[2]]  # paths[1] was the least recently used
    assert not CsvVideoDataset(synthetic_root, "train.csv", BASE, cache_probes=False).probe_cache_size
    with pytest.raises(ValueError, match="probe_cache_size must be >= 0"):
        CsvVideoDataset(synthetic_root, "train.csv", BASE, probe_cache_size=-1)


# --------------------------------------------------------------------------------------------
# A forked loader worker reads every record: its private memory must not grow with the index.
# --------------------------------------------------------------------------------------------
def private_kib() -> int:
    """This process's private memory (pages it no longer shares with its parent), in KiB."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/smaps_rollup").read_text().splitlines()[1:])
    return int(fields["Private_Clean"].split()[0]) + int(fields["Private_Dirty"].split()[0])


class TouchEveryRecord(Dataset):
    """One item: the worker's private-memory growth (KiB) while it reads every record once."""

    def __init__(self, records) -> None:  # noqa: ANN001
        self.records = records

    def __len__(self) -> int:
        return 1

    def __getitem__(self, _: int) -> str:
        before = private_kib()
        count = sum(len(r.path) + (r.label if isinstance(r.label, int) else 0) > 0 for r in self.records)
        return json.dumps({"count": count, "grown_kib": private_kib() - before})


def worker_growth_kib(records) -> int:  # noqa: ANN001
    loader = DataLoader(TouchEveryRecord(records), batch_size=None, num_workers=1, multiprocessing_context="fork")
    result = json.loads(next(iter(loader)))
    assert result["count"] == len(records)
    return result["grown_kib"]


@pytest.mark.skipif(not Path("/proc/self/smaps_rollup").exists(), reason="needs Linux /proc")
def test_a_forked_worker_reading_every_record_copies_nothing(tmp_path: Path) -> None:
    # 200k records: a list of Python records would cost a worker ~37 MiB (186 MiB per 1M measured);
    # the index must stay under 6 MiB (what the worker allocates for itself while reading).
    count, bound_kib = 200_000, 6 * 1024
    (tmp_path / "train.csv").write_text("".join(f"train/c{i % 400}/{i:011d}_000010.mp4 {i % 400}\n" for i in range(count)))
    dataset = CsvVideoDataset(tmp_path, "train.csv", BASE, check_files=False)
    grown = worker_growth_kib(dataset.records)
    # The measurement sees copying: the same records as a list of objects exceed the bound.
    as_list = list(dataset.records)
    assert worker_growth_kib(as_list) > bound_kib
    assert grown < bound_kib, f"a forked worker copied {grown} KiB of the record index"


def test_tilde_of_an_unknown_user_stays_literal(tmp_path: Path) -> None:
    # Hypothesis found "~a 0": Path.expanduser raised "Could not determine home directory" there.
    split = tmp_path / "train.csv"
    split.write_text("~no_such_user_x9/v.mp4 0\n~/v.mp4 1\n")
    index = read_list_file(split, tmp_path)
    assert index[0] == VideoRecord(str(tmp_path / "~no_such_user_x9/v.mp4"), 0)
    assert index[1] == VideoRecord(str(Path.home() / "v.mp4"), 1)
