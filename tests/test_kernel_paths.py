"""The two evaluations of the pixel sum agree: fast path = general path to 1e-12 (float64).

The kernel has two paths (see ``kernel``): the fast one (a loop over sub-path rows, polynomial
sines, no sub-path tensor) and the general one (every sub-path broadcast, which also handles
tricubic interpolation and ``-oversample_thick/_polar/_omega``).  Both are built from the same
physics functions; this test renders every golden setup the fast path can compute through
both, on a 16 × 16 window around the brightest pixel of the C program's image, and asserts
per-pixel agreement ≤ 1e-12 relative.  The default tier runs a representative subset (one
case per physics feature); ``-m slow`` runs all of them.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import golden

jax.config.update("jax_enable_x64", True)

import nanobragg_jax as nb  # noqa: E402
from nanobragg_jax import kernel  # noqa: E402

pytestmark = pytest.mark.skipif(not golden.available(), reason="golden corpus (../shared/golden) not found")

WINDOW = 16
REL_TOL = 1e-12
# One case per feature that changes the kernel's arithmetic (geometry variants only move pixels).
REPRESENTATIVE = {
    "canonical_1024", "oversample_3", "absorption", "dmin", "curved_detector", "mosaic",
    "divergence_round", "dispersion", "phi_spindle_axis", "water", "hkl_random_nointerp",
    "shape_round_xtal", "shape_gauss_xtal", "shape_tophat_spots", "point_pixel_tilt", "nopolar",
    "sourcefile_lambdas", "Na_Nb_Nc", "integration", "mask", "custom_vectors",
}


def _cases() -> list:
    if not golden.available():
        return []
    out = []
    for rec in golden.manifest():
        marks = () if rec["id"] in REPRESENTATIVE else (pytest.mark.slow,)
        out.append(pytest.param(rec, id=rec["id"], marks=marks))
    return out


@partial(jax.jit, static_argnames=("setup",))
def _both_paths(setup, params, s, f):
    ctx = kernel.build_context(setup, params)
    order = jnp.zeros_like(s)
    no_switch = (jnp.int32(0), jnp.int32(0))
    return (kernel.pixel_photons_fast(setup, ctx, s, f),
            kernel.pixel_photons_general(setup, ctx, s, f, order, no_switch))


def _window(ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(slow, fast) indices of the WINDOW × WINDOW pixels around the brightest C pixel."""
    rows, cols = ref.shape
    s0, f0 = np.unravel_index(int(np.argmax(ref)), ref.shape)
    s_lo = int(np.clip(s0 - WINDOW // 2, 0, max(rows - WINDOW, 0)))
    f_lo = int(np.clip(f0 - WINDOW // 2, 0, max(cols - WINDOW, 0)))
    s, f = np.meshgrid(np.arange(s_lo, min(s_lo + WINDOW, rows)),
                       np.arange(f_lo, min(f_lo + WINDOW, cols)), indexing="ij")
    return s.ravel().astype(np.int32), f.ravel().astype(np.int32)


@pytest.mark.parametrize("rec", _cases())
def test_fast_and_general_paths_agree(rec, tmp_path):
    exp = golden.experiment(rec, tmp_path)
    if not kernel.fast_path_applies(exp.setup):
        pytest.skip("the fast path does not compute this setup (interpolation / -oversample_*)")
    s, f = _window(golden.arrays(rec["id"])["float"])
    fast, general = (np.asarray(x) for x in _both_paths(exp.setup, exp.params, jnp.asarray(s), jnp.asarray(f)))
    assert fast.dtype == np.float64
    assert np.all(np.isfinite(fast)) and np.all(np.isfinite(general))
    assert np.max(general) > 0.0, "the window should hold signal"
    rel = np.abs(fast - general) / np.maximum(np.abs(general), np.finfo(np.float64).tiny)
    rel = np.where((fast == 0.0) & (general == 0.0), 0.0, rel)
    assert float(np.max(rel)) <= REL_TOL, (float(np.max(rel)), rec["id"])
