"""Detector geometry: basis vectors, pivots, pix0, beam centre and pixel positions.

Conventions (lab frame, metres):  the detector plane is spanned by the fast axis
``fdet`` and slow axis ``sdet``; ``odet`` is its normal pointing away from the
sample.  Pixel (s, f) sub-pixel (i, j) of layer t sits at

    P = pix0 + Fdet·fdet + Sdet·sdet + Odet·odet,
    Fdet = δ (f·n + j + ½),  Sdet = δ (s·n + i + ½),  Odet = t·Δt,

with δ = pixel/n the sub-pixel size.  ``pix0`` (the corner of pixel (0, 0)) is
fixed by the pivot:

* BEAM pivot — the direct beam hits (Fbeam, Sbeam) after all rotations:
  pix0 = −Fbeam·f − Sbeam·s + distance·beam.
* SAMPLE pivot — the point of closest approach (Fclose, Sclose) at
  close_distance is placed before the rotations, which then swing pix0 too.

The detector rotations (x, then y, then z) are followed by the 2θ rotation about
``twotheta_axis``.  ``distance`` is the sample–beam-spot distance along the
beam; ``close_distance`` = pix0·odet.  When the beam is parallel to the detector
plane, the C program replaces their ratio by DBL_MIN; so do we.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import jax.numpy as jnp
from jax import Array

from ..config import Params, Setup
from . import vectors as V

MM = 1e-3
UM = 1e-6

# What ``detector_frame`` reads (tests/test_program_keys.py records it): programs of the frame are
# compiled for these fields alone (``Setup.keeping``).  The detector height only for ADXV's
# flipped slow axis (``frame_fields``).
FRAME_SETUP_FIELDS = ("convention", "pivot", "close_distance_given", "odet_given")
FRAME_PARAM_FIELDS = ("distance", "close_distance", "beam_center", "close_center", "pixel_size",
                      "detector_rotation", "twotheta", "fdet", "sdet", "odet", "beam_vector",
                      "twotheta_axis")


def frame_fields(setup: Setup) -> tuple[str, ...]:
    """The Setup fields ``detector_frame`` reads for this setup."""
    return FRAME_SETUP_FIELDS + (("spixels",) if setup.convention == "ADXV" else ())


class DetectorFrame(NamedTuple):
    """The rotated detector frame (all in metres)."""

    fdet: Array
    sdet: Array
    odet: Array
    pix0: Array
    beam: Array
    distance: Array  # along the beam to the detector plane
    close_distance: Array  # pix0 · odet
    pixel_size: Array
    Fbeam: Array
    Sbeam: Array
    Fclose: Array
    Sclose: Array


def beam_center_on_detector(setup: Setup, params: Params) -> tuple[Array, Array]:
    """(Fbeam, Sbeam) in metres from the user's (Xbeam, Ybeam) in mm.

    MOSFLM swaps the axes and adds half a pixel; DENZO swaps without the shift;
    ADXV flips the slow axis; XDS, DIALS and CUSTOM take them as given.
    """
    X, Y = params.beam_center[0] * MM, params.beam_center[1] * MM
    px = params.pixel_size * MM
    conv = setup.convention
    if conv == "MOSFLM":
        return Y + 0.5 * px, X + 0.5 * px
    if conv == "DENZO":
        return Y, X
    if conv == "ADXV":
        return X, px * setup.spixels - Y
    return X, Y


def close_point_on_detector(setup: Setup, params: Params) -> tuple[Array, Array]:
    """(Fclose, Sclose) in metres: the near point used by the sample pivot."""
    if setup.convention == "CUSTOM":
        return params.beam_center[0] * MM, params.beam_center[1] * MM
    return params.close_center[0] * MM, params.close_center[1] * MM


def detector_normal(setup: Setup, params: Params, fdet: Array, sdet: Array) -> Array:
    """The unrotated detector normal: unit(odet) if the setup keeps it, else unit(fdet × sdet).

    The C program keeps the given normal only if it has unit length and otherwise
    regenerates it from the (unit) fast and slow axes.  That choice is made once, on the
    host, as ``Setup.odet_given``; the normal used is unit-normalised, so the image (and
    its gradient) depends only on the direction of ``params.odet`` — and not at all on
    ``params.odet`` when it is not kept.
    """
    if setup.odet_given:
        return V.unitize(params.odet)
    return V.unitize(V.cross(fdet, sdet))


def placement_distance(setup: Setup, params: Params) -> tuple[Array, Array, Array]:
    """(ratio, close, distance): the numbers the C program places the detector with.

    ratio = beam · odet after the x, y, z rotations but *before* the 2θ rotation (DBL_MIN
    when zero); close = the given close distance, or |ratio·distance| (m); distance =
    close/ratio (m).  The BEAM pivot puts the beam spot at distance·beam; the SAMPLE pivot
    puts the near point at close·odet before rotating.  (The frame's own ``distance`` is
    recomputed afterwards from the final pix0, with this same ratio.)
    """
    f0 = V.unitize(params.fdet)
    s0 = V.unitize(params.sdet)
    o0 = detector_normal(setup, params, f0, s0)
    beam = V.unitize(params.beam_vector)
    o_rot = V.rotate_xyz(o0, jnp.deg2rad(params.detector_rotation))
    ratio = V.dot(beam, o_rot)
    ratio = jnp.where(ratio == 0.0, jnp.finfo(ratio.dtype).tiny, ratio)
    if setup.close_distance_given:
        close = params.close_distance * MM
    else:
        close = jnp.abs(ratio * params.distance * MM)
    return ratio, close, close / ratio


def detector_frame(setup: Setup, params: Params) -> DetectorFrame:
    """Rotate the detector and place it, following the C program's pivot rules."""
    f0 = V.unitize(params.fdet)
    s0 = V.unitize(params.sdet)
    o0 = detector_normal(setup, params, f0, s0)
    beam = V.unitize(params.beam_vector)
    tt_axis = params.twotheta_axis
    rot = jnp.deg2rad(params.detector_rotation)
    twotheta = jnp.deg2rad(params.twotheta)

    ratio, close, distance = placement_distance(setup, params)

    Fbeam, Sbeam = beam_center_on_detector(setup, params)
    Fclose, Sclose = close_point_on_detector(setup, params)

    def swing(v):
        return V.rotate_about_axis(V.rotate_xyz(v, rot), tt_axis, twotheta)

    f, s, o = swing(f0), swing(s0), swing(o0)
    if setup.pivot == "SAMPLE":
        pix0 = swing(-Fclose * f0 - Sclose * s0 + close * o0)
    else:
        pix0 = -Fbeam * f - Sbeam * s + distance * beam

    close_distance = V.dot(pix0, o)
    distance = close_distance / ratio
    Fclose_final = -V.dot(pix0, f)
    Sclose_final = -V.dot(pix0, s)
    hit = distance * beam - pix0
    return DetectorFrame(
        fdet=f, sdet=s, odet=o, pix0=pix0, beam=beam, distance=distance,
        close_distance=close_distance, pixel_size=params.pixel_size * MM,
        Fbeam=V.dot(f, hit), Sbeam=V.dot(s, hit), Fclose=Fclose_final, Sclose=Sclose_final,
    )


