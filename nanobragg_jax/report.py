"""What the command line prints: the geometry summary, the render statistics, the SMV header.

Everything here is host-side arithmetic on an ``Experiment`` (``.setup``, ``.params``,
``.info``) and the rendered image; nothing renders.  The figures and their layout follow the C
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

from .config import Experiment, Setup

AVOGADRO = 6.02214179e23
_SHAPE_WORDS = {"ROUND": "ellipsoidal", "SQUARE": "parallelpiped", "GAUSS": "gaussian", "TOPHAT": "tophat-spot"}


def g(x: float) -> str:
    """C ``%g`` (Python's ``%g`` follows it, including ``-0`` and exponent form)."""
    return "%g" % float(x)


# ---------------------------------------------------------------------------------------------
# regions
# ---------------------------------------------------------------------------------------------


def roi_bounds(setup: Setup) -> tuple[int, int, int, int]:
    """(fmin, fmax, smin, smax) of the rendered window, inclusive and clipped to the image."""
    fmin, fmax, smin, smax = setup.roi
    return (max(fmin, 0), min(fmax, setup.fpixels - 1), max(smin, 0), min(smax, setup.spixels - 1))


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
            sub = pixel / setup.oversample
            last = setup.oversample - 1
            max_I, where = best, (s, f)
            max_x = sub * (f * setup.oversample + last) + sub / 2.0
            max_y = sub * (s * setup.oversample + last) + sub / 2.0

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


def solid_angle_sum(exp: Experiment) -> float:
    """The C program's "solid angle subtended by detector" (sr): Σ ω over layers × sub-pixels / steps.

    Without ``-oversample_omega`` every layer and sub-pixel of a pixel reuses the solid angle of
    its first sub-pixel, so one evaluation per pixel suffices; with it, every layer × sub-pixel
    is evaluated.  Works row block by row block on component arrays (no (…, 3) temporaries).
    """
    setup, info = exp.setup, exp.info
    rendered = rendered_mask(exp)
    if not rendered.any():
        return 0.0
    n, T = setup.oversample, setup.thicksteps
    pixel = float(exp.params.pixel_size) / 1000.0
    sub = pixel / n
    pix0 = np.asarray(info["pix0"], np.float64)
    fdet, sdet, odet = (np.asarray(info[k], np.float64) for k in ("fdet", "sdet", "odet"))
    beam = _unit(info["beam"])
    distance = float(info["distance"])
    close = float(info["close_distance"])
    layer = float(info.get("thickstep") or 0.0) if setup.has_thickness else 0.0
    if setup.oversample_omega:
        subs = [(i, j, t) for t in range(T) for i in range(n) for j in range(n)]
        weight = 1.0
    else:
        subs = [(0, 0, 0)]
        weight = float(n * n * T)
    rows = np.flatnonzero(rendered.any(axis=1))
    fidx = np.arange(setup.fpixels, dtype=np.float64)
    block = max(1, (1 << 20) // max(setup.fpixels, 1))
    total = 0.0
    for start in range(0, rows.size, block):
        r = rows[start:start + block]
        keep = rendered[r]
        rv = r.astype(np.float64)[:, None]
        for i, j, t in subs:
            S = sub * (rv * n + i) + sub / 2.0  # (R, 1)
            F = sub * (fidx[None, :] * n + j) + sub / 2.0  # (1, Fp)
            O = t * layer
            if setup.curved_detector:
                x, y, z = (pix0[k] + S * sdet[k] + F * fdet[k] + O * odet[k] for k in range(3))
                x, y, z = _curve_components(x, y, z, beam, fdet, sdet, distance)
                R2 = x * x + y * y + z * z
            else:
                # |b + S·s + F·f|² expanded, b = pix0 + O·o: row terms + column terms + S·F term
                b = pix0 + O * odet
                rowv = b[None, :] + S * sdet[None, :]  # (R, 3)
                R2 = np.sum(rowv * rowv, axis=1)[:, None] + F * (2.0 * (b @ fdet) + F * (fdet @ fdet))
                fs = float(fdet @ sdet)
                if fs != 0.0:
                    R2 = R2 + 2.0 * fs * S * F
            if setup.point_pixel:
                om = 1.0 / R2
            else:
                om = pixel * pixel / R2 * close / np.sqrt(R2)
            total += float(np.sum(om, where=keep)) * weight
    return total / setup.steps


def _rotate_components(v, axis, angle):
    """Rodrigues rotation of component arrays v = (x, y, z) about a unit axis by angle arrays."""
    c, s = np.cos(angle), np.sin(angle)
    ax, ay, az = axis
    x, y, z = v
    dot = (ax * x + ay * y + az * z) * (1.0 - c)
    return (ax * dot + x * c + (ay * z - az * y) * s,
            ay * dot + y * c + (az * x - ax * z) * s,
            az * dot + z * c + (ax * y - ay * x) * s)


def _curve_components(x, y, z, beam, fdet, sdet, distance: float):
    start = tuple(np.full(np.broadcast(x, y, z).shape, distance * b) for b in beam)
    step = _rotate_components(start, sdet, y / distance)
    return _rotate_components(step, fdet, z / distance)


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
    beam = _unit(p.beam_vector)
    polar = _unit(p.polar_vector)
    vert = _unit(np.cross(beam, polar))
    hstep, vstep = _div_steps(exp)
    hrange, vrange = float(p.hdivrange) * 1e-3, float(p.vdivrange) * 1e-3
    lam0 = float(p.wavelength) * 1e-10
    disp = float(p.dispersion) / 100.0
    dstep = disp / setup.disp_divisor if setup.disp_divisor else 0.0
    weight = 1.0 / max(setup.n_sources, 1)
    rows = []
    for ht, vt in setup.div_tics:
        hdiv = hstep * ht - hrange / 2.0
        vdiv = vstep * vt - vrange / 2.0
        v = _rotate_c([-10.0 * x for x in beam], polar, vdiv)
        v = _rotate_c(v, vert, hdiv)
        for t in range(setup.dispsteps):
            rows.append((v[0], v[1], v[2], weight, lam0 * (1.0 + dstep * t - disp / 2.0)))
    return rows


def _rotate_c(v, axis, phi: float) -> list[float]:
    """Rodrigues rotation with the C program's term order (so signed zeros print alike)."""
    v = [float(x) for x in v]
    a = [float(x) for x in axis]
    sinphi, cosphi = math.sin(phi), math.cos(phi)
    dot = (a[0] * v[0] + a[1] * v[1] + a[2] * v[2]) * (1.0 - cosphi)
    return [a[0] * dot + v[0] * cosphi + (-a[2] * v[1] + a[1] * v[2]) * sinphi,
            a[1] * dot + v[1] * cosphi + (+a[2] * v[0] - a[0] * v[2]) * sinphi,
            a[2] * dot + v[2] * cosphi + (-a[1] * v[0] + a[0] * v[1]) * sinphi]


def _div_steps(exp: Experiment) -> tuple[float, float]:
    setup, p = exp.setup, exp.params
    h = float(p.hdivrange) / setup.hdiv_divisor if setup.hdiv_divisor else float(p.hdivstep)
    v = float(p.vdivrange) / setup.vdiv_divisor if setup.vdiv_divisor else float(p.vdivstep)
    return h * 1e-3, v * 1e-3


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
    if banner:
        lines.append(banner)
    log = list(exp.log)
    early = [l for l in log if not (l.startswith("random orientation") or l.startswith("auto-selected")
                                    or l.startswith("reading Fs") or "dump file" in l)]
    lines += early
    lines.append(f"{setup.convention.lower()} convention selected.")
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
    if setup.source_mode != "file":
        hstep, vstep = _div_steps(exp)
        hrange, vrange = float(p.hdivrange) * 1e-3, float(p.vdivrange) * 1e-3
        for ht, vt in setup.div_tics:
            lines.append(f"divergence deviation: {g(hstep * ht - hrange / 2.0)} {g(vstep * vt - vrange / 2.0)}")
        lam0 = float(p.wavelength) * 1e-10
        disp = float(p.dispersion) / 100.0
        dstep = disp / setup.disp_divisor if setup.disp_divisor else 0.0
        for t in range(setup.dispsteps):
            lines.append("lambda%d = %.15g" % (t, lam0 * (1.0 + dstep * t - disp / 2.0)))
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


def same_file(a: str, b: str) -> bool:
    """Whether two output names refer to the same file (for duplicate-output warnings)."""
    return os.path.abspath(a) == os.path.abspath(b)
