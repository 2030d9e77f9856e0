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
  F_latt² of the parallelepiped spot is ``physics.grating_sqr`` (polynomial
  sin(πx) after exact reduction, analytic derivative rule), so reverse mode is
  one pass too;
* the general path (``sub_paths`` + ``pixel_photons_general``): all sub-paths of a
  tile broadcast as (P, T, n, n, S, Φ, D) arrays, which expresses the
  loop-order semantics (first-index searches, suffix products, the
  interpolation switch) with masks and cumulative products.

Both paths, and the pixel trace (``trace``), are assembled from the same
pieces: ``geometry.detector.subpixel_rays``, ``scattering_vector``,
``within_resolution``, ``physics.polarization_factor`` with
``polarization_used``, ``geometry.detector.capture_fraction`` and
``solid_angle``, the ``physics`` lattice factors (one grating implementation),
``structure_factor`` and ``scale_to_photons``; tests/test_kernel_paths.py checks
that the two paths agree to 1e-12.
"""

from __future__ import annotations

import math
from functools import partial
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
# ... and in the derivative pass (see ``pixel_photons_fast``).
DIFF_UNROLL = 1


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
    I_bg = physics.water_background(params.fluence, params.water_size)
    return Context(
        frame=frame,
        layer_step=det_geo.layer_thickness(setup, params),
        mu=det_geo.attenuation_coefficient(params),
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


# The Setup fields build_context reads besides the detector frame's and the lattice's
# (tests/test_program_keys.py records them): the sources', the φ/mosaic rotations', the sensor
# layer's, the water switch, the source weights, and those behind Setup.steps (photon_scale).  Spot shape, HKL range,
# interpolation, ROI, detector size and the per-sub-path switches are not among them.
CONTEXT_SETUP_FIELDS = ("source_mode", "div_tics", "hdiv_divisor", "vdiv_divisor", "dispsteps",
                        "disp_divisor", "n_sources", "phisteps", "mosaic_domains", "oversample",
                        "has_thickness", "thick_divisor", "has_water", "weighted_sources")


def context_fields(setup: Setup) -> tuple[str, ...]:
    """The Setup fields ``build_context`` reads for this setup: the frame's, the lattice's and
    ``CONTEXT_SETUP_FIELDS``."""
    return det_geo.frame_fields(setup) + crystal_geo.LATTICE_SETUP_FIELDS + CONTEXT_SETUP_FIELDS


def context_setup(setup: Setup) -> Setup:
    """``setup`` reduced to what ``build_context`` reads: the static key of its shared program."""
    return setup.keeping(context_fields(setup))


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


# ---------------------------------------------------------------------------------------------
# Pieces shared by both paths and the pixel trace
# ---------------------------------------------------------------------------------------------


def scattering_vector(direction: tuple[Array, Array, Array], incident: Array,
                      wavelength: Array) -> tuple[Array, Array, Array]:
    """q = (d̂ − î)/λ (1/m) of every sub-pixel ray and source.

    ``direction``: components (T, n, n, P); ``incident`` (S, 3); ``wavelength`` (S,) m.
    Returns components (T, n, n, S, P).
    """
    return tuple((c[..., None, :] - incident[:, i, None]) / wavelength[:, None]
                 for i, c in enumerate(direction))


def sin_theta_over_lambda(q: tuple[Array, Array, Array]) -> Array:
    """sin θ/λ = |q|/2 (1/m) from the components of q."""
    return 0.5 * jnp.sqrt(q[0] * q[0] + q[1] * q[1] + q[2] * q[2])


def within_resolution(stol: Array, dmin: Array) -> Array:
    """The C program's ``-dmin`` test: a sub-path counts unless stol > 0 and d_min > 1/(2 stol).

    ``stol`` = sin θ/λ (1/m), ``dmin`` in m.  Only evaluated when ``Setup.use_dmin``.
    """
    positive = stol > 0
    return ~(positive & (dmin > 0.5 / jnp.where(positive, stol, 1.0)))


def polarization_rows(ctx: Context, incident: Array, direction: tuple[Array, Array, Array]) -> Array:
    """``physics.kahn_polarization`` for sources (S, 3) and ray components (..., P): (..., S, P).

    Projections written per component: stacking the rays into (..., P, 3) would make
    every later step a strided pass over the trailing axis of 3 (1.3–1.5× slower
    canonical render, measured), where the components keep the pixel axis contiguous.
    """
    E_in, B_in = physics.polarization_basis(incident, ctx.polar_axis)

    def project(v: Array) -> Array:  # v (S, 3) · d → (..., S, P)
        return sum(v[:, c, None] * direction[c][..., None, :] for c in range(3))

    return physics.kahn_polarization(ctx.kahn, project(incident), project(E_in), project(B_in))


def first_true_index(mask: Array) -> Array:
    """Index of the first True along the last axis, or its length if none."""
    n = mask.shape[-1]
    idx = jnp.argmax(mask, axis=-1)
    return jnp.where(jnp.any(mask, axis=-1), idx, n)


def polarization_used(setup: Setup, polar: Array, passing: Array | None) -> Array:
    """The polarisation a pixel is multiplied by (without ``-oversample_polar``), (P,).

    ``polar`` (P, R): the factor at the pixel's (layer, sub-pixel, source) rows in loop
    order (R may be 1 when ``-dmin`` is off); ``passing`` (P, R): which rows pass
    ``-dmin``.  The C program keeps the value of the first row that passes (0 if none
    does) — the first row when there is no ``-dmin`` — and 1 with ``-nopolar``.
    """
    if setup.nopolar and not setup.oversample_polar:
        return jnp.ones(polar.shape[:1], polar.dtype)
    if not setup.use_dmin:
        return polar[:, 0]
    R = polar.shape[1]
    idx = first_true_index(passing)
    got = jnp.take_along_axis(polar, jnp.minimum(idx, R - 1)[:, None], 1)[:, 0]
    return jnp.where(idx < R, got, 0.0)


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
    position: Array  # (P, T, n, n, 3) m
    airpath: Array  # (P, T, n, n) m
    direction: Array  # (P, T, n, n, 3)
    q: Array  # (P, T, n, n, S, 3) 1/m
    stol: Array  # (P, T, n, n, S) 1/m


def _pixels_first(x: Array) -> Array:
    """Move the trailing pixel axis of a (T, n, n, [S,] P) array to the front."""
    return jnp.moveaxis(x, -1, 0)


def sub_paths(setup: Setup, ctx: Context, spixel: Array, fpixel: Array) -> SubPaths:
    """Geometry and lattice factor of every sub-path of the pixels (spixel, fpixel) (1-D)."""
    frame = ctx.frame
    rays = det_geo.subpixel_rays(setup, frame, spixel, fpixel, ctx.layer_step)
    pos = det_geo.pixels_first(rays.position, 1)
    d = det_geo.pixels_first(rays.direction, 1)  # (P,T,n,n,3)
    airpath = _pixels_first(rays.airpath)  # (P,T,n,n)
    omega = det_geo.solid_angle(setup, frame, airpath)
    capture = det_geo.capture_fraction(setup, ctx.mu, d, frame.odet, ctx.layer_step)
    inc = ctx.incident  # (S,3)
    qc = scattering_vector(rays.direction, inc, ctx.wavelength)  # 3 × (T,n,n,S,P)
    q = jnp.moveaxis(jnp.stack(qc, axis=-1), -2, 0)  # (P,T,n,n,S,3)
    stol = _pixels_first(sin_theta_over_lambda(qc))  # (P,T,n,n,S)
    if setup.use_dmin:
        pass_dmin = within_resolution(stol, ctx.dmin)
    else:
        pass_dmin = jnp.ones(stol.shape, bool)
    if setup.nopolar and not setup.oversample_polar:
        polar = jnp.ones(stol.shape, stol.dtype)
    else:
        polar = _pixels_first(polarization_rows(ctx, inc, rays.direction))
    qe = q[..., None, None, None, :]  # (P,T,n,n,S,1,1,1,3)
    hkl = V.dot(qe, ctx.real)  # (P,T,n,n,S,Φ,D,3): h_i = q·a_i
    F_latt = physics.lattice_factor(setup.shape, hkl, ctx.recip, ctx.N, ctx.fudge)
    valid = pass_dmin[..., None, None]
    if not setup.has_water:
        valid = valid & (F_latt != 0.0)
    valid = jnp.broadcast_to(valid, F_latt.shape)
    return SubPaths(F_latt.shape, hkl, F_latt, valid, omega, capture, polar, pass_dmin,
                    pos, airpath, d, q, stol)


def pixel_factors(setup: Setup, sp: SubPaths) -> tuple[Array, Array, Array]:
    """(capture, polarisation, Ω) that multiply each pixel's running sum, each (P,).

    As in the C program: Ω at the first sub-pixel, the capture fraction at the first
    sub-pixel of the last layer, the polarisation of ``polarization_used``.  (With
    ``-oversample_thick/_polar/_omega`` that factor is applied per sub-path instead.)
    """
    P = sp.polar.shape[0]
    polar = polarization_used(setup, sp.polar.reshape(P, -1), sp.pass_dmin.reshape(P, -1))
    return sp.capture[:, -1, 0, 0], polar, sp.omega[:, 0, 0, 0]


def structure_factor(setup: Setup, ctx: Context, hkl: Array, linear_index: Array,
                     trigger: tuple[Array, Array]) -> tuple[Array, Array]:
    """F_cell of every sub-path (P, T, n, n, S, Φ, D), and whether it was interpolated.

    Nearest grid point (``default_F`` outside the grid), or — with ``-interpolate`` —
    tricubic interpolation for every sub-path before ``trigger`` = (raster index of the
    pixel, sub-path index) at which the C program turns interpolation off for the rest
    of the image.  ``linear_index`` (P,) is each pixel's raster index in the ROI.
    """
    F_near = physics.structure_factor_nearest(hkl, ctx.F_grid, setup.hkl_min, setup.hkl_max,
                                              ctx.default_F, setup.has_hkl)
    if not setup.interpolate:
        return F_near, jnp.zeros(F_near.shape, bool)
    F_tri = physics.structure_factor_tricubic(hkl, ctx.F_grid, setup.hkl_min)
    trig_pixel, trig_sub = trigger
    sub_shape = hkl.shape[1:-1]
    k = jnp.arange(math.prod(sub_shape)).reshape(sub_shape)
    o = linear_index.reshape((-1,) + (1,) * len(sub_shape))
    before = (o < trig_pixel) | ((o == trig_pixel) & (k < trig_sub))
    return jnp.where(before, F_tri, F_near), before


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


def scale_to_photons(setup: Setup, ctx: Context, I: Array, capture: Array, polar: Array,
                     omega: Array) -> Array:
    """photons = r_e² Φ I/steps × capture × polarisation × Ω (factors applied per sub-path
    with ``-oversample_thick/_polar/_omega`` are skipped here)."""
    photons = ctx.photon_scale * I
    if not setup.oversample_thick:
        photons = photons * capture
    if not setup.oversample_polar:
        photons = photons * polar
    if not setup.oversample_omega:
        photons = photons * omega
    return photons


def pixel_photons(setup: Setup, ctx: Context, spixel: Array, fpixel: Array,
                  linear_index: Array, trigger: tuple[Array, Array], diff: bool = False) -> Array:
    """Photons in each pixel of a tile (mask not applied).

    ``trigger`` = (pixel index, sub-path index) of the first sub-path at which the
    C program turns tricubic interpolation off for the rest of the image (unused
    unless ``setup.interpolate``).  Dispatches to the fast path when it applies;
    ``diff`` selects its formulation for the derivative pass (same value).
    """
    if fast_path_applies(setup):
        return pixel_photons_fast(setup, ctx, spixel, fpixel, diff)
    return pixel_photons_general(setup, ctx, spixel, fpixel, linear_index, trigger)


def tile_photons(setup: Setup, ctx: Context, spixel: Array, fpixel: Array,
                 linear_index: Array, trigger: tuple[Array, Array]) -> Array:
    """``pixel_photons`` of a tile, with derivatives evaluated ``DIFF_CHUNK`` pixels at a time.

    The value is ``pixel_photons`` itself (the same fused pass over the whole tile).
    Its tangent — and hence, transposed, its reverse-mode derivative — is a loop over
    chunks of the tile's pixels, each chunk rematerialised from (ctx, its pixel
    indices): nothing per pixel is stored between the forward and the backward pass,
    and the backward pass of a chunk works on arrays of DIFF_CHUNK pixels, which stay
    in cache.  (Differentiating the whole tile at once makes XLA:CPU write and re-read
    dozens of tile-sized temporaries, several times the forward pass's cost.)  Each
    pixel depends on ctx and its own indices only, so chunking changes no value.
    Forward mode, ``vmap`` and higher orders go through the same rule.
    """
    return _tile_photons(setup, ctx, spixel, fpixel, linear_index, trigger[0], trigger[1])


# Pixels per chunk in the derivative of a tile (``tile_photons``): the backward pass of a
# chunk keeps its temporaries (~100 arrays of the chunk's length) near the cache; larger
# chunks pay memory traffic, smaller ones the loop's per-iteration cost (4,096 was 1.1-1.5×
# slower on canonical 1024², 262,144 5×; see docs/performance.md).
DIFF_CHUNK = 16384
# With several (layer, sub-pixel, source) rows the derivative pass evaluates all rows of a
# chunk at once (``pixel_photons_diff``), so its arrays are rows × chunk long: the chunk is
# then DIFF_ROW_BUDGET // rows pixels (a power of two, at least TILE_QUANTUM).  Measured on
# heavy 256² (12 rows; float64, 2 devices, load 5-6): budgets of 4,096 / 8,192 / 16,384 /
# 65,536 / 262,144 gave gradients 0.78 / 0.77 / 0.86 / 0.94 / 1.3 × main's.
DIFF_ROW_BUDGET = 8192


def diff_chunk(setup: Setup) -> int:
    """Pixels per chunk of a tile's derivative pass (``tile_photons``); see DIFF_ROW_BUDGET."""
    rows = setup.thicksteps * setup.n_subpixels * setup.n_sources
    if rows == 1 or not fast_path_applies(setup):
        return DIFF_CHUNK
    chunk = max(DIFF_ROW_BUDGET // rows, TILE_QUANTUM)
    return int(1 << (chunk.bit_length() - 1))


@partial(jax.custom_jvp, nondiff_argnums=(0,))
def _tile_photons(setup: Setup, ctx: Context, spixel: Array, fpixel: Array, linear_index: Array,
                  trig_pixel: Array, trig_sub: Array) -> Array:
    return pixel_photons(setup, ctx, spixel, fpixel, linear_index, (trig_pixel, trig_sub))


def _tile_photons_jvp(setup: Setup, primals, tangents):
    ctx, spixel, fpixel, linear_index, trig_pixel, trig_sub = primals
    trigger = (trig_pixel, trig_sub)
    out = pixel_photons(setup, ctx, spixel, fpixel, linear_index, trigger)
    # Only the perturbed leaves of ctx are differentiated (the others are constants).
    leaves, tree = jax.tree.flatten(ctx)
    dleaves = jax.tree.leaves(tangents[0], is_leaf=lambda t: isinstance(t, SymbolicZero))
    live = [i for i, t in enumerate(dleaves) if not isinstance(t, SymbolicZero)]
    if not live:
        return out, jnp.zeros_like(out)

    def photons_of(values, s, f, o):
        full = list(leaves)
        for i, v in zip(live, values):
            full[i] = v
        return pixel_photons(setup, jax.tree.unflatten(tree, full), s, f, o, trigger, diff=True)

    def chunk_tangent(args):
        s, f, o = args
        return jax.jvp(lambda *v: photons_of(v, s, f, o), [leaves[i] for i in live],
                       [dleaves[i] for i in live])[1]

    # Rematerialised, also when the tile is one chunk: a tile inside a loop over tiles
    # would otherwise store its residuals (every sub-path's) for every tile.
    chunk_tangent = jax.checkpoint(chunk_tangent)
    P = spixel.shape[0]
    chunk = diff_chunk(setup)
    if P <= chunk:
        return out, chunk_tangent((spixel, fpixel, linear_index))
    n = -(-P // chunk)
    pad = n * chunk - P  # padding pixels repeat the last one; their tangents are dropped

    def chunks(x):
        if pad:
            x = jnp.concatenate([x, jnp.broadcast_to(x[-1:], (pad,))])
        return x.reshape(n, chunk)

    # The chunking is inside the checkpoint too: its only residuals are the tile's own
    # index arrays, not (n, chunk) copies of them stored for every tile.
    @jax.checkpoint
    def tile_tangent(s, f, o):
        t = jax.lax.map(chunk_tangent, (chunks(s), chunks(f), chunks(o)))
        return t.reshape(-1)[:P]

    return out, tile_tangent(spixel, fpixel, linear_index).astype(out.dtype)


_tile_photons.defjvp(_tile_photons_jvp, symbolic_zeros=True)


def subpath_terms(setup: Setup, ctx: Context, sp: SubPaths, linear_index: Array,
                  trigger: tuple[Array, Array]) -> tuple[Array, Array, Array]:
    """Each sub-path's addition to the running sum, F_cell²·F_latt² (× the source weight).

    Zero where the sub-path is skipped (``-dmin``, F_latt = 0).  Returns (term, F_cell,
    interpolated): the general path sums the terms, the pixel trace prints all three.
    """
    F_cell, interpolated = structure_factor(setup, ctx, sp.hkl, linear_index, trigger)
    term = F_cell * F_cell * sp.F_latt * sp.F_latt
    if ctx.source_weight is not None:  # (P, T, n, n, S, Φ, D): the weight on the source axis
        term = term * ctx.source_weight.astype(term.dtype)[:, None, None]
    return jnp.where(sp.valid, term, 0.0), F_cell, interpolated


def pixel_photons_general(setup: Setup, ctx: Context, spixel: Array, fpixel: Array,
                          linear_index: Array, trigger: tuple[Array, Array]) -> Array:
    """``pixel_photons`` by broadcasting every sub-path of the tile (any setup)."""
    sp = sub_paths(setup, ctx, spixel, fpixel)
    term, _, _ = subpath_terms(setup, ctx, sp, linear_index, trigger)
    I = running_sum(setup, ctx, sp, term)
    return scale_to_photons(setup, ctx, I, *pixel_factors(setup, sp))


# ---------------------------------------------------------------------------------------------
# Fast path
# ---------------------------------------------------------------------------------------------


class FastRows(NamedTuple):
    """Per-pixel geometry of the fast path: q per (layer, sub-pixel, source) row, and the factors."""

    q: tuple[Array, Array, Array]  # components (rows, P), 1/m
    pass_dmin: Array | None  # (rows, P) with -dmin, else None
    weight: Array | None  # (rows,) source weight of each row (Setup.weighted_sources), else None
    capture: Array  # (P,) capture fraction at the first sub-pixel of the last layer
    polar: Array  # (P,) polarisation of ``polarization_used``
    omega: Array  # (P,) solid angle at the first sub-pixel


def fast_rows(setup: Setup, ctx: Context, spixel: Array, fpixel: Array) -> FastRows:
    """The fast path's per-pixel geometry of the pixels (spixel, fpixel) (1-D)."""
    frame = ctx.frame
    dtype = frame.pix0.dtype
    P = spixel.shape[0]
    rays = det_geo.subpixel_rays(setup, frame, spixel, fpixel, ctx.layer_step)
    d = rays.direction  # 3 × (T, n, n, P)
    omega_first = det_geo.solid_angle(setup, frame, rays.airpath[0, 0, 0])
    capture_last = det_geo.capture_fraction(setup, ctx.mu, tuple(c[-1, 0, 0] for c in d),
                                            frame.odet, ctx.layer_step, layer=setup.thicksteps - 1)

    inc = ctx.incident  # (S, 3)
    q = scattering_vector(d, inc, ctx.wavelength)  # 3 × (T,n,n,S,P)
    q_shape = q[0].shape
    rows = q[0].size // P
    q = tuple(c.reshape(rows, P) for c in q)
    if setup.use_dmin:
        pass_dmin = within_resolution(sin_theta_over_lambda(q), ctx.dmin)  # (rows, P)
        polar = polarization_rows(ctx, inc, d).reshape(rows, P)
        polar_first = polarization_used(setup, polar.T, pass_dmin.T)
    else:
        pass_dmin = None
        polar = polarization_rows(ctx, inc[:1], [c[0, 0, 0] for c in d])  # (1, P)
        polar_first = polarization_used(setup, polar.T, None)
    if ctx.source_weight is not None:  # the weight of each (layer, sub-pixel, source) row
        w_rows = jnp.broadcast_to(ctx.source_weight.astype(dtype), q_shape[:-1]).reshape(rows)
    else:
        w_rows = None
    return FastRows(q, pass_dmin, w_rows, capture_last, polar_first, omega_first)


def lattice_term(setup: Setup, ctx: Context, a: Array, q, ok: Array | None,
                 diff: bool = False) -> Array:
    """One sub-path's addition to the running sum, F_cell²·F_latt² at h = (a·q, b·q, c·q).

    ``a`` (9,) rows a, b, c of one (φ, domain) matrix; ``q`` the components of q (three
    arrays, or with ``diff`` one (3, ...) array) and ``ok`` (the ``-dmin`` test, or None)
    elementwise.  ``diff``: the parallelepiped F_latt² is ``physics.parallelepiped_sqr_of_q``
    (the same value, with a derivative rule that XLA:CPU evaluates in one pass).
    """
    qx, qy, qz = q[0], q[1], q[2]
    h = qx * a[0] + qy * a[1] + qz * a[2]
    k = qx * a[3] + qy * a[4] + qz * a[5]
    l = qx * a[6] + qy * a[7] + qz * a[8]
    if diff and setup.shape == "SQUARE":
        t = physics.parallelepiped_sqr_of_q(a, q, ctx.N)
    else:
        t = physics.lattice_factor_sqr(setup.shape, h, k, l, ctx.recip, ctx.N, ctx.fudge)
    if setup.has_hkl:
        F = physics.structure_factor_nearest(jnp.stack([h, k, l], axis=-1), ctx.F_grid,
                                             setup.hkl_min, setup.hkl_max, ctx.default_F, True)
        t = F * F * t
    if ok is not None:
        t = jnp.where(ok, t, 0.0)
    return t


def pixel_photons_fast(setup: Setup, ctx: Context, spixel: Array, fpixel: Array,
                       diff: bool = False) -> Array:
    """Photons in each pixel of a tile (P,) for setups without loop-coupled flags.

    Per pixel: Ω at the first sub-pixel, capture fraction at the first sub-pixel
    of the last layer, polarisation at the first (layer, sub-pixel, source) that
    passes ``-dmin``; then I = I_bg + Σ_k F_cell²·F_latt² over the sub-paths k in
    the C program's loop order (summed per row, then over rows).  ``diff``: the
    formulation of ``pixel_photons_diff`` (the same value up to rounding, for the
    derivative pass of ``tile_photons``).
    """
    if diff:
        return pixel_photons_diff(setup, ctx, spixel, fpixel)
    dtype = ctx.frame.pix0.dtype
    P = spixel.shape[0]
    geo = fast_rows(setup, ctx, spixel, fpixel)
    q, pass_dmin, w_rows = geo.q, geo.pass_dmin, geo.weight
    rows = q[0].shape[0]
    A = ctx.real.reshape(-1, 9).astype(dtype)  # (Φ·D, 9): rows a, b, c of each (φ, domain)
    n_mats = A.shape[0]

    def term(a, qx, qy, qz, ok):
        return lattice_term(setup, ctx, a, (qx, qy, qz), ok)

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
    total = _checkpoint_name(total, SUBPATH_SUM_NAME)  # kept by panels.simulate_panels' remat policy
    if not setup.has_hkl:
        total = ctx.default_F * ctx.default_F * total
    I = ctx.I_bg + total
    return scale_to_photons(setup, ctx, I, geo.capture, geo.polar, geo.omega)


def pixel_photons_diff(setup: Setup, ctx: Context, spixel: Array, fpixel: Array) -> Array:
    """``pixel_photons_fast`` written for its derivative (``tile_photons``); equal up to rounding.

    The pixel's factor c = r_e²Φ/steps·capture·polarisation·Ω (× default_F² without
    ``-hkl``, × the row's source weight) is moved inside the sum over sub-paths:

        photons = c₀·I_bg + Σ_rows Σ_matrices (c·w_row)·F_cell²·F_latt².

    Differentiated, each matrix's term then carries ċ·term + c·(term)˙, so the transposed
    loop accumulates c̄ = Σ ȳ·term from the terms it evaluates anyway; the plain
    formulation needs the pixel's sub-path sum for c̄, which the backward pass had to
    recompute in a separate loop over all sub-paths (a whole forward pass).  The rows are
    flattened into the pixel axis: the matrix loop, whose transposed body is ~30 separate
    XLA operations (each a dispatch and a thread synchronisation), runs once per chunk
    rather than once per row, and each matrix's ā = h̄ qᵀ is one dot over all rows (the
    chunk is sized for this: ``diff_chunk``).
    """
    dtype = ctx.frame.pix0.dtype
    P = spixel.shape[0]
    geo = fast_rows(setup, ctx, spixel, fpixel)
    rows = geo.q[0].shape[0]
    c0 = scale_to_photons(setup, ctx, jnp.ones((P,), dtype), geo.capture, geo.polar, geo.omega)
    c = c0 if setup.has_hkl else c0 * (ctx.default_F * ctx.default_F)
    cw = jnp.broadcast_to(c, (rows, P))
    if geo.weight is not None:
        cw = geo.weight[:, None] * cw
    # One (3, rows·P) array: its cotangent is then one accumulation per matrix, not three.
    q = jnp.stack(geo.q).reshape(3, rows * P)
    ok = geo.pass_dmin.reshape(rows * P) if geo.pass_dmin is not None else None
    cw = cw.reshape(rows * P)
    A = ctx.real.reshape(-1, 9).astype(dtype)
    n_mats = A.shape[0]

    # Rematerialised: the backward pass recomputes a matrix's terms from (a, q) instead of
    # storing them for every matrix.
    @jax.checkpoint
    def weighted_term(a, q, ok, cw):
        return cw * lattice_term(setup, ctx, a, q, ok, diff=True)

    if n_mats == 1:
        s = weighted_term(A[0], q, ok, cw)
    else:
        # Not unrolled (DIFF_UNROLL): the transposed body is one matrix's backward pass, a
        # smaller program; unrolled 4x it ran at the same speed.
        s = jax.lax.fori_loop(0, n_mats, lambda j, acc: acc + weighted_term(A[j], q, ok, cw),
                              jnp.zeros((rows * P,), dtype), unroll=min(DIFF_UNROLL, n_mats))
    return c0 * ctx.I_bg + jnp.sum(s.reshape(rows, P), axis=0)
