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

from typing import NamedTuple

import jax.numpy as jnp
from jax import Array

from ..config import Params, Setup
from ..safe import safe_norm
from . import vectors as V

MM = 1e-3
UM = 1e-6


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


def detector_frame(setup: Setup, params: Params) -> DetectorFrame:
    """Rotate the detector and place it, following the C program's pivot rules."""
    f0 = V.unitize(params.fdet)
    s0 = V.unitize(params.sdet)
    o_raw = params.odet
    o_norm = safe_norm(o_raw)
    # The C program keeps odet only if it was given with unit length; otherwise
    # it regenerates it as fdet × sdet.  (A discrete choice: the comparison
    # carries no gradient, and each branch is differentiable on its own.)
    o0 = jnp.where(o_norm == 1.0, o_raw, V.unitize(V.cross(f0, s0)))
    beam = V.unitize(params.beam_vector)
    tt_axis = params.twotheta_axis
    rot = jnp.deg2rad(params.detector_rotation)
    twotheta = jnp.deg2rad(params.twotheta)

    o_rot = V.rotate_xyz(o0, rot)
    ratio = V.dot(beam, o_rot)
    ratio = jnp.where(ratio == 0.0, jnp.finfo(ratio.dtype).tiny, ratio)
    if setup.close_distance_given:
        close = params.close_distance * MM
    else:
        close = jnp.abs(ratio * params.distance * MM)
    distance = close / ratio

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


def subpixel_positions(setup: Setup, frame: DetectorFrame, spixel: Array, fpixel: Array,
                       layer_step: Array) -> Array:
    """Lab positions (m) of every layer × sub-pixel of the given pixels.

    Returns shape (..., thicksteps, n, n, 3) for pixel index arrays of shape (...),
    with the sub-pixel loops ordered slow then fast, as in the C program.
    """
    n = setup.oversample
    dtype = frame.pix0.dtype
    sub = frame.pixel_size / n
    ticks = jnp.arange(n, dtype=dtype)
    Fdet = sub * (fpixel[..., None].astype(dtype) * n + ticks) + sub / 2.0  # (..., n)
    Sdet = sub * (spixel[..., None].astype(dtype) * n + ticks) + sub / 2.0
    Odet = jnp.arange(setup.thicksteps, dtype=dtype) * layer_step  # (T,)
    pos = (
        frame.pix0
        + Fdet[..., None, None, :, None] * frame.fdet
        + Sdet[..., None, :, None, None] * frame.sdet
        + Odet[:, None, None, None] * frame.odet
    )
    if setup.curved_detector:
        pos = curve_onto_sphere(frame, pos)
    return pos


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


def capture_fraction(setup: Setup, mu: Array, diffracted: Array, odet: Array,
                     layer_step: Array) -> Array:
    """Fraction of photons absorbed in each sensor layer, shape (…, T, n, n).

    Layer t of thickness Δ along a ray with obliquity ρ = d·odet absorbs
    exp(−tΔμ/ρ) − exp(−(t+1)Δμ/ρ), μ (1/m) the attenuation coefficient.
    """
    if not setup.has_thickness:
        return jnp.ones(diffracted.shape[:-1], diffracted.dtype)
    parallax = V.dot(diffracted, odet)
    t = jnp.arange(setup.thicksteps, dtype=diffracted.dtype)[:, None, None]
    return jnp.exp(-t * layer_step * mu / parallax) - jnp.exp(-(t + 1) * layer_step * mu / parallax)
