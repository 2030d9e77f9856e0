"""The one table of allowed ranges, for command-line values and SMV header values alike.

A value that passes the syntax check (a finite number, an integer) can still be one the
simulation cannot use: a negative distance, a dispersion of 200 % (λ = 0 at the band edge), a
cell of 1e308 Å.  The C program renders such values (or crashes); we refuse them with one line
that names where the value came from — a flag (``-distance -100: the detector distance must be
positive``) or a header key of an input file (``x.img: header DISTANCE=-100: ...``).

Every quantity is listed once in :data:`RANGES` (in the units the user writes: mm, Å, degrees,
µm, mrad, percent, eV); :data:`FLAG_QUANTITY` and :data:`HEADER_QUANTITY` say which quantity a
flag or an ``-img``/``-mask`` header key sets, so ``-distance`` and ``DISTANCE=`` obey the same
rule.  The limits are generous — far outside any experiment — so that they reject mistakes, not
unusual experiments; what a value *does* to the image (intensities beyond the floating-point
range) is checked separately by the command before it renders.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

__all__ = ["Range", "RANGES", "FLAG_QUANTITY", "HEADER_QUANTITY", "range_problem", "C_INT_MAX"]

C_INT_MAX = 2**31 - 1
"""Integer flags are C ``int`` in the C program: larger magnitudes overflow there."""


@dataclass(frozen=True)
class Range:
    """Allowed interval of one quantity.

    Attributes:
        what: the quantity in words ("detector distance").
        unit: its unit as the user writes it ("mm"), "" if none.
        low, high: bounds (None: unbounded).
        low_open, high_open: True when the bound itself is excluded.
    """

    what: str
    unit: str = ""
    low: Optional[float] = None
    high: Optional[float] = None
    low_open: bool = False
    high_open: bool = False

    def contains(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        if self.high is not None and (value >= self.high if self.high_open else value > self.high):
            return False
        return True

    def rule(self) -> str:
        """The rule in words: "must be positive", "must lie in [0, 100) percent" …"""
        unit = f" {self.unit}" if self.unit else ""
        if self.high is None:
            if self.low is None:
                return "must be a finite number"
            if self.low == 0:
                return "must be positive" if self.low_open else "must not be negative"
            return f"must be {'greater than' if self.low_open else 'at least'} {self.low:g}{unit}"
        if self.low is None:
            return f"must be {'less than' if self.high_open else 'at most'} {self.high:g}{unit}"
        if self.low == 0 and self.low_open:
            return f"must be positive and {'less than' if self.high_open else 'at most'} {self.high:g}{unit}"
        if self.low == 0:
            return (f"must not be negative and must be {'less than' if self.high_open else 'at most'} "
                    f"{self.high:g}{unit}")
        lo = "(" if self.low_open else "["
        hi = ")" if self.high_open else "]"
        return f"must lie in {lo}{self.low:g}, {self.high:g}{hi}{unit}"


_BIG = 1e6  # a million mm (1 km), Å, degrees …: beyond any experiment, far below overflow

RANGES: dict[str, Range] = {
    # detector
    "pixel_size": Range("pixel size", "mm", 0.0, 1e3, low_open=True),
    "distance": Range("detector distance", "mm", 0.0, _BIG, low_open=True),
    "detsize": Range("detector size", "mm", 0.0, _BIG, low_open=True),
    "detpixels": Range("number of pixels", "", 0.0, C_INT_MAX, low_open=True),
    "beam_center": Range("beam centre", "mm", -_BIG, _BIG),
    "org": Range("XDS origin", "pixels", -1e9, 1e9),
    "detector_thick": Range("sensor thickness", "µm", 0.0, _BIG),
    "detector_abs": Range("sensor attenuation depth", "µm", 0.0, None),
    "count": Range("count", "", 0.0, C_INT_MAX),
    "positive_count": Range("count", "", 0.0, C_INT_MAX, low_open=True),
    # crystal
    "cell_length": Range("cell length", "Å", 0.0, _BIG, low_open=True),
    "cell_angle": Range("cell angle", "degrees", 0.0, 180.0, low_open=True, high_open=True),
    "N": Range("number of unit cells", "", 0.0, _BIG, low_open=True),
    "xtal_size": Range("crystal size", "mm", 0.0, _BIG, low_open=True),
    "mosaic": Range("mosaic spread", "degrees", 0.0, 180.0),
    "angle": Range("angle", "degrees", -_BIG, _BIG),
    "osc": Range("oscillation range", "degrees", 0.0, _BIG),
    "fudge": Range("spot-shape fudge factor", "", 0.0, _BIG, low_open=True),
    "structure_factor": Range("structure factor", "electrons", 0.0, None),
    "density": Range("density", "g/cm³", 0.0, None),
    "molecular_weight": Range("molecular weight", "g/mol", 0.0, None, low_open=True),
    # beam
    "wavelength": Range("wavelength", "Å", 0.0, _BIG, low_open=True),
    "energy": Range("photon energy", "eV", 0.0, 1e12, low_open=True),
    # Δλ/λ: the band spans λ(1 ± d/2), so at 200 % its short end reaches λ = 0
    "dispersion": Range("spectral dispersion", "percent", 0.0, 100.0, high_open=True),
    # the divergence raster spans ±range/2: beyond π rad it folds back on itself
    "divergence": Range("divergence", "mrad", 0.0, 1000.0 * math.pi),
    "fluence": Range("fluence", "photons/m²", 0.0, None),
    "flux": Range("flux", "photons/s", 0.0, None),
    "exposure": Range("exposure", "s", 0.0, None),
    "beamsize": Range("beam size", "mm", 0.0, _BIG, low_open=True),
    "kahn": Range("Kahn polarisation factor", "", -1.0, 1.0),
    "water": Range("water thickness", "µm", 0.0, _BIG),
    "dmin": Range("resolution limit", "Å", 0.0, None),
    # output
    "scale": Range("scale", "", 0.0, None),
    "adc": Range("ADC offset", "counts", -65535.0, 65535.0),
    "seed": Range("seed", "", -C_INT_MAX, C_INT_MAX),
    "pixel_index": Range("pixel index", "", -C_INT_MAX, C_INT_MAX),
}

FLAG_QUANTITY: dict[str, str] = {
    "-nthreads": "positive_count",
    "-pixel": "pixel_size",
    "-distance": "distance", "-close_distance": "distance",
    "-detsize": "detsize", "-detsize_f": "detsize", "-detsize_s": "detsize",
    "-detpixels": "detpixels", "-detpixels_f": "detpixels", "-detpixels_x": "detpixels",
    "-detpixels_s": "detpixels", "-detpixels_y": "detpixels",
    "-Xbeam": "beam_center", "-Ybeam": "beam_center", "-Xclose": "beam_center", "-Yclose": "beam_center",
    "-ORGX": "org", "-ORGY": "org",
    "-twotheta": "angle", "-detector_rotx": "angle", "-detector_roty": "angle", "-detector_rotz": "angle",
    "-detector_thick": "detector_thick", "-detector_abs": "detector_abs", "-detector_absorb": "detector_abs",
    "-detector_thicksteps": "count", "-thicksteps": "count",
    "-oversample": "count",  # the sub-path budget (cli.MAX_SUBPATHS) bounds it in practice
    "-N": "N", "-Na": "N", "-Nb": "N", "-Nc": "N",
    "-xtalsize": "xtal_size", "-xtal_size": "xtal_size", "-samplesize": "xtal_size", "-sample_size": "xtal_size",
    "-xtal_thick": "xtal_size", "-xtal_x": "xtal_size", "-sample_thick": "xtal_size", "-sample_x": "xtal_size",
    "-xtal_width": "xtal_size", "-xtal_y": "xtal_size", "-sample_width": "xtal_size", "-sample_y": "xtal_size",
    "-width": "xtal_size",
    "-xtal_height": "xtal_size", "-xtal_z": "xtal_size", "-sample_height": "xtal_size", "-sample_z": "xtal_size",
    "-height": "xtal_size",
    "-density": "density", "-sample_density": "density",
    "-MW": "molecular_weight", "-molecular_weight": "molecular_weight",
    "-fudge": "fudge",
    "-default_F": "structure_factor",
    "-mosaic": "mosaic", "-mosaicity": "mosaic", "-mosaic_spread": "mosaic",
    "-mosaic_domains": "positive_count", "-mosaic_dom": "positive_count",
    "-phi": "angle", "-osc": "osc", "-phistep": "osc", "-phisteps": "count",
    "-lambda": "wavelength", "-wave": "wavelength", "-wavelength": "wavelength",
    "-energy": "energy",
    "-dispersion": "dispersion", "-dispsteps": "count",
    "-divergence": "divergence", "-hdivrange": "divergence", "-vdivrange": "divergence",
    "-hdivstep": "divergence", "-vdivstep": "divergence",
    "-hdivsteps": "count", "-vdivsteps": "count", "-divsteps": "count",
    "-fluence": "fluence", "-flux": "flux", "-exposure": "exposure", "-beamsize": "beamsize",
    "-polar": "kahn",
    "-water": "water",
    "-dmin": "dmin",
    "-scale": "scale", "-pgmscale": "scale", "-adc": "adc",
    "-seed": "seed", "-mosaic_seed": "seed", "-misset_seed": "seed",
    "-printout_pixel": "pixel_index", "-trace_pixel": "pixel_index", "-roi": "pixel_index",
    "-misset": "angle",
}

# keys of an -img/-mask header the C program reads (with its ValueOf), and their units:
# header value × factor = the flag's unit
HEADER_QUANTITY: dict[str, tuple[str, str]] = {
    "PIXEL_SIZE": ("pixel_size", "-pixel"),
    "DISTANCE": ("distance", "-distance"),
    "CLOSE_DISTANCE": ("distance", "-close_distance"),
    "WAVELENGTH": ("wavelength", "-lambda"),
    "BEAM_CENTER_X": ("beam_center", "-Xbeam"),
    "BEAM_CENTER_Y": ("beam_center", "-Ybeam"),
    "ORGX": ("org", "-ORGX"),
    "ORGY": ("org", "-ORGY"),
    "PHI": ("angle", "-phi"),
    "OSC_RANGE": ("osc", "-osc"),
}


def range_problem(quantity: str, value: float) -> Optional[str]:
    """None when ``value`` is allowed for ``quantity``, else "the <what> <rule>"."""
    r = RANGES[quantity]
    if r.contains(value):
        return None
    if not math.isfinite(value):
        return f"the {r.what} must be a finite number"
    return f"the {r.what} {r.rule()}"
