"""Bit-compatible re-implementation of the reference C program's random-number routines.

The C program draws every random number from the Numerical-Recipes ``ran1`` generator (a
Park–Miller "minimal standard" LCG, multiplier 16807 modulo 2**31 - 1, computed with Schrage's
trick, whose output is passed through a 32-entry Bays–Durham shuffle table).  On top of it sit:

* ``mosaic_rotation_umat`` — a random rotation on a spherical cap, used for the mosaic domains
  (``-mosaic_seed``) and, with a cap of 90 *radians*, for ``-misset random`` (``-misset_seed``);
* ``poidev`` / ``gaussdev`` / ``gammln`` — Poisson photon noise (``-seed``);
* ``uniform3Ddev`` — a random unit vector (present in the C file, unused by its main program).

Everything here runs on the host in plain Python/numpy: these are sequential generators whose
exact values matter more than their speed (a handful of draws per mosaic domain).

Precision
---------
``ran1`` returns a C ``float``; the routines above mix ``float`` and ``double`` arithmetic.  We
reproduce that exactly: every value the C code stores in a ``float`` variable is rounded to
IEEE single precision here (``_f32``), products of two floats are formed in double (exact: 24+24
significant bits fit in 53) and rounded once, which is what single-precision hardware
multiplication does.  Transcendental functions in double precision come from Python's ``math``
module, which calls the platform C library, i.e. the same ``sin``/``cos``/``exp``/``log``/``tan``
as the compiled C program.  The single-precision ``powf`` of the mosaic routine is taken from the
platform C library as well (glibc's ``powf`` is *not* correctly rounded: ~0.07 % of its results
differ by one ulp from the correctly rounded value, so rounding ``math.pow`` would not be
bit-exact); if the C library cannot be loaded we fall back to the correctly rounded value.

Seeds and the shared shuffle table
----------------------------------
The C program keeps one ``long`` per stream (``seed`` for noise, ``mosaic_seed``,
``misset_seed``) and passes its address to ``ran1``, which updates it in place.  The command line
stores the *negated* value (``-seed 4242`` → ``seed = -4242``; ``-mosaic_seed N`` → ``-N``;
default ``mosaic_seed = -12345678``, although the help text claims 1234567).  Every function
here takes the seed **as the C variable holds it** (normally negative); use
:func:`seed_from_cli` to convert a command-line number.

In C the shuffle table (``iy`` and ``iv[32]``) is a *static* of ``ran1``: one table shared by
all three streams, plus the statics of ``gaussdev`` (spare deviate) and ``poidev`` (cached
constants).  ``ran1`` reloads the table only when ``*idum <= 0`` or ``iy == 0``.  Consequences
(checked against the compiled C routines):

* a stream whose seed variable is ≤ 0 at its first call (every non-negative ``-seed N`` on the
  command line, and all defaults) reloads the table and is therefore **independent** of whatever
  ran before it;
* a seed variable that is > 0 at its first call (a *negative* number on the command line, e.g.
  ``-seed -5``) does **not** reload the table if an earlier stream already loaded it: its draws
  then depend on the earlier streams' history.  Because the C program always draws at least one
  mosaic domain (3 draws) before the noise image, ``-seed -5`` noise depends on ``-mosaic_seed``,
  the number of domains and on ``-misset random``.  If nothing was drawn before, a positive seed
  is replaced by 1 (the reload sets ``idum = 1`` whenever ``-idum < 1``), as is a seed of 0.

To reproduce the coupling, all generators of one simulated C process share one
:class:`CStatics` object (pass ``statics=``); :func:`replay_statics_before_noise` rebuilds the
state the noise stream meets.  Order in the C program: ``-misset random`` (3 draws), then the
mosaic domains (3 draws each, always at least one domain), then the noise image.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import math
from array import array
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

__all__ = [
    "IA",
    "IM",
    "AM",
    "IQ",
    "IR",
    "NTAB",
    "NDIV",
    "RNMX",
    "DEFAULT_MOSAIC_SEED",
    "CStatics",
    "Ran1",
    "seed_from_cli",
    "uniform3Ddev",
    "gaussdev",
    "gammln",
    "poidev",
    "powf",
    "mosaic_rotation_draws",
    "rotation_matrix_from_axis_angle",
    "mosaic_rotation_umat",
    "mosaic_angle",
    "umat2misset",
    "mosaic_domain_draws",
    "mosaic_domain_umats",
    "random_misset_angles",
    "replay_statics_before_noise",
]

# Park–Miller / Schrage constants of Numerical Recipes' ran1.
IA: int = 16807
IM: int = 2147483647
AM: float = 1.0 / IM
IQ: int = 127773
IR: int = 2836
NTAB: int = 32
NDIV: int = 1 + (IM - 1) // NTAB  # = 2**26: table slot = iy // NDIV
EPS: float = 1.2e-7
RNMX: float = 1.0 - EPS  # double; ran1 never returns more than float(RNMX)

DEFAULT_MOSAIC_SEED: int = -12345678
"""``mosaic_seed`` when ``-mosaic_seed`` is absent (as the C variable holds it)."""

# A one-element single-precision buffer: assigning a Python float to it performs the C
# (double -> float) conversion (round to nearest even), reading it back gives the float32 value
# as a Python float.  Much faster than np.float32() for scalar work.
_F32_BUF = array("f", [0.0])


def _f32(x: float) -> float:
    """Round a double to the nearest IEEE single (C ``(float)x``); returns a Python float."""
    buf = _F32_BUF
    buf[0] = x
    return buf[0]


RNMX_F32: float = _f32(RNMX)  # what ``return RNMX`` hands back from a float function
_ONE_THIRD_F32: float = _f32(1.0 / 3.0)  # the exponent powf receives


def seed_from_cli(value: int) -> int:
    """Convert a ``-seed``/``-mosaic_seed``/``-misset_seed`` command-line number to the C variable.

    The C program stores ``-atoi(arg)``; this returns the same (negated) value.
    """
    return -int(value)


@dataclass
class CStatics:
    """All ``static`` state of the C random routines: one instance models one C process.

    Attributes:
        iy: ``ran1``'s last output (0 means "table never loaded").
        iv: ``ran1``'s 32-entry shuffle table.
        gauss_iset: ``gaussdev`` holds a spare deviate when 1.
        gauss_gset: that spare deviate (float32 value).
        poi_oldm: the mean ``poidev`` last pre-computed constants for (starts at -1.0).
        poi_sq, poi_alxm, poi_g: those constants (float32 values; ``poi_g`` is shared by the
            direct and the rejection branch exactly as in C).
    """

    iy: int = 0
    iv: list[int] = field(default_factory=lambda: [0] * NTAB)
    gauss_iset: int = 0
    gauss_gset: float = 0.0
    poi_oldm: float = -1.0
    poi_sq: float = 0.0
    poi_alxm: float = 0.0
    poi_g: float = 0.0

    def copy(self) -> "CStatics":
        """Independent copy (the shuffle table list is duplicated)."""
        return CStatics(
            self.iy,
            list(self.iv),
            self.gauss_iset,
            self.gauss_gset,
            self.poi_oldm,
            self.poi_sq,
            self.poi_alxm,
            self.poi_g,
        )


def _c_exp(x: float) -> float:
    """C ``exp`` on a double: +inf on overflow (Python's ``math.exp`` raises instead)."""
    try:
        return math.exp(x)
    except OverflowError:
        return math.inf


def _c_floor(x: float) -> float:
    """C ``floor`` returning a double; NaN and infinities pass through (``math.floor`` raises)."""
    return float(math.floor(x)) if math.isfinite(x) else x


def _lcg_step(idum: int) -> int:
    """One Park–Miller step, ``IA*idum mod IM`` by Schrage's method (C truncating division)."""
    k = int(idum / IQ) if idum < 0 else idum // IQ
    idum = IA * (idum - k * IQ) - IR * k
    if idum < 0:
        idum += IM
    return idum


class Ran1:
    """Numerical-Recipes ``ran1``: one seed variable (``idum``) plus the (shared) statics.

    Args:
        seed: the C ``long`` seed variable as the C program holds it (``-seed N`` → ``-N``).
            A value ≤ 0 (re)loads the shuffle table at the first draw.
        statics: the process-wide static state; generators that model streams of the same C
            process must share one object.  ``None`` gives a fresh one (as at C program start).

    Calling the instance returns the next deviate in (0, 1) as a Python float whose value is
    exactly the C ``float`` (``temp = AM*iy`` in double, stored to float, clamped to RNMX).
    """

    __slots__ = ("idum", "statics")

    def __init__(self, seed: int, statics: CStatics | None = None) -> None:
        self.idum: int = int(seed)
        self.statics: CStatics = statics if statics is not None else CStatics()

    def _reload_if_needed(self) -> None:
        """Reload the shuffle table the way ran1 does when ``idum <= 0`` or ``iy == 0``."""
        st = self.statics
        if self.idum <= 0 or not st.iy:
            idum = 1 if -self.idum < 1 else -self.idum
            iv = st.iv
            # 8 warm-up steps, then fill the table from its top slot down.
            for j in range(NTAB + 7, -1, -1):
                idum = _lcg_step(idum)
                if j < NTAB:
                    iv[j] = idum
            st.iy = iv[0]
            self.idum = idum

    def __call__(self) -> float:
        """Next uniform deviate (float32 value as a Python float)."""
        self._reload_if_needed()
        st = self.statics
        self.idum = _lcg_step(self.idum)
        j = st.iy // NDIV
        st.iy = st.iv[j]
        st.iv[j] = self.idum
        temp = _f32(AM * st.iy)
        return RNMX_F32 if temp > RNMX else temp

    def draws(self, n: int) -> np.ndarray:
        """The next ``n`` deviates as a float32 array."""
        return np.array([self() for _ in range(int(n))], dtype=np.float32)

    def __repr__(self) -> str:
        return f"Ran1(idum={self.idum}, iy={self.statics.iy})"


def uniform3Ddev(gen: Ran1) -> tuple[float, float, float, float]:
    """Random unit vector by rejection from a cube, as the C ``uniform3Ddev``.

    Returns:
        (dx, dy, dz, dr): the unit vector (float32 values) and the accepted radius ``dr`` in
        [0.01, 1] (float32) that was used to normalise it.
    """
    dr = 0.0
    dx = dy = dz = 0.0
    while dr > 1 or dr < 1e-2:
        # each component: 2.1*(u - 0.5) in double, stored to float
        dx = _f32(2.1 * (gen() - 0.5))
        dy = _f32(2.1 * (gen() - 0.5))
        dz = _f32(2.1 * (gen() - 0.5))
        # float products and sums, sqrt in double, stored to float
        s = _f32(_f32(_f32(dx * dx) + _f32(dy * dy)) + _f32(dz * dz))
        dr = _f32(math.sqrt(s))
    return _f32(dx / dr), _f32(dy / dr), _f32(dz / dr), dr


def gaussdev(gen: Ran1) -> float:
    """Unit-variance normal deviate by the polar Box–Muller method (float32 value).

    Like the C routine, every second call returns the spare deviate kept in
    ``gen.statics`` (``gauss_iset``/``gauss_gset``).
    """
    st = gen.statics
    if st.gauss_iset:
        st.gauss_iset = 0
        return st.gauss_gset
    while True:
        v1 = _f32(2.0 * gen() - 1.0)
        v2 = _f32(2.0 * gen() - 1.0)
        rsq = _f32(_f32(v1 * v1) + _f32(v2 * v2))
        if not (rsq >= 1.0 or rsq == 0):
            break
    fac = _f32(math.sqrt(-2.0 * math.log(rsq) / rsq))
    st.gauss_gset = _f32(v1 * fac)
    st.gauss_iset = 1
    return _f32(v2 * fac)


_GAMMLN_COF = (
    76.18009172947146,
    -86.50532032941677,
    24.01409824083091,
    -1.231739572450155,
    0.1208650973866179e-2,
    -0.5395239384953e-5,
)


def gammln(xx: float) -> float:
    """ln Γ(xx) by the Lanczos series, for xx > 0.

    The argument is a C ``float`` (rounded to float32 on entry), the series runs in double and the
    result is returned as a float32 value, matching the C's mixed precision.
    """
    x = y = _f32(xx)
    tmp = x + 5.5
    tmp -= (x + 0.5) * math.log(tmp)
    ser = 1.000000000190015
    for c in _GAMMLN_COF:
        y += 1.0
        ser += c / y
    return _f32(-tmp + math.log(2.5066282746310005 * ser / x))


def poidev(xm: float, gen: Ran1) -> float:
    """Poisson deviate of mean ``xm`` (photons), exactly as the C ``poidev``.

    * ``xm > 1e6``: normal approximation ``xm + sqrt(xm)*gaussdev`` (rounded to float32);
    * ``xm < 12``: direct method, multiply uniform deviates (in float32) until the product drops
      to ``exp(-xm)``; consumes (result + 1) draws — so a zero-mean pixel still uses one draw;
    * otherwise: rejection with a Lorentzian comparison function.

    The constants for the last ``xm`` are cached in ``gen.statics`` (``poi_oldm`` …) just as the
    C statics are, including the quirk that the cache starts at ``oldm = -1`` with ``g = 0``.

    Returns:
        the deviate as a float (its value is a C float; integral except on the normal branch).
    """
    st = gen.statics
    xm = _f32(xm)
    if xm > 1.0e6:
        return _f32(xm + math.sqrt(xm) * gaussdev(gen))
    if xm < 12.0:
        if xm != st.poi_oldm:
            st.poi_oldm = xm
            st.poi_g = _f32(_c_exp(-xm))
        g = st.poi_g
        em = -1.0
        t = 1.0
        while True:
            em += 1.0
            t = _f32(t * gen())
            if not t > g:
                break
        return em
    if xm != st.poi_oldm:
        st.poi_oldm = xm
        st.poi_sq = _f32(math.sqrt(2.0 * xm))
        st.poi_alxm = _f32(math.log(xm))
        st.poi_g = _f32(_f32(xm * st.poi_alxm) - gammln(_f32(xm + 1.0)))
    sq, alxm, g = st.poi_sq, st.poi_alxm, st.poi_g
    while True:
        while True:
            y = _f32(math.tan(math.pi * gen()))
            em = _f32(_f32(sq * y) + xm)
            if not em < 0.0:
                break
        em = _f32(_c_floor(em))
        arg = _f32(_f32(_f32(em * alxm) - gammln(_f32(em + 1.0))) - g)
        t = _f32(0.9 * (1.0 + _f32(y * y)) * _c_exp(arg))
        if not gen() > t:
            break
    return em


@functools.lru_cache(maxsize=1)
def _libm_powf() -> Callable[[float, float], float] | None:
    """The platform C library's single-precision ``powf``, loaded lazily (None if unavailable)."""
    for name in (ctypes.util.find_library("m"), "libm.so.6"):
        if not name:
            continue
        try:
            lib = ctypes.CDLL(name)
            fn = lib.powf
        except (OSError, AttributeError):
            continue
        fn.restype = ctypes.c_float
        fn.argtypes = [ctypes.c_float, ctypes.c_float]
        return fn
    return None


def powf(x: float, y: float) -> float:
    """Single-precision power as the compiled C program gets it (float32 value as a float).

    Uses the C library's ``powf`` when it can be loaded (bit-identical to the C program on the same
    platform), else the correctly rounded float32 of the double ``pow`` (differs by one ulp in
    rare cases).
    """
    x32, y32 = _f32(x), _f32(y)
    fn = _libm_powf()
    if fn is not None:
        return float(fn(x32, y32))
    return _f32(math.pow(x32, y32))


def mosaic_rotation_draws(gen: Ran1) -> tuple[np.ndarray, float]:
    """The random part of ``mosaic_rotation_umat``: rotation axis and cap fraction (3 draws).

    Returns:
        axis: unit vector (3,) float64 — uniformly distributed on the sphere;
        cap_fraction: ``powf(1 - r3**2, 1/3)`` in [0, 1] (a float32 value): the rotation angle is
            ``mosaicity * cap_fraction`` computed in float32 (see :func:`mosaic_angle`).
    """
    r1 = 2.0 * gen() - 1.0
    r2 = 2.0 * gen() - 1.0
    r3 = 2.0 * gen() - 1.0
    xyrad = math.sqrt(1.0 - r2 * r2)
    axis = np.array(
        [xyrad * math.sin(math.pi * r1), xyrad * math.cos(math.pi * r1), r2], dtype=np.float64
    )
    cap_fraction = powf(1.0 - r3 * r3, _ONE_THIRD_F32)
    return axis, cap_fraction


def mosaic_angle(mosaicity: float, cap_fraction: float) -> float:
    """Rotation angle (radians) of one domain: ``float(mosaicity) * cap_fraction`` in float32.

    ``mosaicity`` is the C ``float`` parameter (radians for mosaic domains; the C program passes
    90.0 for ``-misset random``).
    """
    return _f32(_f32(mosaicity) * _f32(cap_fraction))


def rotation_matrix_from_axis_angle(axis: np.ndarray, angle: float) -> np.ndarray:
    """Rotation by ``angle`` (radians, right-handed) about the unit vector ``axis``, (3, 3) float64.

    Element formulas follow the C routine (Rodrigues' formula written out term by term), so the
    result is bit-identical to the C ``umat`` for the same axis and angle.
    """
    v1, v2, v3 = (float(a) for a in np.asarray(axis, dtype=np.float64).reshape(3))
    c = math.cos(angle)
    one_minus_c = 1.0 - c
    s = math.sin(angle)
    a_v1 = one_minus_c * v1
    a_v1v2 = a_v1 * v2
    a_v1v3 = a_v1 * v3
    a_v2v3 = one_minus_c * v2 * v3
    s_v1, s_v2, s_v3 = s * v1, s * v2, s * v3
    return np.array(
        [
            [c + one_minus_c * (v1 * v1), a_v1v2 - s_v3, a_v1v3 + s_v2],
            [a_v1v2 + s_v3, c + one_minus_c * (v2 * v2), a_v2v3 - s_v1],
            [a_v1v3 - s_v2, a_v2v3 + s_v1, c + one_minus_c * (v3 * v3)],
        ],
        dtype=np.float64,
    )


def mosaic_rotation_umat(mosaicity: float, gen: Ran1) -> np.ndarray:
    """Random rotation on a spherical cap of angular size ``mosaicity`` (radians), as the C does.

    ``mosaicity`` is cast to float32 (the C parameter is a ``float``).  Returns the 9 elements of
    the rotation matrix in row-major order (uxx, uxy, uxz, uyx, …), float64.
    """
    axis, cap = mosaic_rotation_draws(gen)
    return rotation_matrix_from_axis_angle(axis, mosaic_angle(mosaicity, cap)).reshape(9)


def _unit_rows(u: np.ndarray) -> np.ndarray:
    """Divide each row by its length where the length is positive (C ``if(m>0)`` normalisation)."""
    out = u.copy()
    for i in range(3):
        m = math.sqrt(out[i, 0] * out[i, 0] + out[i, 1] * out[i, 1] + out[i, 2] * out[i, 2])
        if m > 0:
            out[i] /= m
    return out


def _cross_unit(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a × b normalised when non-zero, with the component formulas of the C routine."""
    c = np.array(
        [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]
    )
    m = math.sqrt(c[0] * c[0] + c[1] * c[1] + c[2] * c[2])
    return c / m if m > 0 else c


def umat2misset(umat: np.ndarray) -> tuple[float, float, float]:
    """Missetting angles (rotx, roty, rotz) in radians of a rotation matrix, as the C routine.

    ``umat`` may be (9,) row-major or (3, 3).  Rows are normalised, an all-zero row is replaced by
    the cross product of the other two (twice, as the C does), then
    rotx = atan2(uzy, uzz), roty = atan2(-uzx, hypot(uzy, uzz)), rotz = atan2(uyx, uxx), with the
    gimbal-lock branch (uzx² ≥ 1) giving (π, π/2, atan2(uxy, -uyy)).
    """
    u = np.asarray(umat, dtype=np.float64).reshape(3, 3).copy()
    mx, my, mz = (
        math.sqrt(u[i, 0] * u[i, 0] + u[i, 1] * u[i, 1] + u[i, 2] * u[i, 2]) for i in range(3)
    )
    u = _unit_rows(u)
    # degenerate inputs: keep the one good row and put unit axes in the missing ones
    if mx >= 0 and my <= 0 and mz <= 0:
        u[1] = (0.0, 1.0, 0.0)
        u[2] = (0.0, 0.0, 1.0)
    if mx <= 0 and my >= 0 and mz <= 0:
        u[0] = (1.0, 0.0, 0.0)
        u[2] = (0.0, 0.0, 1.0)
    if mx <= 0 and my <= 0 and mz >= 0:
        u[0] = (1.0, 0.0, 0.0)
        u[1] = (0.0, 1.0, 0.0)
    for _ in range(2):
        xcy = _cross_unit(u[0], u[1])
        ycz = _cross_unit(u[1], u[2])
        zcx = _cross_unit(u[2], u[0])
        if mx <= 0:
            u[0] = ycz
        if my <= 0:
            u[1] = zcx
        if mz <= 0:
            u[2] = xcy
    u = _unit_rows(u)
    uxx, uxy = u[0, 0], u[0, 1]
    uyx, uyy = u[1, 0], u[1, 1]
    uzx, uzy, uzz = u[2, 0], u[2, 1], u[2, 2]
    if uzx * uzx < 1.0:
        rotx = math.atan2(uzy, uzz)
        roty = math.atan2(-uzx, math.sqrt(uzy * uzy + uzz * uzz))
        rotz = math.atan2(uyx, uxx)
    else:
        rotx = math.atan2(1, 1) * 4
        roty = math.atan2(1, 1) * 2
        rotz = math.atan2(uxy, -uyy)
    return float(rotx), float(roty), float(rotz)


def mosaic_domain_draws(
    spread_rad: float,
    domains: int,
    seed: int = DEFAULT_MOSAIC_SEED,
    statics: CStatics | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Axes and cap fractions of the mosaic domains, following the C domain loop.

    Every domain consumes 3 draws from the ``mosaic_seed`` stream; domain 0 is then forced to the
    identity, reported here as cap fraction 0.  Domain ``d``'s rotation is
    ``rotation_matrix_from_axis_angle(axes[d], mosaic_angle(spread_rad, cap_fraction[d]))``
    (use :func:`mosaic_domain_umats` for the matrices directly).

    Args:
        spread_rad: mosaic spread in radians (the float32 cast happens in :func:`mosaic_angle`;
            it does not influence the draws).
        domains: number of domains (≥ 1).
        seed: ``mosaic_seed`` as the C variable holds it (``-mosaic_seed N`` → ``-N``).
        statics: shared C static state (see module docstring); fresh if None.

    Returns:
        axes (D, 3) float64 unit vectors and cap_fraction (D,) float64 in [0, 1].
    """
    del spread_rad  # the draws do not depend on it; kept for a self-describing call site
    gen = Ran1(seed, statics)
    n = int(domains)
    axes = np.zeros((n, 3), dtype=np.float64)
    caps = np.zeros((n,), dtype=np.float64)
    for d in range(n):
        axis, cap = mosaic_rotation_draws(gen)
        axes[d] = axis
        caps[d] = 0.0 if d == 0 else cap
    return axes, caps


def mosaic_domain_umats(
    spread_rad: float,
    domains: int,
    seed: int = DEFAULT_MOSAIC_SEED,
    statics: CStatics | None = None,
) -> np.ndarray:
    """The C program's mosaic rotation matrices, (D, 3, 3) float64, domain 0 the identity."""
    axes, caps = mosaic_domain_draws(spread_rad, domains, seed, statics)
    out = np.empty((len(caps), 3, 3), dtype=np.float64)
    for d in range(len(caps)):
        if d == 0:
            out[d] = np.eye(3)
        else:
            out[d] = rotation_matrix_from_axis_angle(axes[d], mosaic_angle(spread_rad, caps[d]))
    return out


def random_misset_angles(seed: int, statics: CStatics | None = None) -> np.ndarray:
    """Missetting angles (rotx, roty, rotz) in radians for ``-misset random``.

    The C program calls the mosaic routine with a cap of 90.0 — radians, although the routine
    is written for a mosaic spread — i.e. the rotation angle is 90·cap_fraction rad, then converts
    the matrix with :func:`umat2misset`.  ``seed`` is ``misset_seed`` as the C variable holds it
    (``-misset_seed N`` → ``-N``; without that flag the C uses the time-based default of ``-seed``'s
    initial value, so such runs are not reproducible).
    """
    gen = Ran1(seed, statics)
    umat = mosaic_rotation_umat(90.0, gen)
    return np.array(umat2misset(umat), dtype=np.float64)


def replay_statics_before_noise(
    mosaic_seed: int = DEFAULT_MOSAIC_SEED,
    mosaic_domains: int = 1,
    misset_seed: int | None = None,
) -> CStatics:
    """The C static state at the start of the noise image, replaying the earlier draws.

    Only needed when the noise seed variable is > 0 (a negative ``-seed`` on the command line);
    otherwise the noise stream reloads the table and does not depend on this state.

    Args:
        mosaic_seed: ``mosaic_seed`` as the C variable holds it.
        mosaic_domains: number of domains drawn (the C draws at least one).
        misset_seed: ``misset_seed`` if ``-misset random`` was in effect, else None.
    """
    statics = CStatics()
    if misset_seed is not None:
        random_misset_angles(misset_seed, statics)
    gen = Ran1(mosaic_seed, statics)
    for _ in range(max(1, int(mosaic_domains))):
        mosaic_rotation_draws(gen)
    return statics
