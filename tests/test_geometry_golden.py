"""Derived geometry against what the C program printed for every golden case.

The C program prints its derived detector geometry (distance, beam centre and
near point on the detector, rotated basis vectors, DIALS origin), the cell, and
its sampling decisions (oversampling, sources, mosaic domains, φ steps).  Those
lines are in the corpus (``stdout``); ``from_cli_args`` must reach the same
numbers (printed with %g, i.e. six significant digits).
"""

from __future__ import annotations

import os
import re

import jax
import numpy as np
import pytest

import golden

jax.config.update("jax_enable_x64", True)

import nanobragg_jax as nb  # noqa: E402

pytestmark = pytest.mark.usefixtures("golden_corpus")  # fails, never skips, without the corpus
CASE_IDS = golden.case_ids()

NUM = r"([-+0-9.eE]+|nan|-nan|inf)"


def _printed(stdout: str) -> dict:
    out = {}
    pats = {
        "distance": rf"distance={NUM} detsize",
        "Fbeam": rf"Fbeam={NUM} Sbeam", "Sbeam": rf"Sbeam={NUM}\n",
        "Fclose": rf"Fclose={NUM} Sclose", "Sclose": rf"Sclose={NUM}\n",
        "fdet": rf"X-AXIS= {NUM} {NUM} {NUM}", "sdet": rf"Y-AXIS= {NUM} {NUM} {NUM}",
        "odet": rf"Z-AXIS= {NUM} {NUM} {NUM}", "dials": rf"dials origin= {NUM} {NUM} {NUM}",
        "cell": rf"Unit Cell: {NUM} {NUM} {NUM} {NUM} {NUM} {NUM}",
        "oversample": r"\n  (\d+)x\d+ pixel oversample steps", "sources": r"\n  (\d+) sources\n",
        "domains": r"\n  (\d+) mosaic domains over", "phisteps": r"\n  (\d+) phi steps from",
        "pixels": r"meters \((\d+)x(\d+) pixels\)",
    }
    for key, pat in pats.items():
        m = re.search(pat, stdout)
        if m:
            out[key] = [float(g) for g in m.groups()]
    return out


def _close(ours, printed, rel=2e-5, abs_=2e-9):
    ours = np.atleast_1d(np.asarray(ours, np.float64))
    printed = np.asarray(printed, np.float64)
    # %g keeps six significant digits: allow half a unit in the sixth place.
    tol = np.maximum(abs_, rel * np.abs(printed) + 5e-7 * np.abs(printed))
    return np.all(np.abs(ours - printed) <= np.maximum(tol, 1e-6 * np.max(np.abs(printed)) + abs_))


@pytest.mark.parametrize("case_id", CASE_IDS)
def test_geometry_matches_c_printout(case_id, tmp_path):
    rec = golden.case(case_id)
    golden.stage_inputs(rec, tmp_path)
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        exp = nb.from_cli_args(golden.full_args(rec))
    finally:
        os.chdir(cwd)
    c = _printed(rec["stdout"])
    info, setup = exp.info, exp.setup
    assert _close(info["distance"], c["distance"]), (info["distance"], c["distance"])
    for key in ("Fbeam", "Sbeam", "Fclose", "Sclose"):
        assert _close(info[key], c[key]), (key, info[key], c[key])
    for key in ("fdet", "sdet", "odet"):
        assert _close(info[key], c[key], abs_=2e-6), (key, info[key], c[key])
    pix0 = np.asarray(info["pix0"])
    dials = 1000.0 * np.array([pix0[2], pix0[1], -pix0[0]])
    assert _close(dials, c["dials"], abs_=2e-4), (dials, c["dials"])
    real = np.asarray(info["real_vectors"])
    lengths = np.sqrt((real**2).sum(1))
    cosang = [real[1] @ real[2] / lengths[1] / lengths[2], real[0] @ real[2] / lengths[0] / lengths[2],
              real[0] @ real[1] / lengths[0] / lengths[1]]
    angles = np.degrees(np.arccos(np.clip(cosang, -1, 1)))
    assert _close(np.concatenate([lengths, angles]), c["cell"], abs_=2e-4)
    assert setup.oversample == int(c["oversample"][0])
    assert setup.n_sources == int(c["sources"][0])
    assert setup.mosaic_domains == int(c["domains"][0])
    assert setup.phisteps == int(c["phisteps"][0])
    assert (setup.fpixels, setup.spixels) == tuple(int(x) for x in c["pixels"])
