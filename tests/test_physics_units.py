"""physics.py against the C program's formulas, and the user-unit conversions seen by grad.

Part 1 — each physics function equals the C program's expression (sincg with its
sign, sinc3, the spot shapes, the Kahn polarisation factor via atan2, the water
background, nearest and tricubic structure factors) and is smooth where the
issue needs it (N continuous, F(hkl) differentiable).

Part 2 — Params hold user units (Å, mm, deg, µm, mrad, percent); the SI values
the kernels use must change by exactly the conversion factor per unit, so a
gradient with respect to a Params field is "per Å", "per mm", "per degree"…
"""

from __future__ import annotations

import dataclasses
import math

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from nanobragg_jax import physics  # noqa: E402
from nanobragg_jax.experiment import from_cli_args  # noqa: E402
from nanobragg_jax.geometry import beam as beam_geo  # noqa: E402
from nanobragg_jax.geometry import crystal as crystal_geo  # noqa: E402
from nanobragg_jax.geometry import detector as det_geo  # noqa: E402

RNG = np.random.default_rng(2024)


# ---------------------------------------------------------------------------
# Part 1: physics.py

def c_sincg(x, N):
    return np.where(x == 0, N, np.sin(N * x) / np.where(x == 0, 1.0, np.sin(x)))


@pytest.mark.parametrize("N", [1, 2, 3, 5, 10, 21])
def test_square_lattice_factor_is_the_c_formula_with_its_sign(N):
    h = RNG.uniform(-25, 25, (4000, 3))
    h = h[np.all(np.abs(h - np.round(h)) > 1e-3, axis=1)]  # the C formula is noisy at the peaks
    Nv = np.array([N, N + 1, N + 2], float)
    expect = np.prod([c_sincg(np.pi * h[:, i], Nv[i]) for i in range(3)], axis=0)
    got = np.asarray(physics.lattice_factor_square(jnp.asarray(h), jnp.asarray(Nv)))
    np.testing.assert_allclose(got, expect, rtol=1e-9, atol=1e-9 * np.abs(expect).max())


def test_square_lattice_factor_is_periodic_and_smooth_in_non_integer_N():
    """For non-integer N the periodic continuation keeps peak height N and a finite N-slope
    at every reflection (the C formula sin(Nπh)/sin(πh) has poles there)."""
    N = jnp.asarray([4.3, 2.6, 7.5])
    h = jnp.asarray([[0.1, 0.2, -0.05], [3.1, -6.8, 11.95]])  # same fractional offsets
    F = physics.lattice_factor_square(h, N)
    assert float(jnp.abs(F[0])) == pytest.approx(float(jnp.abs(F[1])), rel=1e-10)
    peak = jnp.asarray([[2.0, -3.0, 5.0]])
    assert float(jnp.abs(physics.lattice_factor_square(peak, N))[0]) == pytest.approx(4.3 * 2.6 * 7.5)
    f = lambda N: jnp.sum(physics.lattice_factor_square(h, N) ** 2)  # noqa: E731
    g = np.asarray(jax.grad(f)(N))
    eps = 1e-6
    fd = [(float(f(N.at[i].add(eps))) - float(f(N.at[i].add(-eps)))) / (2 * eps) for i in range(3)]
    np.testing.assert_allclose(g, fd, rtol=1e-6)


def test_round_lattice_factor_is_the_c_formula():
    h = RNG.uniform(-10, 10, (3000, 3))
    N = np.array([3.0, 4.0, 6.0])
    fudge = 1.3
    d = (h - np.ceil(h - 0.5)) * N
    x = np.pi * np.sqrt(np.sum(d * d, axis=1) * fudge)
    sinc3 = np.where(x == 0, 1.0, 3 * (np.sin(x) / np.where(x == 0, 1, x) - np.cos(x)) / np.where(x == 0, 1, x) ** 2)
    expect = N.prod() * 0.723601254558268 * sinc3
    got = physics.lattice_factor_round(jnp.asarray(h), jnp.asarray(N), fudge)
    np.testing.assert_allclose(got, expect, rtol=1e-8, atol=1e-10 * N.prod())


