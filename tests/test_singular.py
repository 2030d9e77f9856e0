"""Values and derivatives at the removable singular points (issue 4).

The points: integer Miller indices (sincg's 0/0), sinc3 at 0, the direct-beam
pixel (2θ = 0: polarisation azimuth undefined), N = 1, φ = 0, zero mosaic
spread, misset 0 (rotation matrices at the identity), zero sensor thickness;
plus the zero vector for the unit-vector helpers.  Each is checked first on the
elementary function (value, first and second derivatives against their
analytic limits) and then through ``simulate`` on one small detector with a
pixel centred on the direct beam, where the derivatives are also compared with
central differences.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from nanobragg_jax import physics  # noqa: E402
from nanobragg_jax.experiment import from_cli_args  # noqa: E402
from nanobragg_jax.geometry import detector as det_geo  # noqa: E402
from nanobragg_jax.geometry import vectors as V  # noqa: E402
from nanobragg_jax.safe import clip_value_keep_gradient, safe_divide, safe_norm, safe_sqrt  # noqa: E402
from nanobragg_jax.simulate import simulate  # noqa: E402


def finite(tree) -> bool:
    return all(bool(np.all(np.isfinite(np.asarray(x)))) for x in jax.tree_util.tree_leaves(tree))


# ---------------------------------------------------------------------------
# elementary functions

_sincg_grad = jax.jit(jax.grad(lambda h, n: physics.sincg(jnp.pi * h, n), argnums=(0, 1)))
_sincg_hessian = jax.jit(jax.jacfwd(jax.grad(lambda h, n: physics.sincg(jnp.pi * h, n), argnums=(0, 1)),
                                    argnums=(0, 1)))


@pytest.mark.parametrize("N", [1.0, 2.0, 5.0, 7.5])
@pytest.mark.parametrize("k", [0, 1, -3, 10])
def test_sincg_at_integer_h(N, k):
    """sincg(πh, N) at h = k: value ±N, ∂/∂h = 0, ∂/∂N = ±1, ∂²/∂h² = ∓π²N(N²−1)/3."""
    f = lambda h, n: physics.sincg(jnp.pi * h, n)  # noqa: E731
    h, n = jnp.float64(k), jnp.float64(N)
    sign = (-1.0) ** (k * (round(N) - 1))  # the periodic continuation's sign at h = k
    assert float(f(h, n)) == pytest.approx(sign * N, rel=1e-14)
    gh, gn = _sincg_grad(h, n)
    assert float(gh) == pytest.approx(0.0, abs=1e-9 * N)
    assert float(gn) == pytest.approx(sign, rel=1e-12)
    hess = _sincg_hessian(h, n)
    assert finite(hess)
    assert float(hess[0][0]) == pytest.approx(-sign * math.pi**2 * N * (N * N - 1) / 3, rel=1e-9, abs=1e-9)


def test_sincg_matches_c_formula_and_is_smooth_across_the_series_threshold():
    """Away from the peaks sincg is sin(Nx)/sin(x); its derivatives are continuous where the
    evaluation switches to the series (|πδ|·N = 1e-3)."""
    N = 6.0
    x = jnp.linspace(0.1, 9.0, 50)
    np.testing.assert_allclose(physics.sincg(x, N), np.sin(N * np.asarray(x)) / np.sin(np.asarray(x)),
                               rtol=1e-11)
    g = jax.vmap(jax.grad(physics.sincg))
    edge = physics._GRATING_SERIES / N
    u = jnp.asarray([edge * (1 - 1e-9), edge * (1 + 1e-9)]) + 2 * jnp.pi
    vals, ders = physics.sincg(u, N), g(u, jnp.full(2, N))
    assert abs(float(vals[1] - vals[0])) < 1e-10
    assert abs(float(ders[1] - ders[0])) < 1e-8 * abs(float(ders[0]))


def test_lattice_factor_square_at_integer_hkl():
    hkl = jnp.asarray([[0.0, 0.0, 0.0], [2.0, -1.0, 3.0]])
    N = jnp.asarray([5.0, 1.0, 3.0])
    F = physics.lattice_factor_square(hkl, N)
    np.testing.assert_allclose(np.abs(F), [15.0, 15.0], rtol=1e-14)
    s = lambda hkl, N: jnp.sum(physics.lattice_factor_square(hkl, N))  # noqa: E731
    g = jax.jit(jax.grad(s, argnums=(0, 1)))(hkl, N)
    H = jax.jit(jax.hessian(s, argnums=(0, 1)))(hkl, N)
    assert finite(g) and finite(H)
    np.testing.assert_allclose(g[0], 0.0, atol=1e-9)


def test_sinc3_at_zero():
    """sinc3(0) = 1, sinc3'(0) = 0, sinc3''(0) = −1/5; same through sinc3_of_sqr."""
    x = jnp.float64(0.0)
    assert float(physics.sinc3(x)) == 1.0
    assert float(jax.grad(physics.sinc3)(x)) == 0.0
    assert float(jax.grad(jax.grad(physics.sinc3))(x)) == pytest.approx(-0.2, rel=1e-12)
    assert float(jax.grad(physics.sinc3_of_sqr)(x)) == pytest.approx(-0.1, rel=1e-12)
    # continuous values and slopes across the series threshold x² = 1e-2
    xs = jnp.asarray([0.1 * (1 - 1e-9), 0.1 * (1 + 1e-9)])
    d = jax.vmap(jax.grad(physics.sinc3))(xs)
    assert abs(float(d[1] - d[0])) < 1e-8


