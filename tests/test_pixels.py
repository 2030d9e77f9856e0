"""Sparse evaluation (``pixels.simulate_pixels``) equals the full image at the listed pixels.

Values must agree with ``simulate`` to 1e-12 relative (float64) on setups that
exercise oversampling, sensor thickness, mosaic domains, φ steps, dispersion,
divergence, the general (loop-order) path, an ROI and a mask; gradients of a
sparse loss equal the gradient of the same loss written on the full image.
"""

from __future__ import annotations

import dataclasses

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from nanobragg_jax.experiment import from_cli_args  # noqa: E402
from nanobragg_jax.pixels import bucket_size, simulate_pixels  # noqa: E402
from nanobragg_jax.simulate import simulate  # noqa: E402

SETUPS = {
    "mosflm_misset": "-cell 100 100 100 90 90 90 -default_F 100 -lambda 1 -N 5 -distance 100 "
                     "-detpixels 40 -pixel 0.5 -oversample 1 -misset 3 5 7",
    "oversample_thick": "-cell 70 80 90 85 95 105 -default_F 100 -lambda 1.2 -N 4 -distance 80 "
                        "-detpixels 32 -pixel 0.8 -oversample 2 -detector_thick 100 "
                        "-detector_abs 300 -detector_thicksteps 2 -misset 5 10 15",
    "mosaic_phi_disp_div": "-cell 60 60 60 90 90 90 -default_F 100 -lambda 1 -N 4 -distance 80 "
                           "-detpixels 24 -pixel 1 -mosaic 0.5 -mosaic_dom 3 -phi 1 -osc 0.5 "
                           "-phisteps 2 -dispersion 1 -dispsteps 2 -divergence 0.2 -divsteps 2 "
                           "-polar 0.9 -water 0.3 -misset 2 3 4",
    "general_path_xds": "-xds -cell 70 80 90 85 95 105 -default_F 100 -lambda 1.2 -N 4 "
                        "-close_distance 80 -twotheta 10 -misset 5 10 15 -ORGX 15 -ORGY 22 "
                        "-detpixels 30 -pixel 0.8 -oversample 2 -oversample_omega "
                        "-oversample_polar",
    "roi_round": "-cell 100 100 100 90 90 90 -default_F 100 -lambda 1 -N 5 -distance 100 "
                 "-detpixels 36 -pixel 0.5 -round_xtal -roi 5 30 3 25 -misset 3 5 7",
}


def _load(name):
    exp = from_cli_args(SETUPS[name].split())
    return exp.setup, jax.tree_util.tree_map(jnp.asarray, exp.params)


def _random_pixels(setup, n, seed):
    rng = np.random.default_rng(seed)
    flat = rng.choice(setup.spixels * setup.fpixels, size=n, replace=False)
    return flat // setup.fpixels, flat % setup.fpixels


@pytest.mark.parametrize("name", sorted(SETUPS))
def test_sparse_equals_full_image(name):
    setup, params = _load(name)
    image = np.asarray(simulate(setup, params))
    assert image.sum() > 0
    s, f = _random_pixels(setup, 150, seed=1)
    sparse = np.asarray(simulate_pixels(setup, params, s, f))
    full = image[s, f]
    assert np.count_nonzero(full) > 10
    np.testing.assert_allclose(sparse, full, rtol=1e-12, atol=1e-12 * image.max())
    # every pixel of the detector, in a shuffled order (several tiles / buckets)
    s_all, f_all = _random_pixels(setup, setup.spixels * setup.fpixels, seed=2)
    every = np.asarray(simulate_pixels(setup, params, s_all, f_all))
    np.testing.assert_allclose(every, image[s_all, f_all], rtol=1e-12, atol=1e-12 * image.max())


def test_mask_applied():
    setup, params = _load("mosflm_misset")
    rng = np.random.default_rng(0)
    mask = (rng.uniform(size=(setup.spixels, setup.fpixels)) > 0.3).astype(np.float64)
    setup = dataclasses.replace(setup, has_mask=True)
    params = params.replace(mask=jnp.asarray(mask))
    image = np.asarray(simulate(setup, params))
    s, f = _random_pixels(setup, 200, seed=3)
    np.testing.assert_allclose(np.asarray(simulate_pixels(setup, params, s, f)), image[s, f],
                               rtol=1e-12, atol=1e-12 * image.max())
    assert np.any((mask[s, f] == 0)) and np.all(np.asarray(simulate_pixels(setup, params, s, f))[mask[s, f] == 0] == 0)


def test_gradient_of_sparse_loss_equals_full_image_loss():
    setup, params = _load("mosflm_misset")
    s, f = _random_pixels(setup, 120, seed=4)
    w = jnp.asarray(np.random.default_rng(5).normal(size=s.size))
    fields = ("cell", "misset", "distance", "beam_center", "N", "wavelength")
    sub = {k: getattr(params, k) for k in fields}

    def sparse_loss(d):
        return jnp.sum(w * simulate_pixels(setup, params.replace(**d), s, f))

    def full_loss(d):
        return jnp.sum(w * simulate(setup, params.replace(**d))[s, f])

    g_sparse = jax.grad(sparse_loss)(sub)
    g_full = jax.grad(full_loss)(sub)
    for k in fields:
        assert np.any(np.asarray(g_full[k]) != 0), k
        np.testing.assert_allclose(np.asarray(g_sparse[k]), np.asarray(g_full[k]), rtol=1e-10,
                                   atol=1e-12 * np.abs(np.asarray(g_full[k])).max(), err_msg=k)


def test_same_bucket_does_not_recompile():
    """Different pixel lists (and lengths) in one bucket reuse the compiled program."""
    from nanobragg_jax import pixels

    setup, params = _load("mosflm_misset")
    before = pixels._pixels_jit._cache_size()
    for n, seed in ((70, 0), (100, 1), (128, 2)):
        assert bucket_size(n) == 128
        s, f = _random_pixels(setup, n, seed)
        simulate_pixels(setup, params, s, f)
    assert pixels._pixels_jit._cache_size() - before <= 1


def test_interpolation_and_panels_refused():
    setup, params = _load("mosflm_misset")
    with pytest.raises(NotImplementedError, match="interpolat"):
        simulate_pixels(dataclasses.replace(setup, interpolate=True), params, [0], [0])
    with pytest.raises(NotImplementedError, match="panel"):
        simulate_pixels(setup, params, [0], [0], panel_idx=[0])
    with pytest.raises(ValueError, match="outside"):
        simulate_pixels(setup, params, [setup.spixels], [0])
