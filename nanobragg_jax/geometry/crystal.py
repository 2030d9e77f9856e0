"""Crystal lattice: cell constants ↔ real/reciprocal vectors, misset, φ and mosaic rotations.

Units: cell lengths in Å and angles in degrees at the edge; the real-space
vectors returned for the kernel are in metres, the reciprocal vectors in Å⁻¹
(the C program keeps them in Å⁻¹ for the spot-shape metric).

The construction follows the C program step by step so that rounding agrees:
reciprocal lengths and angles from the direct cell, a standard orientation with
a* along x, the misset rotation (x, then y, then z) applied to the reciprocal
vectors, then real vectors a = (b* × c*)·V, with the lengths of b*×c*, c*×a*,
a*×b* forced to a/V, b/V, c/V for a user cell, and finally reciprocal vectors
regenerated from the real ones.  Identities: a·a* = 1, a·b* = 0, V·V* = 1.
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
from jax import Array

from ..config import Params, Setup
from ..safe import clip_value_keep_gradient, safe_norm, safe_sqrt
from . import vectors as V

ANGSTROM = 1e-10


# What ``lattice`` reads (tests/test_program_keys.py records it; see detector.FRAME_SETUP_FIELDS).
LATTICE_SETUP_FIELDS = ("orientation",)
LATTICE_PARAM_FIELDS = ("cell", "recip_matrix", "misset")


class Lattice(NamedTuple):
    """Real vectors (rows a, b, c) in Å, reciprocal vectors (rows a*, b*, c*) in Å⁻¹."""

    real: Array  # (3, 3) Å
    reciprocal: Array  # (3, 3) Å⁻¹
    volume: Array  # Å³


def reciprocal_from_cell(cell: Array) -> tuple[Array, Array]:
    """Reciprocal vectors (rows, Å⁻¹) in the standard setting, and the cell volume (Å³).

    V = 2abc·sqrt(|sin s sin(s−α) sin(s−β) sin(s−γ)|) with s = (α+β+γ)/2;
    a* = bc sin α / V, …; cos α* = (cos β cos γ − cos α)/(sin β sin γ), …;
    a* ∥ x, b* in the xy plane.
    """
    a, b, c = cell[0], cell[1], cell[2]
    alpha, beta, gamma = jnp.deg2rad(cell[3]), jnp.deg2rad(cell[4]), jnp.deg2rad(cell[5])
    s = (alpha + beta + gamma) / 2.0
    skew = jnp.abs(jnp.sin(s) * jnp.sin(s - alpha) * jnp.sin(s - beta) * jnp.sin(s - gamma))
    volume = 2.0 * a * b * c * safe_sqrt(skew)
    vstar = 1.0 / volume
    a_len = b * c * jnp.sin(alpha) * vstar
    b_len = c * a * jnp.sin(beta) * vstar
    c_len = a * b * jnp.sin(gamma) * vstar
    cos_as = (jnp.cos(beta) * jnp.cos(gamma) - jnp.cos(alpha)) / (jnp.sin(beta) * jnp.sin(gamma))
    cos_bs = (jnp.cos(gamma) * jnp.cos(alpha) - jnp.cos(beta)) / (jnp.sin(gamma) * jnp.sin(alpha))
    cos_gs = (jnp.cos(alpha) * jnp.cos(beta) - jnp.cos(gamma)) / (jnp.sin(alpha) * jnp.sin(beta))
    # The C program clips sin γ* at 1 (rounding can push it a hair above).  The
    # clip is applied to the value only: a plain minimum would zero (or, at a
    # tie, halve) the derivative exactly at γ* = 90°, the common case.
    sin_gs = clip_value_keep_gradient(c * vstar / a_len / b_len, 1.0)
    zero = jnp.zeros_like(a_len)
    astar = jnp.stack([a_len, zero, zero])
    bstar = jnp.stack([b_len * cos_gs, b_len * sin_gs, zero])
    cstar = jnp.stack([
        c_len * cos_bs,
        c_len * (cos_as - cos_bs * cos_gs) / sin_gs,
        c_len * volume / (a * b * c * sin_gs),
    ])
    return jnp.stack([astar, bstar, cstar]), volume


def _rescale(v: Array, length: Array) -> Array:
    """Scale v to the given length (a zero vector is left as is, as in the C program)."""
    n = safe_norm(v)
    n = jnp.where(n <= 0.0, 1.0, n)
    return v * (length / n)


def lattice(setup: Setup, params: Params) -> Lattice:
    """Real and reciprocal vectors at φ = 0 with no mosaic rotation (Å, Å⁻¹)."""
    if setup.orientation == "matrix":
        recip = params.recip_matrix.T  # rows a*, b*, c*
        cell_lengths = None
    else:
        recip, volume0 = reciprocal_from_cell(params.cell)
        cell_lengths = params.cell[:3]
    recip = V.rotate_xyz(recip, jnp.deg2rad(params.misset))
    astar, bstar, cstar = recip[0], recip[1], recip[2]
    bxc = V.cross(bstar, cstar)
    cxa = V.cross(cstar, astar)
    axb = V.cross(astar, bstar)
    if cell_lengths is None:
        vstar = V.dot(astar, bxc)
    else:
        bxc = _rescale(bxc, cell_lengths[0] / volume0)
        cxa = _rescale(cxa, cell_lengths[1] / volume0)
        axb = _rescale(axb, cell_lengths[2] / volume0)
        vstar = 1.0 / volume0
    volume = 1.0 / vstar
    real = jnp.stack([bxc, cxa, axb]) * volume
    a, b, c = real[0], real[1], real[2]
    recip = jnp.stack([V.cross(b, c), V.cross(c, a), V.cross(a, b)]) * vstar
    return Lattice(real=real, reciprocal=recip, volume=volume)


def mosaic_matrices(params: Params) -> Array:
    """Mosaic-domain rotations (D, 3, 3): angle spread·cap about each fixed random axis."""
    angle = jnp.deg2rad(params.mosaic_spread) * params.mosaic_caps
    return V.axis_angle_matrix(params.mosaic_axes, angle)


def phi_angles(setup: Setup, params: Params) -> Array:
    """Spindle angles (rad) of the φ ticks: φ0 + tick·Δφ."""
    ticks = jnp.arange(setup.phisteps, dtype=params.phi0.dtype)
    return jnp.deg2rad(params.phi0 + params.phistep * ticks)


def rotated_real_vectors(setup: Setup, params: Params, real: Array) -> Array:
    """Real vectors (rows a, b, c; m) for every φ tick and mosaic domain: (Φ, D, 3, 3).

    The φ rotation about the spindle comes first, the domain's mosaic rotation
    after it (a = U·R_φ·a₀), as in the C program.  φ = 0 is no rotation.
    """
    spindle = V.unitize(params.spindle_axis)
    phis = phi_angles(setup, params)
    rotated = V.rotate_about_axis(real[None, :, :] * ANGSTROM, spindle, phis[:, None])  # (Φ,3,3)
    umats = mosaic_matrices(params)  # (D,3,3)
    return jnp.einsum("dij,pkj->pdki", umats, rotated)
