"""The pieces of the simulator against closed forms (no reference images involved)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

jax.config.update("jax_enable_x64", True)

import nanobragg_jax as nb  # noqa: E402
from nanobragg_jax import kernel, physics  # noqa: E402
from nanobragg_jax.geometry import crystal as crystal_geo  # noqa: E402
from nanobragg_jax.geometry import detector as det_geo  # noqa: E402


def _exp(flags: str):
    return nb.from_cli_args(flags.split())


def _p64(exp):
    return jax.tree_util.tree_map(jnp.asarray, exp.params)


# ---------------------------------------------------------------- lattice transforms

def test_sincg_limits():
    N = 5.0
    assert float(physics.sincg(jnp.float64(0.0), N)) == pytest.approx(N)
    for k in (1, 2, 7):
        assert abs(float(physics.sincg(jnp.float64(k * math.pi), N))) == pytest.approx(N, rel=1e-12)
    x = 0.3
    assert float(physics.sincg(jnp.float64(x), N)) == pytest.approx(math.sin(N * x) / math.sin(x), rel=1e-12)
    # first zero of the grating function at x = π/N
    assert float(physics.sincg(jnp.float64(math.pi / N), N)) == pytest.approx(0.0, abs=1e-12)


def test_sinc3_limits():
    assert float(physics.sinc3(jnp.float64(0.0))) == 1.0
    x = 2.0
    expect = 3.0 * (math.sin(x) - x * math.cos(x)) / x**3
    assert float(physics.sinc3(jnp.float64(x))) == pytest.approx(expect, rel=1e-12)
    assert float(physics.sinc3(jnp.float64(1e-6))) == pytest.approx(1.0, abs=1e-12)


def test_square_lattice_factor_peaks_at_N_cubed():
    N = jnp.array([3.0, 4.0, 5.0])
    f = physics.lattice_factor_square(jnp.array([[2.0, -1.0, 3.0]]), N)
    assert abs(float(f[0])) == pytest.approx(60.0, rel=1e-12)


# ---------------------------------------------------------------- cell

@pytest.mark.parametrize("cell", [(100, 100, 100, 90, 90, 90), (41, 52, 133, 90, 90, 90), (70, 80, 90, 90, 104.5, 90)])
def test_cell_reciprocal_identities(cell):
    exp = _exp(f"-cell {' '.join(map(str, cell))} -default_F 1 -detpixels 8")
    lat = crystal_geo.lattice(exp.setup, _p64(exp))
    real, recip = np.asarray(lat.real), np.asarray(lat.reciprocal)
    np.testing.assert_allclose(real @ recip.T, np.eye(3), atol=1e-12)
    lengths = np.sqrt((real**2).sum(1))
    np.testing.assert_allclose(lengths, cell[:3], rtol=1e-12)
    cosines = [real[1] @ real[2], real[0] @ real[2], real[0] @ real[1]] / (lengths[[1, 0, 0]] * lengths[[2, 2, 1]])
    np.testing.assert_allclose(np.degrees(np.arccos(cosines)), cell[3:], atol=1e-9)
    np.testing.assert_allclose(float(lat.volume) * abs(np.linalg.det(recip)), 1.0, rtol=1e-12)


def test_triclinic_cell_reproduces_the_c_construction():
    """The C program's standard-setting c* has a wrong z component for triclinic
    cells, so its cell comes out slightly off (it prints 75.0391 85.0136 95.0081
    for 75 85 95).  We reproduce it (docs/c-differences.md): the real vectors keep
    the requested lengths, the angles are the C program's, and a_i·a*_j ∝ δ_ij."""
    exp = _exp("-cell 70 80 90 75 85 95 -default_F 1 -detpixels 8")
    lat = crystal_geo.lattice(exp.setup, _p64(exp))
    real, recip = np.asarray(lat.real), np.asarray(lat.reciprocal)
    lengths = np.sqrt((real**2).sum(1))
    np.testing.assert_allclose(lengths, [70, 80, 90], rtol=1e-12)
    cosines = [real[1] @ real[2], real[0] @ real[2], real[0] @ real[1]] / (lengths[[1, 0, 0]] * lengths[[2, 2, 1]])
    np.testing.assert_allclose(np.degrees(np.arccos(cosines)), [75.0391, 85.0136, 95.0081], atol=6e-5)
    dual = real @ recip.T
    np.testing.assert_allclose(dual, dual[0, 0] * np.eye(3), atol=1e-14)


