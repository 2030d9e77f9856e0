"""Structure-factor files under the port's names (``nanobrag_torch.io.hkl``).

Reading and writing are ``nanobragg_jax.io.hkl``'s (the C program's formats); this
module only converts between the core's padded ``HKLData`` and the port's
``(F_grid, metadata)`` pair: ``F_grid[h-h_min, k-k_min, l-l_min]`` without the C
padding layer, ``metadata`` with ``h_min … l_max`` and ``h_range … l_range``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

import numpy as np

from nanobragg_jax.io import hkl as _hkl

from .._arrays import as_output, to_numpy

__all__ = ["read_hkl_file", "write_fdump", "read_fdump", "try_load_hkl_or_fdump"]


def _metadata(data: "_hkl.HKLData") -> dict:
    h, k, l = data.ranges  # noqa: E741
    return {"h_min": data.h_min, "h_max": data.h_max, "k_min": data.k_min, "k_max": data.k_max,
            "l_min": data.l_min, "l_max": data.l_max, "h_range": h, "k_range": k, "l_range": l}


def _port_pair(data: "_hkl.HKLData", device: Any, dtype: Any):
    grid = np.asarray(data.grid)[:-1, :-1, :-1]
    return as_output(grid, dtype, device), _metadata(data)


def read_hkl_file(filepath: str, default_F: float = 0.0, device: Any = None, dtype: Any = None):
    """``(F_grid, metadata)`` of an ``h k l F`` text file; reflections missing from the
    file get ``default_F`` (the C program's rule)."""
    return _port_pair(_hkl.read_hkl(filepath, default_F=float(default_F)), device, dtype)


def _core_data(F_grid: Any, metadata: dict) -> "_hkl.HKLData":
    grid = np.asarray(to_numpy(F_grid), np.float64)
    padded = np.zeros(tuple(n + 1 for n in grid.shape), np.float64)
    padded[:-1, :-1, :-1] = grid
    m = metadata
    return _hkl.HKLData(grid=padded, h_min=int(m["h_min"]), k_min=int(m["k_min"]), l_min=int(m["l_min"]),
                        h_max=int(m["h_max"]), k_max=int(m["k_max"]), l_max=int(m["l_max"]),
                        count=int(grid.size))


def write_fdump(F_grid: Any, metadata: dict, filepath: str) -> None:
    """Write the C program's binary ``Fdump.bin`` (padded float64 grid after a text header)."""
    _hkl.write_fdump(filepath, _core_data(F_grid, metadata))


def read_fdump(filepath: str, device: Any = None, dtype: Any = None):
    """``(F_grid, metadata)`` of a ``Fdump.bin`` file (the padding layer dropped)."""
    return _port_pair(_hkl.read_fdump(filepath), device, dtype)


def try_load_hkl_or_fdump(hkl_path: Optional[str] = None, fdump_path: str = "Fdump.bin",
                          default_F: float = 0.0, write_cache: bool = True, device: Any = None,
                          dtype: Any = None):
    """The C program's order: the HKL file when given (and cache it as ``fdump_path``),
    else ``fdump_path`` when it exists, else ``(None, None)``."""
    if hkl_path and Path(hkl_path).exists():
        grid, meta = read_hkl_file(hkl_path, default_F, device, dtype)
        if write_cache:
            try:
                write_fdump(grid, meta, fdump_path)
            except OSError as exc:
                print(f"Warning: could not write the Fdump cache {fdump_path}: {exc}")
        return grid, meta
    if fdump_path and os.path.exists(fdump_path):
        try:
            return read_fdump(fdump_path, device, dtype)
        except (OSError, ValueError) as exc:
            print(f"Warning: could not read the Fdump cache {fdump_path}: {exc}")
    return None, None
