"""Gradients of the image with respect to every continuous parameter (issue 4).

For each geometry the scalar under test is S(θ) = Σ image(θ)·w with fixed random
weights w (so no derivative can vanish by symmetry), where θ are offsets added
to chosen entries of ``Params`` (one entry, or one direction of a large array
such as ``F_grid``).  Each component of ∂S/∂θ is computed

* in reverse mode (``jax.grad``),
* in forward mode (one ``jax.jvp`` per component),
* by Richardson-extrapolated central differences (steps h and h/2, error
  O(h⁴)), with steps in natural units per parameter,

and the three must agree to 1e-5 relative.  Every image sum and every gradient
component is asserted to be non-zero, so the checks cannot pass vacuously.
``jax.test_util.check_grads`` (order 1, fwd + rev) is run on the same function
(it re-uses the compiled derivatives, so it is cheap); order 2 is in the slow
tier, and second derivatives are checked in the fast tier by the Hessian test.

Geometries (together they cover every parameter the issue lists):
  mosflm_cubic        MOSFLM, beam pivot, cubic cell with misset.
  xds_triclinic       XDS, sample pivot, triclinic cell, 2θ, close distance,
                      an F(hkl) grid.
  mosaic_phi_disp_abs mosaic spread + φ steps + dispersion + divergence +
                      sensor absorption (2 layers) + oversample 2 + water +
                      Kahn factor.
  matrix_interp_gauss orientation from a reciprocal matrix (-mat), tricubic
                      interpolation of F(hkl), Gaussian spots.

Runs in float64 (x64 is switched on for this test module only).
"""

from __future__ import annotations

import dataclasses
import functools

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from jax.test_util import check_grads  # noqa: E402

from nanobragg_jax.experiment import from_cli_args  # noqa: E402
from nanobragg_jax.geometry import crystal as crystal_geo  # noqa: E402
from nanobragg_jax.simulate import simulate  # noqa: E402

# Finite-difference step per field, in the field's user units.
STEP = {
    "cell": 1e-3,  # Å or deg
    "misset": 1e-3,  # deg
    "recip_matrix": 1e-7,  # Å⁻¹ (entries ~1e-2)
    "N": 1e-3,
    "phi0": 1e-3, "phistep": 1e-3, "mosaic_spread": 1e-3,  # deg
    "distance": 1e-3, "close_distance": 1e-3,  # mm
    "beam_center": 1e-3, "close_center": 1e-3,  # mm
    "pixel_size": 1e-6,  # mm
    "detector_rotation": 1e-3, "twotheta": 1e-3,  # deg
    "wavelength": 1e-6,  # Å
    "dispersion": 1e-3,  # percent
    "hdivrange": 1e-3, "vdivrange": 1e-3,  # mrad
    "kahn_factor": 1e-3,
    "fluence": 1e25,  # photons/m² (fluence ~1e29)
    "default_F": 1e-2, "F_grid": 1e-2,
    "water_size": 1e-2, "thickness": 1e-2, "attenuation_depth": 1e-2,  # µm
}


def _one_hot(shape, index):
    e = np.zeros(shape)
    e[index] = 1.0
    return e


@dataclasses.dataclass(frozen=True)
class Direction:
    """One differentiable coordinate: ``field += t·unit`` (unit: array of the field's shape)."""

    label: str
    field: str
    unit: np.ndarray
    step: float


def directions(params, spec) -> list[Direction]:
    """Expand ("cell", [0, 1]) / ("distance", None) / ("F_grid", "random") into Directions."""
    out = []
    for field, which in spec:
        shape = np.shape(getattr(params, field))
        if which is None:
            out.append(Direction(field, field, np.ones(shape), STEP[field]))
        elif isinstance(which, str):  # a fixed random direction through a large array
            rng = np.random.default_rng(7)
            out.append(Direction(f"{field}·v", field, rng.normal(size=shape), STEP[field]))
        else:
            for i in which:
                idx = np.unravel_index(i, shape) if len(shape) > 1 else (i,)
                out.append(Direction(f"{field}{list(idx)}", field, _one_hot(shape, idx), STEP[field]))
    return out


