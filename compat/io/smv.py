"""SMV images under the port's names (``nanobrag_torch.io.smv``).

Reading and writing go through ``nanobragg_jax.io.smv`` (ADSC layout: a 512-byte text
header, then uint16 pixels fast-major).  ``write_smv`` takes the port's arguments and
writes the C program's header keys for an unrotated detector, with the C program's
pixel conversion (``floor(value·scale + adc + ½)`` clipped to [0, 65535]).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

from nanobragg_jax.io import smv as _smv

from .._arrays import to_numpy

__all__ = ["read_smv", "write_smv"]


def read_smv(filepath: Union[str, Path]):
    """``(image (slow, fast) NumPy uint16, header dict of strings)``."""
    img = _smv.read_smv(str(filepath))
    return img.data, dict(img.header)


def _g(x: float) -> str:
    return "%g" % float(x)


def write_smv(filepath: Union[str, Path], image_data: Any, pixel_size_mm: float, distance_mm: float,
              wavelength_angstrom: float, beam_center_x_mm: float, beam_center_y_mm: float,
              close_distance_mm: Optional[float] = None, phi_deg: Optional[float] = None,
              osc_start_deg: Optional[float] = None, osc_range_deg: Optional[float] = None,
              twotheta_deg: float = 0.0, detector_sn: str = "000", beamline: str = "nanoBragg",
              convention: str = "MOSFLM", byte_order: str = "little_endian",
              data_type: str = "unsigned_short", scale: float = 1.0, adc_offset: float = 40.0) -> None:
    """Write ``image_data`` (photons, (slow, fast)) as an SMV file.

    ``beam_center_x_mm``/``beam_center_y_mm`` are the C program's Xbeam/Ybeam.  The
    header carries every convention's beam centre, as the C program writes them for an
    unrotated MOSFLM-style detector (Fbeam = Ybeam + ½ pixel, Sbeam = Xbeam + ½ pixel).
    Only native-order ``unsigned_short`` data is written (the C program's format).
    """
    if data_type != "unsigned_short":
        raise ValueError("write_smv: only data_type='unsigned_short' is supported (the C program's format)")
    image = np.asarray(to_numpy(image_data), np.float64)
    if image.ndim != 2:
        raise ValueError(f"write_smv: image must be 2-D (slow, fast), got shape {image.shape}")
    spixels, fpixels = image.shape
    px = float(pixel_size_mm)
    xbeam, ybeam = float(beam_center_x_mm), float(beam_center_y_mm)
    fbeam, sbeam = ybeam + 0.5 * px, xbeam + 0.5 * px
    phi0 = float(phi_deg if phi_deg is not None else (osc_start_deg or 0.0))
    close = float(close_distance_mm if close_distance_mm is not None else distance_mm)
    items = [
        ("PIXEL_SIZE", _g(px)), ("DISTANCE", _g(distance_mm)), ("WAVELENGTH", _g(wavelength_angstrom)),
        ("BEAM_CENTER_X", _g(xbeam)), ("BEAM_CENTER_Y", _g(ybeam)),
        ("ADXV_CENTER_X", _g(fbeam)), ("ADXV_CENTER_Y", _g(spixels * px - sbeam)),
        ("MOSFLM_CENTER_X", _g(sbeam - 0.5 * px)), ("MOSFLM_CENTER_Y", _g(fbeam - 0.5 * px)),
        ("DENZO_X_BEAM", _g(sbeam)), ("DENZO_Y_BEAM", _g(fbeam)),
        ("DIALS_ORIGIN", ",".join(_g(v) for v in (-fbeam, sbeam, -close))),
        ("XDS_ORGX", _g(fbeam / px + 0.5)), ("XDS_ORGY", _g(sbeam / px + 0.5)),
        ("CLOSE_DISTANCE", _g(close)), ("PHI", _g(phi0)),
        ("OSC_START", _g(osc_start_deg if osc_start_deg is not None else phi0)),
        ("OSC_RANGE", _g(osc_range_deg or 0.0)), ("TWOTHETA", _g(twotheta_deg)),
        ("DETECTOR_SN", str(detector_sn)), ("BEAMLINE", str(beamline)),
    ]
    test = image * float(scale) + float(adc_offset)
    test = np.clip(np.nan_to_num(test, nan=0.0), 0.0, 65535.0)
    pixels = np.clip(np.floor(test + 0.5), 0, 65535).astype(np.uint16)
    _smv.write_smv(str(filepath), pixels, items)
