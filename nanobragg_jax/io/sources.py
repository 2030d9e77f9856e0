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
  skips the newline, so the C stores 0.0 — not NaN — in the remaining columns.

What we do differently, on purpose: every field of the first ``ncols`` must be a number in
full (ASCII decimal, as C ``atof`` reads all of it) and finite.  The C program reads the word
``zero`` as 0.0, an explicit ``nan`` as NaN — which the caller would take for "missing" — and
``1.5abc`` as 1.5; we raise :class:`InputFileError` naming the line and column instead.  Lines
that are well formed give exactly the C program's values.

A line whose first non-blank character is ``#`` is a comment and is skipped (ours, and only in
the strict mode: the C program reads such a line as a source at the origin with weight 0 and
λ = 0, which adds a spurious source to the count it divides the image by).

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

from ._files import decode_text, parse_number, read_input_bytes
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


def _check_fields(path: PathLike, lineno: int, line: str, ncols: int) -> None:
    """Every one of the first ``ncols`` fields is a finite number (else InputFileError)."""
    pos = 0
    n = len(line)
    for field_no in range(1, ncols + 1):
        pos = _span(line, pos, _DELIMITERS + "\r\n")
        if pos >= n:
            return
        end = _cspan(line, pos, _DELIMITERS + "\r\n")
        token = line[pos:end]
        try:
            parse_number(token)
        except ValueError as exc:
            raise InputFileError(
                path, f"line {lineno}, column {pos + 1}: field {field_no} is {exc}: {token!r}"
            ) from None
        pos = end


def _c_lines(text: str) -> list[str]:
    """Lines as ``fgets`` returns them: split after each ``"\\n"`` only, newline kept."""
    parts = text.split("\n")
    lines = [p + "\n" for p in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def read_text_columns(path: PathLike, ncols: int, c_line_end_quirk: bool = False,
                      what: str = "text file", strict: bool = True, comments: str = "") -> np.ndarray:
    """The C ``read_text_file`` for ``ncols`` columns: (lines, ncols) float64, NaN = missing.

    Raises:
        InputFileError: missing/unreadable file, a field among the first ``ncols`` of a line
            that is not a finite number (line and column named; only with ``strict``, the
            default — ``strict=False`` reads every field like the C program), or no data line.

    ``comments``: lines whose first non-blank character is one of these are skipped.
    """
    text = decode_text(path, read_input_bytes(path, what), what)
    rows: list[list[float]] = []
    for lineno, line in enumerate(_c_lines(text), start=1):
        if comments and line.lstrip(" \t")[:1] in tuple(comments):
            continue
        if strict:
            _check_fields(path, lineno, line, ncols)
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


def read_source_file(path: PathLike, c_line_end_quirk: bool = False, strict: bool = True) -> np.ndarray:
    """Sources as an (n, 5) float64 array: X, Y, Z (m), weight, λ (m); NaN where missing.

    Args:
        strict: refuse fields that are not finite numbers in full and skip ``#`` comment lines
            (default); False reads them like the C program (``zero`` → 0.0, ``nan`` → NaN =
            missing, ``1.5abc`` → 1.5, a comment line → a source of zeros).

    Raises:
        InputFileError: missing/unreadable file, a malformed field (``strict``), or a file
            without any data line (the C program stops with "reading source definition file").
    """
    return read_text_columns(path, 5, c_line_end_quirk, what="source file", strict=strict,
                             comments="#" if strict else "")
