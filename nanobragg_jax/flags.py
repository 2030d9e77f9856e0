"""The C program's command line: flags, defaults and precedence → ``Experiment``.

The C program scans argv once and tests every argument against every flag with
``strstr`` (substring match), in a fixed order, without consuming values.  One
argument can therefore trigger several branches — ``-twotheta_axis 0 1 0`` also
sets 2θ = 0°, ``-misset_seed 12345`` also sets a misset of 12345° about x,
``-printout_pixel`` also turns on ``-printout``.  Those effects are part of the images the program writes, so ``_apply_c_flag_loop``
reproduces the loop branch by branch (see docs/c-differences.md).

What we do differently, on purpose: an argument that looks like a flag but is
none of the program's flags is an error (the C program ignores it), and so is a
missing or non-numeric value of a flag (the C program reads 0).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Optional

# No numpy or .config (JAX) import at module level: the flag table must load in a few
# milliseconds for `nanoBragg -h` (cli branch).

RTD = 180.0 / math.pi


class FlagError(ValueError):
    """A command-line problem: one line naming the flag and what is wrong."""


class MissingInputError(FlagError):
    """A required input is missing (the C program prints its usage text for these)."""


# ----------------------------------------------------------------------------
# The flag table: canonical names, their values, and one line of help.
# kinds: "num" float, "int", "str" (a file name or word), "flag" (no value)
# ----------------------------------------------------------------------------


@dataclass(frozen=True)
class FlagSpec:
    names: tuple[str, ...]
    kind: str = "num"
    nargs: int = 1
    units: str = ""
    default: str = ""
    help: str = ""
    group: str = "misc"


FLAGS: tuple[FlagSpec, ...] = (
    # crystal
    FlagSpec(("-cell",), "num", 6, "Å Å Å deg deg deg", "none", "unit cell a b c α β γ (alternative to -mat)", "crystal"),
    FlagSpec(("-mat",), "str", 1, "file", "none", "MOSFLM orientation matrix (reciprocal vectors × λ)", "crystal"),
    FlagSpec(("-misset",), "misset", 3, "deg", "0 0 0", "crystal rotations about x, y, z, or the word 'random'", "crystal"),
    FlagSpec(("-misset_seed",), "int", 1, "", "-seed", "seed for -misset random", "crystal"),
    FlagSpec(("-hkl",), "str", 1, "file", "none", "text file of h k l F (columns after F are ignored)", "crystal"),
    FlagSpec(("-dump",), "str", 1, "file", "Fdump.bin", "binary cache of the structure factors", "crystal"),
    FlagSpec(("-default_F",), "num", 1, "electrons", "0", "F of every reflection not in -hkl", "crystal"),
    FlagSpec(("-N",), "int", 1, "cells", "1", "cells along a, b and c", "crystal"),
    FlagSpec(("-Na",), "int", 1, "cells", "1", "cells along a", "crystal"),
    FlagSpec(("-Nb",), "int", 1, "cells", "1", "cells along b", "crystal"),
    FlagSpec(("-Nc",), "int", 1, "cells", "1", "cells along c", "crystal"),
    FlagSpec(("-xtalsize", "-xtal_size", "-samplesize", "-sample_size"), "num", 1, "mm", "none", "crystal size (sets N along all axes)", "crystal"),
    FlagSpec(("-xtal_thick", "-xtal_x", "-sample_thick", "-sample_x"), "num", 1, "mm", "none", "crystal size along a", "crystal"),
    FlagSpec(("-xtal_width", "-xtal_y", "-sample_width", "-sample_y", "-width"), "num", 1, "mm", "none", "crystal size along b", "crystal"),
    FlagSpec(("-xtal_height", "-xtal_z", "-sample_height", "-sample_z", "-height"), "num", 1, "mm", "none", "crystal size along c", "crystal"),
    FlagSpec(("-density", "-sample_density"), "num", 1, "g/cm³", "1", "sample density (reported only)", "crystal"),
    FlagSpec(("-MW", "-molecular_weight"), "num", 1, "g/mol", "18", "molecular weight (reported only)", "crystal"),
    FlagSpec(("-square_xtal",), "flag", 0, "", "yes", "parallelepiped crystal: sincg spots", "crystal"),
    FlagSpec(("-round_xtal",), "flag", 0, "", "", "ellipsoidal crystal: sinc3 spots", "crystal"),
    FlagSpec(("-gauss_xtal",), "flag", 0, "", "", "Gaussian spots (no inter-Bragg fringes)", "crystal"),
    FlagSpec(("-tophat_spots", "-binary_spots"), "flag", 0, "", "", "flat-top spots", "crystal"),
    FlagSpec(("-fudge",), "num", 1, "", "1", "scale of the spot-shape radius", "crystal"),
    FlagSpec(("-interpolate",), "flag", 0, "", "auto", "tricubic F interpolation (auto when any N ≤ 2)", "crystal"),
    FlagSpec(("-nointerpolate",), "flag", 0, "", "", "nearest-reflection F", "crystal"),
    FlagSpec(("-mosaic", "-mosaicity", "-mosaic_spread"), "num", 1, "deg", "0", "isotropic mosaic spread", "crystal"),
    FlagSpec(("-mosaic_domains", "-mosaic_dom"), "int", 1, "", "10 if spread", "mosaic domains", "crystal"),
    FlagSpec(("-mosaic_seed",), "int", 1, "", "-12345678", "seed of the mosaic domain orientations", "crystal"),
    FlagSpec(("-phi",), "num", 1, "deg", "0", "spindle angle at the start", "crystal"),
    FlagSpec(("-osc",), "num", 1, "deg", "0", "oscillation range", "crystal"),
    FlagSpec(("-phistep",), "num", 1, "deg", "auto", "spindle step", "crystal"),
    FlagSpec(("-phisteps",), "int", 1, "", "1", "spindle steps", "crystal"),
    FlagSpec(("-spindle_axis",), "num", 3, "", "convention", "spindle rotation axis (switches to CUSTOM)", "crystal"),
    # beam
    FlagSpec(("-lambda", "-wave", "-wavelength"), "num", 1, "Å", "1", "X-ray wavelength", "beam"),
    FlagSpec(("-energy",), "num", 1, "eV", "12398.42", "X-ray energy (alternative to -lambda)", "beam"),
    FlagSpec(("-dispersion",), "num", 1, "percent", "0", "spectral width Δλ/λ", "beam"),
    FlagSpec(("-dispsteps",), "int", 1, "", "auto", "wavelengths across the dispersion", "beam"),
    FlagSpec(("-divergence",), "num", 1, "mrad", "0", "horizontal and vertical divergence", "beam"),
    FlagSpec(("-hdivrange",), "num", 1, "mrad", "0", "horizontal divergence", "beam"),
    FlagSpec(("-vdivrange",), "num", 1, "mrad", "0", "vertical divergence", "beam"),
    FlagSpec(("-hdivstep",), "num", 1, "mrad", "auto", "horizontal divergence step", "beam"),
    FlagSpec(("-vdivstep",), "num", 1, "mrad", "auto", "vertical divergence step", "beam"),
    FlagSpec(("-hdivsteps",), "int", 1, "", "auto", "horizontal divergence points", "beam"),
    FlagSpec(("-vdivsteps",), "int", 1, "", "auto", "vertical divergence points", "beam"),
    FlagSpec(("-divsteps",), "int", 1, "", "auto", "divergence points in both directions", "beam"),
    FlagSpec(("-round_div",), "flag", 0, "", "yes", "clip the divergence raster to an ellipse", "beam"),
    FlagSpec(("-square_div",), "flag", 0, "", "", "full divergence raster", "beam"),
    FlagSpec(("-sourcefile",), "str", 1, "file", "none", "sources: X Y Z weight λ(m) per line", "beam"),
    FlagSpec(("-weighted_sources",), "flag", 0, "", "", "honour the -sourcefile weights: image = Σ w·image(λ)/Σ w (not in the C program)", "beam"),
    FlagSpec(("-fluence",), "num", 1, "photons/m²", "1.25932e29", "integrated incident fluence", "beam"),
    FlagSpec(("-flux",), "num", 1, "photons/s", "0", "flux (with -exposure and -beamsize)", "beam"),
    FlagSpec(("-exposure",), "num", 1, "s", "1", "exposure time", "beam"),
    FlagSpec(("-beamsize",), "num", 1, "mm", "0.1", "beam size (also clips the crystal)", "beam"),
    FlagSpec(("-polar",), "num", 1, "", "0", "Kahn polarisation factor", "beam"),
    FlagSpec(("-nopolar",), "flag", 0, "", "", "no polarisation correction", "beam"),
    FlagSpec(("-beam_vector",), "num", 3, "", "convention", "beam direction (switches to CUSTOM)", "beam"),
    FlagSpec(("-polar_vector",), "num", 3, "", "convention", "E-vector direction (switches to CUSTOM)", "beam"),
    FlagSpec(("-water",), "num", 1, "µm", "0", "water thickness for a background", "beam"),
    # detector
    FlagSpec(("-distance",), "num", 1, "mm", "100", "sample to beam spot distance (pivot BEAM)", "detector"),
    FlagSpec(("-close_distance",), "num", 1, "mm", "", "sample to detector plane (pivot SAMPLE)", "detector"),
    FlagSpec(("-pixel",), "num", 1, "mm", "0.1", "pixel size", "detector"),
    FlagSpec(("-detpixels",), "int", 1, "", "1024", "pixels along both axes", "detector"),
    FlagSpec(("-detpixels_f", "-detpixels_x"), "int", 1, "", "1024", "pixels along the fast axis", "detector"),
    FlagSpec(("-detpixels_s", "-detpixels_y"), "int", 1, "", "1024", "pixels along the slow axis", "detector"),
    FlagSpec(("-detsize",), "num", 1, "mm", "102.4", "detector size", "detector"),
    FlagSpec(("-detsize_f",), "num", 1, "mm", "102.4", "detector size along fast", "detector"),
    FlagSpec(("-detsize_s",), "num", 1, "mm", "102.4", "detector size along slow", "detector"),
    FlagSpec(("-Xbeam",), "num", 1, "mm", "centre", "beam centre X (convention's own axes; pivot BEAM)", "detector"),
    FlagSpec(("-Ybeam",), "num", 1, "mm", "centre", "beam centre Y", "detector"),
    FlagSpec(("-Xclose",), "num", 1, "mm", "centre", "near point X (pivot SAMPLE)", "detector"),
    FlagSpec(("-Yclose",), "num", 1, "mm", "centre", "near point Y (pivot SAMPLE)", "detector"),
    FlagSpec(("-ORGX",), "num", 1, "pixels", "centre", "XDS origin X (pivot SAMPLE)", "detector"),
    FlagSpec(("-ORGY",), "num", 1, "pixels", "centre", "XDS origin Y (pivot SAMPLE)", "detector"),
    FlagSpec(("-pivot",), "pivot", 1, "", "beam", "detector pivot: beam or sample", "detector"),
    FlagSpec(("-mosflm",), "flag", 0, "", "yes", "MOSFLM convention", "detector"),
    FlagSpec(("-xds",), "flag", 0, "", "", "XDS convention", "detector"),
    FlagSpec(("-adxv",), "flag", 0, "", "", "ADXV convention", "detector"),
    FlagSpec(("-denzo",), "flag", 0, "", "", "DENZO convention", "detector"),
    FlagSpec(("-dials",), "flag", 0, "", "", "DIALS convention", "detector"),
    FlagSpec(("-fdet_vector",), "num", 3, "", "convention", "fast axis (switches to CUSTOM)", "detector"),
    FlagSpec(("-sdet_vector",), "num", 3, "", "convention", "slow axis (switches to CUSTOM)", "detector"),
    FlagSpec(("-odet_vector",), "num", 3, "", "convention", "detector normal (switches to CUSTOM)", "detector"),
    FlagSpec(("-pix0_vector",), "num", 3, "m", "derived", "first-pixel vector (switches to CUSTOM)", "detector"),
    FlagSpec(("-twotheta_axis",), "num", 3, "", "convention", "2θ rotation axis (switches to CUSTOM)", "detector"),
    FlagSpec(("-twotheta",), "num", 1, "deg", "0", "detector 2θ swing (pivot SAMPLE)", "detector"),
    FlagSpec(("-detector_rotx",), "num", 1, "deg", "0", "detector rotation about x", "detector"),
    FlagSpec(("-detector_roty",), "num", 1, "deg", "0", "detector rotation about y", "detector"),
    FlagSpec(("-detector_rotz",), "num", 1, "deg", "0", "detector rotation about z", "detector"),
    FlagSpec(("-curved_det",), "flag", 0, "", "", "spherical detector: every pixel at the same distance", "detector"),
    FlagSpec(("-point_pixel",), "flag", 0, "", "", "solid angle 1/R² (no obliquity)", "detector"),
    FlagSpec(("-detector_abs", "-detector_absorb"), "abs", 1, "µm", "inf", "sensor attenuation depth ('inf' or 0: none)", "detector"),
    FlagSpec(("-detector_thick",), "num", 1, "µm", "0", "sensor thickness", "detector"),
    FlagSpec(("-detector_thicksteps", "-thicksteps"), "int", 1, "", "1", "sensor layers", "detector"),
    FlagSpec(("-oversample",), "int", 1, "", "auto", "sub-pixels per pixel edge", "detector"),
    FlagSpec(("-oversample_thick",), "flag", 0, "", "", "recompute capture fraction per sub-pixel", "detector"),
    FlagSpec(("-oversample_polar",), "flag", 0, "", "", "recompute polarisation per sub-pixel", "detector"),
    FlagSpec(("-oversample_omega",), "flag", 0, "", "", "recompute solid angle per sub-pixel", "detector"),
    FlagSpec(("-roi",), "int", 4, "pixels", "all", "render only xmin xmax ymin ymax (inclusive)", "detector"),
    FlagSpec(("-mask",), "str", 1, "file", "none", "SMV image: pixels that are 0 are skipped", "detector"),
    FlagSpec(("-img",), "str", 1, "file", "none", "SMV image whose header sets the detector", "detector"),
    FlagSpec(("-dmin",), "num", 1, "Å", "0", "skip scattering beyond this resolution", "detector"),
    # panels branch: multi-panel detectors and the files of DIALS (not in the C program)
    FlagSpec(("-expt",), "str", 1, "file", "none", "DIALS experiment list (.expt): detector (any number of panels), beam, crystal orientation, scan; replaces the detector flags (not in the C program)", "detector"),
    # output
    FlagSpec(("-floatfile", "-floatimage"), "str", 1, "file", "floatimage.bin", "raw float32 image", "output"),
    FlagSpec(("-intfile", "-intimage"), "str", 1, "file", "intimage.img", "SMV image, scaled, no noise", "output"),
    FlagSpec(("-noisefile", "-noiseimage"), "str", 1, "file", "noiseimage.img", "SMV image with Poisson noise", "output"),
    FlagSpec(("-pgmfile", "-pgmimage"), "str", 1, "file", "image.pgm", "8-bit PGM preview", "output"),
    FlagSpec(("-pngfile",), "str", 1, "file", "none", "8-bit PNG preview (not in the C program)", "output"),
    FlagSpec(("-exptout",), "str", 1, "file", "none", "the simulation's ground truth as a DIALS .expt (not in the C program)", "output"),
    FlagSpec(("-h5file",), "str", 1, "file", "none", "NeXus/NXmx HDF5 image of all panels, float32 photons (not in the C program)", "output"),
    FlagSpec(("-cbffile",), "str", 1, "file", "none", "miniCBF image with a Pilatus-style header, the -intfile counts of one panel (not in the C program)", "output"),
    FlagSpec(("-scale",), "num", 1, "", "55000/max", "int-file scale", "output"),
    FlagSpec(("-pgmscale",), "num", 1, "", "auto", "PGM scale", "output"),
    FlagSpec(("-adc",), "num", 1, "counts", "40", "offset added to SMV pixels", "output"),
    FlagSpec(("-nonoise",), "flag", 0, "", "", "do not write the noise image", "output"),
    FlagSpec(("-nopgm",), "flag", 0, "", "", "do not write the PGM image", "output"),
    FlagSpec(("-seed",), "int", 1, "", "time", "noise seed", "output"),
    FlagSpec(("-noise_exact",), "flag", 0, "", "", "C-identical noise generator (slower; not in the C program)", "output"),
    FlagSpec(("-printout",), "flag", 0, "", "", "print per-pixel details", "output"),
    FlagSpec(("-printout_pixel",), "int", 2, "pixels", "", "print details of pixel f s", "output"),
    FlagSpec(("-trace_pixel",), "int", 2, "pixels", "", "trace every intermediate of pixel s f (not in the C program)", "output"),
    FlagSpec(("-show_config", "-echo_config"), "flag", 0, "", "", "print the resolved configuration (crystal, beam, detector) before rendering (not in the C program)", "output"),
    FlagSpec(("-progress",), "flag", 0, "", "", "progress bar", "output"),
    FlagSpec(("-noprogress",), "flag", 0, "", "", "no progress bar", "output"),
    FlagSpec(("-nthreads",), "int", 1, "", "all cores", "CPU cores to render on, like OMP_NUM_THREADS for the C program (not in the C program)", "misc"),
    FlagSpec(("-dtype",), "dtype", 1, "", "float64", "arithmetic precision: float64 or float32 (not in the C program)", "output"),
    FlagSpec(("-stol", "-4stol", "-Q"), "str", 1, "file", "none", "amorphous F(stol) file (read, unused — as in the C program)", "misc"),
    FlagSpec(("-stolout",), "str", 1, "file", "output.stol", "unused, as in the C program", "misc"),
    FlagSpec(("-coherent",), "flag", 0, "", "", "accepted, no effect (as in the C program)", "misc"),
    FlagSpec(("-h", "-help", "--help"), "flag", 0, "", "", "this help", "misc"),
)

_BY_NAME: dict[str, FlagSpec] = {n: f for f in FLAGS for n in f.names}

# A number the way the C program's atof reads all of it: ASCII digits only (Python's float()
# also takes "1_0" and non-ASCII digits, which atof reads as 0 or stops at).
_NUMBER = re.compile(r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$")
_INTEGER = re.compile(r"^[+-]?[0-9]+$")


def _is_number(s: str) -> bool:
    return bool(_NUMBER.match(s.strip()))


def c_atof(s: str) -> float:
    """C ``atof``: the longest numeric prefix, 0.0 if none."""
    m = re.match(r"^\s*([+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?|[+-]?(inf|nan))", s, re.I)
    if not m:
        return 0.0
    try:
        return float(m.group(1))
    except ValueError:
        return 0.0


def c_atoi(s: str) -> int:
    """C ``atoi``: the longest integer prefix, 0 if none."""
    m = re.match(r"^\s*([+-]?[0-9]+)", s)
    return int(m.group(1)) if m else 0


def suggest_flag(arg: str) -> str:
    """The hint " (did you mean -lambda?)" naming the nearest known flag, or "" if none is close."""
    import difflib

    names = sorted(_BY_NAME)
    close = difflib.get_close_matches(arg, names, n=1, cutoff=0.6)
    if not close:
        # a case slip (-LAMBDA, -Xbeam vs -xbeam) is not always close in difflib's ratio
        lower = {n.lower(): n for n in names}
        if arg.lower() in lower:
            close = [lower[arg.lower()]]
    return f" (did you mean {close[0]}?)" if close else ""


def check_range(flag: str, text: str, value: float) -> None:
    """Raise FlagError when ``value`` (given as ``text``) is outside the flag's range (ranges.py)."""
    from .ranges import FLAG_QUANTITY, range_problem

    quantity = FLAG_QUANTITY.get(flag)
    if quantity is None:
        if not math.isfinite(value):
            raise FlagError(f"{flag}: {text!r} is not a finite number")
        return
    problem = range_problem(quantity, value)
    if problem:
        raise FlagError(f"{flag} {text}: {problem}")


