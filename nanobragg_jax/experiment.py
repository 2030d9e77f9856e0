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
from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ._compiled import setup_jit
from .config import Experiment, Params, Setup
from .geometry import crystal as crystal_geo
from .geometry import detector as det_geo
from .flags import RTD, CState, FlagError, MissingInputError, parse_c_state, read_unused_inputs, validate_argv

from .io.errors import InputFileError  # noqa: E402
from .model.detector import CONVENTION_VECTORS, default_pivot  # noqa: E402


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


# ----------------------------------------------------------------------------
# resolve: the C program's defaults and precedence, stage by stage, in its order.
# Each stage reads and completes the flag state; the last ones build the model.
# ----------------------------------------------------------------------------


def _stage_detector_size(st: CState) -> None:
    """Pixel counts from -detpixels or -detsize/-pixel (the C rounding)."""
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


def _stage_fluence(st: CState, log: list) -> None:
    """Fluence from flux × exposure / beam size², and the beam clipping the crystal."""
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


def _stage_near_point_and_roi(st: CState) -> tuple[float, float, list]:
    """Near point (Fclose, Sclose) from -ORGX/-ORGY or the centre; the ROI with its defaults."""
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
    return Fclose, Sclose, roi


def _stage_convention(st: CState) -> np.ndarray:
    """Beam centre defaults in the convention's axes; the convention's vectors and pivot.

    Returns the unit beam vector.
    """
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
    if conv in CONVENTION_VECTORS and conv != "CUSTOM":
        (st.beam_vector, st.fdet_vector, st.sdet_vector, st.odet_vector, st.twotheta_axis,
         st.polar_vector, st.spindle_vector) = [list(map(float, v)) for v in CONVENTION_VECTORS[conv]]
        st.detector_pivot = default_pivot(conv)
    for name, vec in (("-fdet_vector", st.fdet_vector), ("-sdet_vector", st.sdet_vector),
                      ("-beam_vector", st.beam_vector), ("-polar_vector", st.polar_vector),
                      ("-spindle_axis", st.spindle_vector), ("-twotheta_axis", st.twotheta_axis)):
        if not any(float(x) != 0.0 for x in vec):
            raise FlagError(f"{name}: the direction vector is zero")
    return _unit(st.beam_vector)


def _stage_required_inputs(st: CState) -> None:
    """Structure factors and a cell must exist (the C program's usage exit); λ must be usable."""
    hkl_missing = st.hklfilename is None and not os.path.exists(st.dumpfilename) and st.default_F == 0.0
    if hkl_missing:
        raise MissingInputError("no structure factors: give -hkl FILE or -default_F F (or an Fdump.bin cache)")
    if st.matfilename is None and st.cell[0] == 0.0:
        raise FlagError("no unit cell: give -cell a b c alpha beta gamma or -mat FILE")
    # Checked here, before the matrix stage divides by it.
    if st.lambda0 <= 0 or not math.isfinite(st.lambda0):
        raise FlagError("-lambda/-energy: the wavelength must be positive and finite")


def _stage_sampling(st: CState, log: list) -> dict:
    """φ, divergence, dispersion, sensor layers and mosaic domains with their "auto" rules.

    Returns the divisors (step = range/divisor; 0 = the step as given).
    """
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
    if disp_div not in (0.0, float(st.dispsteps - 1)):
        # The C program's rule for -dispsteps with a negative -dispersion: a 100 % band.
        raise FlagError("-dispersion: the spectral width must not be negative")
    return dict(hdiv=hdiv_div, vdiv=vdiv_div, disp=disp_div, thick=thick_div)


def _stage_cell(st: CState) -> tuple[Optional[list], Optional[np.ndarray]]:
    """Cell constants (Å, deg) with the C program's fill-ins, and the -mat orientation (Å⁻¹)."""
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
    orientation = None
    if st.matfilename is not None:
        # A matrix wins over -cell (the C program reads it after the cell).
        from .io.matrix import read_mosflm_matrix

        m = np.asarray(read_mosflm_matrix(st.matfilename), np.float64)
        orientation = m * (1e-10 / st.lambda0)
        if not np.all(np.isfinite(orientation)) or abs(np.linalg.det(orientation)) == 0.0:
            raise FlagError(f"-mat {st.matfilename}: the matrix is singular or not finite")
    cell_deg = cell[:3] + [c * RTD for c in cell[3:]] if st.user_cell else None
    return cell_deg, orientation


