"""Noise images under the port's name (``nanobrag_torch.utils.noise``), drawn by
``nanobragg_jax.noise``: with a seed, the C program's exact ``-noisefile`` sequence;
without one, ``jax.random`` (statistically equivalent)."""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from nanobragg_jax import noise as _noise

from .._arrays import as_output, to_numpy
from .._values import is_torch_tensor

__all__ = ["generate_poisson_noise"]


def generate_poisson_noise(mean: Any, seed: Optional[int] = None, adc_offset: float = 40.0,
                           readout_noise: float = 3.0, overload_value: float = 65535.0):
    """``(noisy image, overload count)``: Poisson counts of ``mean`` (photons, (slow, fast))
    plus ``adc_offset``, clipped to [0, ``overload_value``] as the C program does.

    The C program adds no readout noise to its noise image; neither does this
    (``readout_noise`` is accepted for the port's signature).  ``seed`` is the C ``-seed``.
    """
    img = np.asarray(to_numpy(mean), np.float64)
    shape = img.shape
    img2 = img.reshape(shape[0], -1) if img.ndim >= 2 else img.reshape(1, -1)
    if seed is None:  # a fresh stream, as the port draws from torch's global generator
        seed = int(np.random.SeedSequence().entropy % (2**31 - 1)) + 1
    counts, _, _ = _noise.noise_image_exact(img2, _noise_seed(seed), adc=0.0)
    noisy = np.asarray(counts, np.float64).reshape(shape) + float(adc_offset)
    noisy = np.clip(noisy, 0.0, None)
    overloads = int(np.sum(noisy > overload_value))
    noisy = np.minimum(noisy, float(overload_value))
    return as_output(noisy, mean.dtype if is_torch_tensor(mean) else None), overloads


def _noise_seed(seed: int) -> int:
    from nanobragg_jax.rng import seed_from_cli

    return seed_from_cli(int(seed))