def test_misset_rotates_reciprocal_vectors():
    base = _exp("-cell 70 80 90 75 85 95 -default_F 1 -detpixels 8")
    rot = _exp("-cell 70 80 90 75 85 95 -default_F 1 -detpixels 8 -misset 0 0 30")
    r0 = np.asarray(crystal_geo.lattice(base.setup, _p64(base)).reciprocal)
    r1 = np.asarray(crystal_geo.lattice(rot.setup, _p64(rot)).reciprocal)
    c, s = math.cos(math.radians(30)), math.sin(math.radians(30))
    Rz = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    np.testing.assert_allclose(r1, r0 @ Rz.T, atol=1e-14)


# ---------------------------------------------------------------- Bragg's law

def test_brightest_spot_obeys_braggs_law():
    """The strongest pixel lies at 2θ = 2 asin(λ/2d) of an integer reflection."""
    exp = _exp("-cell 100 100 100 90 90 90 -default_F 100 -lambda 6.2 -N 5 -distance 100 -detpixels 256 -nopolar")
    img = np.array(nb.simulate(exp.setup, exp.params))
    img[118:139, 118:139] = 0  # leave out the direct beam (the 000 "reflection")
    s, f = np.unravel_index(np.argmax(img), img.shape)
    p = _p64(exp)
    ctx = kernel.build_context(exp.setup, p)
    sp = kernel.sub_paths(exp.setup, ctx, jnp.array([s]), jnp.array([f]))
    hkl = np.asarray(sp.hkl).reshape(3)
    hkl0 = np.round(hkl)
    assert np.all(np.abs(hkl - hkl0) < 0.5 / 5)  # inside the spot
    d_spacing = 100.0 / np.linalg.norm(hkl0)
    two_theta_bragg = 2 * math.asin(6.2 / (2 * d_spacing))
    frame = det_geo.detector_frame(exp.setup, p)
    pos = np.asarray(det_geo.subpixel_positions(exp.setup, frame, jnp.array([s]), jnp.array([f]), 0.0)).reshape(3)
    two_theta_pixel = math.acos(pos @ np.array([1.0, 0, 0]) / np.linalg.norm(pos))
    pixel_angle = 1e-4 / 0.1  # one pixel at 100 mm, rad
    assert abs(two_theta_pixel - two_theta_bragg) < 2 * pixel_angle


def test_scattering_vector_length_is_2sin_theta_over_lambda():
    exp = _exp("-cell 70 80 90 90 104.5 90 -default_F 100 -lambda 1.3 -N 5 -distance 80 -detpixels 32 -oversample 1")
    p = _p64(exp)
    ctx = kernel.build_context(exp.setup, p)
    s, f = jnp.array([3, 17, 30]), jnp.array([29, 4, 11])
    sp = kernel.sub_paths(exp.setup, ctx, s, f)
    hkl = np.asarray(sp.hkl).reshape(3, 3)
    recip = np.asarray(ctx.recip)  # Å⁻¹ rows a*, b*, c*
    q_len = np.linalg.norm(hkl @ recip, axis=1)  # Å⁻¹
    frame = det_geo.detector_frame(exp.setup, p)
    pos = np.asarray(det_geo.subpixel_positions(exp.setup, frame, s, f, 0.0)).reshape(3, 3)
    cos2t = pos @ np.array([1.0, 0, 0]) / np.linalg.norm(pos, axis=1)
    theta = np.arccos(cos2t) / 2
    np.testing.assert_allclose(q_len, 2 * np.sin(theta) / 1.3, rtol=1e-12)


# ---------------------------------------------------------------- detector

def test_solid_angle_of_pixel_and_of_whole_detector():
    exp = _exp("-cell 100 100 100 90 90 90 -default_F 1 -distance 100 -detpixels 200 -pixel 0.5 -oversample 1")
    p = _p64(exp)
    frame = det_geo.detector_frame(exp.setup, p)
    s, f = np.meshgrid(np.arange(200), np.arange(200), indexing="ij")
    pos = det_geo.subpixel_positions(exp.setup, frame, jnp.asarray(s.ravel()), jnp.asarray(f.ravel()), 0.0)
    R = jnp.sqrt(jnp.sum(pos**2, -1)).ravel()
    omega = np.asarray(det_geo.solid_angle(exp.setup, frame, R))
    # one pixel: Ω = (pixel/R)² · (L/R)
    np.testing.assert_allclose(omega[0], (5e-4 / R[0]) ** 2 * 0.1 / R[0], rtol=1e-12)
    # the square detector (100 mm side at 100 mm, beam through its centre + 1 px offset of MOSFLM)
    x0, x1 = -float(frame.Fbeam), 0.1 - float(frame.Fbeam)
    y0, y1 = -float(frame.Sbeam), 0.1 - float(frame.Sbeam)

    def rect(x, y, L=0.1):  # solid angle of the rectangle [0,x]×[0,y] at distance L
        return math.atan(x * y / (L * math.sqrt(x * x + y * y + L * L)))

    exact = rect(x1, y1) - rect(x0, y1) - rect(x1, y0) + rect(x0, y0)
    assert omega.sum() == pytest.approx(exact, rel=2e-5)


