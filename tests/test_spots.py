"""Spot prediction (``spots.predict_spots``) against the maxima of rendered images; shoeboxes."""

from __future__ import annotations

import jax

jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from nanobragg_jax.experiment import from_cli_args  # noqa: E402
from nanobragg_jax.simulate import simulate  # noqa: E402
from nanobragg_jax.spots import default_excitation_cut, crystal_reciprocal, predict_spots, shoeboxes  # noqa: E402

CONFIGS = {
    # the canonical case (λ 6.2 Å, N 5) on a small detector with large pixels, misset
    "canonical_misset": "-cell 100 100 100 90 90 90 -default_F 100 -lambda 6.2 -N 5 -distance 100 "
                        "-detpixels 128 -pixel 0.5 -misset 3 5 7",
    # a triclinic cell rotated by a large misset, λ 1 Å
    "triclinic_rotated": "-cell 25 28 30 85 95 105 -default_F 100 -lambda 1 -N 8 -distance 100 "
                         "-detpixels 128 -pixel 0.5 -misset 10 20 30",
}


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def case(request):
    exp = from_cli_args(CONFIGS[request.param].split())
    image = np.asarray(simulate(exp.setup, exp.params))
    return exp.setup, exp.params, image


def test_predicted_positions_match_image_maxima(case):
    """Strongly excited spots (|ε| ≤ half the default cut): the brightest pixel of a 5×5 window
    around the prediction lies within 1 pixel of the predicted position."""
    setup, params, image = case
    spots = predict_spots(setup, params)
    assert len(spots) > 20
    cut = default_excitation_cut(setup, params, crystal_reciprocal(setup, params))
    assert np.all(np.abs(spots.excitation) <= cut)
    checked = 0
    for i in range(len(spots)):
        s, f = spots.slow[i], spots.fast[i]
        si, fi = int(s), int(f)
        if abs(spots.excitation[i]) > 0.5 * cut or not (2 <= si < setup.spixels - 2) or not (
                2 <= fi < setup.fpixels - 2):
            continue
        w = image[si - 2:si + 3, fi - 2:fi + 3]
        a, b = np.unravel_index(np.argmax(w), w.shape)
        dist = np.hypot(si - 2 + a + 0.5 - s, fi - 2 + b + 0.5 - f)
        assert dist <= 1.0, (spots.hkl[i], dist)
        checked += 1
    assert checked >= 15


def test_spots_carry_the_image(case):
    """Shoeboxes of half-size 3 around the predicted spots hold most of the photons."""
    setup, params, image = case
    spots = predict_spots(setup, params, max_excitation=2 * default_excitation_cut(
        setup, params, crystal_reciprocal(setup, params)))
    boxes = shoeboxes(spots, setup, half_size=3)
    assert image[boxes.slow, boxes.fast].sum() > 0.8 * image.sum()
    assert len(boxes) < 0.6 * image.size


def test_shoeboxes_clipped_and_deduplicated(case):
    setup, params, _ = case
    spots = predict_spots(setup, params)
    boxes = shoeboxes(spots, setup, half_size=4)
    flat = boxes.slow.astype(np.int64) * setup.fpixels + boxes.fast
    assert len(np.unique(flat)) == len(flat)
    assert np.all((boxes.slow >= 0) & (boxes.slow < setup.spixels))
    assert np.all((boxes.fast >= 0) & (boxes.fast < setup.fpixels))
    assert set(np.unique(boxes.spot)) <= set(range(len(spots)))
    # each pixel is assigned to a spot whose box contains it
    s_c, f_c = spots.pixel
    assert np.all(np.abs(boxes.slow - s_c[boxes.spot]) <= 4)
    assert np.all(np.abs(boxes.fast - f_c[boxes.spot]) <= 4)


# Thick sensors and the curved detector move spots away from the flat front-face intersection
# by several pixels at high angle (distance 20 mm, corners at 2θ ≈ 42°): λ 1 Å, a small cell
# and N 3, so that spots are a few pixels wide and well apart.
_WIDE = ("-cell 15 15 15 90 90 90 -default_F 100 -lambda 1 -N 3 -distance 20 -detpixels 256 "
         "-pixel 0.1 -misset 10 20 30 -oversample 1")