def test_round_gauss_tophat_at_integer_hkl():
    hkl = jnp.asarray([[0.0, 0.0, 0.0], [1.0, 2.0, -1.0], [0.3, 0.1, -0.2]])
    recip = jnp.eye(3) * 0.01
    N = jnp.asarray([3.0, 4.0, 5.0])
    for shape in ("ROUND", "GAUSS", "TOPHAT"):
        s = lambda hkl, N, sh=shape: jnp.sum(physics.lattice_factor(sh, hkl, recip, N, 1.0))  # noqa: E731
        v = s(hkl, N)
        g = jax.jit(jax.grad(s, argnums=(0, 1)))(hkl, N)
        H = jax.jit(jax.hessian(s, argnums=(0, 1)))(hkl, N)
        assert finite(v) and finite(g) and finite(H), shape
        assert float(jnp.abs(g[1]).sum()) > 0, shape  # smooth (or piecewise constant) in N
        np.testing.assert_allclose(g[0][:2], 0.0, atol=1e-9, err_msg=shape)  # flat at the peak


def test_polarization_at_the_direct_beam():
    """Diffracted = incident (2θ = 0): factor 1 for every Kahn factor; derivatives finite."""
    inc = jnp.asarray([1.0, 0.0, 0.0])
    axis = jnp.asarray([0.0, 0.0, 1.0])
    f = lambda K, d: physics.polarization_factor(K, inc, d, axis)  # noqa: E731
    for K in (0.0, 0.5, 1.0):
        assert float(f(K, inc)) == pytest.approx(1.0, abs=1e-15)
        g = jax.grad(f, argnums=(0, 1))(jnp.float64(K), inc)
        H = jax.hessian(f, argnums=(0, 1))(jnp.float64(K), inc)
        assert finite(g) and finite(H)
    # near the axis the factor is smooth: no 1/2θ blow-up of the derivative
    d = V.unitize(jnp.asarray([1.0, 1e-9, 1e-9]))
    assert float(jnp.abs(jax.grad(f, argnums=1)(jnp.float64(0.9), d)).max()) < 10.0


def test_zero_vectors_and_safe_helpers():
    z = jnp.zeros(3)
    assert finite(jax.jacfwd(V.unitize)(z)) and finite(jax.jacrev(V.unitize)(z))
    assert float(safe_norm(z)) == 0.0 and finite(jax.grad(safe_norm)(z))
    assert float(jax.grad(safe_sqrt)(0.0)) == 0.0
    assert finite(jax.grad(lambda d: safe_divide(1.0, d))(0.0))
    # the value-only clip: value min(x, 1), derivative of x (also at the tie x = 1)
    assert float(clip_value_keep_gradient(1.5, 1.0)) == 1.0
    assert float(clip_value_keep_gradient(0.75, 1.0)) == 0.75
    assert float(jax.grad(lambda x: clip_value_keep_gradient(x * x, 1.0))(1.0)) == 2.0


def test_rotations_at_identity():
    """Misset 0 / φ = 0 / zero mosaic angle: the rotation is exactly the identity and its
    derivative is the generator."""
    v = jnp.asarray([0.3, -0.2, 0.9])
    J = jax.jacfwd(lambda a: V.rotate_xyz(v, a))(jnp.zeros(3))
    np.testing.assert_allclose(J, np.stack([np.cross(e, v) for e in np.eye(3)], axis=1), atol=1e-15)
    np.testing.assert_array_equal(V.rotate_xyz(v, jnp.zeros(3)), v)
    axis = jnp.asarray([0.0, 0.6, 0.8])
    np.testing.assert_array_equal(V.rotate_about_axis(v, axis, 0.0), v)
    dR = jax.jacfwd(lambda t: V.axis_angle_matrix(axis, t))(jnp.float64(0.0))
    np.testing.assert_allclose(dR @ v, np.cross(axis, v), atol=1e-15)


