"""DIALS .expt files: read (hierarchies, conventions), write, and render through them."""

from __future__ import annotations

import json
from pathlib import Path

import jax
import numpy as np
import pytest

from nanobragg_jax import from_cli_args, simulate
from nanobragg_jax.io.errors import InputFileError
from nanobragg_jax.io.expt import (expt_argv, model_from_experiment, parse_expt, read_expt, simulation_from_expt,
                                   write_expt, write_matrix_file)

from golden import compare, passes

DATA = Path(__file__).parent / "data" / "panels"


@pytest.fixture(autouse=True)
def _x64():
    with jax.enable_x64(True):
        yield


def _layouts() -> dict:
    with open(DATA / "manifest.json") as fh:
        return json.load(fh)["layouts"]


@pytest.mark.parametrize("name", sorted(_layouts()))
def test_expt_of_each_layout_renders_the_c_images(name):
    """.expt (geometry, beam, crystal) + the other flags → every panel equals the C program."""
    layout = _layouts()[name]
    sim = simulation_from_expt(DATA / layout["expt"], layout["expt_args"])
    images = sim.render()
    with np.load(DATA / f"{name}.npz") as z:
        ref = z["float"]
    assert len(images) == ref.shape[0]
    for i, img in enumerate(images):
        fig = compare(np.asarray(img), ref[i])
        assert passes(fig, "float64"), (name, i, fig)


def test_expt_panels_are_the_manifest_panels():
    for name, layout in _layouts().items():
        model = read_expt(DATA / layout["expt"])
        for p, q in zip(model.panels, layout["panels"]):
            np.testing.assert_allclose(p.origin, q["origin"], atol=1e-12)
            np.testing.assert_allclose(p.fast_axis, q["fast"], atol=1e-15)
            np.testing.assert_allclose(p.slow_axis, q["slow"], atol=1e-15)
            assert (p.n_fast, p.n_slow, p.pixel_size) == (48, 40, 0.2)


@pytest.mark.parametrize("flags", [
    ["-distance", "80", "-detector_rotx", "4", "-detector_roty", "-3", "-twotheta", "8", "-Xbeam", "3.1",
     "-Ybeam", "2.7"],
    ["-xds", "-close_distance", "70", "-ORGX", "20", "-ORGY", "14", "-phi", "12", "-osc", "0.2",
     "-phisteps", "2", "-polar", "0.6"],
])
def test_one_panel_expt_renders_like_the_flags(tmp_path, flags):
    """Flags → Experiment → .expt → flags again: the same image (single-panel path)."""
    physics = ["-default_F", "100", "-N", "4", "-oversample", "1"]
    base = ["-cell", "60", "70", "80", "88", "92", "101", "-misset", "15", "-25", "40", "-lambda", "1.3",
            "-detpixels_f", "40", "-detpixels_s", "32", "-pixel", "0.3"]
    exp = from_cli_args(base + flags + physics)
    path = tmp_path / "one.expt"
    write_expt(path, model_from_experiment(exp))
    sim = simulation_from_expt(path, physics + (["-phisteps", "2"] if "-phisteps" in flags else []))
    exp2 = sim.experiment
    ref = np.asarray(simulate(exp.setup, exp.params))
    ours = np.asarray(simulate(exp2.setup, exp2.params))
    assert ref.max() > 0
    np.testing.assert_allclose(ours, ref, rtol=1e-9, atol=1e-9 * ref.max())
    # the multi-panel path agrees as well
    np.testing.assert_allclose(np.asarray(sim.render()[0]), ref, rtol=1e-9, atol=1e-9 * ref.max())


def test_matrix_file_reproduces_the_cell_vectors(tmp_path):
    """-mat of write_matrix_file gives back the cell vectors (any orientation, any λ)."""
    rng = np.random.default_rng(3)
    for k in range(3):
        exp = from_cli_args(["-cell", "50", "60", "70", "80", "95", "105", "-misset"]
                            + [str(x) for x in rng.uniform(-170, 170, 3)] + ["-default_F", "1", "-detpixels", "8"])
        real = exp.info["real_vectors"]
        lam = 0.7 + 0.3 * k
        write_matrix_file(tmp_path / "a.mat", real, lam)
        exp2 = from_cli_args(["-mat", str(tmp_path / "a.mat"), "-lambda", str(lam), "-default_F", "1",
                              "-detpixels", "8"])
        np.testing.assert_allclose(exp2.info["real_vectors"], real, rtol=0, atol=1e-12)


