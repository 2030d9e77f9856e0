"""compat: the PyTorch port's API over the JAX core.

What is checked:
* the module layout and constructors of the port (``nanobrag_torch`` → ``compat``);
* an unconfigured ``Detector()`` with the cubic crystal is the C program's default run;
* compat images equal ``nanobragg_jax.simulate`` for the equivalent command line, and the
  C program's golden images for golden cases written as compat configs;
* the port's gradient scenarios (tests/test_gradients.py there) re-expressed with
  ``jax.grad`` / ``jax.jacfwd`` against central differences;
* the crystal's and detector's properties against the core.
"""

from __future__ import annotations

import dataclasses
import os

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import golden  # noqa: E402
import nanobragg_jax as nb  # noqa: E402
from nanobragg_jax.geometry import crystal as crystal_geo  # noqa: E402

import compat  # noqa: E402
from compat.config import (  # noqa: E402
    BeamConfig,
    CrystalConfig,
    CrystalShape,
    DetectorConfig,
    DetectorConvention,
    DetectorPivot,
    NoiseConfig,
)
from compat.models.crystal import Crystal  # noqa: E402
from compat.models.detector import Detector  # noqa: E402
from compat.simulator import Simulator  # noqa: E402

CUBIC = dict(cell_a=100.0, cell_b=100.0, cell_c=100.0, cell_alpha=90.0, cell_beta=90.0, cell_gamma=90.0)
TRICLINIC = dict(cell_a=70.0, cell_b=80.0, cell_c=90.0, cell_alpha=75.0, cell_beta=85.0, cell_gamma=95.0)
needs_golden = pytest.mark.usefixtures("golden_corpus")  # fails, never skips, without the corpus


