"""Gradient-safe elementary functions (the double-``where`` pattern).

``jnp.where(cond, f(x), g(x))`` still differentiates both branches, so a branch
that is singular where it is not selected poisons the gradient with NaN.  Each
function here substitutes a harmless operand on the unselected side first.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import Array


def safe_sqrt(x: Array) -> Array:
    """sqrt(x) for x ≥ 0 with a zero (not infinite) derivative at x = 0."""
    positive = x > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, x, 1.0)), 0.0)


def safe_norm(v: Array) -> Array:
    """Euclidean norm over the last axis, differentiable at the zero vector."""
    return safe_sqrt(jnp.sum(v * v, axis=-1))


def safe_divide(num: Array, den: Array, fallback: Array | float = 0.0) -> Array:
    """num/den where den ≠ 0, else ``fallback``; finite gradients everywhere."""
    ok = den != 0
    return jnp.where(ok, num / jnp.where(ok, den, 1.0), fallback)


def clip_value_keep_gradient(x: Array, upper: Array | float) -> Array:
    """min(x, upper) in value, but with the derivative of x (straight-through).

    For clips that only guard against rounding (sin γ* ≤ 1): the analytic
    function never exceeds ``upper``, so its derivative is the right one even
    where rounding lands on or above the bound.  The value is exactly x for
    x ≤ upper and exactly ``upper`` for upper < x ≤ 2·upper (Sterbenz).
    """
    return x - jax.lax.stop_gradient(x - jnp.minimum(x, upper))
