"""The pixel kernel: every sub-path of a tile of pixels, reduced to photons per pixel.

A pixel's sub-paths are the product of its loops, in the C program's order:
sensor layer t → sub-pixel row i → sub-pixel column j → source s → φ tick →
mosaic domain d.  For each one the kernel forms the diffracted direction d̂, the
scattering vector q = (d̂ − î)/λ, the fractional Miller indices h = a·q, the
lattice transform F_latt and the structure factor F_cell, and adds
F_cell²·F_latt² to the pixel's running sum I (which starts at the water
background).  The pixel is then

    photons = r_e² Φ I / steps × capture × polarisation × Ω,

where — as in the C program — Ω is the solid angle at the first sub-pixel,
the polarisation is the one at the first source not cut by ``-dmin``, and the
capture fraction is that of the first sub-pixel of the last sensor layer.
With ``-oversample_thick/_polar/_omega`` the C program instead multiplies the
running sum by the current factor after every addition (I ← (I + term)·f);
that is a suffix product over the sub-path sequence, computed here with a
reversed cumulative product.

Pixels are processed in tiles (``lax.map``) so that memory is bounded by the
tile, not the detector; inside a tile everything is broadcasting arithmetic
that XLA fuses.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import Array

from . import physics
from .config import Params, Setup
from .geometry import beam as beam_geo
from .geometry import crystal as crystal_geo
from .geometry import detector as det_geo
from .geometry import vectors as V

WATER_CONSTANT = (physics.WATER_F**2 * physics.R_E_SQR * 1e6 * physics.AVOGADRO
                  / physics.WATER_MW * 1e-18)  # t in µm: (1e-6 m)³

# Sub-path elements per tile; bounds the kernel's working memory (~100 B each).
DEFAULT_TILE_BUDGET = 1 << 18


class Context(NamedTuple):
    """Everything the per-pixel kernel needs, derived once from Params."""

    frame: det_geo.DetectorFrame
    layer_step: Array
    mu: Array  # sensor attenuation coefficient, 1/m
    incident: Array  # (S, 3)
    wavelength: Array  # (S,) m
    real: Array  # (Φ, D, 3, 3) m, rows a, b, c
    recip: Array  # (3, 3) Å⁻¹ at φ = 0, no mosaic (spot-shape metric)
    N: Array
    fudge: Array
    default_F: Array
    F_grid: Array
    kahn: Array
    polar_axis: Array
    I_bg: Array
    dmin: Array  # m
    photon_scale: Array  # r_e² Φ / steps
    mask: Array


def build_context(setup: Setup, params: Params) -> Context:
    """Derive the geometry shared by all pixels (cheap; traced inside ``simulate``)."""
    frame = det_geo.detector_frame(setup, params)
    src = beam_geo.sources(setup, params)
    lat = crystal_geo.lattice(setup, params)
    real = crystal_geo.rotated_real_vectors(setup, params, lat.real)
    # I_bg = F_w² r_e² Φ t³ 10⁶ N_A / MW, grouped as (constants)·Φ·t_µm³ so that no
    # intermediate leaves float32's range whatever order XLA multiplies in.
    I_bg = WATER_CONSTANT * params.fluence * params.water_size**3
    return Context(
        frame=frame,
        layer_step=det_geo.layer_thickness(setup, params),
        mu=1.0 / (params.attenuation_depth * det_geo.UM),
        incident=src.incident,
        wavelength=src.wavelength,
        real=real,
        recip=lat.reciprocal,
        N=params.N,
        fudge=params.fudge,
        default_F=params.default_F,
        F_grid=params.F_grid,
        kahn=params.kahn_factor,
        polar_axis=V.unitize(params.polar_vector),
        I_bg=I_bg if setup.has_water else jnp.zeros_like(I_bg),
        dmin=params.dmin * 1e-10,
        photon_scale=(physics.R_E_SQR * params.fluence) / setup.steps,
        mask=params.mask,
    )


def tile_pixels(setup: Setup) -> int:
    """Pixels per tile: the budget divided by the sub-path count (×64 for tricubic)."""
    if setup.tile_pixels:
        return setup.tile_pixels
    per_pixel = setup.subpaths_per_pixel * (64 if setup.interpolate else 1)
    return int(max(1, min(DEFAULT_TILE_BUDGET // max(per_pixel, 1), 1 << 16)))


class SubPaths(NamedTuple):
    """Per-sub-path quantities of a tile (P pixels, K sub-paths in loop order)."""

    term_shape: tuple
    hkl: Array  # (P, T, n, n, S, Φ, D, 3)
    F_latt: Array  # (P, T, n, n, S, Φ, D)
    valid: Array  # (P, T, n, n, S, Φ, D): not skipped by dmin / zero F_latt
    omega: Array  # (P, T, n, n)
    capture: Array  # (P, T, n, n)
    polar: Array  # (P, T, n, n, S)
    pass_dmin: Array  # (P, T, n, n, S)


def sub_paths(setup: Setup, ctx: Context, spixel: Array, fpixel: Array) -> SubPaths:
    """Geometry and lattice factor of every sub-path of the pixels (spixel, fpixel)."""
    frame = ctx.frame
    pos = det_geo.subpixel_positions(setup, frame, spixel, fpixel, ctx.layer_step)
    airpath = jnp.sqrt(jnp.sum(pos * pos, axis=-1))  # (P,T,n,n)
    d = pos / airpath[..., None]
    omega = det_geo.solid_angle(setup, frame, airpath)
    capture = det_geo.capture_fraction(setup, ctx.mu, d, frame.odet, ctx.layer_step)
    inc = ctx.incident  # (S,3)
    q = (d[..., None, :] - inc) / ctx.wavelength[:, None]  # (P,T,n,n,S,3)
    if setup.use_dmin:
        stol = 0.5 * jnp.sqrt(jnp.sum(q * q, axis=-1))
        cut = (stol > 0) & (ctx.dmin > 0.5 / jnp.where(stol > 0, stol, 1.0))
        pass_dmin = ~cut
    else:
        pass_dmin = jnp.ones(q.shape[:-1], bool)
    if setup.nopolar and not setup.oversample_polar:
        polar = jnp.ones(q.shape[:-1], q.dtype)
    else:
        polar = physics.polarization_factor(ctx.kahn, inc, d[..., None, :], ctx.polar_axis)
    A = ctx.real  # (Φ, D, 3, 3)
    qe = q[..., None, None, None, :]  # (P,T,n,n,S,1,1,1,3)
    hkl = jnp.sum(qe * A, axis=-1)  # (P,T,n,n,S,Φ,D,3)
    F_latt = physics.lattice_factor(setup.shape, hkl, ctx.recip, ctx.N, ctx.fudge)
    valid = pass_dmin[..., None, None]
    if not setup.has_water:
        valid = valid & (F_latt != 0.0)
    valid = jnp.broadcast_to(valid, F_latt.shape)
    return SubPaths(F_latt.shape, hkl, F_latt, valid, omega, capture, polar, pass_dmin)


def first_true_index(mask: Array) -> Array:
    """Index of the first True along the last axis, or its length if none."""
    n = mask.shape[-1]
    idx = jnp.argmax(mask, axis=-1)
    return jnp.where(jnp.any(mask, axis=-1), idx, n)


def interpolation_trigger(setup: Setup, ctx: Context, spixel: Array, fpixel: Array,
                          active: Array) -> Array:
    """First sub-path (loop order) of each pixel whose tricubic neighbourhood leaves the grid.

    Returns the index in [0, K], K meaning "never"; inactive (masked) pixels give K.
    """
    sp = sub_paths(setup, ctx, spixel, fpixel)
    out = physics.interpolation_out_of_range(sp.hkl, setup.hkl_min, setup.hkl_max)
    trig = (out & sp.valid).reshape(out.shape[0], -1)
    k = first_true_index(trig)
    return jnp.where(active, k, trig.shape[-1])


def pixel_photons(setup: Setup, ctx: Context, spixel: Array, fpixel: Array,
                  linear_index: Array, trigger: tuple[Array, Array]) -> Array:
    """Photons in each pixel of a tile (mask not applied).

    ``trigger`` = (pixel index, sub-path index) of the first sub-path at which the
    C program turns tricubic interpolation off for the rest of the image.
    """
    sp = sub_paths(setup, ctx, spixel, fpixel)
    P = spixel.shape[0]
    K = sp.F_latt[0].size
    F_near = physics.structure_factor_nearest(sp.hkl, ctx.F_grid, setup.hkl_min, setup.hkl_max,
                                              ctx.default_F, setup.has_hkl)
    if setup.interpolate:
        F_tri = physics.structure_factor_tricubic(sp.hkl, ctx.F_grid, setup.hkl_min)
        trig_pixel, trig_sub = trigger
        k = jnp.arange(K).reshape(sp.F_latt.shape[1:])
        before = (linear_index.reshape((P,) + (1,) * (k.ndim)) < trig_pixel) | (
            (linear_index.reshape((P,) + (1,) * (k.ndim)) == trig_pixel) & (k < trig_sub))
        F_cell = jnp.where(before, F_tri, F_near)
    else:
        F_cell = F_near
    term = F_cell * F_cell * sp.F_latt * sp.F_latt
    term = jnp.where(sp.valid, term, 0.0)

    omega_first = sp.omega[:, 0, 0, 0]
    capture_last = sp.capture[:, -1, 0, 0]
    if setup.nopolar and not setup.oversample_polar:
        polar_first = jnp.ones_like(omega_first)
    elif setup.use_dmin:
        flat_ok = sp.pass_dmin.reshape(P, -1)
        idx = first_true_index(flat_ok)
        flat_polar = sp.polar.reshape(P, -1)
        got = jnp.take_along_axis(flat_polar, jnp.minimum(idx, flat_polar.shape[1] - 1)[:, None], 1)[:, 0]
        polar_first = jnp.where(idx < flat_polar.shape[1], got, 0.0)
    else:
        polar_first = sp.polar[:, 0, 0, 0, 0]

    if setup.oversample_thick or setup.oversample_polar or setup.oversample_omega:
        factor = jnp.ones_like(term)
        if setup.oversample_thick:
            factor = factor * sp.capture[..., None, None, None]
        if setup.oversample_polar:
            factor = factor * sp.polar[..., None, None]
        if setup.oversample_omega:
            factor = factor * sp.omega[..., None, None, None]
        factor = jnp.where(sp.valid, factor, 1.0).reshape(P, K)
        suffix = jnp.flip(jnp.cumprod(jnp.flip(factor, -1), axis=-1), -1)
        I = ctx.I_bg * suffix[:, 0] + jnp.sum(term.reshape(P, K) * suffix, axis=-1)
    else:
        I = ctx.I_bg + jnp.sum(term.reshape(P, K), axis=-1)

    photons = ctx.photon_scale * I
    if not setup.oversample_thick:
        photons = photons * capture_last
    if not setup.oversample_polar:
        photons = photons * polar_first
    if not setup.oversample_omega:
        photons = photons * omega_first
    return photons