def _stage_misset(st: CState, log: list) -> list:
    """Misset angles (deg): given, random (from -misset_seed or the clock), or none."""
    if st.misset[0] == -1.0:
        from .rng import random_misset_angles

        # As in the C program, -seed does not reach the misset stream: its default is
        # the time-based seed the program starts with.
        seed = st.misset_seed if st.misset_seed is not None else -_time_seed()
        ang = random_misset_angles(seed)
        log.append("random orientation misset angles: %f %f %f deg" % tuple(np.asarray(ang) * RTD))
        return [float(x) * RTD for x in ang]
    if st.misset[0] > 0.0:
        return [st.misset[1] * RTD, st.misset[2] * RTD, st.misset[3] * RTD]
    return [0.0, 0.0, 0.0]


def _stage_sources(st: CState, beam_unit: np.ndarray):
    """A -sourcefile as a Spectrum (the C program ignores its weights), or the raster check."""
    from .model import Spectrum, divergence_raster

    if st.sourcefilename is not None:
        rows = _sources_from_file(st, beam_unit)
        if not st.weighted_sources:  # C-exact: the intensity column is read and ignored
            return Spectrum(wavelengths=rows[:, 4] * 1e10, directions=rows[:, 0:3])
        weights = rows[:, 3]
        if np.any(weights < 0) or not np.sum(weights) > 0:
            raise FlagError(f"-weighted_sources: the weights in -sourcefile {st.sourcefilename} "
                            "(column 4) must be ≥ 0 and not all 0")
        return Spectrum(wavelengths=rows[:, 4] * 1e10, directions=rows[:, 0:3], weights=weights)
    if st.round_div and not divergence_raster(st.hdivrange, st.vdivrange, st.hdivstep, st.vdivstep,
                                              st.hdivsteps, st.vdivsteps, True):
        raise FlagError("divergence: the round-divergence cut left no source (use -square_div)")
    return None


def _divergence(st: CState, div: dict):
    """The divergence raster in the model's terms (mrad; step None = range/(steps − 1))."""
    from .model import Divergence

    def step(steps, rng, given, divisor):
        if divisor and divisor == steps - 1:
            return None  # derived from the range: stays differentiable in it
        return given * 1e3 if not divisor else rng * 1e3 / divisor

    return Divergence(h_range=st.hdivrange * 1e3, v_range=st.vdivrange * 1e3,
                      h_steps=st.hdivsteps, v_steps=st.vdivsteps,
                      h_step=step(st.hdivsteps, st.hdivrange, st.hdivstep, div["hdiv"]),
                      v_step=step(st.vdivsteps, st.vdivrange, st.vdivstep, div["vdiv"]),
                      round=st.round_div)


