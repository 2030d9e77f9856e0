"""Weighted spectra (issue 11): the weighting convention, the C reference, the generators.

Convention (kernel.source_weight_factors): with ``Setup.weighted_sources`` the
image is Σᵢ wᵢ·image(λᵢ alone)/Σᵢ wᵢ (no water); equal weights give the C
program's unweighted image; one source is the C program's one-line
``-sourcefile`` run, whatever its weight.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from nanobragg_jax import kernel, spectra  # noqa: E402
from nanobragg_jax.experiment import from_cli_args  # noqa: E402
from nanobragg_jax.flags import FlagError  # noqa: E402
from nanobragg_jax.simulate import simulate  # noqa: E402

DATA = Path(__file__).parent / "data" / "spectra"
ARGS = ("-cell 50 60 70 90 95 90 -N 5 -default_F 100 -lambda 1.0 -detpixels 16 -pixel 1.5 "
        "-distance 50 -oversample 1 -misset 10 20 30 -polar 0.9").split()


def _c_ref(name: str) -> np.ndarray:
    with np.load(DATA / f"{name}.npz") as z:
        return z["float"].astype(np.float64)


def _c_args(name: str) -> list[str]:
    rec = json.loads((DATA / "argv.json").read_text())["cases"][name[-1]]
    return [str(DATA / a) if a.endswith(".txt") else a for a in rec["args"]]


def _golden_ok(ours: np.ndarray, ref: np.ndarray) -> None:
    corr = np.corrcoef(ours.ravel(), ref.ravel())[0, 1]
    assert corr >= 0.999999
    assert abs(ours.sum() / ref.sum() - 1) <= 1e-5
    assert np.max(np.abs(ours - ref)) <= 1e-5 * ref.max()


@pytest.mark.parametrize("name", ["one_a", "one_b"])
@pytest.mark.parametrize("weighted", [False, True])
def test_one_line_source_file_matches_c(name, weighted):
    """The C image of a one-line -sourcefile (its weight, 0.37 or 2.5, is ignored by C)."""
    argv = _c_args(name) + (["-weighted_sources"] if weighted else [])
    exp = from_cli_args(argv)
    assert exp.setup.weighted_sources is weighted
    _golden_ok(np.asarray(simulate(exp.setup, exp.params)), _c_ref(name))


def test_two_line_file_weighted_is_weighted_mean_of_c_images(tmp_path):
    """-weighted_sources on a two-line file = (w_a·C_a + w_b·C_b)/(w_a + w_b); without it, C's mean."""
    lines = (DATA / "one_a.txt").read_text() + (DATA / "one_b.txt").read_text()
    src = tmp_path / "two.txt"
    src.write_text(lines)
    base = [a if not a.endswith(".txt") else str(src) for a in _c_args("one_a")]
    c_a, c_b = _c_ref("one_a"), _c_ref("one_b")
    exp = from_cli_args(base + ["-weighted_sources"])
    np.testing.assert_allclose(np.asarray(exp.params.source_weights), [0.37, 2.5])
    _golden_ok(np.asarray(simulate(exp.setup, exp.params)), (0.37 * c_a + 2.5 * c_b) / 2.87)
    exp = from_cli_args(base)  # C-exact by default: weights read and ignored
    _golden_ok(np.asarray(simulate(exp.setup, exp.params)), (c_a + c_b) / 2.0)


def _singles(setup, params, spec):
    out = []
    for lam in spec.wavelengths:
        s1, p1 = spectra.with_spectrum(setup, params, spectra.monochromatic(lam))
        out.append(np.asarray(simulate(s1, p1)))
    return np.array(out)


@pytest.mark.parametrize("extra", [[], ["-dmin", "4"], ["-oversample", "2", "-detector_thick", "50", "-thicksteps", "2"]])
def test_weighted_image_is_weighted_mean_of_single_wavelength_images(extra):
    exp = from_cli_args(ARGS + extra)
    spec = spectra.Spectrum(np.array([0.99, 1.0, 1.013]), weights=np.array([0.2, 1.0, 0.5]))
    st, p = spectra.with_spectrum(exp.setup, exp.params, spec)
    img = np.asarray(simulate(st, p))
    ref = np.tensordot(spec.weights, _singles(exp.setup, exp.params, spec), 1) / spec.weights.sum()
    assert ref.max() > 0
    np.testing.assert_allclose(img, ref, rtol=1e-12, atol=1e-12 * ref.max())


@functools.partial(jax.jit, static_argnums=0)  # one program (run eagerly: hundreds of compiled operations)
def _both_paths(setup, params, s, f):
    ctx = kernel.build_context(setup, params)
    trig = (jnp.int32(0), jnp.int32(0))
    return (kernel.pixel_photons_fast(setup, ctx, s, f),
            kernel.pixel_photons_general(setup, ctx, s, f, jnp.arange(s.size), trig))


