"""Refinement parameterisations (``nanobragg_jax.refine``): identities, check_grads, Fisher.

Each parameterisation is checked on its own (values at the reference, order 1
and 2 ``check_grads``), then all of them together through the sparse model
``simulate_pixels`` on pixels with non-zero intensity (order 1 in the fast
tier, order 2 in the slow tier).
"""

from __future__ import annotations

import dataclasses
import functools

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from jax.test_util import check_grads  # noqa: E402

from nanobragg_jax import refine as R  # noqa: E402
from nanobragg_jax.experiment import from_cli_args  # noqa: E402
from nanobragg_jax.geometry import detector as det_geo  # noqa: E402
from nanobragg_jax.geometry import vectors as V  # noqa: E402
from nanobragg_jax.pixels import simulate_pixels  # noqa: E402
from nanobragg_jax.simulate import simulate  # noqa: E402
from nanobragg_jax.spots import predict_spots, shoeboxes  # noqa: E402


def _exp(flags):
    exp = from_cli_args(flags.split())
    return exp.setup, jax.tree_util.tree_map(jnp.asarray, exp.params)


# ---------------------------------------------------------------------------------------------
# each parameterisation on its own


@pytest.mark.parametrize("r", [[0.0, 0.0, 0.0], [1e-3, -2e-3, 5e-4], [0.3, -0.2, 0.5]])
def test_rotvec_to_matrix(r):
    r = jnp.asarray(r)
    M = np.asarray(R.rotvec_to_matrix(r))
    np.testing.assert_allclose(M @ M.T, np.eye(3), atol=1e-14)
    assert abs(np.linalg.det(M) - 1) < 1e-14
    theta = float(jnp.linalg.norm(r))
    if theta > 0:
        ref = np.asarray(V.axis_angle_matrix(r / theta, jnp.asarray(theta)))
        np.testing.assert_allclose(M, ref, atol=1e-15)
    else:
        np.testing.assert_array_equal(M, np.eye(3))
    # jitted: a few compiled derivatives, shared by the three cases (eager: hundreds of operations)
    check_grads(jax.jit(R.rotvec_to_matrix), (r,), order=2, modes=("fwd", "rev"), eps=1e-4, rtol=1e-6)


def test_rotvec_derivative_at_identity_is_the_generator():
    J = np.asarray(jax.jacfwd(R.rotvec_to_matrix)(jnp.zeros(3)))  # (3, 3, 3)
    for i in range(3):
        e = np.zeros(3)
        e[i] = 1
        np.testing.assert_allclose(J[:, :, i], np.asarray(R._skew(jnp.asarray(e))), atol=1e-15)


@pytest.mark.parametrize("lattice,x", [("cubic", [50.0]), ("tetragonal", [50.0, 70.0]),
                                       ("hexagonal", [50.0, 70.0]), ("rhombohedral", [50.0, 80.0]),
                                       ("orthorhombic", [50.0, 60.0, 70.0]),
                                       ("monoclinic", [50.0, 60.0, 70.0, 100.0]),
                                       ("triclinic", [50.0, 60.0, 70.0, 85.0, 95.0, 100.0])])
def test_cell_from_lattice(lattice, x):
    x = jnp.asarray(x)
    cell = np.asarray(R.cell_from_lattice(x, lattice))
    np.testing.assert_allclose(R.lattice_parameters(cell, lattice), np.asarray(x))
    B = np.asarray(R.b_matrix(jnp.asarray(cell)))
    # B's columns are a*, b*, c*; the real vectors (rows of B⁻¹) have lengths a, b, c
    real = np.linalg.inv(B)
    np.testing.assert_allclose(np.linalg.norm(real, axis=1), cell[:3], rtol=1e-12)
    check_grads(lambda y: R.reciprocal_matrix(jnp.eye(3), R.cell_from_lattice(y, lattice)), (x,),
                order=2, modes=("fwd", "rev"), eps=1e-3, rtol=1e-5)
    with pytest.raises(ValueError):
        R.cell_from_lattice(jnp.zeros(len(x) + 1), lattice)


