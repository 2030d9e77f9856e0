"""8-bit PGM previews under the port's name (``nanobrag_torch.io.pgm``), written by
``nanobragg_jax.io.pgm`` (the C program's ``-pgmfile``: P5, one comment line with the
scale, grey = floor(min(255, pixel·scale)))."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Union

import numpy as np

from nanobragg_jax.io.pgm import write_pgm as _write_pgm

from .._arrays import to_numpy

__all__ = ["write_pgm"]


def write_pgm(filepath: Union[str, Path], image_data: Any, pgm_scale: float = 1.0) -> None:
    """Write ``image_data`` (slow, fast) as a binary PGM scaled by ``pgm_scale``."""
    image = np.asarray(to_numpy(image_data), np.float32)
    if image.ndim != 2:
        raise ValueError(f"write_pgm: image must be 2-D (slow, fast), got shape {image.shape}")
    _write_pgm(str(filepath), image, float(pgm_scale))
