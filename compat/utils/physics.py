"""Physics helpers under the port's names (``nanobrag_torch.utils.physics``).

Every function evaluates the core's definition (``nanobragg_jax.physics``): sincg,
sinc3, the Kahn polarisation factor, and the cubic Lagrange weights of the tricubic
structure-factor interpolation (``polint`` / ``polin2`` / ``polin3`` and their batched
``*_vectorized`` forms, which are the same functions here: everything broadcasts).
"""

from __future__ import annotations

import jax.numpy as jnp

from nanobragg_jax import physics as _p
from nanobragg_jax.geometry.vectors import unitize as _unit

from ._wrap import bridged

__all__ = ["sincg", "sinc3", "polarization_factor", "polint", "polin2", "polin3", "polint_vectorized",
           "polin2_vectorized", "polin3_vectorized"]


@bridged
def sincg(u, N):
    """sin(N u)/sin(u) (u = π h); N at u = kπ with the grating's sign."""
    u = jnp.asarray(u)
    return _p.sincg(u, jnp.asarray(N, u.dtype))


@bridged
def sinc3(x):
    """3 (sin x − x cos x)/x³; 1 at x = 0."""
    return _p.sinc3(jnp.asarray(x))


@bridged
def polarization_factor(kahn_factor, incident, diffracted, axis):
    """½(1 + cos²2θ − K cos 2ψ sin²2θ); the vectors are normalised first."""
    incident, diffracted, axis = (_unit(jnp.asarray(v)) for v in (incident, diffracted, axis))
    return _p.polarization_factor(jnp.asarray(kahn_factor, incident.dtype), incident, diffracted, axis)


def _weights(xa, x):
    """Cubic Lagrange weights (..., 4) at ``x`` for four equally spaced nodes ``xa`` (..., 4).

    The core's weights are for the unit-spaced nodes x0−1 … x0+2 (the C program's
    neighbourhood); equally spaced nodes map onto them by t = (x − xa₁)/(xa₂ − xa₁).
    """
    xa = jnp.asarray(xa)
    x = jnp.asarray(x, xa.dtype)
    step = xa[..., 2] - xa[..., 1]
    t = (x - xa[..., 1]) / step
    return _p._lagrange_weights(t, jnp.zeros_like(t))


@bridged
def polint(xa, ya, x):
    """4-point Lagrange interpolation of (xa, ya) at x (the C ``polint``; equally spaced xa)."""
    return jnp.sum(_weights(xa, x) * jnp.asarray(ya), axis=-1)


@bridged
def polin2(x1a, x2a, ya, x1, x2):
    """Bicubic interpolation of ya (..., 4, 4) at (x1, x2) (the C ``polin2``)."""
    w1, w2 = _weights(x1a, x1), _weights(x2a, x2)
    return jnp.einsum("...i,...j,...ij->...", w1, w2, jnp.asarray(ya))


@bridged
def polin3(x1a, x2a, x3a, ya, x1, x2, x3):
    """Tricubic interpolation of ya (..., 4, 4, 4) at (x1, x2, x3) (the C ``polin3``)."""
    w1, w2, w3 = _weights(x1a, x1), _weights(x2a, x2), _weights(x3a, x3)
    return jnp.einsum("...i,...j,...k,...ijk->...", w1, w2, w3, jnp.asarray(ya))


polint_vectorized = polint
polin2_vectorized = polin2
polin3_vectorized = polin3