def layer_thickness(setup: Setup, params: Params) -> Array:
    """Thickness of one sensor layer (m): thickness/divisor, 0 without a sensor."""
    if not setup.has_thickness:
        return jnp.zeros_like(params.thickness)
    return params.thickness * UM / setup.thick_divisor


def attenuation_coefficient(params: Params) -> Array:
    """Sensor attenuation coefficient μ (1/m) from the attenuation depth (µm): μ = 1/depth."""
    return 1.0 / (params.attenuation_depth * UM)


def roi_bounds(setup: Setup) -> tuple[int, int, int, int]:
    """The rendered window (fmin, fmax, smin, smax), inclusive, clipped to the detector.

    Empty when fmax < fmin or smax < smin.  Raster order inside it is slow-major.
    """
    fmin, fmax, smin, smax = setup.roi
    return (max(fmin, 0), min(fmax, setup.fpixels - 1), max(smin, 0), min(smax, setup.spixels - 1))


class Rays(NamedTuple):
    """The sub-pixel rays of some pixels, as x, y, z component arrays of shape (T, n, n, *pixels).

    Components with the pixel axes last make every later step a plain elementwise loop
    over pixels (the fast kernel's layout); ``subpixel_positions`` gives (..., T, n, n, 3).
    """

    position: tuple[Array, Array, Array]  # P (m), lab frame
    direction: tuple[Array, Array, Array]  # d̂ = P/|P|
    airpath: Array  # |P| (m)


def subpixel_coordinate(index, tick, n: int, pixel_size):
    """Fdet (or Sdet), m: the centre of sub-pixel ``tick`` of pixel ``index`` along one axis.

    δ·(index·n + tick) + δ/2 with δ = pixel_size/n (the C program's expression).
    """
    sub = pixel_size / n
    return sub * (index * n + tick) + sub / 2.0