def test_gauss_and_tophat_lattice_factors_are_the_c_formulas():
    h = RNG.uniform(-5, 5, (2000, 3))
    N = np.array([5.0, 5.0, 3.0])
    recip = RNG.normal(size=(3, 3)) * 0.02
    d = (h - np.ceil(h - 0.5)) @ recip
    r2 = np.sum(d * d, axis=1) * N.prod() ** 2
    fudge = 0.8
    np.testing.assert_allclose(
        physics.lattice_factor_gauss(jnp.asarray(h), jnp.asarray(recip), jnp.asarray(N), fudge),
        N.prod() * np.exp(-r2 / 0.63 * fudge), rtol=1e-12)
    np.testing.assert_allclose(
        physics.lattice_factor_tophat(jnp.asarray(h), jnp.asarray(recip), jnp.asarray(N), fudge),
        N.prod() * (r2 * fudge < 0.3969), rtol=0)


def c_polarization(K, incident, diffracted, axis):
    i = incident / np.linalg.norm(incident)
    d = diffracted / np.linalg.norm(diffracted, axis=-1, keepdims=True)
    c2t = d @ i
    B = np.cross(i, axis)
    B /= np.linalg.norm(B)
    E = np.cross(B, i)
    E /= np.linalg.norm(E)
    psi = -np.arctan2(d @ B, d @ E)
    return 0.5 * (1 + c2t * c2t - K * np.cos(2 * psi) * (1 - c2t * c2t))


@pytest.mark.parametrize("K", [0.0, 0.5, 0.95, 1.0])
def test_polarization_is_the_c_formula(K):
    inc = np.array([1.0, 0.0, 0.0])
    axis = np.array([0.0, 0.0, 1.0])
    d = RNG.normal(size=(3000, 3))
    d[:, 0] = np.abs(d[:, 0]) + 0.2
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    got = physics.polarization_factor(K, jnp.asarray(inc), jnp.asarray(d), jnp.asarray(axis))
    np.testing.assert_allclose(got, c_polarization(K, inc, d, axis), rtol=1e-13, atol=1e-15)


def test_water_background_units():
    """I_bg = F_w² r_e² Φ t³ 10⁶ N_A / MW with t in metres from µm; ∂/∂t_µm = 3 I/t_µm."""
    fluence, t_um = 1.2e29, 40.0
    expect = 2.57**2 * 7.94079248018965e-30 * fluence * (t_um * 1e-6) ** 3 * 1e6 * 6.02214179e23 / 18.0
    assert float(physics.water_background(fluence, t_um)) == pytest.approx(expect, rel=1e-14)
    g = jax.grad(physics.water_background, argnums=(0, 1))(fluence, t_um)
    assert float(g[0]) == pytest.approx(expect / fluence, rel=1e-12)
    assert float(g[1]) == pytest.approx(3 * expect / t_um, rel=1e-12)


def test_nearest_structure_factor_gradients_reach_the_grid_and_default_F():
    grid = jnp.asarray(RNG.uniform(10, 100, (5, 5, 5)))
    lo, hi = (-2, -2, -2), (2, 2, 2)
    hkl = jnp.asarray([[1.2, -0.4, 0.49], [7.0, 0.0, 0.0]])  # inside → F[1, 0, 0]; outside → default

    def f(grid, default_F):
        return jnp.sum(physics.structure_factor_nearest(hkl, grid, lo, hi, default_F, True) ** 2)

    g_grid, g_def = jax.grad(f, argnums=(0, 1))(grid, 33.0)
    expect = np.zeros((5, 5, 5))
    expect[3, 2, 2] = 2 * float(grid[3, 2, 2])
    np.testing.assert_allclose(g_grid, expect)
    assert float(g_def) == pytest.approx(66.0)


