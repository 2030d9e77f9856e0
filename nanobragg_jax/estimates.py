"""Before rendering: will the numbers fit, and will the images fit in memory?

Two estimates the command makes once the experiment is parsed, so that a run that cannot
succeed fails at once with a message about the input instead of after minutes of rendering
(with a NaN/Inf image, or a native out-of-memory abort):

* :func:`brightest_pixel_bound` — an upper bound on the photons any pixel can receive,

      photons ≤ r_e² Φ · (I_bg + max|F|² (Na Nb Nc)²) · Ω_max · P_max,

  from the kernel's formula (``kernel.py``: photons = r_e² Φ I / steps · capture · P · Ω with
  I = I_bg + Σ_steps F² F_latt²): |F_latt| ≤ Na Nb Nc for every spot shape, the capture
  fraction ≤ 1, the Kahn factor P = ½(1 + cos²2θ − K cos2ψ sin²2θ) ≤ 1 + |K|/2, and
  Ω ≤ pixel²/R_min² (1/R_min² for ``-point_pixel``) with R_min the sample–detector-plane
  distance.  Tricubic interpolation can overshoot the grid's largest |F| by at most ~2.2×
  (the 1-D four-point Lagrange weights sum to at most 1.3 in absolute value), so 3× is used.
  Each intermediate of that product (F² F_latt², their sum over sub-paths, the water term) is
  checked against the arithmetic's largest finite number, and the result also against float32
  (the ``-floatfile`` format).
* :func:`image_memory_bytes` — what the rendered and written images of one run occupy.
"""

from __future__ import annotations

import math
import os
from typing import Optional

import numpy as np

__all__ = ["brightest_pixel_bound", "magnitude_problem", "image_memory_bytes", "available_memory_bytes",
           "BYTES_PER_PIXEL"]

INTERPOLATION_OVERSHOOT = 3.0
"""Bound on |tricubic F| / max|F on the grid| (see the module docstring)."""

BYTES_PER_PIXEL = 64
"""Host memory per detector pixel in one command run: the image in the arithmetic's dtype and
its float32 copy, index arrays of the rendered region, the integer, noise and preview images
and their encoded files, a mask (float64) — about 50 bytes, rounded up."""


def _log10(x: float) -> float:
    return math.log10(x) if x > 0 else -math.inf


def brightest_pixel_bound(exp) -> dict[str, float]:
    """log10 of each intermediate of the photon bound (see module docstring) and of the result.

    Returns a dict with keys ``F2_Flatt2`` (one sub-path's F² F_latt²), ``sum`` (over all
    sub-paths, plus the water term), ``water`` (I_bg), ``photons`` (the final bound).
    """
    from .physics import R_E_SQR, water_background

    p, setup, info = exp.params, exp.setup, exp.info
    grid = np.asarray(p.F_grid, np.float64)
    f_max = max(abs(float(p.default_F)), float(np.max(np.abs(grid))) if grid.size else 0.0)
    if setup.interpolate:
        f_max *= INTERPOLATION_OVERSHOOT
    n_cells = float(np.prod(np.asarray(p.N, np.float64)))
    fluence = float(p.fluence)
    water = float(p.water_size) if setup.has_water else 0.0
    lg_path = 2 * (_log10(f_max) + _log10(n_cells))
    lg_water = _log10(float(water_background(1.0, 1.0))) + _log10(fluence) + 3 * _log10(abs(water)) if water else -math.inf
    lg_sum = max(lg_path + _log10(setup.steps), lg_water) + math.log10(2.0)
    r_min = min(abs(float(info.get("close_distance", 0.0)) or math.inf), abs(float(info.get("distance", 0.0))))
    pixel_m = float(p.pixel_size) * 1e-3
    if not r_min or not math.isfinite(r_min):
        r_min = pixel_m  # degenerate geometry is refused elsewhere; keep the bound finite
    lg_omega = (0.0 if setup.point_pixel else 2 * _log10(pixel_m)) - 2 * _log10(r_min)
    lg_polar = math.log10(1.0 + abs(float(p.kahn_factor)) / 2.0)
    lg_photons = _log10(R_E_SQR) + _log10(fluence) - _log10(setup.steps) + lg_sum + lg_omega + lg_polar
    return {"F2_Flatt2": lg_path, "sum": lg_sum, "water": lg_water, "photons": lg_photons,
            "F_max": f_max, "cells": n_cells, "fluence": fluence, "water_um": water}


def magnitude_problem(exp, dtype: str) -> Optional[str]:
    """A one-line reason why the image would overflow ``dtype`` (or the float32 file), else None."""
    lg_max = math.log10(float(np.finfo(np.dtype(dtype)).max))
    lg_f32 = math.log10(float(np.finfo(np.float32).max))
    bound = brightest_pixel_bound(exp)
    hint = "; use -dtype float64" if dtype == "float32" else ""
    culprits = (f"max|F| = {bound['F_max']:.3g} (-default_F, -hkl), Na·Nb·Nc = {bound['cells']:.3g} (-N, crystal "
                f"size), fluence = {bound['fluence']:.3g} photons/m² (-fluence, -flux), water = "
                f"{bound['water_um']:.3g} µm (-water)")
    for key, what in (("F2_Flatt2", "F² · F_latt² of one sub-path"), ("water", "the water background"),
                      ("sum", "the sum over sub-paths"), ("photons", "the brightest pixel")):
        if bound[key] > lg_max - 1:  # a factor 10 of headroom for rounding in the sums
            return (f"{what} could reach 1e{bound[key]:.0f}, beyond the {dtype} range "
                    f"({np.finfo(np.dtype(dtype)).max:.3g}){hint}; check {culprits}")
    if bound["photons"] > lg_f32 - 1:
        return (f"the brightest pixel could reach 1e{bound['photons']:.0f} photons, beyond what the "
                f"-floatfile (float32, max {np.finfo(np.float32).max:.3g}) can hold; check {culprits}")
    return None


def image_memory_bytes(setup) -> int:
    """Host memory the images of one command run need (:data:`BYTES_PER_PIXEL` per pixel)."""
    return int(setup.spixels) * int(setup.fpixels) * BYTES_PER_PIXEL


def available_memory_bytes() -> Optional[int]:
    """MemAvailable from /proc/meminfo (Linux), else physical memory, else None."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (OSError, ValueError, AttributeError):
        return None
