"""Three-vector algebra shared by the detector, crystal and beam geometry.

All functions are pure ``jax.numpy`` code on arrays whose last axis has length 3,
so they broadcast over leading axes and are safe under ``jit``, ``vmap`` and
``grad``.  Rotations follow the right-hand rule and act on column vectors.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import Array

from ..safe import safe_norm


def dot(u: Array, v: Array) -> Array:
    """Inner product over the last axis (length 3), broadcasting the leading axes.

    Written as u₀v₀ + u₁v₁ + u₂v₂ (the C program's order): XLA:CPU turns a
    multiply-and-reduce over a trailing axis of 3 into a YNNPACK fusion, which in float32
    was seen to return results wrong by ~0.3 % (jaxlib 0.10.2); plain arithmetic avoids it.
    """
    return u[..., 0] * v[..., 0] + u[..., 1] * v[..., 1] + u[..., 2] * v[..., 2]


def cross(u: Array, v: Array) -> Array:
    """Cross product over the last axis."""
    return jnp.cross(u, v)


def unitize(v: Array) -> Array:
    """v/|v|, with the zero vector mapped to zero (as the C program does)."""
    n = safe_norm(v)
    nonzero = n > 0
    return jnp.where(nonzero[..., None], v / jnp.where(nonzero, n, 1.0)[..., None], 0.0)


def rotate_about_axis(v: Array, axis: Array, angle: Array) -> Array:
    """Rodrigues rotation of ``v`` by ``angle`` (rad) about the unit vector ``axis``.

    v' = v cos φ + (k × v) sin φ + k (k·v)(1 − cos φ)
    """
    c = jnp.cos(angle)
    s = jnp.sin(angle)
    c = jnp.asarray(c)[..., None]
    s = jnp.asarray(s)[..., None]
    return axis * (dot(axis, v)[..., None] * (1.0 - c)) + v * c + cross(axis, v) * s


def rotation_x(angle: Array) -> Array:
    """3×3 matrix of a right-handed rotation by ``angle`` (rad) about x."""
    c, s = jnp.cos(angle), jnp.sin(angle)
    o, z = jnp.ones_like(c), jnp.zeros_like(c)
    return jnp.stack([jnp.stack([o, z, z]), jnp.stack([z, c, -s]), jnp.stack([z, s, c])])


def rotation_y(angle: Array) -> Array:
    """3×3 matrix of a right-handed rotation by ``angle`` (rad) about y."""
    c, s = jnp.cos(angle), jnp.sin(angle)
    o, z = jnp.ones_like(c), jnp.zeros_like(c)
    return jnp.stack([jnp.stack([c, z, s]), jnp.stack([z, o, z]), jnp.stack([-s, z, c])])


def rotation_z(angle: Array) -> Array:
    """3×3 matrix of a right-handed rotation by ``angle`` (rad) about z."""
    c, s = jnp.cos(angle), jnp.sin(angle)
    o, z = jnp.ones_like(c), jnp.zeros_like(c)
    return jnp.stack([jnp.stack([c, -s, z]), jnp.stack([s, c, z]), jnp.stack([z, z, o])])


def rotation_xyz(angles: Array) -> Array:
    """Matrix applying rotations about x, then y, then z (rad): R = Rz Ry Rx.

    This is the order the C program uses for detector rotations and misset angles.
    """
    return rotation_z(angles[2]) @ rotation_y(angles[1]) @ rotation_x(angles[0])


def rotate_xyz(v: Array, angles: Array) -> Array:
    """Rotate ``v`` about x, then y, then z by ``angles`` (rad)."""
    return v @ rotation_xyz(angles).T


def axis_angle_matrix(axis: Array, angle: Array) -> Array:
    """Rotation matrix for ``angle`` (rad) about the unit vector ``axis``.

    R = cos φ I + sin φ [k]× + (1 − cos φ) k kᵀ (the mosaic-domain rotation).
    """
    c = jnp.cos(angle)[..., None, None]
    s = jnp.sin(angle)[..., None, None]
    kx, ky, kz = axis[..., 0], axis[..., 1], axis[..., 2]
    zero = jnp.zeros_like(kx)
    skew = jnp.stack(
        [jnp.stack([zero, -kz, ky], -1), jnp.stack([kz, zero, -kx], -1), jnp.stack([-ky, kx, zero], -1)],
        -2,
    )
    outer = axis[..., :, None] * axis[..., None, :]
    eye = jnp.eye(3, dtype=axis.dtype)
    return c * eye + s * skew + (1.0 - c) * outer
