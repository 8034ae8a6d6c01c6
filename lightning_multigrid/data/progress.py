"""Progress of a long per-video job (``prepare``): tqdm on stderr when installed, else plain lines."""

from __future__ import annotations

import sys
import time

__all__ = ["Progress"]


class Progress:
    """tqdm on stderr when installed, else a plain line every few percent."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total, self.count, self.enabled, self._bar = total, 0, enabled and total > 0, None
        self._start, self._last = time.perf_counter(), -1
        if self.enabled:
            try:
                from tqdm import tqdm  # noqa: PLC0415

                self._bar = tqdm(total=total, unit="video", desc="prepare", file=sys.stderr)
            except ImportError:
                pass

    def update(self, failed: int) -> None:
        self.count += 1
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.set_postfix(failed=failed, refresh=False)
            self._bar.update(1)
            return
        percent = 100 * self.count // self.total
        if percent // 5 != self._last // 5 or self.count == self.total:
            self._last = percent
            rate = self.count / max(time.perf_counter() - self._start, 1e-9)
            print(f"prepare: {self.count}/{self.total} videos ({percent}%), {failed} failed, {rate:.1f} videos/s",
                  file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
