"""Per-pixel traces: every intermediate quantity of the kernel for chosen pixels.

Two forms:

* :func:`c_printout_lines` — the block the C program prints with ``-printout`` (for every
  rendered pixel) or ``-printout_pixel f s`` (one pixel): the values its loop variables hold
  after the pixel is done (last sub-pixel position, last computed h k l, the F_cell of the last
  contributing sub-path, the factors used for the final scaling, the pixel value, and the
  real-space cell vectors of the last φ tick / mosaic domain);
* :func:`trace_lines` — ``-trace_pixel s f`` (ours): the geometry of the detector, every
  layer/sub-pixel (position, distance, direction, solid angle, capture fraction), every source
  (direction, λ, polarisation), every sub-path in the C loop order (q, h k l, nearest index,
  F_cell, F_latt, its term F²·F_latt², whether it counts), and the final scaling step by step.

Both recompute the pixel with the same kernel functions ``simulate`` uses (``kernel.sub_paths``,
``kernel.pixel_photons``), so the final value equals the image's.  Where tricubic
interpolation is on, the point in raster order at which the C program switches it off is found
first (as ``simulate`` does), so F_cell is the one the image used.
"""

from __future__ import annotations

import math
from typing import Iterable, Optional, Sequence

import jax.numpy as jnp
import numpy as np

from . import kernel, physics
from ._compiled import setup_jit
from .config import Experiment, Params, Setup
from .geometry.detector import roi_bounds
from .simulate import interpolation_switch

MAX_SUBPATH_LINES = 20000


# ---------------------------------------------------------------------------------------------
# device side
# ---------------------------------------------------------------------------------------------


@setup_jit(static_argnames=("setup",))  # bounded cache of compiled setups
def _details(setup: Setup, params: Params, spixel, fpixel, order, trigger):
    """All per-sub-path quantities of the pixels (spixel, fpixel) (1-D index arrays)."""
    ctx = kernel.build_context(setup, params)
    sp = kernel.sub_paths(setup, ctx, spixel, fpixel)
    term, F_cell, interpolated = kernel.subpath_terms(setup, ctx, sp, order, trigger)
    I = kernel.running_sum(setup, ctx, sp, term)
    capture_used, polar_used, omega_used = kernel.pixel_factors(setup, sp)
    photons = kernel.pixel_photons(setup, ctx, spixel, fpixel, order, trigger)
    return dict(
        pos=sp.position, airpath=sp.airpath, d=sp.direction, omega=sp.omega, capture=sp.capture,
        q=sp.q, stol=sp.stol, pass_dmin=sp.pass_dmin, polar=sp.polar,
        hkl=sp.hkl, F_latt=sp.F_latt, F_cell=F_cell, interpolated=interpolated, valid=sp.valid,
        term=term, I=I, photons=photons, incident=ctx.incident, wavelength=ctx.wavelength,
        real=ctx.real, I_bg=ctx.I_bg, fluence=params.fluence, layer_step=ctx.layer_step,
        pix0=ctx.frame.pix0, fdet=ctx.frame.fdet, sdet=ctx.frame.sdet, odet=ctx.frame.odet,
        distance=ctx.frame.distance, close_distance=ctx.frame.close_distance,
        capture_used=capture_used, polar_used=polar_used, omega_used=omega_used,
    )


# ---------------------------------------------------------------------------------------------
# host side
# ---------------------------------------------------------------------------------------------


def _roi_order(setup: Setup, s: np.ndarray, f: np.ndarray) -> np.ndarray:
    """Index of each pixel in the ROI's raster order (what the kernel's trigger compares)."""
    fmin, fmax, smin, _ = roi_bounds(setup)
    return ((s - smin) * (fmax - fmin + 1) + (f - fmin)).astype(np.int32)


def _trigger(setup: Setup, params: Params):
    if setup.interpolate:
        p, k = interpolation_switch(setup, params)
        return (jnp.int32(int(p)), jnp.int32(int(k)))
    return (jnp.int32(0), jnp.int32(0))


