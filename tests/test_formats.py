"""NeXus/NXmx and CBF writers, and the command line's -expt / -exptout / -h5file / -cbffile."""

from __future__ import annotations

import json
from pathlib import Path

import jax
import numpy as np
import pytest

from nanobragg_jax.io.expt import read_expt, simulation_from_expt
from nanobragg_jax.io.nexus import mcstas_basis, write_nxmx

from golden import compare, passes
from nxmx_check import check_nxmx

h5py = pytest.importorskip("h5py")
DATA = Path(__file__).parent / "data" / "panels"


def _layout(name: str) -> dict:
    with open(DATA / "manifest.json") as fh:
        return json.load(fh)["layouts"][name]


def _str(ds) -> str:
    v = ds[()]
    return v.decode() if isinstance(v, bytes) else str(v)


def test_nxmx_has_the_fields_dials_needs(tmp_path):
    """NXmx: NXentry/definition, NXdata signal, NXinstrument/NXbeam/NXdetector with
    NXdetector_module depends_on chains that reproduce every panel's geometry, NXsample."""
    layout = _layout("tilted3")
    panels = [dict(origin=p["origin"], fast_axis=p["fast"], slow_axis=p["slow"], pixel_size=0.2, name=f"p{i}")
              for i, p in enumerate(layout["panels"])]
    images = np.random.default_rng(0).uniform(0, 50, (3, 40, 48)).astype(np.float32)
    travel, normal = np.array([1.0, 0, 0]), np.array([0.0, -1.0, 0])
    path = tmp_path / "out.h5"
    write_nxmx(path, images, panels, wavelength=1.1, beam_travel=travel, polarization_normal=normal,
               polarization_fraction=0.9, spindle_axis=[0, 0, 1], phi=3.0, osc=0.5, sensor_thickness=0.1)
    lab = [dict(p, n_fast=48, n_slow=40) for p in layout["panels"]]
    basis = mcstas_basis(travel, normal)
    with h5py.File(path, "r") as f:
        check_nxmx(f, lab, travel, normal, n_images=1, pixel_size=0.2)
        entry = f["entry"]
        data = entry["data"]
        assert data["data"].dtype == np.float32
        np.testing.assert_array_equal(data["data"][0], images)
        assert data["data"].compression is not None or len(data["data"]._filters) > 0
        beam = entry["instrument"]["beam"]
        assert float(beam["incident_wavelength"][()]) == pytest.approx(1.1)
        stokes = beam["incident_polarization_stokes"][()]
        assert np.hypot(stokes[1], stokes[2]) == pytest.approx(0.8)  # Kahn factor 2p − 1
        det = entry["instrument"]["detector"]
        assert det["sensor_thickness"].attrs["units"] == "mm"
        assert _str(det["sensor_material"]) == "Si"
        omega = f[_str(entry["sample"]["depends_on"])]
        np.testing.assert_allclose(basis.T @ omega.attrs["vector"], [0, 0, 1], atol=1e-15)
        assert float(omega[0]) == pytest.approx(3.0)


def test_nxmx_int32_and_image_axis(tmp_path):
    panels = [dict(origin=[100, -1, -1], fast_axis=[0, 0, 1], slow_axis=[0, -1, 0], pixel_size=0.1)]
    images = np.full((2, 1, 4, 5), 2.6)
    write_nxmx(tmp_path / "x.h5", images, panels, wavelength=1.0, phi=[0.0, 0.1], dtype="int32")
    with h5py.File(tmp_path / "x.h5", "r") as f:
        d = f["entry/data/data"]
        # one module: (frames, slow, fast) with 2-D data_origin/data_size
        assert d.shape == (2, 4, 5) and d.dtype == np.int32 and int(d[0, 0, 0]) == 3
        np.testing.assert_array_equal(f["entry/instrument/detector/module0/data_origin"][()], [0, 0])
        np.testing.assert_array_equal(f["entry/instrument/detector/module0/data_size"][()], [4, 5])
        np.testing.assert_allclose(f["entry/sample/transformations/omega"][()], [0.0, 0.1])


