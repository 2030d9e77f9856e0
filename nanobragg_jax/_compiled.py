"""``setup_jit``: ``jax.jit`` with static arguments, keeping only a few compiled setups alive.

Why: every program XLA:CPU compiles keeps its machine code in memory mappings of its own.
Each fused kernel is JIT-linked separately and gets about three mappings (code, read-only
data, data), so one ``Setup`` costs about 180–240 mappings for the forward render and about
1,600 more for its gradient (measured with ``wc -l /proc/self/maps`` around one call; jax
0.10.2).  ``partial(jax.jit, static_argnames=("setup",))`` keeps every program it ever
compiled (JAX's dispatch caches hold thousands of entries), so a long session rendering many
different setups reached the kernel's limit of 65,530 mappings (``vm.max_map_count``) after
~35 setups: "LLVM compilation error: Cannot allocate memory", then a segmentation fault.

``setup_jit`` gives each combination of static values its own jitted closure and keeps the
closures in one least-recently-used table shared by every decorated function
(:data:`COMPILED_SETUPS` entries).  Dropping a closure drops everything JAX cached for it —
traces, lowerings, executables, the executables of its derivatives — because those caches
are keyed weakly on the function; that frees the mappings.  A setup evicted and used again
is traced and compiled again (or loaded from the persistent compilation cache).

The decorated function behaves like the jitted one: it can be called under ``jax.grad``,
``jax.vmap`` or an outer ``jax.jit`` (the closure is then inlined into the caller's program,
which the caller owns).
"""

from __future__ import annotations

import functools
import inspect
import threading
from collections import OrderedDict
from typing import Any, Callable, Sequence

import jax

__all__ = ["COMPILED_SETUPS", "setup_jit", "clear_compiled_setups", "compiled_setups"]

COMPILED_SETUPS = 12
"""Jitted closures (one per function and combination of static values) kept alive at once.

With the ~1,800 mappings a setup's forward and gradient programs take, 12 stay well below
the 65,530-mapping limit while a refinement loop over a handful of setups never recompiles.
"""

_TABLE: "OrderedDict[tuple, Callable]" = OrderedDict()
_LOCK = threading.Lock()


def setup_jit(static_argnames: Sequence[str] = ("setup",)) -> Callable[[Callable], Callable]:
    """Decorator: ``jax.jit`` with ``static_argnames`` static, bounded by an LRU of closures.

    Args:
      static_argnames: names of the hashable (static) parameters, e.g. ``("setup", "n_dev")``;
        every other argument is traced.
    Returns:
      A decorator; the decorated function accepts the same arguments as the original.
    """
    static = tuple(static_argnames)

    def decorate(fn: Callable) -> Callable:
        signature = inspect.signature(fn)
        missing = [n for n in static if n not in signature.parameters]
        if missing:
            raise TypeError(f"setup_jit: {fn.__name__} has no parameter(s) {missing}")

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            values = bound.arguments
            fixed = {n: values.pop(n) for n in static}
            jitted = _closure(fn, fixed)
            return jitted(**values)

        wrapper.__wrapped__ = fn  # type: ignore[attr-defined]
        return wrapper

    return decorate


def _closure(fn: Callable, fixed: dict) -> Callable:
    """The jitted closure of ``fn`` with ``fixed`` (static) arguments, from the LRU table."""
    key = (fn, tuple(fixed.items()))
    with _LOCK:
        jitted = _TABLE.get(key)
        if jitted is not None:
            _TABLE.move_to_end(key)
            return jitted

    def closure(**traced: Any) -> Any:
        return fn(**fixed, **traced)

    closure.__name__ = closure.__qualname__ = fn.__name__  # names the compiled program
    jitted = jax.jit(closure)
    with _LOCK:
        jitted = _TABLE.setdefault(key, jitted)
        _TABLE.move_to_end(key)
        while len(_TABLE) > max(1, COMPILED_SETUPS):
            _TABLE.popitem(last=False)
    return jitted


def clear_compiled_setups() -> None:
    """Forget every compiled closure (their mappings are freed once nothing else holds them)."""
    with _LOCK:
        _TABLE.clear()


def compiled_setups() -> int:
    """How many jitted closures are alive in the table now."""
    with _LOCK:
        return len(_TABLE)
