"""Incident beam: the list of point sources from divergence × dispersion, or a file.

Each source is a unit vector pointing from the sample toward the source and a
wavelength.  The generated raster (C program order: hdiv tick, vdiv tick, then
wavelength tick) starts from a source 10 m up-beam, tilts it by vdiv about the
polarisation axis and by hdiv about the beam × polarisation normal, and gives
wavelength λ0·(1 + tick·Δ − dispersion/2).  Which raster points survive the
round-divergence cut is decided on the host (it is discrete); their angles stay
differentiable functions of the ranges and steps.
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
from jax import Array

from ..config import Params, Setup
from . import vectors as V

SOURCE_DISTANCE = 10.0  # m, the C program's fixed source distance
MRAD = 1e-3


class Sources(NamedTuple):
    """Sources as the kernel uses them."""

    incident: Array  # (S, 3) unit propagation directions (sample ← source reversed)
    wavelength: Array  # (S,) m


def divergence_steps(setup: Setup, params: Params) -> tuple[Array, Array]:
    """Angular step (rad) between horizontal and vertical raster points."""
    h = params.hdivrange / setup.hdiv_divisor if setup.hdiv_divisor else params.hdivstep
    v = params.vdivrange / setup.vdiv_divisor if setup.vdiv_divisor else params.vdivstep
    return h * MRAD, v * MRAD


def dispersion_step(setup: Setup, params: Params) -> Array:
    """Fractional wavelength step between dispersion ticks."""
    if setup.disp_divisor:
        return params.dispersion / 100.0 / setup.disp_divisor
    return jnp.zeros_like(params.dispersion)


def divergence_angles(setup: Setup, params: Params) -> tuple[Array, Array]:
    """Horizontal and vertical tilts (rad) of the kept raster points: tick·step − range/2."""
    hstep, vstep = divergence_steps(setup, params)
    hrange, vrange = params.hdivrange * MRAD, params.vdivrange * MRAD
    tics = jnp.asarray(setup.div_tics, dtype=params.wavelength.dtype).reshape(-1, 2)
    return hstep * tics[:, 0] - hrange / 2.0, vstep * tics[:, 1] - vrange / 2.0


def source_positions(setup: Setup, params: Params) -> Array:
    """Positions (m) of the generated raster's sources, (n_div, 3), 10 m up-beam.

    The point −10 m·beam is tilted by vdiv about the polarisation axis, then by hdiv
    about beam × polarisation (the C program's order).
    """
    beam = V.unitize(params.beam_vector)
    polar = V.unitize(params.polar_vector)
    vert = V.unitize(V.cross(beam, polar))
    hdiv, vdiv = divergence_angles(setup, params)
    start = -SOURCE_DISTANCE * beam
    return V.rotate_about_axis(V.rotate_about_axis(start, polar, vdiv), vert, hdiv)


def wavelengths(setup: Setup, params: Params) -> Array:
    """Wavelengths (m) of the dispersion ticks: λ0·(1 + tick·Δ − dispersion/2), (W,)."""
    dstep = dispersion_step(setup, params)
    disp = params.dispersion / 100.0
    ticks = jnp.arange(setup.dispsteps, dtype=params.wavelength.dtype)
    return params.wavelength * 1e-10 * (1.0 + dstep * ticks - disp / 2.0)


def sources(setup: Setup, params: Params) -> Sources:
    """Build the source list (directions and wavelengths): divergence-major, wavelength-minor."""
    if setup.source_mode == "file":
        toward = V.unitize(params.source_dirs)
        return Sources(incident=-toward, wavelength=params.source_wavelengths * 1e-10)
    toward = V.unitize(source_positions(setup, params))
    lam = wavelengths(setup, params)
    n_div = toward.shape[0]
    toward = jnp.repeat(toward, setup.dispsteps, axis=0)
    lam = jnp.tile(lam, n_div)
    return Sources(incident=-toward, wavelength=lam)
