"""Configuration objects of the PyTorch port (``nanobrag_torch.config``), over the JAX core.

The dataclasses keep the port's names, field names and units (Å, degrees, mm, µm,
photons/m²), so a script written for the port only changes its import.  Every numeric
field accepts a Python number, a NumPy value, a JAX array or tracer (so that
``jax.grad`` of a function that builds these configs works), or — when PyTorch is
installed — a ``torch.Tensor`` (see ``compat._torch_bridge``).

Where the port's default differs from the C program's, the default here is the C
program's (the issue's rule: an unconfigured object behaves like ``nanoBragg`` with no
flag).  Those fields default to ``None``, meaning "let the C program's rule decide":

* ``CrystalConfig.phi_steps`` — C: 1 without ``-osc``, 2 with ``-osc`` alone.
* ``CrystalConfig.mosaic_domains`` — C: 10 when a spread is given without a count.
* ``CrystalConfig.spindle_axis`` / ``BeamConfig.polarization_axis`` — the convention's.
* ``DetectorConfig.detector_thicksteps`` — C: 2 layers when only a thickness is given.
* ``DetectorConfig.detector_pivot`` — C: decided by the convention (BEAM for MOSFLM,
  DENZO, ADXV; SAMPLE for XDS and DIALS; the last pivot-setting flag for CUSTOM).

docs/migration.md lists every difference from the port and the reason for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any, Literal, Optional

__all__ = [
    "BeamConfig",
    "CrystalConfig",
    "CrystalShape",
    "DetectorConfig",
    "DetectorConvention",
    "DetectorPivot",
    "NoiseConfig",
]


class DetectorConvention(Enum):
    """Detector coordinate conventions (the C program's ``-mosflm``, ``-xds``, …)."""

    MOSFLM = "mosflm"
    XDS = "xds"
    DIALS = "dials"
    ADXV = "adxv"
    DENZO = "denzo"
    CUSTOM = "custom"


class DetectorPivot(Enum):
    """What stays fixed when the detector is rotated (``-pivot beam|sample``)."""

    BEAM = "beam"
    SAMPLE = "sample"


class CrystalShape(Enum):
    """Spot shape: the lattice transform's model of the crystal's outline."""

    SQUARE = "square"  # parallelepiped: product of sincg (C default)
    ROUND = "round"  # ellipsoid: sinc3
    GAUSS = "gauss"  # Gaussian in reciprocal space
    TOPHAT = "tophat"  # flat-top spots


# The C program's default fluence (photons/m²).
C_DEFAULT_FLUENCE = 125932015286227086360700780544.0


def _plain_number(x: Any) -> Optional[float]:
    """``x`` as a float when it is a plain Python/NumPy number, else None."""
    if isinstance(x, bool):
        return None
    if isinstance(x, (int, float)):
        return float(x)
    try:
        import numpy as np

        if isinstance(x, np.generic) or (isinstance(x, np.ndarray) and x.ndim == 0):
            return float(x)
    except Exception:  # pragma: no cover - numpy is a dependency
        pass
    return None


@dataclass
class CrystalConfig:
    """Unit cell, orientation, size and spot shape of the crystal.

    Units: cell lengths Å, angles and rotations degrees, N_cells unit cells.
    ``mosflm_a_star/b_star/c_star`` (Å⁻¹) give the orientation directly (the C
    program's ``-mat``; the cell constants are then derived from them).
    """

    cell_a: Any = 100.0
    cell_b: Any = 100.0
    cell_c: Any = 100.0
    cell_alpha: Any = 90.0
    cell_beta: Any = 90.0
    cell_gamma: Any = 90.0

    # Static orientation: rotations about x, then y, then z (deg).
    misset_deg: Any = (0.0, 0.0, 0.0)
    misset_random: bool = False
    misset_seed: Optional[int] = None

    # Orientation from a MOSFLM matrix (reciprocal vectors, Å⁻¹).
    mosflm_a_star: Any = None
    mosflm_b_star: Any = None
    mosflm_c_star: Any = None

    # Spindle.
    phi_start_deg: Any = 0.0
    osc_range_deg: Any = 0.0
    phi_steps: Optional[int] = None  # port: 1; None = the C program's rule
    spindle_axis: Any = None  # port: (0, 0, 1); None = the convention's axis

    # Mosaicity.
    mosaic_spread_deg: Any = 0.0
    mosaic_domains: Optional[int] = None  # port: 1; None = the C program's rule
    mosaic_seed: Optional[int] = None  # None = the C program's -12345678

    # Size and structure factors.
    N_cells: Any = (1, 1, 1)
    default_F: Any = 0.0

    shape: CrystalShape = CrystalShape.SQUARE
    fudge: Any = 1.0

    # Sample size (m), derived from N_cells and the cell as in the port (informational).
    sample_x: Any = None
    sample_y: Any = None
    sample_z: Any = None

    # Fields that no computation reads (the torch bridge leaves them alone).
    _inert_fields = frozenset({"sample_x", "sample_y", "sample_z"})

    def __post_init__(self):
        if isinstance(self.shape, str):
            self.shape = CrystalShape(self.shape.lower())
        try:
            n = self.N_cells
            self.sample_x = n[0] * self.cell_a * 1e-10
            self.sample_y = n[1] * self.cell_b * 1e-10
            self.sample_z = n[2] * self.cell_c * 1e-10
        except Exception:  # exotic values (e.g. a tensor N_cells): leave as given
            pass


@dataclass
class DetectorConfig:
    """Detector geometry in the port's units: mm, degrees, µm, pixels.

    ``beam_center_s`` / ``beam_center_f`` (mm) are the slow / fast coordinates of the
    detector point that the pivot keeps fixed: the direct-beam spot (BEAM pivot) or
    the point nearest the sample (SAMPLE pivot).  As in the port, the MOSFLM
    convention adds half a pixel to both (the C program's Fbeam = Ybeam + ½pixel,
    Sbeam = Xbeam + ½pixel, i.e. ``beam_center_s`` is MOSFLM's Xbeam and
    ``beam_center_f`` its Ybeam).  Left as None they get the C program's defaults for
    the convention.
    """

    distance_mm: Any = 100.0
    pixel_size_mm: Any = 0.1
    close_distance_mm: Any = None

    spixels: int = 1024
    fpixels: int = 1024

    beam_center_s: Any = None
    beam_center_f: Any = None
    beam_center_source: Literal["auto", "explicit"] = "auto"

    detector_rotx_deg: Any = 0.0
    detector_roty_deg: Any = 0.0
    detector_rotz_deg: Any = 0.0

    detector_twotheta_deg: Any = 0.0
    twotheta_axis: Any = None  # None = the convention's axis

    detector_convention: DetectorConvention = DetectorConvention.MOSFLM
    detector_pivot: Optional[DetectorPivot] = None  # None = the C program's rule

    oversample: int = -1  # -1 = automatic, as the C program chooses it
    oversample_omega: bool = False
    oversample_polar: bool = False
    oversample_thick: bool = False

    curved_detector: bool = False
    point_pixel: bool = False

    pix0_override_m: Any = None  # the C program's -pix0_vector (m)

    custom_fdet_vector: Any = None
    custom_sdet_vector: Any = None
    custom_odet_vector: Any = None
    custom_beam_vector: Any = None

    detector_abs_um: Any = None  # attenuation depth (µm); None = 1/thickness (C)
    detector_thick_um: Any = 0.0
    detector_thicksteps: Optional[int] = None  # port: 1; None = the C program's rule

    roi_xmin: Optional[int] = None
    roi_xmax: Optional[int] = None
    roi_ymin: Optional[int] = None
    roi_ymax: Optional[int] = None

    mask_array: Any = None  # (spixels, fpixels), 0 = skip the pixel

    def __post_init__(self):
        if isinstance(self.detector_convention, str):
            self.detector_convention = DetectorConvention(self.detector_convention.lower())
        if isinstance(self.detector_pivot, str):
            self.detector_pivot = DetectorPivot(self.detector_pivot.lower())
        if self.spixels <= 0 or self.fpixels <= 0:
            raise ValueError("Pixel counts must be positive")
        d = _plain_number(self.distance_mm)
        if d is not None and d <= 0:
            raise ValueError("Distance must be positive")
        p = _plain_number(self.pixel_size_mm)
        if p is not None and p <= 0:
            raise ValueError("Pixel size must be positive")
        if self.oversample < -1 or self.oversample == 0:
            raise ValueError("Oversample must be -1 (auto-select) or >= 1")
        conv = self.effective_convention()
        if conv != DetectorConvention.CUSTOM:
            # Fill in what the C program decides from the convention, as the port shows it.
            if self.detector_pivot is None:
                self.detector_pivot = (DetectorPivot.SAMPLE if conv in (DetectorConvention.XDS, DetectorConvention.DIALS)
                                       else DetectorPivot.BEAM)
            if self.twotheta_axis is None:
                from ._arrays import as_output

                self.twotheta_axis = as_output(TWOTHETA_AXES[conv]) if _torch_results() \
                    else TWOTHETA_AXES[conv]
                # a filled-in default is not a user's input: it decides neither torch-or-JAX
                # results nor gradients (compat._torch_bridge skips it while it is unchanged)
                self._auto_filled = {"twotheta_axis": self.twotheta_axis}
        if self.beam_center_s is None or self.beam_center_f is None:
            default_s, default_f = self.default_beam_center()
            if self.beam_center_s is None:
                self.beam_center_s = default_s
            if self.beam_center_f is None:
                self.beam_center_f = default_f
        if self.roi_xmin is None:
            self.roi_xmin = 0
        if self.roi_xmax is None:
            self.roi_xmax = self.fpixels - 1
        if self.roi_ymin is None:
            self.roi_ymin = 0
        if self.roi_ymax is None:
            self.roi_ymax = self.spixels - 1
        for name, value, hi in (("roi_xmin", self.roi_xmin, self.fpixels), ("roi_xmax", self.roi_xmax, self.fpixels),
                                ("roi_ymin", self.roi_ymin, self.spixels), ("roi_ymax", self.roi_ymax, self.spixels)):
            if value < 0 or value >= hi:
                raise ValueError(f"{name} must be in [0, {hi - 1}]")
        if self.roi_xmin > self.roi_xmax:
            raise ValueError("roi_xmin must be <= roi_xmax")
        if self.roi_ymin > self.roi_ymax:
            raise ValueError("roi_ymin must be <= roi_ymax")
        if self.mask_array is not None:
            shape = tuple(getattr(self.mask_array, "shape", ()))
            if shape != (self.spixels, self.fpixels):
                raise ValueError(
                    f"Mask array shape {shape} must match detector dimensions ({self.spixels}, {self.fpixels})")

    @classmethod
    def from_cli_args(cls, distance_mm: Any = None, close_distance_mm: Any = None, pivot: Optional[str] = None,
                      **kwargs) -> "DetectorConfig":
        """A config from the values of ``-distance``, ``-close_distance`` and ``-pivot``
        (None = flag not given), with the C program's rules: ``-close_distance`` alone also
        sets the distance (the C parser's ``-distance`` substring match), an explicit
        ``-pivot`` wins, and otherwise the pivot is left to the convention (the C program's
        MOSFLM/DENZO/ADXV blocks choose BEAM even after ``-close_distance``; the port
        chooses SAMPLE there — docs/migration.md)."""
        if distance_mm is None and close_distance_mm is not None:
            distance_mm = close_distance_mm
        if distance_mm is not None:
            kwargs["distance_mm"] = distance_mm
        if close_distance_mm is not None:
            kwargs["close_distance_mm"] = close_distance_mm
        if pivot is not None:
            kwargs["detector_pivot"] = DetectorPivot(str(pivot).lower())
        return cls(**kwargs)

    # -- helpers ---------------------------------------------------------------
    def uses_custom_vectors(self) -> bool:
        """True when a basis/beam vector or pix0 is given (the C program then uses CUSTOM)."""
        return any(v is not None for v in (self.custom_fdet_vector, self.custom_sdet_vector,
                                            self.custom_odet_vector, self.custom_beam_vector,
                                            self.pix0_override_m))

    def effective_convention(self) -> DetectorConvention:
        """The convention the C program would use for this configuration."""
        if self.uses_custom_vectors() or self.should_use_custom_convention():
            return DetectorConvention.CUSTOM
        return self.detector_convention

    def should_use_custom_convention(self) -> bool:
        """True when ``twotheta_axis`` differs from the convention's axis (C: CUSTOM)."""
        if self.twotheta_axis is None or self.detector_convention == DetectorConvention.CUSTOM:
            return False
        import numpy as np

        from ._values import concrete

        axis = concrete(self.twotheta_axis)
        if axis is None:
            return True  # an axis without a value (inside jax.jit): treat it as custom
        axis = np.asarray(axis, dtype=np.float64).reshape(3)
        default = np.asarray(TWOTHETA_AXES[self.detector_convention], dtype=np.float64)
        return not bool(np.all(np.abs(axis - default) < 1e-6))

    def default_beam_center(self) -> tuple[Any, Any]:
        """(beam_center_s, beam_center_f) in mm that the C program uses by default."""
        px = self.pixel_size_mm
        det_s = self.spixels * px
        det_f = self.fpixels * px
        conv = self.effective_convention()
        if conv in (DetectorConvention.MOSFLM, DetectorConvention.DENZO):
            # Xbeam = (detsize_s + pixel)/2 → beam_center_s; Ybeam = (detsize_f + pixel)/2.
            return (det_s + px) / 2.0, (det_f + px) / 2.0
        if conv == DetectorConvention.ADXV:
            # Xbeam = (detsize_f + pixel)/2 → fast; Ybeam = (detsize_s − pixel)/2, slow flipped.
            return det_s - (det_s - px) / 2.0, (det_f + px) / 2.0
        # XDS, DIALS, CUSTOM: the detector centre.
        return det_s / 2.0, det_f / 2.0

    def beam_center_is_default(self) -> bool:
        """True when the beam centre was not chosen by the user (value equals the default)."""
        from ._values import concrete_float

        if self.beam_center_source == "explicit":
            return False
        s, f = concrete_float(self.beam_center_s), concrete_float(self.beam_center_f)
        if s is None or f is None:
            return False
        ds, df = self.default_beam_center()
        ds, df = concrete_float(ds), concrete_float(df)
        if ds is None or df is None:
            return False
        return abs(s - ds) <= 1e-12 * max(1.0, abs(ds)) and abs(f - df) <= 1e-12 * max(1.0, abs(df))


def _torch_results() -> bool:
    from ._arrays import torch_by_default

    return torch_by_default()


# 2θ axes of the conventions (the C program's defaults).
TWOTHETA_AXES = {
    DetectorConvention.MOSFLM: (0.0, 0.0, -1.0),
    DetectorConvention.DENZO: (0.0, 0.0, -1.0),
    DetectorConvention.XDS: (1.0, 0.0, 0.0),
    DetectorConvention.DIALS: (0.0, 1.0, 0.0),
    DetectorConvention.ADXV: (-1.0, 0.0, 0.0),
    DetectorConvention.CUSTOM: (0.0, 1.0, 0.0),
}


@dataclass
class BeamConfig:
    """The incident beam: wavelength (Å), fluence (photons/m²), polarisation, sources.

    ``source_directions`` (N×3, from the sample toward each source) and
    ``source_wavelengths`` (N, metres) give an explicit source list, as the C
    program's ``-sourcefile``; ``source_weights`` are accepted and, as in the C
    program, not used.
    """

    wavelength_A: Any = 1.0

    N_source_points: int = 1
    source_distance_mm: float = 10000.0
    source_size_mm: float = 0.0

    source_directions: Any = None
    source_weights: Any = None
    source_wavelengths: Any = None

    polarization_factor: Any = 0.0  # Kahn factor (C default 0)
    nopolar: bool = False
    polarization_axis: Any = None  # port: (0, 0, 1); None = the convention's E-vector

    flux: float = 0.0
    exposure: float = 0.0
    beamsize_mm: float = 0.0
    fluence: Any = C_DEFAULT_FLUENCE

    dmin: Any = 0.0  # Å; 0 = no cutoff
    water_size_um: Any = 0.0

    # Fields that no computation reads (fluence already holds flux·exposure/beamsize²).
    _inert_fields = frozenset({"N_source_points", "source_distance_mm", "source_size_mm", "source_weights",
                               "flux", "exposure", "beamsize_mm"})

    def __post_init__(self):
        # None = not given (the port's scripts pass dmin=None for "no cutoff").
        if self.dmin is None:
            self.dmin = 0.0
        if self.water_size_um is None:
            self.water_size_um = 0.0
        # fluence = flux·exposure/beamsize² when all three are given (the C program's rule).
        if self.flux != 0 and self.exposure > 0 and self.beamsize_mm >= 0:
            beamsize_m = self.beamsize_mm / 1000.0
            if beamsize_m > 0:
                self.fluence = self.flux * self.exposure / (beamsize_m * beamsize_m)
        elif self.exposure > 0 and self.beamsize_mm > 0:
            f = _plain_number(self.fluence)
            if f is not None and f > 0:
                beamsize_m = self.beamsize_mm / 1000.0
                self.flux = f * beamsize_m * beamsize_m / self.exposure


@dataclass
class NoiseConfig:
    """Noise-image settings (as in the port; the image from ``Simulator.run`` is noiseless)."""

    seed: Optional[int] = None
    adc_offset: float = 40.0
    readout_noise: float = 3.0
    overload_value: float = 65535.0
    generate_noise_image: bool = False
    intfile_scale: float = 1.0
