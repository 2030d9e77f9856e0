"""Poisson photon-noise images, as the reference C program makes its ``-noisefile``.

For every pixel in raster order (slow index outer, fast index inner) that lies inside the
region of interest, the C program draws ``poidev(float(value))`` from the ``-seed`` stream, adds
the ADC offset, clips at 65535 (counting overloads) and converts the double to ``unsigned
short``; pixels outside the ROI stay 0.  Two implementations:

* :func:`noise_image_exact` — bit-identical to the C image for the same seed: a sequential
  host-side loop (the generator has a 32-entry shuffle table, so it cannot be parallelised).
* :func:`noise_image_numpy` — statistically equivalent, drawn with numpy's ``Generator``
  (PCG64) in a few milliseconds per megapixel; what the command uses by default.
* :func:`noise_image_fast` — statistically equivalent, vectorised with ``jax.random`` (for
  code that already holds a JAX key; compiling the sampler costs about a second).

Speed of the exact path (CPython 3.11, one core): about 0.5–0.8 s per megapixel for typical
diffraction images (most pixels below one photon), 2 s at a mean of 5 photons and 3.5 s when
most pixels hold 12 photons or more (the rejection method).  The cost is the sequential
generator itself (a zero-mean pixel still consumes one draw), so it cannot be vectorised without
changing the result.

Conversion to 16 bits follows the compiled C program: the double is truncated toward zero to a
(64-bit) integer and its low 16 bits are stored.  Values above 65535 are clipped first, so the
only visible wrap-around is for *negative* values (a negative ADC offset larger than the count,
e.g. ``-adc -100``: a count of 43 gives −57.5 → −57 → 65479).  NaN becomes 0.
"""

from __future__ import annotations

import math
from array import array
from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from . import rng
from .rng import AM, RNMX, RNMX_F32, CStatics, Ran1

__all__ = ["noise_image_exact", "noise_image_fast", "noise_image_numpy", "numpy_generator", "roi_mask", "counts_to_uint16"]

ADC_DEFAULT: float = 40.0
"""The C program's default ADC offset (counts)."""

OVERLOAD: float = 65535.0
"""Largest value a 16-bit pixel holds; larger counts are clipped and counted as overloads."""

_NDIV_SHIFT = 26  # ran1 table slot = iy // NDIV with NDIV = 2**26
assert (1 << _NDIV_SHIFT) == rng.NDIV


