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
(s + ½, f + ½).

A sensor of thickness (``-detector_thick``, T layers of Δ) records the ray where
it crosses each layer, layer t at depth tΔ below the front face (the plane
through pix0 + tΔ·odet): the spot is spread along the ray's projection, and its
centre is where the ray crosses the mean depth

    z̄ = Δ·Σ_t w_t t / Σ_t w_t,   t = (pix0·odet + z̄)/(ŝ·odet),

with the weights the renderer gives the layers: equal, as in the C program
(which multiplies a pixel's sum over layers once, by the capture fraction of
its last layer), or with ``-oversample_thick`` those of its running product
I ← (I + term)·f_t after each of the K sub-paths of a layer: w_t =
(Σ_{m=1..K} f_t^m)·Π_{t'>t} f_t'^K, f_t = exp(−tΔμ/ρ) − exp(−(t+1)Δμ/ρ) the
capture fraction of layer t along the ray, ρ = ŝ·odet.  The shift is z̄·tan of
the ray's angle to odet: pixels at high angle behind a thick sensor.

A curved detector (``-curved_det``) maps the planar position of a pixel onto
the sphere of radius ``distance`` (``geometry.detector.curve_onto_sphere``); the
spot is at the planar coordinates whose image on the sphere lies along ŝ,
found by Gauss–Newton from the flat-detector intersection.

Multi-panel detectors (``panels=``, a ``PanelStack``): each panel is such a
plane (its frame from ``panels.panel_frames``); a ray is assigned to the panel
whose pixel area it crosses — the nearest one (smallest t) where panels
overlap along the ray — and ``Spots.panel`` records it (−1 for none).

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
      on_detector: (n,) bool, the position lies inside the spixels × fpixels area
        (inside a panel's area, for panels).
      F: (n,) structure factor of the reflection (grid value or default_F).
      panel: (n,) int, the panel the spot lands on (0 for the single detector of
        ``setup``; −1 when a multi-panel detector's panels all miss it).
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
    panel: np.ndarray

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


def detector_d_min(setup: Setup, params: Params, panels=None) -> float:
    """Finest resolution (Å) reached on the detector: at its corners (flat detector, or
    every panel of ``panels``), ≥ λ_min/2."""
    if panels is None:
        frame = det_geo.detector_frame(setup, params)
        pix0, f, s = _np(frame.pix0)[None], _np(frame.fdet)[None], _np(frame.sdet)[None]
        ext_f, ext_s = setup.fpixels * float(frame.pixel_size), setup.spixels * float(frame.pixel_size)
    else:
        from .panels import panel_frames

        frames = panel_frames(panels, params)
        pix0, f, s = _np(frames.pix0), _np(frames.fdet), _np(frames.sdet)
        ext_f, ext_s = panels.n_fast * panels.pixel_size * 1e-3, panels.n_slow * panels.pixel_size * 1e-3
    src = beam_geo.sources(setup, params)
    inc, lam = _np(src.incident), _np(src.wavelength) * 1e10
    corners = np.concatenate([pix0 + i * ext_f * f + j * ext_s * s for i in (0, 1) for j in (0, 1)])
    u = corners / np.linalg.norm(corners, axis=1, keepdims=True)
    cos2t = np.clip(u @ inc.T, -1.0, 1.0)  # (corners, S)
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
                  use_F_grid: Optional[bool] = None, only_on_detector: bool = True,
                  panels=None) -> Spots:
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
      panels: a ``PanelStack`` for a multi-panel detector (the detector fields
        of ``params`` are then not used; the default ``d_min`` comes from the
        panels' corners).  ``Spots.panel`` tells where each spot lands;
        positions are in that panel's pixels.
    Returns:
      ``Spots`` sorted by resolution (low angle first).
    """
    recip = crystal_reciprocal(setup, params)
    if d_min is None:
        d_min = detector_d_min(setup, params, panels)
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

    # detector intersection, at the mean depth at which the sensor records each ray
    if panels is None:
        frame = det_geo.detector_frame(setup, params)
        planes = [tuple(_np(getattr(frame, n)) for n in ("pix0", "fdet", "sdet", "odet"))]
        lsetup = setup
        sensors = [_flag_sensor(lsetup, params)]
        px, n_slow, n_fast = float(frame.pixel_size), setup.spixels, setup.fpixels
    else:
        from .panels import panel_constants, panel_setup

        lsetup = panel_setup(setup, panels)
        const = panel_constants(lsetup, params, panels)
        planes = list(zip(*(_np(getattr(const.frame, n)) for n in ("pix0", "fdet", "sdet", "odet"))))
        if const.layer_step is None:
            sensors = [_flag_sensor(lsetup, params)] * len(planes)
        else:
            sensors = list(zip(_np(const.layer_step), _np(const.mu)))
        px, n_slow, n_fast = panels.pixel_size * 1e-3, panels.n_slow, panels.n_fast
    best_t = np.full(len(hkl), np.inf)
    slow = np.full(len(hkl), np.nan)
    fast = np.full(len(hkl), np.nan)
    panel = np.full(len(hkl), -1 if panels is not None else 0)
    on = np.zeros(len(hkl), bool)
    for i, (pix0, fdet, sdet, odet) in enumerate(planes):
        denom = s_hat @ odet
        depth = recorded_depth(lsetup, *sensors[i], s_hat, odet)
        t = np.where(denom > 0, (float(pix0 @ odet) + depth) / np.where(denom > 0, denom, 1.0), np.nan)
        hit = t[:, None] * s_hat - pix0 - depth[:, None] * odet
        f_i, s_i = hit @ fdet / px, hit @ sdet / px
        if panels is None and setup.curved_detector:
            f_i, s_i = _curved_position(frame, s_hat, depth, f_i * px, s_i * px)
            f_i, s_i, t = f_i / px, s_i / px, np.where(np.isfinite(f_i), t, np.nan)
        on_i = (np.isfinite(t) & (t > 0) & (f_i >= 0) & (f_i < n_fast) & (s_i >= 0) & (s_i < n_slow))
        take = on_i & (t < best_t) if panels is not None else np.ones(len(hkl), bool)
        best_t = np.where(take, t, best_t)
        slow, fast = np.where(take, s_i, slow), np.where(take, f_i, fast)
        panel, on = np.where(take, i, panel), on | on_i
    spots = Spots(hkl=hkl.astype(int), q=q, s=s_hat, d=1.0 / qlen, excitation=eps,
                  wavelength=lam_b, slow=slow, fast=fast, on_detector=on, F=F,
                  panel=panel.astype(int))
    if only_on_detector:
        spots = spots.select(on)
    return spots.select(np.argsort(-spots.d, kind="stable"))


def _flag_sensor(setup: Setup, params: Params) -> tuple[float, float]:
    """(layer thickness Δ (m), attenuation μ (1/m)) of the sensor given by the flags."""
    return (float(_np(det_geo.layer_thickness(setup, params))),
            float(_np(det_geo.attenuation_coefficient(params))))


def recorded_depth(setup: Setup, layer_step: float, mu: float, s_hat: np.ndarray,
                   odet: np.ndarray) -> np.ndarray:
    """Mean depth z̄ (m, below the front face) at which the renderer records the rays ŝ (n, 3):
    Δ·Σ_t w_t t / Σ_t w_t over the sensor's layers, the weights equal (the C program's single
    capture factor per pixel) or, with ``-oversample_thick``, those of the C program's
    running products of each layer's capture fraction along the ray
    (``geometry.detector.capture_fraction``).  0 without a sensor or with one
    layer; rays with ŝ·odet ≤ 0 (missing the sensor) get 0."""
    s_hat = np.asarray(s_hat, np.float64)
    n_layers = setup.thicksteps
    if not setup.has_thickness or n_layers <= 1:
        return np.zeros(s_hat.shape[:-1])
    t = np.arange(n_layers, dtype=np.float64)
    if not setup.oversample_thick:
        return np.full(s_hat.shape[:-1], float(layer_step) * t.mean())
    ok = s_hat @ np.asarray(odet, np.float64) > 0
    rays = np.where(ok[:, None], s_hat, np.asarray(odet, np.float64))  # placeholder for misses
    with jax.default_device(jax.devices("cpu")[0]):
        f = np.stack([_np(det_geo.capture_fraction(setup, mu, tuple(rays.T), tuple(odet), layer_step,
                                                   layer=k)) for k in range(n_layers)], -1)
    # The C program's running sum I ← (I + term)·f after each of the K sub-paths of a layer
    # (layers outermost): layer t keeps Σ_{m=1..K} f_t^m of its terms, times f_t'^K for every
    # later layer t'.  (In logs: the products underflow for large K.)
    K = max(1, setup.subpaths_per_pixel // n_layers)
    log_f = np.log(np.maximum(f, np.finfo(np.float64).tiny))
    # log Σ_{m=1..K} f^m = log f + log(1 − f^K) − log(1 − f)   (K·log f when f → 1 is log K)
    with np.errstate(divide="ignore", invalid="ignore"):
        own = np.where(f < 1.0 - 1e-12,
                       log_f + np.log1p(-np.exp(K * log_f)) - np.log1p(-np.minimum(f, 1.0 - 1e-12)),
                       np.log(K))
    later = K * (np.cumsum(log_f[:, ::-1], -1)[:, ::-1] - log_f)  # Σ_{t'>t} K log f_t'
    log_w = own + later
    w = np.exp(log_w - log_w.max(-1, keepdims=True))
    depth = float(layer_step) * (w @ t) / w.sum(-1)
    return np.where(ok, depth, 0.0)


def _curved_position(frame, s_hat: np.ndarray, depth: np.ndarray, f0: np.ndarray,
                     s0: np.ndarray, steps: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """Planar coordinates (m along fdet, sdet) of the points that ``curve_onto_sphere`` maps
    along ŝ (n, 3), by Gauss–Newton from (f0, s0); NaN where it does not converge."""
    from jax import numpy as jnp

    pix0, fdet, sdet, odet = (_np(getattr(frame, n)) for n in ("pix0", "fdet", "sdet", "odet"))

    def direction(fs, z):
        pos = pix0 + fs[0] * fdet + fs[1] * sdet + z * odet
        p = det_geo.curve_onto_sphere(frame, jnp.asarray(pos))
        d = p / jnp.linalg.norm(p)
        return d, d

    with jax.default_device(jax.devices("cpu")[0]):
        # the Jacobian (n, 3, 2) and, as its auxiliary output, the value (n, 3): one pass
        linearised = jax.jit(jax.vmap(jax.jacfwd(direction, has_aux=True)))
        fs = np.stack([np.nan_to_num(f0), np.nan_to_num(s0)], -1)
        scale = float(frame.distance)
        for _ in range(steps):
            J, value = (_np(x) for x in linearised(fs, depth))
            r = value - s_hat
            JtJ = np.einsum("nki,nkj->nij", J, J) + 1e-30 * np.eye(2)
            step = np.linalg.solve(JtJ, np.einsum("nki,nk->ni", J, r)[..., None])[..., 0]
            fs = fs - step
            if np.all(np.abs(step) < 1e-12 * scale):
                break
        r = _np(linearised(fs, depth)[1]) - s_hat
    ok = np.linalg.norm(r, axis=-1) < 1e-6
    return np.where(ok, fs[:, 0], np.nan), np.where(ok, fs[:, 1], np.nan)


@dataclass(frozen=True)
class Shoeboxes:
    """Pixels around spots (deduplicated), and which spot each pixel belongs to.

    Attributes:
      slow, fast: (m,) int pixel indices, each pixel listed once.
      spot: (m,) index into the ``Spots`` the boxes were built from: the spot
        whose centre is nearest to the pixel (a pixel in two boxes goes to one).
      n_spots: number of spots (boxes).
      panel: (m,) int panel of each pixel (0 for the single detector).
    """

    slow: np.ndarray
    fast: np.ndarray
    spot: np.ndarray
    n_spots: int
    panel: np.ndarray

    def __len__(self) -> int:
        return int(self.slow.shape[0])


def shoeboxes(spots: Spots, setup: Setup, half_size: int = 3, panels=None) -> Shoeboxes:
    """Square boxes of (2·half_size + 1)² pixels centred on each spot's pixel.

    Boxes are clipped to the detector (and its ROI) — to the spot's panel with
    ``panels`` (a ``PanelStack``; a box does not spill onto a neighbouring
    panel) — and deduplicated; pixels are returned in (panel,) raster order.
    """
    s_c, f_c = spots.pixel
    if panels is None:
        fmin, fmax, smin, smax = det_geo.roi_bounds(setup)
        p_c = np.zeros(len(s_c), int)
    else:
        fmin, fmax, smin, smax = 0, panels.n_fast - 1, 0, panels.n_slow - 1
        p_c = np.asarray(spots.panel)
    off = np.arange(-half_size, half_size + 1)
    ds, df = np.meshgrid(off, off, indexing="ij")
    S = (s_c[:, None] + ds.ravel()[None, :]).ravel()
    F = (f_c[:, None] + df.ravel()[None, :]).ravel()
    owner = np.repeat(np.arange(len(s_c)), off.size**2)
    P = p_c[owner]
    ok = (S >= smin) & (S <= smax) & (F >= fmin) & (F <= fmax) & (s_c[owner] >= 0) & (P >= 0)
    S, F, P, owner = S[ok], F[ok], P[ok], owner[ok]
    # nearest spot centre for pixels claimed by several boxes
    dist = (S + 0.5 - spots.slow[owner]) ** 2 + (F + 0.5 - spots.fast[owner]) ** 2
    order = np.lexsort((dist, F, S, P))
    S, F, P, owner = S[order], F[order], P[order], owner[order]
    first = np.ones(len(S), bool)
    first[1:] = (S[1:] != S[:-1]) | (F[1:] != F[:-1]) | (P[1:] != P[:-1])
    return Shoeboxes(slow=S[first].astype(np.int32), fast=F[first].astype(np.int32),
                     spot=owner[first].astype(np.int32), n_spots=len(spots),
                     panel=P[first].astype(np.int32))
