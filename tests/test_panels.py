"""Multi-panel rendering: C parity per panel, equivalence with the single-panel path, gradients."""

from __future__ import annotations

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nanobragg_jax import from_cli_args, simulate
from nanobragg_jax.panels import (PanelStack, group_by_shape, panel_frames, panel_lowering,
                                  rotation_matrices, simulate_detector, simulate_panels)

from golden import compare, passes

DATA = Path(__file__).parent / "data" / "panels"


def _manifest() -> dict:
    with open(DATA / "manifest.json") as fh:
        return json.load(fh)["layouts"]


def _stack(layout: dict) -> PanelStack:
    ps = layout["panels"]
    return PanelStack(origin=np.array([p["origin"] for p in ps]), fast=np.array([p["fast"] for p in ps]),
                      slow=np.array([p["slow"] for p in ps]), n_fast=layout["n_fast"],
                      n_slow=layout["n_slow"], pixel_size=layout["pixel_size"])


def _c_images(name: str) -> np.ndarray:
    with np.load(DATA / f"{name}.npz") as z:
        return z["float"]


@pytest.fixture(autouse=True)
def _x64():
    with jax.enable_x64(True):
        yield


@pytest.mark.parametrize("name", sorted(_manifest()))
def test_each_panel_equals_the_c_program(name):
    """Every panel equals the C program's image of that panel (CUSTOM vectors, beam pivot)."""
    layout = _manifest()[name]
    # The shared flags (crystal, beam, sampling) with panel 0's geometry: its detector
    # fields are not used by simulate_panels.
    exp = from_cli_args(layout["c_argv"][0])
    stack = _stack(layout)
    ours = np.asarray(simulate_panels(exp.setup, exp.params, stack))
    ref = _c_images(name)
    assert ours.shape == ref.shape
    for i in range(stack.n_panels):
        fig = compare(ours[i], ref[i])
        assert ref[i].max() > 0
        assert passes(fig, "float64"), (name, i, fig)


@pytest.mark.parametrize("name", sorted(_manifest()))
def test_c_argv_is_the_lowering_of_the_panels(name):
    """The recorded C flags are panel_lowering's values, and pix0 from them is the origin."""
    layout = _manifest()[name]
    stack = _stack(layout)
    low = panel_lowering(stack, layout["beam_vector"])
    for i, argv in enumerate(layout["c_argv"]):
        exp = from_cli_args(argv)
        assert exp.setup.convention == "CUSTOM" and exp.setup.pivot == "BEAM"
        np.testing.assert_allclose(exp.info["pix0"] * 1e3, stack.origin[i], atol=1e-12)
        np.testing.assert_allclose(float(exp.params.distance), low["distance"][i], rtol=1e-15)
        frame = panel_frames(stack, exp.params)
        np.testing.assert_allclose(np.asarray(frame.odet[i]), exp.info["odet"], atol=1e-15)
        np.testing.assert_allclose(float(frame.distance[i]), exp.info["distance"], rtol=1e-12)
        np.testing.assert_allclose(float(frame.Fbeam[i]), exp.info["Fbeam"], atol=1e-12)


def _small_exp(extra=()):
    args = ["-cell", "70", "80", "90", "90", "90", "90", "-default_F", "100", "-N", "5", "-lambda", "1.0",
            "-detpixels_f", "24", "-detpixels_s", "20", "-pixel", "0.4", "-oversample", "1",
            "-fdet_vector", "0", "0", "1", "-sdet_vector", "0", "-1", "0", "-odet_vector", "1", "0", "0",
            "-distance", "60", "-Xbeam", "1.0", "-Ybeam", "2.0", "-misset", "10", "20", "30", *extra]
    return from_cli_args(args)


def test_one_panel_equals_simulate():
    """A single panel reproduces simulate() of the same CUSTOM detector bit for bit."""
    exp = _small_exp()
    img = np.asarray(simulate(exp.setup, exp.params))
    stack = PanelStack(origin=exp.info["pix0"][None] * 1e3, fast=exp.info["fdet"][None],
                       slow=exp.info["sdet"][None], n_fast=24, n_slow=20, pixel_size=0.4)
    out = np.asarray(simulate_panels(exp.setup, exp.params, stack))
    assert out.shape == (1, 20, 24)
    np.testing.assert_allclose(out[0], img, rtol=1e-13, atol=1e-13 * img.max())