def _full_roi(shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """ROI covering a (slow, fast) image: (xmin, xmax, ymin, ymax) inclusive, x = fast."""
    return (0, shape[1] - 1, 0, shape[0] - 1)


def roi_mask(shape: tuple[int, int], roi: Optional[Sequence[int]]) -> np.ndarray:
    """Boolean (slow, fast) mask of the pixels inside ``roi = (xmin, xmax, ymin, ymax)``.

    Bounds are inclusive; x is the fast (column) index, y the slow (row) index.  ``None`` means the
    whole image.  Bounds outside the image are allowed (the C loop simply never reaches them).
    """
    xmin, xmax, ymin, ymax = _full_roi(shape) if roi is None else (int(v) for v in roi)
    s = np.arange(shape[0])[:, None]
    f = np.arange(shape[1])[None, :]
    return (f >= xmin) & (f <= xmax) & (s >= ymin) & (s <= ymax)


def counts_to_uint16(counts: np.ndarray, adc: float) -> tuple[np.ndarray, int]:
    """Add the ADC offset, clip above 65535 and convert to uint16 like the C program.

    Args:
        counts: photon counts (float64 array, any shape).
        adc: ADC offset in counts.

    Returns:
        (uint16 array, number of overloads = values that exceeded 65535 after the offset).
    """
    test = np.asarray(counts, dtype=np.float64) + float(adc)
    over = test > OVERLOAD
    test = np.where(over, OVERLOAD, test)
    # truncate toward zero to a 64-bit integer and keep the low 16 bits (what cvttsd2si + a
    # 16-bit store do); NaN maps to the integer-indefinite value, whose low bits are 0
    finite = np.isfinite(test)
    as_int = np.where(finite, np.trunc(np.where(finite, test, 0.0)), 0.0).astype(np.int64)
    return (as_int & 0xFFFF).astype(np.uint16), int(np.count_nonzero(over))


def _poisson_draws_generic(values: list[float], gen: Ran1) -> list[float]:
    """``poidev`` for each value through the reference routine (slow, handles every case)."""
    return [rng.poidev(xm, gen) for xm in values]


def _poisson_draws_exact(values: list[float], gen: Ran1) -> list[float]:
    """``poidev`` for each value in order, sharing one generator, bit-exact with the C routine.

    This is :func:`nanobragg_jax.rng.poidev` specialised for speed: ``ran1`` is inlined with the
    generator state in local variables, float32 rounding goes through a one-element ``array('f')``
    and ``gammln`` of the integer candidates is memoised (it is a pure function of its float
    argument).  The direct method (mean < 12) and the rejection method (12 ≤ mean ≤ 1e6) run
    inline; the rare normal branch (mean > 1e6) and NaN call the reference routine after syncing
    the state, so the cached constants and the spare normal deviate stay exactly as the C
    statics would.
    """
    if not values:
        return []  # the C loop makes no ran1 call, so the statics must stay untouched
    st: CStatics = gen.statics
    # the first ran1 call would (re)load the shuffle table; do it up front so that the inlined
    # copy below only has to handle the loaded case
    gen._reload_if_needed()
    if gen.idum <= 0 or not st.iy:
        # degenerate seed (e.g. -seed 2147483647 drives the LCG to 0): ran1 then reloads on
        # later calls, which only the reference routine models
        return _poisson_draws_generic(values, gen)
    # From here 0 < idum < IM, so Schrage's step equals idum*IA mod IM and never reaches 0:
    # the reload test of ran1 can never fire again inside this loop.
    idum = gen.idum
    iy = st.iy
    iv = st.iv
    oldm = st.poi_oldm
    g = st.poi_g
    sq = st.poi_sq
    alxm = st.poi_alxm
    buf = array("f", [0.0])
    c_exp = rng._c_exp
    gammln = rng.gammln
    tan = math.tan
    floor = math.floor
    sqrt = math.sqrt
    log = math.log
    pi = math.pi
    gammln_cache: dict[float, float] = {}
    out: list[float] = [0.0] * len(values)
    for n, xm in enumerate(values):
        if xm < 12.0:
            # direct method: multiply float32 uniforms until the product drops to exp(-xm)
            if xm != oldm:
                oldm = xm
                buf[0] = c_exp(-xm)
                g = buf[0]
            em = 0
            t = 1.0
            while True:
                idum = idum * 16807 % 2147483647  # = Schrage step for 0 < idum < IM
                j = iy >> 26  # iy // NDIV
                iy = iv[j]
                iv[j] = idum
                buf[0] = AM * iy
                u = buf[0]
                if u > RNMX:
                    u = RNMX_F32
                buf[0] = t * u
                t = buf[0]
                if not t > g:
                    break
                em += 1
            out[n] = float(em)
        elif xm <= 1.0e6:
            # rejection method with a Lorentzian comparison function
            if xm != oldm:
                oldm = xm
                buf[0] = sqrt(2.0 * xm)
                sq = buf[0]
                buf[0] = log(xm)
                alxm = buf[0]
                buf[0] = xm * alxm
                xa = buf[0]
                buf[0] = xm + 1.0
                buf[0] = xa - gammln(buf[0])
                g = buf[0]
            while True:
                while True:
                    idum = idum * 16807 % 2147483647
                    j = iy >> 26
                    iy = iv[j]
                    iv[j] = idum
                    buf[0] = AM * iy
                    u = buf[0]
                    if u > RNMX:
                        u = RNMX_F32
                    buf[0] = tan(pi * u)
                    y = buf[0]
                    buf[0] = sq * y
                    buf[0] = buf[0] + xm
                    em = buf[0]
                    if not em < 0.0:
                        break
                # float32 values >= 2**23 are integral, so the floor is still a float32
                em = float(floor(em))
                lg = gammln_cache.get(em)
                if lg is None:
                    lg = gammln_cache[em] = gammln(em + 1.0)
                buf[0] = em * alxm
                buf[0] = buf[0] - lg
                buf[0] = buf[0] - g
                arg = buf[0]
                buf[0] = y * y
                buf[0] = 0.9 * (1.0 + buf[0]) * c_exp(arg)
                t = buf[0]
                idum = idum * 16807 % 2147483647
                j = iy >> 26
                iy = iv[j]
                iv[j] = idum
                buf[0] = AM * iy
                u = buf[0]
                if u > RNMX:
                    u = RNMX_F32
                if not u > t:
                    break
            out[n] = em
        else:
            # normal approximation (mean > 1e6) or NaN: the reference routine, state synced
            gen.idum, st.iy = idum, iy
            st.poi_oldm, st.poi_g, st.poi_sq, st.poi_alxm = oldm, g, sq, alxm
            out[n] = rng.poidev(xm, gen)
            idum, iy = gen.idum, st.iy
            oldm, g, sq, alxm = st.poi_oldm, st.poi_g, st.poi_sq, st.poi_alxm
    gen.idum, st.iy = idum, iy
    st.poi_oldm, st.poi_g, st.poi_sq, st.poi_alxm = oldm, g, sq, alxm
    return out


def noise_image_exact(
    float_image: np.ndarray,
    seed: int,
    adc: float = ADC_DEFAULT,
    roi: Optional[Sequence[int]] = None,
    statics: Optional[CStatics] = None,
) -> tuple[np.ndarray, float, int]:
    """Noise image bit-identical to the C program's ``-noisefile``.

    Args:
        float_image: expected photons per pixel, (slow, fast); cast to float32 as the C ``float``.
        seed: the C ``seed`` variable, i.e. ``-seed N`` → ``-N`` (see
            :func:`nanobragg_jax.rng.seed_from_cli`).  A value ≤ 0 makes the image depend on the
            seed alone.
        adc: ADC offset added to every drawn count (counts; C default 40).
        roi: (xmin, xmax, ymin, ymax) inclusive, x = fast index; None = whole image.  Pixels
            outside stay 0 and consume no random numbers.
        statics: the C random statics at the start of the noise loop.  Only matters for a seed
            > 0 (a negative ``-seed`` on the command line): in C that stream continues the shuffle
            table left by the mosaic-domain (and ``-misset random``) draws, so pass
            ``rng.replay_statics_before_noise(mosaic_seed, mosaic_domains, misset_seed)``.
            ``None`` = a fresh process (nothing drawn before).  The object is updated in place.

    Returns:
        (uint16 image (slow, fast), photons = sum of the drawn counts before the offset (what the
        C prints as "photons on noise image"), number of overloads).
    """
    img = _image_2d(float_image)
    mask = roi_mask(img.shape, roi)
    flat_idx = np.flatnonzero(mask.ravel())  # raster order: slow outer, fast inner
    values = img.ravel()[flat_idx].astype(np.float64).tolist()
    gen = Ran1(seed, statics)
    draws = _poisson_draws_exact(values, gen)
    counts = np.asarray(draws, dtype=np.float64)
    # the C sums in double in raster order; cumsum adds sequentially (np.sum and Python's sum
    # would use pairwise / compensated summation and could differ in the last bits)
    photons = float(np.cumsum(counts)[-1]) if counts.size else 0.0
    u16, overloads = counts_to_uint16(counts, adc)
    out = np.zeros(img.size, dtype=np.uint16)
    out[flat_idx] = u16
    return out.reshape(img.shape), photons, overloads


_POISSON_ACCURATE = 6.0e4
"""Largest mean we hand to ``jax.random.poisson`` in one draw.  Its rejection sampler runs in
float32, and its acceptance test −λ + k·log λ − lgamma(k+1) cancels terms of ~10⁷ near λ = 10⁶, so
the draws' variance is off by 3–4 % at λ = 5·10⁵–10⁶ (measured over 4·10⁴ draws per mean); up to
6·10⁴ it stays within the 0.3 % sampling error of 2·10⁵ draws."""

_POISSON_PARTS = 17
"""A mean between ``_POISSON_ACCURATE`` and 10⁶ is drawn as the sum of this many independent
Poisson(λ/17) counts (each ≤ 5.9·10⁴), which is Poisson(λ) exactly."""


@jax.jit
def _fast_counts(image: jax.Array, key: jax.Array) -> jax.Array:
    """Poisson counts (float32) for each pixel mean; normal approximation above 1e6 photons."""
    lam = jnp.where(jnp.isfinite(image), jnp.maximum(image, 0.0), 0.0)
    big = lam > 1.0e6
    k_poi, k_norm = jax.random.split(key)
    # keep the Poisson sampler in its cheap range where the normal branch is used instead
    lam_poi = jnp.where(big, 0.0, lam)
    mid = lam_poi > _POISSON_ACCURATE
    # each pixel's draw depends only on the key and its own mean, so zeroing the large means
    # here leaves every other pixel's count as it was
    poi = jax.random.poisson(k_poi, jnp.where(mid, 0.0, lam_poi), shape=lam.shape, dtype=jnp.int32)

    def summed_parts(_):
        parts = jax.random.poisson(jax.random.fold_in(k_poi, 1), jnp.where(mid, lam_poi, 0.0) / _POISSON_PARTS,
                                   shape=(_POISSON_PARTS,) + lam.shape, dtype=jnp.int32)
        return jnp.where(mid, jnp.sum(parts, axis=0, dtype=jnp.int32), poi)

    # only chunks that hold such a mean pay for the extra draws
    poi = jax.lax.cond(jnp.any(mid), summed_parts, lambda _: poi, None)
    poi = poi.astype(jnp.float32)
    gauss = lam + jnp.sqrt(lam) * jax.random.normal(k_norm, lam.shape, dtype=jnp.float32)
    return jnp.where(big, gauss, poi)


_FAST_CHUNK = 1 << 16
"""Pixels per call of the jitted sampler: one compiled shape serves every image size."""


def _fast_counts_chunked(flat: np.ndarray, key: jax.Array) -> np.ndarray:
    """Counts for a 1-D float32 array, in fixed-size chunks keyed by ``fold_in(key, chunk)``.

    Compiling ``jax.random.poisson`` takes seconds, so the sampler always sees the same shape
    (the last chunk is zero-padded) instead of recompiling for every image size.
    """
    n = flat.size
    out = np.empty(n, dtype=np.float64)
    buf = np.zeros(_FAST_CHUNK, dtype=np.float32)
    for i, start in enumerate(range(0, n, _FAST_CHUNK)):
        part = flat[start : start + _FAST_CHUNK]
        buf[: part.size] = part
        buf[part.size :] = 0.0
        counts = np.asarray(_fast_counts(jnp.asarray(buf), jax.random.fold_in(key, i)))
        out[start : start + part.size] = counts[: part.size]
    return out


def _image_2d(float_image) -> np.ndarray:
    """The expected-photon image as float32 (slow, fast); anything else is a ValueError."""
    img = np.asarray(float_image, dtype=np.float32)
    if img.ndim != 2:
        raise ValueError(f"float_image must be 2-D (slow, fast), got shape {img.shape}")
    return img


def noise_image_fast(
    float_image: np.ndarray,
    key: jax.Array,
    adc: float = ADC_DEFAULT,
    roi: Optional[Sequence[int]] = None,
) -> tuple[np.ndarray, float, int]:
    """Statistically equivalent noise image drawn with ``jax.random`` (not the C sequence).

    Counts are Poisson(value) (value clamped at 0, NaN → 0), or value + sqrt(value)·N(0,1) above
    1e6 photons as the C does; then the same offset/clip/overload/uint16 rules as
    :func:`noise_image_exact`.  Same key → same image.

    Args:
        float_image: expected photons per pixel, (slow, fast).
        key: a ``jax.random`` key.
        adc: ADC offset in counts.
        roi: (xmin, xmax, ymin, ymax) inclusive, x = fast; None = whole image.

    Returns:
        (uint16 image, photons (sum of counts inside the ROI), overloads).
    """
    img = _image_2d(float_image)
    mask = roi_mask(img.shape, roi)
    counts = _fast_counts_chunked(img.ravel(), key).reshape(img.shape)
    counts = np.where(mask, counts, 0.0)
    u16, overloads = counts_to_uint16(counts[mask], adc)
    out = np.zeros(img.shape, dtype=np.uint16)
    out[mask] = u16
    return out, float(counts[mask].sum()), overloads


def numpy_generator(seed: int) -> np.random.Generator:
    """numpy's PCG64 generator for a command-line seed (any integer, negative included).

    The seed is mapped one-to-one onto the non-negative integers (2|s| for s ≥ 0, 2|s| − 1
    for s < 0) because ``SeedSequence`` takes no negative entropy: the same ``-seed`` gives
    the same image and two different seeds give two independent streams.
    """
    seed = int(seed)
    return np.random.Generator(np.random.PCG64(2 * seed if seed >= 0 else -2 * seed - 1))


def noise_image_numpy(
    float_image: np.ndarray,
    seed: int,
    adc: float = ADC_DEFAULT,
    roi: Optional[Sequence[int]] = None,
) -> tuple[np.ndarray, float, int]:
    """Statistically equivalent noise image drawn with numpy (the command's default).

    Counts are Poisson(value) for each pixel inside ``roi`` (value clamped at 0, NaN → 0), or
    value + sqrt(value)·N(0,1) above 1e6 photons as the C program does; then the same
    offset/clip/overload/uint16 rules as :func:`noise_image_exact`.  Only pixels inside the ROI
    draw numbers, in raster order, from :func:`numpy_generator` (``seed``): same seed → same
    image, but not the C program's sequence (that is :func:`noise_image_exact`).  About
    0.01–0.03 s per megapixel (numpy's samplers are compiled C).

    Args:
        float_image: expected photons per pixel, (slow, fast).
        seed: any integer (the command passes its ``seed`` value, e.g. ``-seed 5`` → −5).
        adc: ADC offset in counts.
        roi: (xmin, xmax, ymin, ymax) inclusive, x = fast; None = whole image.

    Returns:
        (uint16 image, photons (sum of counts inside the ROI), overloads).
    """
    img = _image_2d(float_image)
    if roi is None:
        window = (slice(None), slice(None))
    else:
        xmin, xmax, ymin, ymax = (int(v) for v in roi)
        window = (slice(max(ymin, 0), max(ymax + 1, 0)), slice(max(xmin, 0), max(xmax + 1, 0)))
    # one pass: float64, negative → 0 and NaN → 0 (fmax ignores NaN); ±inf → 0 below
    lam = np.fmax(img[window], 0.0, dtype=np.float64)
    if not np.isfinite(lam).all():
        lam[~np.isfinite(lam)] = 0.0
    gen = numpy_generator(seed)
    big = lam > 1.0e6
    if not big.any() and float(adc).is_integer() and abs(adc) < 2.0**52:
        # common case, exact integers throughout: the same result as counts_to_uint16 (add
        # the offset, clip above 65535 counting overloads, keep the low 16 bits) in fewer passes
        counts = gen.poisson(lam)  # int64
        photons = float(counts.sum())
        counts += int(adc)
        over = counts > 65535
        overloads = int(np.count_nonzero(over))
        np.minimum(counts, 65535, out=counts)
        u16 = counts.astype(np.uint16)  # two's-complement wrap = low 16 bits, as the C store
    else:
        if big.any():
            counts = gen.poisson(np.where(big, 0.0, lam)).astype(np.float64)
            counts[big] = lam[big] + np.sqrt(lam[big]) * gen.standard_normal(int(big.sum()))
        else:
            counts = gen.poisson(lam).astype(np.float64)
        photons = float(counts.sum())
        u16, overloads = counts_to_uint16(counts, adc)
    out = np.zeros(img.shape, dtype=np.uint16)
    out[window] = u16
    return out, photons, overloads