def test_cbf_opens_in_fabio_with_the_header_values(tmp_path, monkeypatch):
    fabio = pytest.importorskip("fabio")
    from nanobragg_jax import from_cli_args
    from nanobragg_jax.cli import main

    monkeypatch.chdir(tmp_path)
    flags = ["-cell", "60", "60", "60", "90", "90", "90", "-default_F", "100", "-N", "3", "-lambda", "1.2",
             "-detpixels_f", "32", "-detpixels_s", "24", "-pixel", "0.172", "-distance", "90", "-Xbeam", "2.0",
             "-Ybeam", "1.5", "-oversample", "1"]
    rc = main(flags + ["-floatfile", "f.bin", "-intfile", "i.img", "-nopgm", "-nonoise", "-cbffile", "x.cbf"])
    assert rc == 0
    img = fabio.open(str(tmp_path / "x.cbf"))
    assert img.data.shape == (24, 32) and img.data.dtype == np.int32
    with jax.enable_x64(True):
        exp = from_cli_args(flags)
    from nanobragg_jax.io.smv import read_smv

    np.testing.assert_array_equal(img.data, read_smv(tmp_path / "i.img").data.astype(np.int32))
    h = img.pilatus_headers
    assert h["Pixel_size"][0] == pytest.approx(172e-6)
    assert h["Wavelength"] == pytest.approx(1.2)
    assert h["Detector_distance"] == pytest.approx(exp.info["close_distance"], rel=1e-9)
    bx, by = h["Beam_xy"]
    assert bx * 0.172 == pytest.approx(exp.info["Fbeam"] * 1e3, abs=1e-5)
    assert by * 0.172 == pytest.approx(exp.info["Sbeam"] * 1e3, abs=1e-5)


def test_cli_multi_panel_round_trip(tmp_path, monkeypatch):
    """-expt (4 panels) → float/SMV + -exptout + -h5file; the written .expt renders the same
    panels as the HDF5 holds, and both equal the C program."""
    monkeypatch.chdir(tmp_path)
    from nanobragg_jax.cli import main

    layout = _layout("grid2x2")
    args = ["-expt", str(DATA / layout["expt"])] + layout["expt_args"]
    rc = main(args + ["-floatfile", "f.bin", "-intfile", "i.img", "-nopgm", "-nonoise",
                      "-exptout", "truth.expt", "-h5file", "out.h5"])
    assert rc == 0
    with np.load(DATA / "grid2x2.npz") as z:
        ref = z["float"]
    stacked = np.fromfile(tmp_path / "f.bin", "<f4").reshape(4 * 40, 48)
    with h5py.File(tmp_path / "out.h5", "r") as f:
        h5 = f["entry/data/data"][()]
    assert h5.shape == (1, 4, 40, 48)
    h5 = h5[0]
    np.testing.assert_array_equal(h5.reshape(160, 48), stacked)
    with jax.enable_x64(True):
        again = simulation_from_expt(tmp_path / "truth.expt", layout["expt_args"]).render()
    model = read_expt(tmp_path / "truth.expt")
    assert model.images == ("out.h5",)
    for i in range(4):
        np.testing.assert_allclose(np.asarray(again[i]), h5[i], rtol=2e-7, atol=1e-7 * h5.max())
        assert passes(compare(h5[i], ref[i]), "float32")
        assert passes(compare(np.asarray(again[i]), ref[i]), "float64")


def test_cli_single_panel_expt_round_trip(tmp_path, monkeypatch):
    """flags → -exptout → -expt: the same float image."""
    monkeypatch.chdir(tmp_path)
    from nanobragg_jax.cli import main

    physics = ["-default_F", "100", "-N", "4", "-oversample", "1"]
    flags = ["-cell", "60", "70", "80", "90", "95", "100", "-misset", "5", "10", "15", "-lambda", "1.1",
             "-detpixels_f", "32", "-detpixels_s", "28", "-pixel", "0.25", "-distance", "70",
             "-detector_rotz", "7"]
    out = ["-intfile", "i.img", "-nopgm", "-nonoise"]
    assert main(flags + physics + out + ["-floatfile", "a.bin", "-exptout", "a.expt"]) == 0
    assert main(["-expt", "a.expt"] + physics + out + ["-floatfile", "b.bin"]) == 0
    a = np.fromfile(tmp_path / "a.bin", "<f4")
    b = np.fromfile(tmp_path / "b.bin", "<f4")
    assert a.max() > 0
    np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-6 * a.max())


@pytest.mark.parametrize("extra, message", [
    (["-distance", "100"], "-distance: the detector comes from -expt"),
    (["-cbffile", "x.cbf"], "-cbffile: a CBF holds one panel"),
])
def test_cli_refuses_and_writes_nothing(tmp_path, monkeypatch, capsys, extra, message):
    monkeypatch.chdir(tmp_path)
    from nanobragg_jax.cli import main

    layout = _layout("grid2x2")
    rc = main(["-expt", str(DATA / layout["expt"])] + layout["expt_args"] + extra
              + ["-floatfile", "f.bin", "-intfile", "i.img", "-nopgm", "-nonoise"])
    assert rc == 2
    assert message in capsys.readouterr().err
    assert not any(tmp_path.iterdir())