def pixel_details(exp: Experiment, pixels: Sequence[tuple[int, int]], trigger=None) -> dict:
    """Per-sub-path arrays (numpy, float64 where the params are) for (slow, fast) pixels."""
    setup, params = exp.setup, exp.params
    s = np.asarray([p[0] for p in pixels], np.int32)
    f = np.asarray([p[1] for p in pixels], np.int32)
    trig = _trigger(setup, params) if trigger is None else trigger
    out = _details(setup, params, jnp.asarray(s), jnp.asarray(f), jnp.asarray(_roi_order(setup, s, f)), trig)
    return {k: np.asarray(v) for k, v in out.items()}


def _c_values(det: dict, p: int, setup: Setup) -> dict:
    """The C loop variables after pixel p of a details batch (see module docstring)."""
    T, n = setup.thicksteps, setup.oversample
    S = det["q"].shape[-2]
    pass_flat = det["pass_dmin"][p].reshape(-1)  # (T·n·n·S)
    hkl = det["hkl"][p]  # (T,n,n,S,Φ,D,3)
    Phi, D = hkl.shape[4], hkl.shape[5]
    idx_ok = np.flatnonzero(pass_flat)
    if idx_ok.size:
        last = np.unravel_index(idx_ok[-1], (T, n, n, S))
        h = hkl[last + (Phi - 1, D - 1)]
        F_latt = float(det["F_latt"][p][last + (Phi - 1, D - 1)])
    else:
        last = None
        h = np.zeros(3)
        F_latt = 0.0
    valid = np.flatnonzero(det["valid"][p].reshape(-1))
    F_cell = float(det["F_cell"][p].reshape(-1)[valid[-1]]) if valid.size else 0.0
    # the factors the pixel was scaled by (the kernel's choice), or with
    # -oversample_thick/_polar/_omega the last one applied, as the C loop variable holds it
    if setup.oversample_polar:
        polar = 0.0 if last is None else float(det["polar"][p][last])
    else:
        polar = float(det["polar_used"][p])
    omega = float(det["omega"][p][T - 1, n - 1, n - 1] if setup.oversample_omega else det["omega_used"][p])
    capture = float(det["capture"][p][T - 1, n - 1, n - 1] if setup.oversample_thick
                    else det["capture_used"][p])
    return dict(
        stol=float(det["stol"][p][T - 1, n - 1, n - 1, S - 1]),
        pos=det["pos"][p][T - 1, n - 1, n - 1],
        hkl=h, hkl0=np.ceil(h - 0.5).astype(int), F_cell=F_cell, F_latt=F_latt,
        I=float(det["I"][p]), polar=polar, omega=omega, capture=capture,
        real=det["real"][Phi - 1, D - 1] * 1e10,
    )


def _c_block(f: int, s: int, v: dict, steps: int, lambda0: float, value: float) -> list[str]:
    pos = v["pos"]
    twotheta = math.atan2(math.sqrt(pos[1] ** 2 + pos[2] ** 2), pos[0])
    test = math.sin(twotheta / 2.0) / (lambda0 * 1e10)
    h, h0, a = v["hkl"], v["hkl0"], v["real"]
    return [
        "%4d %4d : stol = %g or %g" % (f, s, v["stol"], test),
        "at %g %g %g" % tuple(pos),
        "hkl= %f %f %f  hkl0= %d %d %d" % (h[0], h[1], h[2], h0[0], h0[1], h0[2]),
        " F_cell=%g  F_latt=%g   I = %g" % (v["F_cell"], v["F_latt"], v["I"]),
        "I/steps %15.10g" % (v["I"] / steps),
        "polar   %15.10g" % v["polar"],
        "omega   %15.10g" % v["omega"],
        "capfrac %15.10g" % v["capture"],
        "pixel   %15.10g" % value,
        "real-space cell vectors (Angstrom):",
        "     %-10s  %-10s  %-10s" % ("a", "b", "c"),
        "X: %11.8f %11.8f %11.8f" % (a[0][0], a[1][0], a[2][0]),
        "Y: %11.8f %11.8f %11.8f" % (a[0][1], a[1][1], a[2][1]),
        "Z: %11.8f %11.8f %11.8f" % (a[0][2], a[1][2], a[2][2]),
    ]


def rendered_pixels(exp: Experiment) -> np.ndarray:
    """(slow, fast) of every rendered pixel in raster order."""
    from .report import rendered_mask

    return np.argwhere(rendered_mask(exp))


