"""Sparse evaluation: photons in an arbitrary list of pixels (e.g. shoeboxes around spots).

``simulate_pixels(setup, params, slow_idx, fast_idx)`` returns, for each listed
pixel (s, f), exactly the value ``simulate(setup, params)[s, f]`` — the same
kernel functions (``kernel.build_context`` + ``kernel.pixel_photons``), the same
ROI (pixels outside it are 0) and the same mask — at a cost proportional to
the number of listed pixels, not to the detector.  It is differentiable with
respect to ``params`` like ``simulate``.

Multi-panel detectors.  With ``panels`` (a :class:`~nanobragg_jax.panels.PanelStack`)
the pixels are triples (panel, slow, fast) and the values are those of
``simulate_panels(setup, params, panels, mask)[panel, slow, fast]``.  Each
pixel is rendered in the detector frame of its own panel
(:func:`~nanobragg_jax.panels.panel_frames`, gathered per pixel), so the cost
stays proportional to the pixel count whatever the number of panels, and
gradients reach every panel's origin, fast and slow axes — hence the per-panel
shift and rotation of :func:`nanobragg_jax.refine.panel_pose`.

Compilation.  The pixel list is padded to a *bucket* (the next power of two,
at least ``MIN_BUCKET``); the padded entries repeat the first pixel and are
dropped from the result.  The pixel indices are traced arguments, so one
compiled program (per ``Setup``, bucket, dtype, panel count) serves every pixel
list whose length falls in that bucket: changing which pixels — or how many,
within a bucket — does not recompile the forward pass or its gradient.

Devices.  As ``simulate``, a list's tiles can be spread over several CPU devices
(``devices=``); by default only long lists are (``MIN_PIXELS_PER_DEVICE`` pixels
per device), since spreading costs about a millisecond a call, more than a
shoebox list of a few 10⁴ pixels saves.

Tricubic interpolation (``Setup.interpolate``).  The C program turns
interpolation off for the rest of the image at the first sub-path, in raster
order of the ROI (of each panel, for panels: each is its own C run), whose
4×4×4 neighbourhood leaves the HKL grid; a pixel's value therefore depends on
where that switch lies.  Sparse mode reproduces it exactly: it first locates
the switch as the full renderer does — the same ``kernel.interpolation_trigger``
scanned tile by tile in raster order, stopping at the first tile that trips
it — and then renders each listed pixel with its raster index, so pixels before
the switch are interpolated and pixels after it are not, exactly as in the full
image.  The scan usually ends in the first tile (the first rows of a detector
are its highest-resolution pixels), but when nothing trips it the scan covers
the geometry (not the structure factors) of every pixel: the sparse cost is
then no longer proportional to the pixel count.  ``interpolation_switch`` gives
the switch on its own; pass it as ``trigger=`` to reuse it across calls (the
switch is discrete and carries no gradient; reused at other parameters the
values equal the full image only while the switch stays where it was).
"""

from __future__ import annotations

from functools import partial
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from . import kernel
from .config import Params, Setup
from .geometry.detector import roi_bounds

# Smallest bucket (pixels).  Buckets are powers of two, so a pixel list wastes
# at most half its bucket, and lists of 1…MIN_BUCKET pixels share a program.
MIN_BUCKET = 64


def bucket_size(n: int, minimum: int = MIN_BUCKET) -> int:
    """The padded length used for ``n`` pixels: the next power of two ≥ max(n, minimum).

    ``refine.shot_bucket`` uses it for shot counts (``minimum`` 1).
    """
    n = max(int(n), int(minimum), 1)
    return 1 << (n - 1).bit_length()


# Fewest pixels per device for which ``devices=None`` spreads a list over several CPU devices.
# Spreading costs ~1-1.5 ms a call (the replicated context, the gathered result; measured on
# 2 cores), as much as rendering ~10^5 pixels of a still: shoebox lists (a few 10^4 pixels)
# are faster on one device.  See docs/refinement.md ("Cost of shoeboxes").
MIN_PIXELS_PER_DEVICE = 1 << 17