def subpixel_rays(setup: Setup, frame: DetectorFrame, spixel: Array, fpixel: Array,
                  layer_step: Array, first_only: bool = False) -> Rays:
    """Positions, unit directions and distances of every layer × sub-pixel of the given pixels.

    P = pix0 + Fdet·fdet + Sdet·sdet + Odet·odet with Fdet = δ(f·n + j + ½),
    Sdet = δ(s·n + i + ½), Odet = t·Δt (δ = pixel/n); sub-pixel loops slow (i) then
    fast (j), as in the C program; on a curved detector P is then mapped onto the sphere.
    ``spixel``/``fpixel`` are integer arrays of any (common) shape.  ``first_only``:
    only the first sub-pixel of the first layer (T = n = 1 in the shapes).
    """
    n = setup.oversample
    dtype = frame.pix0.dtype
    spixel, fpixel = jnp.asarray(spixel), jnp.asarray(fpixel)
    pix = (1,) * spixel.ndim
    n_ticks, n_layers = (1, 1) if first_only else (n, setup.thicksteps)
    ticks = jnp.arange(n_ticks, dtype=dtype).reshape((n_ticks,) + pix)
    Fdet = subpixel_coordinate(fpixel.astype(dtype)[None], ticks, n, frame.pixel_size)  # (n, ...)
    Sdet = subpixel_coordinate(spixel.astype(dtype)[None], ticks, n, frame.pixel_size)
    Odet = (jnp.arange(n_layers, dtype=dtype) * layer_step).reshape((-1, 1, 1) + pix)
    pos = tuple(
        frame.pix0[c]
        + Fdet[None, None] * frame.fdet[c]
        + Sdet[None, :, None] * frame.sdet[c]
        + Odet * frame.odet[c]
        for c in range(3)
    )
    if setup.curved_detector:
        curved = curve_onto_sphere(frame, jnp.stack(pos, axis=-1))
        pos = tuple(curved[..., c] for c in range(3))
    airpath = jnp.sqrt(pos[0] * pos[0] + pos[1] * pos[1] + pos[2] * pos[2])
    return Rays(pos, tuple(p / airpath for p in pos), airpath)


def pixels_first(components: tuple[Array, Array, Array], n_pixel_axes: int) -> Array:
    """(T, n, n, *pixels) components → one (*pixels, T, n, n, 3) array (the general layout)."""
    stacked = jnp.stack(components, axis=-1)
    k = n_pixel_axes
    return jnp.moveaxis(stacked, (0, 1, 2), (k, k + 1, k + 2))


def subpixel_positions(setup: Setup, frame: DetectorFrame, spixel: Array, fpixel: Array,
                       layer_step: Array) -> Array:
    """Lab positions (m) of every layer × sub-pixel of the given pixels: (..., T, n, n, 3).

    The points of ``subpixel_rays`` for pixel index arrays of shape (...).
    """
    rays = subpixel_rays(setup, frame, spixel, fpixel, layer_step)
    return pixels_first(rays.position, jnp.ndim(spixel))


def curve_onto_sphere(frame: DetectorFrame, pos: Array) -> Array:
    """Map planar positions onto a sphere of radius ``distance`` about the sample.

    The C program treats the planar y and z lab coordinates as arc lengths: the
    beam-spot point is rotated about ``sdet`` by y/distance, then about ``fdet``
    by z/distance.
    """
    start = frame.distance * frame.beam
    step1 = V.rotate_about_axis(start, frame.sdet, pos[..., 1] / frame.distance)
    return V.rotate_about_axis(step1, frame.fdet, pos[..., 2] / frame.distance)


def solid_angle(setup: Setup, frame: DetectorFrame, airpath: Array) -> Array:
    """Pixel solid angle (sr): Ω = (pixel/R)²·(close_distance/R), or 1/R² for a point pixel."""
    if setup.point_pixel:
        return 1.0 / (airpath * airpath)
    return frame.pixel_size**2 / (airpath * airpath) * frame.close_distance / airpath


def capture_fraction(setup: Setup, mu: Array, diffracted: "Array | tuple[Array, Array, Array]",
                     odet: Array, layer_step: Array, layer: Optional[int] = None) -> Array:
    """Fraction of the photons along each ray absorbed in sensor layer(s) (dimensionless).

    Layer t of thickness Δ (m) along a ray with obliquity ρ = d̂·odet absorbs
    exp(−tΔμ/ρ) − exp(−(t+1)Δμ/ρ), μ (1/m) the attenuation coefficient.
    ``diffracted`` (..., 3), or its three components (...) each (the kernel's
    pixel-contiguous layout): with ``layer`` None it is (..., T, n, n[, 3]) and every
    layer is evaluated (shape (..., T, n, n)); with ``layer`` = t only that layer
    (shape (...)).  Without a sensor the fraction is 1.
    """
    components = isinstance(diffracted, tuple)
    first = diffracted[0] if components else diffracted[..., 0]
    if not setup.has_thickness:
        return jnp.ones(first.shape, first.dtype)
    if components:
        parallax = diffracted[0] * odet[0] + diffracted[1] * odet[1] + diffracted[2] * odet[2]
    else:
        parallax = V.dot(diffracted, odet)
    dtype = first.dtype
    if layer is None:
        t = jnp.arange(setup.thicksteps, dtype=dtype)[:, None, None]
    else:
        t = float(layer)
    return jnp.exp(-t * layer_step * mu / parallax) - jnp.exp(-(t + 1) * layer_step * mu / parallax)
