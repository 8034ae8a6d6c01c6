"""Shared fixtures: a tiny synthetic video dataset (generated once) and broken video files."""

from __future__ import annotations

from pathlib import Path

import av
import pytest
import torch

from lightning_multigrid.data.synthetic import make_synthetic_dataset

#: Parameters of the session dataset: 4 classes x 4 videos (2 train, 1 val, 1 test each).
SYNTHETIC_CLASSES = 4
SYNTHETIC_VIDEOS_PER_CLASS = 4
SYNTHETIC_SIZE = (64, 48)
SYNTHETIC_FRAMES = 32
SYNTHETIC_FPS = 15


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny synthetic dataset (4 classes x 4 videos, 64x48, 32 frames), generated once per session.

    Layout: ``videos/<class>/<class>_<k>.mp4``, ``train.csv`` / ``val.csv`` / ``test.csv``
    (``relative/path.mp4 label`` lines), ``classes.txt``, ``manifest.json``. Treat it as read-only.
    """
    return make_synthetic_dataset(
        tmp_path_factory.mktemp("synthetic") / "dataset",
        num_classes=SYNTHETIC_CLASSES,
        videos_per_class=SYNTHETIC_VIDEOS_PER_CLASS,
        size=SYNTHETIC_SIZE,
        num_frames=SYNTHETIC_FRAMES,
        fps=SYNTHETIC_FPS,
        seed=0,
    )


@pytest.fixture(scope="module")
def single_torch_thread():  # noqa: ANN201 - generator fixture
    """Run a module's tests with one intra-op torch thread (as loader workers do), then restore.

    Clip-sized tensor ops in the main process are far slower with 2 threads on a busy 2-core
    machine (thread hand-off dominates), which is what ``num_workers=0`` data tests measure.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture()
def broken_videos(synthetic_root: Path, tmp_path: Path) -> dict[str, Path]:
    """Broken ``.mp4`` files in a fresh directory, by kind.

    * ``"empty"``: a zero-byte file;
    * ``"truncated"``: the first half of a real video (its index, written last, is gone);
    * ``"truncated_data"``: a video with its index at the front whose frame data is cut off;
    * ``"text"``: a text file named ``.mp4``;
    * ``"missing"``: a path that does not exist.
    """
    source = next((synthetic_root / "videos").rglob("*.mp4"))
    folder = tmp_path / "broken"
    folder.mkdir()
    paths = {name: folder / f"{name}.mp4" for name in ("empty", "truncated", "truncated_data", "text", "missing")}
    paths["empty"].write_bytes(b"")
    data = source.read_bytes()
    paths["truncated"].write_bytes(data[: len(data) // 2])
    paths["text"].write_text("this is not a video\n" * 20)
    # Remux with the index first ("faststart") so that cutting the tail removes frames only.
    faststart = folder / "faststart.tmp.mp4"
    with av.open(str(source)) as src, av.open(str(faststart), "w", options={"movflags": "+faststart"}) as dst:
        in_stream = src.streams.video[0]
        out_stream = dst.add_stream_from_template(in_stream)
        for packet in src.demux(in_stream):
            if packet.dts is None:
                continue
            packet.stream = out_stream
            dst.mux(packet)
    data = faststart.read_bytes()
    paths["truncated_data"].write_bytes(data[: int(len(data) * 0.4)])
    faststart.unlink()
    return paths


@pytest.fixture(scope="session")
def real_files(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Real encoded files made once per session with the ``ffmpeg`` program (see ``tests/real_files.py``).

    ``make test`` installs Debian's ffmpeg when it is missing; without it these tests fail (never skip).
    """
    from tests.real_files import ffmpeg_available, make_real_files  # noqa: PLC0415 - only where used

    if not ffmpeg_available():
        pytest.fail("the real-file tests need the ffmpeg program: run `make test` (installs it) or apt-get install ffmpeg")
    return make_real_files(tmp_path_factory.mktemp("real_files"))
