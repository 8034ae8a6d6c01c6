"""Lab measurement for issue #20: how much of a stored frame's decode can a crop avoid?

The 1.25x bar on the CPU path needs a frame's decode cost to shrink with the crop. Huffman decoding
costs per stored byte and no DCT scaling or libjpeg crop skips it, so this tries the one store that
can: JPEGs written with a restart marker every ``k`` MCUs (Pillow's ``restart_marker_blocks``).
Restart intervals are byte-aligned and reset the DC predictors, so the intervals that cover a crop
can be cut out of the scan and spliced, with renumbered RST markers, into a smaller valid JPEG that
decodes only those MCUs (no decoder change; ``simplejpeg`` reads it).

It reports, per content (the demo's synthetic frame, and the same frame with noise, closer to camera
video in bytes per pixel) and per restart interval: the file size against no markers, the full
decode time, the spliced decode time of the crops the multigrid grids read at 320x240 (the region a
``S x S`` crop of a frame rescaled to short side ``j`` covers), and whether the spliced decode's
pixels equal the full decode's region (inside one MCU of the border; chroma upsampling reads across
block borders).

    python benchmarks/lab/region_decode.py
"""
from __future__ import annotations

import io
import json
import struct
import time

import numpy as np
import simplejpeg
from PIL import Image

MCU = 16  # 4:2:0 (Pillow's default subsampling at quality 90)