@pytest.fixture(autouse=True, scope="module")
def jax_results():
    """These tests check JAX results; torch may be imported by another test module of the
    same session, which would switch plain-number inputs to torch results (compat._arrays)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("NANOBRAGG_COMPAT_ARRAYS", "jax")
    yield
    mp.undo()


def make_sim(crystal_kw, detector_kw, beam_kw=None, **sim_kw):
    cc = CrystalConfig(**crystal_kw)
    return Simulator(Crystal(cc), Detector(DetectorConfig(**detector_kw)), crystal_config=cc,
                     beam_config=BeamConfig(**(beam_kw or {})), **sim_kw)


def core_image(argv):
    exp = nb.from_cli_args(argv)
    return np.asarray(nb.simulate(exp.setup, exp.params))


# ---------------------------------------------------------------------------------------
# Layout and constructors
# ---------------------------------------------------------------------------------------


def test_module_layout_mirrors_the_port():
    import compat.config
    import compat.models.crystal
    import compat.models.detector
    import compat.simulator

    for name in ("CrystalConfig", "DetectorConfig", "BeamConfig", "NoiseConfig", "DetectorConvention",
                 "DetectorPivot", "CrystalShape"):
        assert getattr(compat, name) is getattr(compat.config, name)
    assert compat.Crystal is compat.models.crystal.Crystal is compat.models.Crystal
    assert compat.Detector is compat.models.detector.Detector is compat.models.Detector
    assert compat.Simulator is compat.simulator.Simulator


def test_constructors_take_the_ports_arguments():
    cc = CrystalConfig(**CUBIC, N_cells=(5, 5, 5), default_F=100.0)
    dev = jax.devices("cpu")[0]
    for crystal in (Crystal(), Crystal(config=cc, device="cpu", dtype=jnp.float32),
                    Crystal(cc, None, dev, np.float64), Crystal(cc, "cpu", np.float32)):
        assert isinstance(crystal.config, CrystalConfig)
    assert Crystal(cc, "cpu", np.float32).V.dtype == np.float32
    det = Detector(config=None, device=dev, dtype=np.float32)
    assert det.pix0_vector.dtype == np.float32
    assert list(det.pix0_vector.devices())[0] == dev
    sim = Simulator(Crystal(cc), Detector(DetectorConfig(spixels=8, fpixels=8)), crystal_config=cc,
                    beam_config=None, device="cpu", dtype=np.float32)
    img = sim.run()
    assert img.shape == (8, 8) and img.dtype == np.float32
    with pytest.raises(ValueError):
        Crystal(cc, device="no-such-device")


def test_config_defaults():
    c, d, b = CrystalConfig(), DetectorConfig(), BeamConfig()
    assert (c.cell_a, c.cell_alpha, tuple(c.N_cells), c.default_F, c.shape) == (100.0, 90.0, (1, 1, 1), 0.0,
                                                                                 CrystalShape.SQUARE)
    assert (d.distance_mm, d.pixel_size_mm, d.spixels, d.fpixels, d.oversample) == (100.0, 0.1, 1024, 1024, -1)
    assert d.detector_convention == DetectorConvention.MOSFLM
    # The C program's MOSFLM default beam centre: (detsize + pixel)/2.
    assert d.beam_center_s == pytest.approx(51.25) and d.beam_center_f == pytest.approx(51.25)
    assert (d.roi_xmin, d.roi_xmax, d.roi_ymin, d.roi_ymax) == (0, 1023, 0, 1023)
    assert (b.wavelength_A, b.polarization_factor, b.fluence) == (1.0, 0.0, 125932015286227086360700780544.0)
    assert NoiseConfig().adc_offset == 40.0
    # Strings for enums, as the port's CLI passes them.
    assert DetectorConfig(detector_convention="xds").detector_convention == DetectorConvention.XDS
    assert DetectorConfig(detector_pivot="sample").detector_pivot == DetectorPivot.SAMPLE
    with pytest.raises(ValueError):
        DetectorConfig(distance_mm=-1.0)
    with pytest.raises(ValueError):
        DetectorConfig(oversample=0)
    with pytest.raises(ValueError):
        DetectorConfig(spixels=4, fpixels=4, mask_array=np.ones((3, 3)))
    # flux · exposure / beamsize² → fluence, as in the port and the C program.
    assert BeamConfig(flux=1e12, exposure=0.5, beamsize_mm=0.05).fluence == pytest.approx(1e12 * 0.5 / 0.05e-3**2)


def test_c_program_rules_where_the_port_differs():
    def setup_of(crystal_kw, detector_kw=None):
        return make_sim(crystal_kw, dict(spixels=8, fpixels=8, **(detector_kw or {}))).build().setup

    # A spread without a domain count: 10 domains (port: 1).
    assert setup_of(dict(default_F=1.0, mosaic_spread_deg=0.5)).mosaic_domains == 10
    # -osc without -phisteps: 2 steps (port: 1).
    assert setup_of(dict(default_F=1.0, osc_range_deg=1.0)).phisteps == 2
    assert setup_of(dict(default_F=1.0, osc_range_deg=1.0, phi_steps=5)).phisteps == 5
    # XDS and DIALS pivot about the sample, MOSFLM about the beam spot even with 2θ.
    assert setup_of(dict(default_F=1.0), dict(detector_convention=DetectorConvention.XDS)).pivot == "SAMPLE"
    assert setup_of(dict(default_F=1.0), dict(detector_twotheta_deg=10.0)).pivot == "BEAM"
    # ... and an explicit pivot always wins.
    assert setup_of(dict(default_F=1.0), dict(detector_twotheta_deg=10.0,
                                              detector_pivot=DetectorPivot.SAMPLE)).pivot == "SAMPLE"
    # A thickness without a layer count: two layers.
    assert setup_of(dict(default_F=1.0), dict(detector_thick_um=100.0)).thicksteps == 2
    # Custom vectors or a non-default 2θ axis select the CUSTOM convention.
    assert setup_of(dict(default_F=1.0), dict(custom_beam_vector=(1, 0, 0))).convention == "CUSTOM"
    assert setup_of(dict(default_F=1.0), dict(twotheta_axis=(0, 1, 0))).convention == "CUSTOM"
    assert setup_of(dict(default_F=1.0), dict(twotheta_axis=(0, 0, -1))).convention == "MOSFLM"


# ---------------------------------------------------------------------------------------
# Same images as the core and as the C program
# ---------------------------------------------------------------------------------------


def test_unconfigured_detector_is_the_c_programs_default_run():
    """Detector() + CrystalConfig(cubic 100 Å, N=5, default_F=100) ≡
    ``nanoBragg -cell 100 100 100 90 90 90 -default_F 100 -N 5``."""
    cc = CrystalConfig(**CUBIC, N_cells=(5, 5, 5), default_F=100.0)
    sim = Simulator(Crystal(cc), Detector(), crystal_config=cc)
    built = sim.build()
    exp = nb.from_cli_args(["-cell", "100", "100", "100", "90", "90", "90", "-default_F", "100", "-N", "5"])
    assert built.setup == exp.setup
    for f in dataclasses.fields(exp.params):
        np.testing.assert_allclose(np.asarray(getattr(built.params, f.name)), np.asarray(getattr(exp.params, f.name)),
                                   rtol=1e-13, atol=0, err_msg=f.name)
    image = np.asarray(sim.run())
    np.testing.assert_allclose(image, np.asarray(nb.simulate(exp.setup, exp.params)), rtol=1e-9, atol=0)
    assert image.shape == (1024, 1024) and image.max() > 0


CORE_CASES = {
    "triclinic_misset_phi_mosaic": (
        dict(**TRICLINIC, N_cells=(3, 4, 5), default_F=50.0, misset_deg=(10.0, -5.0, 20.0), phi_start_deg=2.0,
             osc_range_deg=3.0, phi_steps=2, mosaic_spread_deg=0.3, mosaic_domains=3, mosaic_seed=42),
        dict(spixels=40, fpixels=48, distance_mm=80.0, pixel_size_mm=0.15, beam_center_s=3.5, beam_center_f=2.5),
        dict(wavelength_A=1.3, polarization_factor=0.9, fluence=1e24),
        "-cell 70 80 90 75 85 95 -Na 3 -Nb 4 -Nc 5 -default_F 50 -misset 10 -5 20 -phi 2 -osc 3 -phisteps 2 "
        "-mosaic 0.3 -mosaic_domains 3 -mosaic_seed 42 -detpixels_s 40 -detpixels_f 48 -distance 80 -pixel 0.15 "
        "-Xbeam 3.5 -Ybeam 2.5 -lambda 1.3 -polar 0.9 -fluence 1e24"),
    "xds_rotations_sensor": (
        dict(**CUBIC, N_cells=(4, 4, 4), default_F=100.0),
        dict(spixels=36, fpixels=36, detector_convention=DetectorConvention.XDS, detector_rotx_deg=3.0,
             detector_roty_deg=-2.0, detector_twotheta_deg=4.0, detector_thick_um=300.0, detector_abs_um=400.0,
             detector_thicksteps=3, oversample=2),
        dict(wavelength_A=1.5, dmin=2.0),
        "-cell 100 100 100 90 90 90 -N 4 -default_F 100 -xds -detpixels 36 -detector_rotx 3 -detector_roty -2 "
        "-twotheta 4 -detector_thick 300 -detector_abs 400 -thicksteps 3 -oversample 2 -lambda 1.5 -dmin 2"),
    "adxv_round_water_roi": (
        dict(**CUBIC, N_cells=(6, 6, 6), default_F=20.0, shape=CrystalShape.ROUND, fudge=1.5),
        dict(spixels=40, fpixels=40, detector_convention=DetectorConvention.ADXV, distance_mm=60.0,
             roi_xmin=5, roi_xmax=30, roi_ymin=2, roi_ymax=35),
        dict(wavelength_A=1.0, water_size_um=30.0, nopolar=True),
        "-cell 100 100 100 90 90 90 -N 6 -default_F 20 -round_xtal -fudge 1.5 -adxv -detpixels 40 -distance 60 "
        "-roi 5 30 2 35 -lambda 1.0 -water 30 -nopolar"),
}


@pytest.mark.parametrize("case", sorted(CORE_CASES))
def test_compat_image_equals_core_simulate(case):
    crystal_kw, detector_kw, beam_kw, argv = CORE_CASES[case]
    image = np.asarray(make_sim(crystal_kw, detector_kw, beam_kw).run())
    ref = core_image(argv.split())
    assert ref.max() > 0
    np.testing.assert_allclose(image, ref, rtol=1e-10, atol=1e-12 * ref.max())


def test_structure_factors_and_interpolation_equal_core(tmp_path, capsys):
    hkl = tmp_path / "small.hkl"
    rows = [(h, k, l, 20.0 + h + 2 * k + 3 * l) for h in range(-4, 5) for k in range(-4, 5) for l in range(-4, 5)]
    hkl.write_text("".join(f"{h} {k} {l} {F}\n" for h, k, l, F in rows))
    cc = CrystalConfig(**CUBIC, N_cells=(2, 2, 2), default_F=5.0)
    crystal = Crystal(cc)
    crystal.load_hkl(str(hkl), write_cache=False)
    assert crystal.interpolate  # the C rule: N ≤ 2
    assert crystal.hkl_metadata["h_min"] == -4 and crystal.hkl_data.shape == (9, 9, 9)
    sim = Simulator(crystal, Detector(DetectorConfig(spixels=24, fpixels=24)), cc, BeamConfig(wavelength_A=6.0))
    cwd = os.getcwd()
    os.chdir(tmp_path)  # the core writes Fdump.bin beside an -hkl run
    try:
        ref = core_image(["-cell", "100", "100", "100", "90", "90", "90", "-N", "2", "-default_F", "5",
                          "-hkl", str(hkl), "-detpixels", "24", "-lambda", "6.0"])
    finally:
        os.chdir(cwd)
    np.testing.assert_allclose(np.asarray(sim.run()), ref, rtol=1e-10, atol=0)
    # Look-ups: the file's values at integers, default_F outside the grid.
    crystal.interpolate = False
    F = np.asarray(crystal.get_structure_factor(jnp.array([1.0, 0.2, 7.0]), jnp.array([-2.0, 1.1, 0.0]),
                                                jnp.array([2.0, -0.4, 0.0])))
    np.testing.assert_allclose(F, [20 + 1 - 4 + 6, 20 + 0 + 2 + 0, 5.0])
    crystal.interpolate = True
    # A linear F is reproduced exactly by the cubic Lagrange interpolation.  As in the C
    # program, the first query whose 4×4×4 neighbourhood leaves the grid gets the nearest F
    # (h0 = ceil(3.5 − ½) = 3) and switches interpolation off for good.
    F = np.asarray(crystal.get_structure_factor(jnp.array([0.25, 3.5]), jnp.array([-0.5, 0.0]),
                                                jnp.array([0.3, 0.0])))
    np.testing.assert_allclose(F, [20 + 0.25 - 1.0 + 0.9, 20 + 3.0], rtol=1e-12)
    assert crystal.interpolate is False
    F = np.asarray(crystal.get_structure_factor(jnp.array([0.25]), jnp.array([-0.5]), jnp.array([0.3])))
    # nearest from now on: (ceil(−0.25), ceil(−1.0), ceil(−0.2)) = (0, −1, 0)
    np.testing.assert_allclose(F, [20 + 0 - 2 + 0], rtol=1e-12)
    out = capsys.readouterr().out
    assert out.count("WARNING: out of range for three point interpolation: h,k,l,h0,k0,l0: 3.5,0,0,3,0,0") == 1
    # C's tricubic step alone: interpolated inside, default_F where the neighbourhood leaves
    # the grid (C's nearest-F fallback is a separate step), and the warning only once.
    F = np.asarray(crystal._tricubic_interpolation(jnp.array([[0.25, 3.5]]), jnp.array([[-0.5, 0.0]]),
                                                   jnp.array([[0.3, 0.0]])))
    assert F.shape == (1, 2)
    np.testing.assert_allclose(F, [[20 + 0.25 - 1.0 + 0.9, 5.0]], rtol=1e-12)
    assert crystal._interpolation_warning_shown and "WARNING" not in capsys.readouterr().out


GOLDEN_CASES = {
    "detsize_64": (dict(**CUBIC, N_cells=(3, 3, 3), default_F=100.0), dict(spixels=64, fpixels=64),
                   dict(wavelength_A=6.2)),
    "beam_offset_mosflm": (dict(**CUBIC, N_cells=(3, 3, 3), default_F=100.0),
                           dict(spixels=256, fpixels=256, beam_center_s=20.0, beam_center_f=14.0),
                           dict(wavelength_A=6.2)),
    "conv_adxv": (dict(**CUBIC, N_cells=(3, 3, 3), default_F=100.0),
                  dict(spixels=192, fpixels=192, detector_convention=DetectorConvention.ADXV), dict(wavelength_A=6.2)),
    "misset_15_20.5_30.25": (dict(**TRICLINIC, N_cells=(5, 5, 5), default_F=100.0, misset_deg=(15.0, 20.5, 30.25)),
                             dict(spixels=256, fpixels=256), dict(wavelength_A=1.0)),
    "mosaic": (dict(**TRICLINIC, N_cells=(5, 5, 5), default_F=100.0, mosaic_spread_deg=0.8, mosaic_domains=12,
                    mosaic_seed=777), dict(spixels=192, fpixels=192), dict(wavelength_A=1.0)),
    "detector_rotations_twotheta": (dict(**CUBIC, N_cells=(5, 5, 5), default_F=100.0),
                                    dict(spixels=256, fpixels=256, detector_rotx_deg=5.0, detector_roty_deg=3.0,
                                         detector_rotz_deg=2.0, detector_twotheta_deg=10.0),
                                    dict(wavelength_A=6.2)),
    "absorption": (dict(**CUBIC, N_cells=(5, 5, 5), default_F=100.0),
                   dict(spixels=128, fpixels=128, detector_abs_um=500.0, detector_thick_um=450.0,
                        detector_thicksteps=5, detector_rotx_deg=10.0), dict(wavelength_A=1.0)),
    "hkl_test_pattern": (dict(**CUBIC, N_cells=(5, 5, 5)), dict(spixels=64, fpixels=64), dict(wavelength_A=6.2)),
}


@needs_golden
@pytest.mark.parametrize("case_id", list(GOLDEN_CASES))
def test_golden_cases_through_compat_configs(case_id):
    crystal_kw, detector_kw, beam_kw = GOLDEN_CASES[case_id]
    rec = golden.case(case_id)
    cc = CrystalConfig(**crystal_kw)
    crystal = Crystal(cc)
    for name in rec.get("inputs", []):
        crystal.load_hkl(str(golden.golden_dir() / "inputs" / name), write_cache=False)
    sim = Simulator(crystal, Detector(DetectorConfig(**detector_kw)), cc, BeamConfig(**beam_kw))
    image = np.asarray(sim.run())
    ref = golden.arrays(case_id)["float"]
    assert image.shape == ref.shape
    fig = golden.compare(image, ref)
    assert golden.passes(fig, "float64"), fig


# ---------------------------------------------------------------------------------------
# Gradients: the port's gradcheck scenarios with jax.grad / jax.jacfwd
# ---------------------------------------------------------------------------------------

GRAD_DETECTOR = dict(spixels=40, fpixels=40, oversample=2)
WEIGHTS = np.random.default_rng(7).uniform(0.5, 1.5, size=(40, 40))

# One loss of every parameter the port's gradient tests cover, so that all the checks share
# one compiled gradient: theta = (a, b, c, α, β, γ, misset x, y, z, λ, fluence/1e24,
# distance, beam_center_s, beam_center_f).
THETA_NAMES = ("cell_a", "cell_b", "cell_c", "cell_alpha", "cell_beta", "cell_gamma", "misset_x", "misset_y",
               "misset_z", "wavelength_A", "fluence", "distance_mm", "beam_center_s", "beam_center_f")
# The port's gradient-flow case: cubic 100 Å, N = 5, default_F = 100 (beam centre: the default).
THETA0 = np.array([100.0, 100.0, 100.0, 90.0, 90.0, 90.0, 0.0, 0.0, 0.0, 1.0, 1.0, 100.0, 2.05, 2.05])
FD_STEP = np.array([1e-4] * 6 + [1e-4] * 3 + [1e-7, 1e-4, 1e-4, 1e-5, 1e-5])


def theta_loss(theta, assign_after_construction=False):
    """Port-style script: build the configs from the parameters, simulate, reduce."""
    config = CrystalConfig(cell_a=theta[0], cell_b=theta[1], cell_c=theta[2], cell_alpha=theta[3],
                           cell_beta=theta[4], cell_gamma=theta[5], misset_deg=(theta[6], theta[7], theta[8]),
                           mosaic_spread_deg=0.0, mosaic_domains=1, N_cells=(5, 5, 5), default_F=100.0)
    beam = BeamConfig(wavelength_A=theta[9], fluence=theta[10] * 1e24)
    if assign_after_construction:
        # The port's DBEX pattern: create with numbers, then assign the differentiable values.
        detector_config = DetectorConfig(**GRAD_DETECTOR)
        detector = Detector(detector_config)
        detector_config.distance_mm = theta[11]
        detector_config.beam_center_s, detector_config.beam_center_f = theta[12], theta[13]
    else:
        detector = Detector(DetectorConfig(distance_mm=theta[11], beam_center_s=theta[12], beam_center_f=theta[13],
                                           **GRAD_DETECTOR))
    simulator = Simulator(Crystal(config=config), detector, crystal_config=config, beam_config=beam)
    return jnp.sum(simulator.run() * WEIGHTS)


def central_difference(f, x, steps):
    x = np.asarray(x, np.float64)
    out = np.zeros_like(x)
    for i in range(x.size):
        e = np.zeros_like(x)
        e.flat[i] = np.asarray(steps).flat[i]
        out.flat[i] = (float(f(x + e)) - float(f(x - e))) / (2 * e.flat[i])
    return out


# Compiled once each and shared by the checks below (an eager gradient of the port-style script
# compiles a program per traced operation; the eager path is checked once, against these).
theta_loss_jit = jax.jit(theta_loss)
theta_grad_jit = jax.jit(jax.grad(theta_loss))


@pytest.fixture(scope="module")
def theta_gradients():
    grad = np.asarray(theta_grad_jit(THETA0))
    fd = central_difference(theta_loss_jit, THETA0, FD_STEP)
    return grad, fd


def _check(grad, fd, names, rtol=2e-5):
    for name in names:
        i = THETA_NAMES.index(name)
        assert np.isfinite(grad[i]) and grad[i] != 0.0, name
        assert grad[i] == pytest.approx(fd[i], rel=rtol, abs=1e-9 * np.abs(fd).max()), name


def test_gradient_flow_end_to_end_all_six_cell_parameters(theta_gradients):
    """The port's test_gradient_flow_simulation (cubic 100 Å, N=5, default_F=100): every cell
    parameter gets a non-zero gradient equal to central differences."""
    assert float(theta_loss_jit(THETA0)) > 0
    _check(*theta_gradients, THETA_NAMES[:6])


@pytest.mark.parametrize("names", [("misset_x", "misset_y", "misset_z"), ("wavelength_A",), ("fluence",),
                                   ("distance_mm",), ("beam_center_s", "beam_center_f")],
                         ids=["misset", "wavelength", "fluence", "distance", "beam_center"])
def test_gradient_matches_central_difference(theta_gradients, names):
    _check(*theta_gradients, names)


def test_jacfwd_equals_grad_and_post_construction_assignment(theta_gradients):
    grad = theta_gradients[0]
    jac = np.asarray(jax.jit(jax.jacfwd(theta_loss))(THETA0))
    np.testing.assert_allclose(jac, grad, rtol=1e-9, atol=1e-12 * np.abs(grad).max())
    # Values assigned to the config after the Detector exists are the ones used (port: DBEX);
    # eager, as a port script runs, and equal to the compiled gradient.
    late = np.asarray(jax.grad(lambda t: theta_loss(t, assign_after_construction=True))(jnp.asarray(THETA0)))
    np.testing.assert_allclose(late, grad, rtol=1e-12)


def test_triclinic_cell_gradient():
    """The port's joint gradcheck at a triclinic cell, with a rotated crystal."""
    theta = THETA0.copy()
    theta[:9] = [90.0, 95.0, 85.0, 89.0, 91.0, 95.0, 5.0, -3.0, 2.0]
    grad = np.asarray(theta_grad_jit(theta))
    fd = central_difference(lambda x: theta_loss_jit(np.concatenate([x, theta[6:]])), theta[:6], FD_STEP[:6])
    np.testing.assert_allclose(grad[:6], fd, rtol=2e-5, atol=1e-9 * np.abs(fd).max())


