"""The errors every decoding backend raises (kept apart so the frame index and backends share them)."""

from __future__ import annotations

__all__ = ["DecoderUnavailableError", "VideoDecodeError", "reason"]


class VideoDecodeError(RuntimeError):
    """A file could not be decoded (missing, empty, truncated, not a video, too few frames)."""


class DecoderUnavailableError(RuntimeError):
    """The requested backend is not installed or cannot load its native libraries."""


def reason(exc: BaseException) -> str:
    """``"ErrorType: last line of its message"``: the part of a native library's error worth showing."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[-1] if text else ''}".strip().rstrip(":")