def test_point_pixel_solid_angle_is_inverse_square():
    exp = _exp("-cell 100 100 100 90 90 90 -default_F 1 -distance 80 -detpixels 16 -point_pixel")
    frame = det_geo.detector_frame(exp.setup, _p64(exp))
    R = jnp.array([0.08, 0.1])
    np.testing.assert_allclose(np.asarray(det_geo.solid_angle(exp.setup, frame, R)), 1 / np.asarray(R) ** 2)


def test_absorption_layers_sum_to_total_capture():
    exp = _exp("-cell 100 100 100 90 90 90 -default_F 1 -detpixels 16 -detector_abs 300 -detector_thick 200 "
               "-thicksteps 4 -detector_rotx 20")
    p = _p64(exp)
    setup = exp.setup
    frame = det_geo.detector_frame(setup, p)
    step = det_geo.layer_thickness(setup, p)
    d = jnp.broadcast_to(jnp.asarray([0.8, 0.6, 0.0]), (setup.thicksteps, 1, 1, 3))
    mu = 1.0 / 300e-6
    frac = np.asarray(det_geo.capture_fraction(setup, mu, d, frame.odet, step)).ravel()
    rho = float(jnp.dot(jnp.asarray([0.8, 0.6, 0.0]), frame.odet))
    total_depth = float(step) * setup.thicksteps
    assert frac.sum() == pytest.approx(1 - math.exp(-mu * total_depth / rho), rel=1e-12)
    assert np.all(np.diff(frac) < 0)  # deeper layers catch less


# ---------------------------------------------------------------- polarisation

def test_polarisation_unpolarised_and_kahn():
    inc = jnp.array([1.0, 0.0, 0.0])
    axis = jnp.array([0.0, 0.0, 1.0])
    tt = math.radians(40)
    in_plane = jnp.array([math.cos(tt), 0.0, math.sin(tt)])  # scattering in the E-vector plane
    out_plane = jnp.array([math.cos(tt), math.sin(tt), 0.0])
    unpol = 0.5 * (1 + math.cos(tt) ** 2)
    assert float(physics.polarization_factor(0.0, inc, in_plane, axis)) == pytest.approx(unpol)
    # fully polarised along z: no loss out of the E plane, cos²2θ in it
    assert float(physics.polarization_factor(1.0, inc, in_plane, axis)) == pytest.approx(math.cos(tt) ** 2)
    assert float(physics.polarization_factor(1.0, inc, out_plane, axis)) == pytest.approx(1.0)
    assert float(physics.polarization_factor(0.5, inc, inc, axis)) == pytest.approx(1.0)


# ---------------------------------------------------------------- beam centre conventions

@pytest.mark.parametrize("flags,expect_F,expect_S", [
    ("-Xbeam 20 -Ybeam 14", 14.05e-3, 20.05e-3),             # MOSFLM: swap + ½ pixel
    ("-denzo -Xbeam 20 -Ybeam 14", 14.0e-3, 20.0e-3),        # DENZO: swap, no shift
    ("-adxv -Xbeam 20 -Ybeam 14", 20.0e-3, 25.6e-3 - 14.0e-3),  # ADXV: flip slow
    ("-xds -ORGX 80.5 -ORGY 110.25", 80.0e-4, 109.75e-4),    # XDS: origin in pixels (near point)
])
def test_beam_centre_conventions(flags, expect_F, expect_S):
    exp = _exp(f"-cell 100 100 100 90 90 90 -default_F 1 -distance 100 -detpixels 256 {flags}")
    info = exp.info
    if "-xds" in flags:
        F, S = info["Fclose"], info["Sclose"]
    else:
        F, S = info["Fbeam"], info["Sbeam"]
    assert F == pytest.approx(expect_F, abs=1e-12)
    assert S == pytest.approx(expect_S, abs=1e-12)
