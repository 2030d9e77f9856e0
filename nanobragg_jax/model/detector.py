"""The detector: one or more flat panels of square pixels, and the sensor.

Two ways to place a panel:

* ``NanoBraggPanel`` — the C program's geometry: a convention (MOSFLM, XDS, …),
  a pivot, the distance, the beam centre, detector rotations and 2θ.  These stay
  leaves, so ``jax.grad`` reaches distance, beam centre and rotations, and a
  detector built this way renders exactly as the equivalent command-line flags.
* ``Panel`` — a plain panel: origin (lab frame, mm) = outer corner of pixel
  (0, 0), unit fast and slow axes; pixel (f, s) centre = origin + (f+½)·px·fast +
  (s+½)·px·slow.  Lowered through the CUSTOM convention with the BEAM pivot:
  origin = −Xbeam·fast − Ybeam·slow + distance·beam is solved for
  (Xbeam, Ybeam, distance).

Units: mm for distances, beam centres, origins and pixel sizes; deg for angles;
µm for the sensor thickness and attenuation depth.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence, Union

import numpy as np

from ._pytree import as_array, as_scalar, as_vector, concrete, model_class, require, set_field, static

CONVENTIONS = ("CUSTOM", "ADXV", "MOSFLM", "XDS", "DIALS", "DENZO")
PIVOTS = ("SAMPLE", "BEAM")

# Lab-frame vectors each convention fixes, as the C program sets them:
# beam, fdet, sdet, odet, twotheta_axis, polar, spindle.
CONVENTION_VECTORS = {
    "ADXV": ((0, 0, 1), (1, 0, 0), (0, -1, 0), (0, 0, 1), (-1, 0, 0), (1, 0, 0), (1, 0, 0)),
    "MOSFLM": ((1, 0, 0), (0, 0, 1), (0, -1, 0), (1, 0, 0), (0, 0, -1), (0, 0, 1), (0, 0, 1)),
    "DENZO": ((1, 0, 0), (0, 0, 1), (0, -1, 0), (1, 0, 0), (0, 0, -1), (0, 0, 1), (0, 0, 1)),
    "XDS": ((0, 0, 1), (1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 0, 0), (1, 0, 0), (1, 0, 0)),
    "DIALS": ((0, 0, 1), (1, 0, 0), (0, 1, 0), (0, 0, 1), (0, 1, 0), (0, 1, 0), (0, 1, 0)),
    # The C program's initial values, kept by CUSTOM for every vector not given.
    "CUSTOM": ((1, 0, 0), (0, 0, 1), (0, -1, 0), (1, 0, 0), (0, 1, 0), (0, 0, 1), (0, 0, 1)),
}
_VECTOR_INDEX = {"beam": 0, "fast": 1, "fast_axis": 1, "slow": 2, "slow_axis": 2, "normal": 3,
                 "twotheta_axis": 4, "polar": 5, "spindle": 6}


def convention_vector(convention: str, which: str) -> np.ndarray:
    """The lab-frame vector (float64) that ``convention`` gives to ``which``
    (beam, fast, slow, normal, twotheta_axis, polar, spindle)."""
    return np.asarray(CONVENTION_VECTORS[convention][_VECTOR_INDEX[which]], np.float64)


def default_pivot(convention: str) -> str:
    """XDS and DIALS pivot about the sample, the others about the beam spot."""
    return "SAMPLE" if convention in ("XDS", "DIALS") else "BEAM"


def _pixels(owner: str, n_fast: Any, n_slow: Any) -> tuple[int, int]:
    nf, ns = int(n_fast), int(n_slow)
    if nf < 1 or ns < 1:
        raise ValueError(f"{owner}.n_fast and n_slow must be ≥ 1 pixel, got ({nf}, {ns})")
    return nf, ns


def _check_roi(owner: str, roi: Any, nf: int, ns: int) -> Optional[tuple]:
    if roi is None:
        return None
    roi = tuple(int(v) for v in roi)
    if len(roi) != 4:
        raise ValueError(f"{owner}.roi must be (fast_min, fast_max, slow_min, slow_max)")
    fmin, fmax, smin, smax = roi
    if fmax < fmin or smax < smin:
        raise ValueError(f"{owner}.roi needs fast_min ≤ fast_max and slow_min ≤ slow_max, got {roi}")
    if fmin > nf - 1 or smin > ns - 1 or fmax < 0 or smax < 0:
        raise ValueError(f"{owner}.roi {roi} lies entirely off the {nf}×{ns} panel")
    return roi


def _check_mask(owner: str, mask: Any, nf: int, ns: int) -> Any:
    if mask is None:
        return None
    mask = as_array(owner, "mask", mask, 2)
    if tuple(getattr(mask, "shape", (ns, nf))) != (ns, nf):
        raise ValueError(f"{owner}.mask must have shape (n_slow, n_fast) = ({ns}, {nf}), "
                         f"got {tuple(mask.shape)}")
    return mask


@model_class
class Panel:
    """A flat panel placed by its corner and axes.

    Attributes (defaults in brackets):
      origin: (3,) lab position (mm) of the outer corner of pixel (0, 0).
      fast_axis, slow_axis: (3,) directions of increasing fast / slow pixel index
        (unitised inside; must not be parallel).
      n_fast, n_slow: pixel counts (static).
      pixel_size: pixel edge (mm, > 0).  [0.1]
      mask: (n_slow, n_fast) array, 0 = pixel not rendered; None renders all.  [None]
      roi: inclusive (fast_min, fast_max, slow_min, slow_max) window to render
        (static); None = the whole panel.  [None]
    """

    origin: Any
    fast_axis: Any
    slow_axis: Any
    n_fast: int = static(1024)
    n_slow: int = static(1024)
    pixel_size: Any = 0.1
    mask: Any = None
    roi: Optional[tuple] = static(None)

    def __post_init__(self) -> None:
        nf, ns = _pixels("Panel", self.n_fast, self.n_slow)
        set_field(self, "n_fast", nf)
        set_field(self, "n_slow", ns)
        for name in ("origin", "fast_axis", "slow_axis"):
            set_field(self, name, as_vector("Panel", name, getattr(self, name)))
        require("Panel", "origin", self.origin, lambda a: True, "finite")
        for name in ("fast_axis", "slow_axis"):
            require("Panel", name, getattr(self, name), lambda a: np.any(a != 0), "a non-zero vector")
        f, s = concrete(self.fast_axis), concrete(self.slow_axis)
        if f is not None and s is not None:
            n = np.cross(f / np.linalg.norm(f), s / np.linalg.norm(s))
            if np.linalg.norm(n) < 1e-6:
                raise ValueError("Panel.fast_axis and Panel.slow_axis must not be parallel")
        set_field(self, "pixel_size", as_scalar("Panel", "pixel_size", self.pixel_size))
        require("Panel", "pixel_size", self.pixel_size, lambda a: a > 0, "positive (mm)")
        set_field(self, "mask", _check_mask("Panel", self.mask, nf, ns))
        set_field(self, "roi", _check_roi("Panel", self.roi, nf, ns))


@model_class
class NanoBraggPanel:
    """One panel placed as the C program places its detector.

    Attributes (defaults in brackets):
      convention: "MOSFLM", "XDS", "DIALS", "ADXV", "DENZO" or "CUSTOM" (static):
        the lab frame's axes and how the beam centre is read.  ["MOSFLM"]
      pivot: "BEAM" (the beam spot stays at the beam centre when rotating) or
        "SAMPLE" (the near point stays put) (static); None = the convention's
        (SAMPLE for XDS and DIALS).  [None]
      n_fast, n_slow: pixel counts (static).  [1024, 1024]
      pixel_size: pixel edge (mm, > 0).  [0.1]
      distance: sample to beam spot along the beam (mm, ≠ 0).  [100]
      close_distance: sample to detector plane (mm) fixing the geometry instead of
        ``distance``, or None.  [None]
      beam_center: (Xbeam, Ybeam) (mm) in the convention's own axes (MOSFLM: Xbeam
        along slow, + ½ pixel); None = the convention's default centre.  [None]
      close_center: (Fclose, Sclose) (mm) of the near point (SAMPLE pivot);
        None = the panel centre.  [None]
      rotations: (3,) detector rotations about lab x, y, z (deg), applied in that
        order before 2θ.  [0, 0, 0]
      twotheta: detector swing about ``twotheta_axis`` (deg).  [0]
      twotheta_axis, fast_axis, slow_axis, normal: (3,) before the rotations;
        None = the convention's.  [None]
      mask, roi: as for ``Panel``.  [None]
    """

    convention: str = static("MOSFLM")
    pivot: Optional[str] = static(None)
    n_fast: int = static(1024)
    n_slow: int = static(1024)
    pixel_size: Any = 0.1
    distance: Any = 100.0
    close_distance: Any = None
    beam_center: Any = None
    close_center: Any = None
    rotations: Any = (0.0, 0.0, 0.0)
    twotheta: Any = 0.0
    twotheta_axis: Any = None
    fast_axis: Any = None
    slow_axis: Any = None
    normal: Any = None
    mask: Any = None
    roi: Optional[tuple] = static(None)

    def __post_init__(self) -> None:
        conv = str(self.convention).upper()
        if conv not in CONVENTIONS:
            raise ValueError(f"NanoBraggPanel.convention must be one of {list(CONVENTIONS)}, got {self.convention!r}")
        set_field(self, "convention", conv)
        pivot = default_pivot(conv) if self.pivot is None else str(self.pivot).upper()
        if pivot not in PIVOTS:
            raise ValueError(f"NanoBraggPanel.pivot must be 'beam' or 'sample', got {self.pivot!r}")
        set_field(self, "pivot", pivot)
        nf, ns = _pixels("NanoBraggPanel", self.n_fast, self.n_slow)
        set_field(self, "n_fast", nf)
        set_field(self, "n_slow", ns)
        set_field(self, "pixel_size", as_scalar("NanoBraggPanel", "pixel_size", self.pixel_size))
        require("NanoBraggPanel", "pixel_size", self.pixel_size, lambda a: a > 0, "positive (mm)")
        set_field(self, "distance", as_scalar("NanoBraggPanel", "distance", self.distance))
        require("NanoBraggPanel", "distance", self.distance, lambda a: a != 0, "non-zero (mm)")
        if self.close_distance is not None:
            set_field(self, "close_distance", as_scalar("NanoBraggPanel", "close_distance", self.close_distance))
            require("NanoBraggPanel", "close_distance", self.close_distance, lambda a: True, "finite")
        px = concrete(self.pixel_size)
        if self.close_center is None:
            if px is None:
                raise ValueError("NanoBraggPanel.close_center must be given when pixel_size is traced")
            set_field(self, "close_center", np.array([px * nf / 2.0, px * ns / 2.0]))
        set_field(self, "close_center", as_vector("NanoBraggPanel", "close_center", self.close_center, 2))
        if self.beam_center is None:
            if px is None:
                raise ValueError("NanoBraggPanel.beam_center must be given when pixel_size is traced")
            set_field(self, "beam_center", default_beam_center(conv, nf, ns, float(px), self.close_center))
        set_field(self, "beam_center", as_vector("NanoBraggPanel", "beam_center", self.beam_center, 2))
        for name in ("beam_center", "close_center", "rotations"):
            require("NanoBraggPanel", name, getattr(self, name), lambda a: True, "finite")
        set_field(self, "rotations", as_vector("NanoBraggPanel", "rotations", self.rotations))
        set_field(self, "twotheta", as_scalar("NanoBraggPanel", "twotheta", self.twotheta))
        require("NanoBraggPanel", "twotheta", self.twotheta, lambda a: True, "finite")
        for name in ("twotheta_axis", "fast_axis", "slow_axis", "normal"):
            v = getattr(self, name)
            if v is None:
                if name == "normal" and conv == "CUSTOM":
                    continue  # fast × slow, formed when lowering
                v = convention_vector(conv, name)
            set_field(self, name, as_vector("NanoBraggPanel", name, v))
            require("NanoBraggPanel", name, getattr(self, name), lambda a: np.any(a != 0), "a non-zero vector")
        set_field(self, "mask", _check_mask("NanoBraggPanel", self.mask, nf, ns))
        set_field(self, "roi", _check_roi("NanoBraggPanel", self.roi, nf, ns))


def default_beam_center(convention: str, n_fast: int, n_slow: int, pixel_size: float,
                        close_center: Any = None) -> np.ndarray:
    """The C program's default (Xbeam, Ybeam) in mm: the detector centre, read in the
    convention's axes (MOSFLM/DENZO swap and add ½ pixel, ADXV flips slow, the others
    take the near point)."""
    size_f, size_s = pixel_size * n_fast, pixel_size * n_slow
    if convention == "ADXV":
        return np.array([(size_f + pixel_size) / 2.0, (size_s - pixel_size) / 2.0])
    if convention in ("MOSFLM", "DENZO"):
        return np.array([(size_s + pixel_size) / 2.0, (size_f + pixel_size) / 2.0])
    if close_center is not None and concrete(close_center) is not None:
        return np.asarray(concrete(close_center), np.float64)
    return np.array([size_f / 2.0, size_s / 2.0])


@model_class
class Sensor:
    """The sensor layer that absorbs the photons.

    Attributes (defaults in brackets):
      thickness: sensor thickness (µm, ≥ 0); 0 = every photon counted at the
        front face.  [0]
      attenuation_depth: 1/μ (µm, > 0); None = the thickness (the C program's
        default).  [None]
      layers: depth layers sampled (static, ≥ 1).  [1]
      layer_divisor: layer thickness = thickness / layer_divisor (static); None =
        ``layers``.  The command line divides by layers − 1 when ``-thicksteps`` is
        given and by 2 otherwise (its rule, kept for parity).  [None]
    """

    thickness: Any = 0.0
    attenuation_depth: Any = None
    layers: int = static(1)
    layer_divisor: Optional[float] = static(None)

    def __post_init__(self) -> None:
        set_field(self, "thickness", as_scalar("Sensor", "thickness", self.thickness))
        require("Sensor", "thickness", self.thickness, lambda a: a >= 0, "≥ 0 (µm)")
        if self.attenuation_depth is not None:
            set_field(self, "attenuation_depth", as_scalar("Sensor", "attenuation_depth", self.attenuation_depth))
            require("Sensor", "attenuation_depth", self.attenuation_depth, lambda a: a > 0, "positive (µm)")
        if int(self.layers) < 1:
            raise ValueError(f"Sensor.layers must be ≥ 1, got {self.layers}")
        set_field(self, "layers", int(self.layers))
        if self.layer_divisor is not None:
            if not float(self.layer_divisor) > 0:
                raise ValueError(f"Sensor.layer_divisor must be positive, got {self.layer_divisor}")
            set_field(self, "layer_divisor", float(self.layer_divisor))


AnyPanel = Union[Panel, NanoBraggPanel]


@model_class
class Detector:
    """A detector: its panels, the sensor, and how pixels are sampled.

    Attributes (defaults in brackets):
      panels: tuple of ``Panel`` or ``NanoBraggPanel`` (one or more).
      sensor: ``Sensor``, or None for an infinitely thin one.  [None]
      oversample: sub-pixels per pixel edge (static, ≥ 1).  The command line
        chooses it automatically; ``recommended_oversample(model)`` gives that
        choice.  [1]
      oversample_thick, oversample_polar, oversample_omega: recompute the capture
        fraction / polarisation / solid angle for every sub-pixel instead of once
        per pixel (static; the C program's flags of the same names).  [False]
      point_pixel: solid angle 1/R² without obliquity (static).  [False]
      curved: every pixel at the same distance from the sample (static).  [False]
    """

    panels: tuple
    sensor: Optional[Sensor] = None
    oversample: int = static(1)
    oversample_thick: bool = static(False)
    oversample_polar: bool = static(False)
    oversample_omega: bool = static(False)
    point_pixel: bool = static(False)
    curved: bool = static(False)

    def __post_init__(self) -> None:
        panels = self.panels
        if isinstance(panels, (Panel, NanoBraggPanel)):
            panels = (panels,)
        panels = tuple(panels)
        if not panels:
            raise ValueError("Detector.panels must hold at least one panel")
        for p in panels:
            if not isinstance(p, (Panel, NanoBraggPanel)):
                raise ValueError(f"Detector.panels must hold Panel or NanoBraggPanel values, got {type(p).__name__}")
        set_field(self, "panels", panels)
        if self.sensor is not None and not isinstance(self.sensor, Sensor):
            raise ValueError("Detector.sensor must be a Sensor (or None)")
        if int(self.oversample) < 1:
            raise ValueError(f"Detector.oversample must be ≥ 1, got {self.oversample}")
        set_field(self, "oversample", int(self.oversample))
        for name in ("oversample_thick", "oversample_polar", "oversample_omega", "point_pixel", "curved"):
            set_field(self, name, bool(getattr(self, name)))

    @classmethod
    def nanobragg(cls, convention: str = "MOSFLM", distance: Any = 100.0, beam_center: Any = None,
                  pixels: Union[int, Sequence[int]] = 1024, pixel_size: Any = 0.1, *,
                  pivot: Optional[str] = None, close_distance: Any = None, close_center: Any = None,
                  rotations: Any = (0.0, 0.0, 0.0), twotheta: Any = 0.0, twotheta_axis: Any = None,
                  fast_axis: Any = None, slow_axis: Any = None, normal: Any = None,
                  mask: Any = None, roi: Optional[tuple] = None, **detector: Any) -> "Detector":
        """A one-panel detector in the C program's geometry (see ``NanoBraggPanel``).

        Args:
          convention: "MOSFLM", "XDS", "DIALS", "ADXV", "DENZO" or "CUSTOM".
          distance: sample to beam spot (mm).
          beam_center: (Xbeam, Ybeam) mm in the convention's axes; None = centred.
          pixels: pixel count, or (n_fast, n_slow).
          pixel_size: pixel edge (mm).
          detector: ``Detector`` fields (sensor, oversample, point_pixel, …).
        """
        nf, ns = (pixels, pixels) if np.ndim(pixels) == 0 else tuple(pixels)  # type: ignore[misc]
        panel = NanoBraggPanel(convention=convention, pivot=pivot, n_fast=nf, n_slow=ns,
                               pixel_size=pixel_size, distance=distance, close_distance=close_distance,
                               beam_center=beam_center, close_center=close_center, rotations=rotations,
                               twotheta=twotheta, twotheta_axis=twotheta_axis, fast_axis=fast_axis,
                               slow_axis=slow_axis, normal=normal, mask=mask, roi=roi)
        return cls(panels=(panel,), **detector)

    @classmethod
    def mosflm(cls, distance: Any = 100.0, beam_center: Any = None, pixels: Union[int, Sequence[int]] = 1024,
               pixel_size: Any = 0.1, **kw: Any) -> "Detector":
        """MOSFLM convention (beam +x; beam centre (Xbeam, Ybeam) along slow, fast, + ½ pixel)."""
        return cls.nanobragg("MOSFLM", distance, beam_center, pixels, pixel_size, **kw)

    @classmethod
    def xds(cls, distance: Any = 100.0, beam_center: Any = None, pixels: Union[int, Sequence[int]] = 1024,
            pixel_size: Any = 0.1, **kw: Any) -> "Detector":
        """XDS convention (beam +z, fast +x, slow +y; sample pivot; beam centre = near point)."""
        return cls.nanobragg("XDS", distance, beam_center, pixels, pixel_size, **kw)

    @classmethod
    def dials(cls, distance: Any = 100.0, beam_center: Any = None, pixels: Union[int, Sequence[int]] = 1024,
              pixel_size: Any = 0.1, **kw: Any) -> "Detector":
        """DIALS convention (beam +z, fast +x, slow +y, spindle +y; sample pivot)."""
        return cls.nanobragg("DIALS", distance, beam_center, pixels, pixel_size, **kw)

    @classmethod
    def adxv(cls, distance: Any = 100.0, beam_center: Any = None, pixels: Union[int, Sequence[int]] = 1024,
             pixel_size: Any = 0.1, **kw: Any) -> "Detector":
        """ADXV convention (beam +z, fast +x, slow −y; Ybeam measured from the far edge)."""
        return cls.nanobragg("ADXV", distance, beam_center, pixels, pixel_size, **kw)

    @classmethod
    def denzo(cls, distance: Any = 100.0, beam_center: Any = None, pixels: Union[int, Sequence[int]] = 1024,
              pixel_size: Any = 0.1, **kw: Any) -> "Detector":
        """DENZO convention (MOSFLM's frame, beam centre without the ½-pixel shift)."""
        return cls.nanobragg("DENZO", distance, beam_center, pixels, pixel_size, **kw)

    @property
    def n_panels(self) -> int:
        return len(self.panels)
