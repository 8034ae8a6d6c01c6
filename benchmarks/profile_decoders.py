"""Per-clip cost of the video decoders, and of what in it is not decoding (issue #12, item 4).

On the demo's 64x64 32-frame h264 files and on 320x240 64-frame ones (the synthetic generator,
x264 CRF 20, GOP 16), for the base grid's clip (T=16, stride 2, short side enlarged to
S0 + 8 / 256) and the coarsest grid's (T=4, stride 8, short side halved), this times

* ``decoder.decode`` and ``decoder.probe`` as the datasets call them (current code);
* the pieces: container/reader open, decoding without conversion, RGB conversion and rescale,
  the tensor stacking/copies, decord's bridge;
* the proposed changes (:data:`PROPOSED_CHANGES`), applied as text to a copy of
  ``lightning_multigrid/data/decoders.py`` and imported beside the original, so each before/after
  pair is the real decoder measured in the same run (a change that no longer applies is reported);
* a whole training item (``VideoClipDataset.__getitem__``: sampling, decode, crop, normalise) with
  the current and the proposed decoder.

Every figure is the best per-call CPU time of the process (``time.process_time``: all its threads,
so swscale's helper threads count) over ``--repeats`` rounds of ``--n`` calls; each round times
every row, so a before/after pair sees the same background load. Torch uses one thread. Usage: ``python benchmarks/profile_decoders.py [--out FILE.json]``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import av
import torch

from lightning_multigrid.data import decoders as D
from lightning_multigrid.data import get_decoder, make_synthetic_dataset, resized_size
from lightning_multigrid.data.clip_dataset import VideoClipDataset
from lightning_multigrid.data.record_index import VideoRecord
from lightning_multigrid.sampling.keys import ClipKey
from lightning_multigrid.schedule.recipe import ClipShape

#: (why, old text, new text) in decoders.py.
PROPOSED_CHANGES = [
    ("PyAV: one swscale thread per conversion (PyAV's default 0 = auto starts threads per call)",
     'rgb = reformatter.reformat(frame, width=new_w, height=new_h, format="rgb24")',
     'rgb = reformatter.reformat(frame, width=new_w, height=new_h, format="rgb24", threads=1)'),
    ("PyAV: return the (T, C, H, W) view; normalisation (or collate) copies it anyway",
     "        return video.contiguous()\n", "        return video\n"),
    ("decord: same, decode-time-resized path",
     "return self._read(path, indices, size).contiguous()", "return self._read(path, indices, size)"),
    ("decord: same, post-resize path",
     "return _resize_tensor(self._read(path, indices, None), short_side).contiguous()",
     "return _resize_tensor(self._read(path, indices, None), short_side)"),
]


def proposed_decoders(count: int):  # noqa: ANN201 - a module
    """decoders.py with the first ``count`` :data:`PROPOSED_CHANGES` applied, imported as a separate module."""
    source = Path(D.__file__).read_text()
    for why, old, new in PROPOSED_CHANGES[:count]:
        if source.count(old) != 1:
            raise SystemExit(f"proposed change no longer applies to decoders.py: {why}")
        source = source.replace(old, new)
    spec = importlib.util.spec_from_loader(f"lightning_multigrid.data.decoders_proposed{count}", loader=None)
    module = importlib.util.module_from_spec(spec)
    module.__package__ = "lightning_multigrid.data"
    sys.modules[spec.name] = module
    exec(compile(source, D.__file__ + " (proposed)", "exec"), module.__dict__)  # noqa: S102 - our own file
    return module


def interleaved_best_ms(rows: dict[str, Callable[[], object]], n: int, repeats: int) -> dict[str, float]:
    """Best per-call time of each row over ``repeats`` rounds; every round times every row once, so
    a before/after pair sees the same background load (the machine is shared)."""
    import decord  # noqa: PLC0415

    best = dict.fromkeys(rows, float("inf"))
    for round_ in range(repeats + 1):  # the first round warms up and is not counted
        for name, fn in rows.items():
            try:
                start = time.process_time()
                for _ in range(n):
                    fn()
            except decord.DECORDError:  # decord 0.6 cannot copy some scaled widths (16, 24, 48, 72 px)
                best[name] = float("nan")
                continue
            if round_ > 0:
                best[name] = min(best[name], (time.process_time() - start) / n)
    return {name: 1e3 * value for name, value in best.items()}


def pyav_frames(path: str, indices: list[int]) -> list[av.VideoFrame]:
    """Decode (no conversion) from the start up to the last index, keep the wanted frames."""
    wanted, last, out = set(indices), max(indices), {}
    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.thread_count = 1
        for number, frame in enumerate(container.decode(stream)):
            if number in wanted:
                out[number] = frame
            if number >= last:
                break
    return [out[i] for i in indices]


def convert(frames: list[av.VideoFrame], size: tuple[int, int], threads: int | None, contiguous: bool) -> torch.Tensor:
    """PyAVDecoder's conversion: swscale to RGB at ``size``, stack, (T, C, H, W), optionally copied."""
    reformatter = av.video.reformatter.VideoReformatter()
    tensors = [torch.from_numpy(reformatter.reformat(frame, width=size[0], height=size[1], format="rgb24",
                                                     threads=threads).to_ndarray()) for frame in frames]
    video = torch.stack(tensors).permute(0, 3, 1, 2)
    return video.contiguous() if contiguous else video