def make_put(params, dirs):
    """θ (len(dirs),) → Params with each field shifted along its directions."""
    by_field: dict[str, list[tuple[int, np.ndarray]]] = {}
    for k, d in enumerate(dirs):
        by_field.setdefault(d.field, []).append((k, d.unit))

    def put(theta):
        changes = {}
        for field, items in by_field.items():
            value = jnp.asarray(getattr(params, field))
            for k, unit in items:
                value = value + theta[k] * unit
            changes[field] = value
        return params.replace(**changes)

    return put


# ---------------------------------------------------------------------------
# geometries

def _mosflm_cubic():
    # test_pixels.py renders these flags at 33 pixels and differentiates the same fields: kept
    # equal, the two files share the compiled image and gradient
    exp = from_cli_args(
        "-cell 100 100 100 90 90 90 -default_F 100 -lambda 1 -N 5 -distance 100 "
        "-detpixels 33 -pixel 0.5 -oversample 1 -misset 3 5 7".split())
    spec = [("cell", range(6)), ("misset", range(3)), ("N", range(3)), ("distance", None),
            ("beam_center", range(2)), ("pixel_size", None), ("detector_rotation", range(3)),
            ("twotheta", None), ("wavelength", None), ("kahn_factor", None), ("fluence", None),
            ("default_F", None), ("phi0", None)]
    return exp.setup, exp.params, spec


def _random_F_grid(setup_hkl_min, setup_hkl_max, seed=3):
    shape = tuple(hi - lo + 1 for lo, hi in zip(setup_hkl_min, setup_hkl_max))
    rng = np.random.default_rng(seed)
    return rng.uniform(20.0, 200.0, shape)


def _xds_triclinic():
    exp = from_cli_args(
        "-xds -cell 70 80 90 85 95 105 -default_F 100 -lambda 1.2 -N 4 -close_distance 80 "
        "-twotheta 10 -misset 5 10 15 -ORGX 15 -ORGY 22 -detpixels 40 -pixel 0.8 "
        "-oversample 1".split())
    lo, hi = (-12, -12, -12), (12, 12, 12)
    setup = dataclasses.replace(exp.setup, has_hkl=True, hkl_min=lo, hkl_max=hi)
    params = exp.params.replace(F_grid=_random_F_grid(lo, hi))
    spec = [("cell", range(6)), ("misset", range(3)), ("N", range(3)), ("close_distance", None),
            ("close_center", range(2)), ("pixel_size", None), ("detector_rotation", range(3)),
            ("twotheta", None), ("wavelength", None), ("kahn_factor", None), ("fluence", None),
            ("F_grid", "random")]
    return setup, params, spec


def _mosaic_phi_disp_abs():
    exp = from_cli_args(
        "-cell 60 60 60 90 90 90 -default_F 100 -lambda 1 -N 4 -distance 80 -detpixels 24 "
        "-pixel 1 -mosaic 0.5 -mosaic_dom 3 -phi 1 -osc 0.5 -phisteps 2 -dispersion 1 "
        "-dispsteps 2 -divergence 0.2 -divsteps 2 -detector_thick 100 -detector_abs 300 "
        "-detector_thicksteps 2 -oversample 2 -polar 0.9 -water 0.3 -misset 2 3 4".split())
    spec = [("cell", [0, 4]), ("misset", [1]), ("distance", None), ("mosaic_spread", None),
            ("phi0", None), ("phistep", None), ("wavelength", None), ("dispersion", None),
            ("hdivrange", None), ("vdivrange", None), ("thickness", None),
            ("attenuation_depth", None), ("water_size", None), ("fluence", None)]
    return exp.setup, exp.params, spec


