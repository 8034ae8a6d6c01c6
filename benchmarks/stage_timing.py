"""Where a clip's load time goes: timing wrappers around the pieces of the real loading path.

:meth:`StageTimer.instrument` wraps, for the duration of a ``with`` block,

* ``dataset.probe`` and the container/reader opens inside the decoders (``av.open``,
  ``decord.VideoReader``): **open**;
* the decoders' ``decode`` calls (the video backend's and the frame-folder reader's): their time
  less the opens and conversions inside them is **decode**;
* PyAV's RGB converter (``decoders._frame_converter``), post-decode rescales
  (``decoders.resize_tensor``, ``frame_store._resize_clip``) and PIL resizes: **convert_resize**;
* ``dataset[key]`` as a whole (via :meth:`StageTimer.item`): what is left after probe and decode is
  **augment** (index sampling, crop, flip; normalisation runs on the training device).

decord converts to RGB (and rescales, when asked) inside ``get_batch``, which cannot be split;
its conversion counts as decode. Wrappers that find no target (a renamed private function) are
skipped, and that stage then reads low: the total stays right.

Times are the process's CPU time (``time.process_time``, all its threads), not wall-clock: on a
shared machine wall-clock per-clip figures swing by 2x with other processes' load, CPU time much
less, and with one thread per clip the two agree on an idle machine.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

from PIL import Image

from lightning_multigrid.data import decoders as decoders_module
from lightning_multigrid.data import frame_folders as frames_module
from lightning_multigrid.data import frame_pack as frame_pack_module
from lightning_multigrid.data import frame_store as frame_store_module


class StageTimer:
    """Accumulates seconds per piece; :meth:`per_clip_ms` turns them into the report's stages."""

    def __init__(self) -> None:
        self.seconds = {"probe": 0.0, "inner_open": 0.0, "decode_call": 0.0, "convert": 0.0, "item": 0.0}
        self._decoding = False  # opens count as "inner_open" only inside decode (probe counts its own)

    def _timed(self, key: str, function: Callable) -> Callable:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if key == "inner_open" and not self._decoding:
                return function(*args, **kwargs)
            outer = self._decoding
            self._decoding = outer or key == "decode_call"
            start = time.process_time()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds[key] += time.process_time() - start
                self._decoding = outer

        return wrapper

    def item(self, dataset: Any, key: Any) -> Any:
        """``dataset[key]``, timed."""
        return self._timed("item", dataset.__getitem__)(key)

    @contextlib.contextmanager
    def instrument(self, dataset: Any) -> Iterator[StageTimer]:
        patches: list[tuple[Any, str, Any]] = []

        def patch(owner: Any, name: str, key: str, wrap: Callable[[Callable], Callable] | None = None) -> None:
            original = getattr(owner, name, None)
            if original is None:
                return
            patches.append((owner, name, owner.__dict__.get(name, _ABSENT) if hasattr(owner, "__dict__") else original))
            setattr(owner, name, (wrap or (lambda f: self._timed(key, f)))(original))

        try:
            patch(dataset, "probe", "probe")
            readers = (dataset.decoder, frames_module.FRAME_READER, frame_pack_module.PACKED_READER)
            for decoder in {id(r): r for r in readers}.values():
                patch(decoder, "decode", "decode_call")
                patch(decoder, "decode_crop", "decode_call")
                patch(decoder, "encoded_crop", "decode_call")  # device decoding: the worker reads bytes
            patch(decoders_module, "resize_tensor", "convert")
            patch(decoders_module, "_frame_converter", "convert",
                  lambda make: lambda *a, **k: self._timed("convert", make(*a, **k)))
            patch(Image.Image, "resize", "convert")
            patch(frame_store_module, "_resize_clip", "convert")
            try:
                import av  # noqa: PLC0415

                patch(av, "open", "inner_open")
            except ImportError:  # pragma: no cover
                pass
            try:
                import decord  # noqa: PLC0415

                patch(decord, "VideoReader", "inner_open")
            except ImportError:  # pragma: no cover
                pass
            yield self
        finally:
            for owner, name, original in reversed(patches):
                if original is _ABSENT:
                    delattr(owner, name)  # an instance attribute shadowing the class method
                else:
                    setattr(owner, name, original)

    def per_clip_ms(self, clips: int) -> dict[str, float]:
        s = self.seconds
        return {
            "open": 1e3 * (s["probe"] + s["inner_open"]) / clips,
            "decode": 1e3 * (s["decode_call"] - s["inner_open"] - s["convert"]) / clips,
            "convert_resize": 1e3 * s["convert"] / clips,
            "augment": 1e3 * (s["item"] - s["probe"] - s["decode_call"]) / clips,
        }


_ABSENT = object()