def test_axes_running_backwards_keep_a_positive_solid_angle():
    """A panel whose fast × slow points at the sample (mirrored axes) still renders
    the same pixels: odet is flipped to point away from the sample."""
    exp = _small_exp()
    stack = PanelStack(origin=exp.info["pix0"][None] * 1e3, fast=exp.info["fdet"][None],
                       slow=exp.info["sdet"][None], n_fast=24, n_slow=20, pixel_size=0.4)
    ref = np.asarray(simulate_panels(exp.setup, exp.params, stack))[0]
    # same pixels, slow axis reversed: origin moves to the far corner
    far = stack.origin + 20 * 0.4 * stack.slow
    flipped = PanelStack(origin=far, fast=stack.fast, slow=-stack.slow, n_fast=24, n_slow=20, pixel_size=0.4)
    frame = panel_frames(flipped, exp.params)
    assert float(frame.close_distance[0]) > 0
    out = np.asarray(simulate_panels(exp.setup, exp.params, flipped))[0]
    np.testing.assert_allclose(out[::-1], ref, rtol=1e-12, atol=1e-12 * ref.max())


def test_groups_of_different_shapes():
    exp = _small_exp()
    o, f, s = exp.info["pix0"] * 1e3, exp.info["fdet"], exp.info["sdet"]
    panels = [dict(origin=o, fast_axis=f, slow_axis=s, n_fast=24, n_slow=20, pixel_size=0.4),
              dict(origin=o + 9.0 * f, fast_axis=f, slow_axis=s, n_fast=8, n_slow=20, pixel_size=0.4),
              dict(origin=o + 0.8 * s, fast_axis=f, slow_axis=s, n_fast=24, n_slow=20, pixel_size=0.4)]
    groups = group_by_shape(panels)
    assert [idx for idx, _ in groups] == [(0, 2), (1,)]
    images = simulate_detector(exp.setup, exp.params, groups)
    assert [im.shape for im in images] == [(20, 24), (20, 8), (20, 24)]
    full = np.asarray(simulate(exp.setup, exp.params))
    np.testing.assert_allclose(np.asarray(images[0]), full, rtol=1e-12)
    # panel 2 is panel 0 shifted by two slow pixels: rows 2.. of the full image
    np.testing.assert_allclose(np.asarray(images[2])[:-2], full[2:], rtol=1e-9, atol=1e-9 * full.max())


def test_pixel_size_mismatch_is_an_error():
    exp = _small_exp()
    stack = PanelStack(origin=exp.info["pix0"][None] * 1e3, fast=exp.info["fdet"][None],
                       slow=exp.info["sdet"][None], n_fast=24, n_slow=20, pixel_size=0.1)
    with pytest.raises(ValueError, match="pixel size"):
        simulate_panels(exp.setup, exp.params, stack)


def test_rotation_matrices():
    r = np.array([[0.0, 0.0, 0.0], [0.3, -0.2, 0.5], [1e-6, 0, 0]])
    R = np.asarray(rotation_matrices(jnp.asarray(r)))
    np.testing.assert_allclose(R[0], np.eye(3), atol=0)
    for k in range(3):
        np.testing.assert_allclose(R[k] @ R[k].T, np.eye(3), atol=1e-14)
        np.testing.assert_allclose(np.linalg.det(R[k]), 1.0, atol=1e-14)
    np.testing.assert_allclose(R[1] @ r[1], r[1], atol=1e-15)  # the axis is fixed


def _two_panel_loss_setup():
    exp = _small_exp(["-detpixels_f", "12", "-detpixels_s", "10", "-pixel", "0.8", "-N", "3"])
    o, f, s = exp.info["pix0"] * 1e3, exp.info["fdet"], exp.info["sdet"]
    stack = PanelStack(origin=np.stack([o, o + np.array([0.0, -3.0, 5.0])]), fast=np.stack([f, f]),
                       slow=np.stack([s, s]), n_fast=12, n_slow=10, pixel_size=0.8)
    img = np.asarray(simulate_panels(exp.setup, exp.params, stack))
    assert img.sum() > 0 and np.count_nonzero(img > 1e-3 * img.max()) > 20
    weights = np.random.default_rng(0).uniform(0.5, 1.5, img.shape)

    def loss(shift, rotvec):
        out = simulate_panels(exp.setup, exp.params, stack.perturbed(shift, rotvec))
        return jnp.sum(weights * out) / img.sum()

    return loss


