"""Noise images: bit-exact against the C program's golden noise image, and the jax fast path."""

from __future__ import annotations

import jax
import numpy as np
import pytest

import golden

from nanobragg_jax.noise import (
    counts_to_uint16,
    noise_image_exact,
    noise_image_fast,
    roi_mask,
)
from nanobragg_jax.rng import replay_statics_before_noise, seed_from_cli


def _golden_case(case_id: str):
    golden.require()  # the corpus ships in tests/golden/: missing means a broken checkout
    return golden.case(case_id), golden.arrays(case_id)


def _flag(args: list[str], name: str, default: float) -> float:
    return float(args[args.index(name) + 1]) if name in args else default


def test_exact_noise_equals_golden_image() -> None:
    record, arrays = _golden_case("noise_seed")
    args = record["args"]
    seed = seed_from_cli(int(_flag(args, "-seed", 0)))
    assert seed == -4242
    adc = _flag(args, "-adc", 40.0)
    image, photons, overloads = noise_image_exact(arrays["float"], seed, adc)
    assert image.dtype == np.uint16 and image.shape == arrays["noise"].shape
    np.testing.assert_array_equal(image, arrays["noise"])
    # the C program prints "27752 photons on noise image (0 overloads)"
    assert f"{photons:.0f} photons on noise image ({overloads} overloads)" in record["stdout"]


def test_exact_noise_roi_leaves_outside_zero_and_draws_nothing_there() -> None:
    rs = np.random.default_rng(3)
    img = rs.gamma(2.0, 2.0, (20, 30)).astype(np.float32)
    roi = (5, 14, 2, 9)
    out, photons, _ = noise_image_exact(img, -17, 40.0, roi)
    mask = roi_mask(img.shape, roi)
    assert np.all(out[~mask] == 0) and np.all(out[mask] >= 40)
    # same draws as the ROI pixels alone, in raster order
    sub, sub_photons, _ = noise_image_exact(img[2:10, 5:15], -17, 40.0)
    np.testing.assert_array_equal(out[2:10, 5:15], sub)
    assert photons == sub_photons


def test_exact_noise_depends_on_shared_table_only_for_positive_seed() -> None:
    rs = np.random.default_rng(4)
    img = rs.gamma(2.0, 1.0, (16, 16)).astype(np.float32)
    fresh = noise_image_exact(img, -5, 40.0)[0]
    after_mosaic = noise_image_exact(img, -5, 40.0, statics=replay_statics_before_noise(-3, 7))[0]
    np.testing.assert_array_equal(fresh, after_mosaic)
    coupled_7 = noise_image_exact(img, 5, 40.0, statics=replay_statics_before_noise(-3, 7))[0]
    coupled_4 = noise_image_exact(img, 5, 40.0, statics=replay_statics_before_noise(-3, 4))[0]
    assert not np.array_equal(coupled_7, coupled_4)


def test_exact_noise_large_means_clip_and_count_overloads() -> None:
    img = np.array([[0.0, 5.0, 20.0, 5.0e4], [7.0e4, 2.0e6, 1.0e8, 65495.0]], dtype=np.float32)
    out, photons, overloads = noise_image_exact(img, -11, 40.0)
    assert out[0, 0] == 40
    assert out[1, 0] == 65535 and out[1, 1] == 65535 and out[1, 2] == 65535
    assert overloads >= 3
    assert photons > 1e8


def test_exact_noise_negative_offset_wraps_like_c() -> None:
    img = np.zeros((1, 3), dtype=np.float32)
    out, _, _ = noise_image_exact(img, -1, -100.5)
    # 0 - 100.5 truncates to -100, stored as its low 16 bits
    np.testing.assert_array_equal(out, np.full((1, 3), 65536 - 100, dtype=np.uint16))


def test_counts_to_uint16_rules() -> None:
    u16, over = counts_to_uint16(np.array([0.0, 10.9, 65495.0, 65496.0, 1e9, np.nan]), 40.0)
    np.testing.assert_array_equal(u16, [40, 50, 65535, 65535, 65535, 0])
    assert over == 2


# --- fast path ----------------------------------------------------------------------------


def test_fast_noise_statistics() -> None:
    mean = 7.5
    img = np.full((256, 256), mean, dtype=np.float32)
    out, photons, overloads = noise_image_fast(img, jax.random.PRNGKey(0), adc=40.0)
    assert out.dtype == np.uint16 and out.shape == img.shape
    counts = out.astype(np.float64) - 40.0
    assert abs(counts.mean() / mean - 1.0) < 0.01
    assert abs(counts.var() / mean - 1.0) < 0.05
    assert overloads == 0
    assert photons == pytest.approx(counts.sum())


def test_fast_noise_large_means_and_overloads() -> None:
    img = np.zeros((4, 1000), dtype=np.float32)
    img[0] = 5.0e4  # Poisson branch, below the clip
    img[1] = 3.0e6  # normal branch, clipped
    img[2] = 0.0
    img[3] = 65495.0 + 200.0  # mostly above 65535 after the offset
    out, _, overloads = noise_image_fast(img, jax.random.PRNGKey(1), adc=40.0)
    row0 = out[0].astype(np.float64) - 40.0
    assert abs(row0.mean() / 5.0e4 - 1.0) < 0.001
    assert abs(row0.var() / 5.0e4 - 1.0) < 0.2
    assert np.all(out[1] == 65535)
    assert np.all(out[2] == 40)
    # row 1 always overloads; in row 3 every 65535 is an overload except (rarely) an exact
    # count of 65495
    at_max = int(np.count_nonzero(out[3] == 65535))
    assert 600 < at_max < 950
    assert 1000 + at_max - 5 <= overloads <= 1000 + at_max