def _misset_random(v: str) -> bool:
    # the C program's test: the word contains "rand" (strstr), so "random" and "rand" both work
    return "rand" in v


def validate_argv(argv: list[str]) -> None:
    """Reject unknown flags, missing/non-numeric values and values outside their range.

    Every value must be entirely what the C program reads from it (``atof``/``atoi`` read a
    prefix and ignore the rest, so ``-N 1e6`` would be N = 1 there): an integer flag takes an
    integer, a number flag a decimal number, and the value must lie in the flag's range
    (``nanobragg_jax/ranges.py``).  One ``FlagError`` line names the flag.
    """
    i = 0
    n = len(argv)
    while i < n:
        arg = argv[i]
        if not arg.startswith("-") or _is_number(arg):
            raise FlagError(f"unexpected argument {arg!r} (values must follow their flag)")
        spec = _BY_NAME.get(arg)
        if spec is None:
            raise FlagError(f"unknown flag {arg}{suggest_flag(arg)} (see nanoBragg -h for the usage)")
        values = argv[i + 1:i + 1 + spec.nargs]
        if spec.kind == "flag":
            i += 1
            continue
        if spec.kind == "misset" and values and _misset_random(values[0]):
            i += 2
            continue
        if arg == "-cell":
            # all six numbers (the C program quietly fills in b = c = a and 90° for any missing)
            k = 0
            while k < 6 and i + 1 + k < n and _is_number(argv[i + 1 + k]):
                k += 1
            if k < 6:
                after = f" before {argv[i + 1 + k]!r}" if i + 1 + k < n else ""
                raise FlagError(f"-cell needs 6 numbers: a b c alpha beta gamma (Å, degrees); "
                                f"found {k}{after}")
            for j, v in enumerate(argv[i + 1:i + 7]):
                quantity = "cell_length" if j < 3 else "cell_angle"
                from .ranges import range_problem

                problem = range_problem(quantity, float(v))
                if problem:
                    which = "abc"[j] if j < 3 else ("alpha", "beta", "gamma")[j - 3]
                    raise FlagError(f"-cell: {which} = {v}: {problem}")
            i += 7
            continue
        if spec.kind == "misset" and values and "rand" in values[0].lower():
            raise FlagError(f"{arg}: {values[0]!r} is not a number (write 'random' in lower case "
                            "for a random orientation)")
        if len(values) < spec.nargs:
            raise FlagError(f"{arg} needs {spec.nargs} value{'s' if spec.nargs > 1 else ''}")
        for v in values:
            if spec.kind in ("num", "misset"):
                if not _is_number(v):
                    hint = ""
                    if spec.kind == "misset" and "rand" in v.lower():
                        hint = " (write 'random' in lower case for a random orientation)"
                    raise FlagError(f"{arg}: {v!r} is not a number{hint}")
                check_range(arg, v, float(v))
            elif spec.kind == "int":
                if not _INTEGER.match(v.strip()):
                    hint = ""
                    if _is_number(v):
                        hint = " (the C program would read only its leading digits)"
                    raise FlagError(f"{arg}: {v!r} is not an integer{hint}")
                check_range(arg, v, float(int(v)))
            elif spec.kind == "abs":
                if not (v.lower().startswith("inf") or _is_number(v)):
                    raise FlagError(f"{arg}: {v!r} is not a number or 'inf'")
                if _is_number(v):
                    check_range(arg, v, float(v))
            elif spec.kind == "pivot":
                if v not in ("beam", "sample"):
                    raise FlagError(f"-pivot: {v!r} must be 'beam' or 'sample'")
            elif spec.kind == "dtype":
                if v not in ("float32", "float64"):
                    raise FlagError(f"-dtype: {v!r} must be float32 or float64")
            elif spec.kind == "str":
                if v.startswith("-") and v in _BY_NAME:
                    raise FlagError(f"{arg} needs a file name, got the flag {v}")
                if v == "":
                    raise FlagError(f"{arg}: empty file name")
        i += 1 + spec.nargs