def test_tricubic_reproduces_cubic_polynomials_and_is_linear_in_the_grid():
    lo = (-4, -4, -4)
    ax = np.arange(-4, 5, dtype=float)
    H, K, L = np.meshgrid(ax, ax, ax, indexing="ij")
    poly = lambda h, k, l: 1 + 0.5 * h - 0.2 * k * k + 0.03 * h * k * l + 0.01 * l**3  # noqa: E731
    grid = jnp.asarray(poly(H, K, L))
    hkl = RNG.uniform(-1.9, 1.9, (50, 3))
    got = physics.structure_factor_tricubic(jnp.asarray(hkl), grid, lo)
    np.testing.assert_allclose(got, poly(hkl[:, 0], hkl[:, 1], hkl[:, 2]), rtol=1e-11, atol=1e-11)
    # linear in F: the gradient with respect to the grid sums to 1 (partition of unity)
    g = jax.grad(lambda F: physics.structure_factor_tricubic(jnp.asarray(hkl[:1]), F, lo)[0])(grid)
    assert float(jnp.sum(g)) == pytest.approx(1.0, rel=1e-12)
    assert int(jnp.sum(g != 0)) == 64


# ---------------------------------------------------------------------------
# Part 2: user units at the edge, as seen by derivatives

@pytest.fixture(scope="module")
def exp():
    e = from_cli_args("-cell 70 80 90 88 92 95 -default_F 100 -lambda 1.3 -N 5 -distance 90 "
                      "-detpixels 64 -pixel 0.1 -misset 3 4 5 -dispersion 2 -dispsteps 3 "
                      "-divergence 0.4 -divsteps 3 -detector_thick 100 -detector_thicksteps 2 "
                      "-detector_abs 300".split())
    return dataclasses.replace(e, params=jax.tree_util.tree_map(jnp.asarray, e.params))


def d_dparam(fn, params, field, index=None):
    """Forward-mode derivative of fn(params) along one entry of one Params field."""
    x = jnp.asarray(getattr(params, field))
    e = jnp.zeros_like(x) if index is not None else jnp.ones_like(x)
    if index is not None:
        e = e.at[index].set(1.0)
    return jax.jvp(lambda t: fn(params.replace(**{field: x + t * e})), (0.0,), (1.0,))[1]


def test_distance_and_beam_centre_are_per_mm(exp):
    frame = lambda p: det_geo.detector_frame(exp.setup, p)  # noqa: E731
    assert float(d_dparam(lambda p: frame(p).distance, exp.params, "distance")) == pytest.approx(1e-3)
    # MOSFLM: Sbeam = Xbeam + ½ pixel, Fbeam = Ybeam + ½ pixel (metres per mm = 1e-3)
    assert float(d_dparam(lambda p: frame(p).Sbeam, exp.params, "beam_center", 0)) == pytest.approx(1e-3)
    assert float(d_dparam(lambda p: frame(p).Fbeam, exp.params, "beam_center", 1)) == pytest.approx(1e-3)
    assert float(d_dparam(lambda p: frame(p).pixel_size, exp.params, "pixel_size")) == pytest.approx(1e-3)
    assert float(d_dparam(lambda p: frame(p).Fbeam, exp.params, "pixel_size")) == pytest.approx(0.5e-3)


def test_rotations_are_per_degree(exp):
    """Detector rotation about x turns fdet by (π/180)·(x̂ × fdet) per degree; misset likewise
    for the reciprocal vectors; 2θ about its axis."""
    p0 = exp.params.replace(detector_rotation=jnp.zeros(3), twotheta=jnp.asarray(0.0))
    fdet = lambda p: det_geo.detector_frame(exp.setup, p).fdet  # noqa: E731
    f0 = np.asarray(fdet(p0))
    for i in range(3):
        axis = np.eye(3)[i]
        np.testing.assert_allclose(d_dparam(fdet, p0, "detector_rotation", i),
                                   math.pi / 180 * np.cross(axis, f0), atol=1e-15)
    tt_axis = np.asarray(exp.params.twotheta_axis)
    np.testing.assert_allclose(d_dparam(fdet, p0, "twotheta"), math.pi / 180 * np.cross(tt_axis, f0),
                               atol=1e-15)
    pz = exp.params.replace(misset=jnp.zeros(3))
    recip = lambda p: crystal_geo.lattice(exp.setup, p).reciprocal  # noqa: E731
    r0 = np.asarray(recip(pz))
    for i in range(3):
        np.testing.assert_allclose(d_dparam(recip, pz, "misset", i),
                                   math.pi / 180 * np.cross(np.eye(3)[i], r0), atol=1e-12)


