"""Run a JAX function on the port's argument kinds (torch tensors, numbers, JAX arrays).

torch tensors go through ``compat._torch_bridge`` (the result is a torch tensor whose
backward pass is the JAX VJP); plain numbers follow ``compat._arrays``'s rule; JAX
values (tracers included) call the function directly.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any, Callable

import jax
import numpy as np

from .. import _torch_bridge
from .._arrays import torch_by_default
from .._values import is_torch_tensor


def _has_tracer(args) -> bool:
    return any(isinstance(a, jax.core.Tracer) for a in jax.tree_util.tree_leaves(list(args)))


def bridged(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate a pure-JAX function so that the port's torch callers get torch back."""
    sig = inspect.signature(fn)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        bound = sig.bind(*args, **kwargs)
        bound.apply_defaults()
        values = tuple(bound.arguments.values())
        tensors = any(is_torch_tensor(v) for v in values)
        if not tensors and (_has_tracer(values) or not torch_by_default()):
            return fn(*values)
        return _torch_bridge.call(lambda *xs: fn(*xs[:-1]), values, dtype=None)

    return wrapper


def numpy_of(x: Any) -> np.ndarray:
    if is_torch_tensor(x):
        return x.detach().cpu().numpy()
    return np.asarray(x)
