"""``from_cli_args``: flags and files → ``Experiment(setup, params)``.

After the flag loop (``flags.py``) the C program fills in defaults in a fixed
order: detector size in pixels, fluence from flux, near point and beam centre,
the convention's basis vectors, the sampling counts (φ, divergence,
dispersion, sensor layers, mosaic domains) with their "auto" rules, the cell and
orientation, crystal size → N, automatic oversampling, structure factors, the
source list and the mosaic domains.  ``resolve`` follows that order; geometry
that the kernels recompute differentiably (pix0, distances, cell vectors) is
evaluated here once, in float64, only for the decisions the C program takes on
it (oversampling, N from crystal size) and for the printed summary.
"""

from __future__ import annotations

import math
import os
from functools import partial
from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from .config import Experiment, Params, Setup
from .flags import RTD, CState, FlagError, _apply_c_flag_loop, _read_image_headers, validate_argv

CONVENTION_VECTORS = {
    # beam, fdet, sdet, odet, twotheta_axis, polar, spindle
    "ADXV": ((0, 0, 1), (1, 0, 0), (0, -1, 0), (0, 0, 1), (-1, 0, 0), (1, 0, 0), (1, 0, 0)),
    "MOSFLM": ((1, 0, 0), (0, 0, 1), (0, -1, 0), (1, 0, 0), (0, 0, -1), (0, 0, 1), (0, 0, 1)),
    "DENZO": ((1, 0, 0), (0, 0, 1), (0, -1, 0), (1, 0, 0), (0, 0, -1), (0, 0, 1), (0, 0, 1)),
    "XDS": ((0, 0, 1), (1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 0, 0), (1, 0, 0), (1, 0, 0)),
    "DIALS": ((0, 0, 1), (1, 0, 0), (0, 1, 0), (0, 0, 1), (0, 1, 0), (0, 1, 0), (0, 1, 0)),
}


def _isnan(x: float) -> bool:
    return isinstance(x, float) and math.isnan(x)


def _auto_steps(steps: int, rng: float, step: float, *, steps_only_range: float) -> tuple[int, float, float, float]:
    """The C program's rule for (count, range, step) of divergence and dispersion.

    Returns (count, range, step, divisor) where divisor ≠ 0 means the step is
    range/divisor (kept differentiable in the range), 0 means the given step.
    """
    divisor = 0.0
    if steps <= 0:
        if rng < 0.0:
            if step <= 0.0:
                steps, rng, step = 1, 0.0, 0.0
            else:
                rng, steps = step, 2
        else:
            if step <= 0.0:
                step, steps, divisor = rng, 2, 1.0
            else:
                steps = int(math.ceil(rng / step))
    else:
        if rng < 0.0:
            if step <= 0.0:
                rng = steps_only_range
                step = rng / steps
                divisor = float(steps)
            else:
                rng, steps = step, 2
        else:
            if step <= 0.0:
                if steps <= 1:
                    steps = 2
                step = rng / (steps - 1)
                divisor = float(steps - 1)
    if rng <= 0.0 or step <= 0.0 or steps <= 0:
        steps, rng, step, divisor = 1, 0.0, 0.0, 0.0
    return steps, rng, step, divisor


def _phi_steps(st: CState) -> None:
    """The C program's rule for φ steps / oscillation / step size."""
    if st.phisteps < 0:
        if st.osc < 0.0:
            if st.phistep <= 0.0:
                st.phisteps, st.osc, st.phistep = 1, 0.0, 0.0
            else:
                st.osc, st.phisteps = st.phistep, 2
        else:
            if st.phistep <= 0.0:
                st.phisteps, st.phistep = 2, st.osc / 2.0
            else:
                st.phisteps = int(math.ceil(st.osc / st.phistep))
    else:
        if st.phisteps == 0:
            st.phisteps = 1
        if st.osc < 0.0:
            if st.phistep <= 0.0:
                st.osc = 1.0 / RTD
                st.phistep = st.osc / st.phisteps
            else:
                st.osc, st.phisteps = st.phistep, 2
        else:
            if st.phistep < 0.0:
                st.phistep = st.osc / st.phisteps


