"""Sparse evaluation: photons in an arbitrary list of pixels (e.g. shoeboxes around spots).

``simulate_pixels(setup, params, slow_idx, fast_idx)`` returns, for each listed
pixel (s, f), exactly the value ``simulate(setup, params)[s, f]`` — the same
kernel functions (``kernel.build_context`` + ``kernel.pixel_photons``), the same
ROI (pixels outside it are 0) and the same mask — at a cost proportional to
the number of listed pixels, not to the detector.  It is differentiable with
respect to ``params`` like ``simulate``.

Compilation.  The pixel list is padded to a *bucket* (the next power of two,
at least ``MIN_BUCKET``); the padded entries repeat the first pixel and are
dropped from the result.  The pixel indices are traced arguments, so one
compiled program (per ``Setup``, bucket, dtype) serves every pixel list whose
length falls in that bucket: changing which pixels — or how many, within a
bucket — does not recompile the forward pass or its gradient.

Not supported: tricubic interpolation (``Setup.interpolate``).  The C program
switches interpolation off for the rest of the image at the first sub-path,
in raster order, whose neighbourhood leaves the HKL grid; a pixel's value then
depends on every pixel before it, which a sparse evaluation cannot know
without rendering the whole image.  Those setups raise NotImplementedError
(render with ``simulate`` instead).

Panels: ``panel_idx`` is accepted for the multi-panel interface of the panels
branch; only ``None`` (the single detector of ``Setup``/``Params``) is
supported here.
"""

from __future__ import annotations

from functools import partial
from typing import Optional

import jax
import jax.numpy as jnp
from jax import Array

from . import kernel
from .config import Params, Setup

# Smallest bucket (pixels).  Buckets are powers of two, so a pixel list wastes
# at most half its bucket, and lists of 1…MIN_BUCKET pixels share a program.
MIN_BUCKET = 64


def bucket_size(n: int) -> int:
    """The padded length used for ``n`` pixels: the next power of two ≥ max(n, MIN_BUCKET)."""
    n = max(int(n), MIN_BUCKET)
    return 1 << (n - 1).bit_length()


def _check_setup(setup: Setup) -> None:
    if setup.interpolate:
        raise NotImplementedError(
            "simulate_pixels: tricubic interpolation (-interpolate) is not supported: the C "
            "program turns interpolation off for the rest of the image at the first pixel, in "
            "raster order, whose neighbourhood leaves the HKL grid, so a pixel's value depends "
            "on all pixels rendered before it. Use simulate() for such setups, or -nointerpolate.")


