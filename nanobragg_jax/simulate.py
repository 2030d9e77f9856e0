"""``simulate(setup, params)``: the image, in photons per pixel.

The rendered region is the ROI rectangle; its pixels are processed in tiles
with ``lax.map`` (memory bounded by one tile), then placed into a zero image of
shape (spixels, fpixels) and multiplied by the mask.  When tricubic
interpolation is on, a first pass finds where, in the C program's raster order,
the interpolation neighbourhood first leaves the HKL grid (the C program turns
interpolation off from there on); the second pass renders with that switch.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from . import kernel
from ._compiled import setup_jit
from .config import Params, Setup


def _roi_pixels(setup: Setup) -> tuple[np.ndarray, np.ndarray, tuple[int, int, int, int]]:
    """Slow/fast indices (raster order) of the rendered window, and its bounds."""
    fmin, fmax, smin, smax = setup.roi
    fmin, smin = max(fmin, 0), max(smin, 0)
    fmax, smax = min(fmax, setup.fpixels - 1), min(smax, setup.spixels - 1)
    if fmax < fmin or smax < smin:
        return np.zeros(0, np.int32), np.zeros(0, np.int32), (fmin, fmax, smin, smax)
    s, f = np.meshgrid(np.arange(smin, smax + 1), np.arange(fmin, fmax + 1), indexing="ij")
    return s.ravel().astype(np.int32), f.ravel().astype(np.int32), (fmin, fmax, smin, smax)


def _tiles(x: np.ndarray, tile: int, fill: int) -> np.ndarray:
    n = x.shape[0]
    n_tiles = -(-n // tile)
    pad = n_tiles * tile - n
    return np.concatenate([x, np.full(pad, fill, x.dtype)]).reshape(n_tiles, tile)


def _needs_wide_edges(setup: Setup, params: Params) -> bool:
    """Whether to evaluate in float64 although params are float32.

    Flat-top spots have a hard edge (a step in r*²): in float32 the Miller
    indices carry ~1e-6 absolute error, enough to move pixels that straddle the
    edge across it.  When the process allows float64, such images are rendered
    in float64 and returned in float32.
    """
    return (setup.shape == "TOPHAT" and jax.config.jax_enable_x64
            and jnp.result_type(params.wavelength) == jnp.float32)


def simulate(setup: Setup, params: Params) -> Array:
    """Render the detector image (photons per pixel), shape (spixels, fpixels).

    Args:
      setup: static description (hashable; changing it recompiles).
      params: continuous parameters; the image has their floating dtype and is
        differentiable with respect to every one of them.
    Returns:
      Array of shape (spixels, fpixels); pixels outside the ROI or masked are 0.
    """
    if _needs_wide_edges(setup, params):
        wide = params.astype(jnp.float64)
        return _simulate_dispatch(setup, wide).astype(jnp.float32)
    return _simulate_dispatch(setup, params)


def _roi_bounds(setup: Setup) -> tuple[int, int, int, int]:
    """The ROI clipped to the detector: (fmin, fmax, smin, smax), possibly empty."""
    fmin, fmax, smin, smax = setup.roi
    return (max(fmin, 0), min(fmax, setup.fpixels - 1), max(smin, 0), min(smax, setup.spixels - 1))


def _tile_indices(setup: Setup, tile: int, n_tiles: int) -> tuple[Array, Array, Array]:
    """(slow, fast, raster order) index arrays of shape (n_tiles, tile), made in the graph.

    Generated from an iota rather than embedded as constants, so the compiled
    program (and the persistent cache entry) does not grow with the detector.
    Padding entries repeat the last ROI pixel and carry order = n_valid.
    """
    fmin, fmax, smin, smax = _roi_bounds(setup)
    width = fmax - fmin + 1
    n_valid = width * (smax - smin + 1)
    order = jnp.arange(n_tiles * tile, dtype=jnp.int32).reshape(n_tiles, tile)
    lin = jnp.minimum(order, n_valid - 1)
    s_idx = smin + lin // width
    f_idx = fmin + lin % width
    return s_idx, f_idx, jnp.minimum(order, n_valid)


def _n_devices(setup: Setup) -> int:
    """How many devices to spread the tiles over (see ``set_parallel_devices``)."""
    if _PARALLEL["devices"] is not None:
        n = _PARALLEL["devices"]
    else:
        try:
            n = len(jax.devices("cpu")) if jax.default_backend() == "cpu" else 1
        except RuntimeError:
            n = 1
    return max(1, int(n))


def _simulate_dispatch(setup: Setup, params: Params) -> Array:
    return _simulate(setup, params, _n_devices(setup))


# cli branch: compiled setups live in a bounded LRU (see _compiled.py: each compiled setup
# holds hundreds of memory mappings; an unbounded jit cache crashed long sessions)
@setup_jit(static_argnames=("setup", "n_dev"))
def _simulate(setup: Setup, params: Params, n_dev: int = 1) -> Array:
    """The jitted renderer behind ``simulate`` (setup static)."""
    dtype = jnp.result_type(params.wavelength)
    image = jnp.zeros((setup.spixels, setup.fpixels), dtype)
    fmin, fmax, smin, smax = _roi_bounds(setup)
    if fmax < fmin or smax < smin:
        return image
    n_valid = (fmax - fmin + 1) * (smax - smin + 1)
    tile = kernel.tile_pixels(setup)
    if kernel.fast_path_applies(setup):
        tile = kernel.round_tile(tile, n_valid)
    else:
        tile = min(tile, n_valid)
    n_tiles = -(-n_valid // tile)
    n_dev = max(1, min(n_dev, n_tiles))
    n_tiles = -(-n_tiles // n_dev) * n_dev  # a whole number of tiles per device
    S, F, order = _tile_indices(setup, tile, n_tiles)

    if setup.interpolate:
        ctx = kernel.build_context(setup, params)
        K = setup.subpaths_per_pixel
        if setup.has_mask:
            active_tiles = (ctx.mask[S, F] != 0) & (order < n_valid)
        else:
            active_tiles = order < n_valid

        def trig_tile(args):
            s, f, act = args
            return kernel.interpolation_trigger(setup, ctx, s, f, act)

        first = jax.lax.map(trig_tile, (S, F, active_tiles)).reshape(-1)
        hit = first < K
        p_star = jnp.where(jnp.any(hit), jnp.argmax(hit), S.size).astype(jnp.int32)
        k_star = jnp.where(jnp.any(hit), first[jnp.minimum(p_star, S.size - 1)], K).astype(jnp.int32)
        trigger = (p_star, k_star)
    else:
        trigger = (jnp.int32(0), jnp.int32(0))

    def render(params, S, F, order, trigger):
        ctx = kernel.build_context(setup, params)

        # Under differentiation each tile is rematerialised: the backward pass
        # recomputes the tile's per-pixel geometry instead of storing it for every
        # tile, keeping only the sub-path sums (the expensive part).
        def render_tile(args):
            s, f, o = args
            return kernel.pixel_photons(setup, ctx, s, f, o, trigger)

        render_tile = jax.checkpoint(
            render_tile, policy=jax.checkpoint_policies.save_only_these_names(kernel.SUBPATH_SUM_NAME))

        if S.shape[0] == 1:  # one tile: no loop (and no stacked residuals under grad)
            return render_tile((S[0], F[0], order[0]))[None]
        return jax.lax.map(render_tile, (S, F, order))

    if n_dev > 1:
        from jax.sharding import Mesh, PartitionSpec as PS

        mesh = Mesh(np.asarray(jax.devices("cpu")[:n_dev]), ("tiles",))
        render = jax.shard_map(render, mesh=mesh, in_specs=(PS(), PS("tiles"), PS("tiles"),
                                                            PS("tiles"), PS()),
                               out_specs=PS("tiles"), check_vma=False)
    values = render(params, S, F, order, trigger).reshape(-1)[:n_valid]
    values = values.reshape(smax - smin + 1, fmax - fmin + 1).astype(dtype)
    if (fmin, fmax, smin, smax) == (0, setup.fpixels - 1, 0, setup.spixels - 1):
        image = values
    else:
        image = image.at[smin:smax + 1, fmin:fmax + 1].set(values)
    if setup.has_mask:
        image = jnp.where(params.mask != 0, image, 0.0)
    return image


# Device parallelism: None = every CPU device JAX exposes (one unless the process
# asked for more, e.g. ``jax.config.update("jax_num_cpu_devices", os.cpu_count())``
# before first use); an int = that many.
_PARALLEL: dict = {"devices": None}


def set_parallel_devices(n: int | None) -> None:
    """Spread the tiles of every later ``simulate`` over ``n`` CPU devices.

    XLA:CPU runs one program on one core; with several CPU devices
    (``jax.config.update("jax_num_cpu_devices", k)`` at start-up) the tiles are
    divided between them with ``shard_map`` so that k cores render at once.
    ``None`` (the default) uses all CPU devices when the default backend is the
    CPU; 1 disables it (e.g. inside your own ``pmap``/``shard_map``).
    """
    _PARALLEL["devices"] = n


def enable_compilation_cache(path: str | None = None, min_compile_time_secs: float = 0.0) -> str:
    """Turn on JAX's persistent compilation cache (for scripts and other short-lived processes).

    A later process that renders the same ``Setup`` (same shapes, dtype and
    flags) loads the compiled program from ``path`` instead of compiling it again
    (2–10 s saved per configuration).  Default path: ``$NANOBRAGG_JAX_CACHE``,
    else ``$XDG_CACHE_HOME/nanobragg-jax`` (``~/.cache/nanobragg-jax``), the
    folder the ``nanoBragg`` command uses.  Returns the path.
    """
    import os

    if path is None:
        path = os.environ.get("NANOBRAGG_JAX_CACHE") or os.path.join(
            os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "nanobragg-jax")
    os.makedirs(path, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", min_compile_time_secs)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return path
