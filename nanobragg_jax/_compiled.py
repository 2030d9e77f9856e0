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

``executables_on_disk(folder)``: inside this context, a ``setup_jit`` function called with
concrete arrays (not under a transformation) loads its compiled program from ``folder`` — or
compiles it and stores it there — without tracing.  Why: JAX's persistent compilation cache
saves the compile but not the trace and lowering that compute its key, and for the
``nanoBragg`` command those were most of a warm run (canonical 1024²: ~0.5 s of tracing
against 0.05 s to load the executable).  The key covers everything the program depends
on: the function, its static values, the abstract signature of its arguments (tree,
shapes, dtypes), the JAX/jaxlib versions and flags, the devices, and a hash of this
package's source; any failure to load or store falls back to the traced path.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import hashlib
import inspect
import os
import pickle
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence

import jax

__all__ = ["COMPILED_SETUPS", "setup_jit", "clear_compiled_setups", "compiled_setups",
           "executables_on_disk"]

COMPILED_SETUPS = 12
"""Jitted closures (one per function and combination of static values) kept alive at once.

With the ~1,800 mappings a setup's forward and gradient programs take, 12 stay well below
the 65,530-mapping limit while a refinement loop over a handful of setups never recompiles.
"""

_TABLE: "OrderedDict[tuple, Callable]" = OrderedDict()
_LOCK = threading.Lock()


def setup_jit(static_argnames: Sequence[str] = ("setup",), *,
              optimize: bool = True) -> Callable[[Callable], Callable]:
    """Decorator: ``jax.jit`` with ``static_argnames`` static, bounded by an LRU of closures.

    Args:
      static_argnames: names of the hashable (static) parameters, e.g. ``("setup", "n_dev")``;
        every other argument is traced.
      optimize: False compiles top-level calls (concrete arguments) with
        :func:`quick_compile_options` — for programs of a few hundred scalar operations (the
        detector and crystal geometry), which XLA:CPU takes 0.7–1 s to compile and
        microseconds to run.  Calls under a transformation compile as usual.
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
            folder = _DISK.get()
            if folder is not None:
                out = _run_from_disk(folder, fn, fixed, values, optimize)
                if out is not _NOT_STORED:
                    return out
            # JAX takes compiler options only at the top level: under grad/vmap/jit the usual
            # options (the caller's program or the derivative programs compile them anyway)
            quick = not optimize and not any(isinstance(x, jax.core.Tracer)
                                             for x in jax.tree.leaves(values))
            jitted = _closure(fn, fixed, optimize=not quick)
            return jitted(**values)

        wrapper.__wrapped__ = fn  # type: ignore[attr-defined]
        return wrapper

    return decorate


def _closure(fn: Callable, fixed: dict, optimize: bool = True) -> Callable:
    """The jitted closure of ``fn`` with ``fixed`` (static) arguments, from the LRU table."""
    key = (fn, tuple(fixed.items()), optimize)
    with _LOCK:
        jitted = _TABLE.get(key)
        if jitted is not None:
            _TABLE.move_to_end(key)
            return jitted

    jitted = _new_jitted(fn, fixed, optimize)
    with _LOCK:
        jitted = _TABLE.setdefault(key, jitted)
        _TABLE.move_to_end(key)
        while len(_TABLE) > max(1, COMPILED_SETUPS):
            _TABLE.popitem(last=False)
    return jitted


def _new_jitted(fn: Callable, fixed: dict, optimize: bool = True) -> Callable:
    """A new ``jax.jit`` of ``fn`` with ``fixed`` bound (no caches shared with earlier ones)."""

    def closure(**traced: Any) -> Any:
        return fn(**fixed, **traced)

    closure.__name__ = closure.__qualname__ = fn.__name__  # names the compiled program
    options = None if optimize else (quick_compile_options(jax.default_backend()) or None)
    return jax.jit(closure, compiler_options=options)


# XLA:CPU options for scalar programs: LLVM's optimisation passes and the MLIR fusion emitters
# are most of the compile time of a program of scalar operations, and nothing of its run time.
_QUICK_OPTIONS = {"xla_backend_optimization_level": 0, "xla_cpu_use_fusion_emitters": False}


@functools.lru_cache(maxsize=None)
def quick_compile_options(platform: str) -> dict:
    """XLA options that compile a scalar program 2–3× faster on the CPU: backend optimisation
    level 0 and the elemental (pre-MLIR) fusion emitters.

    Measured on the geometry program (jax 0.10.2): 0.7–0.8 s → 0.3 s, the same numbers to the
    last bit or one ulp.  Empty on other platforms, or when this XLA does not know the options
    (checked once per process by compiling a one-operation program).
    """
    if platform != "cpu":
        return {}
    try:
        jax.jit(lambda x: x + 1, compiler_options=_QUICK_OPTIONS).lower(1.0).compile()
    except Exception:  # an XLA without these options: compile as usual
        return {}
    return dict(_QUICK_OPTIONS)


def clear_compiled_setups() -> None:
    """Forget every compiled closure (their mappings are freed once nothing else holds them)."""
    with _LOCK:
        _TABLE.clear()


def compiled_setups() -> int:
    """How many jitted closures are alive in the table now."""
    with _LOCK:
        return len(_TABLE)


# ---------------------------------------------------------------------------------------------
# Compiled programs on disk (the command line's warm start)
# ---------------------------------------------------------------------------------------------

# The folder of the innermost ``executables_on_disk`` context (None: off).  A context
# variable, not module state: it is scoped to the ``with`` block (and to its thread).
_DISK: "contextvars.ContextVar[Optional[str]]" = contextvars.ContextVar("nanobragg_executables",
                                                                       default=None)
# Compiled programs kept in the folder; older ones (by last use) are deleted.
DISK_EXECUTABLES = 64


@contextlib.contextmanager
def executables_on_disk(folder: Optional[str]) -> Iterator[None]:
    """Within the block, ``setup_jit`` functions load/store their compiled programs in ``folder``.

    ``folder`` None leaves things as they are (no disk store).  Only calls with concrete
    arguments use the store; calls under ``jax.grad``/``vmap``/``jit`` trace as usual.
    """
    token = _DISK.set(folder)
    try:
        yield
    finally:
        _DISK.reset(token)


@functools.lru_cache(maxsize=1)
def _source_hash() -> str:
    """Hash of this package's Python sources: a code change makes every stored program stale."""
    h = hashlib.sha256()
    root = Path(__file__).resolve().parent
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def _program_key(fn: Callable, fixed: dict, values: dict) -> Optional[str]:
    """The stored program's name, or None when the call cannot use the store (tracers)."""
    leaves, tree = jax.tree.flatten(values)
    signature = []
    for leaf in leaves:
        if isinstance(leaf, jax.core.Tracer):
            return None
        shape, dtype = getattr(leaf, "shape", None), getattr(leaf, "dtype", None)
        if shape is None or dtype is None:  # Python scalars: their value is not in the key
            return None
        signature.append((tuple(shape), str(dtype), bool(getattr(leaf, "weak_type", False))))
    devices = [(d.platform, d.device_kind, d.id) for d in jax.devices()]
    parts = (fn.__module__, fn.__qualname__, repr(sorted(fixed.items())), str(tree), repr(signature),
             jax.__version__, getattr(jax.lib, "__version__", ""), repr(devices),
             bool(jax.config.jax_enable_x64), os.environ.get("XLA_FLAGS", ""), _source_hash())
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:40]