def _matrix_interp_gauss():
    exp = from_cli_args(
        "-cell 50 60 70 80 95 100 -default_F 100 -lambda 1.5 -N 2 -distance 60 -detpixels 24 "
        "-pixel 1 -oversample 1 -gauss_xtal".split())
    p = jax.tree_util.tree_map(jnp.asarray, exp.params)
    with jax.enable_x64(True):
        recip = crystal_geo.lattice(exp.setup, p).reciprocal  # rows a*, b*, c* (Å⁻¹)
    lo, hi = (-10, -10, -10), (10, 10, 10)
    setup = dataclasses.replace(exp.setup, orientation="matrix", has_hkl=True, interpolate=True,
                                hkl_min=lo, hkl_max=hi)
    params = exp.params.replace(recip_matrix=np.asarray(recip).T, F_grid=_random_F_grid(lo, hi, 5),
                                misset=np.array([4.0, -3.0, 2.0]))
    spec = [("recip_matrix", range(9)), ("misset", range(3)), ("F_grid", "random")]
    return setup, params, spec


GEOMETRIES = {
    "mosflm_cubic": _mosflm_cubic,
    "xds_triclinic": _xds_triclinic,
    "mosaic_phi_disp_abs": _mosaic_phi_disp_abs,
    "matrix_interp_gauss": _matrix_interp_gauss,
}


@dataclasses.dataclass
class Derivatives:
    setup: object
    params: object
    dirs: list
    put: object  # θ → Params
    f: object  # θ → Σ image·w
    theta0: jnp.ndarray
    image_sum: float
    rev: np.ndarray
    fwd: np.ndarray
    fd: np.ndarray
    fd_h: np.ndarray  # plain central difference at step h (truncation estimate)


@functools.lru_cache(maxsize=None)
def derivatives(name: str) -> Derivatives:
    setup, params, spec = GEOMETRIES[name]()
    params = jax.tree_util.tree_map(jnp.asarray, params)
    dirs = directions(params, spec)
    put = make_put(params, dirs)
    image = simulate(setup, params)
    w = jnp.asarray(np.random.default_rng(11).uniform(0.5, 1.5, image.shape))

    def f(theta):
        return jnp.sum(simulate(setup, put(theta)) * w)

    n = len(dirs)
    theta0 = jnp.zeros(n)
    rev = np.asarray(jax.grad(f)(theta0))
    eye = np.eye(n)
    fwd = np.array([float(jax.jvp(f, (theta0,), (jnp.asarray(eye[k]),))[1]) for k in range(n)])
    steps = np.array([d.step for d in dirs])

    def cd(scale):
        return np.array([(float(f(theta0 + scale * steps[k] * eye[k]))
                          - float(f(theta0 - scale * steps[k] * eye[k]))) / (2 * scale * steps[k])
                         for k in range(n)])

    d_h, d_h2 = cd(1.0), cd(0.5)
    fd = (4.0 * d_h2 - d_h) / 3.0
    return Derivatives(setup, params, dirs, put, f, theta0, float(jnp.sum(image)), rev, fwd, fd, d_h)


# mosaic_phi_disp_abs is the costliest gradient to compile (~55 s cold): slow tier.  The same
# parameters (mosaic spread and domains, φ steps, dispersion, divergence, sensor layers) are
# checked against central differences in the default tier by tests/test_model.py's
# test_gradient_of_every_float_leaf_matches_central_differences.
DEFAULT_TIER = [n if n != "mosaic_phi_disp_abs" else pytest.param(n, marks=pytest.mark.slow)
                for n in GEOMETRIES]


