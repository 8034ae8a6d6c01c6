"""Unreadable videos of a dataset, counted once each over a whole run and shared by all loader workers.

Loader workers are separate processes (re-created every epoch unless persistent), so counters kept
in the dataset object would be per worker and per epoch. :class:`SkippedVideos` keeps one small
file per unreadable video in a directory instead: creating it is atomic (``os.link`` fails if it
exists), so every worker sees the same set, each bad file is reported once per run, and the count
is of distinct videos, not of load attempts (a video read 6 times by a multi-view test counts once).

The failure-rate rule (:meth:`SkippedVideos.check`): stop when more than ``max_failure_rate`` of
the dataset's videos are unreadable *and* at least ``min_failures`` are. The fraction is of the
whole list, so it means the same on 26 videos as on 300 000; the minimum keeps one bad file in a
tiny list from stopping a run (1 of 5 videos is 20 %) while a list where half the files are bad
stops as soon as the minimum is reached.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
import uuid
import weakref
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = ["SKIPPED_VIDEOS_FILE", "SkippedVideos", "report_skipped_videos", "run_record_dir"]

logger = logging.getLogger(__name__)

#: Name of the report written beside the checkpoints.
SKIPPED_VIDEOS_FILE = "skipped_videos.json"
#: How many paths a log line lists.
_LISTED = 10


class SkippedVideos:
    """The set of unreadable videos of one dataset during one run.

    Args:
        directory: where the per-video files go; shared by every process that loads from the
            dataset (loader workers inherit it). ``None``: a fresh temporary directory, removed
            when this object (in the process that made it) is garbage collected.
    """

    def __init__(self, directory: str | os.PathLike | None = None) -> None:
        if directory is None:
            self.directory = Path(tempfile.mkdtemp(prefix="lightning-multigrid-skipped-"))
            weakref.finalize(self, _remove_if_owner, str(self.directory), os.getpid())
        else:
            self.directory = Path(directory)
            self.directory.mkdir(parents=True, exist_ok=True)

        #: Entries already announced by :func:`report_skipped_videos` (in this process).
        self.reported: set[str] = set()

    def __getstate__(self) -> dict:
        return {"directory": self.directory}  # the copy in a worker never removes the directory

    def __setstate__(self, state: dict) -> None:
        self.directory = state["directory"]
        self.reported = set()

    def add(self, path: str, reason: str) -> bool:
        """Record ``path`` as unreadable; ``True`` the first time in the run (in any process)."""
        name = hashlib.sha1(path.encode("utf-8", "surrogateescape")).hexdigest()
        final = self.directory / name
        if final.exists():
            return False
        temporary = self.directory / f".{name}.{os.getpid()}.tmp"
        temporary.write_text(json.dumps({"path": path, "reason": reason}))
        try:
            os.link(temporary, final)  # atomic: exactly one process creates the entry
        except FileExistsError:
            return False
        finally:
            temporary.unlink(missing_ok=True)
        return True

    def __len__(self) -> int:
        return sum(1 for p in self.directory.iterdir() if not p.name.startswith("."))

    def entries(self) -> dict[str, str]:
        """``{path: reason}`` of every unreadable video so far, sorted by path."""
        found = {}
        for entry in self.directory.iterdir():
            if not entry.name.startswith("."):
                record = json.loads(entry.read_text())
                found[record["path"]] = record["reason"]
        return dict(sorted(found.items()))

    def check(self, num_videos: int, max_failure_rate: float, min_failures: int, source: str, last: str) -> None:
        """Raise when the failure-rate rule (module docstring) is broken; ``last`` names the newest."""
        bad = len(self)
        if bad >= max(1, min_failures) and bad > max_failure_rate * num_videos:
            listed = ", ".join(list(self.entries())[:_LISTED])
            raise RuntimeError(
                f"{source}: {bad} of {num_videos} videos could not be decoded ({bad / num_videos:.0%} > "
                f"max_failure_rate={max_failure_rate:g}); last: {last}; unreadable: {listed}"
                f"{', ...' if bad > _LISTED else ''}. Check the files or raise max_failure_rate."
            )


def _remove_if_owner(directory: str, owner: int) -> None:
    # A forked loader worker inherits this finalizer; only the process that made the directory removes it.
    if os.getpid() == owner:
        shutil.rmtree(directory, ignore_errors=True)


def report_skipped_videos(datasets: Iterable, directory: str | os.PathLike | None, stage: str = "") -> Path | None:
    """Save every dataset's unreadable videos to ``directory/skipped_videos.json`` and log one line
    per dataset with new ones since the last call (its split, how many are new and in all, where
    they are listed); each path was already logged once when it failed, so none is listed again.

    Meant for the end of every epoch (and of a test): call it with the datamodule's datasets and
    the run's directory. Datasets without a ``skipped_videos`` attribute are ignored. Returns
    the report's path (``None`` when ``directory`` is ``None`` or nothing was skipped).
    """
    report: dict[str, dict[str, str]] = {}
    announce: list[str] = []
    for dataset in datasets:
        skipped = getattr(dataset, "skipped_videos", None)
        if not isinstance(skipped, SkippedVideos):
            continue
        source = getattr(dataset, "source", type(dataset).__name__)
        split = getattr(dataset, "split", None)
        name = f"{split} split ({source})" if split else source
        entries = skipped.entries()
        if entries:
            report[source] = entries
        new = entries.keys() - skipped.reported
        if new:
            skipped.reported |= new
            announce.append(f"{name}: {len(new)} new unreadable video(s), {len(entries)} in all")
    path = None if directory is None or not report else Path(directory) / SKIPPED_VIDEOS_FILE
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    where = f" (listed in {path})" if path is not None else ""
    for line in announce:
        logger.warning("%s%s%s", f"[{stage}] " if stage else "", line, where)
    return path


def run_record_dir(trainer: Any) -> Path:
    """A directory that belongs to one run of ``trainer``: ``<log_dir>/skipped_videos/<run id>``.

    The log directory alone is shared by every run without a versioned logger (it is the working
    directory by default), so records left there by another run, or another dataset, would be
    reported as this run's and count towards its ``max_failure_rate``. The run id (time and a
    random part) is drawn on rank zero and broadcast, so every DDP rank and loader worker of the
    run shares the one record (a collective: every rank calls this at setup).
    """
    run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"
    run_id = trainer.strategy.broadcast(run_id)
    return Path(trainer.log_dir or trainer.default_root_dir) / "skipped_videos" / run_id