_NOT_STORED = object()


def _run_from_disk(folder: str, fn: Callable, fixed: dict, values: dict, optimize: bool = True) -> Any:
    """``fn(**fixed, **values)`` by a compiled program from ``folder`` — or compiled now and
    stored there; ``_NOT_STORED`` when the store cannot be used (the caller traces as usual).

    A stored program is trusted only once it has run: the copy is loaded back and run before
    it is kept, and a stored file that fails to load or run is deleted.  (A program whose
    fusions XLA:CPU took from an earlier compile in the same process can serialise without
    their code — "Function … not found" when the copy runs.)
    """
    from jax.experimental import serialize_executable

    try:
        key = _program_key(fn, fixed, values)
    except Exception:
        return _NOT_STORED
    if key is None:
        return _NOT_STORED
    path = Path(folder) / f"program-{key}.bin"

    def load(p: Path) -> Callable:
        payload, in_tree, out_tree, device_ids = pickle.loads(p.read_bytes())
        by_id = {d.id: d for d in jax.devices()}
        return serialize_executable.deserialize_and_load(
            payload, in_tree, out_tree, execution_devices=[by_id[i] for i in device_ids])

    try:
        out = jax.block_until_ready(load(path)(**values))
        os.utime(path)  # last use, for the pruning below
        return out
    except FileNotFoundError:
        pass
    except Exception:  # stale or damaged: replace it
        try:
            path.unlink()
        except OSError:
            pass
    # Compiled afresh: a program that JAX's persistent cache hands back keeps no object
    # code to serialise again, so neither that cache nor the table's jitted closure (which
    # may hold such a program already) is used.
    cache_on = bool(jax.config.jax_enable_compilation_cache)
    try:
        jax.config.update("jax_enable_compilation_cache", False)
        compiled = _new_jitted(fn, fixed, optimize).lower(**values).compile()
    except Exception:
        return _NOT_STORED  # the traced path will raise the same error where it belongs
    finally:
        jax.config.update("jax_enable_compilation_cache", cache_on)
    out = compiled(**values)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        device_ids = [d.id for d in compiled.runtime_executable().local_devices()]
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(pickle.dumps((*serialize_executable.serialize(compiled), device_ids)))
        jax.block_until_ready(load(tmp)(**values))  # the copy runs: keep it
        os.replace(tmp, path)
        _prune(path.parent)
    except Exception:  # a store is an optimisation only
        try:
            tmp.unlink()
        except OSError:
            pass
    return out


def _prune(folder: Path) -> None:
    """Keep the DISK_EXECUTABLES most recently used programs of ``folder``."""
    files = sorted(folder.glob("program-*.bin"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in files[DISK_EXECUTABLES:]:
        try:
            old.unlink()
        except OSError:
            pass