def test_matrix_orientation_reproduces_the_image_and_U():
    setup, params = _exp("-cell 70 80 90 85 95 105 -default_F 100 -lambda 1 -N 5 -distance 80 "
                         "-detpixels 24 -pixel 1 -misset 10 20 30")
    ms, mp, U0 = R.to_matrix_orientation(setup, params)
    U0 = np.asarray(U0)
    np.testing.assert_allclose(U0 @ U0.T, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(np.asarray(R.reciprocal_matrix(R.orientation(jnp.zeros(3), U0),
                                                              params.cell)),
                               np.asarray(mp.recip_matrix), rtol=1e-12, atol=1e-16)
    a, b = np.asarray(simulate(setup, params)), np.asarray(simulate(ms, mp))
    assert a.sum() > 0
    np.testing.assert_allclose(b, a, rtol=1e-9, atol=1e-9 * a.max())


def test_crystal_size():
    np.testing.assert_array_equal(np.asarray(R.crystal_size(jnp.asarray(7.0))), [7, 7, 7])
    np.testing.assert_array_equal(np.asarray(R.crystal_size(jnp.asarray([5.0, 6, 7]))), [5, 6, 7])


def test_anisotropic_mosaic_isotropic_limit_and_grads():
    setup, params = _exp("-cell 60 60 60 90 90 90 -default_F 100 -lambda 1 -N 4 -distance 80 "
                         "-detpixels 24 -pixel 1 -mosaic 0.5 -mosaic_dom 4 -misset 2 3 4")
    fields = R.anisotropic_mosaic(jnp.full(3, 0.5), params.mosaic_axes, params.mosaic_caps)
    a = np.asarray(simulate(setup, params))
    b = np.asarray(simulate(setup, params.replace(**fields)))
    assert a.sum() > 0
    np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-10 * a.max())
    U = np.asarray(R.rotvec_to_matrix(jnp.asarray([0.1, 0.2, 0.3])))

    def f(s):
        out = R.anisotropic_mosaic(s, params.mosaic_axes, params.mosaic_caps, U)
        return out["mosaic_caps"][:, None] * out["mosaic_axes"]

    # jitted: a few compiled derivatives (eager check_grads compiles hundreds of single operations)
    check_grads(jax.jit(f), (jnp.asarray([0.3, 0.5, 0.7]),), order=2, modes=("fwd", "rev"), eps=1e-4,
                rtol=1e-6)


# Each convention is a new setup with an order-2 check_grads (8-10 s each warm, more cold):
# the default tier keeps the plain and the rotated detector, the slow tier the conventions.
@pytest.mark.parametrize("flags", ["", "-detector_rotx 3"] + [
    pytest.param(f, marks=pytest.mark.slow) for f in ("-xds -twotheta 0", "-adxv", "-denzo")])
def test_detector_pose_moves_pix0_by_the_shift(flags):
    setup, params = _exp("-cell 60 60 60 90 90 90 -default_F 100 -lambda 1 -N 4 -distance 80 "
                         "-detpixels 24 -pixel 1 " + flags)
    if setup.pivot != "BEAM":
        setup = dataclasses.replace(setup, pivot="BEAM")
    shift = jnp.asarray([0.3, -0.2, 0.5])
    new = params.replace(**R.detector_pose(setup, params, shift))
    f0 = det_geo.detector_frame(setup, params)
    f1 = det_geo.detector_frame(setup, new)
    np.testing.assert_allclose(np.asarray(f1.pix0 - f0.pix0), np.asarray(shift) * 1e-3, atol=1e-15)
    np.testing.assert_allclose(np.asarray(f1.fdet), np.asarray(f0.fdet), atol=1e-15)
    # one jitted function of (setup, params, d): both parametrisations (same Setup) share its
    # compiled derivatives (eager check_grads compiles hundreds of single operations instead)
    check_grads(lambda d: _posed_pix0(setup, params, d), (jnp.zeros(6),), order=2,
                modes=("fwd", "rev"), eps=1e-3, rtol=1e-6)


@functools.partial(jax.jit, static_argnums=0)
def _posed_pix0(setup, params, d):
    return det_geo.detector_frame(setup, params.replace(**R.detector_pose(setup, params, d[:3], d[3:]))).pix0