# ---------------------------------------------------------------------------
# through simulate: one small detector with a pixel centred on the direct beam

SINGULAR_ARGS = ("-cell 60 60 60 90 90 90 -default_F 100 -lambda 1 -N 5 -distance 60 -detpixels 15 "
                 "-pixel 1 -oversample 1 -mosaic 0.5 -mosaic_dom 3 -phi 0 -osc 0.2 -phisteps 2 "
                 "-detector_thick 50 -detector_abs 200 -detector_thicksteps 2 -polar 0.9")
# (field, index or None, finite-difference step)
SINGULAR_DIRS = [
    ("misset", 0, 1e-3), ("misset", 1, 1e-3), ("misset", 2, 1e-3), ("phi0", None, 1e-3),
    ("mosaic_spread", None, 1e-3), ("N", 0, 1e-3), ("N", 1, 1e-3), ("N", 2, 1e-3),
    ("beam_center", 0, 1e-3), ("kahn_factor", None, 1e-3), ("thickness", None, 1e-2),
]


@functools.lru_cache(maxsize=None)
def singular_problem():
    exp = from_cli_args(SINGULAR_ARGS.split())
    base = jax.tree_util.tree_map(jnp.asarray, exp.params)
    units = []
    for field, index, _ in SINGULAR_DIRS:
        e = np.zeros(np.shape(getattr(base, field)))
        if index is None:
            e = np.ones_like(e)
        else:
            e[index] = 1.0
        units.append((field, e))
    w = jnp.asarray(np.random.default_rng(5).uniform(0.5, 1.5, (15, 15)))

    def put(params, theta):
        changes = {}
        for k, (field, e) in enumerate(units):
            changes[field] = changes.get(field, jnp.asarray(getattr(params, field))) + theta[k] * e
        return params.replace(**changes)

    def f(params, theta):
        return jnp.sum(simulate(exp.setup, put(params, theta)) * w)

    return exp.setup, base, f


def test_a_pixel_is_centred_on_the_direct_beam():
    setup, params, _ = singular_problem()
    frame = det_geo.detector_frame(setup, params)
    # MOSFLM's default beam centre (detsize + pixel)/2 plus its half-pixel shift puts the
    # beam on the centre of pixel (8, 8) of a 15-pixel detector.
    pos = det_geo.subpixel_positions(setup, frame, jnp.asarray([8]), jnp.asarray([8]), 0.0)
    d = np.asarray(pos).reshape(-1, 3)[0]
    two_theta = math.atan2(np.linalg.norm(np.cross(d, np.asarray(frame.beam))), d @ np.asarray(frame.beam))
    assert two_theta < 1e-12
    # default state: misset 0, φ0 = 0, zero mosaic spread is set below
    assert np.all(np.asarray(params.misset) == 0) and float(params.phi0) == 0.0


