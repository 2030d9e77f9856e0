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
tile, not the detector.  Two evaluations of the same sum:

* the fast path (``pixel_photons_fast``; every run without tricubic
  interpolation or ``-oversample_thick/_polar/_omega``): per-pixel geometry once
  per (layer, sub-pixel, source) "row", then loops over the rows and the
  (φ, domain) matrices in the C program's order whose body is a single fused,
  vectorised pass over the tile's pixels — no sub-path tensor is materialised.
  F_latt² of the parallelepiped spot uses a polynomial sin(πx) after exact
  reduction of the argument (XLA's CPU ``sin`` is a scalar library call,
  ~20 ns; the polynomial vectorises, ~1 ns), with an analytic derivative rule
  so that reverse mode is one pass too;
* the general path (``sub_paths`` + ``pixel_photons_general``): all sub-paths of a
  tile broadcast as (P, T, n, n, S, Φ, D) arrays, which expresses the
  loop-order semantics (first-index searches, suffix products, the
  interpolation switch) with masks and cumulative products.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import Array
from jax.ad_checkpoint import checkpoint_name as _checkpoint_name
from jax.custom_derivatives import SymbolicZero

from . import physics
from .config import Params, Setup
from .geometry import beam as beam_geo
from .geometry import crystal as crystal_geo
from .geometry import detector as det_geo
from .geometry import vectors as V

WATER_CONSTANT = (physics.WATER_F**2 * physics.R_E_SQR * 1e6 * physics.AVOGADRO
                  / physics.WATER_MW * 1e-18)  # t in µm: (1e-6 m)³

# General path: sub-path elements per tile; bounds its working memory (~100 B each).
DEFAULT_TILE_BUDGET = 1 << 18
# Fast path: the loop body runs over a tile's pixels, so the tile must be long
# enough to amortise the loop's per-iteration cost (~µs) but short enough that its
# per-(layer, sub-pixel, source) arrays stay in cache.  Pixels × (layer·sub-pixel·
# source rows) per tile, and the bounds on the tile (chosen by benchmark, see
# docs/performance.md).
FAST_ROW_BUDGET = 1 << 18
FAST_TILE_MIN = 1 << 12
FAST_TILE_MAX = 1 << 18
TILE_QUANTUM = 256
SUBPATH_SUM_NAME = "nanobragg_subpath_sum"
# Loop unrolling of the fast path's sub-path loop (fewer loop iterations, longer compile).
FAST_UNROLL = 4


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
    source_weight: Array | None = None  # (S,) S·wᵢ/Σw when Setup.weighted_sources, else None


def source_weight_factors(setup: Setup, params: Params) -> Array | None:
    """Per-source factors cᵢ = S·wᵢ / Σⱼ wⱼ of the weighted running sum (None if unweighted).

    With ``Setup.weighted_sources`` every sub-path of source i enters the running
    sum as cᵢ·F_cell²·F_latt²; the sum is then divided by the C program's
    ``steps`` (which counts the S sources) as usual.  Hence, without water,

        image(w) = Σᵢ wᵢ·image(λᵢ alone) / Σᵢ wᵢ,

    where image(λᵢ alone) is the image of a one-source run; equal weights give
    cᵢ = 1 exactly, i.e. the C program's unweighted image.  The water background
    is added once per pixel, as in the C program (so it is divided by S).
    Polarisation stays the C program's: the factor at the first source (not cut
    by ``-dmin``) multiplies the whole sum; it depends on the source direction
    only, so for a spectrum (all sources along the beam) it is the factor of
    every source.  Weights are relative: only wᵢ/Σw matters.
    """
    if not setup.weighted_sources:
        return None
    w = jnp.broadcast_to(params.source_weights, (setup.n_sources,))
    return (w * setup.n_sources) / jnp.sum(w)


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
        source_weight=source_weight_factors(setup, params),
    )


def fast_path_applies(setup: Setup) -> bool:
    """Whether ``pixel_photons_fast`` computes this setup (no loop-order-coupled flags)."""
    return not (setup.interpolate or setup.oversample_thick or setup.oversample_polar
                or setup.oversample_omega)