def frame(noise: float, seed: int = 0) -> np.ndarray:
    """A 320x240 RGB frame: smooth gradients and discs (like the demo's videos), plus Gaussian noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:240, 0:320].astype(np.float32)
    img = np.stack([x / 320 * 200, y / 240 * 180, (x + y) / 560 * 150], axis=-1)
    for cx, cy, r, c in ((80, 60, 40, (250, 40, 40)), (220, 150, 55, (30, 200, 90)), (160, 200, 25, (20, 40, 230))):
        img[(x - cx) ** 2 + (y - cy) ** 2 < r * r] = c
    img = img + rng.normal(0, noise, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def encode(rgb: np.ndarray, restart_blocks: int) -> bytes:
    out = io.BytesIO()
    options = {"restart_marker_blocks": restart_blocks} if restart_blocks else {}
    Image.fromarray(rgb).save(out, "JPEG", quality=90, **options)
    return out.getvalue()


def index_intervals(data: bytes) -> tuple[bytes, int, list[tuple[int, int]]]:
    """``(header up to and including SOS, SOF offset, [(start, end) of each restart interval's bytes])``."""
    pos, sof = 2, -1
    while True:
        marker, length = data[pos + 1], struct.unpack(">H", data[pos + 2:pos + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2):
            sof = pos
        pos += 2 + length
        if marker == 0xDA:
            break
    header, start, intervals, i = data[:pos], pos, [], pos
    while True:
        j = data.index(b"\xff", i)
        nxt = data[j + 1]
        if nxt == 0x00 or nxt == 0xFF:  # stuffed byte / fill
            i = j + 2 if nxt == 0x00 else j + 1
            continue
        intervals.append((start, j))
        if 0xD0 <= nxt <= 0xD7:
            start = i = j + 2
            continue
        break  # EOI
    return header, sof, intervals


def splice(header: bytes, sof: int, intervals: list[tuple[int, int]], data: bytes, per_row: int, k: int,
           rows: range, cols: range) -> bytes:
    """A JPEG of MCU rows ``rows`` and interval columns ``cols`` (each ``k`` MCUs wide)."""
    height, width = len(rows) * MCU, len(cols) * k * MCU
    head = bytearray(header)
    head[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    parts = [bytes(head)]
    n = 0
    for r in rows:
        for c in cols:
            if n:
                parts.append(bytes((0xFF, 0xD0 + (n - 1) % 8)))
            s, e = intervals[r * per_row + c]
            parts.append(data[s:e])
            n += 1
    parts.append(b"\xff\xd9")
    return b"".join(parts)


def timed(fn, *args, repeat: int = 300, **kwargs) -> float:  # type: ignore[no-untyped-def]
    """Best of 5 mean times of ``fn(*args, **kwargs)``, in ms."""
    fn(*args, **kwargs)
    best = []
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(repeat):
            fn(*args, **kwargs)
        best.append((time.perf_counter() - t) / repeat)
    return 1e3 * min(best)


def main() -> None:
    # The crops the grids read from 320x240 frames (benchmarks/loader.py --video-size 320x240: S0 = 210,
    # jitter [210, 236], a smaller crop S jitters in [S, 236], spec section 5), in stored pixels: side
    # S * 240 / j, centred, at j = sqrt(j_min * j_max), whose square is the mean area over uniform j.
    crops = {f"S={s}, j={j:.0f}": s * 240 / j for s, j in ((105, (105 * 236) ** 0.5), (148, (148 * 236) ** 0.5),
                                                          (210, (210 * 236) ** 0.5))}
    rows_out = []
    for content, noise in (("synthetic", 0.0), ("noisy (sigma 8)", 8.0)):
        rgb = frame(noise)
        plain = encode(rgb, 0)
        full_ms = timed(simplejpeg.decode_jpeg, plain, colorspace="RGB")
        for k in (1, 2, 4):
            data = encode(rgb, k)
            header, sof, intervals = index_intervals(data)
            per_row = 320 // MCU // k
            assert len(intervals) == 15 * per_row, (len(intervals), per_row)
            whole = simplejpeg.decode_jpeg(data, colorspace="RGB")
            marked_ms = timed(simplejpeg.decode_jpeg, data, colorspace="RGB")
            row = {"content": content, "restart_mcus": k, "bytes": len(data), "bytes_vs_plain": len(data) / len(plain),
                   "full_decode_ms_plain": full_ms, "full_decode_ms_marked": marked_ms, "crops": {}}
            for name, side in crops.items():
                y0, x0 = round((240 - side) / 2), round((320 - side) / 2)
                y1, x1 = round(y0 + side), round(x0 + side)
                rows = range(y0 // MCU, -(-y1 // MCU))
                cols = range(x0 // (k * MCU), -(-x1 // (k * MCU)))
                cut = splice(header, sof, intervals, data, per_row, k, rows, cols)
                part = simplejpeg.decode_jpeg(cut, colorspace="RGB")
                ref = whole[rows.start * MCU:rows.stop * MCU, cols.start * k * MCU:cols.stop * k * MCU]
                inner = np.abs(part[MCU:-MCU, MCU:-MCU].astype(int) - ref[MCU:-MCU, MCU:-MCU]).max()
                border = np.abs(part.astype(int) - ref).max()
                splice_ms = timed(splice, header, sof, intervals, data, per_row, k, rows, cols)
                decode_ms = timed(simplejpeg.decode_jpeg, cut, colorspace="RGB")
                row["crops"][name] = {"region_px": [len(rows) * MCU, len(cols) * k * MCU],
                                      "decoded_fraction": len(rows) * MCU * len(cols) * k * MCU / (240 * 320),
                                      "splice_ms": splice_ms, "decode_ms": decode_ms,
                                      "vs_full_plain": (splice_ms + decode_ms) / full_ms,
                                      "max_diff_inner": int(inner), "max_diff_border": int(border)}
            rows_out.append(row)
            print(json.dumps(row, indent=None, default=float))
    print("\n| content | restart every | size vs no markers | full decode ms | crop | decoded area | splice+decode ms | vs full decode | max diff (inner / border) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows_out:
        for name, c in r["crops"].items():
            print(f"| {r['content']} | {r['restart_mcus']} MCU | {r['bytes_vs_plain']:.3f} | {r['full_decode_ms_plain']:.3f} "
                  f"| {name} | {c['decoded_fraction']:.2f} | {c['splice_ms'] + c['decode_ms']:.3f} | {c['vs_full_plain']:.2f} "
                  f"| {c['max_diff_inner']} / {c['max_diff_border']} |")


if __name__ == "__main__":
    main()