def test_a_later_lambda_keeps_the_crystal(tmp_path):
    """-expt then -lambda: the wavelength changes, the crystal does not."""
    layout = _layouts()["grid2x2"]
    a = simulation_from_expt(DATA / layout["expt"], layout["expt_args"]).experiment
    b = simulation_from_expt(DATA / layout["expt"], layout["expt_args"] + ["-lambda", "0.9"]).experiment
    assert float(b.params.wavelength) == pytest.approx(0.9)
    np.testing.assert_allclose(b.info["real_vectors"], a.info["real_vectors"], atol=1e-12)


def _group(f, s, o, children):
    return {"name": "g", "fast_axis": list(f), "slow_axis": list(s), "origin": list(o), "children": children}


def test_hierarchy_composes_the_frames():
    """A panel inside two nested groups: lab = R1·(R2·local + o2) + o1, R = [fast slow fast×slow]."""
    panel = {"name": "p", "fast_axis": [1, 0, 0], "slow_axis": [0, 1, 0], "origin": [1.0, 2.0, 3.0],
             "image_size": [10, 8], "pixel_size": [0.1, 0.1]}
    c, s = np.cos(0.3), np.sin(0.3)
    outer = _group([c, s, 0], [-s, c, 0], [5.0, -4.0, -100.0], [
        _group([0, 1, 0], [-1, 0, 0], [0.5, 0.25, 0.0], [{"panel": 0}])])
    data = {"experiment": [{"beam": 0, "detector": 0}], "beam": [{"direction": [0, 0, 1], "wavelength": 1.0}],
            "detector": [{"panels": [panel], "hierarchy": outer}]}
    p = parse_expt(data).panels[0]
    R1 = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])  # columns fast, slow, normal
    R2 = np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1]])
    np.testing.assert_allclose(p.origin, R1 @ (R2 @ [1.0, 2.0, 3.0] + [0.5, 0.25, 0.0]) + [5.0, -4.0, -100.0])
    np.testing.assert_allclose(p.fast_axis, R1 @ R2 @ [1, 0, 0], atol=1e-15)
    np.testing.assert_allclose(p.slow_axis, R1 @ R2 @ [0, 1, 0], atol=1e-15)
    assert (p.n_fast, p.n_slow) == (10, 8)


def test_beam_conventions():
    """direction points at the source; p ↔ Kahn 2p − 1; E-vector ⟂ polarisation normal."""
    data = {"experiment": [{"beam": 0, "detector": 0}],
            "beam": [{"direction": [0, 0, 2], "wavelength": 0.9, "polarization_normal": [0, 1, 0],
                      "polarization_fraction": 0.999, "flux": 0.0}],
            "detector": [{"panels": [{"fast_axis": [1, 0, 0], "slow_axis": [0, -1, 0],
                                      "origin": [-5, 5, -100], "image_size": [10, 10], "pixel_size": [1, 1]}]}]}
    m = parse_expt(data)
    np.testing.assert_allclose(m.beam.travel, [0, 0, -1])
    assert m.beam.kahn_factor == pytest.approx(0.998)
    argv = expt_argv(m)
    k = argv.index("-beam_vector")
    assert [float(x) for x in argv[k + 1:k + 4]] == [0.0, 0.0, -1.0]
    k = argv.index("-polar_vector")
    e = np.array([float(x) for x in argv[k + 1:k + 4]])
    assert abs(e @ [0, 1, 0]) < 1e-15 and abs(e @ [0, 0, 1]) < 1e-15
    assert "-flux" not in argv  # 0 means "not given"
    k = argv.index("-distance")
    assert float(argv[k + 1]) == pytest.approx(100.0)


@pytest.mark.parametrize("text, what", [
    ("{", "not a JSON"),
    ('{"experiment": []}', "empty"),
    ('{"experiment": [{"beam": 0, "detector": 0}], "beam": [{"direction": [0,0,1]}], "detector": [{}]}',
     "wavelength"),
    ('{"experiment": [{"beam": 0, "detector": 3}], "beam": [{"direction": [0,0,1], "wavelength": 1}],'
     ' "detector": []}', "detector"),
    ('{"experiment": [{"beam": 0, "detector": 0}], "beam": [{"direction": [0,0,1], "wavelength": 1}],'
     ' "detector": [{"panels": [{"fast_axis": [1,0,0], "slow_axis": [1,0,0], "origin": [0,0,1],'
     ' "image_size": [2,2], "pixel_size": [1,1]}]}]}', "perpendicular"),
])
def test_bad_files_name_the_file_and_field(tmp_path, text, what):
    path = tmp_path / "bad.expt"
    path.write_text(text)
    with pytest.raises(InputFileError, match=what) as info:
        read_expt(path)
    assert "bad.expt" in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(InputFileError, match="not found"):
        read_expt(tmp_path / "nope.expt")
