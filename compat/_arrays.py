"""Which kind of array compat returns — torch tensors or JAX arrays — and the conversion.

The rule (docs/migration.md, "Torch or JAX results"):

1. JAX values in (tracers under ``jax.grad``/``jax.jit``) → JAX arrays out, so JAX
   transformations keep working whatever else is imported.
2. torch values in (tensors in a config, a torch ``device``/``dtype``) → torch out.
3. Plain numbers: the environment variable ``NANOBRAGG_COMPAT_ARRAYS`` (``torch`` or
   ``jax``) decides when it is set; otherwise torch tensors when the program has
   imported torch (a script written for the port always has), JAX arrays when not.

compat never imports torch itself; the environment variable is read at each call (no
module state).
"""

from __future__ import annotations

import os
from typing import Any, Optional

import numpy as np

from ._values import is_torch_object, torch_module

ENV = "NANOBRAGG_COMPAT_ARRAYS"


def torch_by_default() -> bool:
    """Rule 3: torch results for plain-number inputs?"""
    choice = os.environ.get(ENV, "").strip().lower()
    if choice in ("torch", "jax"):
        if choice == "torch" and torch_module() is None:
            import torch  # noqa: F401  (asked for explicitly)
        return choice == "torch"
    return torch_module() is not None


def torch_dtype(dtype: Any = None):
    """A torch dtype from None (torch's default), a torch dtype, or a NumPy/JAX dtype."""
    torch = torch_module()
    if dtype is None:
        return torch.get_default_dtype()
    if isinstance(dtype, torch.dtype):
        return dtype
    return getattr(torch, np.dtype(dtype).name)


def as_output(x: Any, dtype: Any = None, device: Any = None, *, torch_out: Optional[bool] = None,
              keep_dtype: bool = False):
    """``x`` (NumPy/JAX/torch/number) as the caller's kind of array.

    ``torch_out`` None applies the rule above (a torch ``dtype``/``device`` argument
    counts as a torch input).  ``keep_dtype`` keeps integer/bool dtypes as they are.
    """
    if torch_out is None:
        torch_out = is_torch_object(x) or is_torch_object(dtype) or is_torch_object(device) or torch_by_default()
    if torch_out:
        torch = torch_module()
        if isinstance(x, torch.Tensor):
            t = x
        else:
            t = torch.as_tensor(np.array(x))
        if not keep_dtype or t.is_floating_point():
            t = t.to(torch_dtype(dtype))
        if device is not None:
            t = t.to(device if not isinstance(device, str) else torch.device(device))
        return t
    import jax.numpy as jnp

    if is_torch_object(x):
        x = x.detach().cpu().numpy()
    if keep_dtype and dtype is None:
        return jnp.asarray(x)
    return jnp.asarray(x, dtype=None if dtype is None or is_torch_object(dtype) else dtype)


def to_numpy(x: Any) -> np.ndarray:
    """NumPy view/copy of a number, NumPy, JAX or torch array."""
    if is_torch_object(x):
        return x.detach().cpu().numpy()
    return np.asarray(x)
