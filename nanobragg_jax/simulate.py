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
        return _simulate(setup, wide).astype(jnp.float32)
    return _simulate(setup, params)


@partial(jax.jit, static_argnames=("setup",))
def _simulate(setup: Setup, params: Params) -> Array:
    """The jitted renderer behind ``simulate`` (setup static)."""
    dtype = jnp.result_type(params.wavelength)
    ctx = kernel.build_context(setup, params)
    s_idx, f_idx, (fmin, fmax, smin, smax) = _roi_pixels(setup)
    image = jnp.zeros((setup.spixels, setup.fpixels), dtype)
    if s_idx.size == 0:
        return image
    lin = s_idx.astype(np.int64) * setup.fpixels + f_idx
    tile = kernel.tile_pixels(setup)
    tile = min(tile, s_idx.size)
    S = jnp.asarray(_tiles(s_idx, tile, s_idx[-1]))
    F = jnp.asarray(_tiles(f_idx, tile, f_idx[-1]))
    order = jnp.asarray(_tiles(np.arange(s_idx.size, dtype=np.int32), tile, s_idx.size))
    n_valid = s_idx.size

    if setup.has_mask:
        active_all = ctx.mask[s_idx, f_idx] != 0
        active_tiles = jnp.concatenate([active_all, jnp.zeros(S.size - n_valid, bool)]).reshape(S.shape)
    else:
        active_tiles = order < n_valid

    if setup.interpolate:
        K = setup.subpaths_per_pixel

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

    def render_tile(args):
        s, f, o = args
        return kernel.pixel_photons(setup, ctx, s, f, o, trigger)

    values = jax.lax.map(render_tile, (S, F, order)).reshape(-1)[:n_valid]
    values = values.reshape(smax - smin + 1, fmax - fmin + 1)
    image = image.at[smin:smax + 1, fmin:fmax + 1].set(values.astype(dtype))
    if setup.has_mask:
        image = jnp.where(ctx.mask != 0, image, 0.0)
    return image
