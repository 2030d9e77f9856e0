"""Refinement parameterisations: small parameter vectors → ``Params`` fields, and uncertainties.

Every function here is pure ``jax.numpy``, differentiable to any order where
the equations are smooth, and maps a few refinable numbers (plus fixed
reference values) to the ``Params`` fields the kernel reads.  Compose them in
a model function θ ↦ photons (with ``pixels.simulate_pixels`` for shoeboxes)
and differentiate that.

Crystal
  * ``rotvec_to_matrix`` / ``orientation``: a small rotation vector r (rad)
    composed with the reference orientation U₀: U = R(r)·U₀ (Rodrigues).
  * ``b_matrix`` / ``reciprocal_matrix``: A* = U·B(cell), the reciprocal
    matrix (columns a*, b*, c*; Å⁻¹) for ``Setup.orientation == "matrix"``
    (``Params.recip_matrix``); ``to_matrix_orientation`` converts a setup.
  * ``cell_from_lattice``: cell constants from the free parameters of a
    lattice system (symmetry constraints).
  * ``crystal_size``: N (cells per axis) from one (isotropic) or three values.
  * ``anisotropic_mosaic``: mosaic spread per principal axis (deg).
Detector
  * ``detector_pose``: a lab-frame shift (mm) of the detector and a change of
    its rotation angles (deg), as ``beam_center``, ``distance``,
    ``detector_rotation`` (beam pivot).
  * ``panel_pose``: per-panel shift (mm) and rotation vector (rad) of a
    multi-panel ``PanelStack`` (for ``simulate_pixels(panels=)``).
Beam
  * ``spectrum``: every wavelength λ ← λ·(1 + scale) + shift.
Outside the kernel
  * ``pixel_stol``: s = sin θ/λ = |q|/2 at pixel centres.
  * ``scale_bfactor``: I ← G·I·exp(−2 B s²) (per-shot scale and B-factor).
  * ``structure_factor_scale``: F(hkl) ← F(hkl)·exp(x_hkl) (log-F refinement).
  * ``background_plane``: a plane of photons per pixel for each shoebox.
Uncertainties
  * ``fisher_information``: F = Jᵀ diag(w/μ) J for Poisson counts of mean μ(θ).
  * ``standard_errors``: sqrt(diag F⁻¹) (Cramér–Rao bound).
Shot buckets
  * ``pad_shots`` / ``shot_bucket``: pad the shot axis to a power of two with
    zero-weight shots, so a compiled refinement serves any number of shots up
    to its bucket; ``active=`` in ``covariance``/``standard_errors`` leaves the
    padded shots' parameters out.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from .config import Params, Setup
from .geometry import crystal as crystal_geo
from .geometry import detector as det_geo
from .safe import safe_norm

if TYPE_CHECKING:
    from .panels import PanelStack

# ---------------------------------------------------------------------------------------------
# orientation
# ---------------------------------------------------------------------------------------------

# Below this θ² (rad²) the Rodrigues coefficients use their Taylor series (the
# closed forms are 0/0 at θ = 0; the series keeps every derivative exact there).
_ROTVEC_SERIES = 1e-4


def _skew(r: Array) -> Array:
    z = jnp.zeros_like(r[0])
    return jnp.stack([jnp.stack([z, -r[2], r[1]]), jnp.stack([r[2], z, -r[0]]),
                      jnp.stack([-r[1], r[0], z])])


def rotvec_to_matrix(rotvec: Array) -> Array:
    """Rotation matrix of the rotation vector r (rad): angle |r| about r/|r|.

    R = I + (sin θ/θ) K + ((1 − cos θ)/θ²) K²,  K = [r]×, θ = |r|
    (Rodrigues).  Near θ = 0 the coefficients come from their series
    1 − θ²/6 + θ⁴/120 − θ⁶/5040 and 1/2 − θ²/24 + θ⁴/720 − θ⁶/40320, so R is
    smooth (every order) at the identity: ∂R/∂r_i = [e_i]× there.
    """
    r = jnp.asarray(rotvec)
    t2 = jnp.sum(r * r)
    small = t2 < _ROTVEC_SERIES
    t2s = jnp.where(small, 1.0, t2)
    t = jnp.sqrt(t2s)
    a = jnp.where(small, 1.0 - t2 / 6.0 + t2 * t2 / 120.0 - t2 * t2 * t2 / 5040.0, jnp.sin(t) / t)
    b = jnp.where(small, 0.5 - t2 / 24.0 + t2 * t2 / 720.0 - t2 * t2 * t2 / 40320.0,
                  (1.0 - jnp.cos(t)) / t2s)
    K = _skew(r)
    return jnp.eye(3, dtype=K.dtype) + a * K + b * (K @ K)


def orientation(rotvec: Array, U0: Array) -> Array:
    """U = R(rotvec)·U₀: a small lab-frame rotation (rad) composed with the reference U₀."""
    return rotvec_to_matrix(rotvec) @ U0


def b_matrix(cell: Array) -> Array:
    """B (columns a*, b*, c*; Å⁻¹) of the cell (a, b, c Å; α, β, γ deg) in the standard setting.

    Exactly the kernel's construction for ``orientation == "cell"`` with no misset
    (``geometry.crystal.lattice``: a* along x, b* in the xy plane, real-vector
    lengths forced to a, b, c), so that A* = U·B reproduces the cell-mode
    crystal.  (For non-orthogonal cells that construction, the C program's,
    differs from the textbook B by ~1e-3 relative, and its stored reciprocal
    vectors are not exactly dual to its real vectors; B here is the dual of the
    real vectors, which is what fixes the Miller indices h = a·q.)
    """
    cell = jnp.asarray(cell)
    ref = _CellOnly(cell=cell, misset=jnp.zeros(3, cell.dtype), recip_matrix=None)
    real = crystal_geo.lattice(Setup(orientation="cell"), ref).real  # rows a, b, c (Å)
    # The exact dual of the kernel's real vectors (a·a* = 1, a·b* = 0): in matrix
    # mode the kernel rebuilds real vectors as the dual of recip_matrix.
    return jnp.linalg.inv(real)


class _CellOnly(NamedTuple):
    """The three ``Params`` fields ``geometry.crystal.lattice`` reads."""

    cell: Array
    misset: Array
    recip_matrix: Optional[Array]


def reciprocal_matrix(U: Array, cell: Array) -> Array:
    """A* = U·B(cell): ``Params.recip_matrix`` (columns a*, b*, c*; Å⁻¹)."""
    return U @ b_matrix(cell)


def to_matrix_orientation(setup: Setup, params: Params) -> tuple[Setup, Params, Array]:
    """The same crystal with ``orientation == "matrix"``; returns (setup, params, U₀).

    ``recip_matrix`` becomes the dual of the real vectors the kernel built from
    the cell and misset (columns a*, b*, c*), ``misset`` becomes 0, and U₀ =
    A*·B(cell)⁻¹ is the orientation to compose refinement rotations with.
    Images agree with the original setup to rounding (for the Gaussian and
    top-hat spot shapes, whose metric uses the stored reciprocal vectors, to
    the C construction's ~1e-3 non-duality for non-orthogonal cells).
    """
    recip = jnp.linalg.inv(crystal_geo.lattice(setup, params).real)  # columns a*, b*, c*
    U0 = recip @ jnp.linalg.inv(b_matrix(params.cell))
    new_params = params.replace(recip_matrix=recip, misset=jnp.zeros_like(jnp.asarray(params.misset)))
    return dataclasses.replace(setup, orientation="matrix"), new_params, U0


# ---------------------------------------------------------------------------------------------
# cell with symmetry constraints
# ---------------------------------------------------------------------------------------------

# Free parameters of each lattice system (Å and deg) and how the six constants follow.
LATTICES = {
    "cubic": ("a",),
    "tetragonal": ("a", "c"),
    "hexagonal": ("a", "c"),
    "rhombohedral": ("a", "alpha"),
    "orthorhombic": ("a", "b", "c"),
    "monoclinic": ("a", "b", "c", "beta"),
    "triclinic": ("a", "b", "c", "alpha", "beta", "gamma"),
}


def cell_from_lattice(x: Array, lattice: str) -> Array:
    """The six cell constants (a, b, c Å; α, β, γ deg) from the free parameters ``x``.

    cubic (a): a = b = c, α = β = γ = 90°;  tetragonal (a, c): a = b, 90°;
    hexagonal (a, c): a = b, α = β = 90°, γ = 120°;  rhombohedral (a, α):
    a = b = c, α = β = γ;  orthorhombic (a, b, c): 90°;  monoclinic (a, b, c, β):
    α = γ = 90° (unique axis b);  triclinic: all six.
    """
    x = jnp.asarray(x)
    if lattice not in LATTICES:
        raise ValueError(f"lattice must be one of {sorted(LATTICES)}, not {lattice!r}")
    if x.shape != (len(LATTICES[lattice]),):
        raise ValueError(f"{lattice} lattice takes {LATTICES[lattice]}, got shape {x.shape}")
    right = jnp.full((), 90.0, x.dtype)
    if lattice == "cubic":
        return jnp.stack([x[0], x[0], x[0], right, right, right])
    if lattice == "tetragonal":
        return jnp.stack([x[0], x[0], x[1], right, right, right])
    if lattice == "hexagonal":
        return jnp.stack([x[0], x[0], x[1], right, right, jnp.full((), 120.0, x.dtype)])
    if lattice == "rhombohedral":
        return jnp.stack([x[0], x[0], x[0], x[1], x[1], x[1]])
    if lattice == "orthorhombic":
        return jnp.stack([x[0], x[1], x[2], right, right, right])
    if lattice == "monoclinic":
        return jnp.stack([x[0], x[1], x[2], right, x[3], right])
    return x


def lattice_parameters(cell, lattice: str) -> np.ndarray:
    """The free parameters of ``lattice`` read off a six-constant cell (inverse of the above)."""
    cell = np.asarray(cell, np.float64)
    index = {"a": 0, "b": 1, "c": 2, "alpha": 3, "beta": 4, "gamma": 5}
    return np.array([cell[index[n]] for n in LATTICES[lattice]])


# ---------------------------------------------------------------------------------------------
# crystal size and mosaicity
# ---------------------------------------------------------------------------------------------


def crystal_size(x: Array) -> Array:
    """``Params.N`` (cells along a, b, c) from one value (isotropic) or three (per axis).

    N enters the lattice factor as a smooth float (see docs/refinement.md); a
    full 3×3 crystal shape is not representable by the kernel.
    """
    x = jnp.asarray(x)
    return jnp.broadcast_to(x.reshape(-1), (3,)) if x.size == 1 else x.reshape(3)


def anisotropic_mosaic(spread: Array, axes0: Array, caps0: Array,
                       frame: Optional[Array] = None) -> dict:
    """Mosaic domains with a spread per principal axis: fields for ``Params.replace``.

    The kernel rotates domain d by the angle spread·cap_d (deg) about the unit
    axis u_d (fixed random draws ``mosaic_axes``, ``mosaic_caps``), i.e. by the
    rotation vector ω_d = spread·cap_d·u_d.  Here

        ω_d = M·(cap_d·u_d),   M = E·diag(σ₁, σ₂, σ₃)·Eᵀ,

    with σ (deg) the spreads about the columns of the orthonormal ``frame`` E
    (default: lab x, y, z; pass U to use crystal axes).  Returned: mosaic_spread
    = 1 (deg), mosaic_caps = |ω_d|, mosaic_axes = ω_d/|ω_d|.  σ₁ = σ₂ = σ₃ = σ
    reproduces the isotropic spread σ.  Note the domains' distribution is the
    isotropic cap draw stretched by M, not a new draw per shape.
    """
    spread = jnp.asarray(spread)
    E = jnp.eye(3, dtype=spread.dtype) if frame is None else jnp.asarray(frame)
    M = E @ jnp.diag(spread) @ E.T
    w = (jnp.asarray(caps0)[:, None] * jnp.asarray(axes0)) @ M.T  # (D, 3) deg
    n = safe_norm(w)
    axes = jnp.where(n[:, None] > 0, w / jnp.where(n > 0, n, 1.0)[:, None], jnp.asarray(axes0))
    return dict(mosaic_spread=jnp.ones((), spread.dtype), mosaic_caps=n, mosaic_axes=axes)


# ---------------------------------------------------------------------------------------------
# detector
# ---------------------------------------------------------------------------------------------


def detector_pose(setup: Setup, ref: Params, shift_mm: Array,
                  rotation_deg: Optional[Array] = None) -> dict:
    """Shift the detector by ``shift_mm`` (lab frame, mm) and add ``rotation_deg`` to its angles.

    With the beam pivot, pix0 = −Fbeam·f − Sbeam·s + distance·b̂ (b̂ the beam
    direction), so a rigid shift Δ of the detector plane is the solution of
    −ΔFbeam·f − ΔSbeam·s + Δdistance·b̂ = Δ, written back as the beam centre
    in the setup's convention (MOSFLM/DENZO swap X and Y; ADXV flips Y) and
    the distance.  ``rotation_deg`` (x, y, z) is added to
    ``detector_rotation``: the beam-pivot rotation keeps the beam spot fixed.
    Returns fields for ``ref.replace``: beam_center, distance (and
    detector_rotation).  Sample pivot setups raise NotImplementedError.
    """
    if setup.pivot != "BEAM" or setup.close_distance_given:
        raise NotImplementedError("detector_pose: beam-pivot setups only (the sample pivot "
                                  "places the detector through close_center/close_distance)")
    frame = det_geo.detector_frame(setup, ref)
    shift = jnp.asarray(shift_mm)
    basis = jnp.stack([-frame.fdet, -frame.sdet, frame.beam], axis=1)  # columns
    dF, dS, dd = jnp.linalg.solve(basis, shift)
    conv = setup.convention
    if conv in ("MOSFLM", "DENZO"):
        dX, dY = dS, dF
    elif conv == "ADXV":
        dX, dY = dF, -dS
    else:
        dX, dY = dF, dS
    out = dict(beam_center=jnp.asarray(ref.beam_center) + jnp.stack([dX, dY]),
               distance=jnp.asarray(ref.distance) + dd)
    if rotation_deg is not None:
        out["detector_rotation"] = jnp.asarray(ref.detector_rotation) + jnp.asarray(rotation_deg)
    return out


def panel_pose(panels: "PanelStack", shift_mm: Optional[Array] = None,
               rotvec_rad: Optional[Array] = None) -> "PanelStack":
    """Move each panel of a ``PanelStack``: a rotation about its own centre, then a shift.

    For panel i with centre cᵢ (the middle of its pixel area), origin Oᵢ and
    axes fᵢ, sᵢ, rotation vector rᵢ (rad, lab frame: |rᵢ| about rᵢ/|rᵢ|,
    ``panels.rotation_matrices``) and shift tᵢ (mm, lab frame):

        fᵢ' = R(rᵢ)·fᵢ,   sᵢ' = R(rᵢ)·sᵢ,   Oᵢ' = cᵢ + R(rᵢ)·(Oᵢ − cᵢ) + tᵢ.

    Zeros give the reference panels.  Rotating about the centre (not the
    origin corner) keeps a panel's shift and tilt nearly uncorrelated.
    Differentiable to any order in both (the rotation uses its Taylor series
    near 0).  ``shift_mm``, ``rotvec_rad``: (n_panels, 3) or (3,) (the same
    for every panel); ``None`` = no change.  Returns the moved ``PanelStack``.
    """
    n = panels.n_panels
    if shift_mm is not None:
        shift_mm = jnp.broadcast_to(jnp.asarray(shift_mm), (n, 3))
    if rotvec_rad is not None:
        rotvec_rad = jnp.broadcast_to(jnp.asarray(rotvec_rad), (n, 3))
    return panels.perturbed(shift_mm, rotvec_rad)


# ---------------------------------------------------------------------------------------------
# beam
# ---------------------------------------------------------------------------------------------


def spectrum(setup: Setup, ref: Params, shift_A: Array, scale: Array) -> dict:
    """Every wavelength λ ← λ·(1 + scale) + shift (shift in Å, scale unitless).

    Generated sources: the central ``wavelength`` (the dispersion, a fraction
    of λ, scales with it); file sources: every ``source_wavelengths`` entry.
    """
    if setup.source_mode == "file":
        return dict(source_wavelengths=jnp.asarray(ref.source_wavelengths) * (1.0 + scale) + shift_A)
    return dict(wavelength=jnp.asarray(ref.wavelength) * (1.0 + scale) + shift_A)


# ---------------------------------------------------------------------------------------------
# outside the kernel: per-shot scale and B-factor, structure factors, background
# ---------------------------------------------------------------------------------------------


def pixel_stol(setup: Setup, params: Params, slow_idx: Array, fast_idx: Array) -> Array:
    """s = sin θ/λ = |q|/2 (Å⁻¹) at the centres of the given pixels, for the central wavelength.

    q = (d̂ − b̂)/λ with d̂ the unit vector to the pixel centre
    pix0 + (f + ½)·px·fdet + (s + ½)·px·sdet (flat detector, front face).
    """
    frame = det_geo.detector_frame(setup, params)
    dtype = frame.pix0.dtype
    Fd = (jnp.asarray(fast_idx).astype(dtype) + 0.5) * frame.pixel_size
    Sd = (jnp.asarray(slow_idx).astype(dtype) + 0.5) * frame.pixel_size
    pos = frame.pix0 + Fd[..., None] * frame.fdet + Sd[..., None] * frame.sdet
    d = pos / jnp.sqrt(jnp.sum(pos * pos, axis=-1, keepdims=True))
    q = (d - frame.beam) / jnp.asarray(params.wavelength)  # Å⁻¹ (λ in Å)
    return 0.5 * jnp.sqrt(jnp.sum(q * q, axis=-1))


def scale_bfactor(photons: Array, stol: Array, scale: Array, B: Array) -> Array:
    """Per-shot scale G and B-factor (Å²): I ← G·I·exp(−2 B s²), s = sin θ/λ (Å⁻¹).

    exp(−B s²) is the Debye–Waller factor of the amplitude F, so the intensity
    carries its square.  Applied to the kernel's photons, outside the kernel.
    """
    return scale * photons * jnp.exp(-2.0 * B * stol * stol)


def structure_factor_scale(log_scale: Array, F_grid: Array, hkl, hkl_min) -> Array:
    """``Params.F_grid`` with F(h) ← F(h)·exp(x_h) for the listed reflections (log-F refinement).

    ``hkl``: (m, 3) integer Miller indices inside the grid (host values);
    ``log_scale``: (m,) x_h.  exp keeps F positive and makes the step relative.
    """
    idx = np.asarray(hkl, int) - np.asarray(hkl_min, int)[None, :]
    F_grid = jnp.asarray(F_grid)
    # A scatter-add of the logs (differentiable for any index list; a repeated
    # reflection adds its entries) then one exp over the grid.
    log_grid = jnp.zeros(F_grid.shape, F_grid.dtype).at[idx[:, 0], idx[:, 1], idx[:, 2]].add(log_scale)
    return F_grid * jnp.exp(log_grid)


def background_plane(coeffs: Array, slow_idx: Array, fast_idx: Array, box: Array,
                     centre_slow: Array, centre_fast: Array) -> Array:
    """Photons per pixel of a plane per shoebox: c₀ + c₁·(s + ½ − s_b) + c₂·(f + ½ − f_b).

    ``coeffs`` (n_boxes, 3): c₀ in photons/pixel, c₁ and c₂ in photons/pixel
    per pixel; ``box`` (n,) the shoebox of each pixel (e.g. ``Shoeboxes.spot``);
    (s_b, f_b) the box centre in pixels (e.g. ``Spots.slow``, ``Spots.fast``).
    """
    c = jnp.asarray(coeffs)[box]
    ds = jnp.asarray(slow_idx) + 0.5 - jnp.asarray(centre_slow)[box]
    df = jnp.asarray(fast_idx) + 0.5 - jnp.asarray(centre_fast)[box]
    return c[:, 0] + c[:, 1] * ds + c[:, 2] * df


# ---------------------------------------------------------------------------------------------
# uncertainties
# ---------------------------------------------------------------------------------------------


def fisher_information(model_fn: Callable[[Array], Array], theta: Array,
                       weights: Optional[Array] = None, jit: bool = True) -> Array:
    """Fisher information of Poisson counts with mean μ(θ) = ``model_fn(θ)``: F = Jᵀ diag(w/μ) J.

    J = ∂μ/∂θ (``jax.jacfwd``, one forward-mode pass per parameter); μ is
    flattened; ``weights`` w (same shape as μ, default 1) excludes padding
    (w = 0).  F is the expected Hessian of the negative log-likelihood
    Σ μ − n log μ; its inverse bounds the covariance of an unbiased estimate.
    Pixels with μ ≤ 0 contribute nothing.
    """
    def parts(t):
        mu = jnp.ravel(model_fn(t))
        J = jax.jacfwd(lambda u: jnp.ravel(model_fn(u)))(t)
        return mu, J

    mu, J = (jax.jit(parts) if jit else parts)(jnp.asarray(theta))
    w = jnp.ones_like(mu) if weights is None else jnp.ravel(jnp.asarray(weights)).astype(mu.dtype)
    inv = jnp.where(mu > 0, w / jnp.where(mu > 0, mu, 1.0), 0.0)
    return (J * inv[:, None]).T @ J


def covariance(fisher: Array, active: Optional[Array] = None) -> Array:
    """F⁻¹ (symmetrised).  F must be positive definite (each parameter determined by the data).

    ``active`` (bool, one per parameter; default all) marks the parameters the
    data determine.  The others — the parameters of padded shots
    (``pad_shots``), which no weighted pixel depends on — must have zero rows
    and columns in F; they are left out of the inverse (F⁻¹ of the active
    block, zero elsewhere), so a θ of fixed length serves any number of shots
    up to its bucket without changing shape.
    """
    F = 0.5 * (jnp.asarray(fisher) + jnp.asarray(fisher).T)
    if active is not None:
        a = jnp.asarray(active, bool)
        both = a[:, None] & a[None, :]
        # inactive rows/columns → identity: the active block's inverse is unchanged
        F = jnp.where(both, F, jnp.eye(F.shape[0], dtype=F.dtype))
    d = jnp.sqrt(jnp.diag(F))  # scale to unit diagonal for a well-conditioned inverse
    C = jnp.linalg.inv(F / jnp.outer(d, d)) / jnp.outer(d, d)
    C = 0.5 * (C + C.T)
    return C if active is None else jnp.where(both, C, 0.0)


def standard_errors(fisher: Array, active: Optional[Array] = None) -> Array:
    """sqrt(diag F⁻¹): the Cramér–Rao standard error of each parameter (units of θ).

    With ``active`` (see ``covariance``) inactive parameters get 0.
    """
    return jnp.sqrt(jnp.diag(covariance(fisher, active)))


# ---------------------------------------------------------------------------------------------
# shot buckets
# ---------------------------------------------------------------------------------------------


def shot_bucket(n: int) -> int:
    """Padded shot count for ``n`` shots: the next power of two ≥ n (≥ 1), as pixel buckets."""
    from .pixels import bucket_size

    return bucket_size(n, minimum=1)


def pad_shots(tree: Any, bucket: Optional[int] = None) -> tuple[Any, Array]:
    """Pad the leading (shot) axis of every array in ``tree`` to ``bucket`` shots.

    Returns (padded tree, weight): padding repeats the first shot (finite
    values, so the model and its derivatives stay finite there) and ``weight``
    (bucket,) is 1.0 for the n real shots and 0.0 for padding.  Multiply each
    shot's pixel weights by it, so padded shots add nothing to a loss, its
    gradient or its Fisher information; their parameters then have zero rows
    in F — pass ``active`` to ``covariance``/``standard_errors``.

    A compiled loss/gradient depends on array shapes only, so a refinement that
    adds or drops shots within one bucket (default ``shot_bucket(n)``) reuses
    it, as ``pixels.pad_pixels`` does for pixel lists.
    """
    leaves = jax.tree_util.tree_leaves(tree)
    if not leaves:
        raise ValueError("pad_shots: nothing to pad")
    if any(np.ndim(x) == 0 for x in leaves):
        raise ValueError("pad_shots: every array needs a leading (shot) axis; a scalar has none")
    n = int(np.shape(leaves[0])[0])
    if any(int(np.shape(x)[0]) != n for x in leaves):
        raise ValueError(f"pad_shots: leading (shot) axes differ ({[int(np.shape(x)[0]) for x in leaves]})")
    if n == 0:
        raise ValueError("pad_shots: no shots")
    size = shot_bucket(n) if bucket is None else int(bucket)
    if size < n:
        raise ValueError(f"pad_shots: bucket {size} is smaller than the shot count {n}")

    def pad(x):
        x = jnp.asarray(x)
        if size == n:
            return x
        return jnp.concatenate([x, jnp.broadcast_to(x[:1], (size - n,) + x.shape[1:])])

    return jax.tree_util.tree_map(pad, tree), jnp.where(jnp.arange(size) < n, 1.0, 0.0)