# ----------------------------------------------------------------------------
# The C program's state, as its main() holds it before the geometry is built.
# SI units (m, rad) like the C variables.
# ----------------------------------------------------------------------------

NAN = float("nan")


@dataclass
class CState:
    beam_vector: list = field(default_factory=lambda: [0.0, 0.0, 0.0])  # C: {0,1,0,0}[1:] = 1,0,0
    lambda0: float = 1.0e-10
    mosaic_spread: float = -1.0
    dispersion: float = 0.0
    dispstep: float = -1.0
    hdivstep: float = -1.0
    hdivrange: float = -1.0
    vdivstep: float = -1.0
    vdivrange: float = -1.0
    divsteps: int = -1
    hdivsteps: int = -1
    vdivsteps: int = -1
    dispsteps: int = -1
    mosaic_domains: int = -1
    round_div: bool = True
    fluence: float = 125932015286227086360700780544.0
    flux: float = 0.0
    exposure: float = 1.0
    beamsize: float = 1e-4
    Na: float = 1.0
    Nb: float = 1.0
    Nc: float = 1.0
    xtal_shape: str = "SQUARE"
    fudge: float = 1.0
    sample_x: float = 0.0
    sample_y: float = 0.0
    sample_z: float = 0.0
    density: float = 1.0e6
    molecular_weight: float = 18.0
    water_size: float = 0.0
    pixel_size: float = 0.1e-3
    fpixels: int = 0
    spixels: int = 0
    distance: float = 100.0e-3
    detsize_f: float = 102.4e-3
    detsize_s: float = 102.4e-3
    detector_mu: float = -1.0
    detector_thick: float = 0.0
    detector_thickstep: float = -1.0
    detector_thicksteps: int = -1
    fdet_vector: list = field(default_factory=lambda: [0.0, 0.0, 1.0])
    sdet_vector: list = field(default_factory=lambda: [0.0, -1.0, 0.0])
    odet_vector: list = field(default_factory=lambda: [1.0, 0.0, 0.0])
    pix0_vector: list = field(default_factory=lambda: [0.0, 0.0, 0.0])
    pix0_given: bool = False
    detector_rotx: float = 0.0
    detector_roty: float = 0.0
    detector_rotz: float = 0.0
    twotheta_axis: list = field(default_factory=lambda: [0.0, 1.0, 0.0])
    detector_pivot: str = "BEAM"
    beam_convention: str = "MOSFLM"
    detector_twotheta: float = 0.0
    curved_detector: bool = False
    point_pixel: bool = False
    Xbeam: float = NAN
    Ybeam: float = NAN
    Xclose: float = NAN
    Yclose: float = NAN
    close_distance: float = NAN
    ORGX: float = NAN
    ORGY: float = NAN
    adc_offset: float = 40.0
    dmin: float = 0.0
    polar_vector: list = field(default_factory=lambda: [0.0, 0.0, 1.0])
    polarization: float = 0.0
    nopolar: bool = False
    roi: list = field(default_factory=lambda: [-1, -1, -1, -1])
    oversample: int = -1
    oversample_thick: bool = False
    oversample_polar: bool = False
    oversample_omega: bool = False
    phi0: float = 0.0
    phistep: float = -1.0
    osc: float = -1.0
    phisteps: int = -1
    spindle_vector: list = field(default_factory=lambda: [0.0, 0.0, 1.0])
    default_F: float = 0.0
    interpolate: int = 2
    user_cell: bool = False
    cell: list = field(default_factory=lambda: [0.0, 0.0, 0.0, 0.0, 0.0, 0.0])  # a b c (Å) α β γ (rad)
    misset: list = field(default_factory=lambda: [0.0, 0.0, 0.0, 0.0])
    seed: Optional[int] = None
    mosaic_seed: int = -12345678
    misset_seed: Optional[int] = None
    # files and outputs
    matfilename: Optional[str] = None
    hklfilename: Optional[str] = None
    dumpfilename: str = "Fdump.bin"
    imgfilename: Optional[str] = None
    maskfilename: Optional[str] = None
    sourcefilename: Optional[str] = None
    stolfilename: Optional[str] = None
    floatfilename: str = "floatimage.bin"
    intfilename: str = "intimage.img"
    pgmfilename: str = "image.pgm"
    noisefilename: str = "noiseimage.img"
    pngfilename: Optional[str] = None
    calculate_noise: bool = True
    write_pgm: bool = True
    intfile_scale: float = 0.0
    pgm_scale: float = 0.0
    printout: bool = False
    printout_pixel: tuple = (-1, -1)
    trace_pixel: Optional[tuple] = None
    progress_meter: bool = True
    noise_exact: bool = False
    weighted_sources: bool = False  # shots branch: our extension
    dtype: str = "float64"
    help: bool = False
    mask: Optional["np.ndarray"] = None
    # which flags the user gave, beyond the C variables (for our own outputs)
    given: set = field(default_factory=set)

    def __post_init__(self):
        self.beam_vector = [1.0, 0.0, 0.0]