def _thickness(st: CState) -> float:
    """Sensor layers: returns the divisor (thickness / layer thickness)."""
    divisor = 1.0
    if st.detector_thicksteps <= 0:
        if st.detector_thick < 0.0:
            st.detector_thicksteps, st.detector_thick, st.detector_thickstep = 1, 0.0, 0.0
        else:
            st.detector_thicksteps = 2
            st.detector_thickstep = st.detector_thick / 2
            divisor = 2.0
    else:
        if st.detector_thick < 0.0:
            st.detector_thick = 0.5e-6
            st.detector_thickstep = st.detector_thick / st.detector_thicksteps
            divisor = float(st.detector_thicksteps)
        else:
            if st.detector_thicksteps <= 1:
                st.detector_thicksteps = 2
            st.detector_thickstep = st.detector_thick / (st.detector_thicksteps - 1)
            divisor = float(st.detector_thicksteps - 1)
    if st.detector_thick > 0.0 and st.detector_mu < 0.0:
        st.detector_mu = 1.0 / st.detector_thick
    if st.detector_thick <= 0.0 or st.detector_thickstep <= 0.0 or st.detector_thicksteps <= 0:
        st.detector_thicksteps, st.detector_thick, st.detector_thickstep = 1, 0.0, 0.0
        divisor = 1.0
    return divisor


def _mosaic_domains(st: CState, log: list) -> None:
    if st.mosaic_domains <= 0:
        if st.mosaic_spread < 0.0:
            st.mosaic_domains, st.mosaic_spread = 1, 0.0
        elif st.mosaic_spread == 0.0:
            st.mosaic_domains = 1
        else:
            log.append("WARNING: finite mosaicity with only one domain! upping to 10 mosaic domains")
            st.mosaic_domains = 10
    else:
        if st.mosaic_spread < 0.0:
            log.append("WARNING: no mosaic spread specified.  setting mosaic_domains = 1")
            st.mosaic_spread, st.mosaic_domains = 0.0, 1
        elif st.mosaic_spread == 0.0:
            log.append("WARNING: zero mosaic spread specified.  setting mosaic_domains = 1")
            st.mosaic_domains = 1


def _divergence_tics(st: CState) -> list[tuple[int, int]]:
    """Raster points kept by the round-divergence cut, in the C program's order."""
    kept = []
    for ht in range(st.hdivsteps):
        for vt in range(st.vdivsteps):
            hdiv = st.hdivstep * ht - st.hdivrange / 2.0
            vdiv = st.vdivstep * vt - st.vdivrange / 2.0
            with np.errstate(divide="ignore", invalid="ignore"):
                test = np.float64(hdiv * hdiv - st.hdivstep * st.hdivstep / 4.0 * (1 - st.hdivsteps % 2)) / np.float64(st.hdivrange) / np.float64(st.hdivrange)
                test += np.float64(vdiv * vdiv - st.vdivstep * st.vdivstep / 4.0 * (1 - st.vdivsteps % 2)) / np.float64(st.vdivrange) / np.float64(st.vdivrange)
            if st.round_div and test * 4.0 > 1.1:
                continue
            kept.append((ht, vt))
    return kept


def _load_structure_factors(st: CState, log: list):
    """HKL file (and write the Fdump cache), or the cache, or nothing."""
    if st.hklfilename is None and not os.path.exists(st.dumpfilename):
        return None
    from .io import hkl as hkl_io

    if st.hklfilename is not None:
        data = hkl_io.read_hkl(st.hklfilename, default_F=st.default_F)
        try:
            hkl_io.write_fdump(st.dumpfilename, data)
        except OSError:
            log.append(f"WARNING: unable to open dump file: {st.dumpfilename}")
        return data
    if os.path.exists(st.dumpfilename):
        log.append(f"reading Fs from {st.dumpfilename}")
        return hkl_io.read_fdump(st.dumpfilename)
    return None


