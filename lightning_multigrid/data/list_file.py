"""One line of a Kinetics-style video list: ``path label``, the label being the last field.

See :class:`~.datasets.CsvVideoDataset` for the whole rule (headers, comments, quoting).
"""

from __future__ import annotations

import re

__all__ = ["parse_list_line"]

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
