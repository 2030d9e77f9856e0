"""Mask files and simple masks under the port's names (``nanobrag_torch.io.mask``).

A mask is an SMV image (``nanobragg_jax.io.smv``); zero pixels are skipped, as with the
C program's ``-mask``.  Masks are (spixels, fpixels) arrays of 0/1.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from nanobragg_jax.io import smv as _smv

from .._arrays import as_output

__all__ = ["parse_smv_header", "apply_smv_header_to_config", "read_smv_mask", "create_circular_mask",
           "create_rectangle_mask"]


def parse_smv_header(filename: str) -> dict:
    """The ``KEY=VALUE;`` items of an SMV file's header, as strings."""
    return dict(_smv.read_smv(filename).header)


def apply_smv_header_to_config(header: dict, config: dict, is_mask: bool = False) -> None:
    """Copy the header values a C run would take from ``-img``/``-mask`` into ``config``
    (a dict with the port's config field names).  For a mask, BEAM_CENTER_Y is measured
    from the other edge of the slow axis (the C program's flip)."""

    def num(key):
        return _smv.c_atof(header[key])

    for key, name, conv in (("SIZE1", "fpixels", int), ("SIZE2", "spixels", int)):
        if key in header:
            config[name] = conv(num(key))
    for key, name in (("PIXEL_SIZE", "pixel_size_mm"), ("DISTANCE", "distance_mm"),
                      ("CLOSE_DISTANCE", "close_distance_mm"), ("WAVELENGTH", "wavelength_A"),
                      ("XDS_ORGX", "orgx"), ("XDS_ORGY", "orgy"), ("PHI", "phi_start_deg"),
                      ("OSC_START", "phi_start_deg"), ("OSC_RANGE", "osc_range_deg"),
                      ("TWOTHETA", "detector_twotheta_deg")):
        if key in header:
            config[name] = num(key)
    if "BEAM_CENTER_X" in header:
        config["beam_center_f"] = num("BEAM_CENTER_X")
    if "BEAM_CENTER_Y" in header:
        y = num("BEAM_CENTER_Y")
        if is_mask and "spixels" in config and "pixel_size_mm" in config:
            config["beam_center_s"] = config["spixels"] * config["pixel_size_mm"] - y
        elif is_mask:
            config["beam_center_s_raw"] = y
            config["beam_center_s_needs_flip"] = True
        else:
            config["beam_center_s"] = y


def read_smv_mask(filename: str):
    """``(mask (spixels, fpixels) of 0/1, header dict)`` from an SMV mask file."""
    img = _smv.read_smv(filename)
    mask = (np.asarray(img.data) != 0).astype(np.float32)
    return as_output(mask, None), dict(img.header)


def create_circular_mask(spixels: int, fpixels: int, center_s: float, center_f: float, radius: float):
    """1 inside the circle of ``radius`` pixels about (center_s, center_f), 0 outside."""
    s = np.arange(spixels, dtype=np.float64)[:, None] - center_s
    f = np.arange(fpixels, dtype=np.float64)[None, :] - center_f
    return as_output((s * s + f * f <= radius * radius).astype(np.float32), None)


def create_rectangle_mask(spixels: int, fpixels: int, roi_xmin: int, roi_xmax: int, roi_ymin: int,
                          roi_ymax: int) -> Any:
    """1 inside the inclusive ROI (x = fast, y = slow), 0 outside."""
    mask = np.zeros((spixels, fpixels), np.float32)
    mask[roi_ymin:roi_ymax + 1, roi_xmin:roi_xmax + 1] = 1.0
    return as_output(mask, None)
