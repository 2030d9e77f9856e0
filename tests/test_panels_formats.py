"""-h5file for a detector whose panels differ in shape: one NXmx data array padded to the
largest panel, each module's data_size its own (slow, fast)."""

from __future__ import annotations

import json
from pathlib import Path

import jax
import numpy as np
import pytest

from nanobragg_jax.io.expt import simulation_from_expt

h5py = pytest.importorskip("h5py")
DATA = Path(__file__).parent / "data" / "panels"


def test_h5file_of_panels_of_different_shapes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    from nanobragg_jax.cli import main

    layout = json.loads((DATA / "manifest.json").read_text())["layouts"]["grid2x2"]
    doc = json.loads((DATA / layout["expt"]).read_text())
    sizes = [(48, 40), (32, 40), (48, 24), (16, 8)]  # (fast, slow) of each panel
    for p, (nf, ns) in zip(doc["detector"][0]["panels"], sizes):
        p["image_size"] = [nf, ns]
    (tmp_path / "mixed.expt").write_text(json.dumps(doc))
    args = list(layout["expt_args"])
    rc = main(["-expt", "mixed.expt"] + args + ["-floatfile", "f.bin", "-nopgm", "-nonoise", "-h5file", "out.h5"])
    assert rc == 0
    with jax.enable_x64(True):
        images = [np.asarray(im) for im in simulation_from_expt(tmp_path / "mixed.expt", args).render()]
    with h5py.File(tmp_path / "out.h5", "r") as f:
        data = f["entry/data/data"][()]
        assert data.shape == (1, 4, 40, 48)
        det = f["entry/instrument/detector"]
        for i, (nf, ns) in enumerate(sizes):
            origin = det[f"module{i}/data_origin"][()]
            size = det[f"module{i}/data_size"][()]
            np.testing.assert_array_equal(origin, [i, 0, 0])
            np.testing.assert_array_equal(size, [1, ns, nf])
            block = data[0, i, :ns, :nf]
            assert images[i].shape == (ns, nf) and images[i].max() > 0
            np.testing.assert_allclose(block, images[i], rtol=2e-7, atol=1e-7 * images[i].max())
            assert not data[0, i, ns:, :].any() and not data[0, i, :, nf:].any()  # padding
