"""What the command line prints: the geometry summary, the render statistics, the SMV header.

Everything here works from an ``Experiment`` (``.setup``, ``.params``, ``.info``) and the
rendered image; nothing renders.  Geometry comes from the kernel's own functions
(``geometry.detector``, ``geometry.beam``) evaluated on the live params in float64, or from
``info`` (``experiment.derived_geometry``).  The figures and their layout follow the C
program's log, line for line where we know the quantity, so that a user can ``diff`` the two
logs (see docs/cli.md for the lines that differ on purpose).

Conventions of the C program reproduced here:

* statistics run over the *rendered* pixels: inside the ROI and not masked.  ``max_I`` starts
  at 0 and is replaced by a strictly larger pixel in raster order; its position is reported as
  the (Fdet, Sdet) of the *last* sub-pixel of that pixel, i.e.
  ``(index + 1 − ½/oversample)·pixel`` along each axis;
* ``mean = Σ/n``, ``rms = sqrt(Σv²/(n − 1))`` over the rendered pixels, but ``rmsd`` runs over
  every ROI pixel (masked ones included, with value 0) around that mean;
* the values are those of the float32 image the C program keeps;
* the "solid angle subtended by detector" is the C program's running sum of the solid angle
  used at each layer × sub-pixel, divided by ``steps``.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

import jax
import jax.numpy as jnp
from jax import Array

from ._compiled import setup_jit
from .config import Experiment, Params, Setup
from .geometry import beam as beam_geo
from .geometry import detector as det_geo
from .geometry.detector import roi_bounds, subpixel_coordinate

AVOGADRO = 6.02214179e23
_SHAPE_WORDS = {"ROUND": "ellipsoidal", "SQUARE": "parallelpiped", "GAUSS": "gaussian", "TOPHAT": "tophat-spot"}


# Log lines that are ours, not the C program's (the rest of the log is the C program's, line
# for line; tests/test_smv_golden.py compares it with the C program's log after dropping these).
OWN_LOG_PREFIXES = (
    "nanoBragg",  # banner, warnings
    "Statistics of the ",  # before max_I: how many pixels the statistics cover
    "Read header from ",  # -img / -mask header values taken
    "Convention: CUSTOM",  # which flags switched the detector convention to CUSTOM
    "Loaded ",  # sources read from -sourcefile
    "Debug output enabled",  # -printout
    "Limiting output to pixel",  # -printout_pixel
    "printout summary:",  # after the -printout blocks
    "Tracing pixel ",  # -trace_pixel
)


def g(x: float) -> str:
    """C ``%g`` (Python's ``%g`` follows it, including ``-0`` and exponent form)."""
    return "%g" % float(x)


# ---------------------------------------------------------------------------------------------
# regions
# ---------------------------------------------------------------------------------------------


def roi_mask(setup: Setup) -> np.ndarray:
    """Boolean (slow, fast) mask of the ROI pixels."""
    fmin, fmax, smin, smax = roi_bounds(setup)
    out = np.zeros((setup.spixels, setup.fpixels), bool)
    if fmax >= fmin and smax >= smin:
        out[smin:smax + 1, fmin:fmax + 1] = True
    return out


def rendered_mask(exp: Experiment) -> np.ndarray:
    """ROI pixels that are not masked out (the pixels the C program renders)."""
    keep = roi_mask(exp.setup)
    if exp.setup.has_mask:
        mask = np.asarray(exp.params.mask)
        if mask.shape == keep.shape:
            keep &= mask != 0
    return keep


# ---------------------------------------------------------------------------------------------
# statistics
# ---------------------------------------------------------------------------------------------


@dataclass
class RenderStats:
    """The C program's post-render figures (photons; positions in metres)."""

    max_I: float
    max_I_x: float  # Fdet of the last sub-pixel of the brightest pixel (m)
    max_I_y: float  # Sdet likewise
    max_pixel: Optional[tuple[int, int]]  # (slow, fast), None if no pixel > 0
    mean: float
    rms: float
    rmsd: float
    total: float  # Σ over rendered pixels
    n_rendered: int
    n_roi: int


def image_statistics(image: np.ndarray, exp: Experiment) -> RenderStats:
    """max_I (and where), mean, rms, rmsd of a rendered image, as the C program computes them."""
    img = np.asarray(image, np.float32).astype(np.float64)
    setup = exp.setup
    rendered = rendered_mask(exp)
    everything = bool(rendered.all())
    vals = img.ravel() if everything else img[rendered]
    n = int(vals.size)
    total = float(np.sum(vals)) if n else 0.0
    sumsqr = float(np.dot(vals, vals)) if n else 0.0

    max_I, max_x, max_y, where = 0.0, 0.0, 0.0, None
    if n:
        candidates = img if everything else np.where(rendered, img, -np.inf)
        flat = int(np.argmax(candidates))  # first occurrence in raster order
        best = float(candidates.ravel()[flat])
        if best > 0.0:
            s, f = divmod(flat, setup.fpixels)
            pixel = float(exp.params.pixel_size) / 1000.0
            last = setup.oversample - 1
            max_I, where = best, (s, f)
            max_x = subpixel_coordinate(f, last, setup.oversample, pixel)
            max_y = subpixel_coordinate(s, last, setup.oversample, pixel)

    sumn = n if n > 0 else 1
    mean = total / sumn
    if sumn <= 1:
        sumn = 2
    rms = math.sqrt(sumsqr / (sumn - 1))
    fmin, fmax, smin, smax = roi_bounds(setup)
    in_roi = img[smin:smax + 1, fmin:fmax + 1].ravel() if (fmax >= fmin and smax >= smin) else img[:0, 0]
    n_roi = int(in_roi.size)
    dev = in_roi - mean
    dev = float(np.dot(dev, dev)) if n_roi else 0.0
    rmsd = math.sqrt(dev / ((n_roi if n_roi > 1 else 2) - 1))
    return RenderStats(max_I, max_x, max_y, where, mean, rms, rmsd, total, n, n_roi)


def _unit(v) -> np.ndarray:
    v = np.asarray(v, np.float64)
    n = math.sqrt(float(np.dot(v, v)))
    return v / n if n > 0 else np.zeros(3)


def _params64(exp: Experiment) -> Params:
    """The live params in float64 (call inside ``jax.enable_x64(True)``): the log prints the
    C program's double-precision figures whatever dtype the image was rendered in."""
    return exp.params.astype(jnp.float64)


# Pixels × (layer·sub-pixel) evaluated per call of ``_solid_angle_block``.
_SOLID_ANGLE_BUDGET = 1 << 20


@setup_jit(static_argnames=("setup", "size"))
def _solid_angle_block(setup: Setup, params: Params, start: Array, size: int) -> Array:
    """Σ of the solid angle the kernel multiplies by, over ROI raster indices start … start+size−1.

    Without ``-oversample_omega`` every layer and sub-pixel of a pixel uses the Ω of its first
    sub-pixel (weight T·n²); with it, each layer × sub-pixel its own.  Masked pixels and
    indices past the ROI count 0.
    """
    frame = det_geo.detector_frame(setup, params)
    layer_step = det_geo.layer_thickness(setup, params)
    fmin, fmax, smin, smax = roi_bounds(setup)
    width = fmax - fmin + 1
    n_valid = width * (smax - smin + 1)
    lin = start + jnp.arange(size)
    keep = lin < n_valid
    lin = jnp.minimum(lin, n_valid - 1)
    s, f = smin + lin // width, fmin + lin % width
    if setup.has_mask:
        keep = keep & (params.mask[s, f] != 0)
    first_only = not setup.oversample_omega
    rays = det_geo.subpixel_rays(setup, frame, s, f, layer_step, first_only=first_only)
    omega = jnp.sum(det_geo.solid_angle(setup, frame, rays.airpath), axis=(0, 1, 2))
    if first_only:
        omega = omega * (setup.thicksteps * setup.n_subpixels)
    return jnp.sum(jnp.where(keep, omega, 0.0))


# What ``_solid_angle_block`` reads (tests/test_program_keys.py records it): the detector frame's
# fields and the sub-pixel rays'.  Its program is compiled for these alone, so flag sets that
# differ in the crystal, the beam's sources or the spot shape share it.
SOLID_ANGLE_SETUP_FIELDS = det_geo.FRAME_SETUP_FIELDS + (
    "spixels", "fpixels", "roi", "oversample", "thicksteps", "thick_divisor", "has_thickness",
    "oversample_omega", "has_mask", "point_pixel", "curved_detector")
SOLID_ANGLE_PARAM_FIELDS = det_geo.FRAME_PARAM_FIELDS + ("thickness", "mask")


def solid_angle_sum(exp: Experiment) -> float:
    """The C program's "solid angle subtended by detector" (sr): Σ Ω over layers × sub-pixels / steps.

    Evaluated with the kernel's own geometry (``geometry.detector``) from the live params,
    in blocks of pixels.
    """
    setup = exp.setup
    fmin, fmax, smin, smax = roi_bounds(setup)
    n_valid = max(fmax - fmin + 1, 0) * max(smax - smin + 1, 0)
    if n_valid == 0 or not rendered_mask(exp).any():
        return 0.0
    per_pixel = 1 if not setup.oversample_omega else setup.thicksteps * setup.n_subpixels
    size = int(min(n_valid, max(1, _SOLID_ANGLE_BUDGET // per_pixel)))
    total = 0.0
    key = setup.keeping(SOLID_ANGLE_SETUP_FIELDS)
    with jax.enable_x64(True):
        params = _params64(exp).keeping(SOLID_ANGLE_PARAM_FIELDS)
        for start in range(0, n_valid, size):
            total += float(_solid_angle_block(key, params, jnp.int64(start), size))
    return total / setup.steps


# ---------------------------------------------------------------------------------------------
# the SMV header
# ---------------------------------------------------------------------------------------------


def dials_origin(exp: Experiment) -> np.ndarray:
    """The DIALS origin (mm): pix0 expressed on the DIALS laboratory axes."""
    p = np.asarray(exp.info["pix0"], np.float64)
    return 1000.0 * np.array([p[2], p[1], -p[0]])


def header_items(exp: Experiment) -> list[tuple[str, str]]:
    """SMV header keys after the structural ones, with the C program's values and order."""
    info = exp.info
    pixel = float(exp.params.pixel_size) / 1000.0
    Fbeam, Sbeam = float(info["Fbeam"]), float(info["Sbeam"])
    dials = dials_origin(exp)
    rtd = 180.0 / math.pi
    phi0 = float(info["phi0"]) * rtd
    return [
        ("PIXEL_SIZE", g(pixel * 1000.0)),
        ("DISTANCE", g(info["distance"] * 1000.0)),
        ("WAVELENGTH", g(info["lambda0"] * 1e10)),
        ("BEAM_CENTER_X", g(info["Xbeam"] * 1000.0)),
        ("BEAM_CENTER_Y", g(info["Ybeam"] * 1000.0)),
        ("ADXV_CENTER_X", g(Fbeam * 1000.0)),
        ("ADXV_CENTER_Y", g((info["detsize_s"] - Sbeam) * 1000.0)),
        ("MOSFLM_CENTER_X", g((Sbeam - 0.5 * pixel) * 1000.0)),
        ("MOSFLM_CENTER_Y", g((Fbeam - 0.5 * pixel) * 1000.0)),
        ("DENZO_X_BEAM", g(Sbeam * 1000.0)),
        ("DENZO_Y_BEAM", g(Fbeam * 1000.0)),
        ("DIALS_ORIGIN", ",".join(g(x) for x in dials)),
        ("XDS_ORGX", g(info["Fclose"] / pixel + 0.5)),
        ("XDS_ORGY", g(info["Sclose"] / pixel + 0.5)),
        ("CLOSE_DISTANCE", g(info["close_distance"] * 1000.0)),
        ("PHI", g(phi0)),
        ("OSC_START", g(phi0)),
        ("OSC_RANGE", g(float(info["osc"]) * rtd)),
        ("TWOTHETA", g(float(info["twotheta"]) * rtd)),
        ("DETECTOR_SN", "000"),
        ("BEAMLINE", "fake"),
    ]


# ---------------------------------------------------------------------------------------------
# integer images
# ---------------------------------------------------------------------------------------------


def auto_int_scale(requested: float, max_I: float) -> float:
    """``-scale``, or 55000/max_I when it is ≤ 0 (1 when the image has no positive pixel)."""
    if requested > 0.0:
        return float(requested)
    return 55000.0 / max_I if max_I > 0.0 else 1.0


def auto_pgm_scale(requested: float, int_scale: float, rmsd: float) -> float:
    """``-pgmscale``, or 250/(5·rmsd) when it is ≤ 0 (the int scale when rmsd is 0)."""
    if requested > 0.0:
        return float(requested)
    return 250.0 / (5.0 * rmsd) if rmsd > 0.0 else int_scale


def int_image(image: np.ndarray, setup: Setup, scale: float, adc: float) -> np.ndarray:
    """The ``-intfile`` pixels: float32 value × scale + adc, clipped to [0, 65535], rounded.

    Rounding is the C program's ``floorf(v + 0.5)`` (the sum rounded to float first); pixels
    outside the ROI are 0, masked pixels inside it get the ADC offset.
    """
    img = np.asarray(image, np.float32).astype(np.float64)
    test = img * float(scale) + float(adc)
    test = np.where(test > 65535.0, 65535.0, test)
    test = np.where(test < 0.0, 0.0, test)
    test = np.where(np.isnan(test), 0.0, test)
    rounded = np.floor((test + 0.5).astype(np.float32)).astype(np.float64)
    out = np.clip(rounded, 0, 65535).astype(np.uint16)
    out[~roi_mask(setup)] = 0
    return out


# ---------------------------------------------------------------------------------------------
# the printed log
# ---------------------------------------------------------------------------------------------


def _cell_angles(vecs: np.ndarray, duals: np.ndarray, volume: float) -> tuple[float, float, float]:
    """α, β, γ (deg) the C program's way: atan2 of sin = |dual|·V/(|v₁||v₂|) and cos = v₁·v₂/(|v₁||v₂|)."""
    lengths = np.linalg.norm(vecs, axis=1)
    dual_lengths = np.linalg.norm(duals, axis=1)
    out = []
    for k, (i, j) in enumerate(((1, 2), (0, 2), (0, 1))):
        sin = dual_lengths[k] * volume / lengths[i] / lengths[j]
        cos = float(np.dot(vecs[i], vecs[j])) / lengths[i] / lengths[j]
        sin = max(-1.0, min(1.0, sin))
        if cos * cos > 1.0:
            cos = 1.0
        out.append(math.degrees(math.atan2(sin, cos)))
    return tuple(out)


def _vector_table(title: str, names: Sequence[str], rows: np.ndarray) -> list[str]:
    """The C program's 3×3 table: one column per vector, rows X, Y, Z."""
    out = [title, "     %-10s  %-10s  %-10s" % tuple(names)]
    for k, axis in enumerate("XYZ"):
        out.append("%s: %11.8f %11.8f %11.8f" % (axis, rows[0][k], rows[1][k], rows[2][k]))
    return out


def _c_state(argv: Sequence[str]):
    """The flag state right after the C program's argv loop (no files read)."""
    from .flags import CState, _apply_c_flag_loop

    st = CState()
    _apply_c_flag_loop(st, [str(a) for a in argv])
    return st


def _image_files(argv: Sequence[str]) -> tuple[Optional[str], Optional[str]]:
    """(-mask file, -img file) as the C program's pre-pass over argv finds them."""
    mask = img = None
    argv = [str(a) for a in argv]
    for i, arg in enumerate(argv):
        if arg.startswith("-") and i + 1 < len(argv):
            if "-img" in arg:
                img = argv[i + 1]
            if "-mask" in arg:
                mask = argv[i + 1]
    return mask, img


@setup_jit(static_argnames=("setup",))
def _beam_raster(setup: Setup, params: Params) -> dict:
    """The generated source raster as the log prints it, in one compiled call (evaluated
    op by op, the same numbers cost ~40 tiny compilations per run of the command):
    source positions (S, 3) m, dispersion wavelengths (W,) m, kept divergence tilts
    (S,) and raster steps (rad)."""
    hdiv, vdiv = beam_geo.divergence_angles(setup, params)
    hstep, vstep = beam_geo.divergence_steps(setup, params)
    return dict(positions=beam_geo.source_positions(setup, params),
                wavelengths=beam_geo.wavelengths(setup, params), hdiv=hdiv, vdiv=vdiv,
                hstep=hstep, vstep=vstep)


def _beam_log(exp: Experiment) -> dict:
    """``_beam_raster`` of the experiment in float64, as NumPy arrays."""
    with jax.enable_x64(True):
        return {k: np.asarray(v) for k, v in _beam_raster(exp.setup, _params64(exp)).items()}


def _source_rows(exp: Experiment, st) -> list[tuple[float, float, float, float, float]]:
    """(X, Y, Z, weight, λ) of every source as the C program lists them (m, m, m, -, m)."""
    setup, p = exp.setup, exp.params
    if setup.source_mode == "file":
        dirs = np.asarray(p.source_dirs, np.float64)
        lam = np.asarray(p.source_wavelengths, np.float64) * 1e-10
        weights = np.ones(dirs.shape[0])
        if st.sourcefilename:
            try:
                from .io.sources import read_source_file

                raw = np.asarray(read_source_file(st.sourcefilename), np.float64)
                if raw.shape[0] == dirs.shape[0]:
                    weights = np.where(np.isnan(raw[:, 3]), 1.0, raw[:, 3])
            except Exception:  # the weights are informative only
                pass
        return [(*dirs[i], weights[i], lam[i]) for i in range(dirs.shape[0])]
    raster = _beam_log(exp)
    positions, lam = raster["positions"], raster["wavelengths"]
    weight = 1.0 / max(setup.n_sources, 1)
    return [(*pos, weight, l) for pos in positions for l in lam]


def _divergence_lines(exp: Experiment) -> list[tuple[float, float, float]]:
    """(hdiv, vdiv) of each kept raster point (rad), and the dispersion wavelengths (m)."""
    raster = _beam_log(exp)
    return list(zip(raster["hdiv"], raster["vdiv"])), list(raster["wavelengths"])


def _div_steps(exp: Experiment) -> tuple[float, float]:
    """Divergence raster steps (rad)."""
    raster = _beam_log(exp)
    return float(raster["hstep"]), float(raster["vstep"])


_CUSTOM_FLAGS = ("-fdet_vector", "-sdet_vector", "-odet_vector", "-beam_vector", "-polar_vector",
                 "-spindle_axis", "-twotheta_axis", "-pix0_vector")
"""The flags that switch the C program to the CUSTOM convention (any argument containing one)."""


def summary_lines(exp: Experiment, argv: Sequence[str], *, banner: Optional[str] = None) -> list[str]:
    """The log the C program prints before rendering, for this experiment.

    ``argv`` is the command line (used for facts the Experiment does not keep: file names,
    which "auto" choices were made, the flag-time crystal size).
    """
    setup, p, info = exp.setup, exp.params, exp.info
    st = _c_state(argv)
    lines: list[str] = []
    mask_file, img_file = _image_files(argv)
    lines += [f"reading {name}" for name in (mask_file, img_file) if name]
    # ours: say what the header of each image file did (C reads -mask, then -img, then the flags)
    for flag, name in (("-mask", mask_file), ("-img", img_file)):
        if name:
            lines.append(f"Read header from {flag} file {name}: its detector values are the defaults "
                         "that the flags on the command line override")
    if banner:
        lines.append(banner)
    log = list(exp.log)
    early = [l for l in log if not (l.startswith("random orientation") or l.startswith("auto-selected")
                                    or l.startswith("reading Fs") or "dump file" in l)]
    lines += early
    lines.append(f"{setup.convention.lower()} convention selected.")
    if setup.convention == "CUSTOM":
        # ours: which of the flags switched the convention
        switched = [f for f in _CUSTOM_FLAGS if any(f in str(a) for a in argv)]
        lines.append("Convention: CUSTOM" + (f" (selected by {', '.join(switched)})" if switched else ""))
    lines.append("pivoting detector around sample" if setup.pivot == "SAMPLE"
                 else "pivoting detector around direct beam spot")
    beam = _unit(info["beam"])
    fdet, sdet, odet = (np.asarray(info[k], np.float64) for k in ("fdet", "sdet", "odet"))
    lines.append("XDS incident beam: %s %s %s" % (g(beam @ fdet), g(beam @ sdet), g(beam @ odet)))
    if st.interpolate > 1:
        auto_on = st.Na <= 2 or st.Nb <= 2 or st.Nc <= 2
        lines.append("auto-selected tricubic interpolation of structure factors" if auto_on
                     else "auto-selected no interpolation")
    if st.matfilename:
        lines.append(f"reading {st.matfilename}")
    lines += [l for l in log if l.startswith("random orientation")]

    real = np.asarray(info["real_vectors"], np.float64)  # rows a, b, c (Å)
    recip = np.asarray(info["reciprocal_vectors"], np.float64)
    a, b, c = real
    A, B, C = recip
    V = float(info["volume"])
    real_angles = _cell_angles(real, recip, V)
    recip_angles = _cell_angles(recip, real, 1.0 / V)
    lines.append("Unit Cell: %s %s %s %s %s %s" % tuple(
        g(x) for x in (*np.linalg.norm(real, axis=1), *real_angles)))
    lines.append("Recp Cell: %s %s %s %s %s %s" % tuple(
        g(x) for x in (*np.linalg.norm(recip, axis=1), *recip_angles)))
    lines.append(f"volume = {g(info['volume'])} A^3")
    lines += _vector_table("real-space cell vectors (Angstrom):", ("a", "b", "c"), real)
    lines += _vector_table("reciprocal-space cell vectors (Angstrom^-1):", ("a_star", "b_star", "c_star"), recip)

    N = np.asarray(p.N, np.float64)
    lengths_m = np.linalg.norm(real, axis=1) * 1e-10
    size = lengths_m * N
    lines.append("crystal is %s x %s x %s microns" % tuple(g(x * 1e6) for x in size))
    recommended = int(info.get("recommended_oversample", 1))
    if st.oversample <= 0:
        lines.append(f"auto-selected {setup.oversample}-fold oversampling")
    if setup.oversample < recommended:
        reciprocal_pixel = float(info["lambda0"]) * float(info["distance"]) / (float(p.pixel_size) / 1000.0)
        lines.append(f"WARNING: maximum dimension of sample is {g(float(np.max(size)) * 1e10)} A")
        lines.append(f"         but reciprocal pixel size is {g(reciprocal_pixel * 1e10)} A")
        lines.append("         intensity may vary significantly across a pixel!")
        lines.append(f"         recommend -oversample {recommended} to work around this")
    mw = float(np.prod(lengths_m)) * 1.2e6 * AVOGADRO
    lines.append(f"approximate MW = {g(mw)}")

    default_F = float(p.default_F)
    if st.hklfilename:
        lines.append(f"counting entries in {st.hklfilename}")
        if default_F != 0.0:
            lines.append(f"initializing to default_F = {g(default_F)}:")
            lines.append("done initializing:")
        lines.append(f"re-reading {st.hklfilename}")
        failed = [l for l in log if "dump file" in l]
        lines += failed if failed else [f"writing dump file for next time: {st.dumpfilename}"]
    else:
        lines += [l for l in log if l.startswith("reading Fs")]

    step = float(info.get("thickstep") or 0.0)
    for t in range(setup.thicksteps):
        lines.append(f"thick{t} = {g(step * t * 1e6)} um")
    for t in range(setup.phisteps):
        lines.append(f"phi{t} = {g(float(p.phi0) + float(p.phistep) * t)}")
    sources = _source_rows(exp, st)
    if setup.source_mode == "file" and st.sourcefilename:
        lines.append(f"Loaded {len(sources)} sources from {st.sourcefilename}")  # ours
    if setup.source_mode != "file":
        tilts, lams = _divergence_lines(exp)
        for hdiv, vdiv in tilts:
            lines.append(f"divergence deviation: {g(hdiv)} {g(vdiv)}")
        for t, lam in enumerate(lams):
            lines.append("lambda%d = %.15g" % (t, lam))
    lines.append(f"  created a total of {len(sources)} sources:")
    for X, Y, Z, w, lam in sources:
        lines.append(f"{g(X)} {g(Y)} {g(Z)}   {g(w)} {g(lam)}")
    lines.append(f"  created a total of {setup.mosaic_domains} mosaic domains")

    lines.append(f"  {int(info.get('hkl_count', 0))} initialized hkls (all others ={g(default_F)})")
    lines.append("  %s xtal: %.0fx%.0fx%.0f cells" % (_SHAPE_WORDS.get(setup.shape, setup.shape.lower()), *N))
    lines.append(f"  wave={g(info['lambda0'])} meters +/- {g(float(p.dispersion))}% in {setup.dispsteps} steps")
    if setup.nopolar:
        lines.append("  polarization effect disabled")
    else:
        lines.append("  Kahn polarization factor: %f" % float(p.kahn_factor))
    if setup.curved_detector:
        lines.append("  curved detector: all pixels same distance from origin")
    if setup.point_pixel:
        lines.append("  pixel obliquity effect disabled")
    pixel = float(p.pixel_size) / 1000.0
    lines.append(f"  incident fluence: {g(p.fluence)} photons/m^2")
    lines.append(f"  distance={g(info['distance'])} detsize={g(info['detsize_f'])}x{g(info['detsize_s'])}  "
                 f"pixel={g(pixel)} meters ({setup.fpixels}x{setup.spixels} pixels)")
    thick = float(p.thickness) * 1e-6 if setup.has_thickness else 0.0
    lines.append(f"  sensor is {g(thick)} m thick in {setup.thicksteps} layers with mu= {g(info.get('detector_mu', -1))}")
    lines.append(f"  Xbeam={g(info['Xbeam'])} Ybeam={g(info['Ybeam'])}")
    lines.append(f"  Fbeam={g(info['Fbeam'])} Sbeam={g(info['Sbeam'])}")
    lines.append(f"  Xclose={g(info['Xclose'])} Yclose={g(info['Yclose'])}")
    lines.append(f"  Fclose={g(info['Fclose'])} Sclose={g(info['Sclose'])}")
    for name, v in (("DIRECTION_OF_DETECTOR_X-AXIS", fdet), ("DIRECTION_OF_DETECTOR_Y-AXIS", sdet),
                    ("DIRECTION_OF_DETECTOR_Z-AXIS", odet), ("INCIDENT_BEAM_DIRECTION", beam),
                    ("spindle ROTATION_AXIS", _unit(p.spindle_axis))):
        lines.append(f"  {name}= {g(v[0])} {g(v[1])} {g(v[2])}")
    normal = np.cross(beam, _unit(p.polar_vector))
    lines.append(f"  POLARIZATION_PLANE_NORMAL= {g(normal[0])} {g(normal[1])} {g(normal[2])}")
    d = dials_origin(exp)
    lines.append(f"  dials origin= {g(d[0])} {g(d[1])} {g(d[2])}")
    fmin, fmax, smin, smax = setup.roi
    lines.append(f"  roi: {fmin} < x < {fmax} && {smin} < y < {smax}")
    hstep, vstep = _div_steps(exp)
    lines.append(f"  hdivrange={g(float(p.hdivrange) * 1e-3)} hdivstep={g(hstep)}  radians")
    lines.append(f"  vdivrange={g(float(p.vdivrange) * 1e-3)} vdivstep={g(vstep)}  radians")
    divsteps = len(setup.div_tics) if setup.source_mode != "file" else st.divsteps
    lines.append(f"  {divsteps} divergence steps")
    lines.append(f"  {setup.n_sources} sources")
    lines.append(f"  {setup.mosaic_domains} mosaic domains over mosaic spread of {g(float(p.mosaic_spread))} degrees")
    osc = float(info.get("osc", 0.0)) * 180.0 / math.pi
    lines.append(f"  {setup.phisteps} phi steps from {g(float(p.phi0))} to {g(float(p.phi0) + osc)} degrees")
    extra = "".join(w for w, on in ((" +thick", setup.oversample_thick), (" +polar", setup.oversample_polar),
                                    (" +omega", setup.oversample_omega)) if on)
    lines.append(f"  {setup.oversample}x{setup.oversample} pixel oversample steps{extra}")
    if setup.has_mask and mask_file:
        lines.append(f"  skipping zero-flagged pixels in {mask_file}")
    opts = exp.options
    if opts.get("calculate_noise"):
        lines.append("")
        lines.append("  noise image paramters:")
        lines.append(f"  seed: {opts.get('seed_used', opts.get('seed'))}")
        lines.append(f"  water droplet size: {g(float(p.water_size) * 1e-6)} m")
    return lines


def statistics_lines(stats: RenderStats, omega_per_steps: Optional[float]) -> list[str]:
    """The lines the C program prints right after rendering."""
    out = []
    if omega_per_steps is not None:
        out.append(f"solid angle subtended by detector = {g(omega_per_steps)} steradian "
                   f"( {g(100 * omega_per_steps / 4 / math.pi)}% sphere)")
    return out


def max_mean_lines(stats: RenderStats) -> list[str]:
    return [f"max_I = {g(stats.max_I)}  at {g(stats.max_I_x)} {g(stats.max_I_y)}",
            f"mean= {g(stats.mean)} rms= {g(stats.rms)} rmsd= {g(stats.rmsd)}"]


def printout_summary_line(stats: RenderStats, shape: tuple) -> str:
    """Ours, after the -printout blocks: the image's size, brightest pixel and mean in one line."""
    line = f"printout summary: Image shape {shape[0]}x{shape[1]} (slow x fast)"
    if stats.max_pixel is not None:
        s, f = stats.max_pixel
        line += f"; Max intensity {g(stats.max_I)} photons at pixel fast={f} slow={s}"
    return line + f"; Mean intensity {g(stats.mean)} photons over {stats.n_rendered} rendered pixels"


def same_file(a: str, b: str) -> bool:
    """Whether two output names refer to the same file (for duplicate-output warnings)."""
    return os.path.abspath(a) == os.path.abspath(b)
