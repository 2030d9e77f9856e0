"""PyTorch in, PyTorch out: a torch autograd node whose backward pass is the JAX VJP.

A script written for the port puts ``torch.Tensor`` values (often with
``requires_grad=True``) into its configs and calls ``loss.backward()`` on the image.
``call`` finds those tensors, hands them to JAX by DLPack (no copy on CPU), evaluates
the JAX computation under ``jax.vjp``, and returns the result to torch by DLPack.  The
autograd node's backward pass feeds torch's output gradient to the saved VJP and
returns the input gradients, so ``.grad`` appears on the user's tensors as with the
port.  float64 tensors are evaluated inside ``jax.enable_x64(True)`` so that a torch
script needs no JAX switch.

Torch is optional: nothing here imports it before a torch object is seen.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from ._values import is_torch_tensor, torch_module

# (index in state, field name or None, item index or None)
Path = tuple[int, Optional[str], Optional[int]]


def _items(state: tuple):
    """(path, value) of every tensor candidate in ``state``."""
    for i, obj in enumerate(state):
        if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            inert = getattr(obj, "_inert_fields", frozenset())
            filled = getattr(obj, "_auto_filled", {})
            for f in dataclasses.fields(obj):
                if f.name in inert:
                    continue
                v = getattr(obj, f.name)
                if f.name in filled and filled[f.name] is v:
                    continue
                if isinstance(v, (tuple, list)):
                    for k, e in enumerate(v):
                        yield (i, f.name, k), e
                else:
                    yield (i, f.name, None), v
        elif isinstance(obj, (tuple, list)):
            for k, e in enumerate(obj):
                yield (i, None, k), e
        else:
            yield (i, None, None), obj


def holds_tensors(state: tuple) -> bool:
    if torch_module() is None:
        return False
    return any(is_torch_tensor(v) for _, v in _items(state))


def holds_tracers(state: tuple) -> bool:
    """True when a JAX tracer is among the values (a JAX transformation is running)."""
    for _, v in _items(state):
        if any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree_util.tree_leaves(v)):
            return True
    return False


def _substitute(state: tuple, paths: list[Path], values: list[Any]) -> tuple:
    """A copy of ``state`` with the values at ``paths`` replaced (user objects untouched)."""
    out = list(state)
    copied: set[int] = set()
    for (i, name, k), v in zip(paths, values):
        if name is None:
            if k is None:
                out[i] = v
            else:
                seq = list(out[i])
                seq[k] = v
                out[i] = type(state[i])(seq) if isinstance(state[i], tuple) else seq
            continue
        if i not in copied:
            out[i] = copy.copy(out[i])  # shallow: no __post_init__ re-run
            copied.add(i)
        if k is None:
            object.__setattr__(out[i], name, v)
        else:
            old = getattr(out[i], name)
            seq = list(old)
            seq[k] = v
            object.__setattr__(out[i], name, tuple(seq) if isinstance(old, tuple) else seq)
    return tuple(out)


def to_jax(t) -> jax.Array:
    """A torch tensor as a JAX array (DLPack; zero-copy for contiguous CPU tensors)."""
    t = t.detach()
    if not t.is_contiguous():
        t = t.contiguous()
    if t.device.type == "cpu":
        try:
            # NumPy's DLPack view, then device_put: on a CPU backend JAX aliases the host
            # buffer (no copy) and the array stays uncommitted, so compiled programs are
            # shared with the pure-JAX path.
            return jax.device_put(np.from_dlpack(t))
        except Exception:  # dtypes NumPy cannot view (bfloat16): JAX's own DLPack import
            pass
    try:
        return jax.dlpack.from_dlpack(t)
    except Exception:  # e.g. a device JAX does not see: go through the host
        return jnp.asarray(t.cpu().numpy())


def to_torch(a: jax.Array, device: Any = None):
    """A JAX array as a torch tensor (DLPack; zero-copy on CPU)."""
    torch = torch_module()
    try:
        t = torch.from_dlpack(a)
    except Exception:
        t = torch.from_numpy(np.asarray(a))
    if device is not None and str(t.device) != str(torch.device(device)):
        t = t.to(device)
    return t


def _torch_target_device(device: Any):
    torch = torch_module()
    if device is None:
        return None
    if isinstance(device, torch.device):
        return device
    if isinstance(device, str):
        return torch.device(device)
    if isinstance(device, jax.Device):
        return torch.device("cpu") if device.platform == "cpu" else torch.device("cuda", device.id)
    return None


def _make_function():
    torch = torch_module()

    class JaxFunction(torch.autograd.Function):
        """forward: evaluate a JAX function; backward: its VJP."""

        @staticmethod
        def forward(ctx, fn, x64, device, box, *tensors):
            with jax.enable_x64(x64):
                xs = [to_jax(t) for t in tensors]
                if any(ctx.needs_input_grad[4:]):
                    out, vjp = jax.vjp(fn, *xs)
                    ctx.vjp = vjp
                else:
                    out, ctx.vjp = fn(*xs), None
                flat, treedef = jax.tree_util.tree_flatten(out)
            ctx.treedef = treedef
            box["treedef"] = treedef
            ctx.out_avals = [(o.shape, o.dtype) for o in flat]
            ctx.x64 = x64
            ctx.device = device
            ctx.in_meta = [(t.dtype, t.device) for t in tensors]
            return tuple(to_torch(o, device) for o in flat)

        @staticmethod
        def backward(ctx, *grads):
            if ctx.vjp is None:
                return (None, None, None, None) + (None,) * len(ctx.in_meta)
            with jax.enable_x64(ctx.x64):
                cts = [to_jax(g) if g is not None else jnp.zeros(shape, dtype)
                       for g, (shape, dtype) in zip(grads, ctx.out_avals)]
                cts = [c.astype(dtype) for c, (_, dtype) in zip(cts, ctx.out_avals)]
                gin = ctx.vjp(jax.tree_util.tree_unflatten(ctx.treedef, cts))
            out = []
            for g, (dtype, dev), need in zip(gin, ctx.in_meta, ctx.needs_input_grad[4:]):
                out.append(to_torch(g).to(dtype=dtype, device=dev) if need else None)
            return (None, None, None, None) + tuple(out)

    return JaxFunction


_FUNCTION = None


def call(fn: Callable[..., Any], state: tuple, *, dtype: Optional[np.dtype], device: Any = None) -> Any:
    """Evaluate ``fn(*state, dtype)`` with torch tensors in ``state`` as differentiable inputs.

    Returns the output pytree with every array converted to a torch tensor.
    """
    global _FUNCTION
    torch = torch_module()
    if torch is None:  # a torch dtype/device without torch cannot happen; be explicit anyway
        raise RuntimeError("compat: the torch bridge needs PyTorch (pip install 'nanobragg-jax[torch]')")
    if _FUNCTION is None:
        _FUNCTION = _make_function()

    paths: list[Path] = []
    tensors = []
    fixed_paths: list[Path] = []
    fixed_values = []
    for path, v in _items(state):
        if is_torch_tensor(v):
            if torch.is_floating_point(v):
                paths.append(path)
                tensors.append(v)
            else:  # integer / bool tensors carry no gradient: pass their values
                fixed_paths.append(path)
                fixed_values.append(v.detach().cpu().numpy())
    base = _substitute(state, fixed_paths, fixed_values)

    if dtype is None:
        # The port's objects compute in their dtype, torch's default unless one is given,
        # whatever the dtype of the tensors put into their configs.
        dtype = np.dtype(str(torch.get_default_dtype()).replace("torch.", ""))
    x64 = bool(np.dtype(dtype) == np.float64 or any(t.dtype == torch.float64 for t in tensors))

    def pure(*xs):
        return fn(*_substitute(base, paths, list(xs)), np.dtype(dtype))

    target = _torch_target_device(device)
    if not tensors:
        with jax.enable_x64(x64):
            out = pure()
        return jax.tree_util.tree_map(lambda a: to_torch(a, target), out)

    box: dict = {}
    flat = _FUNCTION.apply(pure, x64, target, box, *tensors)
    return jax.tree_util.tree_unflatten(box["treedef"], list(flat))
