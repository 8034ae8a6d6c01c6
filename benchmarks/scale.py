"""What a dataset of 100k, 1M or 10M videos costs before a single clip is decoded (issue #23).

For each size, in a fresh process, on a generated Kinetics-style list (``train/<class>/<youtube
id>_<start>_<end>.mp4 <label>``, files not checked, as ``check_files=False``):

* parse: seconds for ``CsvVideoDataset`` to read the list (with every DDP rank doing it again);
* dataset memory: resident memory the dataset adds once built (``Rss`` of
  ``/proc/self/smaps_rollup``), and the bytes its record arrays hold;
* worker private memory: how much private memory (``Private_Clean + Private_Dirty``) a forked
  ``DataLoader`` worker gains while it reads every record once, as workers do over the epochs;
* sampler: seconds for one epoch of ``MultigridBatchSampler`` keys (the K400 recipe's first epoch,
  the coarsest grid, and its last, the base grid), per device of 8;
* checkpoint: bytes of ``MultigridCallback``'s state in a checkpoint of a short real fit over a
  dataset of that length (split-BN statistics of a tiny model; nothing per video).

Up to ``--list-max`` records the same is measured for the representation the package used before
(a list of ``VideoRecord`` parsed line by line): ``old_*`` columns, for ratios within one run.
Results: a table on stdout and ``--out`` (JSON). Timings on a shared machine are noisy.

Usage::

    python benchmarks/scale.py [--sizes 100000 1000000 10000000] [--list-max 1000000]
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import io
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from lightning_multigrid.data import CsvVideoDataset, VideoRecord
from lightning_multigrid.data.list_file import _LineRule
from lightning_multigrid.sampling.keys import unpack_key
from lightning_multigrid.sampling.sampler import MultigridBatchSampler, SeededRandomSampler
from lightning_multigrid.schedule import BaseRecipe, MultigridSchedule
from lightning_multigrid.schedule.recipe import ClipShape

SHAPE = ClipShape(8, 224, (8, 8), (256, 320))
K400 = BaseRecipe(steps=[0, 94, 154, 196], max_epochs=239, num_frames=32, crop_size=224, batch_size=64, sampling_rate=2)
DEVICES = 8


def memory_kib(*fields: str) -> int:
    """The sum of ``fields`` (KiB) in this process's ``/proc/self/smaps_rollup``."""
    rows = dict(line.split(":", 1) for line in Path("/proc/self/smaps_rollup").read_text().splitlines()[1:])
    return sum(int(rows[f].split()[0]) for f in fields)


def settled_rss_kib() -> int:
    """Resident memory once freed memory is handed back (``gc``, then glibc's ``malloc_trim``), so
    that temporaries of the parse do not count as the dataset's."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    return memory_kib("Rss")


def private_kib() -> int:
    return memory_kib("Private_Clean", "Private_Dirty")


class TouchEveryRecord(Dataset):
    """One item: the worker's private-memory growth (KiB) while it reads every record once."""

    def __init__(self, records: Any) -> None:
        self.records = records

    def __len__(self) -> int:
        return 1

    def __getitem__(self, _: int) -> str:
        before = private_kib()
        count = sum(1 for r in self.records if r.path and r.label is not None)
        return json.dumps({"count": count, "grown_kib": private_kib() - before})


def worker_growth_kib(records: Any) -> int:
    """Private memory (KiB) a forked loader worker gains reading every record of ``records``."""
    loader = DataLoader(TouchEveryRecord(records), batch_size=None, num_workers=1, multiprocessing_context="fork")
    result = json.loads(next(iter(loader)))
    if result["count"] != len(records):
        raise RuntimeError(f"the worker read {result['count']} of {len(records)} records")
    return int(result["grown_kib"])


def write_list(path: Path, size: int) -> None:
    """A Kinetics-style list of ``size`` videos over 700 classes (a header line first)."""
    with path.open("w") as handle:
        handle.write("path,label\n")
        step = 1_000_000
        for begin in range(0, size, step):
            handle.write("".join(f"train/class_{i % 700:03d}/{i:011x}_{i % 290:06d}_{i % 290 + 10:06d}.mp4 {i % 700}\n"
                                 for i in range(begin, min(size, begin + step))))


def sampler_seconds(size: int, epoch: int) -> tuple[float, int]:
    schedule = MultigridSchedule(K400)
    sampler = MultigridBatchSampler(SeededRandomSampler(range(size), seed=0), batch_size=K400.batch_size // DEVICES,
                                    schedule=schedule, epoch=epoch)
    started = time.perf_counter()
    keys = sum(len(batch) for batch in sampler)
    return time.perf_counter() - started, keys


class _Keys(Dataset):
    """``size`` tiny clips, any shape a key asks for (nothing decoded)."""

    accepts_clip_keys = True
    base_shape = ClipShape(8, 64, (1, 1), (73, 91))

    def __init__(self, size: int) -> None:
        self.size = size

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, key: Any) -> dict[str, Any]:
        index, shape = unpack_key(key, self.base_shape)
        return {"video": torch.zeros(3, shape.num_frames, shape.crop_size, shape.crop_size), "label": index % 2}


