"""What Crystal, Detector and Simulator share: device/dtype handling and evaluation.

Every public quantity is computed on demand by a pure JAX function of the current
configs (``evaluate``), so a config field overwritten after construction — the port's
"assign a tensor to ``config.distance_mm``" pattern — is honoured, and ``jax.grad``
sees the whole path from the config field to the result.  When the configs hold torch
tensors, or the object was created with a torch device or dtype, ``evaluate`` goes
through ``compat._torch_bridge`` and returns torch tensors whose backward pass is the
JAX VJP.  With only plain numbers in the configs, ``compat._arrays.torch_by_default``
decides (torch tensors when the program has imported torch); JAX tracers anywhere in
the configs always mean a JAX evaluation.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import numpy as np

from ._values import default_dtype, is_torch_object, resolve_device, resolve_dtype, x64_enabled


class Component:
    """Device and dtype bookkeeping of the port's objects."""

    def _init_device(self, device: Any, dtype: Any) -> None:
        self._torch_io = is_torch_object(device) or is_torch_object(dtype)
        self._jax_device = resolve_device(device)
        self._np_dtype = resolve_dtype(dtype)
        self._device_arg = device
        self.device = device if device is not None else self._jax_device
        self.dtype = dtype

    def to(self, device: Any = None, dtype: Any = None):
        """Change where and in which precision results are computed (returns self)."""
        if device is not None:
            self._torch_io = self._torch_io or is_torch_object(device)
            self._jax_device = resolve_device(device)
            self._device_arg = device
            self.device = device
        if dtype is not None:
            self._torch_io = self._torch_io or is_torch_object(dtype)
            self._np_dtype = resolve_dtype(dtype)
            self.dtype = dtype
        return self

    def invalidate_cache(self) -> None:
        """Kept for the port's API: nothing is cached, every value is computed on demand."""


def jax_dtype(requested: Optional[np.dtype]) -> np.dtype:
    """The dtype for a pure-JAX evaluation (no torch involved)."""
    dt = requested if requested is not None else default_dtype()
    if dt == np.float64 and not x64_enabled():
        raise ValueError(
            "compat: float64 was requested but JAX runs in 32-bit mode; call "
            "jax.config.update('jax_enable_x64', True) first (or ask for float32)")
    return dt


def evaluate(fn: Callable[..., Any], state: tuple, *, dtype: Optional[np.dtype], torch_io: bool,
             device: Any = None) -> Any:
    """``fn(*state, dtype)`` — directly, or through the torch bridge when torch is involved.

    ``state`` holds the configs (and raw values such as an HKL grid or Miller indices);
    torch tensors found in it (as fields of a config, items of a tuple field, or items of
    ``state`` itself) become differentiable inputs of the bridge.
    """
    from . import _torch_bridge
    from ._arrays import torch_by_default

    if _torch_bridge.holds_tracers(state):
        # A JAX transformation is running: stay in JAX (torch tensors count as constants).
        return fn(*state, jax_dtype(dtype))
    if torch_io or _torch_bridge.holds_tensors(state) or torch_by_default():
        return _torch_bridge.call(fn, state, dtype=dtype, device=device)
    return fn(*state, jax_dtype(dtype))
