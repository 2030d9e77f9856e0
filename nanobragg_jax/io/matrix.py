"""MOSFLM orientation ("A") matrix files.

The file holds the reciprocal cell vectors scaled by the wavelength the matrix was refined at
(MOSFLM convention): the C program reads the first nine numbers with three
``fscanf("%lg%lg%lg")`` calls into ``a*[i], b*[i], c*[i]`` for i = x, y, z, so the file's
*rows* are the x, y and z components and its *columns* are a*, b*, c*.  Anything after the nine
numbers (MOSFLM writes missetting angles, cell and so on) is ignored.  Comment lines (first
character ``#`` or ``!``, as in the HKL reader) are skipped; the C program's ``fscanf`` would
stop at them and leave the matrix unread.  Units: Å⁻¹ times the
wavelength in Å, i.e. dimensionless; the caller divides by λ.
"""

from __future__ import annotations

import os
import re
from typing import Union

import numpy as np

from ._files import COMMENT_START, decode_text, parse_number, read_input_bytes
from .errors import InputFileError

__all__ = ["read_mosflm_matrix"]

PathLike = Union[str, "os.PathLike[str]"]


def read_mosflm_matrix(path: PathLike) -> np.ndarray:
    """The first nine numbers of a MOSFLM matrix file as a (3, 3) float64 array.

    ``M[i, j]`` is component i (x, y, z) of reciprocal vector j (a*, b*, c*): columns are the
    vectors, ``M[:, 0]`` is a*·λ.  Numbers are separated by any white space (line breaks do
    not matter, as with ``fscanf``); comment lines are skipped.

    Raises:
        InputFileError: missing/unreadable file, fewer than nine numbers, or a token among the
            first nine that is not a finite number.
    """
    text = decode_text(path, read_input_bytes(path, "matrix file"), "matrix file")
    # blank out comment lines, keeping the line count for the error positions below
    text = "\n".join("" if line.lstrip().startswith(COMMENT_START) else line for line in text.split("\n"))
    tokens = text.split()
    if len(tokens) < 9:
        raise InputFileError(path, f"matrix file needs 9 numbers, found {len(tokens)} field(s)")
    values = []
    for n, tok in enumerate(tokens[:9], start=1):
        try:
            values.append(parse_number(tok))
        except ValueError as exc:
            line, col = _line_column(text, tok, n)
            raise InputFileError(
                path, f"line {line}, column {col}: matrix element {n} is {exc}: {tok!r}"
            ) from None
    return np.asarray(values, dtype=np.float64).reshape(3, 3)


def _line_column(text: str, token: str, n: int) -> tuple[int, int]:
    """1-based line and column of the n-th white-space separated token (``token``)."""
    for k, m in enumerate(re.finditer(r"\S+", text), start=1):
        if k == n:
            line = text.count("\n", 0, m.start()) + 1
            col = m.start() - (text.rfind("\n", 0, m.start()) + 1) + 1
            return line, col
    return 0, 0  # pragma: no cover - n is always within the tokens