def test_fast_counts_variance_for_means_up_to_a_million() -> None:
    """jax.random.poisson alone gave a variance 3-4 % off at these means (float32 rejection
    test); drawn as a sum of parts it is Poisson.  20 000 draws: the variance ratio's
    standard error is 1 %, so 3.5 % is a 3.5σ bound."""
    from nanobragg_jax.noise import _fast_counts_chunked

    means = np.array([3.0e4, 5.0e5, 9.99e5], np.float32)
    n = 20000
    counts = _fast_counts_chunked(np.tile(means, n), jax.random.PRNGKey(5)).reshape(n, -1)
    np.testing.assert_allclose(counts.mean(0) / means, 1.0, atol=2e-4)
    np.testing.assert_allclose(counts.var(0, ddof=1) / means, 1.0, atol=0.035)
    # below the split the single draw is kept: a pixel's count does not depend on its neighbours
    a = np.asarray(_fast_counts_chunked(np.array([7.0, 5.0e5, 40.0], np.float32), jax.random.PRNGKey(9)))
    b = np.asarray(_fast_counts_chunked(np.array([7.0, 0.0, 40.0], np.float32), jax.random.PRNGKey(9)))
    assert a[0] == b[0] and a[2] == b[2]
    with jax.enable_x64(True):  # the same counts with 64-bit JAX on (compat's float64 runs)
        np.testing.assert_array_equal(
            _fast_counts_chunked(np.array([7.0, 5.0e5, 40.0], np.float32), jax.random.PRNGKey(9)), a)


def test_fast_noise_roi_and_offset() -> None:
    img = np.full((10, 12), 3.0, dtype=np.float32)
    roi = (2, 5, 1, 3)
    out, _, _ = noise_image_fast(img, jax.random.PRNGKey(2), adc=10.0, roi=roi)
    mask = roi_mask(img.shape, roi)
    assert np.all(out[~mask] == 0)
    assert np.all(out[mask] >= 10)


def test_fast_noise_same_key_same_image_other_key_differs() -> None:
    img = np.random.default_rng(5).gamma(2.0, 3.0, (64, 64)).astype(np.float32)
    a = noise_image_fast(img, jax.random.PRNGKey(42))[0]
    b = noise_image_fast(img, jax.random.PRNGKey(42))[0]
    c = noise_image_fast(img, jax.random.PRNGKey(43))[0]
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_fast_noise_matches_exact_statistically_on_golden() -> None:
    _, arrays = _golden_case("noise_seed")
    img = arrays["float"]
    fast, photons_fast, _ = noise_image_fast(img, jax.random.PRNGKey(7))
    exact, photons_exact, _ = noise_image_exact(img, -4242)
    total = img.astype(np.float64).sum()
    assert abs(photons_fast / total - 1.0) < 0.03
    assert abs(photons_exact / total - 1.0) < 0.03


# -- numpy sampler (the command's default) ------------------------------------------------------


def test_numpy_noise_statistics_roi_and_seed() -> None:
    from nanobragg_jax.noise import noise_image_numpy

    rng = np.random.default_rng(0)
    img = rng.uniform(0.0, 30.0, size=(128, 96)).astype(np.float32)
    img[0, 0], img[0, 1], img[0, 2] = np.nan, -5.0, 2.0e6
    out, photons, overloads = noise_image_numpy(img, -5, adc=40.0)
    counts = out.astype(np.float64) - 40.0
    assert out[0, 0] == 40 and out[0, 1] == 40  # NaN and negative means draw 0
    assert overloads == 1 and out[0, 2] == 65535
    inner = counts[1:]
    assert abs(inner.mean() / img[1:].mean() - 1.0) < 0.01
    assert abs(inner.var() / (img[1:].mean() + img[1:].var()) - 1.0) < 0.05  # Poisson + spread
    assert np.array_equal(out, noise_image_numpy(img, -5, adc=40.0)[0])
    assert not np.array_equal(out, noise_image_numpy(img, 5, adc=40.0)[0])
    roi = (10, 20, 5, 30)
    part, _, _ = noise_image_numpy(img, 3, adc=10.0, roi=roi)
    inside = roi_mask(img.shape, roi)
    assert np.all(part[~inside] == 0) and np.all(part[inside] >= 10)


@pytest.mark.parametrize("adc", [40.0, -100.0, 0.0, 40.5])
def test_numpy_noise_follows_the_uint16_rules(adc: float) -> None:
    from nanobragg_jax.noise import counts_to_uint16, noise_image_numpy, numpy_generator

    img = np.random.default_rng(1).uniform(0.0, 90000.0, size=(40, 30)).astype(np.float32)
    img[::3] = 3.0
    out, photons, overloads = noise_image_numpy(img, 11, adc=adc)
    counts = numpy_generator(11).poisson(img.astype(np.float64)).astype(np.float64)
    expected, expected_over = counts_to_uint16(counts, adc)
    assert np.array_equal(out, expected) and overloads == expected_over > 0
    assert photons == counts.sum()