def _apply_header(st: CState, header_text: str, *, flip_y: bool, path: str = "") -> None:
    """Detector values from an SMV header (C: the -mask and -img pre-pass).

    Keys are looked up like the C program's ``ValueOf``: the last occurrence of
    the key as a substring wins (so ``DISTANCE`` can pick up ``CLOSE_DISTANCE``).
    A key that is present must hold a number in the range its flag allows
    (``ranges.py``; ``DISTANCE=-100`` is refused like ``-distance -100``); an
    explicit ``nan`` is an error, not "absent".
    """
    from .io.errors import InputFileError
    from .io.smv import c_value_of
    from .ranges import HEADER_QUANTITY, range_problem

    def get(key):
        pos = header_text.rfind(key)
        if pos < 0:
            return None  # absent: the C's ValueOf returns NaN and the value is left alone
        v = c_value_of(header_text, key)
        quantity, flag = HEADER_QUANTITY[key]
        entry = header_text[pos:].split(";", 1)[0].split("\n", 1)[0].strip()
        text = entry.split("=", 1)[1].strip() if "=" in entry else ""
        if not _is_number(text):
            # the C's atof would read a prefix of it, or 0, silently
            raise InputFileError(path, f"header {entry}: not a number (the value {flag} would take)")
        problem = range_problem(quantity, v)
        if problem:
            raise InputFileError(path, f"header {entry}: {problem} (the value {flag} would take)")
        return v

    v = get("PIXEL_SIZE")
    if v is not None:
        st.pixel_size = v / 1000.0
    st.detsize_f = st.pixel_size * st.fpixels
    st.detsize_s = st.pixel_size * st.spixels
    for key, attr, scale in (("DISTANCE", "distance", 1e-3), ("CLOSE_DISTANCE", "close_distance", 1e-3),
                             ("WAVELENGTH", "lambda0", 1e-10)):
        v = get(key)
        if v is not None:
            setattr(st, attr, v * scale)
    v = get("BEAM_CENTER_X")
    if v is not None:
        st.Xbeam = v / 1000.0
    v = get("BEAM_CENTER_Y")
    if v is not None:
        st.Ybeam = (st.detsize_s - v / 1000.0) if flip_y else v / 1000.0
    for key, attr in (("ORGX", "ORGX"), ("ORGY", "ORGY")):
        v = get(key)
        if v is not None:
            setattr(st, attr, v)
    v = get("PHI")
    if v is not None:
        st.phi0 = v / RTD
    v = get("OSC_RANGE")
    if v is not None:
        st.osc = v / RTD
    # The C program stores TWOTHETA from a header in a variable it never uses.