def _sources_from_file(st: CState, beam: np.ndarray):
    from .io.sources import read_source_file

    rows = np.array(read_source_file(st.sourcefilename), dtype=np.float64)
    if rows.shape[0] == 0:
        raise FlagError(f"-sourcefile {st.sourcefilename}: no sources in the file")
    default_pos = -10.0 * beam
    for k in range(3):
        rows[:, k] = np.where(np.isnan(rows[:, k]), default_pos[k], rows[:, k])
    rows[:, 3] = np.where(np.isnan(rows[:, 3]), 1.0, rows[:, 3])
    rows[:, 4] = np.where(np.isnan(rows[:, 4]), st.lambda0, rows[:, 4])
    if not np.all(np.isfinite(rows)):
        raise FlagError(f"-sourcefile {st.sourcefilename}: values must be finite numbers")
    at_sample = np.flatnonzero(np.all(rows[:, :3] == 0.0, axis=1))
    if at_sample.size:
        raise FlagError(f"-sourcefile {st.sourcefilename}: line {at_sample[0] + 1} puts a source at the "
                        "sample (X Y Z all zero or unreadable)")
    bad_lambda = np.flatnonzero(rows[:, 4] <= 0)
    if bad_lambda.size:
        raise FlagError(f"-sourcefile {st.sourcefilename}: line {bad_lambda[0] + 1} has a wavelength ≤ 0 "
                        "(column 5 is λ in metres)")
    return rows


def _unit(v) -> np.ndarray:
    v = np.asarray(v, np.float64)
    n = np.sqrt(np.sum(v * v))
    return v / n if n != 0 else np.zeros(3)


