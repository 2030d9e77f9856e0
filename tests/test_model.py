"""The typed experiment model: invariants, lowering, equivalence with the command line,
gradients with respect to every float leaf, and the documentation's Python blocks.

Small detectors (16–32 pixels) keep each configuration's compilation short.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

jax.config.update("jax_enable_x64", True)

import nanobragg_jax as nb  # noqa: E402
from nanobragg_jax.model import lower  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CELL = (100.0, 100.0, 100.0, 90.0, 90.0, 90.0)


def small_model(**kw) -> nb.Model:
    """The canonical experiment on a 24×24 detector (non-zero intensity everywhere near spots)."""
    parts = dict(
        crystal=nb.Crystal(cell=CELL, N=5, default_F=100),
        beam=nb.Beam(wavelength=6.2),
        detector=nb.Detector.mosflm(distance=100, pixels=24, pixel_size=0.1),
    )
    parts.update(kw)
    return nb.Model(**parts)


def flags_image(argv) -> np.ndarray:
    exp = nb.from_cli_args([str(a) for a in argv] + ["-oversample", "1"] if "-oversample" not in argv
                           else [str(a) for a in argv])
    return np.asarray(nb.simulate(exp.setup, exp.params))


def assert_same_image(a, b, rtol=1e-9):
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape
    scale = max(np.abs(b).max(), 1e-300)
    assert np.abs(a - b).max() <= rtol * scale, (np.abs(a - b).max(), scale)


# ---------------------------------------------------------------------------
# Building models: invariants, with the field named
# ---------------------------------------------------------------------------

BAD = [
    (lambda: nb.Beam(wavelength=0.0), "Beam.wavelength"),
    (lambda: nb.Beam(wavelength=-1.0), "Beam.wavelength"),
    (lambda: nb.Beam(wavelength=float("nan")), "Beam.wavelength"),
    (lambda: nb.Beam(fluence=-1.0), "Beam.fluence"),
    (lambda: nb.Beam(dispersion=1.0, dispersion_steps=1), "Beam.dispersion_steps"),
    (lambda: nb.Beam(direction=(0, 0, 0)), "Beam.direction"),
    (lambda: nb.Crystal(cell=(100, 100, -1, 90, 90, 90), default_F=1), "Crystal.cell"),
    (lambda: nb.Crystal(cell=(100, 100, 100, 90, 90, 200), default_F=1), "Crystal.cell"),
    (lambda: nb.Crystal(cell=(100, 100, 100, 120, 120, 120), default_F=1), "Crystal.cell"),
    (lambda: nb.Crystal(cell=(100, 100, 100, 90, 90), default_F=1), "Crystal.cell"),
    (lambda: nb.Crystal(default_F=1), "Crystal needs a unit cell"),
    (lambda: nb.Crystal(cell=CELL, N=0, default_F=1), "Crystal.N"),
    (lambda: nb.Crystal(cell=CELL), "Crystal needs structure factors"),
    (lambda: nb.Crystal(cell=CELL, default_F=1, shape="cubic"), "Crystal.shape"),
    (lambda: nb.Crystal(orientation=np.zeros((3, 3)), default_F=1), "Crystal.orientation"),
    (lambda: nb.Mosaicity(spread=-0.1), "Mosaicity.spread"),
    (lambda: nb.Mosaicity(spread=0.1, domains=0), "Mosaicity.domains"),
    (lambda: nb.Goniometer(phi_steps=0), "Goniometer.phi_steps"),
    (lambda: nb.Goniometer(axis=(0, 0, 0)), "Goniometer.axis"),
    (lambda: nb.Divergence(h_range=-1.0), "Divergence.h_range"),
    (lambda: nb.Divergence(h_range=0.5, h_steps=1), "Divergence.h_steps"),
    (lambda: nb.Spectrum(wavelengths=[1.0, 0.0]), "Spectrum.wavelengths"),
    (lambda: nb.Sensor(thickness=-5.0), "Sensor.thickness"),
    (lambda: nb.Sensor(thickness=5.0, attenuation_depth=0.0), "Sensor.attenuation_depth"),
    (lambda: nb.Sensor(layers=0), "Sensor.layers"),
    (lambda: nb.Detector.mosflm(pixel_size=0.0), "NanoBraggPanel.pixel_size"),
    (lambda: nb.Detector.mosflm(distance=0.0), "NanoBraggPanel.distance"),
    (lambda: nb.Detector.mosflm(pixels=0), "n_fast and n_slow"),
    (lambda: nb.Detector.mosflm(pixels=8, mask=np.ones((4, 4))), "NanoBraggPanel.mask"),
    (lambda: nb.Detector.mosflm(pixels=8, roi=(20, 30, 0, 3)), "NanoBraggPanel.roi"),
    (lambda: nb.Detector.nanobragg("SIDEWAYS"), "NanoBraggPanel.convention"),
    (lambda: nb.Detector.mosflm(pivot="corner"), "NanoBraggPanel.pivot"),
    (lambda: nb.Detector(panels=()), "Detector.panels"),
    (lambda: nb.Detector.mosflm(oversample=0), "Detector.oversample"),
    (lambda: nb.Panel(origin=(100, 0, 0), fast_axis=(0, 0, 1), slow_axis=(0, 0, 2)), "not be parallel"),
    (lambda: small_model(water=-1.0), "Model.water"),
    (lambda: small_model(dmin=-1.0), "Model.dmin"),
    (lambda: nb.StructureFactors(F=np.zeros((2, 2))), "StructureFactors.F"),
]


@pytest.mark.parametrize("build,field", BAD, ids=[f for _, f in BAD])
def test_invalid_values_raise_naming_the_field(build, field):
    with pytest.raises(ValueError, match=re.escape(field)):
        build()


def test_setup_invariants():
    with pytest.raises(ValueError, match="Setup.oversample"):
        nb.Setup(oversample=0)
    with pytest.raises(ValueError, match="Setup.n_sources"):
        nb.Setup(div_tics=((0, 0), (0, 1)), n_sources=1)
    with pytest.raises(ValueError, match="Setup.roi"):
        nb.Setup(spixels=8, fpixels=8, roi=(9, 12, 0, 3))
    with pytest.raises(ValueError, match="Setup.hkl_min"):
        nb.Setup(hkl_min=(1, 0, 0), hkl_max=(0, 0, 0))
    setup, params = lower(small_model())
    bad = params.replace(mosaic_axes=np.zeros((2, 3)))
    with pytest.raises(ValueError, match="mosaic_axes"):
        nb.simulate(setup, bad)
    with pytest.raises(ValueError, match="F_grid"):
        nb.simulate(dataclasses.replace(setup, has_hkl=True, hkl_max=(1, 1, 1)), params)


def test_params_is_frozen_but_replace_works():
    _, params = lower(small_model())
    with pytest.raises(dataclasses.FrozenInstanceError):
        params.distance = 3.0  # type: ignore[misc]
    assert float(params.replace(distance=np.float64(3.0)).distance) == 3.0
    m = small_model()
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.beam.wavelength = 1.0  # type: ignore[misc]


def test_checks_skip_tracers_and_pytree_rebuilds():
    # Under jit the wavelength is a tracer: no check, no error.
    out = jax.jit(lambda w: nb.Beam(wavelength=w).wavelength * 2)(0.0)
    assert float(out) == 0.0
    # A tree of zeros (e.g. a gradient) is rebuilt without running the checks.
    m = small_model()
    zeros = jax.tree_util.tree_map(jnp.zeros_like, m)
    assert float(zeros.beam.wavelength) == 0.0
    # Static fields are metadata, not leaves.
    leaves = jax.tree_util.tree_leaves(m)
    assert all(hasattr(x, "dtype") for x in leaves)


def test_defaults_follow_the_convention():
    xds = nb.Model(crystal=nb.Crystal(cell=CELL, default_F=1), detector=nb.Detector.xds(pixels=16))
    setup, params = lower(xds)
    assert setup.convention == "XDS" and setup.pivot == "SAMPLE"
    np.testing.assert_array_equal(params.beam_vector, [0, 0, 1])
    np.testing.assert_array_equal(params.spindle_axis, [1, 0, 0])
    mos = nb.Detector.mosflm(pixels=(20, 10), pixel_size=0.1).panels[0]
    np.testing.assert_allclose(mos.beam_center, [(1.0 + 0.1) / 2, (2.0 + 0.1) / 2])


def test_lower_sends_multi_panel_models_to_lower_panels():
    p = nb.Panel(origin=(100, 1, -1), fast_axis=(0, 0, 1), slow_axis=(0, -1, 0), n_fast=8, n_slow=8)
    m = small_model(detector=nb.Detector(panels=(p, p)))
    with pytest.raises(NotImplementedError, match="2 panels.*lower_panels"):
        lower(m)


def test_spectrum_weights_give_the_weighted_mean_image():
    """Spectrum.weights switch on the weighted kernel: image = Σ wᵢ·image(λᵢ) / Σ wᵢ."""
    lams, w = [6.2, 6.3], np.array([1.0, 2.0])
    with jax.enable_x64(True):
        setup, _ = lower(small_model(beam=nb.Beam(wavelength=6.2, spectrum=nb.Spectrum(lams, weights=w))))
        assert setup.weighted_sources
        weighted = np.asarray(nb.simulate(small_model(
            beam=nb.Beam(wavelength=6.2, spectrum=nb.Spectrum(lams, weights=w)))), np.float64)
        singles = [np.asarray(nb.simulate(small_model(beam=nb.Beam(wavelength=6.2, spectrum=nb.Spectrum([lam])))),
                              np.float64) for lam in lams]
    expected = (w[0] * singles[0] + w[1] * singles[1]) / w.sum()
    assert weighted.sum() > 0
    np.testing.assert_allclose(weighted, expected, rtol=1e-12, atol=1e-12 * expected.max())
    with pytest.raises(ValueError, match="weights"):
        lower(small_model(beam=nb.Beam(wavelength=6.2, spectrum=nb.Spectrum(lams, weights=[0.0, 0.0]))))


def test_with_size_sets_N_like_the_command_line():
    c = nb.Crystal(cell=CELL, default_F=1).with_size(0.000105)  # 1050 Å = 10.5 cells of 100 Å → 11
    np.testing.assert_array_equal(c.N, [11, 11, 11])


# ---------------------------------------------------------------------------
# Model → image equals flags → image
# ---------------------------------------------------------------------------

BASE = ["-cell", *CELL, "-default_F", 100, "-lambda", 6.2, "-N", 5, "-distance", 100, "-detpixels", 24]


def test_canonical_model_renders_like_its_flags():
    m = small_model()
    assert_same_image(nb.simulate(m), flags_image(BASE))
    exp = nb.from_cli_args([str(a) for a in BASE] + ["-oversample", "1"])
    assert isinstance(exp.model, nb.Model)
    assert_same_image(nb.simulate(exp.model), nb.simulate(exp.setup, exp.params), rtol=0)


def test_sweep_mosaic_sensor_divergence_dispersion_render_like_flags():
    m = small_model(
        crystal=nb.Crystal(cell=(80, 90, 100, 88, 91, 92), N=(4, 5, 6), default_F=100, misset=(10, 20, 30)),
        beam=nb.Beam(wavelength=6.2, dispersion=2.0, dispersion_steps=3, kahn_factor=0.5,
                     divergence=nb.Divergence.square(0.4, 3)),
        detector=nb.Detector.mosflm(distance=110, beam_center=(1.3, 1.1), pixels=24, pixel_size=0.1,
                                    rotations=(1, 2, 3), sensor=nb.Sensor(100, 200, layers=3, layer_divisor=2)),
        goniometer=nb.Goniometer.sweep(start=5, osc=2, steps=2),
        mosaicity=nb.Mosaicity(spread=0.5, domains=3),
    )
    argv = ["-cell", 80, 90, 100, 88, 91, 92, "-Na", 4, "-Nb", 5, "-Nc", 6, "-default_F", 100,
            "-misset", 10, 20, 30, "-lambda", 6.2, "-dispersion", 2, "-dispsteps", 3, "-polar", 0.5,
            "-divergence", 0.4, "-divsteps", 3, "-distance", 110, "-Xbeam", 1.3, "-Ybeam", 1.1,
            "-detpixels", 24, "-pixel", 0.1, "-detector_rotx", 1, "-detector_roty", 2, "-detector_rotz", 3,
            "-detector_thick", 100, "-detector_abs", 200, "-detector_thicksteps", 3,
            "-phi", 5, "-osc", 2, "-phisteps", 2, "-mosaic", 0.5, "-mosaic_domains", 3]
    assert_same_image(nb.simulate(m), flags_image(argv))


def test_plain_panel_renders_like_the_mosflm_detector():
    d, xb, yb, px = 100.0, 1.3, 1.1, 0.1
    det = nb.Detector.mosflm(distance=d, beam_center=(xb, yb), pixels=16, pixel_size=px)
    # MOSFLM: Fbeam = Ybeam + px/2 along fast (0,0,1), Sbeam = Xbeam + px/2 along slow (0,-1,0).
    origin = (d, xb + px / 2, -(yb + px / 2))
    panel = nb.Panel(origin=origin, fast_axis=(0, 0, 1), slow_axis=(0, -1, 0), n_fast=16, n_slow=16, pixel_size=px)
    a = nb.simulate(small_model(detector=det))
    b = nb.simulate(small_model(detector=nb.Detector(panels=(panel,))))
    assert_same_image(b, a, rtol=1e-9)


# A hypothesis property test: random valid models in the command line's subset.
hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings, strategies as st  # noqa: E402


@st.composite
def cli_models(draw):
    conv = draw(st.sampled_from(["MOSFLM", "XDS", "DIALS", "ADXV", "DENZO"]))
    n = draw(st.sampled_from([16, 24]))
    px = draw(st.sampled_from([0.1, 0.15]))
    f = lambda lo, hi: draw(st.floats(lo, hi, allow_nan=False, allow_infinity=False))  # noqa: E731
    cell = (f(60, 120), f(60, 120), f(60, 120), f(85, 95), f(85, 95), f(85, 95))
    N = tuple(float(draw(st.integers(2, 6))) for _ in range(3))  # the C program reads N with atoi
    misset = (f(-30, 30), f(-30, 30), f(-30, 30))
    lam = f(4.0, 7.0)
    dist = f(60, 150)
    centre = (f(0.3, 0.7) * n * px, f(0.3, 0.7) * n * px)
    rot = (f(-3, 3), f(-3, 3), f(-3, 3))
    twotheta = f(-5, 5)
    phisteps = draw(st.sampled_from([1, 2]))
    phi0, osc = f(-10, 10), f(0.1, 2.0)
    domains = draw(st.sampled_from([1, 3]))
    spread = f(0.05, 1.0) if domains > 1 else 0.0
    kahn = f(0.0, 1.0)

    crystal = nb.Crystal(cell=cell, N=N, misset=misset, default_F=100)
    beam = nb.Beam(wavelength=lam, kahn_factor=kahn)
    kw = dict(rotations=rot, twotheta=twotheta)
    argv = ["-cell", *cell, "-Na", int(N[0]), "-Nb", int(N[1]), "-Nc", int(N[2]), "-misset", *misset, "-default_F", 100,
            "-lambda", lam, "-polar", kahn, "-distance", dist, "-detpixels", n, "-pixel", px,
            "-detector_rotx", rot[0], "-detector_roty", rot[1], "-detector_rotz", rot[2], "-twotheta", twotheta,
            "-phi", phi0, "-osc", osc, "-phisteps", phisteps]
    if conv in ("XDS", "DIALS"):
        # sample pivot: the near point from -ORGX/-ORGY (pixels)
        org = (centre[0] / px + 0.5, centre[1] / px + 0.5)
        kw["close_center"] = ((org[0] - 0.5) * px, (org[1] - 0.5) * px)
        argv += ["-ORGX", org[0], "-ORGY", org[1]]
    else:
        kw["beam_center"] = centre
        argv += ["-Xbeam", centre[0], "-Ybeam", centre[1]]
    argv.append("-" + conv.lower())
    detector = nb.Detector.nanobragg(conv, distance=dist, pixels=n, pixel_size=px, **kw)
    gonio = nb.Goniometer.sweep(start=phi0, osc=osc, steps=phisteps)
    mosaic = nb.Mosaicity(spread=spread, domains=domains) if domains > 1 else None
    if mosaic is not None:
        argv += ["-mosaic", spread, "-mosaic_domains", domains]
    model = nb.Model(crystal=crystal, beam=beam, detector=detector, goniometer=gonio, mosaicity=mosaic)
    return model, argv


def _renders_like_its_flags(case) -> None:
    model, argv = case
    assert_same_image(nb.simulate(model), flags_image(argv), rtol=1e-8)


# Each example compiles a new setup (~15 s on 2 cores): a few in the default tier, more in the slow one.
@settings(max_examples=4, deadline=None, derandomize=True)
@given(cli_models())
def test_random_models_render_like_their_flags(case):
    _renders_like_its_flags(case)


@pytest.mark.slow
@settings(max_examples=20, deadline=None, derandomize=False)
@given(cli_models())
def test_more_random_models_render_like_their_flags(case):
    _renders_like_its_flags(case)


# ---------------------------------------------------------------------------
# Gradients: every float leaf of the model against central differences
# ---------------------------------------------------------------------------

def gradient_model() -> nb.Model:
    F = np.arange(1.0, 28.0).reshape(3, 3, 3) * 10.0
    return nb.Model(
        crystal=nb.Crystal(cell=(60, 70, 80, 88, 91, 93), N=(3, 3.5, 4), misset=(5, 10, 15), default_F=50,
                           structure_factors=nb.StructureFactors(F, hkl_min=(-1, -1, -1)), fudge=1.0),
        beam=nb.Beam(wavelength=5.0, direction=(1, 0.01, 0.02), polarization_axis=(0, 0.1, 1), kahn_factor=0.6,
                     fluence=1e24, dispersion=1.0, dispersion_steps=2, divergence=nb.Divergence.square(0.3, 2)),
        detector=nb.Detector.nanobragg(
            "CUSTOM", distance=60, beam_center=(0.8, 0.8), pixels=16, pixel_size=0.1, rotations=(1, 2, 3),
            twotheta=2, twotheta_axis=(0, 1, 0.1), fast_axis=(0, 0, 1), slow_axis=(0, -1, 0.05),
            normal=(1, 0, 0), sensor=nb.Sensor(thickness=50, attenuation_depth=200, layers=2)),
        goniometer=nb.Goniometer(axis=(0.1, 0, 1), phi0=3, phi_step=0.5, phi_steps=2),
        mosaicity=nb.Mosaicity(spread=0.4, domains=2),
        water=5.0, dmin=0.5,
    )


# The detector normal is used only when it has exactly unit length (a discrete choice
# the physics branch settles); its derivative is checked there.
SKIP_LEAVES = ("normal",)


def test_gradient_of_every_float_leaf_matches_central_differences():
    model = gradient_model()
    setup, _ = lower(model)
    w = np.random.default_rng(0).uniform(0.5, 1.5, (setup.spixels, setup.fpixels))

    @jax.jit
    def loss(m):
        return jnp.sum(nb.simulate(m) * w)

    loss0 = float(loss(model))
    assert loss0 > 0
    grads = jax.grad(loss)(model)
    flat, treedef = jax.tree_util.tree_flatten_with_path(model)
    gflat = jax.tree_util.tree_leaves(grads)
    checked = 0
    for (path, leaf), g in zip(flat, gflat):
        name = jax.tree_util.keystr(path)
        if any(s in name for s in SKIP_LEAVES):
            continue
        leaf = np.asarray(leaf, np.float64)
        g = np.asarray(g).reshape(-1)
        # F grid: check a few entries (all 27 cost as much as the rest together)
        idx = range(leaf.size) if leaf.size <= 12 else [0, 13, 26]
        for i in idx:
            x0 = leaf.reshape(-1)[i]
            h = 1e-6 * max(1.0, abs(x0))

            def at(v):
                arr = leaf.reshape(-1).copy()
                arr[i] = v
                leaves = [l for _, l in flat]
                leaves[[p for p, _ in flat].index(path)] = arr.reshape(leaf.shape)
                return float(loss(jax.tree_util.tree_unflatten(treedef, leaves)))

            fd = (at(x0 + h) - at(x0 - h)) / (2 * h)
            # rounding in the difference quotient: ~ eps·loss/h, allowed with a margin
            floor = 1e-8 * loss0 / max(1.0, abs(x0))
            assert abs(g[i] - fd) <= 2e-4 * max(abs(fd), abs(g[i])) + floor, (name, i, g[i], fd)
            checked += 1
    assert checked > 60


# ---------------------------------------------------------------------------
# The documentation's Python blocks run as written
# ---------------------------------------------------------------------------

def python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(encoding="utf-8"), re.S)


@pytest.mark.parametrize("doc", ["README.md", "docs/api.md"])
def test_documentation_python_blocks_run(doc, tmp_path):
    """Every ```python block of the page, in order, as one script in a fresh interpreter.

    A fresh process, as a reader would run them: the README's first block sets JAX options
    (x64, CPU devices) that only take effect before JAX starts.
    """
    import subprocess
    import sys

    blocks = python_blocks(REPO / doc)
    assert blocks, f"{doc} has no python blocks"
    script = tmp_path / "doc_blocks.py"
    script.write_text("\n\n".join(f"# --- {doc}, python block {k}\n{b}" for k, b in enumerate(blocks)),
                      encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, f"{doc}: a python block failed:\n{proc.stderr[-3000:]}"