def test_gradients_of_panel_shift_and_rotation_match_central_differences():
    loss = _two_panel_loss_setup()
    shift0 = jnp.zeros((2, 3))
    rot0 = jnp.zeros((2, 3))
    gs, gr = jax.grad(loss, argnums=(0, 1))(shift0, rot0)
    gs, gr = np.asarray(gs), np.asarray(gr)
    assert np.all(np.isfinite(gs)) and np.all(np.isfinite(gr))
    assert np.abs(gs).max() > 0 and np.abs(gr).max() > 0
    for (which, h, g) in (("shift", 1e-4, gs), ("rot", 1e-6, gr)):
        for i in range(2):
            for k in range(3):
                e = np.zeros((2, 3))
                e[i, k] = h
                if which == "shift":
                    fd = (loss(shift0 + e, rot0) - loss(shift0 - e, rot0)) / (2 * h)
                else:
                    fd = (loss(shift0, rot0 + e) - loss(shift0, rot0 - e)) / (2 * h)
                scale = np.abs(g).max()
                assert abs(float(fd) - g[i, k]) <= 1e-5 * scale + 1e-6 * abs(g[i, k]), (which, i, k, float(fd), g[i, k])


def test_check_grads_panel_origin():
    from jax.test_util import check_grads

    loss = _two_panel_loss_setup()
    check_grads(lambda sh: loss(sh, jnp.zeros((2, 3))), (jnp.full((2, 3), 0.01),), order=1, modes=("rev",),
                eps=1e-4, atol=1e-6, rtol=1e-5)