def resolve(st: CState) -> Experiment:
    """Apply the C program's defaults and precedence to the parsed flag state."""
    log: list[str] = []
    # -- detector size --------------------------------------------------------
    if st.pixel_size <= 0:
        raise FlagError("-pixel: the pixel size must be positive")
    if st.fpixels:
        st.detsize_f = st.pixel_size * st.fpixels
    if st.spixels:
        st.detsize_s = st.pixel_size * st.spixels
    st.fpixels = int(math.ceil(st.detsize_f / st.pixel_size - 0.5))
    st.spixels = int(math.ceil(st.detsize_s / st.pixel_size - 0.5))
    if st.fpixels <= 0 or st.spixels <= 0:
        raise FlagError("-detpixels/-detsize: the detector must have at least one pixel")

    # -- fluence --------------------------------------------------------------
    if st.flux != 0.0 and st.exposure > 0.0 and st.beamsize >= 0:
        st.fluence = st.flux * st.exposure / st.beamsize / st.beamsize
    if st.beamsize >= 0:
        if st.beamsize < st.sample_y:
            log.append(f"WARNING: clipping sample ({st.sample_y:g} m high) with beam ({st.beamsize:g} m)")
            st.sample_y = st.beamsize
        if st.beamsize < st.sample_z:
            log.append(f"WARNING: clipping sample ({st.sample_z:g} m wide) with beam ({st.beamsize:g} m)")
            st.sample_z = st.beamsize
    if not math.isfinite(st.fluence):
        raise FlagError("-fluence/-flux: the fluence must be finite (check -beamsize)")

    # -- near point, beam centre, ROI -----------------------------------------
    Fclose = (st.ORGX - 0.5) * st.pixel_size if not _isnan(st.ORGX) else NAN_
    Sclose = (st.ORGY - 0.5) * st.pixel_size if not _isnan(st.ORGY) else NAN_
    if _isnan(Fclose):
        Fclose = st.detsize_f / 2.0
    if _isnan(Sclose):
        Sclose = st.detsize_s / 2.0
    if _isnan(st.Xclose):
        st.Xclose = Fclose
    if _isnan(st.Yclose):
        st.Yclose = Sclose
    roi = list(st.roi)
    if roi[0] < 0:
        roi[0] = 0
    if roi[1] < 0:
        roi[1] = st.fpixels
    if roi[2] < 0:
        roi[2] = 0
    if roi[3] < 0:
        roi[3] = st.spixels
    if roi[1] < roi[0] or roi[3] < roi[2]:
        raise FlagError("-roi: xmin xmax ymin ymax must satisfy xmin ≤ xmax and ymin ≤ ymax")
    if roi[0] > st.fpixels - 1 or roi[2] > st.spixels - 1 or roi[1] < 0 or roi[3] < 0:
        raise FlagError("-roi: the region lies entirely off the detector")

    conv = st.beam_convention
    px = st.pixel_size
    if conv == "ADXV":
        if _isnan(st.Xbeam):
            st.Xbeam = (st.detsize_f + px) / 2.0
        if _isnan(st.Ybeam):
            st.Ybeam = (st.detsize_s - px) / 2.0
    elif conv in ("MOSFLM", "DENZO"):
        if _isnan(st.Xbeam):
            st.Xbeam = (st.detsize_s + px) / 2.0
        if _isnan(st.Ybeam):
            st.Ybeam = (st.detsize_f + px) / 2.0
    else:
        if _isnan(st.Xbeam):
            st.Xbeam = st.Xclose
        if _isnan(st.Ybeam):
            st.Ybeam = st.Yclose
    if conv in CONVENTION_VECTORS:
        (st.beam_vector, st.fdet_vector, st.sdet_vector, st.odet_vector, st.twotheta_axis,
         st.polar_vector, st.spindle_vector) = [list(map(float, v)) for v in CONVENTION_VECTORS[conv]]
        st.detector_pivot = "SAMPLE" if conv in ("XDS", "DIALS") else "BEAM"
    beam_unit = _unit(st.beam_vector)
    for name, vec in (("-fdet_vector", st.fdet_vector), ("-sdet_vector", st.sdet_vector),
                      ("-beam_vector", st.beam_vector), ("-polar_vector", st.polar_vector),
                      ("-spindle_axis", st.spindle_vector), ("-twotheta_axis", st.twotheta_axis)):
        if not any(float(x) != 0.0 for x in vec):
            raise FlagError(f"{name}: the direction vector is zero")

    # -- structure factors and cell must exist (the C program's usage exit) --
    hkl_missing = st.hklfilename is None and not os.path.exists(st.dumpfilename) and st.default_F == 0.0
    if hkl_missing:
        raise FlagError("no structure factors: give -hkl FILE or -default_F F (or an Fdump.bin cache)")
    if st.matfilename is None and st.cell[0] == 0.0:
        raise FlagError("no unit cell: give -cell a b c alpha beta gamma or -mat FILE")

    # -- sampling counts ------------------------------------------------------
    _phi_steps(st)
    st.hdivsteps, st.hdivrange, st.hdivstep, hdiv_div = _auto_steps(
        st.hdivsteps, st.hdivrange, st.hdivstep, steps_only_range=1.0)
    st.vdivsteps, st.vdivrange, st.vdivstep, vdiv_div = _auto_steps(
        st.vdivsteps, st.vdivrange, st.vdivstep, steps_only_range=1.0)
    st.dispsteps, st.dispersion, st.dispstep, disp_div = _auto_steps(
        st.dispsteps, st.dispersion, st.dispstep, steps_only_range=1.0)
    thick_div = _thickness(st)
    _mosaic_domains(st, log)

    if st.interpolate > 1:
        st.interpolate = 1 if (st.Na <= 2 or st.Nb <= 2 or st.Nc <= 2) else 0

    # -- cell ------------------------------------------------------------------
    cell = list(st.cell)
    if st.user_cell:
        if cell[1] <= 0.0:
            cell[1] = cell[0]
        if cell[2] <= 0.0:
            cell[2] = cell[0]
        for k in (3, 4, 5):
            if cell[k] <= 0.0:
                cell[k] = math.pi / 2
    if st.user_cell and min(cell[:3]) <= 0:
        raise FlagError("-cell: cell lengths must be positive")
    if st.user_cell:
        a_, b_, g_ = cell[3], cell[4], cell[5]
        s_ = (a_ + b_ + g_) / 2
        skew = abs(math.sin(s_) * math.sin(s_ - a_) * math.sin(s_ - b_) * math.sin(s_ - g_))
        ca, cb, cg = math.cos(a_), math.cos(b_), math.cos(g_)
        metric = 1.0 - ca * ca - cb * cb - cg * cg + 2.0 * ca * cb * cg
        if skew == 0.0 or metric <= 1e-12:
            raise FlagError("-cell: no parallelepiped has these angles (impossible cell)")
    recip_matrix = np.eye(3)
    if st.matfilename is not None:
        # A matrix wins over -cell (the C program reads it after the cell).
        from .io.matrix import read_mosflm_matrix

        m = np.asarray(read_mosflm_matrix(st.matfilename), np.float64)
        recip_matrix = m * (1e-10 / st.lambda0)
        if not np.all(np.isfinite(recip_matrix)) or abs(np.linalg.det(recip_matrix)) == 0.0:
            raise FlagError(f"-mat {st.matfilename}: the matrix is singular or not finite")
    orientation = "matrix" if st.matfilename is not None else "cell"

    # -- misset ---------------------------------------------------------------
    misset_deg = [0.0, 0.0, 0.0]
    if st.misset[0] == -1.0:
        from .rng import random_misset_angles

        # As in the C program, -seed does not reach the misset stream: its default is
        # the time-based seed the program starts with.
        seed = st.misset_seed if st.misset_seed is not None else -_time_seed()
        ang = random_misset_angles(seed)
        log.append("random orientation misset angles: %f %f %f deg" % tuple(np.asarray(ang) * RTD))
        misset_deg = [float(x) * RTD for x in ang]
    elif st.misset[0] > 0.0:
        misset_deg = [st.misset[1] * RTD, st.misset[2] * RTD, st.misset[3] * RTD]

    # -- structure factors ----------------------------------------------------
    hkl = _load_structure_factors(st, log)
    has_hkl = hkl is not None and hkl.count > 0
    if hkl is None:
        F_grid = np.zeros((1, 1, 1))
        hkl_min, hkl_max = (0, 0, 0), (0, 0, 0)
    else:
        F_grid = np.asarray(hkl.grid, np.float64)
        hkl_min = (int(hkl.h_min), int(hkl.k_min), int(hkl.l_min))
        hkl_max = (int(hkl.h_max), int(hkl.k_max), int(hkl.l_max))
    if not has_hkl:
        st.interpolate = 0

    # -- sources --------------------------------------------------------------
    if st.sourcefilename is not None:
        rows = _sources_from_file(st, beam_unit)
        source_mode = "file"
        div_tics: list = [(0, 0)]
        n_sources = rows.shape[0]
        source_dirs = rows[:, 0:3]
        source_lambda = rows[:, 4] * 1e10
        source_weights = rows[:, 3]
        if st.weighted_sources and (np.any(source_weights < 0) or not np.sum(source_weights) > 0):
            raise FlagError(f"-weighted_sources: the weights in -sourcefile {st.sourcefilename} "
                            "(column 4) must be ≥ 0 and not all 0")
    else:
        source_mode = "generated"
        div_tics = _divergence_tics(st)
        if not div_tics:
            raise FlagError("divergence: the round-divergence cut left no source (use -square_div)")
        n_sources = len(div_tics) * st.dispsteps
        source_dirs = np.zeros((1, 3))
        source_lambda = np.zeros((1,))
        source_weights = np.ones((n_sources,))

    # -- mosaic domains --------------------------------------------------------
    from .rng import mosaic_domain_draws

    axes, caps = mosaic_domain_draws(st.mosaic_spread, st.mosaic_domains, st.mosaic_seed)
    axes = np.asarray(axes, np.float64).reshape(st.mosaic_domains, 3)
    caps = np.asarray(caps, np.float64).reshape(st.mosaic_domains)
    if st.mosaic_spread <= 0.0:
        caps = np.zeros_like(caps)

    # -- assemble Params (user units) ------------------------------------------
    close_given = not _isnan(st.close_distance)
    mask = st.mask if st.mask is not None else np.ones((1, 1))
    params = dict(
        cell=np.array(cell[:3] + [c * RTD for c in cell[3:]], np.float64),
        recip_matrix=recip_matrix,
        misset=np.array(misset_deg),
        N=np.array([st.Na, st.Nb, st.Nc]),
        fudge=np.float64(st.fudge),
        default_F=np.float64(st.default_F),
        F_grid=F_grid,
        phi0=np.float64(st.phi0 * RTD),
        phistep=np.float64(st.phistep * RTD),
        mosaic_spread=np.float64(st.mosaic_spread * RTD),
        mosaic_axes=axes,
        mosaic_caps=caps,
        distance=np.float64(st.distance * 1e3),
        close_distance=np.float64(st.close_distance * 1e3 if close_given else 0.0),
        beam_center=np.array([st.Xbeam * 1e3, st.Ybeam * 1e3]),
        close_center=np.array([Fclose * 1e3, Sclose * 1e3]),
        pixel_size=np.float64(st.pixel_size * 1e3),
        detector_rotation=np.array([st.detector_rotx, st.detector_roty, st.detector_rotz]) * RTD,
        twotheta=np.float64(st.detector_twotheta * RTD),
        fdet=np.array(st.fdet_vector, np.float64),
        sdet=np.array(st.sdet_vector, np.float64),
        odet=np.array(st.odet_vector, np.float64),
        beam_vector=np.array(st.beam_vector, np.float64),
        polar_vector=np.array(st.polar_vector, np.float64),
        spindle_axis=np.array(st.spindle_vector, np.float64),
        twotheta_axis=np.array(st.twotheta_axis, np.float64),
        thickness=np.float64(st.detector_thick * 1e6),
        attenuation_depth=np.float64((1.0 / st.detector_mu) * 1e6 if st.detector_mu > 0 else 1.0),
        mask=np.asarray(mask, np.float64),
        wavelength=np.float64(st.lambda0 * 1e10),
        dispersion=np.float64(st.dispersion * 100.0),
        hdivrange=np.float64(st.hdivrange * 1e3),
        vdivrange=np.float64(st.vdivrange * 1e3),
        hdivstep=np.float64(st.hdivstep * 1e3),
        vdivstep=np.float64(st.vdivstep * 1e3),
        source_dirs=np.asarray(source_dirs, np.float64),
        source_wavelengths=np.asarray(source_lambda, np.float64),
        kahn_factor=np.float64(st.polarization),
        fluence=np.float64(st.fluence),
        water_size=np.float64(st.water_size * 1e6),
        dmin=np.float64(st.dmin * 1e10),
        source_weights=np.asarray(source_weights, np.float64),
    )
    setup = Setup(
        spixels=st.spixels,
        fpixels=st.fpixels,
        roi=tuple(roi),
        oversample=1,
        thicksteps=st.detector_thicksteps,
        thick_divisor=thick_div,
        phisteps=st.phisteps,
        mosaic_domains=st.mosaic_domains,
        source_mode=source_mode,
        div_tics=tuple(div_tics),
        hdiv_divisor=hdiv_div,
        vdiv_divisor=vdiv_div,
        dispsteps=st.dispsteps if source_mode == "generated" else 1,
        disp_divisor=disp_div,
        n_sources=n_sources,
        convention=conv,
        pivot=st.detector_pivot,
        close_distance_given=close_given,
        orientation=orientation,
        shape=st.xtal_shape,
        interpolate=bool(st.interpolate),
        has_hkl=has_hkl,
        hkl_min=hkl_min,
        hkl_max=hkl_max,
        oversample_thick=st.oversample_thick,
        oversample_polar=st.oversample_polar,
        oversample_omega=st.oversample_omega,
        point_pixel=st.point_pixel,
        curved_detector=st.curved_detector,
        nopolar=st.nopolar,
        use_dmin=st.dmin > 0.0,
        has_water=st.water_size != 0.0,
        has_mask=st.mask is not None,
        has_thickness=st.detector_thick > 0.0,
        weighted_sources=bool(st.weighted_sources),
    )
    # -- host-side geometry for the C program's decisions ----------------------
    with jax.enable_x64(True):
        p64 = Params(**{k: jnp.asarray(v, jnp.float64) for k, v in params.items()})
        geo = derived_geometry(setup, p64)
    if not math.isfinite(geo["distance"]) or abs(geo["distance"]) > 1e6:
        raise FlagError("detector geometry: the detector plane is parallel to the beam "
                        "(check -twotheta / -detector_rot* / vectors)")
    a_len, b_len, c_len = geo["cell_lengths_m"]
    if st.sample_x > 0:
        st.Na = float(math.ceil(st.sample_x / a_len))
    if st.sample_y > 0:
        st.Nb = float(math.ceil(st.sample_y / b_len))
    if st.sample_z > 0:
        st.Nc = float(math.ceil(st.sample_z / c_len))
    st.Na, st.Nb, st.Nc = (max(st.Na, 1.0), max(st.Nb, 1.0), max(st.Nc, 1.0))
    params["N"] = np.array([st.Na, st.Nb, st.Nc])
    xtal_max = max(a_len * st.Na, b_len * st.Nb, c_len * st.Nc)
    reciprocal_pixel = st.lambda0 * geo["distance"] / st.pixel_size
    recommended = int(math.ceil(3.0 * xtal_max / reciprocal_pixel)) if reciprocal_pixel > 0 else 1
    if recommended <= 0:
        recommended = 1
    if st.oversample <= 0 and recommended > MAX_AUTO_OVERSAMPLE:
        raise FlagError(
            f"automatic oversampling would need {recommended}×{recommended} sub-pixels per pixel "
            "(crystal too large for the pixel size at this distance, or degenerate geometry); "
            "give -oversample explicitly")
    oversample = st.oversample if st.oversample > 0 else recommended
    if st.oversample <= 0:
        log.append(f"auto-selected {oversample}-fold oversampling")
    setup = _replace(setup, oversample=oversample)

    if st.lambda0 <= 0 or not math.isfinite(st.lambda0):
        raise FlagError("-lambda/-energy: the wavelength must be positive and finite")

    dtype = np.float32 if st.dtype == "float32" else np.float64
    params_obj = Params(**{k: np.asarray(v, dtype) for k, v in params.items()})
    options = dict(
        floatfile=st.floatfilename, intfile=st.intfilename, noisefile=st.noisefilename,
        pgmfile=st.pgmfilename, pngfile=st.pngfilename, write_pgm=st.write_pgm,
        calculate_noise=st.calculate_noise, intfile_scale=st.intfile_scale,
        pgm_scale=st.pgm_scale, adc=st.adc_offset, seed=st.seed, noise_exact=st.noise_exact,
        printout=st.printout, printout_pixel=st.printout_pixel, trace_pixel=st.trace_pixel,
        progress=st.progress_meter, dtype=st.dtype, help=st.help, given=set(st.given),
    )
    info = dict(geo)
    info.update(Xbeam=st.Xbeam, Ybeam=st.Ybeam, Xclose=st.Xclose, Yclose=st.Yclose,
                detsize_f=st.detsize_f, detsize_s=st.detsize_s, lambda0=st.lambda0,
                osc=st.osc, phi0=st.phi0, twotheta=st.detector_twotheta,
                hkl_count=(hkl.count if hkl is not None else 0), recommended_oversample=recommended,
                detector_mu=st.detector_mu, thickstep=st.detector_thickstep,
                divsteps=len(div_tics), xtal_size_max=xtal_max)
    return Experiment(setup=setup, params=params_obj, options=options, info=info, log=log)


