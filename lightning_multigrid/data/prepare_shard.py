"""Sharded ``prepare``: N machines convert disjoint parts of one dataset into one ``OUT``.

``prepare SRC OUT --shard I/N`` (``0 <= I < N``) converts the videos whose output folder (its path
relative to ``OUT``) hashes to ``I`` (CRC-32 modulo ``N``): the same split on every machine,
whatever order or subset of split files each one lists, and about ``1/N`` of the videos each. A
shard writes its frame folders and its own report, ``prepare_report.shard-I-of-N.json``, but no
split files: shards run at the same time into a shared ``OUT`` (or into separate ``OUT``\\ s copied
together afterwards). ``prepare SRC OUT --merge``, run once after all ``N``, checks that every
shard reported, writes the split files and ``prepare_report.json`` with the shards' totals: the
same ``OUT`` a single ``prepare SRC OUT`` makes.
"""

from __future__ import annotations

import json
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Shard", "merged_report", "shard_reports"]

_REPORT = re.compile(r"prepare_report\.shard-(\d+)-of-(\d+)\.json")


@dataclass(frozen=True)
class Shard:
    """Part ``index`` of ``count``."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``"I/N"`` with ``0 <= I < N``; a ValueError naming the option otherwise."""
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
        if match is None or not 0 <= int(match[1]) < int(match[2]):
            raise ValueError(f"--shard: expected I/N with 0 <= I < N (e.g. 0/4), got {text!r}")
        return cls(int(match[1]), int(match[2]))

    def owns(self, relative_target: str) -> bool:
        """Whether this shard converts the video whose folder is ``relative_target`` (under OUT)."""
        return zlib.crc32(relative_target.encode("utf-8", "surrogateescape")) % self.count == self.index

    @property
    def report_name(self) -> str:
        return f"prepare_report.shard-{self.index}-of-{self.count}.json"

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def shard_reports(out: Path) -> dict[int, dict[str, Any]]:
    """Every shard's report under ``out`` by shard index; an error unless all ``N`` of one ``N`` are there."""
    found: dict[int, dict[int, Path]] = {}
    for path in out.glob("prepare_report.shard-*-of-*.json"):
        match = _REPORT.fullmatch(path.name)
        if match:
            found.setdefault(int(match[2]), {})[int(match[1])] = path
    if not found:
        raise FileNotFoundError(f"{out}: no shard reports (prepare_report.shard-I-of-N.json); run prepare --shard I/N first")
    if len(found) > 1:
        raise ValueError(f"{out}: shard reports of runs with different N ({sorted(found)}); delete the stale ones")
    (count, paths), = found.items()
    missing = [str(Shard(i, count)) for i in range(count) if i not in paths]
    if missing:
        raise ValueError(f"{out}: shards {', '.join(missing)} have not reported; run them before --merge")
    return {i: json.loads(paths[i].read_text()) for i in range(count)}


#: Report fields that add up over shards (lists concatenate); the rest are the merge's own.
_SUMMED = ("videos", "converted", "skipped_done", "failed", "missing", "frames_written", "bytes_written", "video_seconds")


def merged_report(reports: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """The shards' totals: counts and bytes summed, failures and missing videos listed by path."""
    total: dict[str, Any] = {}
    for name in _SUMMED:
        values = [report[name] for report in reports.values()]
        if isinstance(values[0], list):
            total[name] = sorted((v for part in values for v in part), key=lambda v: v["path"] if isinstance(v, dict) else v)
        else:
            total[name] = sum(values)
    total["shard_seconds"] = [reports[i]["seconds"] for i in sorted(reports)]
    return total