def test_jit_needs_a_fixed_oversample():
    """Under jit the automatic oversampling (a host-side decision on traced values) is refused;
    a fixed oversample (GRAD_DETECTOR, as in theta_grad_jit above) jits."""
    def auto(a):
        cc = CrystalConfig(**{**CUBIC, "cell_a": a}, N_cells=(5, 5, 5), default_F=100.0)
        return Simulator(Crystal(cc), Detector(DetectorConfig(spixels=16, fpixels=16)), cc).run().sum()

    with pytest.raises(compat._translate.DecisionError, match="oversample"):
        jax.jit(auto)(100.0)


# ---------------------------------------------------------------------------------------
# Crystal and detector properties against the core
# ---------------------------------------------------------------------------------------


def test_crystal_vectors_volume_and_rotations():
    cc = CrystalConfig(**TRICLINIC, misset_deg=(5.0, 10.0, 15.0), N_cells=(5, 5, 5), default_F=1.0,
                       phi_start_deg=1.0, osc_range_deg=2.0, phi_steps=3, mosaic_spread_deg=0.5,
                       mosaic_domains=4)
    crystal = Crystal(cc)
    real = np.stack([np.asarray(crystal.a), np.asarray(crystal.b), np.asarray(crystal.c)])
    recip = np.stack([np.asarray(crystal.a_star), np.asarray(crystal.b_star), np.asarray(crystal.c_star)])
    np.testing.assert_allclose(real @ recip.T - np.diag(np.diag(real @ recip.T)), 0.0, atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(real, axis=1), [70.0, 80.0, 90.0], rtol=1e-12)
    a_, b_, g_ = np.deg2rad([75.0, 85.0, 95.0])
    V = 70 * 80 * 90 * np.sqrt(1 - np.cos(a_) ** 2 - np.cos(b_) ** 2 - np.cos(g_) ** 2
                               + 2 * np.cos(a_) * np.cos(b_) * np.cos(g_))
    assert float(crystal.V) == pytest.approx(V, rel=1e-12) and float(crystal.volume) == float(crystal.V)
    exp = nb.from_cli_args("-cell 70 80 90 75 85 95 -misset 5 10 15 -default_F 1".split())
    lat = crystal_geo.lattice(exp.setup, exp.params)
    np.testing.assert_allclose(real, np.asarray(lat.real), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(recip, np.asarray(lat.reciprocal), rtol=1e-12, atol=1e-15)
    (ra, rb, rc), (rsa, rsb, rsc) = crystal.get_rotated_real_vectors(cc)
    assert ra.shape == (3, 4, 3) and rsc.shape == (3, 4, 3)
    # Rotations keep lengths and the real–reciprocal products.
    np.testing.assert_allclose(np.sum(np.asarray(ra) * np.asarray(rsa), -1), real[0] @ recip[0], rtol=1e-12)
    np.testing.assert_allclose(np.sum(np.asarray(rb) * np.asarray(rsa), -1), 0.0, atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(np.asarray(rc), axis=-1), 90.0, rtol=1e-12)
    # Domain 0 is the identity: at φ = 1° about the spindle (0, 0, 1).
    c1, s1 = np.cos(np.deg2rad(1.0)), np.sin(np.deg2rad(1.0))
    Rz = np.array([[c1, -s1, 0], [s1, c1, 0], [0, 0, 1]])
    np.testing.assert_allclose(np.asarray(ra[0, 0]), Rz @ real[0], rtol=1e-12, atol=1e-12)
    assert float(crystal.cell_gamma) == 95.0 and float(crystal.N_cells_b) == 5.0


def test_negative_mosaic_spread_is_none_as_in_c():
    """A finite-difference step below a spread of 0 must not stop the run: C reads a
    negative spread as no spread."""
    def vectors(spread):
        cc = CrystalConfig(**CUBIC, mosaic_spread_deg=spread, mosaic_domains=3, mosaic_seed=5)
        return np.asarray(Crystal(cc).get_rotated_real_vectors(cc)[0][0])

    below, none = vectors(-1e-6), vectors(0.0)
    assert below.shape == none.shape == (1, 1, 3)
    np.testing.assert_array_equal(below, none)
    assert vectors(0.5).shape[1] == 3


def test_crystal_volume_gradient():
    def volume(a):
        return Crystal(CrystalConfig(**{**TRICLINIC, "cell_a": a})).V

    g = float(jax.grad(volume)(70.0))
    assert g == pytest.approx(float(volume(1.0)), rel=1e-12)  # V is linear in a


def test_detector_geometry_against_the_core():
    dc = DetectorConfig(spixels=30, fpixels=40, pixel_size_mm=0.2, distance_mm=120.0, detector_rotx_deg=4.0,
                        detector_roty_deg=-3.0, detector_twotheta_deg=6.0, detector_pivot=DetectorPivot.SAMPLE,
                        beam_center_s=3.0, beam_center_f=4.0, beam_center_source="explicit")
    det = Detector(dc)
    built = Simulator(Crystal(CrystalConfig(default_F=1.0)), det, None).build()
    geo = nb.derived_geometry(built.setup, built.params)
    np.testing.assert_allclose(np.asarray(det.pix0_vector), geo["pix0"], rtol=1e-12)
    np.testing.assert_allclose(np.asarray(det.fdet_vec), geo["fdet"], atol=1e-15)
    np.testing.assert_allclose(np.asarray(det.sdet_vec), geo["sdet"], atol=1e-15)
    np.testing.assert_allclose(np.asarray(det.odet_vec), geo["odet"], atol=1e-15)
    assert float(det.distance) == pytest.approx(0.12)
    # C places the detector with close = |r·distance|, distance = close/r: the configured 0.12 m
    assert float(det.distance_corrected) == pytest.approx(0.12, rel=1e-12)
    assert float(det.close_distance) == pytest.approx(geo["close_distance"], rel=1e-12)
    assert float(det.r_factor) == pytest.approx(geo["close_distance"] / geo["distance"], rel=1e-12)
    # The sample pivot keeps the near point at (beam_center_f + ½px, beam_center_s + ½px) before rotating.
    unrot = Detector(dataclasses.replace(dc, detector_rotx_deg=0.0, detector_roty_deg=0.0, detector_twotheta_deg=0.0))
    assert float(unrot.beam_center_f) == pytest.approx(4.0 / 0.2 + 0.5, rel=1e-12)
    assert float(unrot.beam_center_s) == pytest.approx(3.0 / 0.2 + 0.5, rel=1e-12)
    coords = np.asarray(det.get_pixel_coords())
    assert coords.shape == (30, 40, 3)
    px = 0.2e-3
    np.testing.assert_allclose(coords[0, 0], geo["pix0"] + 0.5 * px * (geo["fdet"] + geo["sdet"]), rtol=1e-12)
    np.testing.assert_allclose(coords[2, 5] - coords[0, 0], px * (5 * geo["fdet"] + 2 * geo["sdet"]), atol=1e-15)
    omega = np.asarray(det.get_solid_angle())
    R = np.linalg.norm(coords, axis=-1)
    np.testing.assert_allclose(omega, px**2 / R**2 * geo["close_distance"] / R, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(det.get_solid_angle(coords)), omega, rtol=1e-12)


def test_detector_distance_corrected_is_the_beam_spot_distance():
    """BEAM pivot with a close distance and 2θ: C places the beam spot at close/r along the
    beam (r before 2θ); the final frame's distance (C's printed one) is a different number."""
    dc = DetectorConfig(spixels=64, fpixels=64, distance_mm=100.0, close_distance_mm=95.0,
                        detector_rotx_deg=5.0, detector_roty_deg=3.0, detector_rotz_deg=2.0,
                        detector_twotheta_deg=15.0, detector_pivot=DetectorPivot.BEAM)
    det = Detector(dc)
    r = float(det.r_factor)
    assert float(det.distance_corrected) == pytest.approx(0.095 / r, rel=1e-12)
    pix0, odet = np.asarray(det.pix0_vector), np.asarray(det.odet_vec)
    beam = np.array([1.0, 0.0, 0.0])  # MOSFLM
    hit = float(pix0 @ odet) / float(beam @ odet)  # where the beam ray meets the final plane
    assert hit == pytest.approx(float(det.distance_corrected), rel=1e-12)
    built = Simulator(Crystal(CrystalConfig(default_F=1.0)), det, None).build()
    geo = nb.derived_geometry(built.setup, built.params)
    assert geo["distance"] == pytest.approx(float(det.close_distance) / r, rel=1e-12)
    assert abs(geo["distance"] - float(det.distance_corrected)) > 1e-3


def test_default_detector_beam_centre_and_beam():
    det = Detector()
    # MOSFLM: Fbeam = Ybeam + ½ pixel with Ybeam = 51.25 mm → 513 pixels.
    assert float(det.beam_center_f) == pytest.approx(513.0)
    assert float(det.beam_center_s) == pytest.approx(513.0)
    np.testing.assert_allclose(np.asarray(det.beam_vector), [1.0, 0.0, 0.0])
    np.testing.assert_allclose(np.asarray(det.pix0_vector), [0.1, 0.0513, -0.0513], rtol=1e-12)
    xds = Detector(DetectorConfig(detector_convention=DetectorConvention.XDS))
    np.testing.assert_allclose(np.asarray(xds.beam_vector), [0.0, 0.0, 1.0])
    assert float(xds.beam_center_f) == pytest.approx(512.0)


def test_parsed_command_line_under_the_port_keys(capsys):
    from compat.__main__ import create_parser, parse_and_validate_args

    base = ["-cell", "100", "100", "100", "90", "90", "90", "-default_F", "100"]
    cfg = parse_and_validate_args(create_parser().parse_args(
        base + ["-noisefile", "n.img", "-nonoise", "-seed", "1234", "-polar", "0.5", "-roi", "1", "5", "2", "6",
                "-pix0_vector", "0.1", "-0.2", "0.3", "-lambda", "6.2"]))
    assert cfg["noisefile"] == "n.img" and cfg["suppress_noise"] is True and cfg["seed"] == 1234
    assert cfg["polarization_factor"] == 0.5 and cfg["nopolar"] is False and cfg["roi"] == (1, 5, 2, 6)
    assert cfg["pix0_override_m"] == (0.1, -0.2, 0.3) and cfg["convention"] == "CUSTOM"
    assert cfg["wavelength_A"] == pytest.approx(6.2) and cfg["custom_beam_vector"] is None
    plain = parse_and_validate_args(create_parser().parse_args(base + ["-nopolar"]))
    assert plain["noisefile"] is None and plain["suppress_noise"] is False and plain["seed"] is None
    assert "polarization_factor" not in plain and plain["nopolar"] is True and plain["convention"] == "MOSFLM"
    mm = parse_and_validate_args(create_parser().parse_args(base + ["-pix0_vector_mm", "100", "-200", "0.5"]))
    assert mm["pix0_override_m"] == pytest.approx((0.1, -0.2, 0.0005), abs=1e-15)
    with pytest.raises(ValueError, match="both -pix0_vector and -pix0_vector_mm"):
        create_parser().parse_args(base + ["-pix0_vector", "0", "0", "0", "-pix0_vector_mm", "0", "0", "0"])
    with pytest.raises(SystemExit) as exc:  # an unknown flag: argparse's exit status
        create_parser().parse_args(base + ["-bogus", "1"])
    assert exc.value.code == 2 and "unknown flag -bogus" in capsys.readouterr().err


def test_debug_config_trace_pixel_prints_trace_py_lines(capsys):
    """Simulator(debug_config={"trace_pixel": [s, f]}): one 'TRACE_PY: <name> <value>' line per
    quantity, the final one equal to the image's pixel; off the detector, nothing."""
    det = dict(distance_mm=100.0, pixel_size_mm=0.1, spixels=16, fpixels=16, oversample=1,
               detector_thick_um=100.0, detector_abs_um=50.0, detector_thicksteps=2)
    sim = make_sim(dict(CUBIC, N_cells=(5, 5, 5), default_F=100.0), det, debug_config={"trace_pixel": [8, 7]})
    image = np.asarray(sim.run())
    values = {}
    for line in capsys.readouterr().out.splitlines():
        if line.startswith("TRACE_PY: "):
            values[line.split()[1]] = line.split()[2:]
    assert values["pixel_slow_fast"] == ["8", "7"]
    assert int(values["steps"][-1]) == 1
    assert 0.0 < float(values["capture_fraction"][-1]) < 1.0
    assert 0.0 < float(values["polar"][-1]) <= 1.0
    assert float(values["photons"][-1]) == pytest.approx(float(image[8, 7]), rel=1e-6)
    sim.debug_config = {"trace_pixel": [16, 0]}
    sim.run()
    assert "TRACE_PY" not in capsys.readouterr().out