NAN_ = float("nan")
MAX_AUTO_OVERSAMPLE = 10000  # beyond this an automatic choice is a geometry mistake, not a request


def _replace(setup: Setup, **kw) -> Setup:
    import dataclasses

    return dataclasses.replace(setup, **kw)


def _time_seed() -> int:
    import time

    return int(time.time())


@partial(jax.jit, static_argnums=0)
def _geometry_arrays(setup: Setup, params: Params):
    from .geometry import crystal as crystal_geo
    from .geometry import detector as det_geo

    return det_geo.detector_frame(setup, params), crystal_geo.lattice(setup, params)


def derived_geometry(setup: Setup, params: Params) -> dict:
    """Detector and cell quantities the C program prints or decides on (float64)."""
    frame, lat = _geometry_arrays(setup, params)
    real = np.asarray(lat.real) * 1e-10
    return dict(
        distance=float(frame.distance),
        close_distance=float(frame.close_distance),
        pix0=np.asarray(frame.pix0),
        fdet=np.asarray(frame.fdet),
        sdet=np.asarray(frame.sdet),
        odet=np.asarray(frame.odet),
        beam=np.asarray(frame.beam),
        Fbeam=float(frame.Fbeam),
        Sbeam=float(frame.Sbeam),
        Fclose=float(frame.Fclose),
        Sclose=float(frame.Sclose),
        cell_lengths_m=tuple(float(np.sqrt(np.sum(v * v))) for v in real),
        real_vectors=np.asarray(lat.real),
        reciprocal_vectors=np.asarray(lat.reciprocal),
        volume=float(lat.volume),
    )


def from_cli_args(argv: Sequence[str]) -> Experiment:
    """Parse the C program's flags (files are read here) into an ``Experiment``.

    Args:
      argv: the arguments after the program name, e.g.
        ``["-cell", "100", "100", "100", "90", "90", "90", "-default_F", "100"]``.
    Returns:
      ``Experiment`` with ``.setup`` (static, hashable) and ``.params`` (pytree).
    Raises:
      FlagError: unknown flag, bad value, impossible geometry.
      nanobragg_jax.io.errors.InputFileError: a missing or garbled input file.
    """
    argv = [str(a) for a in argv]
    validate_argv(argv)
    st = CState()
    _read_image_headers(st, argv)
    _apply_c_flag_loop(st, argv)
    if st.help:
        exp = Experiment(setup=Setup(), params=None, options=dict(help=True))  # type: ignore[arg-type]
        return exp
    return resolve(st)
