"""Port configs → the core's ``Setup`` and ``Params`` (the one place compat does this).

Everything the C program decides from its flags — sampling counts, conventions and
their basis vectors, pivots, automatic oversampling, mosaic-domain draws, defaults —
comes from ``nanobragg_jax.from_cli_args``: the configs are written as the command line
a C user would type (``c_argv``).  Then every continuous quantity is put into the
``Params`` pytree straight from the config (``params.replace``), so a value that is a
JAX tracer stays one and ``jax.grad`` flows from the config field through ``Params``
into ``simulate``.  Physics lives only in the core.

Decisions need numbers.  Under ``jax.grad`` / ``jax.jacfwd`` / ``jax.vjp`` a traced
config value still has one (its primal); under ``jax.jit`` it does not, so a value
that only switches a feature on (a thickness, a mosaic spread, 2θ…) is then taken as
"given", and the automatic oversampling, which reads the cell, N, λ, distance and
pixel size, asks for ``DetectorConfig.oversample`` to be set (``DecisionError``).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from nanobragg_jax import Experiment, Params, Setup, from_cli_args

from ._values import as_array, concrete, concrete_float
from .config import (
    BeamConfig,
    CrystalConfig,
    CrystalShape,
    DetectorConfig,
    DetectorConvention,
    DetectorPivot,
)

# A cache path that can never exist, so the core never reads a stray Fdump.bin from
# the working directory (compat loads structure factors only through Crystal.load_hkl).
NO_FDUMP = os.path.join(os.devnull, "Fdump.bin")


class DecisionError(ValueError):
    """A config value that the C program decides on has no number (traced under jit)."""


class HKLTable(NamedTuple):
    """Structure factors as the port stores them: an unpadded grid and its bounds."""

    data: Any  # (h_range, k_range, l_range); F(h,k,l) = data[h-h_min, k-k_min, l-l_min]
    mins: tuple[int, int, int]
    maxs: tuple[int, int, int]
    count: int


class Built(NamedTuple):
    setup: Setup
    params: Params
    experiment: Experiment


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """Per-run overrides (``Simulator.run`` arguments)."""

    oversample: Optional[int] = None
    oversample_omega: Optional[bool] = None
    oversample_polar: Optional[bool] = None
    oversample_thick: Optional[bool] = None
    tile_rows: Optional[int] = None


def _fmt(x: float) -> str:
    return repr(float(x))


def _fmt3(v: Any) -> list[str]:
    arr = np.asarray(v, np.float64).reshape(3)
    return [_fmt(c) for c in arr]


def _value_or(x: Any, placeholder: float) -> float:
    v = concrete_float(x)
    return placeholder if v is None else v


def _given(x: Any, default: float = 0.0) -> bool:
    """Whether a flag-like value is "given": differs from the C default, or has no number."""
    v = concrete_float(x)
    return v is None or v != default


@functools.lru_cache(maxsize=128)
def _experiment(argv: tuple[str, ...]) -> Experiment:
    # The core evaluates some geometry on the host; keep it eager inside an outer jax.jit.
    with jax.ensure_compile_time_eval():
        return from_cli_args(list(argv))


def cell_from_reciprocal(astar, bstar, cstar) -> list[float]:
    """Cell constants (Å, deg) of the lattice whose reciprocal vectors (Å⁻¹) are given."""
    R = np.stack([np.asarray(v, np.float64).reshape(3) for v in (astar, bstar, cstar)])
    vstar = float(np.dot(R[0], np.cross(R[1], R[2])))
    if vstar == 0.0 or not np.isfinite(vstar):
        raise ValueError("compat: the MOSFLM reciprocal vectors are coplanar or not finite")
    a = np.cross(R[1], R[2]) / vstar
    b = np.cross(R[2], R[0]) / vstar
    c = np.cross(R[0], R[1]) / vstar

    def ang(u, v):
        return math.degrees(math.acos(float(np.dot(u, v) / np.linalg.norm(u) / np.linalg.norm(v))))

    return [float(np.linalg.norm(a)), float(np.linalg.norm(b)), float(np.linalg.norm(c)),
            ang(b, c), ang(c, a), ang(a, b)]


def c_argv(c: CrystalConfig, d: DetectorConfig, b: BeamConfig, *, run: RunOptions = RunOptions()) -> list[str]:
    """The C program's command line for these configs (values that are only traced get
    placeholders; ``build`` puts the real values into ``Params``)."""
    argv: list[str] = []
    conv = d.effective_convention()
    # -curved_det must not be the last word (the C program tests argc > i+1).
    if d.curved_detector:
        argv.append("-curved_det")
    argv += ["-detpixels_f", str(int(d.fpixels)), "-detpixels_s", str(int(d.spixels))]
    argv += ["-pixel", _fmt(_value_or(d.pixel_size_mm, 0.1))]

    # Convention (custom vectors switch the C program to CUSTOM, as -fdet_vector etc. do).
    if conv == DetectorConvention.CUSTOM:
        any_vector = False
        for flag, vec in (("-fdet_vector", d.custom_fdet_vector), ("-sdet_vector", d.custom_sdet_vector),
                          ("-odet_vector", d.custom_odet_vector), ("-beam_vector", d.custom_beam_vector)):
            if vec is not None:
                v = concrete(vec)
                argv += [flag] + (_fmt3(v) if v is not None else ["0", "0", "1"])
                any_vector = True
        if d.pix0_override_m is not None:
            v = concrete(d.pix0_override_m)
            if v is None:
                raise DecisionError("compat: pix0_override_m must have a value (the C program derives "
                                    "the beam centre from it); it cannot be traced under jax.jit")
            argv += ["-pix0_vector"] + _fmt3(v)
            any_vector = True
        if d.twotheta_axis is not None:
            v = concrete(d.twotheta_axis)
            argv += ["-twotheta_axis"] + (_fmt3(v) if v is not None else ["0", "1", "0"])
            any_vector = True
        if not any_vector:
            # CUSTOM with the C program's initial (MOSFLM-like) vectors.
            argv += ["-fdet_vector", "0", "0", "1"]
    else:
        argv.append("-" + conv.value)

    argv += ["-distance", _fmt(_value_or(d.distance_mm, 100.0))]
    if d.close_distance_mm is not None:
        argv += ["-close_distance", _fmt(_value_or(d.close_distance_mm, 100.0))]
    if _given(d.detector_twotheta_deg):
        argv += ["-twotheta", _fmt(_value_or(d.detector_twotheta_deg, 1.0))]

    oversample = run.oversample if run.oversample is not None else d.oversample
    if oversample is not None and oversample > 0:
        argv += ["-oversample", str(int(oversample))]
    for flag, cfg_value, run_value in (("-oversample_omega", d.oversample_omega, run.oversample_omega),
                                       ("-oversample_polar", d.oversample_polar, run.oversample_polar),
                                       ("-oversample_thick", d.oversample_thick, run.oversample_thick)):
        if (run_value if run_value is not None else cfg_value):
            argv.append(flag)
    if d.point_pixel:
        argv.append("-point_pixel")

    if _given(d.detector_thick_um):
        argv += ["-detector_thick", _fmt(_value_or(d.detector_thick_um, 100.0))]
    if d.detector_abs_um is not None:
        v = concrete_float(d.detector_abs_um)
        argv += ["-detector_abs", "inf" if v is not None and (v == 0.0 or math.isinf(v)) else _fmt(v or 100.0)]
    if d.detector_thicksteps is not None:
        argv += ["-thicksteps", str(int(d.detector_thicksteps))]

    roi = (int(d.roi_xmin), int(d.roi_xmax), int(d.roi_ymin), int(d.roi_ymax))
    if roi != (0, d.fpixels - 1, 0, d.spixels - 1):
        argv += ["-roi"] + [str(v) for v in roi]

    # Crystal.
    if c.mosflm_a_star is not None:
        vecs = [concrete(v) for v in (c.mosflm_a_star, c.mosflm_b_star, c.mosflm_c_star)]
        cell = cell_from_reciprocal(*vecs) if all(v is not None for v in vecs) else [100, 100, 100, 90, 90, 90]
    else:
        defaults = (100.0, 100.0, 100.0, 90.0, 90.0, 90.0)
        cell = [_value_or(v, dflt) for v, dflt in zip(
            (c.cell_a, c.cell_b, c.cell_c, c.cell_alpha, c.cell_beta, c.cell_gamma), defaults)]
    argv += ["-cell"] + [_fmt(v) for v in cell]
    for flag, n in zip(("-Na", "-Nb", "-Nc"), _n_cells(c)):
        v = concrete_float(n)
        argv += [flag, str(max(int(v), 1) if v is not None else 1)]
    default_F = concrete_float(c.default_F)
    # The C program refuses to run without structure factors; the port renders zeros.
    argv += ["-default_F", _fmt(default_F if default_F not in (None, 0.0) else 1.0)]
    if c.misset_random:
        if c.misset_seed is not None:
            # -misset_seed also runs the -misset branch (substring test); -misset random after it wins.
            argv += ["-misset_seed", str(int(c.misset_seed))]
        argv += ["-misset", "random"]
    shape_flag = {CrystalShape.ROUND: "-round_xtal", CrystalShape.GAUSS: "-gauss_xtal",
                  CrystalShape.TOPHAT: "-tophat_spots"}.get(CrystalShape(c.shape))
    if shape_flag:
        argv.append(shape_flag)
    if c.phi_steps is not None:
        argv += ["-phisteps", str(int(c.phi_steps)), "-osc", _fmt(_value_or(c.osc_range_deg, 1.0))]
    elif _given(c.osc_range_deg):
        argv += ["-osc", _fmt(_value_or(c.osc_range_deg, 1.0))]
    spread = concrete_float(c.mosaic_spread_deg)
    # The C program reads a negative spread as none (one domain, spread 0); the core's flag
    # check refuses one, so the flag is left out (a finite-difference step just below 0).
    if _given(c.mosaic_spread_deg) and not (spread is not None and spread < 0.0):
        argv += ["-mosaic", _fmt(_value_or(c.mosaic_spread_deg, 1.0))]
    if c.mosaic_domains is not None:
        argv += ["-mosaic_domains", str(int(c.mosaic_domains))]
    if c.mosaic_seed is not None:
        argv += ["-mosaic_seed", str(int(c.mosaic_seed))]

    # Beam.
    argv += ["-lambda", _fmt(_value_or(b.wavelength_A, 1.0))]
    if b.nopolar:
        argv.append("-nopolar")
    if _given(b.dmin):
        argv += ["-dmin", _fmt(_value_or(b.dmin, 1.0))]
    if _given(b.water_size_um):
        argv += ["-water", _fmt(_value_or(b.water_size_um, 1.0))]

    if d.detector_pivot is not None:
        argv += ["-pivot", DetectorPivot(d.detector_pivot).value]
    argv += ["-dump", NO_FDUMP]
    return argv


def _default_device() -> jax.Device:
    configured = jax.config.jax_default_device
    if isinstance(configured, jax.Device):
        return configured
    return jax.devices()[0]


def _n_cells(c: CrystalConfig) -> tuple[Any, Any, Any]:
    n = c.N_cells  # a tuple, or an array / tensor of three
    return n[0], n[1], n[2]


def _auto_oversample_needs_numbers(c: CrystalConfig, d: DetectorConfig, b: BeamConfig) -> list[str]:
    missing = []
    checks = [("cell", (c.cell_a, c.cell_b, c.cell_c, c.cell_alpha, c.cell_beta, c.cell_gamma)),
              ("N_cells", _n_cells(c)), ("wavelength_A", (b.wavelength_A,)),
              ("distance_mm", (d.distance_mm,)), ("pixel_size_mm", (d.pixel_size_mm,))]
    for name, values in checks:
        if any(concrete(v) is None for v in values):
            missing.append(name)
    return missing


def build(c: CrystalConfig, d: DetectorConfig, b: BeamConfig, *, dtype: Any,
          hkl: Optional[HKLTable] = None, interpolate: Optional[bool] = None,
          run: RunOptions = RunOptions(), device: Optional[jax.Device] = None) -> Built:
    """``Setup`` and ``Params`` for the configs, with the configs' values (traced or not)
    in ``Params``.

    Args:
      c, d, b: the crystal, detector and beam configs.
      dtype: floating dtype of every ``Params`` field.
      hkl: structure factors loaded by ``Crystal.load_hkl`` (or assigned), or None.
      interpolate: tricubic interpolation on/off; None = the C rule (on when any N ≤ 2).
      run: per-run overrides (oversampling, tile rows).
      device: where to place ``Params`` (None = JAX's default).
    """
    oversample = run.oversample if run.oversample is not None else d.oversample
    if oversample is None or oversample <= 0:
        missing = _auto_oversample_needs_numbers(c, d, b)
        if missing:
            raise DecisionError(
                "compat: automatic oversampling reads " + ", ".join(missing) + ", which are traced "
                "without a value (inside jax.jit?); set DetectorConfig.oversample (or "
                "Simulator.run(oversample=...)) to a fixed number")
    has_hkl = hkl is not None and hkl.count > 0
    exp = _experiment(tuple(c_argv(c, d, b, run=run)))
    setup = exp.setup
    dt = np.dtype(dtype)
    p = exp.params.astype(dt)

    def A(x):
        return as_array(x, dt)

    changes: dict[str, Any] = {}
    setup_changes: dict[str, Any] = {}

    # -- crystal ----------------------------------------------------------------
    if c.mosflm_a_star is not None:
        setup_changes["orientation"] = "matrix"
        changes["recip_matrix"] = jnp.stack([A(c.mosflm_a_star).reshape(3), A(c.mosflm_b_star).reshape(3),
                                             A(c.mosflm_c_star).reshape(3)], axis=1)
    else:
        changes["cell"] = jnp.stack([A(v).reshape(()) for v in
                                     (c.cell_a, c.cell_b, c.cell_c, c.cell_alpha, c.cell_beta, c.cell_gamma)])
    if not c.misset_random:
        changes["misset"] = A(c.misset_deg).reshape(3)
    changes["N"] = jnp.maximum(jnp.stack([A(v).reshape(()) for v in _n_cells(c)]), 1.0)
    changes["default_F"] = A(c.default_F).reshape(())
    changes["fudge"] = A(c.fudge).reshape(())
    changes["phi0"] = A(c.phi_start_deg).reshape(())
    changes["phistep"] = A(c.osc_range_deg).reshape(()) / setup.phisteps
    changes["mosaic_spread"] = A(c.mosaic_spread_deg).reshape(())  # caps are 0 without a spread
    if c.spindle_axis is not None:
        changes["spindle_axis"] = A(c.spindle_axis).reshape(3)

    # -- detector ---------------------------------------------------------------
    if d.detector_pivot is not None:
        setup_changes["pivot"] = DetectorPivot(d.detector_pivot).name
    pivot = setup_changes.get("pivot", setup.pivot)
    conv = setup.convention
    px = A(d.pixel_size_mm).reshape(())
    changes["pixel_size"] = px
    changes["distance"] = A(d.distance_mm).reshape(())
    if d.close_distance_mm is not None:
        changes["close_distance"] = A(d.close_distance_mm).reshape(())
    changes["detector_rotation"] = jnp.stack([A(v).reshape(()) for v in
                                              (d.detector_rotx_deg, d.detector_roty_deg, d.detector_rotz_deg)])
    changes["twotheta"] = A(d.detector_twotheta_deg).reshape(())
    if d.twotheta_axis is not None:
        changes["twotheta_axis"] = A(d.twotheta_axis).reshape(3)
    if conv == "CUSTOM":
        for name, vec in (("fdet", d.custom_fdet_vector), ("sdet", d.custom_sdet_vector),
                          ("odet", d.custom_odet_vector), ("beam_vector", d.custom_beam_vector)):
            if vec is not None:
                changes[name] = A(vec).reshape(3)
    if d.pix0_override_m is None:
        bc_s = A(d.beam_center_s).reshape(())
        bc_f = A(d.beam_center_f).reshape(())
        if pivot == "BEAM" or conv == "CUSTOM":
            # (beam_center_s, beam_center_f) = (Sbeam, Fbeam) less MOSFLM's half pixel;
            # invert the convention's Xbeam/Ybeam → Fbeam/Sbeam mapping.
            if conv in ("MOSFLM", "DENZO"):
                X, Y = bc_s, bc_f
            elif conv == "ADXV":
                X, Y = bc_f, px * setup.spixels - bc_s
            else:
                X, Y = bc_f, bc_s
            changes["beam_center"] = jnp.stack([X, Y])
        if pivot == "SAMPLE" and conv != "CUSTOM" and not d.beam_center_is_default():
            # An explicit beam centre under the sample pivot is the near point (Fclose, Sclose),
            # with MOSFLM's half pixel, as in the port.
            half = 0.5 * px if conv == "MOSFLM" else 0.0
            changes["close_center"] = jnp.stack([bc_f + half, bc_s + half])
    if setup.has_thickness:
        thick = A(d.detector_thick_um).reshape(())
        changes["thickness"] = thick
        abs_v = concrete_float(d.detector_abs_um) if d.detector_abs_um is not None else None
        if d.detector_abs_um is None:
            changes["attenuation_depth"] = thick  # C: μ = 1/thickness when no -detector_abs
        elif abs_v is None or (abs_v != 0.0 and not math.isinf(abs_v)):
            changes["attenuation_depth"] = A(d.detector_abs_um).reshape(())
    if d.mask_array is not None:
        setup_changes["has_mask"] = True
        changes["mask"] = A(d.mask_array).reshape(setup.spixels, setup.fpixels)

    # -- beam ---------------------------------------------------------------------
    lam = A(b.wavelength_A).reshape(())
    changes["wavelength"] = lam
    changes["fluence"] = A(b.fluence).reshape(())
    changes["kahn_factor"] = A(b.polarization_factor).reshape(())
    if b.polarization_axis is not None:
        changes["polar_vector"] = A(b.polarization_axis).reshape(3)
    if setup.use_dmin:
        changes["dmin"] = A(b.dmin).reshape(())
    if setup.has_water:
        changes["water_size"] = A(b.water_size_um).reshape(())
    if b.source_directions is not None:
        dirs = A(b.source_directions).reshape(-1, 3)
        n = int(dirs.shape[0])
        if n == 0:
            raise ValueError("compat: BeamConfig.source_directions is empty")
        if b.source_wavelengths is not None:
            lams = A(b.source_wavelengths).reshape(n) * 1e10  # m → Å
        else:
            lams = jnp.broadcast_to(lam, (n,))
        setup_changes.update(source_mode="file", n_sources=n, div_tics=((0, 0),), dispsteps=1)
        changes["source_dirs"] = dirs
        changes["source_wavelengths"] = lams

    # -- structure factors --------------------------------------------------------
    if has_hkl:
        grid = A(hkl.data)
        changes["F_grid"] = jnp.pad(grid, ((0, 1), (0, 1), (0, 1)))  # the C program's padding layer
        if interpolate is None:
            interpolate = any(concrete_float(n) is not None and concrete_float(n) <= 2 for n in _n_cells(c))
        setup_changes.update(has_hkl=True, hkl_min=tuple(hkl.mins), hkl_max=tuple(hkl.maxs),
                             interpolate=bool(interpolate))

    if run.tile_rows:
        setup_changes["tile_pixels"] = int(run.tile_rows) * setup.fpixels
    if setup_changes:
        setup = dataclasses.replace(setup, **setup_changes)
    params = p.replace(**changes)
    if device is not None and device != _default_device():
        # Only a non-default device commits the arrays (committed inputs compile separately).
        params = jax.device_put(params, device)
    return Built(setup=setup, params=params, experiment=exp)