_SENSOR = " -detector_thick 1000 -detector_abs 300 -detector_thicksteps 6"
MOVED = {
    "thick_sensor": _WIDE + _SENSOR,  # equal layer weights (the C program's single capture factor)
    "thick_sensor_oversample_thick": _WIDE + _SENSOR + " -oversample_thick",  # running products
    # -curved_det needs an argument after it in the C program (else it is ignored): not last
    "curved_detector": "-curved_det " + _WIDE,
}


@pytest.mark.parametrize("name", sorted(MOVED))
def test_parallax_and_curved_detector_positions_match_image_centroids(name):
    """Strongly excited spots: the photon-weighted centroid of a 9×9 window about the
    prediction is within 0.3 pixel of it, while the flat front-face prediction (the same
    crystal on a thin, flat detector) is off by more than 3 pixels at high angle."""
    exp = from_cli_args(MOVED[name].split())
    flat = from_cli_args(_WIDE.split())
    image = np.asarray(simulate(exp.setup, exp.params))
    spots = predict_spots(exp.setup, exp.params)
    ref = predict_spots(flat.setup, flat.params, only_on_detector=False)
    ref_of = {tuple(h): i for i, h in enumerate(ref.hkl)}
    cut = default_excitation_cut(exp.setup, exp.params, crystal_reciprocal(exp.setup, exp.params))
    half, errors, flat_errors = 4, [], []
    for i in range(len(spots)):
        s, f = spots.slow[i], spots.fast[i]
        si, fi = int(s), int(f)
        if abs(spots.excitation[i]) > 0.3 * cut or not (half <= si < exp.setup.spixels - half) or not (
                half <= fi < exp.setup.fpixels - half):
            continue
        w = image[si - half:si + half + 1, fi - half:fi + half + 1]
        ys, xs = np.mgrid[si - half:si + half + 1, fi - half:fi + half + 1] + 0.5
        cs, cf = (w * ys).sum() / w.sum(), (w * xs).sum() / w.sum()
        j = ref_of[tuple(spots.hkl[i])]
        errors.append(np.hypot(cs - s, cf - f))
        flat_errors.append(np.hypot(cs - ref.slow[j], cf - ref.fast[j]))
    assert len(errors) >= 30
    assert max(errors) <= 0.3, (name, max(errors))
    assert max(flat_errors) > 3.0, (name, max(flat_errors))


def test_panel_sensors_move_spots_as_the_detector_sensor():
    """A one-panel stack with its own sensor (1 mm, μ = 1/0.3 mm⁻¹: two layers of 0.5 mm, as the
    command line's -detector_thick without -detector_thicksteps) predicts the spots of the same
    detector given the sensor by flags."""
    from nanobragg_jax.panels import PanelStack

    flat = from_cli_args(_WIDE.split())
    thick = from_cli_args((_WIDE + " -detector_thick 1000 -detector_abs 300").split())
    o, f, s = flat.info["pix0"] * 1e3, flat.info["fdet"], flat.info["sdet"]
    one = PanelStack(origin=o[None], fast=f[None], slow=s[None], n_fast=256, n_slow=256, pixel_size=0.1,
                     thickness=np.array([1.0]), mu=np.array([1 / 0.3]))
    got = predict_spots(flat.setup, flat.params, panels=one)
    ref = predict_spots(thick.setup, thick.params)
    plain = predict_spots(flat.setup, flat.params)
    np.testing.assert_array_equal(got.hkl, ref.hkl)
    np.testing.assert_allclose(got.slow, ref.slow, atol=1e-9)
    np.testing.assert_allclose(got.fast, ref.fast, atol=1e-9)
    at = {tuple(h): i for i, h in enumerate(plain.hkl)}
    both = [(i, at[tuple(h)]) for i, h in enumerate(got.hkl) if tuple(h) in at]
    assert max(np.hypot(got.slow[i] - plain.slow[j], got.fast[i] - plain.fast[j]) for i, j in both) > 1.0


