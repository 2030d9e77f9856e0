"""MOSFLM orientation matrices under the port's names (``nanobrag_torch.io.mosflm``).

The file is read by ``nanobragg_jax.io.matrix`` (nine numbers, columns a*, b*, c*
times λ); the wavelength is divided out as the C program does (``-mat`` with ``-lambda``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Union

import numpy as np

from nanobragg_jax.io.matrix import read_mosflm_matrix as _read_matrix

__all__ = ["read_mosflm_matrix", "reciprocal_to_real_cell"]


def read_mosflm_matrix(filepath: Union[str, Path], wavelength_A: float):
    """``(a_star, b_star, c_star)`` in Å⁻¹ (NumPy float64 (3,) each) from a MOSFLM ``.mat``.

    The file holds a*·λ, b*·λ, c*·λ as its columns (λ in Å), so each is divided by λ.
    """
    if not wavelength_A or wavelength_A <= 0:
        raise ValueError("read_mosflm_matrix: wavelength_A must be positive")
    import os

    from nanobragg_jax.io.errors import InputFileError

    if not os.path.exists(filepath):
        raise FileNotFoundError(f"MOSFLM matrix file not found: {filepath}")
    try:
        m = _read_matrix(filepath) / float(wavelength_A)
    except InputFileError as exc:
        raise ValueError(f"a MOSFLM matrix file must contain exactly 9 numbers: {exc}") from exc
    return m[:, 0].copy(), m[:, 1].copy(), m[:, 2].copy()


def reciprocal_to_real_cell(a_star, b_star, c_star):
    """Cell constants ``(a, b, c, α, β, γ)`` (Å, degrees) of the lattice with these
    reciprocal vectors (Å⁻¹): a = (b* × c*)/V*, etc."""
    R = [np.asarray(v, np.float64).reshape(3) for v in (a_star, b_star, c_star)]
    v_star = float(np.dot(R[0], np.cross(R[1], R[2])))
    if v_star == 0.0:
        raise ValueError("reciprocal_to_real_cell: the reciprocal vectors are coplanar")
    a = np.cross(R[1], R[2]) / v_star
    b = np.cross(R[2], R[0]) / v_star
    c = np.cross(R[0], R[1]) / v_star

    def angle(u, v):
        cosine = float(np.dot(u, v) / (np.linalg.norm(u) * np.linalg.norm(v)))
        return math.degrees(math.acos(max(-1.0, min(1.0, cosine))))

    return (float(np.linalg.norm(a)), float(np.linalg.norm(b)), float(np.linalg.norm(c)),
            angle(b, c), angle(c, a), angle(a, b))