def profile(path: str, clip: tuple[int, int, int], n: int, repeats: int) -> dict[str, float]:
    num_frames, stride, short = clip
    pyav, decord_dec = get_decoder("pyav"), get_decoder("decord")
    info = pyav.probe(path)
    indices = [min(i * stride, info.num_frames - 1) for i in range(num_frames)]
    size = resized_size(info.width, info.height, short)
    frames = pyav_frames(path, indices)
    native = (info.width, info.height)
    clip = convert(frames, native, 1, False)
    import decord  # noqa: PLC0415

    def decord_batch(as_torch: bool, at: tuple[int, int] | None) -> object:
        reader = decord.VideoReader(path, num_threads=1, width=at[0] if at else -1, height=at[1] if at else -1)
        if as_torch:
            with decord.bridge.use_torch():
                return reader.get_batch(indices)
        return reader.get_batch(indices).asnumpy()

    p1_pyav = proposed_decoders(1).get_decoder("pyav")
    proposed = proposed_decoders(len(PROPOSED_CHANGES))
    new_pyav, new_decord = proposed.get_decoder("pyav"), proposed.get_decoder("decord")
    shape = ClipShape(num_frames, short, (stride, stride), (short, short))

    def item(decoder: object) -> Callable[[], object]:
        dataset = VideoClipDataset([VideoRecord(path, 0)], shape, "train", decoder=decoder, random_flip=False)
        return lambda: dataset[ClipKey(0, shape)]

    def av_open() -> None:
        with av.open(path) as container:
            container.streams.video[0].thread_count = 1

    rows = {
        "pyav probe": lambda: pyav.probe(path),
        "pyav decode (current)": lambda: pyav.decode(path, indices, short, info),
        "pyav decode (change 1: one swscale thread)": lambda: p1_pyav.decode(path, indices, short, info),
        "pyav decode (changes 1+2: and no copy)": lambda: new_pyav.decode(path, indices, short, info),
        "pyav training item (current)": item(pyav),
        "pyav training item (change 1)": item(p1_pyav),
        "pyav training item (changes 1+2)": item(new_pyav),
        "  pyav open": av_open,
        "  pyav decode, no conversion": lambda: pyav_frames(path, indices),
        "  pyav convert to RGB, swscale auto threads, stack, contiguous (current)": lambda: convert(frames, native, None, True),
        "  pyav convert to RGB, 1 swscale thread, stack, contiguous": lambda: convert(frames, native, 1, True),
        "  pyav convert to RGB, 1 swscale thread, stack, no copy (proposed)": lambda: convert(frames, native, 1, False),
        "  pyav convert with the rescale in swscale, 1 thread, no copy": lambda: convert(frames, size, 1, False),
        "  post-decode TF.resize, contiguous input": lambda: D._resize_tensor(clip.contiguous(), short),
        "  post-decode TF.resize, (T, C, H, W) view of channels-last frames": lambda: D._resize_tensor(clip, short),
        "decord probe": lambda: decord_dec.probe(path),
        "decord decode (current)": lambda: decord_dec.decode(path, indices, short, info),
        "decord decode (changes 3+4: no copy)": lambda: new_decord.decode(path, indices, short, info),
        "decord training item (current)": item(decord_dec),
        "decord training item (changes 3+4)": item(new_decord),
        "  decord open": lambda: decord.VideoReader(path, num_threads=1),
        "  decord open+get_batch at source size, torch bridge": lambda: decord_batch(True, None),
        "  decord open+get_batch at target size (decode-time rescale)": lambda: decord_batch(True, size),
        "  decord open+get_batch at target size, numpy": lambda: decord_batch(False, size),
    }
    return interleaved_best_ms(rows, n, repeats)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=Path("data/profile_decoders"))
    parser.add_argument("--n", type=int, default=10, help="calls per timing")
    parser.add_argument("--repeats", type=int, default=8, help="rounds (best kept)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/profile_decoders.json"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    results = {}
    for (width, height), frames, clips in (((64, 64), 32, [(16, 2, 72), (4, 8, 32)]), ((320, 240), 64, [(16, 2, 256), (4, 8, 120)])):
        root = make_synthetic_dataset(args.data_dir / f"{width}x{height}", num_classes=1, videos_per_class=3,
                                      size=(width, height), num_frames=frames, seed=0)
        path = str(sorted((root / "videos").rglob("*.mp4"))[0])
        for clip in clips:
            key = f"{width}x{height} T={clip[0]} stride={clip[1]} short={clip[2]}"
            results[key] = profile(path, clip, args.n, args.repeats)
            print(f"\n{key}")
            for name, ms in results[key].items():
                print(f"  {ms:7.2f} ms  {name}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"command": "python benchmarks/profile_decoders.py " + " ".join(argv or sys.argv[1:]),
                                    "results_ms_per_clip": results}, indent=2) + "\n")
    print(f"\nwritten {args.out}")
    return results


if __name__ == "__main__":
    main()