def test_tiles_spread_over_two_cpu_devices_give_the_same_image(tmp_path):
    """With two CPU devices the tiles are divided between them (as simulate does): same image."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent("""
        import jax, numpy as np
        jax.config.update("jax_num_cpu_devices", 2)
        jax.config.update("jax_enable_x64", True)
        from nanobragg_jax import from_cli_args
        from nanobragg_jax.panels import PanelStack, simulate_panels
        exp = from_cli_args("-cell 70 80 90 90 90 90 -default_F 100 -N 5 -detpixels_f 24 -detpixels_s 20 "
                            "-pixel 0.4 -oversample 1 -distance 60 -misset 10 20 30".split())
        o, f, s = exp.info["pix0"] * 1e3, exp.info["fdet"], exp.info["sdet"]
        st = PanelStack(origin=np.stack([o, o + 9.0 * f, o + 9.0 * s]), fast=np.stack([f] * 3),
                        slow=np.stack([s] * 3), n_fast=24, n_slow=20, pixel_size=0.4)
        import dataclasses
        setup = dataclasses.replace(exp.setup, tile_pixels=3 * 128)   # several tiles
        one = np.asarray(simulate_panels(setup, exp.params, st, devices=1))
        two = np.asarray(simulate_panels(setup, exp.params, st, devices=2))
        assert one.max() > 0
        # two compiled programs (one per device count): equal up to rounding
        np.testing.assert_allclose(one, two, rtol=1e-8, atol=1e-12 * one.max())
        print("OK")
    """)
    repo = Path(__file__).resolve().parent.parent
    env = dict(__import__("os").environ, PYTHONPATH=str(repo))
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0 and "OK" in proc.stdout, proc.stdout[-2000:] + proc.stderr[-2000:]


def test_interpolated_panels_switch_per_panel_like_single_runs(tmp_path, monkeypatch):
    """Tricubic interpolation (auto with N ≤ 2): each panel turns it off at its own first
    out-of-range neighbourhood, as a separate C run of that panel would."""
    import golden

    hkl = golden.golden_dir() / "inputs" / "P1_random.hkl"
    if not hkl.is_file():
        pytest.skip("golden inputs not available")
    monkeypatch.chdir(tmp_path)  # the Fdump.bin cache goes here
    exp = from_cli_args(["-hkl", str(hkl), "-cell", "30", "30", "30", "90", "90", "90", "-N", "2",
                         "-lambda", "1.0", "-detpixels_f", "16", "-detpixels_s", "12", "-pixel", "1.0",
                         "-distance", "40", "-oversample", "1", "-misset", "5", "10", "15"])
    assert exp.setup.interpolate
    img = np.asarray(simulate(exp.setup, exp.params))
    o, f, s = exp.info["pix0"] * 1e3, exp.info["fdet"], exp.info["sdet"]
    other = o + np.array([0.0, 6.0, -4.0])
    stack = PanelStack(origin=np.stack([other, o]), fast=np.stack([f, f]), slow=np.stack([s, s]),
                       n_fast=16, n_slow=12, pixel_size=1.0)
    out = np.asarray(simulate_panels(exp.setup, exp.params, stack))
    np.testing.assert_allclose(out[1], img, rtol=1e-12, atol=1e-12 * img.max())
    single = PanelStack(origin=other[None], fast=f[None], slow=s[None], n_fast=16, n_slow=12, pixel_size=1.0)
    np.testing.assert_allclose(out[0], np.asarray(simulate_panels(exp.setup, exp.params, single))[0],
                               rtol=1e-12, atol=1e-12 * img.max())
    # the public switch of a stack (what simulate_pixels uses): per panel, that of its own run
    from nanobragg_jax.pixels import interpolation_switch
    from nanobragg_jax.simulate import interpolation_switch as single_switch

    p_star, k_star = (np.asarray(x) for x in interpolation_switch(exp.setup, exp.params, stack))
    p1, k1 = (np.asarray(x) for x in interpolation_switch(exp.setup, exp.params, single))
    assert (p_star[1], k_star[1]) == tuple(int(x) for x in single_switch(exp.setup, exp.params))
    assert (p_star[0], k_star[0]) == (p1[0], k1[0])  # (a mid-image switch: test_pixels, slow tier)


def test_model_with_several_panels_renders_through_simulate_panels():
    """simulate(Model) with a detector of plain Panels = simulate_panels of their stack."""
    import jax
    import nanobragg_jax as nb
    from nanobragg_jax.model.lower import lower_panels
    from nanobragg_jax.panels import simulate_panels

    with jax.enable_x64(True):
        f, s = np.array([0.0, 0.0, 1.0]), np.array([0.0, -1.0, 0.0])
        panels = tuple(nb.Panel(origin=np.array([100.0, 1.0 - 2.2 * k, -1.6 + 1.7 * k]), fast_axis=f, slow_axis=s,
                                n_fast=16, n_slow=12, pixel_size=0.1) for k in range(2))
        model = nb.Model(crystal=nb.Crystal(cell=(100, 100, 100, 90, 90, 90), N=5, default_F=100),
                         beam=nb.Beam(wavelength=6.2), detector=nb.Detector(panels=panels))
        image = np.asarray(nb.simulate(model))
        setup, params, stack = lower_panels(model)
        ref = np.asarray(simulate_panels(setup, params, stack))
        assert image.shape == (2, 12, 16) and image.sum() > 0
        np.testing.assert_allclose(image, ref, rtol=1e-13, atol=0)

        def loss(origin1):
            p = list(model.detector.panels)
            p[1] = p[1].replace(origin=origin1)
            return nb.simulate(model.replace(detector=model.detector.replace(panels=tuple(p)))).sum()

        o = jnp.asarray(panels[1].origin)
        g = np.asarray(jax.grad(loss)(o))
        h = 1e-5
        fd = [(float(loss(o.at[i].add(h))) - float(loss(o.at[i].add(-h)))) / (2 * h) for i in range(3)]
        np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-8 * float(np.abs(fd).max()))


def test_float32_params_accept_the_stack_pixel_size():
    """A pixel size that float32 cannot hold exactly (0.11 mm) is the same pixel size."""
    exp = _small_exp(["-pixel", "0.11"])
    stack = PanelStack(origin=exp.info["pix0"][None] * 1e3, fast=exp.info["fdet"][None],
                       slow=exp.info["sdet"][None], n_fast=24, n_slow=20, pixel_size=0.11)
    out = simulate_panels(exp.setup, exp.params.astype(np.float32), stack.astype(np.float32))
    assert out.dtype == np.float32 and out.shape == (1, 20, 24)
    with pytest.raises(ValueError, match="pixel size"):
        simulate_panels(exp.setup, exp.params.astype(np.float32),
                        PanelStack(origin=stack.origin, fast=stack.fast, slow=stack.slow, n_fast=24, n_slow=20,
                                   pixel_size=0.1101))


@pytest.mark.parametrize("tile, extra", [(1024, ()), (300, ()), (0, ("-detector_thick", "100", "-oversample_thick"))])
def test_tiles_of_grouped_or_split_panels_give_each_panel_alone(tile, extra):
    """Tiles of whole panels (with a padding panel), of chunks of one panel, and the general
    path: every panel equals the same panel rendered alone."""
    import dataclasses

    exp = _small_exp(list(extra))
    o, f, s = exp.info["pix0"] * 1e3, exp.info["fdet"], exp.info["sdet"]
    origins = [o, o + 9.0 * f, o + 7.0 * s]
    stack = PanelStack(origin=np.stack(origins), fast=np.stack([f] * 3), slow=np.stack([s] * 3),
                       n_fast=24, n_slow=20, pixel_size=0.4)
    setup = dataclasses.replace(exp.setup, tile_pixels=tile)
    out = np.asarray(simulate_panels(setup, exp.params, stack))
    for i, oi in enumerate(origins):
        alone = PanelStack(origin=oi[None], fast=f[None], slow=s[None], n_fast=24, n_slow=20, pixel_size=0.4)
        ref = np.asarray(simulate_panels(exp.setup, exp.params, alone))[0]
        assert ref.max() > 0
        np.testing.assert_allclose(out[i], ref, rtol=1e-12, atol=1e-12 * ref.max())
