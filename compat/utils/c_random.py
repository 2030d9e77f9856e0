"""The C program's random numbers under the port's names (``nanobrag_torch.utils.c_random``).

All draws come from ``nanobragg_jax.rng`` (Numerical Recipes ``ran1`` as compiled C,
mosaic rotations, ``umat2misset``).
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from nanobragg_jax import rng as _rng

from .._arrays import as_output, to_numpy

__all__ = ["CLCG", "mosaic_rotation_umat", "umat2misset"]


class CLCG:
    """``ran1`` seeded like the port's generator: ``CLCG(seed).ran1()`` is the C program's
    ``ran1(&idum)`` stream started from ``idum = -|seed|`` (seed 0 → 1; default 42)."""

    def __init__(self, seed: Optional[int] = None):
        self.seed = 42 if seed is None else int(seed)
        self._gen = _rng.Ran1(-abs(self.seed))

    def ran1(self) -> float:
        """Next uniform deviate in (0, 1) (the C ``float`` value)."""
        return self._gen()

    @property
    def idum(self) -> int:
        return self._gen.idum


def mosaic_rotation_umat(mosaicity: float, seed: Optional[int] = None, dtype: Any = None,
                         device: Any = None):
    """3×3 rotation by at most ``mosaicity`` (rad) about a random axis: the C
    ``mosaic_rotation_umat`` with a generator seeded as ``CLCG(seed)`` (three draws)."""
    gen = CLCG(seed)._gen
    umat = np.asarray(_rng.mosaic_rotation_umat(float(mosaicity), gen), np.float64).reshape(3, 3)
    return as_output(umat, dtype, device)


def umat2misset(umat: Any):
    """Misset angles ``(rotx, roty, rotz)`` (rad) of a rotation matrix (the C ``umat2misset``)."""
    return _rng.umat2misset(np.asarray(to_numpy(umat), np.float64).reshape(9))
