"""X-ray spectra for weighted-source simulations: arrays, files and a SASE-like generator.

A spectrum is a list of wavelengths λᵢ (Å) with relative weights wᵢ (≥ 0, not
all 0).  Rendered with ``Setup.weighted_sources`` every source i enters the
pixel's running sum with the factor S·wᵢ/Σw (S = number of sources), so that

    image = Σᵢ wᵢ·image(λᵢ alone) / Σᵢ wᵢ          (no water background)

— the weighted mean of one-wavelength images, each of which is what the C
program renders from a one-line ``-sourcefile`` (see
``kernel.source_weight_factors`` and docs/shots.md).  Only the ratios of the
weights matter; the photon count is set by ``Params.fluence``.

A spectrum is a ``model.Spectrum`` (the one concept, also ``nanobragg_jax.Spectrum``):
the functions here return ``Spectrum(wavelengths=λ, weights=w)`` with sources along
the beam (``directions=None``), which a model's ``Beam(spectrum=…)`` takes as it is.

``with_spectrum`` turns any (setup, params) into a weighted file-source
simulation whose sources all travel along the beam.  ``sase_spectrum`` draws
a self-amplified spontaneous emission (SASE) pulse: a Gaussian envelope filled
with narrow spikes (modes) of random position and exponentially distributed
amplitude, sampled on a fixed wavelength grid (so that every shot of a batch has
the same number of channels).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Union

import numpy as np

from .config import Params, Setup
from .model.beam import Spectrum  # the one spectrum concept: model.Spectrum

# h·c in eV·Å (CODATA 2018): λ[Å] = HC_EV_ANGSTROM / E[eV].
HC_EV_ANGSTROM = 12398.419843320026

PathLike = Union[str, "os.PathLike[str]"]


def check_spectrum(wavelengths, weights, name: str = "spectrum") -> Spectrum:
    """Validate and return a ``Spectrum`` of sources along the beam (float64 copies).

    Raises:
      ValueError: shapes differ or are empty, a wavelength is not finite and > 0,
        a weight is negative or not finite, or all weights are 0.
    """
    lam = np.atleast_1d(np.asarray(wavelengths, np.float64))
    w = np.atleast_1d(np.asarray(weights, np.float64))
    if lam.ndim != 1 or lam.shape != w.shape or lam.size == 0:
        raise ValueError(f"{name}: wavelengths {lam.shape} and weights {w.shape} must be equal, "
                         "non-empty 1-D arrays")
    if not np.all(np.isfinite(lam)) or np.any(lam <= 0):
        raise ValueError(f"{name}: wavelengths must be finite and > 0 Å")
    if not np.all(np.isfinite(w)) or np.any(w < 0) or not np.sum(w) > 0:
        raise ValueError(f"{name}: weights must be finite, ≥ 0 and not all 0")
    return Spectrum(wavelengths=lam, weights=w)


def weights_of(spectrum: Spectrum) -> np.ndarray:
    """The spectrum's weights (float64), ones when it has none (the C program's equal sources)."""
    lam = np.asarray(spectrum.wavelengths, np.float64)
    return np.ones_like(lam) if spectrum.weights is None else np.asarray(spectrum.weights, np.float64)


def along_beam(spectrum: Spectrum, name: str = "spectrum") -> Spectrum:
    """``spectrum`` checked as a list of sources along the beam, with weights (ones if none).

    Raises:
      ValueError: the spectrum gives source directions (use ``Beam(spectrum=…)`` in a model
        for sources off the beam axis), or bad wavelengths/weights.
    """
    if spectrum.directions is not None:
        raise ValueError(f"{name}: sources along the beam only (this Spectrum gives directions)")
    return check_spectrum(spectrum.wavelengths, weights_of(spectrum), name)


def monochromatic(wavelength: float) -> Spectrum:
    """One wavelength (Å) with weight 1."""
    return check_spectrum([wavelength], [1.0], "monochromatic")


def gaussian_spectrum(wavelength: float, bandwidth: float, n_channels: int,
                      extent: float = 3.0) -> Spectrum:
    """A Gaussian line: centre λ0 (Å), relative FWHM ``bandwidth`` (Δλ/λ), ``n_channels`` samples.

    Channels are evenly spaced over λ0·(1 ± extent·σ_rel) with σ_rel = FWHM/2.3548.
    """
    sigma = bandwidth / (2.0 * np.sqrt(2.0 * np.log(2.0)))
    x = np.linspace(-extent, extent, n_channels) if n_channels > 1 else np.zeros(1)
    lam = wavelength * (1.0 + sigma * x)
    return check_spectrum(lam, np.exp(-0.5 * x * x), "gaussian_spectrum")


def sase_spectrum(rng: Union[np.random.Generator, int, tuple], wavelength: float,
                  bandwidth: float = 2e-3, n_channels: int = 100, n_modes: int = 30,
                  mode_width: float = 1e-4, jitter: float = 0.0, extent: float = 3.0) -> Spectrum:
    """A SASE-like pulse: Gaussian envelope × random spikes, on a fixed grid.

    The weight at channel λ is Σₘ aₘ·exp(−(λ − λₘ)²/(2σₘ²)), a sum of ``n_modes``
    narrow Gaussian modes whose centres λₘ are drawn from the envelope
    N(λc, (λ0·σ_env)²) and whose amplitudes aₘ ~ Exp(1) (the statistics of a
    chaotic, self-amplified pulse), σₘ = λ0·mode_width/2.3548.

    Args:
      rng: a numpy Generator, or a seed (int or tuple of ints, e.g. (seed, shot)).
      wavelength: nominal centre λ0 (Å).
      bandwidth: relative FWHM of the envelope (Δλ/λ; 2e-3 is typical of hard XFELs).
      n_channels: wavelength samples over λ0·(1 ± extent·σ_env) (plus the jitter).
      n_modes: number of spikes.
      mode_width: relative FWHM of one spike.
      jitter: relative r.m.s. shot-to-shot jitter of the centre λc (the grid follows it).
      extent: half-width of the grid in envelope σ.
    Returns:
      ``Spectrum`` with ``n_channels`` wavelengths (ascending) and weights (max 1).
    """
    if not isinstance(rng, np.random.Generator):
        rng = np.random.default_rng(rng)
    fwhm = 2.0 * np.sqrt(2.0 * np.log(2.0))
    sig_env = bandwidth / fwhm
    centre = wavelength * (1.0 + jitter * rng.standard_normal())
    x = np.linspace(-extent, extent, n_channels) if n_channels > 1 else np.zeros(1)
    lam = centre * (1.0 + sig_env * x)
    mode_pos = centre * (1.0 + sig_env * rng.standard_normal(n_modes))
    amp = rng.exponential(1.0, n_modes)
    sig_mode = wavelength * mode_width / fwhm
    w = np.sum(amp[:, None] * np.exp(-0.5 * ((lam[None, :] - mode_pos[:, None]) / sig_mode) ** 2),
               axis=0)
    if not np.sum(w) > 0:  # every spike fell outside the grid: fall back to the envelope
        w = np.exp(-0.5 * x * x)
    return check_spectrum(lam, w / np.max(w), "sase_spectrum")


def read_spectrum(path: PathLike, unit: str = "auto") -> Spectrum:
    """Read a two-column text file: wavelength (Å) or photon energy (eV), then weight.

    Blank lines and lines starting with ``#`` are skipped; columns are separated by
    white space or commas.  ``unit`` is "A" (Å), "eV", or "auto": energies when
    every value of the first column is > 100 (no X-ray wavelength is > 100 Å), else
    wavelengths.  Energies are converted with λ = 12398.42 eV·Å / E.

    Raises:
      ValueError: unreadable numbers, fewer than two columns, bad values (naming the file).
    """
    rows = []
    with open(path, "r", encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            text = line.split("#", 1)[0].replace(",", " ").split()
            if not text:
                continue
            if len(text) < 2:
                raise ValueError(f"{path}: line {n}: need two columns (wavelength or energy, weight)")
            try:
                rows.append((float(text[0]), float(text[1])))
            except ValueError:
                raise ValueError(f"{path}: line {n}: {line.strip()!r} is not two numbers") from None
    if not rows:
        raise ValueError(f"{path}: no spectrum lines")
    x, w = np.array(rows).T
    if unit not in ("auto", "A", "eV"):
        raise ValueError(f"read_spectrum: unit must be 'auto', 'A' or 'eV', not {unit!r}")
    energies = unit == "eV" or (unit == "auto" and np.all(x > 100.0))
    if energies:
        if np.any(x <= 0):
            raise ValueError(f"{path}: photon energies must be > 0 eV")
        x = HC_EV_ANGSTROM / x
    return check_spectrum(x, w, str(path))


def write_spectrum(path: PathLike, spectrum: Spectrum) -> None:
    """Write a spectrum as two columns: wavelength (Å), weight."""
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("# wavelength_A weight\n")
        for lam, w in zip(np.asarray(spectrum.wavelengths, np.float64), weights_of(spectrum)):
            fh.write(f"{lam:.17g} {w:.17g}\n")


def beam_source_dirs(params: Params, n_sources: int) -> np.ndarray:
    """Source positions (toward the source, any length) for S sources on the beam axis: (S, 3)."""
    beam = np.asarray(params.beam_vector, np.float64)
    beam = beam / np.sqrt(np.sum(beam * beam))
    return np.tile(-beam, (n_sources, 1))


def spectrum_setup(setup: Setup, n_sources: int) -> Setup:
    """``setup`` turned into a weighted file-source setup with ``n_sources`` sources."""
    return dataclasses.replace(setup, source_mode="file", div_tics=((0, 0),), dispsteps=1,
                               disp_divisor=0.0, hdiv_divisor=0.0, vdiv_divisor=0.0,
                               n_sources=int(n_sources), weighted_sources=True)


def with_spectrum(setup: Setup, params: Params, spectrum: Spectrum) -> tuple[Setup, Params]:
    """(setup, params) rendering ``spectrum`` with weights, every source along the beam.

    Replaces the source list (divergence, dispersion or a source file) by one
    source per wavelength; the result recompiles once per number of channels.
    """
    spec = along_beam(spectrum, "with_spectrum")
    S = spec.wavelengths.size
    dtype = np.asarray(params.wavelength).dtype
    new = params.replace(source_dirs=beam_source_dirs(params, S).astype(dtype),
                         source_wavelengths=spec.wavelengths.astype(dtype),
                         source_weights=spec.weights.astype(dtype))
    return spectrum_setup(setup, S), new
