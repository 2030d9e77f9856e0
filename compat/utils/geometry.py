"""Vector helpers under the port's names (``nanobrag_torch.utils.geometry``), evaluated by
``nanobragg_jax.geometry.vectors``.  Vectors have shape (..., 3); angles are radians."""

from __future__ import annotations

import jax.numpy as jnp

from nanobragg_jax.geometry import vectors as _v

from ._wrap import bridged

__all__ = ["dot_product", "cross_product", "magnitude", "unitize", "rotate_axis", "rotate_umat",
           "angles_to_rotation_matrix", "rotate_around_axis", "rotate_around_x", "rotate_around_y",
           "rotate_around_z"]


@bridged
def dot_product(x, y):
    """x·y over the last axis."""
    return _v.dot(jnp.asarray(x), jnp.asarray(y))


@bridged
def cross_product(x, y):
    """x × y over the last axis."""
    return _v.cross(jnp.asarray(x), jnp.asarray(y))


@bridged
def magnitude(vector):
    """|v| over the last axis."""
    v = jnp.asarray(vector)
    return jnp.sqrt(_v.dot(v, v))


@bridged
def unitize(vector):
    """``(v/|v|, |v|)``; the zero vector stays zero."""
    v = jnp.asarray(vector)
    return _v.unitize(v), jnp.sqrt(_v.dot(v, v))


@bridged
def rotate_axis(v, axis, phi):
    """Rodrigues rotation of ``v`` by ``phi`` about ``axis`` (normalised first)."""
    return _v.rotate_about_axis(jnp.asarray(v), _v.unitize(jnp.asarray(axis)), jnp.asarray(phi))


rotate_around_axis = rotate_axis


@bridged
def rotate_umat(v, umat):
    """``umat @ v`` over leading axes."""
    return jnp.einsum("...ij,...j->...i", jnp.asarray(umat), jnp.asarray(v))


@bridged
def angles_to_rotation_matrix(phi_x, phi_y, phi_z):
    """R = Rz Ry Rx: rotation about x, then y, then z (the C program's misset/detector order)."""
    return _v.rotation_xyz(jnp.stack([jnp.asarray(phi_x), jnp.asarray(phi_y), jnp.asarray(phi_z)]))


def _about(axis):
    @bridged
    def rotate(v, angle):
        v = jnp.asarray(v)
        return _v.rotate_about_axis(v, jnp.asarray(axis, v.dtype), jnp.asarray(angle))

    return rotate


rotate_around_x = _about((1.0, 0.0, 0.0))
rotate_around_y = _about((0.0, 1.0, 0.0))
rotate_around_z = _about((0.0, 0.0, 1.0))
