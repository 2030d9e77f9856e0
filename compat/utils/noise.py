"""Noise images under the port's name (``nanobrag_torch.utils.noise``), drawn by
the sampler of ``nanobragg_jax.noise.noise_image_fast`` (``jax.random`` Poisson counts, Gaussian above
10⁶ photons, as the C program; the same seed gives the same image).  The port draws
from torch's generator, so neither reproduces the C program's ``-noisefile`` sequence;
for that, use ``nanobragg_jax.noise.noise_image_exact`` or the command line."""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from nanobragg_jax import noise as _noise

from .._arrays import as_output, to_numpy

__all__ = ["generate_poisson_noise"]


def generate_poisson_noise(mean: Any, seed: Optional[int] = None, adc_offset: float = 40.0,
                           readout_noise: float = 3.0, overload_value: float = 65535.0):
    """``(noisy image, overload count)``: Poisson counts of ``mean`` (photons, (slow, fast))
    plus ``adc_offset``, clipped to [0, ``overload_value``] as the C program does.

    The C program adds no readout noise to its noise image; neither does this
    (``readout_noise`` is accepted for the port's signature).
    """
    img = np.asarray(to_numpy(mean), np.float64)
    shape = img.shape
    img2 = img.reshape(shape[0], -1) if img.ndim >= 2 else img.reshape(1, -1)
    import jax

    if seed is None:  # a fresh stream, as the port draws from torch's global generator
        seed = int(np.random.SeedSequence().entropy % (2**31 - 1))
    # the core's sampler before its uint16 conversion (the port's overload value may exceed 65535)
    flat = np.asarray(img2, np.float32).ravel()
    key = jax.random.key(int(seed))
    if flat.size < _noise._FAST_CHUNK:
        # small inputs: pad to a power of two rather than a whole chunk (a few compiled shapes,
        # each cheap to call again)
        size = 1 << max(6, int(flat.size - 1).bit_length())
        buf = np.zeros(size, np.float32)
        buf[:flat.size] = flat
        counts = np.asarray(_noise._fast_counts(jax.numpy.asarray(buf), key))[:flat.size]
    else:
        counts = _noise._fast_counts_chunked(flat, key)
    noisy = np.rint(np.asarray(counts, np.float64)).reshape(shape) + float(adc_offset)
    noisy = np.clip(noisy, 0.0, None)
    overloads = int(np.sum(noisy > overload_value))
    noisy = np.minimum(noisy, float(overload_value))
    # integer counts, as the port returns them (int32)
    return as_output(noisy.astype(np.int32), keep_dtype=True), overloads


