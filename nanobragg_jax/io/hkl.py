"""Structure-factor input: text HKL files and the C program's binary ``Fdump.bin`` cache.

Grid layout (the C program's, kept so that its nearest-neighbour and interpolation indexing can
be reproduced): for indices spanning ``h_min..h_max`` (``h_range = h_max - h_min + 1``, likewise
k, l) the grid has shape ``(h_range + 1, k_range + 1, l_range + 1)`` — one extra layer of zeros
on the high side of each axis.  ``F(h, k, l)`` lives at ``grid[h - h_min, k - k_min, l - l_min]``.
When a non-zero ``default_F`` is given, only the inner ``h_range × k_range × l_range`` block is
filled with it (the padding layer stays 0), then the file's values are written in file order
(a repeated hkl: the last one wins).

Text format: one reflection per line, ``h k l F`` separated by white space; further columns
(sigma, phase …) are ignored, blank lines and comment lines (first character ``#`` or ``!``)
are skipped.  The C program instead reads numbers four at a time with ``fscanf``, so extra
columns shift its reading (it misreads six-column files) and it stops silently at the first token
that is not a number — at the first comment line, too; we skip comment lines and reject every
other line that is not ``h k l F``, naming the line and column.  Numbers are what C's ``atof``
reads in full: ASCII decimal, no ``1_0`` or non-ASCII digits (Python's ``float`` takes those).
The index ranges are bounded so that the dense grid fits in memory
(:data:`MAX_GRID_VALUES`).

``Fdump.bin``: the text line ``"h_min h_max k_min k_max l_min l_max\\n"``, one form feed, then
the whole padded grid as native-endian float64 in C order (h slowest, l fastest).
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from typing import Union

import numpy as np

from ._files import COMMENT_START, atomic_write_bytes, decode_text, parse_number, read_input_bytes
from .errors import InputFileError

__all__ = ["HKLData", "read_hkl", "write_fdump", "read_fdump", "hkl_grid_shape", "check_grid_size",
           "MAX_GRID_VALUES"]

PathLike = Union[str, "os.PathLike[str]"]


@dataclass(frozen=True, eq=False)
class HKLData:
    """A dense structure-factor grid with the C program's index bounds.

    Attributes:
        grid: float64 array, shape ``(h_range+1, k_range+1, l_range+1)`` including the C's
            padding layer; ``F(h,k,l) = grid[h-h_min, k-k_min, l-l_min]`` (electrons, |F|).
        h_min, k_min, l_min, h_max, k_max, l_max: index bounds present in the file.
        count: number of reflections as the C program counts them (``hkls``): lines read from a
            text file (repeats included), ``h_range*k_range*l_range`` for an Fdump file.
    """

    grid: np.ndarray
    h_min: int
    k_min: int
    l_min: int
    h_max: int
    k_max: int
    l_max: int
    count: int

    @property
    def ranges(self) -> tuple[int, int, int]:
        """(h_range, k_range, l_range) = max - min + 1 per axis."""
        return (
            self.h_max - self.h_min + 1,
            self.k_max - self.k_min + 1,
            self.l_max - self.l_min + 1,
        )

    @property
    def mins(self) -> tuple[int, int, int]:
        """(h_min, k_min, l_min)."""
        return (self.h_min, self.k_min, self.l_min)

    @property
    def maxs(self) -> tuple[int, int, int]:
        """(h_max, k_max, l_max)."""
        return (self.h_max, self.k_max, self.l_max)

    def value(self, h: int, k: int, l: int) -> float:
        """F at integer (h, k, l); raises IndexError outside the file's bounds."""
        if not (
            self.h_min <= h <= self.h_max
            and self.k_min <= k <= self.k_max
            and self.l_min <= l <= self.l_max
        ):
            raise IndexError(f"hkl ({h}, {k}, {l}) outside the grid")
        return float(self.grid[h - self.h_min, k - self.k_min, l - self.l_min])


def hkl_grid_shape(mins: tuple[int, int, int], maxs: tuple[int, int, int]) -> tuple[int, int, int]:
    """Padded grid shape ``(range + 1)`` per axis for the given inclusive bounds."""
    return tuple(int(b) - int(a) + 2 for a, b in zip(mins, maxs))  # type: ignore[return-value]