@pytest.mark.parametrize("name", DEFAULT_TIER)
def test_gradients_match_central_differences(name):
    d = derivatives(name)
    assert d.image_sum > 0.0
    labels = [x.label for x in d.dirs]
    assert np.all(np.isfinite(d.rev)) and np.all(np.isfinite(d.fwd))
    zero = [lab for lab, g in zip(labels, d.rev) if g == 0.0]
    assert not zero, f"zero gradient for {zero}"
    bad = []
    for lab, r, fw, fd in zip(labels, d.rev, d.fwd, d.fd):
        if not (abs(r - fd) <= 1e-5 * abs(fd) and abs(fw - r) <= 1e-9 * abs(r)):
            bad.append(f"{lab}: rev={r:.9e} fwd={fw:.9e} fd={fd:.9e}")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("name", DEFAULT_TIER)
def test_check_grads_first_order(name):
    """jax.test_util.check_grads, fwd and rev, in step units (eps = half a step)."""
    d = derivatives(name)
    steps = jnp.asarray([x.step for x in d.dirs])
    check_grads(lambda u: d.f(u * steps), (jnp.zeros(len(d.dirs)),), order=1,
                modes=("fwd", "rev"), eps=0.25, atol=1e-8, rtol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mosflm_cubic", "xds_triclinic"])
def test_check_grads_second_order(name):
    """Order 2 (jvp∘jvp, vjp∘jvp, jvp∘vjp, vjp∘vjp) on the smooth parameters."""
    d = derivatives(name)
    steps = jnp.asarray([x.step for x in d.dirs])
    check_grads(lambda u: d.f(u * steps), (jnp.zeros(len(d.dirs)),), order=2,
                modes=("fwd", "rev"), eps=0.5, atol=1e-8, rtol=2e-3)


def test_every_listed_parameter_is_covered():
    """The issue's list of continuous quantities, each differentiated in some geometry."""
    required = {
        "cell", "misset", "recip_matrix", "phi0", "phistep", "mosaic_spread", "N", "distance",
        "close_distance", "beam_center", "close_center", "pixel_size", "detector_rotation",
        "twotheta", "wavelength", "dispersion", "hdivrange", "vdivrange", "kahn_factor", "fluence",
        "default_F", "F_grid", "water_size", "thickness", "attenuation_depth",
    }
    covered = set()
    for make in GEOMETRIES.values():
        covered |= {field for field, _ in make()[2]}
    assert required <= covered, required - covered
    cell_entries = {i for make in GEOMETRIES.values() for f, w in make()[2] if f == "cell" for i in w}
    assert cell_entries == set(range(6))


# ---------------------------------------------------------------------------
# Hessian / Fisher information and image Jacobian

def _poisson_nll_problem():
    """Poisson NLL of a small MOSFLM image against noise-free 'observed' counts at the truth.

    θ: cell a (0.01 Å), cell α (0.01°), distance (0.01 mm), fluence (1 %) per unit.
    """
    exp = from_cli_args("-cell 100 100 100 90 90 90 -default_F 100 -lambda 1 -N 5 -distance 100 "
                        "-detpixels 16 -pixel 1 -oversample 1 -misset 3 5 7".split())
    params = jax.tree_util.tree_map(jnp.asarray, exp.params)
    dirs = directions(params, [("cell", [0, 3]), ("distance", None), ("fluence", None)])
    put = make_put(params, dirs)
    units = jnp.asarray([0.01, 0.01, 0.01, 0.01 * float(params.fluence)])
    background = 1.0
    observed = simulate(exp.setup, params) + background
    assert float(jnp.sum(observed - background)) > 0

    def nll(u):
        model = simulate(exp.setup, put(u * units)) + background
        return jnp.sum(model - observed * jnp.log(model))

    return nll, len(dirs)


@pytest.mark.slow  # 160 s on 2 shared cores: the slow tier (pytest -m slow)
def test_hessian_of_poisson_likelihood():
    """jax.jacfwd(jax.grad(nll)) — the observed information, which at the truth is the Fisher
    information Jᵀ diag(1/μ) J — is finite, symmetric, positive definite and matches second
    differences of the likelihood."""
    nll, n = _poisson_nll_problem()
    u0 = jnp.zeros(n)
    H = np.asarray(jax.jit(jax.jacfwd(jax.grad(nll)))(u0))
    assert np.all(np.isfinite(H)) and np.abs(H).max() > 0
    np.testing.assert_allclose(H, H.T, rtol=1e-9, atol=1e-12 * np.abs(H).max())
    assert np.all(np.linalg.eigvalsh(0.5 * (H + H.T)) > 0)
    f = jax.jit(nll)
    eye = np.eye(n)
    h = 0.05
    H_fd = np.empty((n, n))
    for k in range(n):
        for m in range(n):
            ek, em = h * eye[k], h * eye[m]
            H_fd[k, m] = (float(f(u0 + ek + em)) - float(f(u0 + ek - em)) - float(f(u0 - ek + em))
                          + float(f(u0 - ek - em))) / (4 * h * h)
    scale = np.sqrt(np.outer(np.diag(H), np.diag(H)))  # entry-wise scale (H is positive definite)
    assert np.all(np.abs(H - H_fd) <= 1e-4 * scale), (H, H_fd)


def test_jacfwd_of_image_small_detector():
    """jax.jacfwd of the whole image with respect to a few parameters."""
    exp = from_cli_args("-cell 100 100 100 90 90 90 -default_F 100 -lambda 1 -N 5 -distance 100 "
                        "-detpixels 12 -pixel 1.2 -oversample 1 -misset 3 5 7".split())
    params = jax.tree_util.tree_map(jnp.asarray, exp.params)
    dirs = directions(params, [("distance", None), ("misset", [2]), ("wavelength", None)])
    put = make_put(params, dirs)
    image = lambda t: simulate(exp.setup, put(t))  # noqa: E731
    t0 = jnp.zeros(len(dirs))
    J = np.asarray(jax.jacfwd(image)(t0))
    assert J.shape == (12, 12, 3)
    assert float(jnp.sum(image(t0))) > 0 and np.all(np.isfinite(J))
    for k, d in enumerate(dirs):
        e = np.eye(len(dirs))[k] * d.step
        fd = (np.asarray(image(t0 + e)) - np.asarray(image(t0 - e))) / (2 * d.step)
        assert np.abs(J[..., k]).max() > 0
        np.testing.assert_allclose(J[..., k], fd, rtol=1e-3, atol=1e-5 * np.abs(fd).max())


# ---------------------------------------------------------------------------
# the refinement example, smaller

def _load_refine_example(monkeypatch=None, hide_optax=False):
    import importlib.util
    import pathlib
    import sys

    path = pathlib.Path(__file__).resolve().parents[1] / "examples" / "refine.py"
    if hide_optax:
        monkeypatch.setitem(sys.modules, "optax", None)  # makes `import optax` raise ImportError
    name = "refine_example_no_optax" if hide_optax else "refine_example"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_refinement_example_recovers_parameters():
    """examples/refine.py on a 160×160 image (0.32 mm pixels): every parameter within the
    issue's targets (cell lengths < 0.1 %, angles and misset < 0.02°, distance < 0.05 mm,
    beam centre < 0.01 mm), and within 4σ of the Cramér–Rao bound."""
    pytest.importorskip("optax")
    refine = _load_refine_example()
    problem = refine.make_problem(size=160, pixel=0.32, seed=0)
    result = refine.refine(problem, adam_steps=100, fisher_steps=8, log=None)
    ok = refine.within_targets(problem, result)
    assert all(ok.values()), "\n" + refine.table(problem, result)
    assert np.all(np.abs(result.x - problem.x_true) < 4 * result.sigma), refine.table(problem, result)
    losses = [h[2] for h in result.history]
    assert losses[-1] < losses[0]


def test_refinement_example_explains_missing_optax(monkeypatch, capsys):
    refine = _load_refine_example(monkeypatch, hide_optax=True)
    assert refine.optax is None
    assert refine.main(["--size", "8", "--no-plots"]) == 2
    assert "pip install optax" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="needs optax"):
        refine.refine(None)