def _tile_for(setup: Setup, n: int) -> tuple[int, int]:
    """(tile, n_tiles) covering ``n`` padded pixels with the kernel's tile size."""
    tile = min(kernel.tile_pixels(setup), n)
    return tile, -(-n // tile)


def pixel_values(setup: Setup, params: Params, slow_idx: Array, fast_idx: Array) -> Array:
    """Photons at pixels (slow_idx[i], fast_idx[i]) — un-jitted, for use inside jit/vmap/grad.

    The same values as ``simulate(setup, params)[slow_idx, fast_idx]``: pixels
    outside the ROI or masked are 0.  The index arrays (any integer dtype, shape
    (n,)) may be traced; ``n`` fixes the compiled shapes (see ``simulate_pixels``
    for the padding that keeps ``n`` within a few sizes).  Indices must lie on
    the detector (0 ≤ s < spixels, 0 ≤ f < fpixels).
    """
    _check_setup(setup)
    dtype = jnp.result_type(params.wavelength)
    S = jnp.asarray(slow_idx).astype(jnp.int32).reshape(-1)
    F = jnp.asarray(fast_idx).astype(jnp.int32).reshape(-1)
    n = S.shape[0]
    if n == 0:
        return jnp.zeros((0,), dtype)
    tile, n_tiles = _tile_for(setup, n)
    pad = n_tiles * tile - n
    if pad:
        S = jnp.concatenate([S, jnp.broadcast_to(S[:1], (pad,))])
        F = jnp.concatenate([F, jnp.broadcast_to(F[:1], (pad,))])
    S = S.reshape(n_tiles, tile)
    F = F.reshape(n_tiles, tile)
    ctx = kernel.build_context(setup, params)
    no_trigger = (jnp.int32(0), jnp.int32(0))  # interpolation is excluded above

    # As in ``simulate``: derivatives are taken in cache-sized chunks (kernel.tile_photons).
    def render_tile(args):
        s, f = args
        return kernel.tile_photons(setup, ctx, s, f, jnp.zeros_like(s), no_trigger)
    if n_tiles == 1:
        values = render_tile((S[0], F[0]))
    else:
        values = jax.lax.map(render_tile, (S, F)).reshape(-1)
    values = values[:n].astype(dtype)
    S, F = S.reshape(-1)[:n], F.reshape(-1)[:n]

    # The ROI (as ``simulate``: pixels outside it are never rendered) and the mask.
    fmin, fmax, smin, smax = setup.roi
    inside = (S >= max(smin, 0)) & (S <= smax) & (F >= max(fmin, 0)) & (F <= fmax)
    if setup.has_mask:
        inside = inside & (jnp.asarray(params.mask)[S, F] != 0)
    return jnp.where(inside, values, 0.0)


@partial(jax.jit, static_argnames=("setup",))
def _pixels_jit(setup: Setup, params: Params, S: Array, F: Array) -> Array:
    return pixel_values(setup, params, S, F)


def pad_pixels(slow_idx, fast_idx, bucket: Optional[int] = None) -> tuple[Array, Array, int]:
    """Pad two index lists to ``bucket`` entries (default ``bucket_size(n)``), repeating the first.

    Returns (slow, fast, n).  Useful to build fixed-shape inputs for ``pixel_values``
    inside your own ``jit``/``vmap`` (e.g. several shots with different spot counts).
    """
    S = jnp.asarray(slow_idx, jnp.int32).reshape(-1)
    F = jnp.asarray(fast_idx, jnp.int32).reshape(-1)
    n = int(S.shape[0])
    if F.shape[0] != n:
        raise ValueError(f"slow_idx and fast_idx differ in length ({n} vs {F.shape[0]})")
    size = bucket_size(n) if bucket is None else int(bucket)
    if size < n:
        raise ValueError(f"bucket {size} is smaller than the pixel count {n}")
    if size > n:
        fill_s = S[:1] if n else jnp.zeros((1,), jnp.int32)
        fill_f = F[:1] if n else jnp.zeros((1,), jnp.int32)
        S = jnp.concatenate([S, jnp.broadcast_to(fill_s, (size - n,))])
        F = jnp.concatenate([F, jnp.broadcast_to(fill_f, (size - n,))])
    return S, F, n


def simulate_pixels(setup: Setup, params: Params, slow_idx, fast_idx,
                    panel_idx=None, bucket: Optional[int] = None) -> Array:
    """Photons (n,) at the listed pixels, equal to ``simulate(setup, params)[slow_idx, fast_idx]``.

    Args:
      setup: static description (hashable).  Tricubic interpolation raises
        NotImplementedError (see the module docstring).
      params: continuous parameters; the result has their floating dtype and is
        differentiable with respect to every one of them (``jax.grad`` through
        this function compiles once per (setup, bucket)).
      slow_idx, fast_idx: integer pixel indices, shape (n,), on the detector.
      panel_idx: panel of each pixel for multi-panel detectors; only ``None``
        (the single detector described by ``setup``/``params``) is supported.
      bucket: padded length (≥ n); default: the next power of two ≥ max(n, 64).
    Returns:
      Array (n,) in photons per pixel; pixels outside the ROI or masked are 0.
    Cost: proportional to the bucket, i.e. at most 2× the pixel count.
    """
    if panel_idx is not None:
        raise NotImplementedError("simulate_pixels: panel_idx needs the multi-panel detector "
                                  "(panels branch); pass None for the single detector")
    _check_setup(setup)
    if not isinstance(slow_idx, jax.core.Tracer):
        import numpy as np

        s_np, f_np = np.asarray(slow_idx).reshape(-1), np.asarray(fast_idx).reshape(-1)
        if s_np.size and (s_np.min() < 0 or s_np.max() >= setup.spixels or f_np.min() < 0
                          or f_np.max() >= setup.fpixels):
            raise ValueError(f"simulate_pixels: pixel indices outside the {setup.spixels}×"
                             f"{setup.fpixels} detector")
    S, F, n = pad_pixels(slow_idx, fast_idx, bucket)
    if n == 0:
        return jnp.zeros((0,), jnp.result_type(params.wavelength))
    from .simulate import _needs_wide_edges  # the same float64 edge rule as simulate

    if _needs_wide_edges(setup, params):
        return _pixels_jit(setup, params.astype(jnp.float64), S, F)[:n].astype(jnp.float32)
    return _pixels_jit(setup, params, S, F)[:n]