MAX_GRID_VALUES = 2**28
"""Largest dense structure-factor grid we build (2**28 float64 values = 2 GiB): |h|, |k|, |l|
up to ±320 together.  Larger spans are almost always a wrong column or a garbled index."""

MAX_INDEX = 10**6
"""Largest |h|, |k|, |l| accepted on a line (beyond it, the line is named as the culprit)."""

def _fields_with_columns(line: str) -> list[tuple[str, int]]:
    """White-space separated fields and their 1-based character columns."""
    return [(m.group(0), m.start() + 1) for m in re.finditer(r"\S+", line)]


def _parse_hkl_lines(path: PathLike, text: str) -> tuple[np.ndarray, np.ndarray]:
    """Indices (n, 3) int64 and amplitudes (n,) float64 from the text, in file order."""
    hkl_rows: list[tuple[int, int, int]] = []
    amps: list[float] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        fields = _fields_with_columns(line)
        if not fields or fields[0][0].startswith(COMMENT_START):
            continue  # blank or comment line
        if len(fields) < 4:
            raise InputFileError(
                path, f"line {lineno}: expected 'h k l F', found {len(fields)} field(s)"
            )
        index = []
        for name, (token, col) in zip("hkl", fields[:3]):
            try:
                value = parse_number(token)
            except ValueError:
                value = math.nan
            if not math.isfinite(value) or value != math.floor(value):
                raise InputFileError(
                    path, f"line {lineno}, column {col}: {name} is not an integer: {token!r}"
                )
            if abs(value) > MAX_INDEX:
                raise InputFileError(
                    path, f"line {lineno}, column {col}: {name} = {token} is not a plausible "
                    f"Miller index (|{name}| > {MAX_INDEX})"
                )
            index.append(int(value))
        token, col = fields[3]
        try:
            amp = parse_number(token)
        except ValueError as exc:
            raise InputFileError(path, f"line {lineno}, column {col}: F is {exc}: {token!r}") from None
        hkl_rows.append((index[0], index[1], index[2]))
        amps.append(amp)
    if not hkl_rows:
        raise InputFileError(path, "no reflections (empty HKL file)")
    return np.asarray(hkl_rows, dtype=np.int64), np.asarray(amps, dtype=np.float64)


def check_grid_size(path: PathLike, mins, maxs) -> None:
    """Refuse index spans whose dense grid would not fit (see :data:`MAX_GRID_VALUES`)."""
    shape = hkl_grid_shape(tuple(mins), tuple(maxs))
    n = int(shape[0]) * int(shape[1]) * int(shape[2])
    if n > MAX_GRID_VALUES:
        spans = ", ".join(f"{a} {lo}..{hi}" for a, lo, hi in zip("hkl", mins, maxs))
        raise InputFileError(
            path, f"the indices span {spans}: a dense grid of {n:.3g} structure factors "
            f"({8 * n / 2**30:.3g} GiB), more than the {MAX_GRID_VALUES:.3g} allowed; "
            "is a column or an index wrong?"
        )


def read_hkl(path: PathLike, default_F: float = 0.0) -> HKLData:
    """Read a text HKL file into the C program's padded dense grid.

    Args:
        path: text file, one ``h k l F [ignored columns…]`` per line.
        default_F: amplitude of reflections missing from the file (C ``-default_F``); fills the
            inner ``h_range × k_range × l_range`` block only, the padding layer stays 0.

    Raises:
        InputFileError: missing/unreadable file, no reflections, a line with fewer than four
            fields, non-integral h k l (the C program warns about those and then misreads), or
            an F that is not a number.
    """
    text = decode_text(path, read_input_bytes(path, "HKL file"), "HKL file")
    idx, amps = _parse_hkl_lines(path, text)
    mins = idx.min(axis=0)
    maxs = idx.max(axis=0)
    check_grid_size(path, mins, maxs)
    shape = hkl_grid_shape(tuple(mins), tuple(maxs))
    grid = np.zeros(shape, dtype=np.float64)
    if default_F != 0.0:
        grid[:-1, :-1, :-1] = default_F
    rel = idx - mins
    # fancy-index assignment writes in order, so a repeated hkl keeps its last value
    grid[rel[:, 0], rel[:, 1], rel[:, 2]] = amps
    return HKLData(
        grid=grid,
        h_min=int(mins[0]),
        k_min=int(mins[1]),
        l_min=int(mins[2]),
        h_max=int(maxs[0]),
        k_max=int(maxs[1]),
        l_max=int(maxs[2]),
        count=int(len(amps)),
    )


