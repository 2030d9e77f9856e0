"""Sparse evaluation (``pixels.simulate_pixels``) equals the full image at the listed pixels.

Values must agree with ``simulate`` (``simulate_panels`` for panels) to 1e-12 relative (float64) on setups that
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
    # test_gradients.py's mosflm_cubic geometry: the full image and its gradient are compiled once
    "mosflm_misset": "-cell 100 100 100 90 90 90 -default_F 100 -lambda 1 -N 5 -distance 100 "
                     "-detpixels 33 -pixel 0.5 -oversample 1 -misset 3 5 7",
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
    # one bucket (the whole detector's) for both lists: one compiled program per setup
    # (the default buckets are checked by test_mask_applied and test_same_bucket_does_not_recompile)
    bucket = bucket_size(setup.spixels * setup.fpixels)
    s, f = _random_pixels(setup, 150, seed=1)
    sparse = np.asarray(simulate_pixels(setup, params, s, f, bucket=bucket))
    full = image[s, f]
    assert np.count_nonzero(full) > 10
    np.testing.assert_allclose(sparse, full, rtol=1e-12, atol=1e-12 * image.max())
    # every pixel of the detector, in a shuffled order (several tiles)
    s_all, f_all = _random_pixels(setup, setup.spixels * setup.fpixels, seed=2)
    every = np.asarray(simulate_pixels(setup, params, s_all, f_all, bucket=bucket))
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
    # the fields test_gradients.py differentiates in the same geometry (one compiled full-image gradient)
    fields = ("cell", "misset", "N", "distance", "beam_center", "pixel_size", "detector_rotation", "twotheta",
              "wavelength", "kahn_factor", "fluence", "default_F", "phi0")
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


def test_bad_indices_refused():
    setup, params = _load("mosflm_misset")
    with pytest.raises(ValueError, match="panel"):
        simulate_pixels(setup, params, [0], [0], panel_idx=[0])
    with pytest.raises(ValueError, match="outside"):
        simulate_pixels(setup, params, [setup.spixels], [0])
    setup, params, stack = _panel_case()
    with pytest.raises(ValueError, match="panel_idx"):
        simulate_pixels(setup, params, [0], [0], [stack.n_panels], panels=stack)
    with pytest.raises(ValueError, match="panel_idx is needed"):
        simulate_pixels(setup, params, [0], [0], panels=stack)


# ---------------------------------------------------------------------------------------------
# tricubic interpolation: the C program's switch, found as the full image finds it


def _interpolated(tmp_path, extra=()):
    """N = 2 turns interpolation on; with this detector the switch lies mid-image (pixel
    ~143 of 192 without an ROI), so pixels on both sides of it are listed."""
    rng = np.random.default_rng(0)
    hkl = tmp_path / "f.hkl"
    hkl.write_text("".join(f"{h} {k} {l} {rng.uniform(10, 100):.3f}\n" for h in range(-6, 7)
                           for k in range(-6, 7) for l in range(-6, 7)))
    exp = from_cli_args(["-hkl", str(hkl), "-cell", "30", "30", "30", "90", "90", "90", "-N", "2",
                         "-lambda", "1.0", "-detpixels_f", "16", "-detpixels_s", "12", "-pixel", "1.0",
                         "-Xbeam", "4", "-Ybeam", "4", "-distance", "80", "-oversample", "2",
                         "-misset", "5", "10", "15", *extra])
    assert exp.setup.interpolate
    return exp


@pytest.mark.parametrize("extra", [pytest.param((), marks=pytest.mark.slow),  # ~30 s at load 5
                                   ("-roi", "1", "15", "2", "11")])
def test_interpolated_sparse_equals_full_image(tmp_path, monkeypatch, extra):
    from nanobragg_jax.pixels import interpolation_switch
    from nanobragg_jax.simulate import interpolation_switch as full_switch

    monkeypatch.chdir(tmp_path)  # the Fdump.bin cache goes here
    exp = _interpolated(tmp_path, extra)
    setup, params = exp.setup, exp.params
    p_star, k_star = (int(x) for x in interpolation_switch(setup, params))
    assert (p_star, k_star) == tuple(int(x) for x in full_switch(setup, params))
    fmin, fmax, smin, smax = setup.roi
    n_valid = (min(fmax, 15) - fmin + 1) * (min(smax, 11) - smin + 1)
    assert 0 < p_star < n_valid - 10, (p_star, n_valid)  # pixels before and after the switch
    image = np.asarray(simulate(setup, params))
    s, f = _random_pixels(setup, setup.spixels * setup.fpixels, seed=6)
    sparse = np.asarray(simulate_pixels(setup, params, s, f))
    np.testing.assert_allclose(sparse, image[s, f], rtol=1e-12, atol=1e-12 * image.max())
    # a shorter list (padded to the same bucket: the same compiled program) gives the same values
    again = np.asarray(simulate_pixels(setup, params, s[:50], f[:50], bucket=bucket_size(s.size)))
    np.testing.assert_allclose(again, image[s[:50], f[:50]], rtol=1e-12, atol=1e-12 * image.max())


# ---------------------------------------------------------------------------------------------
# multi-panel detectors: (panel, slow, fast) of simulate_panels


def _panel_case(extra=(), offsets=((0.0, 0.0, 0.0), (0.0, -3.0, 5.0), (1.0, 6.0, -4.0))):
    """Three panels of 24 × 20 (one with fast and slow swapped) around a small crystal."""
    from nanobragg_jax.panels import PanelStack

    exp = from_cli_args(["-cell", "70", "80", "90", "90", "90", "90", "-default_F", "100", "-N", "5",
                         "-lambda", "1.0", "-detpixels_f", "24", "-detpixels_s", "20", "-pixel", "0.4",
                         "-oversample", "2", "-fdet_vector", "0", "0", "1", "-sdet_vector", "0", "-1", "0",
                         "-odet_vector", "1", "0", "0", "-distance", "60", "-Xbeam", "1.0", "-Ybeam", "2.0",
                         "-misset", "10", "20", "30", *extra])
    o, f, s = exp.info["pix0"] * 1e3, exp.info["fdet"], exp.info["sdet"]
    n = len(offsets)
    stack = PanelStack(origin=np.stack([o + np.asarray(d) for d in offsets]),
                       fast=np.stack([f, f, s][:n]), slow=np.stack([s, s, f][:n]), n_fast=24, n_slow=20,
                       pixel_size=0.4)
    return exp.setup, jax.tree_util.tree_map(jnp.asarray, exp.params), stack


def test_panel_pixels_equal_simulate_panels():
    from nanobragg_jax.panels import simulate_panels

    setup, params, stack = _panel_case()
    rng = np.random.default_rng(7)
    mask = (rng.uniform(size=stack.shape) > 0.2).astype(np.float64)
    for m in (None, mask):
        image = np.asarray(simulate_panels(setup, params, stack, m))
        assert all(image[i].sum() > 0 for i in range(stack.n_panels))
        P, S, F = np.unravel_index(rng.permutation(image.size)[:300], image.shape)
        sparse = np.asarray(simulate_pixels(setup, params, S, F, P, panels=stack, mask=m))
        assert np.count_nonzero(image[P, S, F]) > 100
        np.testing.assert_allclose(sparse, image[P, S, F], rtol=1e-12, atol=1e-12 * image.max())


@pytest.mark.slow  # ~20 s at load 5
def test_interpolated_panel_pixels_switch_per_panel(tmp_path, monkeypatch):
    from nanobragg_jax.panels import PanelStack, simulate_panels
    from nanobragg_jax.pixels import interpolation_switch

    monkeypatch.chdir(tmp_path)
    exp = _interpolated(tmp_path)
    o, f, s = exp.info["pix0"] * 1e3, exp.info["fdet"], exp.info["sdet"]
    stack = PanelStack(origin=np.stack([o + np.array([0.0, 2.0, 0.0]), o]), fast=np.stack([f, f]),
                       slow=np.stack([s, s]), n_fast=16, n_slow=12, pixel_size=1.0)
    p_star, _ = interpolation_switch(exp.setup, exp.params, stack)
    assert np.all((np.asarray(p_star) > 0) & (np.asarray(p_star) < 16 * 12))
    image = np.asarray(simulate_panels(exp.setup, exp.params, stack))
    P, S, F = np.unravel_index(np.random.default_rng(8).permutation(image.size), image.shape)
    sparse = np.asarray(simulate_pixels(exp.setup, exp.params, S, F, P, panels=stack))
    np.testing.assert_allclose(sparse, image[P, S, F], rtol=1e-12, atol=1e-12 * image.max())


@pytest.mark.slow  # ~40 s at load 5 (the full-image gradient and 24 central differences)
def test_panel_pose_gradients_equal_the_full_image_and_central_differences():
    """d/d(shift, rotation) of each panel: the sparse loss has the gradient of the same loss
    on simulate_panels, and both match central differences."""
    from nanobragg_jax.panels import simulate_panels
    from nanobragg_jax.refine import panel_pose

    setup, params, stack = _panel_case(("-N", "3", "-oversample", "1"),
                                       offsets=((0.0, 0.0, 0.0), (0.0, -3.0, 5.0)))
    image = np.asarray(simulate_panels(setup, params, stack))
    P, S, F = np.nonzero(image > 1e-2 * image.max())  # pixels with intensity on both panels
    assert set(P.tolist()) == {0, 1} and P.size > 40
    w = jnp.asarray(np.random.default_rng(9).uniform(0.5, 1.5, P.size)) / image.sum()

    def sparse(x):
        return jnp.sum(w * simulate_pixels(setup, params, S, F, P,
                                           panels=panel_pose(stack, x[:, :3], x[:, 3:])))

    def full(x):
        return jnp.sum(w * simulate_panels(setup, params, panel_pose(stack, x[:, :3], x[:, 3:]))[P, S, F])

    x0 = jnp.zeros((2, 6))
    g = np.asarray(jax.grad(sparse)(x0))
    np.testing.assert_allclose(g, np.asarray(jax.grad(full)(x0)), rtol=1e-10, atol=1e-12 * np.abs(g).max())
    assert np.all(g != 0)
    for i in range(2):
        for k in range(6):
            h = 1e-4 if k < 3 else 1e-6  # mm, rad
            e = jnp.zeros((2, 6)).at[i, k].set(h)
            fd = (float(sparse(x0 + e)) - float(sparse(x0 - e))) / (2 * h)
            assert abs(fd - g[i, k]) <= 1e-5 * np.abs(g[:, k]).max(), (i, k, fd, g[i, k])


@pytest.mark.slow  # a subprocess with two CPU devices: ~30 s; shoebox-sized lists use one device by default
def test_pixel_lists_spread_over_two_cpu_devices(tmp_path):
    """With two CPU devices a list's tiles can be divided between them, as ``simulate`` does:
    the values (single detector and panels) and the gradient are those of one device.  By
    default only lists of at least MIN_PIXELS_PER_DEVICE per device are divided."""
    import os
    import subprocess
    import sys
    import textwrap
    from pathlib import Path

    script = textwrap.dedent("""
        import jax, jax.numpy as jnp, numpy as np
        jax.config.update("jax_num_cpu_devices", 2)
        jax.config.update("jax_enable_x64", True)
        from nanobragg_jax import from_cli_args, simulate
        from nanobragg_jax.panels import PanelStack, simulate_panels
        from nanobragg_jax.pixels import MIN_PIXELS_PER_DEVICE, _devices_for, simulate_pixels
        exp = from_cli_args("-cell 70 80 90 90 90 90 -default_F 100 -N 5 -detpixels 64 "
                            "-pixel 0.4 -oversample 1 -distance 60 -misset 10 20 30".split())
        setup, params = exp.setup, exp.params
        assert _devices_for(2 * MIN_PIXELS_PER_DEVICE, None) == 2
        assert _devices_for(2 * MIN_PIXELS_PER_DEVICE - 1, None) == 1
        assert _devices_for(4096, 2) == 2 and _devices_for(4096, None) == 1
        rng = np.random.default_rng(1)
        flat = rng.choice(64 * 64, size=3000, replace=False)   # bucket 4096
        S, F = flat // 64, flat % 64
        one = np.asarray(simulate_pixels(setup, params, S, F, devices=1))
        two = np.asarray(simulate_pixels(setup, params, S, F, devices=2))
        full = np.asarray(simulate(setup, params))[S, F]
        assert one.max() > 0
        np.testing.assert_allclose(two, one, rtol=1e-12, atol=1e-14 * one.max())
        np.testing.assert_allclose(two, full, rtol=1e-12, atol=1e-14 * one.max())
        w = jnp.asarray(rng.normal(size=S.size))
        def loss(d, devices):
            return jnp.sum(w * simulate_pixels(setup, params.replace(distance=d), S, F, devices=devices))
        g1, g2 = (float(jax.grad(loss)(params.distance, k)) for k in (1, 2))
        assert g1 != 0 and abs(g2 - g1) <= 1e-10 * abs(g1), (g1, g2)
        o, f, s = exp.info["pix0"] * 1e3, exp.info["fdet"], exp.info["sdet"]
        st = PanelStack(origin=np.stack([o, o + 30.0 * f]), fast=np.stack([f] * 2),
                        slow=np.stack([s] * 2), n_fast=64, n_slow=64, pixel_size=0.4)
        Pn = rng.integers(0, 2, size=S.size)
        one = np.asarray(simulate_pixels(setup, params, S, F, Pn, panels=st, devices=1))
        two = np.asarray(simulate_pixels(setup, params, S, F, Pn, panels=st, devices=2))
        full = np.asarray(simulate_panels(setup, params, st, devices=1))[Pn, S, F]
        assert one.max() > 0
        np.testing.assert_allclose(two, one, rtol=1e-12, atol=1e-14 * one.max())
        np.testing.assert_allclose(two, full, rtol=1e-12, atol=1e-14 * one.max())
        print("OK")
    """)
    repo = Path(__file__).resolve().parent.parent
    env = dict(os.environ, PYTHONPATH=str(repo))
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0 and "OK" in proc.stdout, proc.stdout[-2000:] + proc.stderr[-2000:]