def _panel_stack():
    from nanobragg_jax.panels import PanelStack

    exp = from_cli_args("-cell 70 80 90 90 90 90 -default_F 100 -N 3 -lambda 1.0 -detpixels_f 12 "
                        "-detpixels_s 10 -pixel 0.8 -oversample 1 -fdet_vector 0 0 1 -sdet_vector 0 -1 0 "
                        "-odet_vector 1 0 0 -distance 60 -Xbeam 1.0 -Ybeam 2.0 -misset 10 20 30".split())
    o, f, s = exp.info["pix0"] * 1e3, exp.info["fdet"], exp.info["sdet"]
    stack = PanelStack(origin=np.stack([o, o + np.array([0.0, -3.0, 5.0])]), fast=np.stack([f, f]),
                       slow=np.stack([s, s]), n_fast=12, n_slow=10, pixel_size=0.8)
    return exp, stack


def _panel_pose_loss():
    """Two 12 × 10 panels with spots on both; a weighted sum of their (sparse) photons."""
    from nanobragg_jax.panels import simulate_panels

    exp, stack = _panel_stack()
    setup, params = exp.setup, jax.tree_util.tree_map(jnp.asarray, exp.params)
    image = np.asarray(simulate_panels(setup, params, stack))
    P, S, F = np.nonzero(image > 1e-2 * image.max())
    assert set(P.tolist()) == {0, 1}
    w = jnp.asarray(np.random.default_rng(3).uniform(0.5, 1.5, P.size)) / image.sum()

    def loss(x):  # x (2, 6): shift (mm), rotation vector (mrad) per panel
        moved = R.panel_pose(stack, x[:, :3], 1e-3 * x[:, 3:])
        return jnp.sum(w * simulate_pixels(setup, params, S, F, P, panels=moved))

    return stack, loss


def test_panel_pose_identity_and_rigid_motion():
    _, stack = _panel_stack()
    same = R.panel_pose(stack, jnp.zeros((2, 3)), jnp.zeros((2, 3)))
    np.testing.assert_allclose(np.asarray(same.origin), stack.origin, atol=1e-15)
    r = jnp.asarray([[0.0, 0.0, 0.0], [0.01, -0.02, 0.03]])
    moved = R.panel_pose(stack, jnp.asarray([1.0, 2.0, 3.0]), r)  # one shift for all panels
    np.testing.assert_allclose(np.asarray(moved.origin[0]) - stack.origin[0], [1.0, 2.0, 3.0], atol=1e-12)
    # the centre of a rotated panel moves by the shift only; its axes stay orthonormal
    np.testing.assert_allclose(np.asarray(moved.centers()[1] - stack.centers()[1]), [1.0, 2.0, 3.0],
                               atol=1e-12)
    np.testing.assert_allclose(float(jnp.dot(moved.fast[1], moved.slow[1])), 0.0, atol=1e-14)


@pytest.mark.slow  # compiles the kernel's jvp and vjp: ~45 s at load 6
def test_panel_pose_check_grads_through_sparse_pixels():
    """Order 1 (forward and reverse) on pixels with intensity on both panels."""
    _, loss = _panel_pose_loss()
    x0 = jnp.full((2, 6), 0.01)
    assert float(loss(x0)) > 0
    check_grads(loss, (x0,), order=1, modes=("fwd", "rev"), eps=1e-3, atol=1e-7, rtol=1e-4)


@pytest.mark.slow  # second order through the kernel: ~160 s at load 6
def test_panel_pose_check_grads_order2():
    _, loss = _panel_pose_loss()
    check_grads(loss, (jnp.full((2, 6), 0.01),), order=2, modes=("fwd", "rev"), eps=1e-3, atol=1e-7,
                rtol=1e-3)


def test_detector_pose_refuses_sample_pivot():
    setup, params = _exp("-cell 60 60 60 90 90 90 -default_F 100 -detpixels 8 -xds")
    with pytest.raises(NotImplementedError, match="beam-pivot"):
        R.detector_pose(setup, params, jnp.zeros(3))


