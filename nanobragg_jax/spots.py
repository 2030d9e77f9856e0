"""Spot prediction: which Bragg reflections a model produces, and where they land.

For a still shot the crystal is taken at the centre of its φ range and with no
mosaic rotation (the mosaic domains scatter about it).  With the incident unit
vector î, the wavelength λ, and the scattering vector of reflection (h, k, l)

    q = h a* + k b* + l c*          (Å⁻¹; rows of the reciprocal matrix),

the Ewald sphere (centre −s₀, radius 1/λ, s₀ = î/λ) passes through q exactly
when |s₀ + q| = 1/λ.  A finite crystal has spots of width ~1/N in h, so
reflections near the sphere diffract too.  The prediction uses

    excitation error   ε = |s₀ + q| − 1/λ            (Å⁻¹, signed; > 0 outside),
    diffracted ray     ŝ = (s₀ + q)/|s₀ + q|,

ŝ being the direction to the point of the sphere nearest to q — where a
smooth spot profile of the reciprocal-lattice point peaks on the sphere.  With
several sources (divergence, dispersion, a source file) each reflection takes
the source with the smallest |ε|.

The ray ŝ from the sample meets the detector plane (pix0, fdet, sdet, odet)
at t = (pix0·odet)/(ŝ·odet), t > 0; the spot's position in pixels from the
outer corner of pixel (0, 0) is

    fast = (tŝ − pix0)·fdet / pixel,   slow = (tŝ − pix0)·sdet / pixel,

so the pixel holding it is (⌊slow⌋, ⌊fast⌋) and pixel (s, f) is centred at
(s + ½, f + ½).  Ignored: the parallax of a thick sensor and the curved detector.

This is host-side numpy (the geometry comes from the same JAX functions the
kernel uses): it selects pixels, it is not differentiated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import jax
import numpy as np

from .config import Params, Setup
from .geometry import beam as beam_geo
from .geometry import crystal as crystal_geo
from .geometry import detector as det_geo
from .geometry import vectors as V


@dataclass(frozen=True)
class Spots:
    """Predicted spots (one row per reflection; numpy arrays).

    Attributes:
      hkl: (n, 3) int Miller indices.
      q: (n, 3) scattering vectors, Å⁻¹ (lab frame).
      s: (n, 3) unit diffracted directions ŝ.
      d: (n,) resolution 1/|q|, Å.
      excitation: (n,) signed excitation error ε, Å⁻¹.
      wavelength: (n,) wavelength of the source used, Å.
      slow, fast: (n,) position on the detector in pixels (continuous, from the
        outer corner of pixel (0, 0); NaN if the ray misses the detector plane).
      on_detector: (n,) bool, the position lies inside the spixels × fpixels area.
      F: (n,) structure factor of the reflection (grid value or default_F).
    """

    hkl: np.ndarray
    q: np.ndarray
    s: np.ndarray
    d: np.ndarray
    excitation: np.ndarray
    wavelength: np.ndarray
    slow: np.ndarray
    fast: np.ndarray
    on_detector: np.ndarray
    F: np.ndarray

    def __len__(self) -> int:
        return int(self.hkl.shape[0])

    def select(self, keep: np.ndarray) -> "Spots":
        """The spots where ``keep`` (a bool mask or index array) holds."""
        return Spots(**{k: getattr(self, k)[keep] for k in self.__dataclass_fields__})

    @property
    def pixel(self) -> tuple[np.ndarray, np.ndarray]:
        """(slow, fast) integer indices of the pixel holding each spot (−1 off the detector)."""
        s = np.where(self.on_detector, np.floor(np.nan_to_num(self.slow)), -1).astype(int)
        f = np.where(self.on_detector, np.floor(np.nan_to_num(self.fast)), -1).astype(int)
        return s, f


def _np(x) -> np.ndarray:
    return np.asarray(jax.device_get(x), dtype=np.float64)


def crystal_reciprocal(setup: Setup, params: Params) -> np.ndarray:
    """Reciprocal vectors (rows a*, b*, c*; Å⁻¹) at the centre of the φ range, no mosaic.

    Real vectors are rotated about the spindle by φ_c = φ0 + Δφ·(phisteps − 1)/2
    (the kernel's φ ticks are φ0 + tick·Δφ), and reciprocal vectors rebuilt.
    """
    with jax.default_device(jax.devices("cpu")[0]):
        lat = crystal_geo.lattice(setup, params)
        real = _np(lat.real)
        spindle = _np(V.unitize(np.asarray(params.spindle_axis, np.float64)))
    phi_c = np.deg2rad(float(params.phi0) + float(params.phistep) * (setup.phisteps - 1) / 2.0)
    real = _np(V.rotate_about_axis(real, spindle, phi_c))
    a, b, c = real
    vol = float(np.dot(a, np.cross(b, c)))
    return np.stack([np.cross(b, c), np.cross(c, a), np.cross(a, b)]) / vol


def detector_d_min(setup: Setup, params: Params) -> float:
    """Finest resolution (Å) reached on the detector: at its corners (flat detector), ≥ λ_min/2."""
    frame = det_geo.detector_frame(setup, params)
    pix0, f, s = _np(frame.pix0), _np(frame.fdet), _np(frame.sdet)
    px = float(frame.pixel_size)
    src = beam_geo.sources(setup, params)
    inc, lam = _np(src.incident), _np(src.wavelength) * 1e10
    corners = np.array([pix0 + i * setup.fpixels * px * f + j * setup.spixels * px * s
                        for i in (0, 1) for j in (0, 1)])
    u = corners / np.linalg.norm(corners, axis=1, keepdims=True)
    cos2t = np.clip(u @ inc.T, -1.0, 1.0)  # (4, S)
    stol = np.sqrt((1.0 - cos2t) / 2.0) / lam  # sin θ / λ
    return float(max(1.0 / (2.0 * stol.max()), lam.min() / 2.0))


def default_excitation_cut(setup: Setup, params: Params, recip: np.ndarray) -> float:
    """Default |ε| cut (Å⁻¹): the spot's half-width in reciprocal space, max_i |a*_i|/N_i.

    For the parallelepiped spot, F_latt falls to its first zero at Δh = 1/N along
    each axis, i.e. at |a*|/N in Å⁻¹.
    """
    N = np.maximum(_np(params.N), 1.0)
    return float(np.max(np.linalg.norm(recip, axis=1) / N))


def _hkl_box(recip: np.ndarray, d_min: float) -> np.ndarray:
    """Every (h, k, l) with |q| ≤ 1/d_min, without the origin."""
    real = np.linalg.inv(recip).T  # rows a, b, c (Å): h = a·q
    hmax = np.floor(np.linalg.norm(real, axis=1) / d_min).astype(int)
    grids = np.meshgrid(*[np.arange(-m, m + 1) for m in hmax], indexing="ij")
    hkl = np.stack([g.ravel() for g in grids], axis=1)
    hkl = hkl[np.any(hkl != 0, axis=1)]
    q = hkl @ recip
    return hkl[np.einsum("ij,ij->i", q, q) <= 1.0 / d_min**2]


def predict_spots(setup: Setup, params: Params, d_min: Optional[float] = None,
                  d_max: float = np.inf, max_excitation: Optional[float] = None,
                  use_F_grid: Optional[bool] = None, only_on_detector: bool = True) -> Spots:
    """List the Bragg spots of a still (φ-centre, mosaic-centre crystal) on the detector.

    Args:
      setup, params: the model (any convention/pivot; one detector panel).
      d_min, d_max: resolution range (Å); default d_min: the detector corners.
      max_excitation: keep |ε| ≤ this (Å⁻¹); default ``default_excitation_cut``
        (first zero of the lattice factor).
      use_F_grid: keep only reflections with F ≠ 0 in the HKL grid (default: when
        the setup has one; reflections off the grid then get F = 0); without
        a grid every reflection has F = default_F (none if default_F = 0).
      only_on_detector: drop spots whose ray misses the detector area.
    Returns:
      ``Spots`` sorted by resolution (low angle first).
    """
    recip = crystal_reciprocal(setup, params)
    if d_min is None:
        d_min = detector_d_min(setup, params)
    hkl = _hkl_box(recip, d_min)
    q = hkl @ recip
    qlen = np.linalg.norm(q, axis=1)
    keep = 1.0 / qlen <= d_max
    hkl, q, qlen = hkl[keep], q[keep], qlen[keep]

    # structure factors
    if use_F_grid is None:
        use_F_grid = setup.has_hkl
    if setup.has_hkl:
        lo, hi = np.asarray(setup.hkl_min), np.asarray(setup.hkl_max)
        inside = np.all((hkl >= lo) & (hkl <= hi), axis=1)
        grid = np.asarray(params.F_grid)
        idx = np.clip(hkl - lo, 0, np.asarray(grid.shape) - 1)
        F = np.where(inside, grid[idx[:, 0], idx[:, 1], idx[:, 2]], float(params.default_F))
        if use_F_grid:
            F = np.where(inside, F, 0.0)
    else:
        F = np.full(len(hkl), float(params.default_F))
    keep = F != 0
    hkl, q, qlen, F = hkl[keep], q[keep], qlen[keep], F[keep]

    # Ewald condition, per source; the best source per reflection
    src = beam_geo.sources(setup, params)
    inc, lam = _np(src.incident), _np(src.wavelength) * 1e10  # (S,3), (S,) Å
    s0 = inc / lam[:, None]
    k = s0[None, :, :] + q[:, None, :]  # (n, S, 3)
    klen = np.linalg.norm(k, axis=2)
    eps = klen - 1.0 / lam[None, :]
    best = np.argmin(np.abs(eps), axis=1)
    rows = np.arange(len(hkl))
    eps, lam_b = eps[rows, best], lam[best]
    s_hat = k[rows, best] / klen[rows, best][:, None]
    if max_excitation is None:
        max_excitation = default_excitation_cut(setup, params, recip)
    keep = np.abs(eps) <= max_excitation
    hkl, q, qlen, F, eps, lam_b, s_hat = (x[keep] for x in (hkl, q, qlen, F, eps, lam_b, s_hat))

    # detector intersection
    frame = det_geo.detector_frame(setup, params)
    pix0, fdet, sdet, odet = (_np(getattr(frame, n)) for n in ("pix0", "fdet", "sdet", "odet"))
    px = float(frame.pixel_size)
    denom = s_hat @ odet
    t = np.where(denom > 0, float(pix0 @ odet) / np.where(denom > 0, denom, 1.0), np.nan)
    hit = t[:, None] * s_hat - pix0
    fast = hit @ fdet / px
    slow = hit @ sdet / px
    on = (np.isfinite(t) & (t > 0) & (fast >= 0) & (fast < setup.fpixels) & (slow >= 0)
          & (slow < setup.spixels))
    spots = Spots(hkl=hkl.astype(int), q=q, s=s_hat, d=1.0 / qlen, excitation=eps,
                  wavelength=lam_b, slow=slow, fast=fast, on_detector=on, F=F)
    if only_on_detector:
        spots = spots.select(on)
    return spots.select(np.argsort(-spots.d, kind="stable"))


@dataclass(frozen=True)
class Shoeboxes:
    """Pixels around spots (deduplicated), and which spot each pixel belongs to.

    Attributes:
      slow, fast: (m,) int pixel indices, each pixel listed once.
      spot: (m,) index into the ``Spots`` the boxes were built from: the spot
        whose centre is nearest to the pixel (a pixel in two boxes goes to one).
      n_spots: number of spots (boxes).
    """

    slow: np.ndarray
    fast: np.ndarray
    spot: np.ndarray
    n_spots: int

    def __len__(self) -> int:
        return int(self.slow.shape[0])


def shoeboxes(spots: Spots, setup: Setup, half_size: int = 3) -> Shoeboxes:
    """Square boxes of (2·half_size + 1)² pixels centred on each spot's pixel.

    Boxes are clipped to the detector (and its ROI) and deduplicated; pixels
    are returned in raster order.
    """
    s_c, f_c = spots.pixel
    fmin, fmax, smin, smax = setup.roi
    fmin, smin = max(fmin, 0), max(smin, 0)
    fmax, smax = min(fmax, setup.fpixels - 1), min(smax, setup.spixels - 1)
    off = np.arange(-half_size, half_size + 1)
    ds, df = np.meshgrid(off, off, indexing="ij")
    S = (s_c[:, None] + ds.ravel()[None, :]).ravel()
    F = (f_c[:, None] + df.ravel()[None, :]).ravel()
    owner = np.repeat(np.arange(len(s_c)), off.size**2)
    ok = (S >= smin) & (S <= smax) & (F >= fmin) & (F <= fmax) & (np.repeat(s_c, off.size**2) >= 0)
    S, F, owner = S[ok], F[ok], owner[ok]
    # nearest spot centre for pixels claimed by several boxes
    dist = (S + 0.5 - spots.slow[owner]) ** 2 + (F + 0.5 - spots.fast[owner]) ** 2
    order = np.lexsort((dist, F, S))
    S, F, owner = S[order], F[order], owner[order]
    first = np.ones(len(S), bool)
    first[1:] = (S[1:] != S[:-1]) | (F[1:] != F[:-1])
    return Shoeboxes(slow=S[first].astype(np.int32), fast=F[first].astype(np.int32),
                     spot=owner[first].astype(np.int32), n_spots=len(spots))
