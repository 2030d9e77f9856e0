"""``lower(model) -> (Setup, Params)``: the model in the form the kernel takes.

Static facts (pixel counts, sampling counts, convention, spot shape, which
optional factors exist) become the hashable ``Setup``; every continuous quantity
becomes a leaf of ``Params`` in user units.  Lowering is traceable: inside
``jit``/``grad``/``vmap`` the leaves are carried through unchanged; the only
decisions taken on values (which divergence raster points the round cut keeps,
whether water or a resolution cut is present) use concrete values when there
are some and otherwise rules that do not depend on them.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np

from ..config import Params, Setup
from ._pytree import concrete, is_tracer
from .beam import Beam, Divergence
from .crystal import Mosaicity
from .detector import NanoBraggPanel, Panel, convention_vector
from .experiment_model import Model

__all__ = ["lower", "divergence_raster", "oversample_rule", "recommended_oversample"]


def _is_traced(*xs: Any) -> bool:
    return any(isinstance(x, jax.Array) for x in xs)


def _unit(v: Any) -> Any:
    if _is_traced(v):
        return v / jnp.sqrt(jnp.sum(v * v))
    v = np.asarray(v, np.float64)
    return v / np.sqrt(np.sum(v * v))


def divergence_raster(h_range: float, v_range: float, h_step: float, v_step: float,
                      h_steps: int, v_steps: int, round_cut: bool) -> tuple[tuple[int, int], ...]:
    """The (h, v) raster ticks kept as sources, in the C program's order (h outer).

    The round cut keeps a tick when its offset (i·step − range/2, less half a step
    for an even count) lies within the ellipse of semi-axes range/2, with the C
    program's 10 % margin (4·r² ≤ 1.1).  A zero range gives NaN and keeps the tick,
    as in the C program.
    """
    kept = []
    for ht in range(h_steps):
        for vt in range(v_steps):
            if round_cut:
                hdiv = h_step * ht - h_range / 2.0
                vdiv = v_step * vt - v_range / 2.0
                with np.errstate(divide="ignore", invalid="ignore"):
                    test = np.float64(hdiv * hdiv - h_step * h_step / 4.0 * (1 - h_steps % 2)) \
                        / np.float64(h_range) / np.float64(h_range)
                    test += np.float64(vdiv * vdiv - v_step * v_step / 4.0 * (1 - v_steps % 2)) \
                        / np.float64(v_range) / np.float64(v_range)
                if test * 4.0 > 1.1:
                    continue
            kept.append((ht, vt))
    return tuple(kept)


def _axis(div: Optional[Divergence], axis: str):
    """(range, step, steps, divisor) of one divergence axis; step None when derived."""
    if div is None:
        return np.float64(0.0), np.float64(0.0), 1, 0.0
    rng = getattr(div, f"{axis}_range")
    steps = getattr(div, f"{axis}_steps")
    step = getattr(div, f"{axis}_step")
    if step is not None:
        return rng, step, steps, 0.0
    if steps > 1:
        return rng, rng / (steps - 1), steps, float(steps - 1)
    return rng, rng * 0.0, steps, 0.0


def _sources(beam: Beam, beam_vector: Any):
    """Static and dynamic parts of the source list (divergence × dispersion, or a spectrum)."""
    div = beam.divergence
    hr, hs, nh, hdiv_div = _axis(div, "h")
    vr, vs, nv, vdiv_div = _axis(div, "v")
    round_cut = True if div is None else div.round
    if nh * nv == 1 or not round_cut:
        tics = tuple((h, v) for h in range(nh) for v in range(nv))
    else:
        vals = [concrete(x) for x in (hr, vr, hs, vs)]
        if any(v is None for v in vals):
            explicit = div is not None and (div.h_step is not None or div.v_step is not None)
            if explicit:
                raise ValueError("Divergence: with explicit h_step/v_step the round cut needs concrete "
                                 "values (build the model outside jit, or use round=False)")
            # A derived step scales with the range, so the cut does not depend on it.
            vals = [1.0, 1.0, 1.0 / max(nh - 1, 1), 1.0 / max(nv - 1, 1)]
        tics = divergence_raster(*(float(v) for v in vals), nh, nv, True)
        if not tics:
            raise ValueError("Divergence: the round cut left no source (use round=False)")
    nd = beam.dispersion_steps
    disp_div = float(nd - 1) if nd > 1 else 0.0
    static = dict(source_mode="generated", div_tics=tics, hdiv_divisor=hdiv_div, vdiv_divisor=vdiv_div,
                  dispsteps=nd, disp_divisor=disp_div, n_sources=len(tics) * nd)
    dynamic = dict(hdivrange=hr, vdivrange=vr, hdivstep=hs, vdivstep=vs,
                   source_dirs=np.zeros((1, 3)), source_wavelengths=np.zeros((1,)))
    spec = beam.spectrum
    if spec is not None:
        if spec.weights is not None:
            w = concrete(spec.weights)
            if w is not None and not np.sum(w) > 0:
                raise ValueError("Spectrum.weights must not all be 0")
            static.update(weighted_sources=True)
            dynamic.update(source_weights=spec.weights)
        n = spec.wavelengths.shape[0]
        dirs = spec.directions
        if dirs is None:
            b = beam_vector
            dirs = (jnp if _is_traced(b) else np).broadcast_to(-10.0 * b, (n, 3))
        static.update(source_mode="file", div_tics=((0, 0),), dispsteps=1, n_sources=n)
        dynamic.update(source_dirs=dirs, source_wavelengths=spec.wavelengths)
    return static, dynamic


def _panel(panel: Any, beam_vector: Any) -> tuple[dict, dict]:
    """Static and dynamic detector fields of one panel."""
    if isinstance(panel, NanoBraggPanel):
        conv = panel.convention
        odet = panel.normal
        if odet is None:  # CUSTOM without a normal: fast × slow
            xp = jnp if _is_traced(panel.fast_axis, panel.slow_axis) else np
            odet = _unit(xp.cross(_unit(panel.fast_axis), _unit(panel.slow_axis)))
        # The C program keeps a given normal only if it has unit length (else fdet × sdet);
        # decided here, once, on the concrete value (a traced normal counts as given).
        given = concrete(panel.normal) if panel.normal is not None else None
        odet_given = panel.normal is not None and (
            given is None or float(np.sqrt(np.sum(np.asarray(given, np.float64) ** 2))) == 1.0)
        static = dict(convention=conv, pivot=panel.pivot, close_distance_given=panel.close_distance is not None,
                      odet_given=odet_given)
        dynamic = dict(
            distance=panel.distance,
            close_distance=np.float64(0.0) if panel.close_distance is None else panel.close_distance,
            beam_center=panel.beam_center, close_center=panel.close_center, pixel_size=panel.pixel_size,
            detector_rotation=panel.rotations, twotheta=panel.twotheta, fdet=panel.fast_axis,
            sdet=panel.slow_axis, odet=odet, twotheta_axis=panel.twotheta_axis)
        return static, dynamic
    # A plain panel: CUSTOM convention, BEAM pivot, with (Xbeam, Ybeam, distance) solving
    # origin = −Xbeam·fast − Ybeam·slow + distance·beam.
    traced = _is_traced(panel.origin, panel.fast_axis, panel.slow_axis, beam_vector)
    xp = jnp if traced else np
    f, s, b = _unit(panel.fast_axis), _unit(panel.slow_axis), _unit(beam_vector)
    n = _unit(xp.cross(f, s))
    bn = xp.sum(b * n)
    system = xp.stack([-f, -s, b], axis=1)
    X, Y, d = [xp.linalg.solve(system, panel.origin)[i] for i in range(3)]
    if not traced:
        if abs(bn) < 1e-12:
            raise ValueError("Panel: the beam runs parallel to the panel's plane")
        if d <= 0:
            raise ValueError("Panel: the beam must meet the panel's plane in front of the sample "
                             "(nanoBragg places panels by the beam spot)")
        if bn < 0 and float(np.sqrt(np.sum(n * n))) != 1.0:
            raise NotImplementedError("Panel: fast × slow points toward the sample and its unit normal is "
                                      "not exactly unit length; flip fast_axis or slow_axis")
    odet = xp.where(bn < 0, -n, n)
    static = dict(convention="CUSTOM", pivot="BEAM", close_distance_given=False, odet_given=True)
    dynamic = dict(distance=d, close_distance=np.float64(0.0), beam_center=xp.stack([X, Y]),
                   close_center=xp.stack([X, Y]), pixel_size=panel.pixel_size,
                   detector_rotation=np.zeros(3), twotheta=np.float64(0.0), fdet=f, sdet=s, odet=odet,
                   twotheta_axis=convention_vector("CUSTOM", "twotheta_axis"))
    return static, dynamic


def _present(x: Any) -> bool:
    """A leaf that switches an optional factor on: given, and non-zero when concrete."""
    if x is None:
        return False
    c = concrete(x)
    return True if c is None else bool(c != 0)


def _float_dtype(x: Any) -> Any:
    dt = getattr(x, "dtype", None)
    if dt is not None and jnp.issubdtype(dt, jnp.floating):
        return dt
    return np.float64


def lower(model: Model) -> tuple[Setup, Params]:
    """Lower a ``Model`` to the kernel's static ``Setup`` and pytree ``Params``.

    Floating leaves take the dtype of ``model.beam.wavelength``.  One panel only:
    multi-panel detectors lower with ``lower_panels``.

    Raises:
      NotImplementedError: more than one panel.
      ValueError: a value-dependent choice that needs concrete values under tracing.
    """
    if not isinstance(model, Model):
        raise TypeError(f"lower() takes a nanobragg_jax Model, got {type(model).__name__}")
    det = model.detector
    if det.n_panels != 1:
        raise NotImplementedError(
            f"lower(): this detector has {det.n_panels} panels; lower() handles one panel — "
            "use lower_panels(model), or simulate(model) which does")
    panel = det.panels[0]
    beam, xtal, gonio = model.beam, model.crystal, model.goniometer
    mos = model.mosaicity if model.mosaicity is not None else Mosaicity(0.0, domains=1)

    conv = panel.convention if isinstance(panel, NanoBraggPanel) else "CUSTOM"
    beam_vector = beam.direction if beam.direction is not None else convention_vector(conv, "beam")
    polar = beam.polarization_axis if beam.polarization_axis is not None else convention_vector(conv, "polar")
    spindle = gonio.axis if gonio.axis is not None else convention_vector(conv, "spindle")

    det_static, det_dyn = _panel(panel, beam_vector)
    src_static, src_dyn = _sources(beam, beam_vector)

    sensor = det.sensor
    has_thickness = sensor is not None and _present(sensor.thickness)
    if has_thickness:
        thicksteps = sensor.layers
        thick_divisor = float(sensor.layer_divisor if sensor.layer_divisor is not None else sensor.layers)
        thickness = sensor.thickness
        att = sensor.attenuation_depth if sensor.attenuation_depth is not None else sensor.thickness
    else:
        thicksteps, thick_divisor, thickness = 1, 1.0, np.float64(0.0)
        att = sensor.attenuation_depth if (sensor is not None and sensor.attenuation_depth is not None) \
            else np.float64(1.0)

    sf = xtal.structure_factors
    if sf is None:
        F_grid, hkl_min, hkl_max = np.zeros((1, 1, 1)), (0, 0, 0), (0, 0, 0)
    else:
        pad = ((0, 1), (0, 1), (0, 1))
        F_grid = jnp.pad(sf.F, pad) if _is_traced(sf.F) else np.pad(np.asarray(sf.F), pad)
        hkl_min, hkl_max = sf.hkl_min, sf.hkl_max
    has_hkl = sf is not None

    mask = panel.mask
    roi = panel.roi if panel.roi is not None else (0, panel.n_fast - 1, 0, panel.n_slow - 1)
    setup = Setup(
        spixels=panel.n_slow, fpixels=panel.n_fast, roi=tuple(roi), oversample=det.oversample,
        thicksteps=thicksteps, thick_divisor=thick_divisor, phisteps=gonio.phi_steps,
        mosaic_domains=mos.domains, **src_static, **det_static,
        orientation="matrix" if xtal.orientation is not None else "cell",
        shape=xtal.shape, interpolate=bool(xtal.interpolate and has_hkl), has_hkl=has_hkl,
        hkl_min=tuple(hkl_min), hkl_max=tuple(hkl_max),
        oversample_thick=det.oversample_thick, oversample_polar=det.oversample_polar,
        oversample_omega=det.oversample_omega, point_pixel=det.point_pixel,
        curved_detector=det.curved, nopolar=not beam.apply_polarization,
        use_dmin=_present(model.dmin), has_water=_present(model.water), has_mask=mask is not None,
        has_thickness=has_thickness,
    )
    params = Params(
        cell=xtal.cell if xtal.cell is not None else np.zeros(6),
        recip_matrix=xtal.orientation if xtal.orientation is not None else np.eye(3),
        misset=xtal.misset, N=xtal.N, fudge=xtal.fudge, default_F=xtal.default_F, F_grid=F_grid,
        phi0=gonio.phi0, phistep=gonio.phi_step,
        mosaic_spread=mos.spread, mosaic_axes=mos.axes, mosaic_caps=mos.caps,
        **det_dyn,
        beam_vector=beam_vector, polar_vector=polar, spindle_axis=spindle,
        thickness=thickness, attenuation_depth=att,
        mask=mask if mask is not None else np.ones((1, 1)),
        wavelength=beam.wavelength, dispersion=beam.dispersion,
        **src_dyn,
        kahn_factor=beam.kahn_factor, fluence=beam.fluence,
        water_size=model.water if model.water is not None else np.float64(0.0),
        dmin=model.dmin if model.dmin is not None else np.float64(0.0),
    )
    return setup, params.astype(_float_dtype(beam.wavelength))


def oversample_rule(xtal_size_max_m: float, wavelength_m: float, distance_m: float, pixel_m: float) -> int:
    """The C program's automatic oversampling: ceil(3·crystal size / (λ·distance/pixel)), ≥ 1.

    A pixel should be no wider than a third of a spot (whose width on the detector
    is λ·distance/crystal size).
    """
    reciprocal_pixel = wavelength_m * distance_m / pixel_m
    n = int(math.ceil(3.0 * xtal_size_max_m / reciprocal_pixel)) if reciprocal_pixel > 0 else 1
    return max(n, 1)


def recommended_oversample(model: Model) -> int:
    """The sub-pixel count the command line would choose for this model (host-side)."""
    from ..experiment import derived_geometry

    setup, params = lower(model)
    with jax.enable_x64(True):
        p64 = params.astype(jnp.float64)
        geo = derived_geometry(setup, jax.tree_util.tree_map(jnp.asarray, p64))
    lengths = np.asarray(geo["cell_lengths_m"])
    N = np.asarray(concrete(model.crystal.N))
    xtal_max = float(np.max(lengths * N))
    panel = model.detector.panels[0]
    return oversample_rule(xtal_max, float(concrete(model.beam.wavelength)) * 1e-10, geo["distance"],
                           float(concrete(panel.pixel_size)) * 1e-3)


def lower_panels(model: Model) -> tuple[Setup, Params, Any]:
    """Lower a multi-panel ``Model``: ``(Setup, Params, PanelStack)`` for ``panels.simulate_panels``.

    Every panel must be a plain ``Panel`` (origin, fast and slow axes) and all must
    share one shape and pixel size (group panels of other shapes into separate
    models).  The crystal, beam and sensor lower as for one panel (the first); the
    panels' origins and axes stay differentiable leaves of the stack.
    """
    from ..panels import PanelStack

    det = model.detector
    panels = det.panels
    if not all(isinstance(p, Panel) for p in panels):
        raise NotImplementedError("lower_panels(): every panel of a multi-panel detector must be a Panel "
                                  "(origin, fast_axis, slow_axis), not a NanoBraggPanel")
    shapes = {(p.n_fast, p.n_slow) for p in panels}
    if len(shapes) != 1:
        raise NotImplementedError(f"lower_panels(): panels of different shapes {sorted(shapes)}; render each "
                                  "shape as its own model (see panels.group_by_shape)")
    sizes = [concrete(p.pixel_size) for p in panels]
    if any(s is None for s in sizes):
        raise ValueError("lower_panels(): Panel.pixel_size fixes the kernel's sampling and must be concrete")
    if len({float(s) for s in sizes}) != 1:
        raise NotImplementedError("lower_panels(): panels of different pixel sizes")
    if any(p.mask is not None or p.roi is not None for p in panels):
        raise NotImplementedError("lower_panels(): per-panel masks and ROIs are not supported yet")
    setup, params = lower(model.replace(detector=det.replace(panels=(panels[0],))))
    traced = any(is_tracer(x) for p in panels for x in (p.origin, p.fast_axis, p.slow_axis))
    xp = jnp if traced else np
    (nf, ns), = shapes
    stack = PanelStack(origin=xp.stack([p.origin for p in panels]),
                       fast=xp.stack([_unit(p.fast_axis) for p in panels]),
                       slow=xp.stack([_unit(p.slow_axis) for p in panels]),
                       n_fast=nf, n_slow=ns, pixel_size=float(sizes[0]))
    return setup, params, stack
