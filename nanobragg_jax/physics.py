"""Scattering physics: lattice transforms, spot shapes, polarisation, structure factors.

Every function is elementwise over leading axes and smooth at its removable
singularities, with exact first and second derivatives there: the grating
function at integer Miller indices (a series in the fractional offset), sinc3 at
0 (a series in x²), the polarisation factor at the direct beam (no atan2).  The
grating is the periodic continuation in h, so it is smooth in a non-integer N
too; for integer N every value is the C program's.  See docs/refinement.md.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp
from jax import Array
from jax.custom_derivatives import SymbolicZero

from .geometry.vectors import cross, dot, unitize

# Classical electron radius squared (m²), as the C program fixes it.
R_E_SQR = 7.94079248018965e-30
AVOGADRO = 6.02214179e23
WATER_F = 2.57  # forward-scattering structure factor of water (electrons)
WATER_MW = 18.0  # g/mol
ROUND_XTAL_SCALE = 0.723601254558268  # sphere/cube volume-ratio correction
GAUSS_XTAL_WIDTH = 0.63
TOPHAT_RADIUS_SQR = 0.3969

# |πδ|·max(|N|, 1) below which sin(πNδ)/sin(πδ) is evaluated by its Taylor series
# (relative truncation error ~ (Nπδ)^6/5040 ≈ 2e-22: the series and the ratio agree to
# rounding).
_GRATING_SERIES = 1e-3
# Taylor terms of sin(πr) on |r| ≤ ½ per dtype size: the truncation error of 7 terms is
# 6e-10 (float32 rounding is 6e-8), of 11 terms 3e-16.
_SINPI_TERMS = {4: 7, 8: 11}
# x² below which sinc3 is evaluated by its Taylor series (truncation ~ x^8/1e6 ≈ 1e-14;
# the closed form loses ~1e-16/x² to cancellation there).
_SINC3_SERIES_SQR = 1e-2


def _taylor_coefficients(n_terms: int, odd: bool) -> list[float]:
    """Coefficients of sin(πr) = Σ c_i r^(2i+1) (odd) or cos(πr) = Σ c_i r^(2i)."""
    out = []
    for i in range(n_terms):
        n = 2 * i + 1 if odd else 2 * i
        out.append((-1.0) ** i * math.pi ** n / math.factorial(n))
    return out


def _horner(r2: Array, coeffs: list[float]) -> Array:
    p = coeffs[-1]
    for c in reversed(coeffs[:-1]):
        p = p * r2 + c
    return p


def _n_terms(x: Array) -> int:
    return _SINPI_TERMS.get(jnp.dtype(x.dtype).itemsize, 11)


def sinpi_reduced(r: Array) -> Array:
    """sin(πr) for |r| ≤ ½ by its Taylor polynomial, accurate to the rounding of r's dtype.

    Plain arithmetic, so it vectorises: XLA's CPU ``sin`` is a scalar library call
    (~20 ns an element), the polynomial ~1 ns.
    """
    return r * _horner(r * r, _taylor_coefficients(_n_terms(r), odd=True))


def cospi_reduced(r: Array) -> Array:
    """cos(πr) for |r| ≤ ½ by its Taylor polynomial."""
    return _horner(r * r, _taylor_coefficients(_n_terms(r), odd=False))


class _GratingParts(NamedTuple):
    g: Array  # sin(πNδ)/sin(πδ) with both sines reduced: (−1)^j times the grating
    dg_dh: Optional[Array]
    dg_dN: Optional[Array]
    m: Array  # round(h): h = m + δ
    j: Array  # round(Nδ): Nδ = j + r


def _grating_parts(h: Array, N: Array, want_h: bool = False, want_N: bool = False) -> _GratingParts:
    """The grating of ``grating`` up to its sign, with ∂/∂h, ∂/∂N carrying the same sign.

    Both sines are evaluated at exactly reduced arguments: δ = h − m (m = round(h)) and
    r = Nδ − j (j = round(Nδ)), so g = sin(πr)/sin(πδ) is accurate at any h; the sign
    (−1)^{m(N−1)+j} it drops multiplies g and its derivatives alike.  Where
    |πδ|·max(|N|, 1) < 1e-3 the 0/0 ratio is replaced by its series in u = πδ,
    N[1 − (N²−1)u²/6 + (N²−1)(3N²−7)u⁴/360], with the series' own derivatives, so
    first and second derivatives are exact at integer h (∂g/∂N = 1 and
    ∂²g/∂h² = −π²N(N²−1)/3 there).  Derivatives not asked for are None.
    """
    m = jnp.round(h)
    d = h - m
    nd = N * d
    j = jnp.round(nd)
    r = nd - j
    sd = sinpi_reduced(d)
    sn = sinpi_reduced(r)
    u = jnp.pi * d
    small = jnp.abs(u) * jnp.maximum(jnp.abs(N), 1.0) < _GRATING_SERIES
    sd_safe = jnp.where(small, 1.0, sd)
    us = jnp.where(small, u, 0.0)
    u2 = us * us
    n2 = N * N
    n2m1 = n2 - 1.0
    g = jnp.where(small, N * (1.0 - n2m1 * u2 / 6.0 + n2m1 * (3.0 * n2 - 7.0) * u2 * u2 / 360.0),
                  sn / sd_safe)
    gh = gN = None
    if want_h or want_N:
        cn = cospi_reduced(r)
    # Regular branch: ∂/∂h sin(πNδ)/sin(πδ) = π(N cos(πNδ) − g cos(πδ))/sin(πδ),
    # ∂/∂N = πδ cos(πNδ)/sin(πδ).  Series branch: derivatives of the series.
    if want_h:
        gh_reg = jnp.pi * (N * cn - g * cospi_reduced(d)) / sd_safe
        gh_ser = jnp.pi * N * us * (-n2m1 / 3.0 + n2m1 * (3.0 * n2 - 7.0) * u2 / 90.0)
        gh = jnp.where(small, gh_ser, gh_reg)
    if want_N:
        gN_reg = jnp.pi * d * cn / sd_safe
        gN_ser = 1.0 - (3.0 * n2 - 1.0) * u2 / 6.0 + (15.0 * n2 * n2 - 30.0 * n2 + 7.0) * u2 * u2 / 360.0
        gN = jnp.where(small, gN_ser, gN_reg)
    return _GratingParts(g, gh, gN, m, j)


def _wants(tangents) -> tuple[bool, ...]:
    return tuple(not isinstance(t, SymbolicZero) for t in tangents)


def _grating_sign(parts: _GratingParts, N: Array) -> Array:
    """(−1)^{m(N'−1)+j}, N' the nearest integer to N: turns ``_grating_parts``' g into the grating.

    Piecewise constant (zero gradient); it never changes F_latt², only the sign that the
    trace prints, which then matches the C program's.
    """
    odd = jnp.mod(parts.m * (jnp.round(N) - 1.0) + parts.j, 2.0) != 0.0
    return jnp.where(odd, -1.0, 1.0).astype(parts.g.dtype)


@jax.custom_jvp
def grating(h: Array, N: Array) -> Array:
    """The grating function sin(πNh)/sin(πh): the 1-D lattice transform of N unit cells.

    h is a fractional Miller index (dimensionless).  For integer N it is the C program's
    ``sincg(πh, N)`` (up to rounding, and more accurate at large h); it is finite with
    exact derivatives at integer h (the 0/0 points) and periodic in h for any N.  For
    non-integer N the C formula has poles at h = k ≠ 0 (its N-gradient is infinite at
    every Bragg peak but the origin); the periodic continuation (−1)^{k(N'−1)}·
    sin(πNδ)/sin(πδ), δ = h − k, used here keeps the peak height N and width 1/N, so N is
    a smooth crystal size.  The derivative rule is analytic (see ``_grating_parts``).
    """
    parts = _grating_parts(h, N)
    return _grating_sign(parts, N) * parts.g


@grating.defjvp
def _grating_jvp(primals, tangents):
    h, N = primals
    h_dot, N_dot = tangents
    parts = _grating_parts(h, N, True, True)
    sign = _grating_sign(parts, N)
    out = sign * parts.g
    return out, sign * (parts.dg_dh * h_dot + parts.dg_dN * N_dot)


@jax.custom_jvp
def grating_sqr(h: Array, N: Array) -> Array:
    """(sin(πNh)/sin(πh))², the square of ``grating`` (one axis of the parallelepiped F_latt²).

    The sign drops out of the square, so it is not formed.  The derivative rule is
    analytic (one expression with the value, instead of the derivative of every Horner
    step) and computes only the partials asked for (symbolic zeros): reverse mode of the
    image is one pass; forward mode and higher orders work as usual.
    """
    g = _grating_parts(h, N).g
    return g * g


def _grating_sqr_jvp(primals, tangents):
    h, N = primals
    want_h, want_N = _wants(tangents)
    parts = _grating_parts(h, N, want_h, want_N)
    slope = 0.0
    if want_h:
        slope = parts.dg_dh * tangents[0]
    if want_N:
        slope = slope + parts.dg_dN * tangents[1]
    out = parts.g * parts.g
    return out, jnp.broadcast_to(2.0 * parts.g * slope, out.shape).astype(out.dtype)


grating_sqr.defjvp(_grating_sqr_jvp, symbolic_zeros=True)


def sincg(x: Array, N: Array) -> Array:
    """The C program's sincg(x, N) = sin(N x)/sin(x) (x in radians): ``grating(x/π, N)``."""
    return grating(x / jnp.pi, N)


def sinc3(x: Array) -> Array:
    """3 (sin x − x cos x)/x³, the transform of a sphere; 1 at x = 0.

    Even in x; evaluated through ``sinc3_of_sqr(x²)`` so it is smooth at 0.
    """
    return sinc3_of_sqr(x * x)


def sinc3_of_sqr(r: Array) -> Array:
    """sinc3(√r) for r = x² ≥ 0: analytic in r, so derivatives are finite at r = 0.

    Small r: 1 − r/10 + r²/280 − r³/15120; otherwise 3(sin x/x − cos x)/x².
    """
    small = r < _SINC3_SERIES_SQR
    rs = jnp.where(small, 1.0, r)
    x = jnp.sqrt(rs)
    regular = 3.0 * (jnp.sin(x) / x - jnp.cos(x)) / rs
    r0 = jnp.where(small, r, 0.0)
    series = 1.0 - r0 / 10.0 + r0 * r0 / 280.0 - r0 * r0 * r0 / 15120.0
    return jnp.where(small, series, regular)


def lattice_factor_square(hkl: Array, N: Array) -> Array:
    """Parallelepiped crystal: F_latt = Π_i grating(h_i, N_i) = Π sin(πN_ih_i)/sin(πh_i).

    ``hkl`` (..., 3) fractional Miller indices, ``N`` (3,) cells along a, b, c.
    """
    out = None
    for i in range(3):
        f = grating(hkl[..., i], N[i])
        out = f if out is None else out * f
    return out


def fractional_offset(hkl: Array) -> Array:
    """hkl minus the nearest integer, nearest meaning ceil(x − ½) as in the C program."""
    return hkl - jnp.ceil(hkl - 0.5)


def lattice_factor_round(hkl: Array, N: Array, fudge: Array) -> Array:
    """Ellipsoidal crystal: F_latt = N_aN_bN_c·0.7236·sinc3(π·sqrt(Σ(Δh_i N_i)²·fudge))."""
    d = fractional_offset(hkl) * N
    hrad_sqr = jnp.sum(d * d, axis=-1)
    # sinc3(π·sqrt(hrad²·fudge)) written in x² so that it is smooth at the peak.
    return N[0] * N[1] * N[2] * ROUND_XTAL_SCALE * sinc3_of_sqr(jnp.pi**2 * (hrad_sqr * fudge))


def reciprocal_distance_sqr(hkl: Array, recip: Array, N: Array) -> Array:
    """|Δh a* + Δk b* + Δl c*|² (Å⁻²) scaled by (N_aN_bN_c)², the C program's spot metric."""
    d = fractional_offset(hkl)
    dx = d @ recip  # rows of recip are a*, b*, c*
    return jnp.sum(dx * dx, axis=-1) * (N[0] * N[1] * N[2]) ** 2


def lattice_factor_gauss(hkl: Array, recip: Array, N: Array, fudge: Array) -> Array:
    """Gaussian spots: F_latt = N_aN_bN_c exp(−r*²/0.63·fudge)."""
    r2 = reciprocal_distance_sqr(hkl, recip, N)
    return N[0] * N[1] * N[2] * jnp.exp(-(r2 / GAUSS_XTAL_WIDTH * fudge))


def lattice_factor_tophat(hkl: Array, recip: Array, N: Array, fudge: Array) -> Array:
    """Flat-top spots: F_latt = N_aN_bN_c inside r*²·fudge < 0.3969, else 0."""
    r2 = reciprocal_distance_sqr(hkl, recip, N)
    inside = (r2 * fudge < TOPHAT_RADIUS_SQR).astype(hkl.dtype)
    return N[0] * N[1] * N[2] * inside


def lattice_factor(shape: str, hkl: Array, recip: Array, N: Array, fudge: Array) -> Array:
    """Dispatch on the (static) spot shape."""
    if shape == "SQUARE":
        return lattice_factor_square(hkl, N)
    if shape == "ROUND":
        return lattice_factor_round(hkl, N, fudge)
    if shape == "GAUSS":
        return lattice_factor_gauss(hkl, recip, N, fudge)
    if shape == "TOPHAT":
        return lattice_factor_tophat(hkl, recip, N, fudge)
    raise ValueError(f"unknown spot shape {shape!r}")


def lattice_factor_sqr(shape: str, h: Array, k: Array, l: Array, recip: Array, N: Array,
                       fudge: Array) -> Array:
    """F_latt² from the three Miller-index arrays (no trailing 3-axis).

    The parallelepiped spot is Π grating_sqr (no sign formed, analytic derivative rule);
    the other shapes square ``lattice_factor``.
    """
    if shape == "SQUARE":
        N = N.astype(h.dtype)
        return grating_sqr(h, N[0]) * grating_sqr(k, N[1]) * grating_sqr(l, N[2])
    F = lattice_factor(shape, jnp.stack([h, k, l], axis=-1), recip, N, fudge)
    return F * F


def polarization_basis(incident: Array, axis: Array) -> tuple[Array, Array]:
    """(E_in, B_in): unit vectors ⊥ the incident beam, E_in the one closest to ``axis``.

    B_in = unit(axis × incident), E_in = unit(incident × B_in); ``incident`` and
    ``axis`` (..., 3) broadcast.
    """
    B_in = unitize(cross(axis, incident))
    return unitize(cross(incident, B_in)), B_in


def kahn_polarization(kahn: Array, cos2t: Array, E_out: Array, B_out: Array) -> Array:
    """Kahn polarisation factor ½(1 + cos²2θ − K cos 2ψ sin²2θ) (dimensionless).

    From the projections of the unit diffracted ray d̂ on the incident beam (cos 2θ) and on
    the basis of ``polarization_basis`` (E_out, B_out); K = ``kahn``.  The C program forms
    ψ = −atan2(B_out, E_out); for unit vectors sin²2θ = E_out² + B_out², so
    cos 2ψ·sin²2θ = E_out² − B_out²: the same number without atan2, whose derivative is
    undefined at the direct beam (2θ = 0) and explodes near it.
    """
    return 0.5 * (1.0 + cos2t * cos2t - kahn * (E_out * E_out - B_out * B_out))


def polarization_factor(kahn: Array, incident: Array, diffracted: Array, axis: Array) -> Array:
    """``kahn_polarization`` for unit vectors ``incident`` and ``diffracted`` (..., 3).

    They broadcast against each other; ψ is measured from the E-vector closest to ``axis``.
    """
    E_in, B_in = polarization_basis(incident, axis)
    return kahn_polarization(kahn, dot(incident, diffracted), dot(diffracted, E_in),
                             dot(diffracted, B_in))


# F_w² r_e² 10⁶ N_A / MW × (10⁻⁶ m/µm)³: the water background per Φ·t_µm³.
_WATER_PER_FLUENCE_UM3 = WATER_F**2 * R_E_SQR * 1e6 * AVOGADRO / WATER_MW * 1e-18


def water_background(fluence: Array, water_size_um: Array) -> Array:
    """The C program's initial per-pixel running sum from a water droplet of size t (µm).

    I_bg = F_w² r_e² Φ t³ 10⁶ N_A / MW with t in metres.  (It is then scaled by r_e² Φ/steps
    again like every other term — the C program's units, kept for parity.)  Grouped as
    (constants)·Φ·t_µm³ so that no intermediate leaves float32's range, whatever order
    XLA multiplies in.
    """
    return _WATER_PER_FLUENCE_UM3 * fluence * water_size_um**3


def structure_factor_nearest(hkl: Array, F_grid: Array, hkl_min: tuple, hkl_max: tuple,
                             default_F: Array, has_hkl: bool) -> Array:
    """F of the nearest integer (h0 = ceil(h − ½)) from the grid, default_F outside it."""
    h0 = jnp.ceil(hkl - 0.5)
    if not has_hkl:
        return jnp.broadcast_to(default_F, hkl.shape[:-1]).astype(hkl.dtype)
    lo = jnp.asarray(hkl_min, hkl.dtype)
    hi = jnp.asarray(hkl_max, hkl.dtype)
    inside = jnp.all((h0 >= lo) & (h0 <= hi), axis=-1)
    idx = jnp.where(inside[..., None], h0 - lo, 0).astype(jnp.int32)
    F = F_grid[idx[..., 0], idx[..., 1], idx[..., 2]]
    return jnp.where(inside, F, default_F)


def interpolation_out_of_range(hkl: Array, hkl_min: tuple, hkl_max: tuple) -> Array:
    """The C program's test that a 4×4×4 neighbourhood would leave the grid."""
    lo = jnp.asarray(hkl_min, hkl.dtype)
    rng = jnp.asarray(hkl_max, hkl.dtype) - lo + 1.0
    return jnp.any(((hkl - lo + 3.0) > rng) | (hkl - 2.0 < lo), axis=-1)


def _lagrange_weights(x: Array, x0: Array) -> Array:
    """Cubic Lagrange basis at nodes x0−1 … x0+2 evaluated at x: shape (..., 4)."""
    nodes = x0[..., None] + jnp.arange(-1.0, 3.0, dtype=x.dtype)
    d = x[..., None] - nodes  # (..., 4)
    # Denominators for unit-spaced nodes: -6, 2, -2, 6.
    den = jnp.asarray([-6.0, 2.0, -2.0, 6.0], x.dtype)
    p = jnp.stack([
        d[..., 1] * d[..., 2] * d[..., 3],
        d[..., 0] * d[..., 2] * d[..., 3],
        d[..., 0] * d[..., 1] * d[..., 3],
        d[..., 0] * d[..., 1] * d[..., 2],
    ], axis=-1)
    return p / den


def structure_factor_tricubic(hkl: Array, F_grid: Array, hkl_min: tuple) -> Array:
    """Tricubic Lagrange interpolation of F on the 4×4×4 integer neighbourhood.

    Only valid where ``interpolation_out_of_range`` is False; elsewhere the
    indices are clamped so that the gather stays in bounds.
    """
    fl = jnp.floor(hkl)
    lo = jnp.asarray(hkl_min, hkl.dtype)
    base = (fl - 1.0 - lo).astype(jnp.int32)
    shape = jnp.asarray(F_grid.shape, jnp.int32)
    base = jnp.clip(base, 0, shape - 4)
    w = [_lagrange_weights(hkl[..., i], fl[..., i]) for i in range(3)]
    offs = jnp.arange(4, dtype=jnp.int32)
    hi = base[..., 0, None, None, None] + offs[:, None, None]
    ki = base[..., 1, None, None, None] + offs[None, :, None]
    li = base[..., 2, None, None, None] + offs[None, None, :]
    cube = F_grid[hi, ki, li]  # (..., 4, 4, 4)
    along_l = jnp.sum(cube * w[2][..., None, None, :], axis=-1)
    along_k = jnp.sum(along_l * w[1][..., None, :], axis=-1)
    return jnp.sum(along_k * w[0], axis=-1)


@jax.custom_jvp
def parallelepiped_sqr_of_q(a: Array, q: Array, N: Array) -> Array:
    """F_latt² of the parallelepiped spot at h_i = a_i·q: ``lattice_factor_sqr("SQUARE", …)``.

    ``a`` (9,) rows a, b, c of one (φ, domain) matrix; ``q`` (3, P) its components; ``N`` (3,).
    The same value, with a derivative rule written for XLA:CPU (used by the kernel's
    derivative pass, ``kernel.tile_photons``).  XLA:CPU has no multi-output loop fusion,
    so autodiff of the three gratings gave one fusion per cotangent (q̄x, q̄y, q̄z, the
    nine entries of ā, N̄ …), each recomputing the gratings and their slopes.  Here the
    three axes are one (3, P) stack; g² and the two slopes ∂(g²)/∂h, ∂(g²)/∂N (packed as
    one complex number: one pass computes both from the same sines and cosines) are
    written once (``computed_once``); the tangent is written with dots, ḣ = ȧ q + a q̇,
    whose transposes are dots too (ā = h̄ qᵀ, q̄ = aᵀ h̄, N̄ = (∂T/∂N) t̄).  q is one (3, P)
    array so that its cotangent is one array too (one accumulation per matrix in the
    kernel's loop, not three).
    """
    N = N.astype(q.dtype)
    qx, qy, qz = q
    h = qx * a[0] + qy * a[1] + qz * a[2]
    k = qx * a[3] + qy * a[4] + qz * a[5]
    l = qx * a[6] + qy * a[7] + qz * a[8]
    return grating_sqr(h, N[0]) * grating_sqr(k, N[1]) * grating_sqr(l, N[2])


def computed_once(fn, guard: Array, *args):
    """``fn(*args)``, evaluated as the branch of a ``lax.cond`` so that XLA:CPU writes it once.

    XLA:CPU has no multi-output fusion: a value with several consumers is either written
    to memory once or recomputed inside every consumer, and for cheap elementwise
    arithmetic (the polynomial sines) it recomputes.  A conditional's result is always
    written, so its consumers read it.  ``guard`` (a traced scalar) selects the branch:
    finite → ``fn(*args)``, else NaN (which ``fn`` would give for a non-finite guard too).
    Under ``vmap`` with a batched guard the conditional becomes a select.
    """
    shape = jax.eval_shape(fn, *args)

    def nan(*_):
        return jax.tree.map(lambda s: jnp.full(s.shape, jnp.nan if jnp.issubdtype(s.dtype, jnp.inexact)
                                               else 0, s.dtype), shape)

    return jax.lax.cond(jnp.isfinite(guard), fn, nan, *args)


def _parallelepiped_sqr_of_q_jvp(primals, tangents):
    a, q, N = primals
    da, dq, dN = tangents
    live_a, live_q, live_N = _wants((da, dq, dN))
    dtype = q.dtype
    N = N.astype(dtype)
    want_h = live_a or live_q
    if not (want_h or live_N):
        out = parallelepiped_sqr_of_q(a, q, N)
        return out, jnp.zeros_like(out)

    def per_axis(a, q, N):
        """g² of the three axes (3, P), and their slopes ∂(g²)/∂h, ∂(g²)/∂N (those asked for).

        Both slopes come from the same four sines and cosines; packed as one complex
        number, one pass over the (3, P) stack writes both."""
        H = jnp.stack([q[0] * a[3 * i] + q[1] * a[3 * i + 1] + q[2] * a[3 * i + 2]
                       for i in range(3)])
        parts = _grating_parts(H, N[:, None], want_h, live_N)
        slopes = [2.0 * parts.g * d for d in (parts.dg_dh, parts.dg_dN) if d is not None]
        packed = slopes[0] if len(slopes) == 1 else jax.lax.complex(*slopes)
        return parts.g * parts.g, packed

    sq, packed = computed_once(per_axis, N[0], a, q, N)
    # The value from the same stored g² (the primal's own expression, up to rounding): the
    # kernel's derivative pass multiplies it into the cotangent of the pixel's factor
    # (``kernel.pixel_photons_diff``), so the gratings are evaluated once per sub-path.
    out = sq[0] * sq[1] * sq[2]
    if want_h and live_N:
        slope_h, slope_N = jnp.real(packed), jnp.imag(packed)
    else:
        slope_h = slope_N = packed
    others = jnp.stack([sq[1] * sq[2], sq[0] * sq[2], sq[0] * sq[1]])  # Π_{j≠i} g_j²
    tangent = None
    if want_h:
        dH = None
        if live_a:
            dH = jnp.dot(da.astype(dtype).reshape(3, 3), q, precision="highest")
        if live_q:
            dq_term = jnp.dot(a.reshape(3, 3), dq, precision="highest")
            dH = dq_term if dH is None else dH + dq_term
        tangent = jnp.sum((slope_h * others) * dH, axis=0)
    if live_N:
        dN_term = jnp.dot(dN.astype(dtype), slope_N * others, precision="highest")
        tangent = dN_term if tangent is None else tangent + dN_term
    return out, tangent


parallelepiped_sqr_of_q.defjvp(_parallelepiped_sqr_of_q_jvp, symbolic_zeros=True)
