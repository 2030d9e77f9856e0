"""Source-list files under the port's name (``nanobrag_torch.io.source``).

Parsed by ``nanobragg_jax.io.sources`` (the C program's tokenizer).  Missing columns get
the C defaults: position −source_distance·beam, weight 1, λ = the default wavelength.
Lines starting with ``#`` are skipped, as the port does.  As in the C program, the
file's wavelengths are used (the port replaces them with the
default wavelength; docs/migration.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from nanobragg_jax.io.sources import read_source_file

from .._arrays import as_output, to_numpy

__all__ = ["read_sourcefile"]


def _read_without_comments(filepath) -> np.ndarray:
    """The core's reader on the file less its ``#`` comment lines (the port skips them; the
    C tokenizer would read a comment line as a source at the sample)."""
    import os
    import tempfile

    with open(filepath, "r", encoding="latin-1") as fh:
        lines = fh.readlines()
    kept = [ln for ln in lines if not ln.lstrip().startswith("#")]
    if len(kept) == len(lines):
        return read_source_file(str(filepath))
    fd, tmp = tempfile.mkstemp(suffix=".txt")
    try:
        with os.fdopen(fd, "w", encoding="latin-1") as fh:
            fh.writelines(kept)
        return read_source_file(tmp)
    finally:
        os.unlink(tmp)


def read_sourcefile(filepath: Path, default_wavelength_m: float, default_source_distance_m: float = 10.0,
                    beam_direction: Any = None, dtype: Any = None, device: Any = None):
    """``(directions (N, 3) unit vectors from the sample toward each source,
    weights (N,), wavelengths (N,) in metres)``."""
    from nanobragg_jax.io.errors import InputFileError

    try:
        rows = np.array(_read_without_comments(filepath), np.float64)
    except InputFileError as exc:
        raise ValueError(f"No valid source lines found in {filepath}: {exc}") from exc
    beam = np.array([0.0, 0.0, 1.0]) if beam_direction is None else np.asarray(to_numpy(beam_direction), np.float64)
    default_pos = -float(default_source_distance_m) * beam
    for k in range(3):
        rows[:, k] = np.where(np.isnan(rows[:, k]), default_pos[k], rows[:, k])
    rows[:, 3] = np.where(np.isnan(rows[:, 3]), 1.0, rows[:, 3])
    rows[:, 4] = np.where(np.isnan(rows[:, 4]), float(default_wavelength_m), rows[:, 4])
    norms = np.linalg.norm(rows[:, :3], axis=1, keepdims=True)
    if np.any(norms == 0):
        raise ValueError(f"{filepath}: a source lies at the sample (X Y Z all zero)")
    directions = rows[:, :3] / norms
    return (as_output(directions, dtype, device), as_output(rows[:, 3], dtype, device),
            as_output(rows[:, 4], dtype, device))