VARIANTS = {
    # misset 0, φ0 = 0, zero spread (the domains' axes and caps stay: the spread scales them)
    "identity_rotations_zero_spread": dict(mosaic_spread=0.0),
    # N = 1 along a (sin x/sin x ≡ 1).  Not on every axis: with N = 1 everywhere F_latt ≡ 1
    # and the cell, misset, φ and λ derivatives are exactly 0, as they should be.
    "N_equal_1": dict(mosaic_spread=0.0, N=np.array([1.0, 4.0, 3.0])),
    "N_non_integer": dict(mosaic_spread=0.0, N=np.array([2.5, 3.7, 1.2])),
    "zero_thickness": dict(thickness=0.0),
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_simulate_finite_and_matches_differences_at_singular_points(variant):
    setup, base, f = singular_problem()
    # the base's dtype (a weakly typed 0.0 would be a new program to compile for each variant)
    params = base.replace(**{k: jnp.asarray(v, dtype=getattr(base, k).dtype) for k, v in VARIANTS[variant].items()})
    n = len(SINGULAR_DIRS)
    theta0 = jnp.zeros(n)
    image = simulate(setup, params)
    assert finite(image)
    g = np.asarray(jax.grad(f, argnums=1)(params, theta0))
    assert finite(g)
    steps = np.array([s for _, _, s in SINGULAR_DIRS])
    eye = np.eye(n)
    if variant == "zero_thickness":
        # no sensor, no signal: everything is exactly 0 except the thickness derivative
        assert float(jnp.sum(image)) == 0.0
        k = [d[0] for d in SINGULAR_DIRS].index("thickness")
        fd = (float(f(params, theta0 + steps[k] * eye[k])) - float(f(params, theta0 - steps[k] * eye[k]))) / (2 * steps[k])
        assert g[k] > 0 and g[k] == pytest.approx(fd, rel=1e-4)
        return
    assert float(jnp.sum(image)) > 0
    assert float(image[8, 8]) > 0  # the direct-beam pixel (h = k = l = 0) is lit

    def cd(scale):
        return np.array([(float(f(params, theta0 + scale * steps[k] * eye[k]))
                          - float(f(params, theta0 - scale * steps[k] * eye[k]))) / (2 * scale * steps[k])
                         for k in range(n)])

    fd = (4 * cd(0.5) - cd(1.0)) / 3
    labels = [f"{fld}[{i}]" for fld, i, _ in SINGULAR_DIRS]
    bad = [f"{lab}: grad={a:.9e} fd={b:.9e}" for lab, a, b in zip(labels, g, fd)
           if not abs(a - b) <= 1e-5 * abs(b) + 1e-9 * np.abs(fd).max()]
    assert not bad, "\n".join(bad)
    # none of the derivatives vanishes (N_equal_1 included: the lattice factor grows with N)
    assert np.all(g != 0), [lab for lab, x in zip(labels, g) if x == 0]


@pytest.mark.slow
def test_higher_order_at_the_identity():
    """Second derivatives (forward over reverse) are finite at misset 0, φ0 = 0, zero spread."""
    setup, base, f = singular_problem()
    params = base.replace(mosaic_spread=jnp.asarray(0.0, dtype=base.mosaic_spread.dtype))
    sel = jnp.asarray([0, 1, 2, 3, 4])  # misset x, y, z; φ0; mosaic spread
    n = len(SINGULAR_DIRS)

    def f_sel(u):
        return f(params, jnp.zeros(n).at[sel].set(u * 1e-3))

    H = jax.jacfwd(jax.grad(f_sel))(jnp.zeros(5))
    assert finite(H) and float(jnp.abs(H).max()) > 0


# ---------------------------------------------------------------------------
# other kernel paths: finite values and derivatives through the direct-beam pixel

OTHER_PATHS = {
    "dmin": "-dmin 6",  # discontinuous cut: values and derivatives finite, not compared
    "round_xtal": "-round_xtal",  # sinc3 at 0 on the direct beam
    "gauss_xtal": "-gauss_xtal",
    "tophat_spots": "-tophat_spots",  # piecewise constant: zero h-gradient inside is fine
    "curved_detector": "-curved_det",
    "point_pixel": "-point_pixel",
    "oversample_flags": "-oversample_omega -oversample_polar -oversample_thick "
                        "-detector_thick 50 -detector_thicksteps 2",
    "nopolar": "-nopolar",
}
FAST_PATHS = ()  # all in the slow tier: sinc3 at 0 is checked above on the function itself


@pytest.mark.parametrize("path", [pytest.param(k, marks=() if k in FAST_PATHS else pytest.mark.slow)
                                  for k in OTHER_PATHS])
def test_other_kernel_paths_are_finite_at_the_direct_beam(path):
    # the path's flags first: the C program reads -curved_det only when another word follows
    args = (OTHER_PATHS[path] + " -cell 60 60 60 90 90 90 -default_F 100 -lambda 1 -N 5 "
            "-distance 60 -detpixels 15 -pixel 1 -polar 0.9 -oversample 1")
    exp = from_cli_args(args.split())
    if path == "curved_detector":
        assert exp.setup.curved_detector
    params = jax.tree_util.tree_map(jnp.asarray, exp.params)
    fields = ("N", "distance", "wavelength", "kahn_factor", "beam_center")

    def f(sub):
        return jnp.sum(simulate(exp.setup, params.replace(**sub)))

    sub = {k: getattr(params, k) for k in fields}
    image = simulate(exp.setup, params)
    assert finite(image) and float(jnp.sum(image)) > 0 and float(image[8, 8]) > 0
    g = jax.grad(f)(sub)
    assert finite(g)
    assert float(jnp.abs(g["distance"])) > 0
