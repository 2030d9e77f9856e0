"""Per-panel sensors: each panel renders with its own thickness and attenuation, as a
single-panel run of that panel with the sensor flags would (the single-panel sensor is
checked against the C program in the golden tests and in tests/data/panels/tilted3)."""

from __future__ import annotations

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nanobragg_jax import from_cli_args, simulate
from nanobragg_jax.io.expt import expt_argv, model_from_experiment, read_expt, simulation_from_expt
from nanobragg_jax.panels import PanelStack, group_by_shape, simulate_panels

DATA = Path(__file__).parent / "data" / "panels"

# A tilted custom detector, so that the rays cross the sensor obliquely (parallax matters).
BASE = ["-cell", "70", "80", "90", "90", "90", "90", "-default_F", "100", "-N", "5", "-lambda", "1.0",
        "-detpixels_f", "12", "-detpixels_s", "10", "-pixel", "0.8", "-oversample", "1",
        "-fdet_vector", "0", "0.3", "1", "-sdet_vector", "0", "-1", "0.3", "-distance", "60",
        "-Xbeam", "1.0", "-Ybeam", "2.0", "-misset", "10", "20", "30"]
SENSORS = [(0.3, 2.0), (0.05, 12.0), (1.0, 0.8)]  # (thickness mm, mu 1/mm)


@pytest.fixture(autouse=True)
def _x64():
    with jax.enable_x64(True):
        yield


def _sensor_flags(t_mm: float, mu: float) -> list[str]:
    return ["-detector_thick", repr(t_mm * 1000.0), "-detector_abs", repr(1000.0 / mu)]


def _stack(exp, n: int, **kw) -> PanelStack:
    o, f, s = exp.info["pix0"] * 1e3, exp.info["fdet"], exp.info["sdet"]
    return PanelStack(origin=np.stack([o] * n), fast=np.stack([f] * n), slow=np.stack([s] * n),
                      n_fast=12, n_slow=10, pixel_size=0.8, **kw)


@pytest.mark.parametrize("flags_sensor", [False, True])
def test_each_panel_renders_with_its_own_sensor(flags_sensor):
    """Panel i of a stack with per-panel sensors = simulate() of that detector with
    -detector_thick/-detector_abs of panel i; the flags' own sensor (if any) is replaced."""
    extra = _sensor_flags(0.5, 1.0) if flags_sensor else []
    exp = from_cli_args(BASE + extra)
    t, mu = (np.array(v) for v in zip(*SENSORS))
    out = np.asarray(simulate_panels(exp.setup, exp.params, _stack(exp, 3, thickness=t, mu=mu)))
    for i, (ti, mi) in enumerate(SENSORS):
        ref_exp = from_cli_args(BASE + _sensor_flags(ti, mi))
        assert ref_exp.setup.thicksteps == exp.setup.thicksteps or not flags_sensor
        ref = np.asarray(simulate(ref_exp.setup, ref_exp.params))
        assert ref.max() > 0
        np.testing.assert_allclose(out[i], ref, rtol=1e-12, atol=1e-12 * ref.max())
    assert not np.allclose(out[0], out[1], rtol=1e-3)


def test_no_sensor_panels_ignore_the_flags_sensor():
    exp = from_cli_args(BASE + _sensor_flags(0.5, 1.0))
    bare = from_cli_args(BASE)
    out = np.asarray(simulate_panels(exp.setup, exp.params, _stack(exp, 1, no_sensor=True)))[0]
    ref = np.asarray(simulate(bare.setup, bare.params))
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-12 * ref.max())


def test_bad_sensors_are_refused():
    exp = from_cli_args(BASE)
    with pytest.raises(ValueError, match="both thickness and mu"):
        simulate_panels(exp.setup, exp.params, _stack(exp, 2, thickness=np.ones(2)))
    with pytest.raises(ValueError, match="positive"):
        simulate_panels(exp.setup, exp.params, _stack(exp, 2, thickness=np.array([0.1, 0.0]), mu=np.ones(2)))
    with pytest.raises(ValueError, match="one value per panel"):
        simulate_panels(exp.setup, exp.params, _stack(exp, 2, thickness=np.ones(3), mu=np.ones(3)))


def test_group_by_shape_separates_panels_with_and_without_a_sensor():
    exp = from_cli_args(BASE)
    o, f, s = exp.info["pix0"] * 1e3, exp.info["fdet"], exp.info["sdet"]
    panels = [dict(origin=o, fast_axis=f, slow_axis=s, n_fast=12, n_slow=10, pixel_size=0.8,
                   thickness=t, mu=m) for t, m in [(0.3, 2.0), (0.0, 0.0), (0.1, 5.0)]]
    groups = group_by_shape(panels)
    assert [idx for idx, _ in groups] == [(0, 2), (1,)]
    np.testing.assert_allclose(groups[0][1].thickness, [0.3, 0.1])
    assert groups[1][1].thickness is None


def test_gradient_of_panel_thickness_matches_central_differences():
    exp = from_cli_args(BASE)
    t0 = jnp.array([0.3, 0.05])
    mu = jnp.array([2.0, 12.0])
    stack = _stack(exp, 2, thickness=t0, mu=mu)
    img = np.asarray(simulate_panels(exp.setup, exp.params, stack))
    w = np.random.default_rng(1).uniform(0.5, 1.5, img.shape)

    def loss(t):
        st = PanelStack(origin=stack.origin, fast=stack.fast, slow=stack.slow, n_fast=12, n_slow=10,
                        pixel_size=0.8, thickness=t, mu=mu)
        return jnp.sum(w * simulate_panels(exp.setup, exp.params, st)) / img.sum()

    g = np.asarray(jax.grad(loss)(t0))
    h = 1e-6
    for i in range(2):
        e = jnp.zeros(2).at[i].set(h)
        fd = (float(loss(t0 + e)) - float(loss(t0 - e))) / (2 * h)
        assert abs(fd - g[i]) <= 1e-6 * np.abs(g).max() + 1e-6 * abs(fd), (i, fd, g[i])
    assert np.all(g > 0)  # a thicker sensor captures more


def test_expt_with_per_panel_sensors(tmp_path):
    """An .expt whose panels have different sensors (one none): each panel renders like the
    single-panel flags of that panel (expt_argv), the bare one without a sensor."""
    layout = json.loads((DATA / "manifest.json").read_text())["layouts"]["tilted3"]
    doc = json.loads((DATA / layout["expt"]).read_text())
    sensors = [(0.1, 3.3), (0.0, 0.0), (0.45, 1.5)]
    for p, (t, m) in zip(doc["detector"][0]["panels"], sensors):
        p["thickness"], p["mu"] = t, m
    path = tmp_path / "sensors.expt"
    path.write_text(json.dumps(doc))
    args = list(layout["expt_args"])
    images = simulation_from_expt(path, args).render()
    model = read_expt(path)
    for i in range(3):
        ref_exp = from_cli_args(expt_argv(model, panel=i, matrix_file=tmp_path / f"m{i}.mat") + args)
        assert ref_exp.setup.has_thickness == (sensors[i][0] > 0)
        ref = np.asarray(simulate(ref_exp.setup, ref_exp.params))
        np.testing.assert_allclose(np.asarray(images[i]), ref, rtol=1e-10, atol=1e-10 * ref.max())
    # the ground truth (-exptout) keeps each panel's own sensor
    sim = simulation_from_expt(path, args)
    truth = model_from_experiment(sim.experiment, model.panels)
    assert [(p.thickness, p.mu) for p in truth.panels] == sensors