def _stage_model(st: CState, div: dict, cell, orientation, misset, hkl, spectrum,
                 Fclose: float, Sclose: float, roi: list):
    """The flag state as a ``Model`` (before the crystal-size and oversampling stage)."""
    from . import model as M

    sf = M.StructureFactors.from_grid(hkl) if (hkl is not None and hkl.count > 0) else None
    close_given = not _isnan(st.close_distance)
    crystal = M.Crystal(
        cell=cell, orientation=orientation, misset=misset,
        N=[max(st.Na, 1.0), max(st.Nb, 1.0), max(st.Nc, 1.0)],  # the C program's floor of 1 cell
        default_F=st.default_F, structure_factors=sf, fudge=st.fudge, shape=st.xtal_shape,
        interpolate=bool(st.interpolate) and sf is not None)
    beam = M.Beam(
        wavelength=st.lambda0 * 1e10, direction=list(st.beam_vector), polarization_axis=list(st.polar_vector),
        kahn_factor=st.polarization, apply_polarization=not st.nopolar, fluence=st.fluence,
        dispersion=st.dispersion * 100.0, dispersion_steps=st.dispsteps,
        divergence=_divergence(st, div), spectrum=spectrum)
    if st.mask is not None and tuple(np.shape(st.mask)) != (st.spixels, st.fpixels):
        h, w = np.shape(st.mask)
        raise FlagError(f"-mask {st.maskfilename}: the mask is {w}x{h} pixels but the detector is "
                        f"{st.fpixels}x{st.spixels} (set by -detpixels/-detsize/-pixel or -img)")
    panel = M.NanoBraggPanel(
        convention=st.beam_convention, pivot=st.detector_pivot, n_fast=st.fpixels, n_slow=st.spixels,
        pixel_size=st.pixel_size * 1e3, distance=st.distance * 1e3,
        close_distance=st.close_distance * 1e3 if close_given else None,
        beam_center=[st.Xbeam * 1e3, st.Ybeam * 1e3], close_center=[Fclose * 1e3, Sclose * 1e3],
        rotations=[st.detector_rotx * RTD, st.detector_roty * RTD, st.detector_rotz * RTD],
        twotheta=st.detector_twotheta * RTD, twotheta_axis=list(st.twotheta_axis),
        fast_axis=list(st.fdet_vector), slow_axis=list(st.sdet_vector), normal=list(st.odet_vector),
        mask=st.mask, roi=tuple(roi))
    sensor = M.Sensor(
        thickness=st.detector_thick * 1e6,
        attenuation_depth=(1.0 / st.detector_mu) * 1e6 if st.detector_mu > 0 else 1.0,
        layers=st.detector_thicksteps, layer_divisor=div["thick"])
    detector = M.Detector(
        panels=(panel,), sensor=sensor, oversample=max(st.oversample, 1),
        oversample_thick=st.oversample_thick, oversample_polar=st.oversample_polar,
        oversample_omega=st.oversample_omega, point_pixel=st.point_pixel, curved=st.curved_detector)
    goniometer = M.Goniometer(axis=list(st.spindle_vector), phi0=st.phi0 * RTD, phi_step=st.phistep * RTD,
                              phi_steps=st.phisteps)
    mosaicity = M.Mosaicity(spread=st.mosaic_spread * RTD, domains=st.mosaic_domains, seed=st.mosaic_seed)
    return M.Model(crystal=crystal, beam=beam, detector=detector, goniometer=goniometer, mosaicity=mosaicity,
                   water=st.water_size * 1e6, dmin=st.dmin * 1e10 if st.dmin > 0 else None)


def _stage_size_and_oversample(st: CState, model, log: list):
    """Crystal size → N and the automatic oversampling, from the lowered geometry (float64).

    Returns (model, geometry dict, recommended oversample, largest crystal edge in m).
    """
    from .model import lower, oversample_rule

    setup, params = lower(model)
    with jax.enable_x64(True):
        p64 = jax.tree_util.tree_map(lambda x: jnp.asarray(x, jnp.float64), params)
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
    xtal_max = max(a_len * st.Na, b_len * st.Nb, c_len * st.Nc)
    recommended = oversample_rule(xtal_max, st.lambda0, geo["distance"], st.pixel_size)
    if st.oversample <= 0 and recommended > MAX_AUTO_OVERSAMPLE:
        raise FlagError(
            f"automatic oversampling would need {recommended}×{recommended} sub-pixels per pixel "
            "(crystal too large for the pixel size at this distance, or degenerate geometry); "
            "give -oversample explicitly")
    oversample = st.oversample if st.oversample > 0 else recommended
    if st.oversample <= 0:
        log.append(f"auto-selected {oversample}-fold oversampling")
    model = model.replace(crystal=model.crystal.replace(N=np.array([st.Na, st.Nb, st.Nc])),
                          detector=model.detector.replace(oversample=oversample))
    return model, geo, recommended, xtal_max


def _stage_options(st: CState) -> dict:
    """Host-side facts for the command line: outputs, seeds, printing."""
    return dict(
        floatfile=st.floatfilename, intfile=st.intfilename, noisefile=st.noisefilename,
        pgmfile=st.pgmfilename, pngfile=st.pngfilename, write_pgm=st.write_pgm,
        calculate_noise=st.calculate_noise, intfile_scale=st.intfile_scale,
        pgm_scale=st.pgm_scale, adc=st.adc_offset, seed=st.seed, noise_exact=st.noise_exact,
        printout=st.printout, printout_pixel=st.printout_pixel, trace_pixel=st.trace_pixel,
        progress=st.progress_meter, dtype=st.dtype, help=st.help, given=set(st.given),
    )


