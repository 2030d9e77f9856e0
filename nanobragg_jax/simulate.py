"""``simulate(setup, params)``: the image, in photons per pixel.

The rendered region is the ROI rectangle; its pixels are processed in tiles
with ``lax.map`` (memory bounded by one tile), then placed into a zero image of
shape (spixels, fpixels) and multiplied by the mask.  When tricubic
interpolation is on, a first pass finds where, in the C program's raster order,
the interpolation neighbourhood first leaves the HKL grid (the C program turns
interpolation off from there on); the second pass renders with that switch.
"""

from __future__ import annotations

import os
from functools import partial
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from . import kernel
from ._compiled import setup_jit
from .config import Params, Setup
from .geometry.detector import roi_bounds


def _needs_wide_edges(setup: Setup, params: Params) -> bool:
    """Whether to evaluate in float64 although params are float32.

    Flat-top spots have a hard edge (a step in r*²): in float32 the Miller
    indices carry ~1e-6 absolute error, enough to move pixels that straddle the
    edge across it.  When the process allows float64, such images are rendered
    in float64 and returned in float32.
    """
    return (setup.shape == "TOPHAT" and jax.config.jax_enable_x64
            and jnp.result_type(params.wavelength) == jnp.float32)


def simulate(setup: "Setup | Model", params: Optional[Params] = None, *,
             devices: Optional[int] = None) -> Array:
    """Render the detector image (photons per pixel), shape (spixels, fpixels).

    Two ways to call it:

    * ``simulate(model)`` — a ``nanobragg_jax.Model``; it is lowered with
      ``nanobragg_jax.lower`` (cheap, traceable) and rendered.  A detector of
      several panels gives (n_panels, n_slow, n_fast) (``panels.simulate_panels``).  ``jax.grad`` and
      ``jax.vmap`` of a function of the model reach every float leaf of it.
    * ``simulate(setup, params)`` — the lowered form: ``setup`` static (hashable;
      changing it recompiles), ``params`` continuous; the image has their floating
      dtype and is differentiable with respect to every one of them.

    Args:
      devices: how many CPU devices to spread the tiles over (``shard_map``).
        XLA:CPU runs one program on one core; with several CPU devices
        (``jax.config.update("jax_num_cpu_devices", k)`` at start-up) k cores render
        at once.  None (default): every CPU device when the default backend is the
        CPU, else 1.  Pass 1 inside your own ``pmap``/``shard_map``.
    Returns:
      Array of shape (spixels, fpixels); pixels outside the ROI or masked are 0.
    """
    from .model import Model, lower

    if isinstance(setup, Model):
        if params is not None:
            raise TypeError("simulate(model) takes no params: they come from the model")
        if setup.detector.n_panels > 1:  # (n_panels, n_slow, n_fast), see panels.simulate_panels
            from .model.lower import lower_panels
            from .panels import simulate_panels

            setup, params, stack = lower_panels(setup)
            return simulate_panels(setup, params, stack)
        setup, params = lower(setup)
    elif params is None:
        raise TypeError("simulate() takes a Model, or a Setup and its Params")
    setup.check_params(params)
    n_dev = default_devices() if devices is None else max(1, int(devices))
    if _needs_wide_edges(setup, params):
        wide = params.astype(jnp.float64)
        return _simulate(setup, shared_context(setup, wide), n_dev).astype(jnp.float32)
    return _simulate(setup, shared_context(setup, params), n_dev)


# scalar geometry: compiled without XLA's backend optimisation (see _compiled.quick_compile_options)
@setup_jit(static_argnames=("setup",), optimize=False)
def _context(setup: Setup, params: Params) -> kernel.Context:
    return kernel.build_context(setup, params)


def shared_context(setup: Setup, params: Params) -> kernel.Context:
    """``kernel.build_context``, compiled for the fields it reads (``kernel.context_setup``).

    Setups that differ only in what the pixel loop reads (detector size, ROI, spot shape,
    F(hkl) grid, sensor layers, per-sub-path switches) share this program, so a new setup
    compiles only its pixel loop (the geometry is half of a small image's compile time).  The
    F grid and the mask, large and of per-setup shapes, pass around it.  Inside a caller's
    ``jit`` the two programs inline into one, as before.
    """
    ctx = _context(kernel.context_setup(setup), params.zeroing(("F_grid", "mask")))
    return ctx._replace(F_grid=params.F_grid, mask=params.mask)


