"""Values in compat configs: Python numbers, NumPy, JAX arrays or tracers, torch tensors.

The C program takes some decisions on values (a thickness > 0 adds sensor layers, a
mosaic spread > 0 adds domains, the automatic oversampling reads the cell, N, λ,
distance and pixel size).  ``concrete`` reads the number behind a value when there is
one: always for plain numbers and arrays, and for JAX tracers under ``jax.grad`` /
``jax.jacfwd`` / ``jax.vjp`` (their primal value is known).  Under ``jax.jit`` a traced
value has no number; ``concrete`` returns None and the caller either treats the
quantity as given or explains what to make static.
"""

from __future__ import annotations

import sys
from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np

try:  # JAX ≥ 0.4.36
    from jax.extend.core import concrete_or_error as _concrete_or_error
except Exception:  # pragma: no cover - older JAX
    from jax.core import concrete_or_error as _concrete_or_error  # type: ignore


def torch_module():
    """The torch module if it is already imported (compat never imports it itself)."""
    return sys.modules.get("torch")


def is_torch_tensor(x: Any) -> bool:
    torch = torch_module()
    return torch is not None and isinstance(x, torch.Tensor)


def is_torch_object(x: Any) -> bool:
    """A torch tensor, dtype or device."""
    torch = torch_module()
    return torch is not None and isinstance(x, (torch.Tensor, torch.dtype, torch.device))


def concrete(x: Any) -> Optional[np.ndarray]:
    """The value of ``x`` as a float64/int NumPy array, or None when it is only traced."""
    if x is None:
        return None
    if is_torch_tensor(x):
        return x.detach().cpu().numpy()
    if isinstance(x, (tuple, list)):
        parts = [concrete(v) for v in x]
        if any(p is None for p in parts):
            return None
        return np.stack([np.asarray(p) for p in parts])
    if isinstance(x, jax.core.Tracer):
        try:
            return np.asarray(_concrete_or_error(np.asarray, x, "compat: reading a configuration value"))
        except jax.errors.ConcretizationTypeError:
            return None
    return np.asarray(x)


def concrete_float(x: Any) -> Optional[float]:
    v = concrete(x)
    if v is None:
        return None
    return float(np.asarray(v, np.float64).reshape(()))


def is_traced(x: Any) -> bool:
    """True when ``x`` (or an element of it) is a JAX tracer."""
    if isinstance(x, (tuple, list)):
        return any(is_traced(v) for v in x)
    return isinstance(x, jax.core.Tracer)


def as_array(x: Any, dtype: Any) -> jax.Array:
    """``x`` (number, sequence of numbers/tracers, array, tracer) as a JAX array of ``dtype``."""
    if is_torch_tensor(x):
        x = x.detach().cpu().numpy()
    if isinstance(x, (tuple, list)):
        return jnp.stack([as_array(v, dtype) for v in x])
    return jnp.asarray(x, dtype=dtype)


# -- dtype and device ---------------------------------------------------------------

_TORCH_DTYPE_NAMES = {
    "float64": np.float64, "double": np.float64, "float32": np.float32, "float": np.float32,
    "float16": np.float16, "half": np.float16, "bfloat16": jnp.bfloat16,
}


def resolve_dtype(dtype: Any) -> Optional[np.dtype]:
    """A NumPy dtype from a JAX/NumPy dtype, a name, or a torch dtype (None stays None)."""
    if dtype is None:
        return None
    torch = torch_module()
    if torch is not None and isinstance(dtype, torch.dtype):
        name = str(dtype).replace("torch.", "")
        if name not in _TORCH_DTYPE_NAMES:
            raise TypeError(f"compat: unsupported torch dtype {dtype}")
        return np.dtype(_TORCH_DTYPE_NAMES[name])
    dt = np.dtype(dtype)
    if not np.issubdtype(dt, np.floating):
        raise TypeError(f"compat: dtype must be a floating type, got {dt}")
    return dt


def default_dtype() -> np.dtype:
    """JAX's default float: float64 when x64 is enabled, float32 otherwise."""
    return np.dtype(jnp.zeros((), dtype=float).dtype)


def x64_enabled() -> bool:
    return default_dtype() == np.float64


def resolve_device(device: Any) -> Optional[jax.Device]:
    """A JAX device from None, a JAX device, a string ("cpu", "cuda", "cuda:1", "gpu:0",
    "tpu") or a torch device."""
    if device is None:
        return None
    if isinstance(device, jax.Device):
        return device
    torch = torch_module()
    if torch is not None and isinstance(device, torch.device):
        device = str(device)
    if not isinstance(device, str):
        raise TypeError(f"compat: device must be a string, a jax.Device or a torch.device, got {device!r}")
    name, _, index = device.strip().lower().partition(":")
    platform = {"cuda": "gpu", "gpu": "gpu", "rocm": "gpu", "cpu": "cpu", "tpu": "tpu", "mps": "METAL"}.get(name)
    if platform is None:
        raise ValueError(f"compat: unknown device {device!r}")
    try:
        devices = jax.devices(platform)
    except RuntimeError as exc:
        raise RuntimeError(f"compat: device {device!r} requested but JAX has no {platform} backend") from exc
    i = int(index) if index else 0
    if i >= len(devices):
        raise RuntimeError(f"compat: device {device!r} requested but JAX sees only {len(devices)} {platform} device(s)")
    return devices[i]