def tile_pixels(setup: Setup) -> int:
    """Pixels per tile, from the sub-path count.

    General path: the element budget divided by the sub-paths per pixel (×64 for
    tricubic).  Fast path: its working set is (layer·sub-pixel·source) rows per
    pixel, so the tile is the row budget divided by that, within
    [FAST_TILE_MIN, FAST_TILE_MAX].
    """
    if setup.tile_pixels:
        return setup.tile_pixels
    if fast_path_applies(setup):
        rows = setup.thicksteps * setup.n_subpixels * setup.n_sources
        tile = min(max(FAST_ROW_BUDGET // rows, FAST_TILE_MIN), FAST_TILE_MAX)
        return int(1 << (tile.bit_length() - 1))  # a power of two: see round_tile
    per_pixel = setup.subpaths_per_pixel * (64 if setup.interpolate else 1)
    return int(max(1, min(DEFAULT_TILE_BUDGET // max(per_pixel, 1), 1 << 16)))


def round_tile(tile: int, n_pixels: int) -> int:
    """The tile actually used for ``n_pixels`` pixels: at most the ROI, rounded up to TILE_QUANTUM.

    XLA:CPU splits a fused loop into equal parts for its threads and vectorises
    each only when no bounds check is needed, so fast-path tiles are kept at a
    multiple of TILE_QUANTUM pixels (the padding pixels are computed and dropped).
    """
    tile = max(1, min(tile, n_pixels))
    return -(-tile // TILE_QUANTUM) * TILE_QUANTUM if tile >= TILE_QUANTUM else tile


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


def running_sum(setup: Setup, ctx: Context, sp: SubPaths, term: Array) -> Array:
    """The pixel's running sum I over its sub-paths, in the C program's loop order.

    Plain sum plus the water background; with ``-oversample_thick/_polar/_omega``
    the C program's I ← (I + term)·f, i.e. a suffix product of the factors.
    """
    P = term.shape[0]
    K = term[0].size
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
        return ctx.I_bg * suffix[:, 0] + jnp.sum(term.reshape(P, K) * suffix, axis=-1)
    return ctx.I_bg + jnp.sum(term.reshape(P, K), axis=-1)


def pixel_photons(setup: Setup, ctx: Context, spixel: Array, fpixel: Array,
                  linear_index: Array, trigger: tuple[Array, Array]) -> Array:
    """Photons in each pixel of a tile (mask not applied).

    ``trigger`` = (pixel index, sub-path index) of the first sub-path at which the
    C program turns tricubic interpolation off for the rest of the image (unused
    unless ``setup.interpolate``).  Dispatches to the fast path when it applies.
    """
    if fast_path_applies(setup):
        return pixel_photons_fast(setup, ctx, spixel, fpixel)
    return pixel_photons_general(setup, ctx, spixel, fpixel, linear_index, trigger)


def pixel_photons_general(setup: Setup, ctx: Context, spixel: Array, fpixel: Array,
                          linear_index: Array, trigger: tuple[Array, Array]) -> Array:
    """``pixel_photons`` by broadcasting every sub-path of the tile (any setup)."""
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
    if ctx.source_weight is not None:  # (P, T, n, n, S, Φ, D): weight on the source axis
        term = term * ctx.source_weight.astype(term.dtype)[:, None, None]
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

    I = running_sum(setup, ctx, sp, term)

    photons = ctx.photon_scale * I
    if not setup.oversample_thick:
        photons = photons * capture_last
    if not setup.oversample_polar:
        photons = photons * polar_first
    if not setup.oversample_omega:
        photons = photons * omega_first
    return photons


# ---------------------------------------------------------------------------------------------
# Fast path
# ---------------------------------------------------------------------------------------------

# Taylor coefficients of sin(πr) = Σ c_i r^(2i+1); on |r| ≤ ½ the truncation error
# of 7 terms is 6e-10 (float32 rounding is 6e-8), of 11 terms 3e-16.
_SINPI_TERMS = {4: 7, 8: 11}
# The grating's series threshold (|πδ|·max(|N|, 1) below it): the same as physics'.
_GRATING_SERIES = getattr(physics, "_GRATING_SERIES", 1e-3)


def _taylor_coefficients(n_terms: int, odd: bool) -> list[float]:
    """Coefficients of sin(πr) = Σ c_i r^(2i+1) (odd) or cos(πr) = Σ c_i r^(2i)."""
    out = []
    for i in range(n_terms):
        n = 2 * i + 1 if odd else 2 * i
        out.append((-1.0) ** i * math.pi ** n / math.factorial(n))
    return out


def _horner(r2: Array, coeffs: list[float]) -> Array:
    p = coeffs[-1]
    for c in reversed(coeffs[:-1]):
        p = p * r2 + c
    return p


def _n_terms(x: Array) -> int:
    return _SINPI_TERMS.get(jnp.dtype(x.dtype).itemsize, 11)


def sinpi_reduced(r: Array) -> Array:
    """sin(πr) for |r| ≤ ½ by its Taylor polynomial (plain arithmetic: vectorises).

    Accurate to the rounding of r's dtype.
    """
    return r * _horner(r * r, _taylor_coefficients(_n_terms(r), odd=True))


def cospi_reduced(r: Array) -> Array:
    """cos(πr) for |r| ≤ ½ by its Taylor polynomial."""
    return _horner(r * r, _taylor_coefficients(_n_terms(r), odd=False))


def _grating_parts(x: Array, N: Array, want_x: bool = False, want_N: bool = False):
    """g = |sin(πNx)/sin(πx)| up to a common sign, and ∂g/∂x, ∂g/∂N with the same sign.

    Both sines are evaluated at exactly reduced arguments (δ = x − round(x) and
    Nδ − round(Nδ)); the sign (−1)^{k(N−1)} they drop multiplies g and its
    derivatives alike, so g², g·∂g are exact.  Where |πδ|·max(|N|, 1) < 1e-3 the
    Taylor series N[1 − (N²−1)u²/6 + (N²−1)(3N²−7)u⁴/360] (u = πδ) is used, as in
    ``physics.sincg``, with its own derivatives.  Derivatives not asked for are None.
    """
    d = x - jnp.round(x)
    nd = N * d
    r = nd - jnp.round(nd)
    sd = sinpi_reduced(d)
    sn = sinpi_reduced(r)
    u = jnp.pi * d
    small = jnp.abs(u) * jnp.maximum(jnp.abs(N), 1.0) < _GRATING_SERIES
    sd_safe = jnp.where(small, 1.0, sd)
    us = jnp.where(small, u, 0.0)
    u2 = us * us
    n2 = N * N
    n2m1 = n2 - 1.0
    g = jnp.where(small, N * (1.0 - n2m1 * u2 / 6.0 + n2m1 * (3.0 * n2 - 7.0) * u2 * u2 / 360.0),
                  sn / sd_safe)
    gx = gN = None
    if want_x or want_N:
        cn = cospi_reduced(r)
    # Regular branch: ∂/∂x sin(πNδ)/sin(πδ) = π(N cos(πNδ) − g cos(πδ))/sin(πδ),
    # ∂/∂N = πδ cos(πNδ)/sin(πδ).  Series branch: derivatives of the series.
    if want_x:
        gx_reg = jnp.pi * (N * cn - g * cospi_reduced(d)) / sd_safe
        gx_ser = jnp.pi * N * us * (-n2m1 / 3.0 + n2m1 * (3.0 * n2 - 7.0) * u2 / 90.0)
        gx = jnp.where(small, gx_ser, gx_reg)
    if want_N:
        gN_reg = jnp.pi * d * cn / sd_safe
        gN_ser = 1.0 - (3.0 * n2 - 1.0) * u2 / 6.0 + (15.0 * n2 * n2 - 30.0 * n2 + 7.0) * u2 * u2 / 360.0
        gN = jnp.where(small, gN_ser, gN_reg)
    return g, gx, gN


@jax.custom_jvp
def grating_sqr(x: Array, N: Array) -> Array:
    """(sin(πNx)/sin(πx))², the square of one axis of the parallelepiped F_latt.

    Same function as ``physics.sincg(πx, N)²`` (the sign drops out of the square),
    from polynomial sines.  Its derivative rule is analytic (one expression with
    the value, instead of the derivative of every Horner step) and computes only
    the partials asked for (symbolic zeros); forward mode and higher orders work
    as usual.
    """
    g, _, _ = _grating_parts(x, N)
    return g * g


def _grating_sqr_jvp(primals, tangents):
    x, N = primals
    x_dot, N_dot = tangents
    want_x = not isinstance(x_dot, SymbolicZero)
    want_N = not isinstance(N_dot, SymbolicZero)
    g, gx, gN = _grating_parts(x, N, want_x, want_N)
    slope = 0.0
    if want_x:
        slope = gx * x_dot
    if want_N:
        slope = slope + gN * N_dot
    out = g * g
    return out, jnp.broadcast_to(2.0 * g * slope, out.shape).astype(out.dtype)


grating_sqr.defjvp(_grating_sqr_jvp, symbolic_zeros=True)


def _lattice_factor_sqr(setup: Setup, ctx: Context, h: Array, k: Array, l: Array) -> Array:
    """F_latt² of one sub-path from its Miller indices (separate arrays, no trailing 3-axis)."""
    if setup.shape == "SQUARE":
        N = ctx.N.astype(h.dtype)
        return grating_sqr(h, N[0]) * grating_sqr(k, N[1]) * grating_sqr(l, N[2])
    F = physics.lattice_factor(setup.shape, jnp.stack([h, k, l], axis=-1), ctx.recip, ctx.N,
                               ctx.fudge)
    return F * F


def _subpixel_directions(setup: Setup, ctx: Context, spixel: Array, fpixel: Array):
    """Unit diffracted directions (3 arrays) and air paths, each (T, n, n, P).

    The same points as ``geometry.detector.subpixel_positions`` (pix0 + Fdet·fdet
    + Sdet·sdet + Odet·odet), laid out with the pixel axis last and the three
    components as separate arrays so that every later step is a plain
    elementwise loop over pixels.
    """
    frame = ctx.frame
    dtype = frame.pix0.dtype
    n = setup.oversample
    sub = frame.pixel_size / n
    ticks = jnp.arange(n, dtype=dtype)[:, None]
    Fdet = sub * (fpixel.astype(dtype)[None, :] * n + ticks) + sub / 2.0  # (n, P)
    Sdet = sub * (spixel.astype(dtype)[None, :] * n + ticks) + sub / 2.0
    Odet = jnp.arange(setup.thicksteps, dtype=dtype) * ctx.layer_step  # (T,)
    pos = [
        frame.pix0[c]
        + Fdet[None, None, :, :] * frame.fdet[c]
        + Sdet[None, :, None, :] * frame.sdet[c]
        + Odet[:, None, None, None] * frame.odet[c]
        for c in range(3)
    ]
    if setup.curved_detector:
        curved = det_geo.curve_onto_sphere(frame, jnp.stack(pos, axis=-1))
        pos = [curved[..., c] for c in range(3)]
    airpath = jnp.sqrt(pos[0] * pos[0] + pos[1] * pos[1] + pos[2] * pos[2])
    return [p / airpath for p in pos], airpath


def _polarization(ctx: Context, inc: Array, d: list) -> Array:
    """``physics.polarization_factor`` for sources inc (S, 3) and diffracted components
    d (3 arrays of shape (..., P)): shape (..., S, P).

    Written with explicit component sums: XLA:CPU turns a multiply-and-reduce over
    a trailing axis of 3 into a YNNPACK fusion, which in float32 was seen to
    return results wrong by ~0.3 % (jaxlib 0.10.2); plain arithmetic avoids it.
    """
    B_in = V.unitize(V.cross(ctx.polar_axis, inc))
    E_in = V.unitize(V.cross(inc, B_in))

    def proj(v):
        return (v[:, 0, None] * d[0][..., None, :] + v[:, 1, None] * d[1][..., None, :]
                + v[:, 2, None] * d[2][..., None, :])

    cos2t, E_out, B_out = proj(inc), proj(E_in), proj(B_in)
    return 0.5 * (1.0 + cos2t * cos2t - ctx.kahn * (E_out * E_out - B_out * B_out))


def _capture_last_layer(setup: Setup, ctx: Context, d: list) -> Array:
    """``geometry.detector.capture_fraction`` of the last layer for directions d (3 × (P,))."""
    if not setup.has_thickness:
        return jnp.ones_like(d[0])
    odet = ctx.frame.odet
    parallax = d[0] * odet[0] + d[1] * odet[1] + d[2] * odet[2]
    t = float(setup.thicksteps - 1)
    return (jnp.exp(-t * ctx.layer_step * ctx.mu / parallax)
            - jnp.exp(-(t + 1) * ctx.layer_step * ctx.mu / parallax))


def pixel_photons_fast(setup: Setup, ctx: Context, spixel: Array, fpixel: Array) -> Array:
    """Photons in each pixel of a tile (P,) for setups without loop-coupled flags.

    Per pixel: Ω at the first sub-pixel, capture fraction at the first sub-pixel
    of the last layer, polarisation at the first (layer, sub-pixel, source) that
    passes ``-dmin``; then I = I_bg + Σ_k F_cell²·F_latt² over the sub-paths k in
    the C program's loop order (summed per row, then over rows).
    """
    dtype = ctx.frame.pix0.dtype
    P = spixel.shape[0]
    d, airpath = _subpixel_directions(setup, ctx, spixel, fpixel)  # 3 × (T, n, n, P)
    omega_first = det_geo.solid_angle(setup, ctx.frame, airpath[0, 0, 0])
    capture_last = _capture_last_layer(setup, ctx, [c[-1, 0, 0] for c in d])

    inc, lam = ctx.incident, ctx.wavelength  # (S, 3), (S,)
    q = [(c[..., None, :] - inc[:, i, None]) / lam[:, None] for i, c in enumerate(d)]  # (T,n,n,S,P)
    q_shape = q[0].shape
    rows = q[0].size // P
    q = [c.reshape(rows, P) for c in q]
    if setup.use_dmin:
        stol = 0.5 * jnp.sqrt(q[0] * q[0] + q[1] * q[1] + q[2] * q[2])
        cut = (stol > 0) & (ctx.dmin > 0.5 / jnp.where(stol > 0, stol, 1.0))
        pass_dmin = ~cut  # (rows, P)
    else:
        pass_dmin = None

    if setup.nopolar:
        polar_first = jnp.ones_like(omega_first)
    elif setup.use_dmin:
        polar = _polarization(ctx, inc, d).reshape(rows, P)
        idx = first_true_index(pass_dmin.T)
        got = jnp.take_along_axis(polar.T, jnp.minimum(idx, rows - 1)[:, None], 1)[:, 0]
        polar_first = jnp.where(idx < rows, got, 0.0)
    else:
        polar_first = _polarization(ctx, inc[:1], [c[0, 0, 0] for c in d])[0]

    A = ctx.real.reshape(-1, 9).astype(dtype)  # (Φ·D, 9): rows a, b, c of each (φ, domain)
    n_mats = A.shape[0]

    def term(a, qx, qy, qz, ok):
        h = qx * a[0] + qy * a[1] + qz * a[2]
        k = qx * a[3] + qy * a[4] + qz * a[5]
        l = qx * a[6] + qy * a[7] + qz * a[8]
        t = _lattice_factor_sqr(setup, ctx, h, k, l)
        if setup.has_hkl:
            F = physics.structure_factor_nearest(jnp.stack([h, k, l], axis=-1), ctx.F_grid,
                                                 setup.hkl_min, setup.hkl_max, ctx.default_F, True)
            t = F * F * t
        if ok is not None:
            t = jnp.where(ok, t, 0.0)
        return t

    # Rematerialised under differentiation: the backward pass recomputes a
    # sub-path's terms from (a, q) instead of storing them for every sub-path.
    term_remat = jax.checkpoint(term)

    def row_sum(qx, qy, qz, ok):
        """Σ over the (φ, domain) matrices of one (layer, sub-pixel, source) row."""
        if n_mats == 1:
            return term(A[0], qx, qy, qz, ok)

        def inner(j, acc):
            return acc + term_remat(A[j], qx, qy, qz, ok)

        return jax.lax.fori_loop(0, n_mats, inner, jnp.zeros((P,), dtype),
                                 unroll=min(FAST_UNROLL, n_mats))

    ok_rows = pass_dmin if pass_dmin is not None else [None] * rows
    if ctx.source_weight is not None:  # the weight of each (layer, sub-pixel, source) row
        w_rows = jnp.broadcast_to(ctx.source_weight.astype(dtype), q_shape[:-1]).reshape(rows)
    else:
        w_rows = None
    if rows == 1:
        total = row_sum(q[0][0], q[1][0], q[2][0], ok_rows[0])
        if w_rows is not None:
            total = w_rows[0] * total
    else:
        # Rows are scanned (not indexed) so that, under reverse mode, each row's
        # cotangent is a per-iteration output rather than an update of the whole
        # (rows, P) array.
        def outer(acc, xs):
            qx, qy, qz = xs[:3]
            ok = xs[3] if pass_dmin is not None else None
            s = row_sum(qx, qy, qz, ok)
            if w_rows is not None:
                s = xs[-1] * s
            return acc + s, None

        xs = ((q[0], q[1], q[2]) + ((pass_dmin,) if pass_dmin is not None else ())
              + ((w_rows,) if w_rows is not None else ()))
        total, _ = jax.lax.scan(outer, jnp.zeros((P,), dtype), xs)
    total = _checkpoint_name(total, SUBPATH_SUM_NAME)  # kept by simulate's remat policy
    if not setup.has_hkl:
        total = ctx.default_F * ctx.default_F * total
    I = ctx.I_bg + total
    photons = ctx.photon_scale * I
    photons = photons * capture_last
    photons = photons * polar_first
    return photons * omega_first
