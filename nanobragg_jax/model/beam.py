"""The incident beam: wavelength or spectrum, divergence, polarisation, fluence.

Units: wavelength Å, dispersion percent (Δλ/λ), divergence mrad, fluence
photons/m² (or flux photons/s × exposure s / beam size² mm²).
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from ._pytree import as_array, as_scalar, as_vector, concrete, model_class, require, set_field, static

DEFAULT_FLUENCE = 125932015286227086360700780544.0  # photons/m², the C program's default


@model_class
class Divergence:
    """Beam divergence sampled on a raster of point sources (mrad).

    Attributes:
      h_range, v_range: full horizontal / vertical divergence (mrad, ≥ 0).
      h_steps, v_steps: raster points along each direction (static, ≥ 1).
      h_step, v_step: angle between raster points (mrad); None = range/(steps − 1),
        which keeps the raster differentiable in the range.  [None]
      round: keep only the raster points inside the ellipse of the two ranges
        (static; the C program's default, ``-square_div`` turns it off).  [True]

    Horizontal tilts are about beam × polarisation, vertical about the
    polarisation axis; point (i, j) sits at (i·h_step − h_range/2, j·v_step − v_range/2).
    """

    h_range: Any = 0.0
    v_range: Any = 0.0
    h_steps: int = static(1)
    v_steps: int = static(1)
    h_step: Any = None
    v_step: Any = None
    round: bool = static(True)

    def __post_init__(self) -> None:
        for name in ("h_range", "v_range"):
            set_field(self, name, as_scalar("Divergence", name, getattr(self, name)))
            require("Divergence", name, getattr(self, name), lambda a: a >= 0, "≥ 0 (mrad)")
        for axis in ("h", "v"):
            steps = int(getattr(self, f"{axis}_steps"))
            if steps < 1:
                raise ValueError(f"Divergence.{axis}_steps must be ≥ 1, got {steps}")
            set_field(self, f"{axis}_steps", steps)
            step = getattr(self, f"{axis}_step")
            if step is not None:
                set_field(self, f"{axis}_step", as_scalar("Divergence", f"{axis}_step", step))
                require("Divergence", f"{axis}_step", getattr(self, f"{axis}_step"), lambda a: a >= 0, "≥ 0 (mrad)")
            else:
                rng = concrete(getattr(self, f"{axis}_range"))
                if steps == 1 and rng is not None and rng > 0:
                    raise ValueError(f"Divergence.{axis}_steps must be ≥ 2 when {axis}_range > 0 "
                                     f"(or give {axis}_step)")
        set_field(self, "round", bool(self.round))

    @classmethod
    def square(cls, range_mrad: float, steps: int, round: bool = True) -> "Divergence":
        """The same range and raster points horizontally and vertically (``-divergence``, ``-divsteps``)."""
        return cls(h_range=range_mrad, v_range=range_mrad, h_steps=steps, v_steps=steps, round=round)


@model_class
class Spectrum:
    """An explicit list of point sources: wavelengths, optional directions and weights.

    Attributes:
      wavelengths: (n,) Å, each > 0.
      directions: (n, 3) vectors from the sample toward each source (any length),
        or None for all along the beam.  [None]
      weights: (n,) relative weights (≥ 0, not all 0), or None for the C program's
        unweighted sum (it reads the weight column of ``-sourcefile`` and ignores it).
        Given weights switch on the weighted-source kernel: the image is then
        Σᵢ wᵢ·image(λᵢ) / Σᵢ wᵢ (see ``kernel.source_weight_factors``).  [None]
    """

    wavelengths: Any
    directions: Any = None
    weights: Any = None

    def __post_init__(self) -> None:
        set_field(self, "wavelengths", as_array("Spectrum", "wavelengths", self.wavelengths, 1))
        n = getattr(self.wavelengths, "shape", (1,))[0]
        if n < 1:
            raise ValueError("Spectrum.wavelengths must hold at least one wavelength")
        require("Spectrum", "wavelengths", self.wavelengths, lambda a: a > 0, "positive (Å)")
        if self.directions is not None:
            set_field(self, "directions", as_array("Spectrum", "directions", self.directions, 2))
            if tuple(getattr(self.directions, "shape", (n, 3))) != (n, 3):
                raise ValueError(f"Spectrum.directions must have shape ({n}, 3)")
            require("Spectrum", "directions", self.directions,
                    lambda a: np.any(a != 0, axis=1), "non-zero vectors (a source at the sample)")
        if self.weights is not None:
            set_field(self, "weights", as_array("Spectrum", "weights", self.weights, 1))
            if tuple(getattr(self.weights, "shape", (n,))) != (n,):
                raise ValueError(f"Spectrum.weights must have shape ({n},)")
            require("Spectrum", "weights", self.weights, lambda a: a >= 0, "≥ 0")


@model_class
class Beam:
    """The incident X-ray beam.

    Attributes (defaults in brackets):
      wavelength: central wavelength λ0 (Å, > 0).  [1]
      direction: (3,) propagation direction in the lab frame (unitised inside), or
        None for the detector convention's beam (MOSFLM/DENZO/CUSTOM +x,
        XDS/DIALS/ADXV +z).  [None]
      polarization_axis: (3,) E-vector direction, or None for the convention's.  [None]
      kahn_factor: Kahn polarisation factor (0 unpolarised, 1 fully polarised
        along ``polarization_axis``).  [0]
      apply_polarization: multiply by the polarisation factor (static; False is
        the command line's ``-nopolar``).  [True]
      fluence: integrated incident photons per m² (finite, ≥ 0); see ``from_flux``.
        [1.259e29]
      dispersion: spectral width Δλ/λ (percent, ≥ 0), sampled by
        ``dispersion_steps`` wavelengths λ0·(1 + k·Δ/(steps − 1) − Δ/2).  [0]
      dispersion_steps: wavelengths across the dispersion (static, ≥ 1).  [1]
      divergence: ``Divergence`` raster of source directions, or None.  [None]
      spectrum: ``Spectrum`` list of sources, or None; when given it replaces the
        dispersion × divergence raster (the command line's ``-sourcefile``).  [None]
    """

    wavelength: Any = 1.0
    direction: Any = None
    polarization_axis: Any = None
    kahn_factor: Any = 0.0
    apply_polarization: bool = static(True)
    fluence: Any = DEFAULT_FLUENCE
    dispersion: Any = 0.0
    dispersion_steps: int = static(1)
    divergence: Optional[Divergence] = None
    spectrum: Optional[Spectrum] = None

    def __post_init__(self) -> None:
        set_field(self, "wavelength", as_scalar("Beam", "wavelength", self.wavelength))
        require("Beam", "wavelength", self.wavelength, lambda a: a > 0, "positive (Å)")
        for name in ("direction", "polarization_axis"):
            v = getattr(self, name)
            if v is not None:
                set_field(self, name, as_vector("Beam", name, v))
                require("Beam", name, getattr(self, name), lambda a: np.any(a != 0), "a non-zero vector")
        set_field(self, "kahn_factor", as_scalar("Beam", "kahn_factor", self.kahn_factor))
        require("Beam", "kahn_factor", self.kahn_factor, lambda a: True, "finite")
        set_field(self, "apply_polarization", bool(self.apply_polarization))
        set_field(self, "fluence", as_scalar("Beam", "fluence", self.fluence))
        require("Beam", "fluence", self.fluence, lambda a: a >= 0, "≥ 0 (photons/m²)")
        set_field(self, "dispersion", as_scalar("Beam", "dispersion", self.dispersion))
        require("Beam", "dispersion", self.dispersion, lambda a: (a >= 0) & (a < 200), "in [0, 200) percent")
        if int(self.dispersion_steps) < 1:
            raise ValueError(f"Beam.dispersion_steps must be ≥ 1, got {self.dispersion_steps}")
        set_field(self, "dispersion_steps", int(self.dispersion_steps))
        d = concrete(self.dispersion)
        if self.dispersion_steps == 1 and d is not None and d > 0:
            raise ValueError("Beam.dispersion_steps must be ≥ 2 when dispersion > 0")
        if self.divergence is not None and not isinstance(self.divergence, Divergence):
            raise ValueError("Beam.divergence must be a Divergence (or None)")
        if self.spectrum is not None and not isinstance(self.spectrum, Spectrum):
            raise ValueError("Beam.spectrum must be a Spectrum (or None)")

    @classmethod
    def from_flux(cls, flux: float, exposure: float, beam_size_mm: float, **kw: Any) -> "Beam":
        """A beam whose fluence is flux·exposure/beam_size² (photons/s, s, mm → photons/m²)."""
        size = beam_size_mm * 1e-3
        if not size > 0:
            raise ValueError("Beam.from_flux: beam_size_mm must be positive")
        return cls(fluence=flux * exposure / size / size, **kw)