def resolve(st: CState) -> Experiment:
    """Apply the C program's defaults and precedence to the parsed flag state.

    argv → flag state → (these stages) → ``Model`` → ``lower`` → Setup + Params.
    Values the model rejects (its own invariants) are reported as ``FlagError``.
    """
    log: list[str] = []
    _stage_detector_size(st)
    _stage_fluence(st, log)
    Fclose, Sclose, roi = _stage_near_point_and_roi(st)
    beam_unit = _stage_convention(st)
    _stage_required_inputs(st)
    div = _stage_sampling(st, log)
    cell, orientation = _stage_cell(st)
    misset = _stage_misset(st, log)
    hkl = _load_structure_factors(st, log)
    spectrum = _stage_sources(st, beam_unit)
    try:
        model = _stage_model(st, div, cell, orientation, misset, hkl, spectrum, Fclose, Sclose, roi)
        model, geo, recommended, xtal_max = _stage_size_and_oversample(st, model, log)
        from .model import lower

        setup, params = lower(model)
    except FlagError:
        raise
    except (ValueError, NotImplementedError) as err:
        if isinstance(err, InputFileError):
            raise
        raise FlagError(f"invalid experiment: {err}") from err
    if st.dtype == "float32":
        params = params.astype(np.float32)
    info = dict(geo)
    info.update(Xbeam=st.Xbeam, Ybeam=st.Ybeam, Xclose=st.Xclose, Yclose=st.Yclose,
                detsize_f=st.detsize_f, detsize_s=st.detsize_s, lambda0=st.lambda0,
                osc=st.osc, phi0=st.phi0, twotheta=st.detector_twotheta,
                hkl_count=(hkl.count if hkl is not None else 0), recommended_oversample=recommended,
                detector_mu=st.detector_mu, thickstep=st.detector_thickstep,
                divsteps=len(setup.div_tics) if setup.source_mode == "generated" else 1,
                xtal_size_max=xtal_max)
    return Experiment(setup=setup, params=params, options=_stage_options(st), info=info, log=log,
                      model=model)


NAN_ = float("nan")
MAX_AUTO_OVERSAMPLE = 10000  # beyond this an automatic choice is a geometry mistake, not a request


def _replace(setup: Setup, **kw) -> Setup:
    import dataclasses

    return dataclasses.replace(setup, **kw)


def _time_seed() -> int:
    import time

    return int(time.time())


# bounded cache of compiled setups (cli branch); scalar geometry: quick compile options
@setup_jit(static_argnames=("setup",), optimize=False)
def _geometry_arrays(setup: Setup, params: Params):
    return det_geo.detector_frame(setup, params), crystal_geo.lattice(setup, params)


# ``derived_geometry`` compiles its program for what the detector frame and the lattice read, so
# flag sets that differ in anything else (detector size, sources, N, oversampling, the HKL grid,
# the mask) share one program instead of compiling their own (~0.7 s at every new setup of the
# command line).
GEOMETRY_PARAM_FIELDS = det_geo.FRAME_PARAM_FIELDS + crystal_geo.LATTICE_PARAM_FIELDS


def geometry_fields(setup: Setup) -> tuple[str, ...]:
    """The Setup fields the detector frame and the lattice read for this setup."""
    return det_geo.frame_fields(setup) + crystal_geo.LATTICE_SETUP_FIELDS


def geometry_key(setup: Setup, params: Params) -> tuple[Setup, Params]:
    """(setup, params) reduced to what the detector frame and the lattice depend on: the other
    Setup fields at their defaults, the other Params leaves float zeros of shape ()."""
    return setup.keeping(geometry_fields(setup)), params.keeping(GEOMETRY_PARAM_FIELDS)


def derived_geometry(setup: Setup, params: Params) -> dict:
    """Detector and cell quantities the C program prints or decides on (float64)."""
    frame, lat = _geometry_arrays(*geometry_key(setup, params))
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
    st = parse_c_state(argv)
    if st.help:
        exp = Experiment(setup=Setup(), params=None, options=dict(help=True))  # type: ignore[arg-type]
        return exp
    read_unused_inputs(st)  # -stol: read and checked, unused (as in the C program)
    return resolve(st)