def default_devices() -> int:
    """Every CPU device JAX exposes when the default backend is the CPU, else 1."""
    try:
        return max(1, len(jax.devices("cpu"))) if jax.default_backend() == "cpu" else 1
    except RuntimeError:
        return 1


def _tiling(setup: Setup, n_dev: int = 1) -> tuple[int, int, int]:
    """(pixels per tile, number of tiles, ROI pixels) for rendering on ``n_dev`` devices."""
    fmin, fmax, smin, smax = roi_bounds(setup)
    n_valid = max(fmax - fmin + 1, 0) * max(smax - smin + 1, 0)
    if n_valid == 0:
        return 1, 0, 0
    tile = kernel.tile_pixels(setup)
    if kernel.fast_path_applies(setup):
        tile = kernel.round_tile(tile, n_valid)
    else:
        tile = min(tile, n_valid)
    n_tiles = -(-n_valid // tile)
    n_dev = max(1, min(n_dev, n_tiles))
    n_tiles = -(-n_tiles // n_dev) * n_dev  # a whole number of tiles per device
    return tile, n_tiles, n_valid


def _tile_indices(setup: Setup, tile: int, n_tiles: int) -> tuple[Array, Array, Array]:
    """(slow, fast, raster order) index arrays of shape (n_tiles, tile), made in the graph.

    Generated from an iota rather than embedded as constants, so the compiled
    program (and the persistent cache entry) does not grow with the detector.
    Padding entries repeat the last ROI pixel and carry order = n_valid.
    """
    fmin, fmax, smin, smax = roi_bounds(setup)
    width = fmax - fmin + 1
    n_valid = width * (smax - smin + 1)
    order = jnp.arange(n_tiles * tile, dtype=jnp.int32).reshape(n_tiles, tile)
    lin = jnp.minimum(order, n_valid - 1)
    s_idx = smin + lin // width
    f_idx = fmin + lin % width
    return s_idx, f_idx, jnp.minimum(order, n_valid)


def _interpolation_switch(setup: Setup, ctx: kernel.Context, S: Array, F: Array, order: Array,
                          n_valid: int) -> tuple[Array, Array]:
    """(raster index, sub-path index) where the C program turns tricubic interpolation off.

    Scans the tiles in raster order and stops at the first one where a (not masked)
    pixel's 4×4×4 neighbourhood leaves the grid — usually the first tile: the
    detector's edge is at the highest resolution.  (n_valid, K) when that never
    happens.  The switch is discrete: no gradient flows through it.
    """
    ctx = jax.lax.stop_gradient(ctx)
    K = setup.subpaths_per_pixel
    active = order < n_valid
    if setup.has_mask:
        active = active & (ctx.mask[S, F] != 0)
    none = jnp.int32(n_valid)

    def searching(state):
        i, p_star, _ = state
        return (i < S.shape[0]) & (p_star == none)

    def next_tile(state):
        i, p_star, k_star = state
        first = kernel.interpolation_trigger(setup, ctx, S[i], F[i], active[i])
        hit = first < K
        j = jnp.argmax(hit)
        found = jnp.any(hit)
        p_star = jnp.where(found, order[i, j], p_star).astype(jnp.int32)
        k_star = jnp.where(found, first[j], k_star).astype(jnp.int32)
        return i + 1, p_star, k_star

    _, p_star, k_star = jax.lax.while_loop(searching, next_tile, (jnp.int32(0), none, jnp.int32(K)))
    return p_star, k_star


@partial(jax.jit, static_argnames=("setup",))
def interpolation_switch(setup: Setup, params: Params) -> tuple[Array, Array]:
    """The trigger ``simulate`` renders with (see ``_interpolation_switch``); for the trace."""
    tile, n_tiles, n_valid = _tiling(setup)
    if n_valid == 0:
        return jnp.int32(0), jnp.int32(setup.subpaths_per_pixel)
    S, F, order = _tile_indices(setup, tile, n_tiles)
    return _interpolation_switch(setup, kernel.build_context(setup, params), S, F, order, n_valid)


# cli branch: compiled setups live in a bounded LRU (see _compiled.py: each compiled setup
# holds hundreds of memory mappings; an unbounded jit cache crashed long sessions)
@setup_jit(static_argnames=("setup", "n_dev"))
def _simulate(setup: Setup, ctx: kernel.Context, n_dev: int = 1) -> Array:
    """The jitted renderer behind ``simulate`` (setup static; ``ctx`` from ``shared_context``)."""
    dtype = jnp.result_type(ctx.wavelength)
    image = jnp.zeros((setup.spixels, setup.fpixels), dtype)
    fmin, fmax, smin, smax = roi_bounds(setup)
    tile, n_tiles, n_valid = _tiling(setup, n_dev)
    if n_valid == 0:
        return image
    n_dev = max(1, min(n_dev, n_tiles))
    S, F, order = _tile_indices(setup, tile, n_tiles)

    if setup.interpolate:
        trigger = _interpolation_switch(setup, ctx, S, F, order, n_valid)
    else:
        trigger = (jnp.int32(0), jnp.int32(0))

    def render(ctx, S, F, order, trigger):
        # grad branch: kernel.tile_photons differentiates a tile in cache-sized chunks,
        # recomputed from the pixel indices (nothing per pixel is stored for the backward pass).
        def render_tile(args):
            s, f, o = args
            return kernel.tile_photons(setup, ctx, s, f, o, trigger)

        if S.shape[0] == 1:  # one tile: no loop (and no stacked residuals under grad)
            return render_tile((S[0], F[0], order[0]))[None]
        return jax.lax.map(render_tile, (S, F, order))

    if n_dev > 1:
        from jax.sharding import Mesh, PartitionSpec as PS

        mesh = Mesh(np.asarray(jax.devices("cpu")[:n_dev]), ("tiles",))
        render = jax.shard_map(render, mesh=mesh, in_specs=(PS(), PS("tiles"), PS("tiles"),
                                                            PS("tiles"), PS()),
                               out_specs=PS("tiles"), check_vma=False)
    values = render(ctx, S, F, order, trigger).reshape(-1)[:n_valid]
    values = values.reshape(smax - smin + 1, fmax - fmin + 1).astype(dtype)
    if (fmin, fmax, smin, smax) == (0, setup.fpixels - 1, 0, setup.spixels - 1):
        image = values
    else:
        image = image.at[smin:smax + 1, fmin:fmax + 1].set(values)
    if setup.has_mask:
        image = jnp.where(ctx.mask != 0, image, 0.0)
    return image


_CACHE_OFF = ("0", "off", "no", "false")


def enable_compilation_cache(path: Optional[str] = None, min_compile_time_secs: float = 0.0,
                             *, keep_existing: bool = False) -> Optional[str]:
    """Turn on JAX's persistent compilation cache (for scripts and other short-lived processes).

    A later process that renders the same ``Setup`` (same shapes, dtype and
    flags) loads the compiled program from ``path`` instead of compiling it again
    (2–10 s saved per configuration).  Default path: ``$NANOBRAGG_JAX_CACHE``,
    else ``$XDG_CACHE_HOME/nanobragg-jax`` (``~/.cache/nanobragg-jax``), the
    folder the ``nanoBragg`` command uses; ``NANOBRAGG_JAX_CACHE=0`` (or off/no/false)
    turns the default off.  With ``keep_existing`` a cache folder already configured
    is left alone.  Returns the folder in use, or None when none was set (turned off,
    or the folder is not writable: a cache is an optimisation only).
    """
    if keep_existing and getattr(jax.config, "jax_compilation_cache_dir", None):
        return jax.config.jax_compilation_cache_dir
    if path is None:
        choice = os.environ.get("NANOBRAGG_JAX_CACHE", "")
        if choice.lower() in _CACHE_OFF:
            return None
        path = choice or os.path.join(
            os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "nanobragg-jax")
    try:
        os.makedirs(path, exist_ok=True)
        if not os.access(path, os.W_OK):
            return None
    except OSError:
        return None
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", min_compile_time_secs)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return path
