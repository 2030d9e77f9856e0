"""Frozen dataclass pytrees with static fields, and invariant checks that skip tracers.

``model_class`` turns a class into a frozen dataclass registered with JAX: fields
declared with ``static(...)`` are pytree metadata (hashable; they select shapes and
code paths, so changing them recompiles), every other field is a child (arrays,
or nested model classes).

Why not ``jax.tree_util.register_dataclass``: its unflatten calls ``__init__``,
and so would run the invariant checks on every tree JAX rebuilds — a gradient
(``jax.grad`` returns a tree of the same type whose leaves are derivatives, which
may be negative or zero), a ``tree_map`` result, vmap ``in_axes`` specs.  Here
unflatten bypasses ``__init__`` (as equinox modules do), so checks run only when
a user builds or ``replace``s a value.  Checks look only at concrete numbers:
a leaf that is a tracer (inside ``jit``/``grad``/``vmap``) is not checked.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional, TypeVar

import jax
import numpy as np

T = TypeVar("T")

__all__ = ["model_class", "static", "concrete", "as_vector", "as_scalar", "require"]


def static(default: Any = dataclasses.MISSING, **kw: Any) -> Any:
    """A static (pytree metadata) field: hashable, fixes shapes or code paths."""
    return dataclasses.field(default=default, metadata={"static": True}, **kw)


def model_class(cls: type[T]) -> type[T]:
    """Make ``cls`` a frozen dataclass and register it as a pytree (see module doc)."""
    cls = dataclasses.dataclass(frozen=True, eq=False, repr=True)(cls)
    data = tuple(f.name for f in dataclasses.fields(cls) if not f.metadata.get("static"))
    meta = tuple(f.name for f in dataclasses.fields(cls) if f.metadata.get("static"))

    def flatten_with_keys(x):
        children = [(jax.tree_util.GetAttrKey(n), getattr(x, n)) for n in data]
        return children, tuple(getattr(x, m) for m in meta)

    def flatten(x):
        return [getattr(x, n) for n in data], tuple(getattr(x, m) for m in meta)

    def unflatten(aux, children):
        obj = object.__new__(cls)
        for n, v in zip(meta, aux):
            object.__setattr__(obj, n, v)
        for n, v in zip(data, children):
            object.__setattr__(obj, n, v)
        return obj

    jax.tree_util.register_pytree_with_keys(cls, flatten_with_keys, unflatten, flatten)

    def replace(self, **changes: Any):
        """A copy with some fields changed (the new value's invariants are checked)."""
        return dataclasses.replace(self, **changes)

    cls.replace = replace  # type: ignore[attr-defined]
    return cls


def is_tracer(x: Any) -> bool:
    return isinstance(x, jax.core.Tracer)


def concrete(x: Any) -> Optional[np.ndarray]:
    """``x`` as a float64 NumPy array when it is a concrete number or array, else None.

    None for tracers (inside jit/grad/vmap), for None, and for anything that is not
    numeric (e.g. ``jax.ShapeDtypeStruct`` or a vmap axis spec), so that checks
    never force a value that does not exist yet.
    """
    if x is None or is_tracer(x) or isinstance(x, (bool, str)):
        return None
    if isinstance(x, (int, float, np.ndarray, np.generic, list, tuple)) or isinstance(x, jax.Array):
        try:
            a = np.asarray(x)
        except Exception:  # noqa: BLE001 - e.g. a deleted buffer: nothing to check
            return None
        if a.dtype.kind in "biuf":
            return a.astype(np.float64)
    return None


def _leaf(x: Any) -> Any:
    """Python numbers and sequences become float64 arrays; arrays and tracers stay as given."""
    if isinstance(x, (int, float, list, tuple)) and not isinstance(x, bool):
        return np.asarray(x, np.float64)
    if isinstance(x, np.ndarray) and x.dtype.kind in "biu":
        return x.astype(np.float64)
    return x


def as_scalar(owner: str, name: str, x: Any) -> Any:
    """Normalise a scalar leaf and check its shape is ()."""
    x = _leaf(x)
    shape = getattr(x, "shape", None)
    if shape is not None and tuple(shape) != ():
        raise ValueError(f"{owner}.{name} must be a scalar, got shape {tuple(shape)}")
    return x


def as_vector(owner: str, name: str, x: Any, n: int = 3) -> Any:
    """Normalise a length-n vector leaf (a scalar is broadcast) and check its shape."""
    x = _leaf(x)
    shape = getattr(x, "shape", None)
    if shape is not None and tuple(shape) == () and isinstance(x, np.ndarray):
        x = np.full((n,), x, np.float64)
        shape = x.shape
    if shape is not None and tuple(shape) != (n,):
        raise ValueError(f"{owner}.{name} must have {n} components, got shape {tuple(shape)}")
    return x


def as_array(owner: str, name: str, x: Any, ndim: int) -> Any:
    x = _leaf(x)
    shape = getattr(x, "shape", None)
    if shape is not None and len(shape) != ndim:
        raise ValueError(f"{owner}.{name} must be a {ndim}-d array, got shape {tuple(shape)}")
    return x


def require(owner: str, name: str, x: Any, test: Callable[[np.ndarray], Any], what: str) -> None:
    """Raise ``ValueError("Owner.name must be <what>")`` when concrete ``x`` fails ``test``.

    Every check also demands finite values (NaN or ±inf never make a valid experiment).
    """
    a = concrete(x)
    if a is None:
        return
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{owner}.{name} must be finite, got {_show(a)}")
    if not bool(np.all(test(a))):
        raise ValueError(f"{owner}.{name} must be {what}, got {_show(a)}")


def _show(a: np.ndarray) -> str:
    if a.size <= 6:
        return np.array2string(a, separator=", ") if a.ndim else repr(float(a))
    return f"an array of shape {a.shape}"


def set_field(obj: Any, name: str, value: Any) -> None:
    """Assign in ``__post_init__`` of a frozen dataclass (normalisation only)."""
    object.__setattr__(obj, name, value)