def checkpoint_bytes(size: int, directory: Path) -> int:
    """Bytes of the callback's state in a checkpoint of a short fit over ``size`` items."""
    import pytorch_lightning as pl  # noqa: PLC0415 - only this measurement needs Lightning

    from lightning_multigrid import MultigridCallback  # noqa: PLC0415

    class Tiny(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = torch.nn.Sequential(torch.nn.Conv3d(3, 4, 3, padding=1), torch.nn.BatchNorm3d(4),
                                           torch.nn.AdaptiveAvgPool3d(1), torch.nn.Flatten(), torch.nn.Linear(4, 2))

        def training_step(self, batch: dict[str, Any], _: int) -> torch.Tensor:
            return torch.nn.functional.cross_entropy(self.net(batch["video"]), batch["label"])

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.parameters(), lr=0.01)

        def train_dataloader(self) -> DataLoader:
            return DataLoader(_Keys(size), batch_size=2)

    callback = MultigridCallback(steps=[0, 2, 4], bn_base_size=2, precise_bn_batches=0)
    trainer = pl.Trainer(max_epochs=5, limit_train_batches=1, accelerator="cpu", devices=1, logger=False,
                         enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
                         callbacks=[callback], default_root_dir=directory)
    trainer.fit(Tiny())
    path = directory / "last.ckpt"
    trainer.save_checkpoint(path)
    state = next(v for k, v in torch.load(path, weights_only=False)["callbacks"].items() if "Multigrid" in k)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.tell()


def measure(size: int, old: bool) -> dict[str, Any]:
    """Every figure for one size (run in a fresh process)."""
    row: dict[str, Any] = {"records": size}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_list(root / "train.csv", size)
        (root / "warm.csv").write_text("a.mp4 0\n")  # first use imports the decoders: not the dataset's cost
        CsvVideoDataset(root, "warm.csv", SHAPE, check_files=False)
        rss = settled_rss_kib()
        started = time.perf_counter()
        dataset = CsvVideoDataset(root, "train.csv", SHAPE, check_files=False)
        row["parse_s"] = time.perf_counter() - started
        row["dataset_mib"] = (settled_rss_kib() - rss) / 1024
        row["index_mib"] = dataset.records.nbytes / 2**20
        row["worker_private_mib"] = worker_growth_kib(dataset.records) / 1024
        if old:  # the package before issue 23: the line rule, one VideoRecord per line, in a list
            rule, text = _LineRule(root / "train.csv", root), (root / "train.csv").read_text()
            rss = settled_rss_kib()
            text_kib = len(text) // 1024  # freed after the parse, but counted in rss
            started = time.perf_counter()
            records = [VideoRecord(*parsed) for n, line in enumerate(text.splitlines(), 1)
                       if (parsed := rule.record(line, n)) is not None]
            row["old_parse_s"] = time.perf_counter() - started
            del text
            row["old_dataset_mib"] = (settled_rss_kib() - rss + text_kib) / 1024
            row["old_worker_private_mib"] = worker_growth_kib(records) / 1024
            del records
        del dataset
        gc.collect()
        row["sampler_first_epoch_s"], row["sampler_first_epoch_keys"] = sampler_seconds(size, 0)
        last = MultigridSchedule(K400).max_epochs - 1
        row["sampler_last_epoch_s"], row["sampler_last_epoch_keys"] = sampler_seconds(size, last)
        row["callback_state_bytes"] = checkpoint_bytes(size, root)
    return row


COLUMNS = [("records", "records", "{:,}"), ("parse_s", "parse s", "{:.2f}"), ("old_parse_s", "old parse s", "{:.2f}"),
           ("dataset_mib", "dataset MiB", "{:.1f}"), ("old_dataset_mib", "old dataset MiB", "{:.1f}"),
           ("worker_private_mib", "worker private MiB", "{:.2f}"),
           ("old_worker_private_mib", "old worker private MiB", "{:.1f}"),
           ("sampler_first_epoch_s", "sampler epoch 0 s", "{:.2f}"),
           ("sampler_last_epoch_s", "sampler last epoch s", "{:.2f}"), ("callback_state_bytes", "callback state B", "{:,}")]


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(title for _, title, _ in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in rows:
        lines.append("| " + " | ".join(fmt.format(row[k]) if k in row else "-" for k, _, fmt in COLUMNS) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000, 10_000_000])
    parser.add_argument("--list-max", type=int, default=1_000_000, help="largest size measured the old way too")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "scale.json")
    parser.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)  # the per-size child process
    args = parser.parse_args(argv)
    if args.one is not None:
        print(json.dumps(measure(args.one, args.one <= args.list_max)))
        return 0
    rows = []
    for size in args.sizes:
        child = subprocess.run([sys.executable, __file__, "--one", str(size), "--list-max", str(args.list_max)],
                               capture_output=True, text=True, check=False)
        if child.returncode != 0:
            print(child.stderr[-3000:], file=sys.stderr)
            raise SystemExit(f"size {size}: the measuring process failed")
        rows.append(json.loads(child.stdout.strip().splitlines()[-1]))
        print(table(rows[-1:]).splitlines()[-1], flush=True)
    print(table(rows))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"command": " ".join(sys.argv), "machine": platform.platform(),
                                    "cpus": torch.get_num_threads(), "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