def test_outside_kernel_parameterisations():
    setup, params = _exp("-cell 60 60 60 90 90 90 -default_F 100 -lambda 1 -N 4 -distance 80 "
                         "-detpixels 24 -pixel 1")
    S = jnp.asarray([0, 5, 11, 12, 23])
    F = jnp.asarray([0, 7, 11, 12, 20])
    stol = R.pixel_stol(setup, params, S, F)
    # the direct-beam pixel (MOSFLM centre 12, 12 → between pixels 11 and 12) is near s = 0
    assert float(stol[2]) < 0.02 and float(stol[0]) > 0.1
    # against 2θ from the kernel's detector frame: s = sin θ / λ
    frame = det_geo.detector_frame(setup, params)
    pos = np.asarray(frame.pix0) + (np.asarray(F)[:, None] + 0.5) * 1e-3 * np.asarray(frame.fdet) + (
        np.asarray(S)[:, None] + 0.5) * 1e-3 * np.asarray(frame.sdet)
    tth = np.arccos(pos[:, 0] / np.linalg.norm(pos, axis=1))
    np.testing.assert_allclose(np.asarray(stol), np.sin(tth / 2) / 1.0, rtol=1e-12)
    I = jnp.asarray([1.0, 2.0, 3.0, 4.0, 5.0])
    check_grads(lambda g: R.scale_bfactor(I, stol, g[0], g[1]), (jnp.asarray([1.3, 20.0]),),
                order=2, modes=("fwd", "rev"), eps=1e-4, rtol=1e-6)
    check_grads(lambda lam: R.pixel_stol(setup, params.replace(wavelength=lam), S, F),
                (jnp.asarray(1.0),), order=2, modes=("fwd", "rev"), eps=1e-5, rtol=1e-5)
    # structure factors
    grid = jnp.ones((3, 3, 3)) * 10.0
    hkl = np.array([[0, 0, 1], [1, -1, 0]])
    out = R.structure_factor_scale(jnp.asarray([np.log(2.0), 0.0]), grid, hkl, (-1, -1, -1))
    assert float(out[1, 1, 2]) == pytest.approx(20.0) and float(out[2, 0, 1]) == pytest.approx(10.0)
    assert float(jnp.sum(out)) == pytest.approx(280.0)
    check_grads(lambda x: R.structure_factor_scale(x, grid, hkl, (-1, -1, -1)),
                (jnp.asarray([0.1, -0.2]),), order=2, modes=("fwd", "rev"), eps=1e-4, rtol=1e-6)
    # background plane
    box = jnp.asarray([0, 0, 1, 1, 1])
    c = jnp.asarray([[2.0, 0.1, -0.1], [3.0, 0.0, 0.2]])
    bg = R.background_plane(c, S, F, box, jnp.asarray([0.5, 12.0]), jnp.asarray([0.5, 12.0]))
    np.testing.assert_allclose(np.asarray(bg), [2.0, 2.0 + 0.5 - 0.7, 3.0 - 0.1, 3.1, 3.0 + 0.2 * 8.5])
    check_grads(lambda c: R.background_plane(c, S, F, box, jnp.asarray([0.5, 12.0]),
                                             jnp.asarray([0.5, 12.0])), (c,), order=2,
                modes=("fwd", "rev"), eps=1e-3, rtol=1e-6)


def test_spectrum():
    setup, params = _exp("-cell 60 60 60 90 90 90 -default_F 100 -lambda 1.5 -detpixels 8")
    out = R.spectrum(setup, params, jnp.asarray(0.01), jnp.asarray(0.02))
    assert float(out["wavelength"]) == pytest.approx(1.5 * 1.02 + 0.01)
    file_setup = dataclasses.replace(setup, source_mode="file")
    p = params.replace(source_wavelengths=jnp.asarray([1.0, 2.0]))
    out = R.spectrum(file_setup, p, jnp.asarray(0.0), jnp.asarray(0.1))
    np.testing.assert_allclose(np.asarray(out["source_wavelengths"]), [1.1, 2.2])


