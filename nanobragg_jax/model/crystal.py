"""The sample: unit cell or orientation matrix, size in unit cells, spot shape,
structure factors, and mosaicity.

Units: cell lengths Å, angles deg, orientation matrix Å⁻¹, misset deg, crystal
size in unit cells (floats) or mm (``Crystal.with_size``), structure factors in
electrons (|F|), mosaic spread deg.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np

from ._pytree import as_array, as_scalar, as_vector, concrete, model_class, require, set_field, static

SPOT_SHAPES = ("SQUARE", "ROUND", "GAUSS", "TOPHAT")
DEFAULT_MOSAIC_SEED = -12345678  # the C program's mosaic_seed variable


@model_class
class StructureFactors:
    """A dense table of structure-factor amplitudes |F(h, k, l)| (electrons).

    Attributes:
      F: array of shape (h_range, k_range, l_range); ``F[h - h_min, k - k_min,
        l - l_min]`` is the amplitude of reflection (h, k, l).  Differentiable.
      hkl_min: (h_min, k_min, l_min) of ``F[0, 0, 0]`` (static).

    Reflections outside the table get ``Crystal.default_F``.  The kernel adds the
    C program's zero padding layer on the high side when lowering.
    """

    F: Any
    hkl_min: tuple = static((0, 0, 0))

    def __post_init__(self) -> None:
        set_field(self, "F", as_array("StructureFactors", "F", self.F, 3))
        mins = tuple(int(v) for v in self.hkl_min)
        if len(mins) != 3:
            raise ValueError("StructureFactors.hkl_min must be three integers (h, k, l)")
        set_field(self, "hkl_min", mins)
        if any(n < 1 for n in getattr(self.F, "shape", (1, 1, 1))):
            raise ValueError("StructureFactors.F must hold at least one reflection")
        require("StructureFactors", "F", self.F, lambda a: True, "finite")

    @property
    def hkl_max(self) -> tuple[int, int, int]:
        """(h_max, k_max, l_max): the last index present on each axis."""
        return tuple(m + n - 1 for m, n in zip(self.hkl_min, self.F.shape))  # type: ignore[return-value]

    @classmethod
    def from_table(cls, hkl: Any, F: Any, default_F: float = 0.0) -> "StructureFactors":
        """Build the dense table from a reflection list.

        Args:
          hkl: (n, 3) integer Miller indices.
          F: (n,) amplitudes (electrons).  A repeated hkl keeps its last value.
          default_F: amplitude of the table's cells that no listed reflection fills
            (as the C program's ``-default_F`` does for an HKL file).
        """
        idx = np.asarray(hkl)
        amps = np.asarray(F, np.float64).reshape(-1)
        if idx.ndim != 2 or idx.shape[1] != 3 or idx.shape[0] != amps.shape[0] or idx.shape[0] == 0:
            raise ValueError("StructureFactors.from_table: hkl must be (n, 3) and F (n,), n ≥ 1")
        if not np.all(np.asarray(idx, np.float64) == np.round(np.asarray(idx, np.float64))):
            raise ValueError("StructureFactors.from_table: Miller indices must be integers")
        idx = idx.astype(np.int64)
        mins = idx.min(axis=0)
        shape = tuple(idx.max(axis=0) - mins + 1)
        grid = np.full(shape, float(default_F), np.float64)
        rel = idx - mins
        grid[rel[:, 0], rel[:, 1], rel[:, 2]] = amps
        return cls(F=grid, hkl_min=tuple(int(m) for m in mins))

    @classmethod
    def from_file(cls, path: str, default_F: float = 0.0) -> "StructureFactors":
        """Read a text ``h k l F`` file (the ``-hkl`` format) or an ``Fdump.bin`` cache."""
        from ..io import hkl as hkl_io

        with open(path, "rb") as fh:
            head = fh.read(256)
        data = hkl_io.read_fdump(path) if b"\f" in head else hkl_io.read_hkl(path, default_F=default_F)
        return cls.from_grid(data)

    @classmethod
    def from_grid(cls, data: Any) -> "StructureFactors":
        """From ``io.hkl.HKLData`` (the C program's padded grid; the padding is dropped)."""
        return cls(F=np.asarray(data.grid, np.float64)[:-1, :-1, :-1], hkl_min=tuple(data.mins))


def _check_cell(cell: np.ndarray) -> None:
    if np.any(cell[:3] <= 0):
        raise ValueError(f"Crystal.cell lengths a, b, c must be positive (Å), got {cell[:3].tolist()}")
    if np.any(cell[3:] <= 0) or np.any(cell[3:] >= 180):
        raise ValueError(f"Crystal.cell angles α, β, γ must lie in (0, 180) deg, got {cell[3:].tolist()}")
    ca, cb, cg = np.cos(np.deg2rad(cell[3:]))
    if 1.0 - ca * ca - cb * cb - cg * cg + 2.0 * ca * cb * cg <= 1e-12:
        raise ValueError(f"Crystal.cell angles {cell[3:].tolist()} describe no parallelepiped")


@model_class
class Crystal:
    """A perfect-lattice nanocrystal.

    Attributes (defaults in brackets):
      cell: (6,) a, b, c (Å), α, β, γ (deg) — or None when ``orientation`` is given.
        The cell is placed in the standard setting (a* along x, b* in the xy plane)
        and then rotated by ``misset``.
      orientation: (3, 3) reciprocal-space orientation matrix A = U·B (Å⁻¹), columns
        a*, b*, c* in the lab frame; wins over ``cell`` when both are given.
        (A MOSFLM ``.mat`` file holds A·λ: divide by the wavelength in Å.)  [None]
      misset: (3,) rotations about lab x, then y, then z (deg) applied to the
        lattice at φ = 0.  [0, 0, 0]
      N: (3,) crystal size in unit cells along a, b, c (floats > 0; a scalar is
        used for all three).  [1, 1, 1]
      default_F: amplitude of every reflection not in ``structure_factors``
        (electrons).  [0]
      structure_factors: ``StructureFactors`` table, or None.  [None]
      fudge: scale of the spot-shape radius (dimensionless).  [1]
      shape: spot shape (static): "square" (parallelepiped, sincg), "round"
        (sphere, sinc3), "gauss", "tophat".  ["square"]
      interpolate: tricubic interpolation of F between reflections (static).
        The command line switches it on when any N ≤ 2; here it is explicit.  [False]

    A crystal needs structure factors: ``default_F ≠ 0`` or a table.
    """

    cell: Any = None
    orientation: Any = None
    misset: Any = (0.0, 0.0, 0.0)
    N: Any = (1.0, 1.0, 1.0)
    default_F: Any = 0.0
    structure_factors: Optional[StructureFactors] = None
    fudge: Any = 1.0
    shape: str = static("square")
    interpolate: bool = static(False)

    def __post_init__(self) -> None:
        if self.cell is None and self.orientation is None:
            raise ValueError("Crystal needs a unit cell: give cell=(a, b, c, α, β, γ) or an orientation matrix")
        if self.cell is not None:
            set_field(self, "cell", as_vector("Crystal", "cell", self.cell, 6))
            c = concrete(self.cell)
            if c is not None:
                require("Crystal", "cell", c, lambda a: True, "finite")
                _check_cell(c)
        if self.orientation is not None:
            set_field(self, "orientation", as_array("Crystal", "orientation", self.orientation, 2))
            if tuple(getattr(self.orientation, "shape", (3, 3))) != (3, 3):
                raise ValueError("Crystal.orientation must be a 3×3 matrix (columns a*, b*, c*; Å⁻¹)")
            require("Crystal", "orientation", self.orientation,
                    lambda a: abs(np.linalg.det(a)) > 0, "a non-singular matrix")
        set_field(self, "misset", as_vector("Crystal", "misset", self.misset))
        require("Crystal", "misset", self.misset, lambda a: True, "finite")
        set_field(self, "N", as_vector("Crystal", "N", self.N))
        require("Crystal", "N", self.N, lambda a: a > 0, "positive (unit cells)")
        set_field(self, "default_F", as_scalar("Crystal", "default_F", self.default_F))
        require("Crystal", "default_F", self.default_F, lambda a: True, "finite")
        set_field(self, "fudge", as_scalar("Crystal", "fudge", self.fudge))
        require("Crystal", "fudge", self.fudge, lambda a: a > 0, "positive")
        shape = str(self.shape).upper()
        if shape not in SPOT_SHAPES:
            raise ValueError(f"Crystal.shape must be one of {[s.lower() for s in SPOT_SHAPES]}, got {self.shape!r}")
        set_field(self, "shape", shape)
        set_field(self, "interpolate", bool(self.interpolate))
        if self.structure_factors is not None and not isinstance(self.structure_factors, StructureFactors):
            raise ValueError("Crystal.structure_factors must be a StructureFactors table (or None)")
        F0 = concrete(self.default_F)
        if self.structure_factors is None and F0 is not None and F0 == 0.0:
            raise ValueError("Crystal needs structure factors: default_F must be non-zero "
                             "when no structure_factors table is given")

    def with_size(self, size_mm: Any) -> "Crystal":
        """The same crystal with N = ceil(size / cell length) along a, b, c.

        Args:
          size_mm: crystal edge lengths (mm) along a, b, c (a scalar for all three).
        The C program's ``-xtalsize`` rule; N is at least 1.  Host-side (not traced).
        """
        size = np.broadcast_to(np.asarray(size_mm, np.float64), (3,)) * 1e-3
        lengths = self.cell_lengths() * 1e-10
        N = [max(float(math.ceil(s / L)), 1.0) if s > 0 else float(n)
             for s, L, n in zip(size, lengths, np.broadcast_to(concrete(self.N), (3,)))]
        return self.replace(N=np.asarray(N))

    def cell_lengths(self) -> np.ndarray:
        """|a|, |b|, |c| (Å) of the real-space lattice, as the kernel builds it (float64)."""
        if self.orientation is not None:
            recip = np.asarray(concrete(self.orientation)).T  # rows a*, b*, c*
            real = np.linalg.inv(recip).T  # rows a, b, c with a·a* = 1
            return np.sqrt(np.sum(real * real, axis=1))
        # the kernel forces |a|, |b|, |c| to the given lengths (misset keeps them)
        return np.asarray(concrete(self.cell))[:3].copy()


@model_class
class Mosaicity:
    """Isotropic mosaic spread, sampled by a fixed set of mosaic domains.

    Attributes:
      spread: mosaic spread (deg, ≥ 0).  Differentiable: each domain is rotated by
        spread·cap about its own fixed random axis.  [0]
      domains: number of domains (static).  [10]
      seed: seed of the C program's ran1 stream that draws the domain axes and caps
        (static; the value the C variable holds: ``-mosaic_seed N`` gives −N).
        [−12345678]
      axes: (domains, 3) unit rotation axes; drawn from ``seed`` when None.
      caps: (domains,) spherical-cap fractions in [0, 1]; domain 0 is the
        unrotated crystal (cap 0), as in the C program.  Drawn when None.
    """

    spread: Any = 0.0
    domains: int = static(10)
    seed: int = static(DEFAULT_MOSAIC_SEED)
    axes: Any = None
    caps: Any = None

    def __post_init__(self) -> None:
        set_field(self, "spread", as_scalar("Mosaicity", "spread", self.spread))
        require("Mosaicity", "spread", self.spread, lambda a: a >= 0, "≥ 0 (deg)")
        if int(self.domains) < 1:
            raise ValueError(f"Mosaicity.domains must be ≥ 1, got {self.domains}")
        set_field(self, "domains", int(self.domains))
        set_field(self, "seed", int(self.seed))
        if (self.axes is None) != (self.caps is None):
            raise ValueError("Mosaicity: give both axes and caps, or neither (then they are drawn from seed)")
        if self.axes is None:
            from ..rng import mosaic_domain_draws

            axes, caps = mosaic_domain_draws(0.0, self.domains, self.seed)
            set_field(self, "axes", np.asarray(axes, np.float64).reshape(self.domains, 3))
            set_field(self, "caps", np.asarray(caps, np.float64).reshape(self.domains))
        set_field(self, "axes", as_array("Mosaicity", "axes", self.axes, 2))
        set_field(self, "caps", as_array("Mosaicity", "caps", self.caps, 1))
        if tuple(getattr(self.axes, "shape", (self.domains, 3))) != (self.domains, 3):
            raise ValueError(f"Mosaicity.axes must have shape ({self.domains}, 3)")
        if tuple(getattr(self.caps, "shape", (self.domains,))) != (self.domains,):
            raise ValueError(f"Mosaicity.caps must have shape ({self.domains},)")
        require("Mosaicity", "caps", self.caps, lambda a: (a >= 0) & (a <= 1), "in [0, 1]")
        require("Mosaicity", "axes", self.axes, lambda a: True, "finite")