def test_general_path_applies_the_same_weights():
    """The broadcast (general) path and the fast path agree on a weighted spectrum."""
    exp = from_cli_args(ARGS + ["-oversample", "2"])
    spec = spectra.Spectrum(np.array([0.98, 1.0, 1.02, 1.03]), weights=np.array([0.0, 3.0, 0.5, 1.0]))
    st, p = spectra.with_spectrum(exp.setup, exp.params, spec)
    s, f = np.meshgrid(np.arange(st.spixels), np.arange(st.fpixels), indexing="ij")
    s, f = s.ravel().astype(np.int32), f.ravel().astype(np.int32)
    fast, general = (np.asarray(x) for x in _both_paths(st, p, s, f))
    np.testing.assert_allclose(general, fast, rtol=1e-12, atol=1e-12 * fast.max())
    assert fast.max() > 0


def test_equal_weights_give_the_unweighted_image_with_water():
    exp = from_cli_args(ARGS + ["-dispersion", "2", "-dispsteps", "3", "-water", "50"])
    un = np.asarray(simulate(exp.setup, exp.params))
    st = dataclasses.replace(exp.setup, weighted_sources=True)
    p = exp.params.replace(source_weights=np.full(3, 7.0))
    np.testing.assert_allclose(np.asarray(simulate(st, p)), un, rtol=1e-14, atol=0)


def test_weight_scale_does_not_matter():
    exp = from_cli_args(ARGS)
    spec = spectra.Spectrum(np.array([0.99, 1.01]), weights=np.array([1.0, 2.0]))
    st, p = spectra.with_spectrum(exp.setup, exp.params, spec)
    st2, p2 = spectra.with_spectrum(exp.setup, exp.params, spec.replace(weights=spec.weights * 1e3))
    np.testing.assert_allclose(np.asarray(simulate(st2, p2)), np.asarray(simulate(st, p)), rtol=1e-13)


def test_bad_weights_are_refused(tmp_path):
    src = tmp_path / "neg.txt"
    src.write_text("-10 0 0 -1 1e-10\n-10 0 0 2 1.1e-10\n")
    with pytest.raises(FlagError, match="-weighted_sources"):
        from_cli_args(ARGS + ["-sourcefile", str(src), "-weighted_sources"])
    from_cli_args(ARGS + ["-sourcefile", str(src)])  # C-exact mode ignores the weights
    with pytest.raises(ValueError, match="weights"):
        spectra.check_spectrum([1.0, 1.1], [0.0, 0.0])
    with pytest.raises(ValueError, match="wavelengths"):
        spectra.check_spectrum([1.0, -1.1], [1.0, 1.0])


def test_sase_spectrum_is_seeded_and_shaped():
    a = spectra.sase_spectrum((7, 3), 1.3, bandwidth=2e-3, n_channels=64, n_modes=20)
    b = spectra.sase_spectrum((7, 3), 1.3, bandwidth=2e-3, n_channels=64, n_modes=20)
    c = spectra.sase_spectrum((7, 4), 1.3, bandwidth=2e-3, n_channels=64, n_modes=20)
    np.testing.assert_array_equal(a.weights, b.weights)
    assert not np.array_equal(a.weights, c.weights)
    assert a.wavelengths.shape == (64,) and np.all(np.diff(a.wavelengths) > 0)
    assert np.isclose(a.weights.max(), 1.0) and np.all(a.weights >= 0)
    # spiky: many local maxima, and the mean over many pulses follows the envelope
    peaks = np.sum((a.weights[1:-1] > a.weights[:-2]) & (a.weights[1:-1] > a.weights[2:]))
    assert peaks >= 3
    mean = np.mean([spectra.sase_spectrum((1, i), 1.3, n_channels=64).weights for i in range(400)], 0)
    env = spectra.gaussian_spectrum(1.3, 2e-3, 64).weights
    assert np.corrcoef(mean, env)[0, 1] > 0.98


def test_read_spectrum_in_angstrom_and_ev(tmp_path):
    f = tmp_path / "s.txt"
    f.write_text("# energy weight\n9000, 0.5\n\n9100 1.0\n")
    s = spectra.read_spectrum(f)
    np.testing.assert_allclose(s.wavelengths, spectra.HC_EV_ANGSTROM / np.array([9000, 9100]))
    np.testing.assert_allclose(s.weights, [0.5, 1.0])
    spectra.write_spectrum(tmp_path / "out.txt", s)
    back = spectra.read_spectrum(tmp_path / "out.txt")
    np.testing.assert_allclose(back.wavelengths, s.wavelengths, rtol=1e-15)
    f.write_text("1.0 1\nabc 2\n")
    with pytest.raises(ValueError, match="line 2"):
        spectra.read_spectrum(f)


def test_one_spectrum_concept_shared_with_the_model():
    """spectra's spectra are model.Spectrum: usable in Beam(spectrum=…); directions refused here."""
    import nanobragg_jax as nb

    sase = spectra.sase_spectrum((1, 2), 1.3, n_channels=8)
    assert isinstance(sase, nb.Spectrum) and sase.directions is None
    nb.Beam(wavelength=1.3, spectrum=sase)  # the model takes it as it is
    np.testing.assert_array_equal(spectra.weights_of(nb.Spectrum([1.0, 1.1])), [1.0, 1.0])
    with pytest.raises(ValueError, match="along the beam"):
        spectra.along_beam(nb.Spectrum([1.0], directions=[[-1.0, 0, 0]]))