def test_cell_is_per_angstrom_and_per_degree(exp):
    """d|a|/da = 1 Å/Å; the volume's derivative with respect to α (deg) is (π/180)·∂V/∂α."""
    lat = lambda p: crystal_geo.lattice(exp.setup, p)  # noqa: E731
    alen = lambda p: jnp.linalg.norm(lat(p).real[0])  # noqa: E731
    assert float(d_dparam(alen, exp.params, "cell", 0)) == pytest.approx(1.0, rel=1e-12)
    assert float(d_dparam(alen, exp.params, "cell", 3)) == pytest.approx(0.0, abs=1e-12)
    a, b, c, al, be, ga = [float(x) for x in exp.params.cell]

    def volume(alpha_deg):
        ca, cb, cg = (math.cos(math.radians(x)) for x in (alpha_deg, be, ga))
        return a * b * c * math.sqrt(1 - ca * ca - cb * cb - cg * cg + 2 * ca * cb * cg)

    fd = (volume(al + 1e-5) - volume(al - 1e-5)) / 2e-5
    assert float(d_dparam(lambda p: lat(p).volume, exp.params, "cell", 3)) == pytest.approx(fd, rel=1e-7)


def test_wavelength_dispersion_and_divergence_units(exp):
    """λ per Å (sources in metres), dispersion per percent, divergence per mrad."""
    src = lambda p: beam_geo.sources(exp.setup, p)  # noqa: E731
    lam = lambda p: src(p).wavelength  # noqa: E731
    lam0 = float(exp.params.wavelength) * 1e-10
    np.testing.assert_allclose(d_dparam(lam, exp.params, "wavelength"),
                               np.asarray(lam(exp.params)) / float(exp.params.wavelength), rtol=1e-12)
    # three ticks spanning ±dispersion/2: the extreme wavelengths move by ∓½·λ0/100 per percent
    w = np.asarray(d_dparam(lam, exp.params, "dispersion"))
    assert w.min() == pytest.approx(-0.5 * lam0 / 100, rel=1e-12)
    assert w.max() == pytest.approx(0.5 * lam0 / 100, rel=1e-12)
    # the divergence raster's outer sources tilt by ½ mrad per mrad of range (MOSFLM: the
    # horizontal tilt moves the incident direction along z, the vertical one along y)
    for field, comp in (("hdivrange", 2), ("vdivrange", 1)):
        tilt = np.asarray(d_dparam(lambda p: src(p).incident[:, comp], exp.params, field))
        assert np.abs(tilt).max() == pytest.approx(0.5e-3, rel=1e-6), field


def test_thickness_and_attenuation_are_per_micron(exp):
    setup = exp.setup
    step = lambda p: det_geo.layer_thickness(setup, p)  # noqa: E731
    assert float(d_dparam(step, exp.params, "thickness")) == pytest.approx(1e-6 / setup.thick_divisor)
    # capture of a normal ray in one layer of thickness Δ: exp(−tΔ/ℓ) − exp(−(t+1)Δ/ℓ), ℓ in µm
    odet = jnp.asarray([1.0, 0.0, 0.0])

    def capture(p):
        mu = 1.0 / (p.attenuation_depth * 1e-6)
        return det_geo.capture_fraction(setup, mu, odet, odet, step(p))  # (T, 1, 1)

    ell = float(exp.params.attenuation_depth)
    delta = float(exp.params.thickness) / setup.thick_divisor
    expect = [(t * delta / ell**2) * math.exp(-t * delta / ell)
              - ((t + 1) * delta / ell**2) * math.exp(-(t + 1) * delta / ell) for t in range(setup.thicksteps)]
    np.testing.assert_allclose(np.ravel(d_dparam(capture, exp.params, "attenuation_depth")), expect,
                               rtol=1e-10)
