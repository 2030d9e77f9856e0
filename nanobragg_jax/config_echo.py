"""``-show_config`` / ``-echo_config`` (ours, not in the C program): the resolved configuration.

The C program's log (``report.summary_lines``) tells what the program does, in its own words and
order.  This block lists the values the render will use, grouped as crystal, beam and detector,
in the units of the flags (Å, degrees, mm), after every flag, image header (``-img``/``-mask``)
and input file (``-mat``, ``-hkl``, ``-sourcefile``) has been applied.  The command prints it
after its log and before rendering; the run itself is unchanged.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from .config import Experiment


def _f(x: float, digits: int = 3) -> str:
    return f"{float(x):.{digits}f}"


def _crystal(exp: Experiment, st) -> list[str]:
    from .report import _cell_angles, g

    setup, p, info = exp.setup, exp.params, exp.info
    real = np.asarray(info["real_vectors"], np.float64)
    recip = np.asarray(info["reciprocal_vectors"], np.float64)
    volume = float(info["volume"])
    a, b, c = np.linalg.norm(real, axis=1)
    al, be, ga = _cell_angles(real, recip, volume)
    lines = ["Crystal Configuration:",
             f"  Cell: a={_f(a)} b={_f(b)} c={_f(c)} Å  alpha={_f(al)}° beta={_f(be)}° gamma={_f(ga)}°"
             f"  (volume {g(volume)} Å^3)"]
    if st.matfilename:
        lines.append(f"  Orientation: from -mat {st.matfilename}")
    else:
        misset = np.asarray(p.misset, np.float64)
        lines.append("  Orientation: from -cell, misset rotations x=%s° y=%s° z=%s°" % tuple(_f(x) for x in misset[:3]))
    N = np.asarray(p.N, np.float64)
    lines.append("  Size: %d x %d x %d cells, %s shape" % (*N, setup.shape.lower()))
    if st.hklfilename:
        source = f"{int(info.get('hkl_count', 0))} reflections from -hkl {st.hklfilename}"
    elif setup.has_hkl:
        source = f"{int(info.get('hkl_count', 0))} reflections from {st.dumpfilename}"
    else:
        source = "no -hkl file"
    lines.append(f"  Structure factors: {source}; default_F={g(float(p.default_F))} for every other reflection; "
                 f"tricubic interpolation {'on' if setup.interpolate else 'off'}")
    lines.append(f"  Mosaic: spread {_f(p.mosaic_spread)}° in {setup.mosaic_domains} domain(s)")
    osc = float(info.get("osc", 0.0)) * 180.0 / math.pi
    lines.append(f"  Spindle: phi start {_f(p.phi0)}°, oscillation {_f(osc)}° in {setup.phisteps} step(s)")
    return lines


def _beam(exp: Experiment, st) -> list[str]:
    from .report import g

    setup, p = exp.setup, exp.params
    lines = ["Beam Configuration:",
             f"  Wavelength: {float(p.wavelength):.4f} Å"
             + (f" (dispersion {g(float(p.dispersion))}% in {setup.dispsteps} steps)" if setup.dispsteps > 1 else "")]
    n = setup.n_sources
    if setup.source_mode == "file":
        how = f"Loaded {n} sources from {st.sourcefilename}" if st.sourcefilename else "given as a list"
    elif n > 1:
        how = (f"Generated {n} sources from divergence/dispersion: {len(setup.div_tics)} divergence "
               f"point(s) x {setup.dispsteps} wavelength(s)")
    else:
        how = "the beam direction alone (no divergence or dispersion)"
    lines.append(f"  Sources: {n} ({how})")
    if setup.source_mode != "file":
        lines.append(f"  Divergence: horizontal {g(float(p.hdivrange))} mrad, vertical {g(float(p.vdivrange))} mrad")
    lines.append(f"  Fluence: {g(float(p.fluence))} photons/m^2")
    lines.append("  Polarization: " + ("off (-nopolar)" if setup.nopolar
                                         else f"Kahn factor {g(float(p.kahn_factor))}"))
    return lines


def _detector(exp: Experiment, st) -> list[str]:
    setup, p, info = exp.setup, exp.params, exp.info
    rot = np.asarray(p.detector_rotation, np.float64)
    lines = ["Detector Configuration:",
             f"  Convention: {setup.convention}, pivot {setup.pivot}",
             f"  Pixels: {setup.fpixels} x {setup.spixels} (fast x slow) of {_f(p.pixel_size, 4)} mm, "
             f"oversample {setup.oversample}",
             f"  Distance: {_f(p.distance)} mm (sample to beam spot; the detector plane is at "
             f"{_f(float(info['close_distance']) * 1000.0)} mm)",
             f"  Beam center: Xbeam={_f(float(info['Xbeam']) * 1000.0)} Ybeam={_f(float(info['Ybeam']) * 1000.0)} mm, "
             f"Fbeam={_f(float(info['Fbeam']) * 1000.0)} Sbeam={_f(float(info['Sbeam']) * 1000.0)} mm",
             f"  Rotations: rotx={_f(rot[0])}° roty={_f(rot[1])}° rotz={_f(rot[2])}° twotheta={_f(p.twotheta)}°"]
    fmin, fmax, smin, smax = (int(x) for x in st.roi)
    if fmin >= 0:
        lines.append(f"  ROI: fast {fmin}..{fmax}, slow {smin}..{smax}")
    if setup.has_thickness:
        lines.append(f"  Sensor: {float(p.thickness):g} µm thick in {setup.thicksteps} layer(s), "
                     f"attenuation depth {float(p.attenuation_depth):g} µm")
    if setup.has_mask and st.maskfilename:
        lines.append(f"  Mask: {st.maskfilename}")
    return lines


def config_lines(exp: Experiment, argv: Sequence[str]) -> list[str]:
    """The ``-show_config`` block for an experiment parsed from ``argv``."""
    from .report import _c_state

    st = _c_state(argv)
    lines = ["CONFIGURATION ECHO (-show_config): the values this run renders with"]
    lines += _crystal(exp, st) + _beam(exp, st) + _detector(exp, st)
    lines.append("END OF CONFIGURATION ECHO")
    return lines
