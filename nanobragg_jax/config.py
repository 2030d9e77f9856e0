"""The two halves of a simulation's configuration: static ``Setup`` and pytree ``Params``.

``Setup`` holds everything that fixes array shapes or control flow (pixel counts,
sampling counts, convention, pivot, spot shape, flags).  It is a frozen, hashable
dataclass passed to ``jax.jit`` as a static argument: changing it recompiles.

``Params`` holds every continuous quantity in user units (Å, mm, deg, µm, mrad,
percent) as arrays.  It is a registered pytree, so ``jax.grad``, ``jax.vmap`` and
``jax.jit`` see through it; conversion to SI happens inside the kernels.

``Experiment`` bundles both with the host-side facts the CLI needs (file names,
output options, the printed summary).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any, Sequence

import jax
import numpy as np
from jax import Array

# Detector conventions and pivots, as the C program names them.
CONVENTIONS = ("CUSTOM", "ADXV", "MOSFLM", "XDS", "DIALS", "DENZO")
PIVOTS = ("SAMPLE", "BEAM")
SHAPES = ("SQUARE", "ROUND", "GAUSS", "TOPHAT")


@dataclass(frozen=True)
class Setup:
    """Static description of a simulation (hashable; a ``jit`` static argument).

    Attributes:
      spixels, fpixels: detector size in pixels (slow, fast).
      roi: inclusive pixel window (fmin, fmax, smin, smax) actually rendered.
      oversample: sub-pixels per pixel edge.
      thicksteps: detector sensor layers; ``thick_divisor`` gives the layer
        thickness as thickness/divisor (the C program divides by steps−1 when
        the step count is given, by the count otherwise).
      phisteps, mosaic_domains: spindle ticks and mosaic domains.
      source_mode: "generated" (divergence × dispersion grid) or "file".
      div_tics: kept (hdiv_tic, vdiv_tic) pairs of the divergence raster.
      hdiv_divisor, vdiv_divisor: step = range/divisor, or 0 to use the given step.
      dispsteps, disp_divisor: wavelength ticks; dispersion step = range/divisor.
      n_sources: number of sources (div_tics × dispsteps, or file rows).
      convention, pivot: detector convention and pivot (see CONVENTIONS, PIVOTS).
      close_distance_given: whether a close distance fixes the geometry.
      orientation: "cell" (cell constants) or "matrix" (reciprocal matrix).
      shape: spot shape (see SHAPES).
      interpolate: tricubic structure-factor interpolation (with the C fallback).
      has_hkl: whether a structure-factor grid is present (C's hkls > 0).
      hkl_min: (h_min, k_min, l_min) of the grid; hkl_max likewise.
      oversample_thick/_polar/_omega: recompute that factor per sub-path and
        multiply the running sum by it (the C program's loop-order semantics).
      point_pixel, curved_detector, nopolar: geometry switches.
      use_dmin, has_water, has_mask, has_thickness: cheap static switches.
      tile_pixels: pixels per tile (memory bound of the kernel), 0 = automatic.
      odet_given: whether ``Params.odet`` is the detector normal (the C program keeps a
        unit-length normal from a convention or -odet_vector); otherwise the normal is
        fdet × sdet and ``Params.odet`` is unused.
      weighted_sources: multiply each source's sub-paths by its weight
        (``Params.source_weights``; see ``kernel.source_weight_factors``).  Our
        extension: the C program reads the weights and ignores them (False).
    """

    spixels: int = 1024
    fpixels: int = 1024
    roi: tuple[int, int, int, int] = (0, 1023, 0, 1023)
    oversample: int = 1
    thicksteps: int = 1
    thick_divisor: float = 1.0
    phisteps: int = 1
    mosaic_domains: int = 1
    source_mode: str = "generated"
    div_tics: tuple[tuple[int, int], ...] = ((0, 0),)
    hdiv_divisor: float = 0.0
    vdiv_divisor: float = 0.0
    dispsteps: int = 1
    disp_divisor: float = 0.0
    n_sources: int = 1
    convention: str = "MOSFLM"
    pivot: str = "BEAM"
    close_distance_given: bool = False
    orientation: str = "cell"
    shape: str = "SQUARE"
    interpolate: bool = False
    has_hkl: bool = False
    hkl_min: tuple[int, int, int] = (0, 0, 0)
    hkl_max: tuple[int, int, int] = (0, 0, 0)
    oversample_thick: bool = False
    oversample_polar: bool = False
    oversample_omega: bool = False
    point_pixel: bool = False
    curved_detector: bool = False
    nopolar: bool = False
    use_dmin: bool = False
    has_water: bool = False
    has_mask: bool = False
    has_thickness: bool = False
    tile_pixels: int = 0
    odet_given: bool = False
    # shots branch: per-source weights (False = the C program's unweighted sum)
    weighted_sources: bool = False

    def __post_init__(self) -> None:
        # Invariants of the static description (ValueError naming the field).
        for name in ("spixels", "fpixels", "oversample", "thicksteps", "phisteps", "mosaic_domains",
                     "dispsteps", "n_sources"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"Setup.{name} must be ≥ 1, got {getattr(self, name)}")
        if self.convention not in CONVENTIONS:
            raise ValueError(f"Setup.convention must be one of {CONVENTIONS}, got {self.convention!r}")
        if self.pivot not in PIVOTS:
            raise ValueError(f"Setup.pivot must be one of {PIVOTS}, got {self.pivot!r}")
        if self.shape not in SHAPES:
            raise ValueError(f"Setup.shape must be one of {SHAPES}, got {self.shape!r}")
        if self.source_mode not in ("generated", "file"):
            raise ValueError(f"Setup.source_mode must be 'generated' or 'file', got {self.source_mode!r}")
        if len(self.div_tics) < 1:
            raise ValueError("Setup.div_tics must keep at least one divergence raster point")
        if any(h < 0 or v < 0 for h, v in self.div_tics):
            raise ValueError("Setup.div_tics must hold non-negative (h, v) raster indices")
        if self.source_mode == "generated" and self.n_sources != len(self.div_tics) * self.dispsteps:
            raise ValueError(f"Setup.n_sources ({self.n_sources}) must equal the kept divergence points "
                             f"({len(self.div_tics)}) × dispsteps ({self.dispsteps})")
        if self.thick_divisor <= 0:
            raise ValueError(f"Setup.thick_divisor must be positive, got {self.thick_divisor}")
        if len(self.roi) != 4:
            raise ValueError("Setup.roi must be (fmin, fmax, smin, smax)")
        fmin, fmax, smin, smax = self.roi
        if fmax < fmin or smax < smin:
            raise ValueError(f"Setup.roi needs fmin ≤ fmax and smin ≤ smax, got {self.roi}")
        if fmin > self.fpixels - 1 or smin > self.spixels - 1 or fmax < 0 or smax < 0:
            raise ValueError(f"Setup.roi {self.roi} lies entirely off the {self.fpixels}×{self.spixels} detector")
        if any(lo > hi for lo, hi in zip(self.hkl_min, self.hkl_max)):
            raise ValueError(f"Setup.hkl_min {self.hkl_min} must not exceed hkl_max {self.hkl_max}")
        if self.tile_pixels < 0:
            raise ValueError(f"Setup.tile_pixels must be ≥ 0, got {self.tile_pixels}")

    def check_params(self, params: "Params") -> None:
        """Check that the shapes of ``params`` fit this setup (shapes only: safe under tracing).

        Raises ValueError naming the field: the F grid against the HKL range (the C
        program's padded grid is one larger than the range on each axis), the mosaic
        draws against the domain count, file sources against the source count, the
        mask against the detector.
        """
        def shape(x):
            return tuple(np.shape(x))

        if self.has_hkl:
            # The C program's grid carries one zero layer past hkl_max; the kernel never
            # reads it, so a grid of exactly the index range is accepted too.
            want = tuple(hi - lo + 1 for lo, hi in zip(self.hkl_min, self.hkl_max))
            got = shape(params.F_grid)
            if len(got) != 3 or any(g not in (w, w + 1) for g, w in zip(got, want)):
                raise ValueError(f"Params.F_grid has shape {got}; Setup.hkl_min/hkl_max "
                                 f"{self.hkl_min}..{self.hkl_max} need {tuple(w + 1 for w in want)} "
                                 f"(with the C padding layer) or {want}")
        D = self.mosaic_domains
        if shape(params.mosaic_axes) != (D, 3) or shape(params.mosaic_caps) != (D,):
            raise ValueError(f"Params.mosaic_axes/mosaic_caps must have shapes ({D}, 3)/({D},) for "
                             f"Setup.mosaic_domains = {D}")
        if self.source_mode == "file":
            n = self.n_sources
            if shape(params.source_dirs) != (n, 3) or shape(params.source_wavelengths) != (n,):
                raise ValueError(f"Params.source_dirs/source_wavelengths must have shapes ({n}, 3)/({n},) "
                                 f"for Setup.n_sources = {n}")
        if self.has_mask and shape(params.mask) != (self.spixels, self.fpixels):
            raise ValueError(f"Params.mask has shape {shape(params.mask)}, the detector is "
                             f"({self.spixels}, {self.fpixels})")

    def keeping(self, names: Sequence[str]) -> "Setup":
        """This setup with only the fields ``names`` kept, every other one at its default.

        A program that reads only those fields is compiled once for every setup that agrees on
        them (``kernel.context_setup``, ``experiment.geometry_key``).  Without ``spixels`` or
        ``fpixels`` the default detector (and its full ROI) stands in.
        """
        kept = {n: getattr(self, n) for n in names}
        spixels, fpixels = kept.get("spixels", Setup.spixels), kept.get("fpixels", Setup.fpixels)
        kept.setdefault("roi", (0, fpixels - 1, 0, spixels - 1))
        return Setup(**kept)

    @property
    def n_subpixels(self) -> int:
        return self.oversample * self.oversample

    @property
    def steps(self) -> int:
        """The C program's normalisation: sources·domains·φ steps·oversample²."""
        return self.n_sources * self.mosaic_domains * self.phisteps * self.oversample**2

    @property
    def subpaths_per_pixel(self) -> int:
        return self.thicksteps * self.steps


def _pytree_dataclass(cls):
    cls = dataclass(frozen=True)(cls)
    names = [f.name for f in fields(cls)]
    return jax.tree_util.register_dataclass(cls, data_fields=names, meta_fields=[])


@_pytree_dataclass
class Params:
    """Continuous parameters of a simulation, in user units (a frozen pytree of arrays).

    Crystal: ``cell`` (a, b, c Å; α, β, γ deg), ``recip_matrix`` (3×3, Å⁻¹,
    columns a*, b*, c*; used when ``Setup.orientation == "matrix"``), ``misset``
    (deg, about x then y then z), ``N`` (cells along a, b, c; floats), ``fudge``,
    ``default_F``, ``F_grid`` (dense structure factors incl. the C padding).
    Spindle: ``phi0``, ``phistep`` (deg).  Mosaicity: ``mosaic_spread`` (deg) with
    the fixed random draws ``mosaic_axes`` (D×3 unit vectors) and ``mosaic_caps``
    (D, the spherical-cap fraction: angle = spread·cap).
    Detector: ``distance`` and ``close_distance`` (mm), ``beam_center`` (Xbeam,
    Ybeam mm), ``close_center`` (Fclose, Sclose mm; sample pivot), ``pixel_size``
    (mm), ``detector_rotation`` (deg about x, y, z), ``twotheta`` (deg),
    basis vectors ``fdet``, ``sdet``, ``odet``, ``beam_vector``, ``polar_vector``,
    ``spindle_axis``, ``twotheta_axis`` (unitless, unitised inside),
    ``thickness`` and ``attenuation_depth`` (µm), ``mask`` (S×F, 0 = skip).
    Beam: ``wavelength`` (Å), ``dispersion`` (percent), ``hdivrange``,
    ``vdivrange``, ``hdivstep``, ``vdivstep`` (mrad), ``source_dirs`` (n×3,
    toward the source) and ``source_wavelengths`` (Å) for file sources,
    ``kahn_factor``, ``fluence`` (photons/m²).  Other: ``water_size`` (µm),
    ``dmin`` (Å).
    Weights: ``source_weights`` (S,), the relative intensity of each source
    (unitless, ≥ 0, not all 0); used only when ``Setup.weighted_sources``.
    """

    cell: Array
    recip_matrix: Array
    misset: Array
    N: Array
    fudge: Array
    default_F: Array
    F_grid: Array
    phi0: Array
    phistep: Array
    mosaic_spread: Array
    mosaic_axes: Array
    mosaic_caps: Array
    distance: Array
    close_distance: Array
    beam_center: Array
    close_center: Array
    pixel_size: Array
    detector_rotation: Array
    twotheta: Array
    fdet: Array
    sdet: Array
    odet: Array
    beam_vector: Array
    polar_vector: Array
    spindle_axis: Array
    twotheta_axis: Array
    thickness: Array
    attenuation_depth: Array
    mask: Array
    wavelength: Array
    dispersion: Array
    hdivrange: Array
    vdivrange: Array
    hdivstep: Array
    vdivstep: Array
    source_dirs: Array
    source_wavelengths: Array
    kahn_factor: Array
    fluence: Array
    water_size: Array
    dmin: Array
    # shots branch: per-source weights, read only when Setup.weighted_sources
    source_weights: Array = field(default_factory=lambda: np.ones((1,)))

    def replace(self, **changes: Any) -> "Params":
        """A copy with some fields replaced (values are converted lazily by JAX)."""
        return replace(self, **changes)

    def zeroing(self, names: Sequence[str]) -> "Params":
        """A copy with the leaves ``names`` replaced by a float zero of shape () (in the dtype
        of ``wavelength``): the arguments of a program that does not read them, so that it is
        compiled once for all their shapes (see ``Setup.keeping``)."""
        zero = np.zeros((), jax.numpy.result_type(self.wavelength))
        return replace(self, **{name: zero for name in names})

    def keeping(self, names: Sequence[str]) -> "Params":
        """A copy with only the leaves ``names`` kept, every other one zeroed (``zeroing``)."""
        return self.zeroing([f.name for f in fields(self) if f.name not in names])

    def astype(self, dtype: Any) -> "Params":
        """Cast every floating field to ``dtype`` (e.g. jnp.float32)."""
        def cast(x):
            x = np.asarray(x) if not isinstance(x, jax.Array) else x
            return x.astype(dtype) if np.issubdtype(x.dtype, np.floating) else x
        return jax.tree_util.tree_map(cast, self)


@dataclass
class Experiment:
    """What ``from_cli_args`` returns: the static ``setup``, the ``params`` pytree,
    and host-side facts for the command line (outputs, seeds, printed summary)."""

    setup: Setup
    params: Params
    options: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)
    log: list = field(default_factory=list)
    model: Any = None  # the nanobragg_jax.model.Model the flags describe
