"""miniCBF images with a Pilatus-style header (``-cbffile``), written through fabio.

One panel per file: int32 pixels, byte-offset compressed, with the ``PILATUS_1.2`` header lines
DIALS and other readers take the geometry from:

* ``Pixel_size`` (m × m), ``Silicon sensor, thickness`` (m), ``Exposure_time`` (s);
* ``Wavelength`` (Å), ``Detector_distance`` (m; sample to the detector plane along its normal,
  the C program's close distance), ``Beam_xy`` (fast, slow in pixels from the outer corner of
  pixel (0, 0): where the direct beam meets the detector plane);
* ``Start_angle``, ``Angle_increment``, ``Phi`` (deg), ``Polarization`` (the fraction p, Kahn
  factor 2p − 1), ``Count_cutoff``.
"""

from __future__ import annotations

import datetime as _dt
import os
from typing import Any, Union

import numpy as np

__all__ = ["write_cbf", "pilatus_header_lines"]

PathLike = Union[str, "os.PathLike[str]"]


def _require_fabio():
    try:
        import fabio.cbfimage
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError("writing CBF files needs fabio: pip install 'nanobragg-jax[formats]'") from None
    return fabio.cbfimage


def pilatus_header_lines(*, pixel_size_mm: float, wavelength_A: float, distance_mm: float,
                         beam_xy_px: tuple[float, float], start_angle: float = 0.0,
                         angle_increment: float = 0.0, exposure_time: float = 1.0,
                         sensor_thickness_mm: float = 0.0, polarization_fraction: float = 0.5,
                         count_cutoff: int = 1048575, detector: str = "nanobragg-jax simulated PAD") -> list[str]:
    """The header lines (without the leading ``# ``), in SI units as Pilatus writes them."""
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000")
    px = pixel_size_mm * 1e-3
    return [
        f"Detector: {detector}, S/N 00-0000",
        now,
        f"Pixel_size {px:.6e} m x {px:.6e} m",
        f"Silicon sensor, thickness {sensor_thickness_mm * 1e-3:.6f} m",
        f"Exposure_time {exposure_time:.7f} s",
        f"Exposure_period {exposure_time:.7f} s",
        "Tau = 0 s",
        f"Count_cutoff {int(count_cutoff)} counts",
        "Threshold_setting: 0 eV",
        f"Wavelength {wavelength_A:.10g} A",
        f"Detector_distance {distance_mm * 1e-3:.10g} m",
        f"Beam_xy ({beam_xy_px[0]:.6f}, {beam_xy_px[1]:.6f}) pixels",
        f"Start_angle {start_angle:.6f} deg.",
        f"Angle_increment {angle_increment:.6f} deg.",
        f"Phi {start_angle:.6f} deg.",
        f"Polarization {polarization_fraction:.6f}",
        "Oscillation_axis X, CW",
        "N_oscillations 1",
    ]


def write_cbf(path: PathLike, image: Any, *, pixel_size_mm: float, wavelength_A: float, distance_mm: float,
              beam_xy_px: tuple[float, float], start_angle: float = 0.0, angle_increment: float = 0.0,
              exposure_time: float = 1.0, sensor_thickness_mm: float = 0.0,
              polarization_fraction: float = 0.5) -> None:
    """Write one panel (slow, fast) as a miniCBF (int32, rounded), atomically.

    Values are rounded to the nearest integer and clipped to the int32 range.
    """
    cbfimage = _require_fabio()
    data = np.asarray(image)
    if data.ndim != 2:
        raise ValueError(f"write_cbf: one panel (slow, fast) per file, got shape {data.shape}")
    counts = np.clip(np.rint(data), np.iinfo(np.int32).min, np.iinfo(np.int32).max).astype(np.int32)
    lines = pilatus_header_lines(pixel_size_mm=pixel_size_mm, wavelength_A=wavelength_A, distance_mm=distance_mm,
                                 beam_xy_px=beam_xy_px, start_angle=start_angle, angle_increment=angle_increment,
                                 exposure_time=exposure_time, sensor_thickness_mm=sensor_thickness_mm,
                                 polarization_fraction=polarization_fraction)
    header = {"_array_data.header_convention": "PILATUS_1.2",
              "_array_data.header_contents": "\n".join("# " + line for line in lines)}
    img = cbfimage.CbfImage(data=counts, header=header)
    from ._files import atomic_write

    atomic_write(path, img.write, suffix=".tmp.cbf")