def _devices_for(n: int, devices: Optional[int]) -> int:
    """CPU devices a list of ``n`` (padded) pixels is spread over: ``devices`` when given (at
    most one per TILE_QUANTUM pixels); None: every CPU device (as ``simulate``) when each gets
    at least MIN_PIXELS_PER_DEVICE pixels, else one."""
    if devices is not None:
        return max(1, min(int(devices), n // kernel.TILE_QUANTUM))
    from .simulate import default_devices

    return max(1, min(default_devices(), n // MIN_PIXELS_PER_DEVICE))


def _tile_for(setup: Setup, n: int, n_dev: int = 1) -> tuple[int, int]:
    """(tile, n_tiles) covering ``n`` padded pixels with the kernel's tile size, the tiles a
    whole number per device."""
    tile = min(kernel.tile_pixels(setup), -(-n // n_dev))
    n_tiles = -(-n // tile)
    return tile, -(-n_tiles // n_dev) * n_dev


def _spread(render, n_dev: int, n_replicated: int, n_tiled: int):
    """``render`` (replicated args, then (n_tiles, tile) index arrays) → (n_tiles, tile), with
    the tiles spread over ``n_dev`` CPU devices (``shard_map``, as ``simulate``)."""
    if n_dev == 1:
        return render
    from jax.sharding import Mesh, PartitionSpec as PS

    mesh = Mesh(np.asarray(jax.devices("cpu")[:n_dev]), ("tiles",))
    return jax.shard_map(render, mesh=mesh, in_specs=(PS(),) * n_replicated + (PS("tiles"),) * n_tiled,
                         out_specs=PS("tiles"), check_vma=False)


def _raster_index(setup: Setup, S: Array, F: Array) -> Array:
    """Each pixel's position in the raster order of the ROI (the full renderer's ``order``)."""
    fmin, fmax, smin, _ = roi_bounds(setup)
    return (S - smin) * (fmax - fmin + 1) + (F - fmin)


def _panel_setup(setup: Setup, panels) -> Setup:
    from .panels import panel_setup

    return panel_setup(setup, panels)


def interpolation_switch(setup: Setup, params: Params, panels=None,
                         mask: Optional[Array] = None) -> tuple[Array, Array]:
    """Where the C program turns tricubic interpolation off: (raster index, sub-path index).

    Single detector: two int32 scalars, as ``simulate.interpolation_switch``
    (``(n_valid, K)`` when it never happens, n_valid the ROI's pixel count and
    K the sub-paths per pixel).  With ``panels``: two (n_panels,) arrays, the
    switch of each panel in its own raster order (as ``simulate_panels``).
    ``(0, 0)`` (nothing is interpolated) when ``setup.interpolate`` is off.
    Un-jitted (traceable); no gradient flows through it.
    """
    params = jax.lax.stop_gradient(params)
    if panels is None:
        if not setup.interpolate:
            return jnp.int32(0), jnp.int32(0)
        from .simulate import _interpolation_switch, _tile_indices, _tiling

        tile, n_tiles, n_valid = _tiling(setup)
        if n_valid == 0:
            return jnp.int32(0), jnp.int32(setup.subpaths_per_pixel)
        S, F, order = _tile_indices(setup, tile, n_tiles)
        return _interpolation_switch(setup, kernel.build_context(setup, params), S, F, order, n_valid)
    psetup = _panel_setup(setup, panels)
    n_panels = panels.n_panels
    if not psetup.interpolate:
        return jnp.zeros((n_panels,), jnp.int32), jnp.zeros((n_panels,), jnp.int32)
    from .panels import interpolation_switches

    return interpolation_switches(psetup, params, panels, mask)


def _remat(render_tile):
    # As ``panels.simulate_panels``: each panel tile is rematerialised under
    # differentiation, keeping only the sub-path sums.
    return jax.checkpoint(
        render_tile, policy=jax.checkpoint_policies.save_only_these_names(kernel.SUBPATH_SUM_NAME))


def _map_tiles(render_tile, xs: tuple) -> Array:
    """``render_tile`` over the (n_tiles, tile) index arrays ``xs`` → (n_tiles, tile)."""
    if xs[0].shape[0] == 1:
        return render_tile(tuple(x[0] for x in xs))[None]
    return jax.lax.map(render_tile, xs)


def pixel_values(setup: Setup, params: Params, slow_idx: Array, fast_idx: Array,
                 panel_idx: Optional[Array] = None, panels=None, mask: Optional[Array] = None,
                 trigger: Optional[tuple[Array, Array]] = None, *,
                 devices: Optional[int] = None) -> Array:
    """Photons at the listed pixels — un-jitted, for use inside jit/vmap/grad.

    Single detector (``panels=None``): the values of
    ``simulate(setup, params)[slow_idx, fast_idx]``; pixels outside the ROI or
    masked (``params.mask`` with ``setup.has_mask``) are 0.  With ``panels`` (a
    ``PanelStack``) and ``panel_idx``: the values of
    ``simulate_panels(setup, params, panels, mask)[panel_idx, slow_idx, fast_idx]``
    (``mask``: (n_panels, n_slow, n_fast) or (n_slow, n_fast), 0 = not rendered).
    The index arrays (integer, shape (n,)) may be traced; ``n`` fixes the
    compiled shapes (see ``simulate_pixels`` for the padding that keeps ``n``
    within a few sizes).  Indices must lie on the detector / panels.
    ``trigger``: the interpolation switch (see ``interpolation_switch``; found
    here when ``None`` and the setup interpolates).
    ``devices``: the CPU devices the list's tiles are spread over (``shard_map``, as
    ``simulate``).  None: every CPU device when the default backend is the CPU and the
    list gives each at least ``MIN_PIXELS_PER_DEVICE`` pixels, else one (spreading a
    shorter list costs more than it saves).  Pass 1 inside your own ``pmap``/``shard_map``.
    """
    dtype = jnp.result_type(params.wavelength)
    S = jnp.asarray(slow_idx).astype(jnp.int32).reshape(-1)
    F = jnp.asarray(fast_idx).astype(jnp.int32).reshape(-1)
    n = S.shape[0]
    if n == 0:
        return jnp.zeros((0,), dtype)
    if panels is not None:
        P = (jnp.zeros_like(S) if panel_idx is None
             else jnp.asarray(panel_idx).astype(jnp.int32).reshape(-1))
        return _panel_pixel_values(setup, params, panels, P, S, F, mask, trigger, devices)
    if panel_idx is not None:
        raise ValueError("pixel_values: panel_idx needs panels (a PanelStack)")
    if trigger is None:
        trigger = interpolation_switch(setup, params)
    n_dev = _devices_for(n, devices)
    tile, n_tiles = _tile_for(setup, n, n_dev)
    pad = n_tiles * tile - n
    Sp, Fp = S, F
    if pad:
        Sp = jnp.concatenate([S, jnp.broadcast_to(S[:1], (pad,))])
        Fp = jnp.concatenate([F, jnp.broadcast_to(F[:1], (pad,))])
    Op = _raster_index(setup, Sp, Fp)
    ctx = kernel.build_context(setup, params)

    def render(ctx, trigger, S, F, O):
        # As in ``simulate``: derivatives are taken in cache-sized chunks (kernel.tile_photons).
        def render_tile(args):
            s, f, o = args
            return kernel.tile_photons(setup, ctx, s, f, o, trigger)

        return _map_tiles(render_tile, (S, F, O))

    values = _spread(render, n_dev, 2, 3)(ctx, trigger, *(x.reshape(n_tiles, tile) for x in (Sp, Fp, Op)))
    values = values.reshape(-1)[:n].astype(dtype)

    # The ROI (as ``simulate``: pixels outside it are never rendered) and the mask.
    fmin, fmax, smin, smax = roi_bounds(setup)
    inside = (S >= smin) & (S <= smax) & (F >= fmin) & (F <= fmax)
    if setup.has_mask:
        inside = inside & (jnp.asarray(params.mask)[S, F] != 0)
    return jnp.where(inside, values, 0.0)


def _panel_pixel_values(setup: Setup, params: Params, panels, P: Array, S: Array, F: Array,
                        mask: Optional[Array], trigger: Optional[tuple[Array, Array]],
                        devices: Optional[int]) -> Array:
    """``pixel_values`` on a PanelStack: each pixel in its own panel's frame."""
    from .panels import panel_frames

    dtype = jnp.result_type(params.wavelength)
    psetup = _panel_setup(setup, panels)
    n = S.shape[0]
    if mask is not None:
        mask = jnp.broadcast_to(jnp.asarray(mask), panels.shape)
    if trigger is None:
        trigger = interpolation_switch(setup, params, panels, mask)
    p_star, k_star = (jnp.broadcast_to(jnp.asarray(t, jnp.int32), (panels.n_panels,)) for t in trigger)
    frames = panel_frames(panels, params)
    ctx = kernel.build_context(psetup, params)
    n_dev = _devices_for(n, devices)
    tile, n_tiles = _tile_for(psetup, n, n_dev)
    pad = n_tiles * tile - n
    Pp, Sp, Fp = P, S, F
    if pad:
        Pp, Sp, Fp = (jnp.concatenate([x, jnp.broadcast_to(x[:1], (pad,))]) for x in (P, S, F))
    Op = Sp * psetup.fpixels + Fp  # raster order within the panel (the whole panel is the ROI)

    def render(ctx, frames, p_star, k_star, P, S, F, O):
        def one(frame, s, f, o, ps, ks):
            out = kernel.pixel_photons(psetup, ctx._replace(frame=frame), s[None], f[None], o[None],
                                       (ps, ks))
            return out[0]

        def render_tile(args):
            p, s, f, o = args
            frame = jax.tree_util.tree_map(lambda x: x[p], frames)  # each pixel's panel frame
            return jax.vmap(one)(frame, s, f, o, p_star[p], k_star[p])

        return _map_tiles(_remat(render_tile), (P, S, F, O))

    values = _spread(render, n_dev, 4, 4)(ctx, frames, p_star, k_star,
                                          *(x.reshape(n_tiles, tile) for x in (Pp, Sp, Fp, Op)))
    values = values.reshape(-1)[:n].astype(dtype)
    if mask is not None:
        values = jnp.where(mask[P, S, F] != 0, values, 0.0)
    return values


@partial(jax.jit, static_argnames=("setup", "devices"))
def _pixels_jit(setup: Setup, params: Params, S: Array, F: Array, devices: Optional[int]) -> Array:
    return pixel_values(setup, params, S, F, devices=devices)


@partial(jax.jit, static_argnames=("setup", "devices"))
def _panel_pixels_jit(setup: Setup, params: Params, panels, P: Array, S: Array, F: Array,
                      mask: Optional[Array], devices: Optional[int]) -> Array:
    return pixel_values(setup, params, S, F, panel_idx=P, panels=panels, mask=mask, devices=devices)


def pad_pixels(slow_idx, fast_idx, bucket: Optional[int] = None, panel_idx=None):
    """Pad index lists to ``bucket`` entries (default ``bucket_size(n)``), repeating the first.

    Returns (slow, fast, n), or (slow, fast, panel, n) when ``panel_idx`` is
    given.  Useful to build fixed-shape inputs for ``pixel_values`` inside your
    own ``jit``/``vmap`` (e.g. several shots with different spot counts).
    """
    lists = [jnp.asarray(x, jnp.int32).reshape(-1) for x in (slow_idx, fast_idx)]
    if panel_idx is not None:
        lists.append(jnp.asarray(panel_idx, jnp.int32).reshape(-1))
    n = int(lists[0].shape[0])
    if any(int(x.shape[0]) != n for x in lists):
        raise ValueError(f"pixel index lists differ in length ({[int(x.shape[0]) for x in lists]})")
    size = bucket_size(n) if bucket is None else int(bucket)
    if size < n:
        raise ValueError(f"bucket {size} is smaller than the pixel count {n}")
    if size > n:
        lists = [jnp.concatenate([x, jnp.broadcast_to(x[:1] if n else jnp.zeros((1,), jnp.int32),
                                                      (size - n,))]) for x in lists]
    return (*lists, n)


def _check_indices(name: str, idx, size: int, what: str) -> None:
    if isinstance(idx, jax.core.Tracer):
        return
    a = np.asarray(idx).reshape(-1)
    if a.size and (a.min() < 0 or a.max() >= size):
        raise ValueError(f"simulate_pixels: {name} outside the {what} (0 ≤ {name} < {size})")


def simulate_pixels(setup: Setup, params: Params, slow_idx, fast_idx,
                    panel_idx=None, bucket: Optional[int] = None, *, panels=None,
                    mask: Optional[Array] = None, devices: Optional[int] = None) -> Array:
    """Photons (n,) at the listed pixels, equal to the full image there.

    Args:
      setup: static description (hashable).  Tricubic interpolation is
        reproduced exactly (see the module docstring for its cost).
      params: continuous parameters; the result has their floating dtype and is
        differentiable with respect to every one of them (``jax.grad`` through
        this function compiles once per (setup, bucket)).
      slow_idx, fast_idx: integer pixel indices, shape (n,), on the detector
        (on the panel with ``panels``).
      panel_idx: the panel of each pixel, shape (n,); needs ``panels``.
      bucket: padded length (≥ n); default: the next power of two ≥ max(n, 64).
      panels: a ``PanelStack``: the pixels are (panel, slow, fast) of
        ``simulate_panels(setup, params, panels, mask)``; its origins and axes
        are differentiable (e.g. through ``refine.panel_pose``).
      mask: with ``panels`` only, (n_panels, n_slow, n_fast) or (n_slow, n_fast),
        0 = not rendered.  (The single detector uses ``params.mask``.)
      devices: CPU devices to spread the tiles over (None: every CPU device for long
        lists, one for short ones; see ``pixel_values``).
    Returns:
      Array (n,) in photons per pixel — ``simulate(setup, params)[slow, fast]``,
      or ``simulate_panels(...)[panel, slow, fast]``; pixels outside the ROI or
      masked are 0.
    Cost: proportional to the bucket, i.e. at most 2× the pixel count (plus the
    interpolation switch's scan with ``-interpolate``).
    """
    dtype = jnp.result_type(params.wavelength)
    if panels is None:
        if panel_idx is not None:
            raise ValueError("simulate_pixels: panel_idx needs panels= (a PanelStack); the single "
                             "detector of setup/params has no panels")
        _check_indices("slow_idx", slow_idx, setup.spixels, "detector")
        _check_indices("fast_idx", fast_idx, setup.fpixels, "detector")
        S, F, n = pad_pixels(slow_idx, fast_idx, bucket)
        if n == 0:
            return jnp.zeros((0,), dtype)
        from .simulate import _needs_wide_edges  # the same float64 edge rule as simulate

        if _needs_wide_edges(setup, params):
            return _pixels_jit(setup, params.astype(jnp.float64), S, F, devices)[:n].astype(jnp.float32)
        return _pixels_jit(setup, params, S, F, devices)[:n]

    from .panels import _check_pixel_size
    from .simulate import _needs_wide_edges

    _check_pixel_size(panels, params)
    if panel_idx is None:
        if panels.n_panels != 1:
            raise ValueError(f"simulate_pixels: panel_idx is needed for {panels.n_panels} panels")
        panel_idx = np.zeros(np.shape(slow_idx), np.int32)
    _check_indices("panel_idx", panel_idx, panels.n_panels, "panels")
    _check_indices("slow_idx", slow_idx, panels.n_slow, "panel")
    _check_indices("fast_idx", fast_idx, panels.n_fast, "panel")
    S, F, P, n = pad_pixels(slow_idx, fast_idx, bucket, panel_idx)
    if n == 0:
        return jnp.zeros((0,), dtype)
    psetup = _panel_setup(setup, panels)
    if _needs_wide_edges(psetup, params):
        return _panel_pixels_jit(setup, params.astype(jnp.float64), panels.astype(jnp.float64), P, S, F,
                                 mask, devices)[:n].astype(jnp.float32)
    return _panel_pixels_jit(setup, params, panels, P, S, F, mask, devices)[:n]
