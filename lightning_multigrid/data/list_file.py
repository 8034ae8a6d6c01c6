"""One line of a Kinetics-style video list: ``path label``, the label being the last field.

See :class:`~.datasets.CsvVideoDataset` for the whole rule (headers, comments, quoting).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from .record_index import RecordIndex, root_prefix

__all__ = ["parse_list_line", "read_list_file"]

#: ``path<sep>label`` where the label is the last field and the separator is whitespace and/or one comma.
_LAST_FIELD = re.compile(r"^(?P<path>.*?)\s*(?:,|\s)\s*(?P<label>[^\s,]+)$")


def parse_list_line(line: str, where: str) -> tuple[str, str]:
    """Split one list line into ``(path, label)`` by :class:`CsvVideoDataset`'s rule.

    Raises:
        ValueError: naming ``where`` (``file:line``) when the line has no path or no label.
    """
    if line.startswith('"'):
        # A quoted path; "" inside it is a literal quote, as in CSV.
        end, path = 1, []
        while True:
            close = line.find('"', end)
            if close < 0:
                raise ValueError(f"{where}: unterminated quoted path in {line!r}")
            path.append(line[end:close])
            if line[close + 1 : close + 2] != '"':
                break
            path.append('"')
            end = close + 2
        rest = line[close + 1 :].strip()
        label = rest[1:].strip() if rest.startswith(",") else rest
        if not label or re.search(r"[\s,]", label):
            raise ValueError(f"{where}: expected '\"path\" label' (one label after the quoted path), got {line!r}")
        return "".join(path), label
    match = _LAST_FIELD.match(line)
    if match is None or not match["path"].strip():
        raise ValueError(f"{where}: expected 'path label' (the label is the last field), got {line!r}")
    return match["path"].strip(), match["label"]


# --------------------------------------------------------------------------------------------
# A whole list file, vectorised
# --------------------------------------------------------------------------------------------
#: Bytes per vectorised step: bounds the temporaries (a few arrays per line) for any file size.
_CHUNK_BYTES = 1 << 23
#: Longest run of spaces (line edges, around the separator) the vectorised step follows; longer
#: runs, like every other unusual line, go through :func:`parse_list_line` itself.
_MAX_RUN = 8
#: Line breaks of ``str.splitlines`` other than ``\n``/``\r\n``, and ``\x1f`` (whitespace to
#: ``str.strip``): a file holding any of them is read line by line, so numbering and stripping
#: stay exactly those of the rule.
_UNUSUAL_ASCII = (b"\x0b", b"\x0c", b"\x1c", b"\x1d", b"\x1e", b"\x1f")
_UNUSUAL_BYTES = (b"\xc2\x85", b"\xe2\x80\xa8", b"\xe2\x80\xa9")
#: UTF-8 forms of the non-ASCII characters ``str.strip`` and the rule's ``\s`` treat as spaces.
_UNICODE_SPACES = tuple(chr(c).encode() for c in range(0x80, 0x3001) if chr(c).isspace())
_PAD = 4
_SPACE = np.zeros(256, dtype=bool)
_SPACE[[ord(" "), ord("\t")]] = True
_DIGIT = np.zeros(256, dtype=bool)
_DIGIT[ord("0"):ord("9") + 1] = True


class _LineRule:
    """:class:`CsvVideoDataset`'s rule for one line, in Python: the reference the vectorised step
    must agree with, and what it hands every unusual line to. Keeps the header state."""

    def __init__(self, split_path: Path, root: Path) -> None:
        self.split_path, self.root, self.first = split_path, root, True

    def record(self, raw: str, lineno: int) -> tuple[str, int] | None:
        """``(full path, label)``, or ``None`` for a blank, comment or header line."""
        line = raw.strip()
        if not line or line.startswith("#"):
            return None
        where = f"{self.split_path}:{lineno}"
        path, label = parse_list_line(line, where)
        try:
            label_id = int(label)
        except ValueError:
            if self.first:
                self.first = False
                return None  # a header such as "path,label"
            raise ValueError(
                f"{where}: label {label!r} is not an integer (the label is the last whitespace- or "
                f"comma-separated field; quote a path that ends in such a field), line {line!r}"
            ) from None
        self.first = False
        if label_id < 0:
            raise ValueError(f"{where}: label {label_id} is negative")
        return str(resolve_path(self.root, path)), label_id


def resolve_path(root: Path, path: str | os.PathLike) -> Path:
    """A listed path: ``~`` expanded, relative to ``root`` unless absolute. ``~name`` of an unknown
    user stays literal, as the shell leaves it (``Path.expanduser`` raises there)."""
    full = Path(os.path.expanduser(path))
    return full if full.is_absolute() else root / full


def read_list_file(split_path: Path, root: Path) -> RecordIndex:
    """Every record of a Kinetics-style list (:class:`CsvVideoDataset`'s rule), as a :class:`RecordIndex`.

    Ordinary lines (``relative/path<space or comma>digits``) are split with numpy in chunks of
    :data:`_CHUNK_BYTES`; every other line (quoted or absolute paths, ``~``, ``.`` components,
    non-ASCII at a path's edges, headers, errors) goes through :func:`parse_list_line`, so errors
    name ``file:line`` as before. 1M lines take well under a second (``benchmarks/scale.py``).

    Raises:
        ValueError: a bad line (naming ``file:line``), or a file that is not UTF-8.
    """
    raw = split_path.read_bytes()
    ascii_only = raw.isascii()
    try:
        text = raw.decode("utf-8") if not ascii_only else None
    except UnicodeDecodeError as exc:
        raise ValueError(f"{split_path}: not UTF-8 text ({exc})") from None
    rule, prefix = _LineRule(split_path, root), root_prefix(root)
    builder = _Builder(prefix)
    unusual = (
        os.sep != "/"
        or any(b in raw for b in _UNUSUAL_ASCII)
        or (b"\r" in raw and raw.count(b"\r") != raw.count(b"\r\n"))
        or (not ascii_only and any(b in raw for b in _UNUSUAL_BYTES))
    )
    if unusual:
        pieces: list[bytes] = []
        labels: list[int] = []
        for lineno, line in enumerate((text if text is not None else raw.decode()).splitlines(), start=1):
            parsed = rule.record(line, lineno)
            if parsed is not None:
                pieces.append(builder.stored(parsed[0], len(pieces)))
                labels.append(parsed[1])
        builder.add_pieces(pieces, labels)
        return builder.finish()
    start, lineno = 0, 1
    while start < len(raw):
        end = raw.rfind(b"\n", start, start + _CHUNK_BYTES) + 1 if start + _CHUNK_BYTES < len(raw) else len(raw)
        if end <= start:  # one line longer than a chunk
            end = raw.find(b"\n", start + _CHUNK_BYTES) + 1 or len(raw)
        lineno = _read_chunk(raw[start:end], lineno, rule, builder)
        start = end
    return builder.finish()


class _Builder:
    """Collects stored path bytes and labels chunk by chunk."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.chunks: list[np.ndarray] = []
        self.lengths: list[np.ndarray] = []
        self.labels: list[np.ndarray] = []
        self.count = 0
        #: Records whose full path cannot be stored under the prefix (a relative path outside it).
        self.full: dict[int, str] = {}

    def add_pieces(self, pieces: list[bytes], labels: list[int]) -> None:
        data = np.frombuffer(b"".join(pieces), dtype=np.uint8) if pieces else np.zeros(0, dtype=np.uint8)
        self.add(data, np.fromiter(map(len, pieces), dtype=np.int64, count=len(pieces)), np.asarray(labels, dtype=np.int64))

    def stored(self, full: str, number: int) -> bytes:
        """Record ``number``'s ``full`` path as stored: relative to the prefix, or absolute; else
        noted in :attr:`full`."""
        rest = full[len(self.prefix):]
        if full.startswith(self.prefix) and not rest.startswith(os.sep):
            return rest.encode("utf-8", "surrogateescape")
        if not full.startswith(os.sep):
            self.full[number] = full
        return full.encode("utf-8", "surrogateescape")

    def add(self, data: np.ndarray, lengths: np.ndarray, labels: np.ndarray) -> None:
        self.chunks.append(data)
        self.lengths.append(lengths.astype(np.int64))
        self.labels.append(labels.astype(np.int64))
        self.count += len(lengths)

    def finish(self) -> RecordIndex:
        empty = np.zeros(0, dtype=np.int64)
        lengths = np.concatenate(self.lengths) if self.lengths else empty
        offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        data = np.concatenate(self.chunks) if self.chunks else empty.astype(np.uint8)
        index = RecordIndex(data, offsets, np.concatenate(self.labels) if self.labels else empty, None, self.prefix)
        if not self.full:
            return index
        paths = [self.full.get(i) or index.path(i) for i in range(len(index))]  # rare: store in full
        return RecordIndex.from_paths(paths, [index.label(i) for i in range(len(index))], "")


def _odd_components(buf: np.ndarray) -> np.ndarray:
    """Positions of ``//`` and ``/./`` in ``buf`` (``Path`` would rewrite both)."""
    slash = buf == ord("/")
    double = slash[:-1] & slash[1:]
    dot = slash[:-2] & (buf[1:-1] == ord(".")) & slash[2:]
    return np.concatenate((np.flatnonzero(double), np.flatnonzero(dot)))


def _read_chunk(chunk: bytes, lineno: int, rule: _LineRule, builder: _Builder) -> int:
    """Parse the whole lines of ``chunk`` (numbered from ``lineno``); returns the next line number."""
    buf = np.frombuffer(chunk, dtype=np.uint8)
    newlines = np.flatnonzero(buf == ord("\n"))
    starts = np.concatenate(([0], newlines + 1))
    ends = np.concatenate((newlines, [len(buf)]))
    if chunk.endswith(b"\n"):
        starts, ends = starts[:-1], ends[:-1]  # no line after the last newline
    count = len(starts)
    numbers = lineno + np.arange(count)
    # Zero bytes around the chunk, so that looking a few bytes past a line's edge needs no clipping.
    padded = np.concatenate((np.zeros(_PAD, np.uint8), buf, np.zeros(_PAD, np.uint8)))

    def at(positions: np.ndarray) -> np.ndarray:
        return padded[positions + _PAD]

    ends = ends - ((ends > starts) & (at(ends - 1) == ord("\r")))
    s, e = starts.copy(), ends.copy()
    for _ in range(_MAX_RUN):  # strip spaces and tabs at both edges
        move_s, move_e = (s < e) & _SPACE[at(s)], (e > s) & _SPACE[at(e - 1)]
        if not (move_s.any() or move_e.any()):
            break
        s, e = s + move_s, e - move_e
    unusual = (s < e) & (_SPACE[at(s)] | _SPACE[at(e - 1)])
    content = (s < e) & (at(s) != ord("#"))
    # The label: the trailing digits, at most 18 (an int64).
    value, digits, going = np.zeros(count, dtype=np.int64), np.zeros(count, dtype=np.int64), content.copy()
    for k in range(19):
        byte = at(e - 1 - k)
        going &= (e - 1 - k >= s) & _DIGIT[byte]
        if not going.any():
            break
        value += going * ((byte.astype(np.int64) - ord("0")) * 10 ** min(k, 18))
        digits += going
    unusual |= going | (digits == 0)
    # The separator: spaces, at most one comma, spaces (the rule's ``\s*(?:,|\s)\s*``).
    p = e - digits
    for comma in (False, True, False):
        for _ in range(1 if comma else _MAX_RUN):
            move = (p > s) & ((at(p - 1) == ord(",")) if comma else _SPACE[at(p - 1)])
            if not move.any():
                break
            p = p - move
    unusual |= (p == e - digits) | ((p > s) & _SPACE[at(p - 1)])
    # The path [s, p): anything Path() would change, quoting, or a Unicode space at its edges is
    # left to the line rule.
    first, final = at(s), at(p - 1)
    unusual |= (p <= s) | (first == ord('"')) | (first == ord("/")) | (first == ord("~")) | (final == ord("/"))
    wide = np.flatnonzero((first >= 0x80) | (final >= 0x80))
    for space in _UNICODE_SPACES if len(wide) else ():  # what str.strip() would remove
        for edge in (s[wide], p[wide] - len(space)):
            unusual[wide] |= np.logical_and.reduce([at(edge + k) == b for k, b in enumerate(space)])
    unusual |= (first == ord(".")) & ((p - s == 1) | (at(s + 1) == ord("/")))
    unusual |= (final == ord(".")) & (p - s >= 2) & (at(p - 2) == ord("/"))
    unusual[np.searchsorted(starts, _odd_components(buf), side="right") - 1] = True
    unusual &= content
    regular = content & ~unusual
    special = np.flatnonzero(unusual)
    parsed: dict[int, tuple[str, int] | None] = {}
    first_regular = int(np.argmax(regular)) if regular.any() else count
    for i in special.tolist():  # in order: the header state depends on the lines before
        rule.first = rule.first and i < first_regular
        parsed[i] = rule.record(chunk[starts[i]:ends[i]].decode(), int(numbers[i]))
    rule.first = rule.first and not regular.any()
    if all(v is None for v in parsed.values()):  # the common case: ordinary lines only
        builder.add(RecordIndex.gather(buf, s[regular], p[regular]), p[regular] - s[regular], value[regular])
        return lineno + count
    # Records from both kinds of lines: add them in line order.
    pieces: list[bytes] = []
    labels: list[int] = []
    for i in np.flatnonzero(regular | unusual).tolist():
        if regular[i]:
            pieces.append(chunk[s[i]:p[i]])
            labels.append(int(value[i]))
        elif (record := parsed[i]) is not None:
            pieces.append(builder.stored(record[0], builder.count + len(pieces)))
            labels.append(record[1])
    builder.add_pieces(pieces, labels)
    return lineno + count
