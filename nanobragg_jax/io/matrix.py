"""MOSFLM orientation ("A") matrix files.

The file holds the reciprocal cell vectors scaled by the wavelength the matrix was refined at
(MOSFLM convention): the C program reads the first nine numbers with three
``fscanf("%lg%lg%lg")`` calls into ``a*[i], b*[i], c*[i]`` for i = x, y, z, so the file's
*rows* are the x, y and z components and its *columns* are a*, b*, c*.  Anything after the nine
numbers (MOSFLM writes missetting angles, cell and so on) is ignored.  Units: Å⁻¹ times the
wavelength in Å, i.e. dimensionless; the caller divides by λ.
"""

from __future__ import annotations

import os
from typing import Union

import numpy as np

from ._files import decode_text, read_input_bytes
from .errors import InputFileError

__all__ = ["read_mosflm_matrix"]

PathLike = Union[str, "os.PathLike[str]"]


def read_mosflm_matrix(path: PathLike) -> np.ndarray:
    """The first nine numbers of a MOSFLM matrix file as a (3, 3) float64 array.

    ``M[i, j]`` is component i (x, y, z) of reciprocal vector j (a*, b*, c*): columns are the
    vectors, ``M[:, 0]`` is a*·λ.  Numbers are separated by any white space (line breaks do
    not matter, as with ``fscanf``).

    Raises:
        InputFileError: missing/unreadable file, fewer than nine numbers, or a token among the
            first nine that is not a finite number.
    """
    text = decode_text(path, read_input_bytes(path, "matrix file"), "matrix file")
    tokens = text.split()
    if len(tokens) < 9:
        raise InputFileError(path, f"matrix file needs 9 numbers, found {len(tokens)} field(s)")
    values = []
    for n, tok in enumerate(tokens[:9], start=1):
        try:
            v = float(tok)
        except ValueError:
            raise InputFileError(path, f"matrix element {n} is not a number: {tok!r}") from None
        if not np.isfinite(v):
            raise InputFileError(path, f"matrix element {n} is not finite: {tok!r}")
        values.append(v)
    return np.asarray(values, dtype=np.float64).reshape(3, 3)