def _read_image_headers(st: CState, argv: list[str]) -> None:
    """The C pre-pass: -mask is read first, then -img, each setting the detector."""
    n = len(argv)
    for i, arg in enumerate(argv):
        if arg.startswith("-"):
            if "-img" in arg and n > i + 1:
                st.imgfilename = argv[i + 1]
            if "-mask" in arg and n > i + 1:
                st.maskfilename = argv[i + 1]
    if st.maskfilename is not None or st.imgfilename is not None:
        from .io.smv import read_smv
    if st.maskfilename is not None:
        smv = read_smv(st.maskfilename)
        st.spixels, st.fpixels = smv.data.shape
        _apply_header(st, smv.header_text, flip_y=True, path=st.maskfilename)
        import numpy as np

        st.mask = np.asarray(smv.data)
    if st.imgfilename is not None:
        smv = read_smv(st.imgfilename)
        st.spixels, st.fpixels = smv.data.shape
        _apply_header(st, smv.header_text, flip_y=False, path=st.imgfilename)


def parse_c_state(argv: list[str]) -> CState:
    """The C program's variables after its two argument loops (the -mask/-img headers, then
    every flag in order), before anything is derived from them.  ``argv`` should have passed
    :func:`validate_argv`."""
    st = CState()
    _read_image_headers(st, argv)
    _apply_c_flag_loop(st, argv)
    return st