def test_fisher_information_linear_model():
    """For μ = X θ, F = Xᵀ diag(1/μ) X exactly."""
    X = jnp.asarray(np.random.default_rng(0).uniform(1, 2, size=(30, 3)))
    theta = jnp.asarray([1.0, 2.0, 3.0])
    F = R.fisher_information(lambda t: X @ t, theta)
    mu = X @ theta
    np.testing.assert_allclose(np.asarray(F), np.asarray((X / mu[:, None]).T @ X), rtol=1e-12)
    se = np.asarray(R.standard_errors(F))
    np.testing.assert_allclose(se, np.sqrt(np.diag(np.linalg.inv(np.asarray(F)))), rtol=1e-10)
    w = jnp.zeros(30).at[:10].set(1.0)
    Fw = R.fisher_information(lambda t: X @ t, theta, weights=w)
    np.testing.assert_allclose(np.asarray(Fw), np.asarray((X[:10] / mu[:10, None]).T @ X[:10]),
                               rtol=1e-12)


def test_pad_shots_weights_and_active_covariance():
    """Padded shots repeat shot 0 with weight 0; their parameters' zero rows and columns of F
    are left out of F⁻¹ (the active block's inverse, zeros elsewhere; no NaN)."""
    assert [R.shot_bucket(n) for n in (0, 1, 2, 3, 4, 5, 9)] == [1, 1, 2, 4, 4, 8, 16]
    U = np.arange(3 * 2.0).reshape(3, 2)
    (Up, idx), w = R.pad_shots((U, np.arange(3)))
    np.testing.assert_array_equal(np.asarray(Up), np.concatenate([U, U[:1]]))
    np.testing.assert_array_equal(np.asarray(idx), [0, 1, 2, 0])
    np.testing.assert_array_equal(np.asarray(w), [1, 1, 1, 0])
    (same,), w8 = R.pad_shots((U,), 3)
    assert same.shape == (3, 2) and np.asarray(w8).tolist() == [1, 1, 1]
    with pytest.raises(ValueError, match="smaller than the shot count 3"):
        R.pad_shots(U, 2)
    with pytest.raises(ValueError, match="leading"):
        R.pad_shots((U, np.arange(4)))
    with pytest.raises(ValueError, match="scalar"):
        R.pad_shots((U, 1.0))
    # a model whose last parameter belongs to a padded (zero-weight) shot
    X = jnp.asarray(np.random.default_rng(0).uniform(1, 2, size=(30, 4)))
    theta = jnp.asarray([1.0, 2.0, 3.0, 4.0])
    weights = jnp.ones(30).at[20:].set(0.0)
    X = X.at[:20, 3].set(0.0)  # parameter 3 reaches only the padded pixels
    F = R.fisher_information(lambda t: X @ t, theta, weights=weights)
    np.testing.assert_array_equal(np.asarray(F)[3], 0.0)
    active = np.array([True, True, True, False])
    C = np.asarray(R.covariance(F, active))
    np.testing.assert_allclose(C[:3, :3], np.linalg.inv(np.asarray(F)[:3, :3]), rtol=1e-10)
    np.testing.assert_array_equal(C[3], 0.0)
    se = np.asarray(R.standard_errors(F, active))
    assert np.all(np.isfinite(se)) and se[3] == 0.0


# ---------------------------------------------------------------------------------------------
# all together, through the sparse kernel