def _fdump_header(hkl: HKLData) -> bytes:
    """The Fdump text header, bounds in the C order (h_min h_max k_min k_max l_min l_max)."""
    return (
        f"{hkl.h_min} {hkl.h_max} {hkl.k_min} {hkl.k_max} {hkl.l_min} {hkl.l_max}\n\f"
    ).encode("ascii")


def write_fdump(path: PathLike, hkl: HKLData) -> None:
    """Write ``hkl`` as the C program's ``Fdump.bin`` (byte-identical to the C writer).

    The grid must have the padded shape ``(range+1, …)``; values are written as native-endian
    float64, h slowest, l fastest.  Written atomically.
    """
    expected = hkl_grid_shape(hkl.mins, hkl.maxs)
    grid = np.asarray(hkl.grid, dtype=np.float64)
    if grid.shape != expected:
        raise ValueError(f"grid shape {grid.shape} does not match bounds (expected {expected})")
    atomic_write_bytes(path, _fdump_header(hkl) + np.ascontiguousarray(grid).tobytes())


def read_fdump(path: PathLike) -> HKLData:
    """Read a ``Fdump.bin`` written by the C program or :func:`write_fdump`.

    The header is taken as one text line followed by exactly one form feed.  (The C reader's
    ``fscanf("%d…\\n\\f")`` skips *any* white space after the numbers, so it misreads its own file
    when the first double happens to start with a white-space byte; we do not copy that.)

    Raises:
        InputFileError: missing/unreadable file, bad header, or too little data for the bounds.
    """
    raw = read_input_bytes(path, "Fdump file")
    newline = raw.find(b"\n", 0, 512)
    if newline < 0:
        raise InputFileError(path, "not an Fdump file (no header line)")
    try:
        bounds = [int(t) for t in raw[:newline].decode("ascii").split()]
    except (UnicodeDecodeError, ValueError):
        bounds = []
    if len(bounds) != 6:
        raise InputFileError(path, "not an Fdump file (header must hold six integers)")
    if raw[newline + 1 : newline + 2] != b"\f":
        raise InputFileError(path, "not an Fdump file (no form feed after the header)")
    h_min, h_max, k_min, k_max, l_min, l_max = bounds
    if h_max < h_min or k_max < k_min or l_max < l_min:
        raise InputFileError(path, f"Fdump bounds are empty: {bounds}")
    check_grid_size(path, (h_min, k_min, l_min), (h_max, k_max, l_max))
    shape = hkl_grid_shape((h_min, k_min, l_min), (h_max, k_max, l_max))
    n = shape[0] * shape[1] * shape[2]
    data = raw[newline + 2 :]
    if len(data) < 8 * n:
        raise InputFileError(
            path, f"Fdump data truncated: {len(data)} bytes for a grid of {n} doubles"
        )
    grid = np.frombuffer(data, dtype=np.float64, count=n).reshape(shape).copy()
    if not np.all(np.isfinite(grid)):
        bad = int(np.count_nonzero(~np.isfinite(grid)))
        raise InputFileError(path, f"{bad} structure factors are not finite (NaN or Inf): a garbled "
                             "or foreign Fdump file; delete it or give -hkl")
    return HKLData(
        grid=grid,
        h_min=h_min,
        k_min=k_min,
        l_min=l_min,
        h_max=h_max,
        k_max=k_max,
        l_max=l_max,
        count=(h_max - h_min + 1) * (k_max - k_min + 1) * (l_max - l_min + 1),
    )