def c_printout_lines(exp: Experiment, image: np.ndarray,
                     pixel: Optional[tuple[int, int]] = None) -> Iterable[str]:
    """The C program's ``-printout`` blocks: for ``pixel`` = (fast, slow), or every rendered pixel.

    A generator (for ``-printout`` on a large image the output is large, as in the C program).
    """
    setup = exp.setup
    img = np.asarray(image, np.float32)
    if pixel is not None:
        f, s = pixel
        todo = np.array([[s, f]]) if _is_rendered(exp, s, f) else np.zeros((0, 2), int)
    else:
        todo = rendered_pixels(exp)
    if todo.size == 0:
        return
    trig = _trigger(setup, exp.params)
    per_pixel = setup.subpaths_per_pixel * (64 if setup.interpolate else 1)
    chunk = int(max(1, min(4096, (1 << 18) // max(per_pixel, 1))))
    chunk = min(chunk, len(todo))
    lam0 = float(exp.info["lambda0"])
    for start in range(0, len(todo), chunk):
        part = todo[start:start + chunk]
        pad = chunk - len(part)
        batch = np.concatenate([part, np.repeat(part[-1:], pad, axis=0)]) if pad else part
        det = pixel_details(exp, [tuple(x) for x in batch], trig)
        for p, (s, f) in enumerate(part):
            v = _c_values(det, p, setup)
            yield from _c_block(int(f), int(s), v, setup.steps, lam0, float(img[s, f]))


def _is_rendered(exp: Experiment, s: int, f: int) -> bool:
    from .report import rendered_mask

    if not (0 <= s < exp.setup.spixels and 0 <= f < exp.setup.fpixels):
        return False
    return bool(rendered_mask(exp)[s, f])


def _vec(v) -> str:
    return "(" + ", ".join("%.10g" % x for x in np.asarray(v).ravel()) + ")"


def trace_lines(exp: Experiment, s: int, f: int, image: Optional[np.ndarray] = None) -> list[str]:
    """Every intermediate quantity of pixel (slow s, fast f), in the C loop order."""
    setup, p = exp.setup, exp.params
    det = pixel_details(exp, [(s, f)])
    T, n = setup.thicksteps, setup.oversample
    S = det["incident"].shape[0]
    hkl = det["hkl"][0]
    Phi, D = hkl.shape[4], hkl.shape[5]
    out = [f"TRACE pixel slow={s} fast={f}  (-trace_pixel s f; -printout_pixel takes f s)"]
    if not _is_rendered(exp, s, f):
        out.append("  note: this pixel is outside the ROI or masked; the image holds 0 there")
    out.append("  detector (m):  pix0 = %s" % _vec(det["pix0"]))
    out.append("                 fdet = %s  sdet = %s  odet = %s" % (_vec(det["fdet"]), _vec(det["sdet"]), _vec(det["odet"])))
    out.append("                 distance = %.10g  close_distance = %.10g" % (float(det["distance"]), float(det["close_distance"])))
    pixel = float(p.pixel_size) / 1000.0
    out.append("  pixel size = %.10g m, oversample = %d (sub-pixel %.10g m), layers = %d (layer %.10g m)"
               % (pixel, n, pixel / n, T, float(det["layer_step"])))
    out.append("  steps = sources x mosaic domains x phi steps x oversample^2 = %d x %d x %d x %d = %d"
               % (setup.n_sources, setup.mosaic_domains, setup.phisteps, n * n, setup.steps))
    out.append("  r_e^2 = %.10g m^2, fluence = %.10g photons/m^2, I_bg (water) = %.10g"
               % (physics.R_E_SQR, float(det["fluence"]), float(det["I_bg"])))
    out.append("  sources (incident direction, wavelength):")
    for k in range(S):
        out.append("    src %d: i = %s  lambda = %.10g A" % (k, _vec(det["incident"][k]), det["wavelength"][k] * 1e10))
    out.append("  crystal real-space vectors per phi tick / mosaic domain (A):")
    for ph in range(Phi):
        for dm in range(D):
            a = det["real"][ph, dm] * 1e10
            out.append("    phi %d dom %d: a = %s  b = %s  c = %s" % (ph, dm, _vec(a[0]), _vec(a[1]), _vec(a[2])))
    out.append("  layers / sub-pixels (t i j): position P (m), |P| (m), direction d, solid angle omega (sr), capture fraction")
    for t in range(T):
        for i in range(n):
            for j in range(n):
                out.append("    t=%d i=%d j=%d  P = %s  |P| = %.10g  d = %s  omega = %.10g  capture = %.10g" % (
                    t, i, j, _vec(det["pos"][0][t, i, j]), det["airpath"][0][t, i, j], _vec(det["d"][0][t, i, j]),
                    det["omega"][0][t, i, j], det["capture"][0][t, i, j]))
                for k in range(S):
                    out.append("      src %d: q = %s 1/A  stol = %.10g 1/A  polarization = %.10g%s" % (
                        k, _vec(det["q"][0][t, i, j, k] * 1e-10), det["stol"][0][t, i, j, k] * 1e-10,
                        det["polar"][0][t, i, j, k], "" if det["pass_dmin"][0][t, i, j, k] else "  (beyond -dmin: skipped)"))
    out.append("  sub-paths (t i j src phi dom): h k l | nearest h0 k0 l0 | F_cell | F_latt | F_cell^2 F_latt^2 | counted")
    total = T * n * n * S * Phi * D
    shown = 0
    for idx in np.ndindex(T, n, n, S, Phi, D):
        if shown >= MAX_SUBPATH_LINES:
            out.append(f"    ... {total - shown} more sub-paths not listed")
            break
        h = hkl[idx]
        h0 = np.ceil(h - 0.5).astype(int)
        mode = " (tricubic)" if det["interpolated"][0][idx] else ""
        out.append("    %d %d %d %d %d %d: %.8f %.8f %.8f | %d %d %d | %.10g%s | %.10g | %.10g | %s" % (
            *idx, h[0], h[1], h[2], h0[0], h0[1], h0[2], det["F_cell"][0][idx], mode, det["F_latt"][0][idx],
            det["term"][0][idx], "yes" if det["valid"][0][idx] else "no"))
        shown += 1
    v = _c_values(det, 0, setup)
    I = float(det["I"][0])
    base = physics.R_E_SQR * float(det["fluence"]) * I / setup.steps
    out.append("  I = I_bg + sum of counted terms%s = %.10g" % (
        " (running sum multiplied by the per-sub-path factors: -oversample_thick/_polar/_omega)"
        if (setup.oversample_thick or setup.oversample_polar or setup.oversample_omega) else "", I))
    out.append("  r_e^2 * fluence * I / steps = %.10g" % base)
    value = base
    for name, flag, x in (("capture fraction", setup.oversample_thick, v["capture"]),
                          ("polarization", setup.oversample_polar, v["polar"]),
                          ("solid angle omega", setup.oversample_omega, v["omega"])):
        if flag:
            out.append("  %-18s (applied per sub-path)" % name)
        else:
            value *= x
            out.append("  x %-18s %.10g -> %.10g" % (name, x, value))
    out.append("  final value (photons) = %.10g" % float(det["photons"][0]))
    if image is not None and 0 <= s < image.shape[0] and 0 <= f < image.shape[1]:
        out.append("  image value (photons) = %.10g" % float(np.asarray(image)[s, f]))
    return out


def interpolation_warning(exp: Experiment) -> Optional[list[str]]:
    """The C program's warning when tricubic interpolation first leaves the HKL grid, or None.

    The C program prints it while rendering, at the first sub-path (raster order) whose 4×4×4
    neighbourhood leaves the grid, and turns interpolation off from there on.
    """
    setup = exp.setup
    if not setup.interpolate:
        return None
    p_star, k_star = (int(x) for x in interpolation_switch(setup, exp.params))
    K = setup.subpaths_per_pixel
    if k_star >= K:
        return None
    fmin, fmax, smin, _ = roi_bounds(setup)
    width = fmax - fmin + 1
    s, f = smin + p_star // width, fmin + p_star % width
    det = pixel_details(exp, [(s, f)], (jnp.int32(p_star), jnp.int32(k_star)))
    hkl = det["hkl"][0]
    idx = np.unravel_index(k_star, hkl.shape[:-1])
    h = hkl[idx]
    h0 = np.ceil(h - 0.5).astype(int)
    return ["WARNING: out of range for three point interpolation: h,k,l,h0,k0,l0: %g,%g,%g,%d,%d,%d "
            % (h[0], h[1], h[2], h0[0], h0[1], h0[2]),
            "WARNING: further warnings will not be printed! "]