def read_unused_inputs(st: CState) -> None:
    """Read and check the files the C program reads but does not use (``-stol``).

    The C program reads the ``-stol`` file (two columns: sin(θ)/λ and F) and then never uses
    it; we read and check it too, so that a missing or garbled file is reported, not ignored.
    """
    if st.stolfilename is not None:
        from .io.sources import read_text_columns

        read_text_columns(st.stolfilename, 2, what="-stol file")


def _apply_c_flag_loop(st: CState, argv: list[str]) -> None:
    """One pass over argv with the C program's substring tests, in its order."""
    n = len(argv)
    A = c_atof
    I = c_atoi
    for i, arg in enumerate(argv):
        if not arg.startswith("-"):
            continue
        st.given.add(arg)
        has = arg.__contains__

        def val(k=1):
            return argv[i + k]

        def more(k):
            return n > i + k

        if has("-Na") and more(1):
            st.Na = float(I(val()))
            continue
        if has("-Nb") and more(1):
            st.Nb = float(I(val()))
            continue
        if has("-Nc") and more(1):
            st.Nc = float(I(val()))
            continue
        if arg == "-N" and more(1):
            st.Na = st.Nb = st.Nc = float(I(val()))
            continue
        if has("-cell") and more(1):
            st.user_cell = True
            for k in range(6):
                if not more(k + 1) or argv[i + 1 + k].startswith("-"):
                    break
                x = A(argv[i + 1 + k])
                st.cell[k] = x if k < 3 else x / RTD
            if not all(more(k + 1) and not argv[i + 1 + k].startswith("-") for k in range(6)):
                continue
        if has("-misset") and more(1) and "rand" in val():
            st.misset[0] = -1.0
            continue
        if has("-misset") and more(3):
            st.misset = [1.0, A(val(1)) / RTD, A(val(2)) / RTD, A(val(3)) / RTD]
        if (has("-samplesize") or has("-sample_size")) and more(1):
            st.sample_x = st.sample_y = st.sample_z = A(val()) / 1000
        if (has("-sample_thick") or has("-sample_x")) and more(1):
            st.sample_x = A(val()) / 1000
        if (has("-sample_width") or has("-sample_y") or has("-width")) and more(1):
            st.sample_y = A(val()) / 1000
        if (has("-sample_heigh") or has("-sample_z") or has("-heigh")) and more(1):
            st.sample_z = A(val()) / 1000
        if (has("-xtalsize") or has("-xtal_size")) and more(1):
            st.sample_x = st.sample_y = st.sample_z = A(val()) / 1000
        if (has("-xtal_thick") or has("-xtal_x")) and more(1):
            st.sample_x = A(val()) / 1000
        if (has("-xtal_width") or has("-xtal_y") or has("-width")) and more(1):
            st.sample_y = A(val()) / 1000
        if (has("-xtal_heigh") or has("-xtal_z") or has("-heigh")) and more(1):
            st.sample_z = A(val()) / 1000
        if (has("-density") or has("-sample_den")) and more(1):
            st.density = A(val()) * 1e6
        if (arg == "-MW" or has("-molec")) and more(1):
            st.molecular_weight = A(val())
        if has("-Xbeam") and more(1):
            st.Xbeam = A(val()) / 1000.0
            st.detector_pivot = "BEAM"
        if has("-Ybeam") and more(1):
            st.Ybeam = A(val()) / 1000.0
            st.detector_pivot = "BEAM"
        if has("-Xclose") and more(1):
            st.Xclose = A(val()) / 1000.0
            st.detector_pivot = "SAMPLE"
        if has("-Yclose") and more(1):
            st.Yclose = A(val()) / 1000.0
            st.detector_pivot = "SAMPLE"
        if has("-ORGX") and more(1):
            st.ORGX = A(val())
            st.detector_pivot = "SAMPLE"
        if has("-ORGY") and more(1):
            st.ORGY = A(val())
            st.detector_pivot = "SAMPLE"
        if has("-pivot") and more(1):
            if "sample" in val():
                st.detector_pivot = "SAMPLE"
            if "beam" in val():
                st.detector_pivot = "BEAM"
        for name, conv, pivot in (("-mosflm", "MOSFLM", "BEAM"), ("-xds", "XDS", "SAMPLE"),
                                  ("-adxv", "ADXV", "BEAM"), ("-denzo", "DENZO", "BEAM"),
                                  ("-dials", "DIALS", "BEAM")):
            if has(name):
                st.beam_convention = conv
                st.detector_pivot = pivot
        for name, attr in (("-fdet_vector", "fdet_vector"), ("-sdet_vector", "sdet_vector"),
                           ("-odet_vector", "odet_vector"), ("-beam_vector", "beam_vector"),
                           ("-polar_vector", "polar_vector"), ("-spindle_axis", "spindle_vector"),
                           ("-twotheta_axis", "twotheta_axis"), ("-pix0_vector", "pix0_vector")):
            if has(name) and more(3):
                st.beam_convention = "CUSTOM"
                setattr(st, attr, [A(val(1)), A(val(2)), A(val(3))])
                if attr == "pix0_vector":
                    st.pix0_given = True
        if has("-distance") and more(1):
            st.distance = A(val()) / 1000.0
            st.detector_pivot = "BEAM"
        if has("-close_distance") and more(1):
            st.close_distance = A(val()) / 1000.0
            st.detector_pivot = "SAMPLE"
        if has("-detector_abs") and more(1):
            if "inf" in val() or A(val()) == 0.0:
                st.detector_thick = 0.0
                st.detector_mu = 0.0
            else:
                st.detector_mu = 1.0 / (A(val()) * 1e-6)
        if has("-detector_thick") and len(arg) == 15 and more(1):
            st.detector_thick = A(val()) * 1e-6
        if has("-detector_thicksteps") and more(1):
            st.detector_thicksteps = I(val())
        if has("-thicksteps") and more(1):
            st.detector_thicksteps = I(val())
        if has("-twotheta") and more(1):
            st.detector_twotheta = A(val()) / RTD
            st.detector_pivot = "SAMPLE"
        if has("-detector_rotx") and more(1):
            st.detector_rotx = A(val()) / RTD
        if has("-detector_roty") and more(1):
            st.detector_roty = A(val()) / RTD
        if has("-detector_rotz") and more(1):
            st.detector_rotz = A(val()) / RTD
        if has("-detsize") and len(arg) == 8 and more(1):
            st.detsize_f = st.detsize_s = A(val()) / 1000.0
        if has("-detsize_f") and more(1):
            st.detsize_f = A(val()) / 1000.0
        if has("-detsize_s") and more(1):
            st.detsize_s = A(val()) / 1000.0
        if has("-detpixels") and len(arg) == 10 and more(1):
            st.fpixels = st.spixels = I(val())
        if (has("-detpixels_f") or has("-detpixels_x")) and more(1):
            st.fpixels = I(val())
        if (has("-detpixels_s") or has("-detpixels_y")) and more(1):
            st.spixels = I(val())
        if has("-curved_det") and more(1):
            st.curved_detector = True
        if has("-pixel") and more(1):
            st.pixel_size = A(val()) / 1000.0
        if has("-point_pixel"):
            st.point_pixel = True
        if has("-polar") and len(arg) == 6 and more(1):
            st.polarization = A(val())
            st.nopolar = False
        if has("-nopolar"):
            st.nopolar = True
        if has("-oversample_thick"):
            st.oversample_thick = True
            continue
        if has("-oversample_polar"):
            st.oversample_polar = True
            continue
        if has("-oversample_omega"):
            st.oversample_omega = True
            continue
        if has("-oversample") and more(1):
            st.oversample = I(val())
        if has("-roi") and more(4):
            st.roi = [I(val(1)), I(val(2)), I(val(3)), I(val(4))]
        if (has("-lambda") or has("-wave")) and more(1):
            st.lambda0 = A(val()) / 1.0e10
        if has("-energy") and more(1):
            e = A(val())
            st.lambda0 = (12398.42 / e) / 1.0e10 if e != 0 else math.inf
        if has("-fluence") and more(1):
            st.fluence = A(val())
        if has("-flux") and more(1):
            st.flux = A(val())
        if has("-exposure") and more(1):
            st.exposure = A(val())
        if has("-beamsize") and more(1):
            st.beamsize = A(val()) / 1000
        if ((has("-mosaic") and len(arg) == 7) or has("-mosaici") or has("-mosaic_spr")) and more(1):
            st.mosaic_spread = A(val()) / RTD
        if has("-mosaic_dom") and more(1):
            st.mosaic_domains = I(val())
        if has("-dispersion") and more(1):
            st.dispersion = A(val()) / 100.0
        if has("-dispsteps") and more(1):
            st.dispsteps = I(val())
        if has("-divergence") and more(1):
            st.hdivrange = st.vdivrange = A(val()) / 1000.0
        if has("-hdivrange") and more(1):
            st.hdivrange = A(val()) / 1000.0
        if has("-vdivrange") and more(1):
            st.vdivrange = A(val()) / 1000.0
        if has("-hdivstep") and len(arg) == 9 and more(1):
            st.hdivstep = A(val()) / 1000.0
        if has("-hdivsteps") and more(1):
            st.hdivsteps = I(val())
        if has("-vdivstep") and len(arg) == 9 and more(1):
            st.vdivstep = A(val()) / 1000.0
        if has("-vdivsteps") and more(1):
            st.vdivsteps = I(val())
        if has("-divsteps") and more(1):
            st.hdivsteps = st.vdivsteps = I(val())
        if has("-round_div"):
            st.round_div = True
        if has("-square_div"):
            st.round_div = False
        if has("-adc") and more(1):
            st.adc_offset = A(val())
        if has("-phi") and len(arg) == 4 and more(1):
            st.phi0 = A(val()) / RTD
        if has("-osc") and more(1):
            st.osc = A(val()) / RTD
        if has("-phistep") and len(arg) == 8 and more(1):
            st.phistep = A(val()) / RTD
        if has("-phisteps") and more(1):
            st.phisteps = I(val())
        if has("-dmin") and more(1):
            st.dmin = A(val()) * 1e-10
        if has("-mat") and more(1):
            st.matfilename = val()
        if has("-hkl") and more(1):
            st.hklfilename = val()
        if has("-default_F") and more(1):
            st.default_F = A(val())
        if has("-dump") and more(1):
            st.dumpfilename = val()
        if has("-img") and more(1):
            st.imgfilename = val()
        if has("-stol") and len(arg) == 5 and more(1):
            st.stolfilename = val()
        if has("-4stol") and len(arg) == 6 and more(1):
            st.stolfilename = val()
        if has("-Q") and len(arg) == 2 and more(1):
            st.stolfilename = val()
        if has("-sourcefile") and more(1):
            st.sourcefilename = val()
        if (has("-floatfile") or has("-floatimage")) and more(1):
            st.floatfilename = val()
        if (has("-intfile") or has("-intimage")) and more(1):
            st.intfilename = val()
        if (has("-pgmfile") or has("-pgmimage")) and more(1):
            st.pgmfilename = val()
            st.write_pgm = True
        if (has("-noisefile") or has("-noiseimage")) and more(1):
            st.noisefilename = val()
            st.calculate_noise = True
        if has("-nonoise"):
            st.calculate_noise = False
        if has("-nopgm"):
            st.write_pgm = False
        if has("-scale") and more(1):
            st.intfile_scale = A(val())
        if has("-pgmscale") and more(1):
            st.pgm_scale = A(val())
            st.write_pgm = True
        if has("-printout"):
            st.printout = True
        if arg == "-noprogress":
            st.progress_meter = False
        if arg == "-progress":
            st.progress_meter = True
        if has("-interpolate"):
            st.interpolate = 1
        if has("-nointerpolate"):
            st.interpolate = 0
        if has("-round_xtal"):
            st.xtal_shape = "ROUND"
        if has("-square_xtal"):
            st.xtal_shape = "SQUARE"
        if has("-gauss_xtal"):
            st.xtal_shape = "GAUSS"
        if has("-binary_spots") or has("-tophat_spots"):
            st.xtal_shape = "TOPHAT"
        if has("-fudge") and more(1):
            st.fudge = A(val())
        if has("-printout_pixel") and more(2):
            st.printout_pixel = (I(val(1)), I(val(2)))
        if arg == "-trace_pixel" and more(2):
            st.trace_pixel = (I(val(1)), I(val(2)))
        if has("-seed") and more(1):
            st.seed = -I(val())
        if has("-mosaic_seed") and more(1):
            st.mosaic_seed = -I(val())
        if has("-misset_seed") and more(1):
            st.misset_seed = -I(val())
        if has("-water") and more(1):
            st.water_size = A(val()) / 1e6
        if arg == "-pngfile" and more(1):
            st.pngfilename = val()
        if arg == "-noise_exact":
            st.noise_exact = True
        if arg == "-weighted_sources":
            st.weighted_sources = True
        if arg == "-dtype" and more(1):
            st.dtype = val()
        if arg in ("-h", "-help", "--help"):
            st.help = True
