"""Programs compiled for the fields they read: ``experiment.geometry_key`` (the printed
geometry), ``kernel.context_setup`` (``simulate``'s shared geometry program) and the command
line's solid-angle sum (``report.SOLID_ANGLE_*_FIELDS``).

Each reduced program must read no Setup field (and, for the geometry, no Params leaf) outside its
declared list — else it would silently use a default — and must give the full setup's numbers.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

jax.config.update("jax_enable_x64", True)

import nanobragg_jax as nb  # noqa: E402
from nanobragg_jax import experiment  # noqa: E402
from nanobragg_jax.geometry import crystal as crystal_geo  # noqa: E402
from nanobragg_jax.geometry import detector as det_geo  # noqa: E402


class _Reads:
    """Forwards attribute reads to ``target`` and records their names."""

    def __init__(self, target, seen: set):
        object.__setattr__(self, "_target", target)
        object.__setattr__(self, "_seen", seen)

    def __getattr__(self, name):
        self._seen.add(name)
        return getattr(self._target, name)


FLAG_SETS = {
    "mosflm_beam": ["-cell", "70", "80", "90", "85", "95", "105", "-default_F", "100", "-N", "3",
                    "-detpixels", "48", "-distance", "120", "-twotheta", "10", "-misset", "5", "10", "15"],
    "adxv_sample": ["-cell", "50", "60", "70", "90", "90", "90", "-default_F", "100", "-adxv",
                    "-detpixels_f", "40", "-detpixels_s", "56", "-pivot", "sample", "-detector_rotx", "3"],
    "xds_matrix_close": ["-mat", "A.mat", "-default_F", "100", "-xds", "-detpixels", "32",
                         "-close_distance", "90", "-detector_roty", "4", "-oversample", "2"],
}


def _experiment(name, tmp_path):
    if name == "xds_matrix_close":
        (tmp_path / "A.mat").write_text(
            "0.0121 0.0003 -0.0011\n-0.0004 0.0119 0.0007\n0.0010 -0.0006 0.0124\n"
            "0 0 0\n100 101 102 90 90 90\n0 0 0\n")
    import os

    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        return nb.from_cli_args(FLAG_SETS[name])
    finally:
        os.chdir(cwd)


@pytest.mark.parametrize("name", sorted(FLAG_SETS))
def test_frame_and_lattice_read_only_the_key_fields(name, tmp_path):
    exp = _experiment(name, tmp_path)
    setup_reads, param_reads = set(), set()

    def frame_and_lattice(params):
        setup = _Reads(exp.setup, setup_reads)
        p = _Reads(params, param_reads)
        return det_geo.detector_frame(setup, p), crystal_geo.lattice(setup, p)

    jax.eval_shape(frame_and_lattice, exp.params)
    assert setup_reads and param_reads
    assert setup_reads <= set(experiment.geometry_fields(exp.setup)), setup_reads
    assert param_reads <= set(experiment.GEOMETRY_PARAM_FIELDS), param_reads


@pytest.mark.parametrize("name", sorted(FLAG_SETS))
def test_reduced_geometry_equals_the_full_setup(name, tmp_path):
    exp = _experiment(name, tmp_path)
    full_frame, full_lat = jax.jit(experiment._geometry_arrays.__wrapped__, static_argnums=0)(
        exp.setup, exp.params)
    geo = nb.derived_geometry(exp.setup, exp.params)
    # equal to a few ulp: the reduced program is compiled with the quick options (no LLVM
    # optimisation, so no fused multiply-adds); a field missing from the key would be far off
    close = dict(rtol=1e-14, atol=0.0)
    np.testing.assert_allclose(geo["pix0"], np.asarray(full_frame.pix0), atol=1e-16)
    np.testing.assert_allclose(geo["odet"], np.asarray(full_frame.odet), rtol=1e-14, atol=1e-16)
    np.testing.assert_allclose(geo["Sbeam"], float(full_frame.Sbeam), **close)
    np.testing.assert_allclose(geo["distance"], float(full_frame.distance), **close)
    np.testing.assert_allclose(geo["reciprocal_vectors"], np.asarray(full_lat.reciprocal), rtol=1e-14,
                               atol=1e-18)
    np.testing.assert_allclose(geo["volume"], float(full_lat.volume), **close)


def test_setups_differing_elsewhere_share_one_key(tmp_path):
    a = nb.from_cli_args(FLAG_SETS["mosflm_beam"])
    b = nb.from_cli_args(FLAG_SETS["mosflm_beam"][:-6] + ["-detpixels", "64", "-oversample", "3",
                                                           "-mosaic", "0.5", "-mosaic_domains", "4"])
    assert a.setup != b.setup
    assert experiment.geometry_key(a.setup, a.params)[0] == experiment.geometry_key(b.setup, b.params)[0]
    ka = jax.tree_util.tree_map(lambda x: np.shape(x), experiment.geometry_key(a.setup, a.params)[1])
    kb = jax.tree_util.tree_map(lambda x: np.shape(x), experiment.geometry_key(b.setup, b.params)[1])
    assert ka == kb


# --- simulate's shared context program ------------------------------------------------------

CONTEXT_FLAGS = {
    "sources_mosaic_phi_sensor": ["-cell", "60", "60", "60", "90", "90", "90", "-default_F", "100", "-N", "3",
                                  "-detpixels", "24", "-mosaic", "0.5", "-mosaic_dom", "3", "-phi", "1",
                                  "-osc", "0.5", "-phisteps", "2", "-dispersion", "1", "-dispsteps", "2",
                                  "-divergence", "0.2", "-divsteps", "2", "-detector_thick", "100",
                                  "-detector_thicksteps", "2", "-oversample", "2", "-water", "0.3",
                                  "-adxv", "-misset", "2", "3", "4"],
}


def _context_cases(tmp_path):
    cases = {name: _experiment(name, tmp_path) for name in FLAG_SETS}
    cases.update({name: nb.from_cli_args(argv) for name, argv in CONTEXT_FLAGS.items()})
    return cases


def test_context_reads_only_the_key_fields(tmp_path):
    from nanobragg_jax import kernel

    for name, exp in _context_cases(tmp_path).items():
        reads = set()
        jax.eval_shape(lambda p: kernel.build_context(_Reads(exp.setup, reads), p), exp.params)
        allowed = set(kernel.context_fields(exp.setup)) | {"steps"}  # steps: a property of kept fields
        assert reads and reads <= allowed, (name, reads - allowed)
        assert kernel.context_setup(exp.setup).steps == exp.setup.steps


def test_shared_context_equals_the_context_of_the_full_setup(tmp_path):
    from nanobragg_jax import kernel
    from nanobragg_jax.simulate import shared_context

    for name, exp in _context_cases(tmp_path).items():
        full = jax.jit(kernel.build_context, static_argnums=0)(exp.setup, exp.params)
        shared = shared_context(exp.setup, exp.params)
        for path, a, b in zip(jax.tree_util.tree_leaves_with_path(full), jax.tree_util.tree_leaves(full),
                              jax.tree_util.tree_leaves(shared)):
            a, b = np.asarray(a), np.asarray(b)  # a few ulp apart at most (the quick options)
            np.testing.assert_allclose(b, a, rtol=1e-14, atol=1e-15 * np.abs(a).max(initial=0.0),
                                       err_msg=f"{name} {path[0]}")


# --- the command line's solid-angle sum -------------------------------------------------------

def test_solid_angle_reads_only_the_key_fields_and_sums_as_the_full_setup(tmp_path):
    import importlib

    report = importlib.import_module("nanobragg_jax.report")
    block = report._solid_angle_block.__wrapped__
    for name, exp in _context_cases(tmp_path).items():
        setup_reads, param_reads = set(), set()
        jax.eval_shape(lambda p: block(_Reads(exp.setup, setup_reads), _Reads(p, param_reads), 0, 64),
                       exp.params)
        allowed = set(report.SOLID_ANGLE_SETUP_FIELDS) | {"n_subpixels"}  # a property of oversample
        assert setup_reads and setup_reads <= allowed, (name, setup_reads - allowed)
        assert param_reads and param_reads <= set(report.SOLID_ANGLE_PARAM_FIELDS), (name, param_reads)
        full = float(jax.jit(block, static_argnums=(0, 3))(exp.setup, exp.params, 0, exp.setup.spixels
                                                           * exp.setup.fpixels)) / exp.setup.steps
        np.testing.assert_allclose(report.solid_angle_sum(exp), full, rtol=1e-12)