def _joint_model():
    """θ (step units) → photons in the shoeboxes of the four brightest spots of a mosaic,
    two-wavelength still with an F grid, through every kernel-side parameterisation plus
    scale/B, log F (of three of those spots) and a background plane per shoebox."""
    setup, params = _exp("-cell 40 40 60 90 90 90 -default_F 100 -lambda 1 -N 5 -distance 80 "
                         "-detpixels 40 -pixel 0.5 -misset 3 5 7 -mosaic 0.3 -mosaic_dom 2 "
                         "-dispersion 0.5 -dispsteps 2")
    lo, hi = (-8, -8, -8), (8, 8, 8)
    # A flat grid: the nearest-neighbour lookup of F is a step function of h, and with
    # unequal neighbours a finite difference across a cell edge in a box's outer
    # pixels would see the jump; with equal F (log-F scales 0 at the reference) it is
    # continuous there.
    grid = np.full(tuple(b - a + 1 for a, b in zip(lo, hi)), 100.0)
    setup = dataclasses.replace(setup, has_hkl=True, hkl_min=lo, hkl_max=hi)
    params = params.replace(F_grid=jnp.asarray(grid))
    setup, params, U0 = R.to_matrix_orientation(setup, params)
    image = np.asarray(simulate(setup, params))
    # the four brightest predicted spots: their 5×5 shoeboxes, their reflections' F
    spots = predict_spots(setup, params)
    s_c, f_c = spots.pixel
    spots = spots.select(np.argsort(-image[s_c, f_c])[:4])
    boxes = shoeboxes(spots, setup, half_size=2)
    S, F, box = boxes.slow, boxes.fast, jnp.asarray(boxes.spot)
    hkl = spots.hkl[:3]
    # name, size, step (natural units)
    layout = [("rotvec", 3, 1e-4), ("cell", 2, 1e-2), ("N", 3, 1e-2), ("mosaic", 3, 1e-2),
              ("shift", 3, 1e-2), ("rot", 3, 1e-2), ("spectrum", 2, 1e-4), ("scale", 1, 1e-3),
              ("B", 1, 0.1), ("logF", 3, 1e-3), ("bg", 12, 1e-2)]
    steps = np.concatenate([np.full(n, st) for _, n, st in layout])
    ref = np.concatenate([np.zeros(3), [40.0, 60.0], [5.0, 5.0, 5.0], [0.3, 0.3, 0.3], np.zeros(3),
                          np.zeros(3), [0.0, 0.0], [1.0], [10.0], np.zeros(3),
                          np.tile([1.0, 0.01, -0.01], 4)])
    cs, cf = jnp.asarray(spots.slow), jnp.asarray(spots.fast)

    def model(u):
        x = jnp.asarray(ref) + u * jnp.asarray(steps)
        parts, k = {}, 0
        for name, n, _ in layout:
            parts[name], k = x[k:k + n], k + n
        cell = R.cell_from_lattice(parts["cell"], "tetragonal")
        p = params.replace(
            recip_matrix=R.reciprocal_matrix(R.orientation(parts["rotvec"], U0), cell),
            N=R.crystal_size(parts["N"]),
            F_grid=R.structure_factor_scale(parts["logF"], params.F_grid, hkl, lo),
            **R.anisotropic_mosaic(parts["mosaic"], params.mosaic_axes, params.mosaic_caps),
            **R.detector_pose(setup, params, parts["shift"], parts["rot"]),
            **R.spectrum(setup, params, parts["spectrum"][0], parts["spectrum"][1]))
        photons = simulate_pixels(setup, p, S, F)
        photons = R.scale_bfactor(photons, R.pixel_stol(setup, p, S, F), parts["scale"][0],
                                  parts["B"][0])
        return photons + R.background_plane(parts["bg"].reshape(4, 3), S, F, box, cs, cf)

    w = jnp.asarray(np.random.default_rng(2).normal(size=len(S)))
    return jax.jit(lambda u: jnp.sum(w * model(u))), model, len(steps)


@pytest.mark.slow  # 36 parameters through simulate_pixels: ~60 s on 2 cores (each parameterisation alone is in the default tier)
def test_joint_parameterisation_check_grads_order1():
    f, model, n = _joint_model()
    u0 = jnp.zeros(n)
    mu = np.asarray(model(u0))
    assert np.all(mu > 0) and mu.max() > 10
    g = np.asarray(jax.grad(f)(u0))
    assert np.all(g != 0), np.nonzero(g == 0)
    check_grads(f, (u0,), order=1, modes=("fwd", "rev"), eps=0.25, atol=1e-8, rtol=1e-4)


@pytest.mark.slow
def test_joint_parameterisation_check_grads_order2():
    """Order 2 on every parameter but log F.  A log-F step makes neighbouring F unequal, and
    the nearest-neighbour lookup of F is a step function of h: second differences across a
    cell edge in a box's outer pixels see the jump (log F's own second derivative is checked
    in test_outside_kernel_parameterisations)."""
    f, _, n = _joint_model()
    keep = jnp.ones(n).at[21:24].set(0.0)  # layout: log F is entries 21–23
    # eps 0.1 step units: at 0.5 the second difference's truncation error (third derivatives
    # of the spot profile) alone was 0.6 % of the directional second derivative
    check_grads(lambda u: f(u * keep), (jnp.zeros(n),), order=2, modes=("fwd", "rev"), eps=0.1,
                atol=1e-8, rtol=2e-3)