def test_ewald_geometry_and_friedel():
    """ŝ is a unit vector, q = ŝ·|s₀+q| − s₀ up to the excitation error; resolution cut honoured."""
    exp = from_cli_args(CONFIGS["triclinic_rotated"].split())
    spots = predict_spots(exp.setup, exp.params, d_min=3.0, only_on_detector=False)
    assert np.all(spots.d >= 3.0 - 1e-12)
    np.testing.assert_allclose(np.linalg.norm(spots.s, axis=1), 1.0, rtol=1e-12)
    s0 = np.array([1.0, 0.0, 0.0]) / spots.wavelength[:, None]  # MOSFLM beam along +x
    k = s0 + spots.q
    np.testing.assert_allclose(np.linalg.norm(k, axis=1) - 1 / spots.wavelength, spots.excitation,
                               atol=1e-12)


def test_spots_on_panels_match_the_panel_images():
    """A 2×2 panel detector with 1 mm gaps: each spot is reported on the panel whose image
    has its maximum there; a one-panel stack equal to the detector predicts the same spots;
    the panels' shoeboxes, rendered sparsely, equal simulate_panels there."""
    from nanobragg_jax.panels import PanelStack, simulate_panels
    from nanobragg_jax.pixels import simulate_pixels

    exp = from_cli_args(CONFIGS["canonical_misset"].replace("-detpixels 128", "-detpixels 96").split())
    setup, params = exp.setup, exp.params
    o, f, s = exp.info["pix0"] * 1e3, exp.info["fdet"], exp.info["sdet"]
    one = PanelStack(origin=o[None], fast=f[None], slow=s[None], n_fast=96, n_slow=96, pixel_size=0.5)
    ref, got = predict_spots(setup, params), predict_spots(setup, params, panels=one)
    np.testing.assert_array_equal(ref.hkl, got.hkl)
    np.testing.assert_allclose(got.slow, ref.slow, atol=1e-9)
    np.testing.assert_allclose(got.fast, ref.fast, atol=1e-9)
    assert np.all(got.panel == 0) and np.all(ref.panel == 0)

    origins = [o + (j * 48 * 0.5 + j) * f + (i * 48 * 0.5 + i) * s for i in (0, 1) for j in (0, 1)]
    stack = PanelStack(origin=np.stack(origins), fast=np.stack([f] * 4), slow=np.stack([s] * 4),
                       n_fast=48, n_slow=48, pixel_size=0.5)
    images = np.asarray(simulate_panels(setup, params, stack))
    spots = predict_spots(setup, params, panels=stack)
    assert set(spots.panel.tolist()) == {0, 1, 2, 3}
    cut = default_excitation_cut(setup, params, crystal_reciprocal(setup, params))
    checked = 0
    for i in range(len(spots)):
        p, si, fi = spots.panel[i], int(spots.slow[i]), int(spots.fast[i])
        if abs(spots.excitation[i]) > 0.5 * cut or not (2 <= si < 46 and 2 <= fi < 46):
            continue
        w = images[p, si - 2:si + 3, fi - 2:fi + 3]
        a, b = np.unravel_index(np.argmax(w), w.shape)
        assert np.hypot(si - 2 + a + 0.5 - spots.slow[i], fi - 2 + b + 0.5 - spots.fast[i]) <= 1.0
        checked += 1
    assert checked >= 5
    boxes = shoeboxes(spots, setup, half_size=2, panels=stack)
    assert np.all(boxes.panel == spots.panel[boxes.spot])
    assert np.all((boxes.slow >= 0) & (boxes.slow < 48) & (boxes.fast >= 0) & (boxes.fast < 48))
    key = (boxes.panel.astype(np.int64) * 48 + boxes.slow) * 48 + boxes.fast
    assert len(np.unique(key)) == len(key)
    sparse = np.asarray(simulate_pixels(setup, params, boxes.slow, boxes.fast, boxes.panel, panels=stack))
    np.testing.assert_allclose(sparse, images[boxes.panel, boxes.slow, boxes.fast], rtol=1e-12,
                               atol=1e-12 * images.max())
