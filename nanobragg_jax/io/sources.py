"""Source-list files (``-sourcefile``): one X-ray source per line, ``X Y Z weight lambda``.

This reproduces the C program's ``read_text_file`` tokeniser, which is looser than a CSV reader:

* fields are separated by any run of the characters ``" \\t,;:!"`` (so ``1,,2`` is two fields);
* a line that is empty or holds only separators is skipped;
* each field's value is C ``atof`` of its text (the longest numeric prefix; text that is not a
  number gives 0.0 — ``nan`` gives NaN);
* after the value the reader skips the characters ``0123456789-+.EGeg``, then the rest of the
  field, then separators; a line with fewer than five fields leaves the missing trailing columns
  NaN (the caller substitutes defaults: position −10 m along the beam, weight 1,
  λ = ``-lambda``);
  columns after the fifth are ignored;
* when the last field of a line is not a number (``"abc"``, a ``# comment``), skipping it also
  skips the newline, so the C stores 0.0 — not NaN — in the remaining columns; this is
  reproduced.

Units as in the file (metres for X Y Z, metres for λ); no conversion here.

One C quirk is *not* reproduced by default: on a last line without a final newline, or on a line
ending in ``"\\r\\n"``, the C tokeniser runs past the end and stores 0.0 (not NaN) in the missing
columns, which turns a missing λ into 0.  Pass ``c_line_end_quirk=True`` to get the C values.
"""

from __future__ import annotations

import math
import os
from typing import Union

import numpy as np

from ._files import decode_text, read_input_bytes
from .errors import InputFileError
from .smv import c_atof

__all__ = ["read_source_file", "read_text_columns"]

PathLike = Union[str, "os.PathLike[str]"]

_DELIMITERS = " \t,;:!"
_NUMBER_CHARS = "0123456789-+.EGeg"


def _span(text: str, pos: int, chars: str) -> int:
    """Index after the run of ``chars`` starting at ``pos`` (C ``strspn``)."""
    n = len(text)
    while pos < n and text[pos] in chars:
        pos += 1
    return pos


def _cspan(text: str, pos: int, chars: str) -> int:
    """Index of the first character of ``chars`` at or after ``pos`` (C ``strcspn``)."""
    n = len(text)
    while pos < n and text[pos] not in chars:
        pos += 1
    return pos


def _parse_line(line: str, ncols: int) -> list[float] | None:
    """One line (including its ``"\\n"`` if any) → ``ncols`` values, or None for a blank line."""
    pos = _span(line, 0, _DELIMITERS)
    if line[pos:] == "\n":
        return None
    row = [math.nan] * ncols
    col = 0
    while True:
        row[col] = c_atof(line[pos:])
        pos = _span(line, pos, _NUMBER_CHARS)
        if line[pos:] == "\n":
            break
        pos = _cspan(line, pos, _DELIMITERS)
        pos = _span(line, pos, _DELIMITERS)
        if line[pos:] == "\n":
            break
        col += 1
        if col >= ncols:
            break
    return row


def _c_lines(text: str) -> list[str]:
    """Lines as ``fgets`` returns them: split after each ``"\\n"`` only, newline kept."""
    parts = text.split("\n")
    lines = [p + "\n" for p in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def read_text_columns(path: PathLike, ncols: int, c_line_end_quirk: bool = False) -> np.ndarray:
    """The C ``read_text_file`` for ``ncols`` columns: (lines, ncols) float64, NaN = missing.

    Raises:
        InputFileError: missing/unreadable file, or no data line at all.
    """
    text = decode_text(path, read_input_bytes(path, "text file"), "text file")
    rows: list[list[float]] = []
    for line in _c_lines(text):
        if not c_line_end_quirk:
            # treat CRLF and a missing final newline as an ordinary line end
            if line.endswith("\r\n"):
                line = line[:-2] + "\n"
            elif not line.endswith("\n"):
                line += "\n"
        row = _parse_line(line, ncols)
        if row is not None:
            rows.append(row)
    if not rows:
        raise InputFileError(path, "no data lines")
    return np.asarray(rows, dtype=np.float64).reshape(len(rows), ncols)


def read_source_file(path: PathLike, c_line_end_quirk: bool = False) -> np.ndarray:
    """Sources as an (n, 5) float64 array: X, Y, Z (m), weight, λ (m); NaN where missing.

    Raises:
        InputFileError: missing/unreadable file, or a file without any data line (the C program
            stops with "reading source definition file" then).
    """
    return read_text_columns(path, 5, c_line_end_quirk)
