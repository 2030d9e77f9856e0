"""The ``nanoBragg`` command: the C program's flags → render → the C program's output files.

Outputs, as the C program writes them (defaults in brackets):

* ``-floatfile`` [floatimage.bin]: raw float32 photons per pixel, always written;
* ``-intfile`` [intimage.img]: SMV image, value × scale + adc rounded and clipped to 16 bits,
  always written;
* ``-pgmfile`` [image.pgm]: 8-bit preview, written unless ``-nopgm``;
* ``-noisefile`` [noiseimage.img]: SMV image with Poisson noise, written unless ``-nonoise``;
* ``-pngfile`` (ours, no default): the PGM preview as a PNG.

Every output is written atomically (temporary file in the same folder, then rename) and only
after the whole command has succeeded; every bad input ends the program with one line
``nanoBragg: error: ...`` on stderr and exit status 2, before any output is written.
"""

from __future__ import annotations

import math
import os
import re
import sys
import threading
import time
from typing import Optional, Sequence, TextIO

import numpy as np

EXIT_USAGE = 2
_HELP_FLAGS = ("-h", "-help", "--help")


class CLIError(Exception):
    """A problem that ends the command with one message line (exit status 2)."""


# ---------------------------------------------------------------------------------------------
# help
# ---------------------------------------------------------------------------------------------

_GROUP_TITLES = {
    "crystal": "Crystal",
    "beam": "Beam",
    "detector": "Detector",
    "output": "Output",
    "misc": "Other",
}


def help_text(width: int = 100) -> str:
    """Usage and every flag with its value(s), units and default, generated from flags.FLAGS."""
    from .flags import FLAGS

    lines = [
        "usage: nanoBragg -cell a b c alpha beta gamma (or -mat FILE) -hkl FILE (or -default_F F) [flags]",
        "",
        "Simulates the diffraction image of a perfect-lattice nanocrystal (the nanoBragg C program,",
        "rebuilt on JAX).  Flags and outputs follow the C program; lengths in mm, angles in degrees,",
        "wavelength in Angstrom unless stated.  Writes floatimage.bin, intimage.img, image.pgm and",
        "noiseimage.img by default (see -nopgm, -nonoise).",
    ]
    groups: dict[str, list] = {}
    for spec in FLAGS:
        groups.setdefault(spec.group, []).append(spec)
    for group in ("crystal", "beam", "detector", "output", "misc"):
        specs = groups.get(group, [])
        if not specs:
            continue
        lines += ["", _GROUP_TITLES.get(group, group.title()) + ":"]
        for spec in specs:
            lines.append(_help_entry(spec))
    lines += [
        "",
        "Exit status: 0 on success, 2 on a bad flag, value or input file (one line on stderr).",
        "Environment: NANOBRAGG_JAX_CACHE=0 (or a folder) controls the compiled-kernel cache",
        "(default ~/.cache/nanobragg-jax); NANOBRAGG_DEBUG=1 shows a traceback on internal errors.",
        "Full reference: docs/cli.md.",
    ]
    return "\n".join(lines) + "\n"


def _value_words(spec) -> str:
    if spec.kind == "flag":
        return ""
    if spec.names[0] == "-cell":
        return "a b c al be ga"
    if spec.kind == "misset":
        return "x y z|random"
    if spec.kind == "str":
        return "FILE"
    if spec.kind == "pivot":
        return "beam|sample"
    if spec.kind == "dtype":
        return "float64|float32"
    if spec.kind == "abs":
        return "DEPTH|inf"
    if spec.names[0] in ("-printout_pixel",):
        return "f s"
    if spec.names[0] in ("-trace_pixel",):
        return "s f"
    if spec.names[0] == "-roi":
        return "xmin xmax ymin ymax"
    word = "N" if spec.kind == "int" else "X"
    return " ".join([word] * spec.nargs)


def _help_entry(spec) -> str:
    names = " ".join(spec.names)
    values = _value_words(spec)
    left = f"  {names} {values}".rstrip()
    details = spec.help
    extras = []
    if spec.units and spec.units != "file":
        extras.append(f"units: {spec.units}")
    if spec.default:
        extras.append(f"default: {spec.default}")
    if extras:
        details += " [" + "; ".join(extras) + "]"
    import textwrap

    body = textwrap.wrap(details, width=max(40, 100 - 34)) or [""]
    pad = " " * 34
    if len(left) < 34:
        first = [f"{left:<34}{body[0]}"]
    else:
        first = [left, pad + body[0]]
    return "\n".join(first + [pad + b for b in body[1:]])


# ---------------------------------------------------------------------------------------------
# command-line checks the library does not make
# ---------------------------------------------------------------------------------------------

# flag -> (lower bound, inclusive?) : values must be > bound (or >= when inclusive)
_POSITIVE = {
    "-pixel": 0.0, "-distance": 0.0, "-close_distance": 0.0, "-detsize": 0.0, "-detsize_f": 0.0,
    "-detsize_s": 0.0, "-detpixels": 0.0, "-detpixels_f": 0.0, "-detpixels_x": 0.0,
    "-detpixels_s": 0.0, "-detpixels_y": 0.0, "-N": 0.0, "-Na": 0.0, "-Nb": 0.0, "-Nc": 0.0,
    "-xtalsize": 0.0, "-xtal_size": 0.0, "-samplesize": 0.0, "-sample_size": 0.0,
    "-xtal_thick": 0.0, "-xtal_x": 0.0, "-sample_thick": 0.0, "-sample_x": 0.0,
    "-xtal_width": 0.0, "-xtal_y": 0.0, "-sample_width": 0.0, "-sample_y": 0.0, "-width": 0.0,
    "-xtal_height": 0.0, "-xtal_z": 0.0, "-sample_height": 0.0, "-sample_z": 0.0, "-height": 0.0,
    "-lambda": 0.0, "-wave": 0.0, "-wavelength": 0.0, "-energy": 0.0, "-beamsize": 0.0,
    "-fudge": 0.0, "-mosaic_domains": 0.0, "-mosaic_dom": 0.0,
}
_NON_NEGATIVE = (
    "-oversample", "-mosaic", "-mosaicity", "-mosaic_spread", "-osc", "-phisteps", "-phistep",
    "-dispersion", "-dispsteps", "-divergence", "-hdivrange", "-vdivrange", "-hdivstep", "-vdivstep",
    "-hdivsteps", "-vdivsteps", "-divsteps", "-fluence", "-flux", "-exposure", "-water",
    "-detector_thick", "-detector_thicksteps", "-thicksteps", "-dmin", "-default_F",
)
_OUTPUT_FLAGS = {
    "-floatfile": "floatfile", "-floatimage": "floatfile", "-intfile": "intfile",
    "-intimage": "intfile", "-noisefile": "noisefile", "-noiseimage": "noisefile",
    "-pgmfile": "pgmfile", "-pgmimage": "pgmfile", "-pngfile": "pngfile",
}


def check_values(argv: Sequence[str]) -> None:
    """Reject sizes and counts the C program would silently misuse (zero, negative)."""
    from .flags import FLAGS, FlagError

    by_name = {n: spec for spec in FLAGS for n in spec.names}
    i = 0
    while i < len(argv):
        arg = argv[i]
        spec = by_name.get(arg)
        if spec is None or spec.kind == "flag":
            i += 1
            continue
        nargs = spec.nargs
        if arg == "-cell":
            nargs = 0
            while nargs < 6 and i + 1 + nargs < len(argv) and re.match(
                    r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$", argv[i + 1 + nargs]):
                nargs += 1
        values = argv[i + 1:i + 1 + nargs]
        if spec.kind in ("num", "int") and len(values) == 1:
            x = float(values[0])
            if arg in _POSITIVE and not x > _POSITIVE[arg]:
                raise FlagError(f"{arg}: {values[0]} must be positive")
            if arg in _NON_NEGATIVE and x < 0:
                raise FlagError(f"{arg}: {values[0]} must not be negative")
        if arg == "-cell":
            nums = [float(v) for v in values]
            if any(v <= 0 for v in nums[:3]):
                raise FlagError("-cell: cell lengths a b c must be positive")
            if any(not (0 < v < 180) for v in nums[3:6]):
                raise FlagError("-cell: cell angles must lie between 0 and 180 degrees")
        if arg == "-roi" and len(values) == 4:
            xmin, xmax, ymin, ymax = (int(v) for v in values)
            if min(xmin, ymin) < 0:
                raise FlagError("-roi: xmin xmax ymin ymax must not be negative")
            if xmax < xmin or ymax < ymin:
                raise FlagError("-roi: xmin xmax ymin ymax must satisfy xmin <= xmax and ymin <= ymax")
        if arg in _VECTOR_FLAGS and len(values) == 3 and all(float(v) == 0.0 for v in values):
            raise FlagError(f"{arg}: the zero vector has no direction")
        if arg in _OUTPUT_FLAGS and values and values[0] == "":
            raise FlagError(f"{arg}: empty file name")
        i += 1 + (nargs if spec.kind != "misset" or not values or not values[0].lower().startswith("rand") else 1)


def check_cell(exp) -> None:
    """The cell angles must describe a real parallelepiped (positive volume)."""
    from .flags import FlagError

    if exp.setup.orientation != "cell":
        return
    cell = np.asarray(exp.params.cell, np.float64)
    al, be, ga = (math.radians(x) for x in cell[3:])
    if not (al + be + ga < 2 * math.pi and al + be > ga and be + ga > al and ga + al > be):
        raise FlagError("-cell: impossible cell angles (each must be less than the sum of the other two, "
                        "and their sum less than 360 degrees)")
    if not np.all(np.isfinite(np.asarray(exp.info.get("real_vectors", np.ones(3))))):
        raise FlagError("-cell: the cell gives non-finite lattice vectors")


MAX_SUBPATHS = 10**8
"""Refuse renders whose single pixel needs more sub-paths than this (memory of one tile)."""

_VECTOR_FLAGS = ("-fdet_vector", "-sdet_vector", "-odet_vector", "-beam_vector", "-polar_vector",
                 "-spindle_axis", "-twotheta_axis")


def check_experiment(exp) -> None:
    """Values only known after parsing: finite structure factors, a non-empty ROI."""
    from .flags import FlagError

    grid = np.asarray(exp.params.F_grid)
    if not np.all(np.isfinite(grid)) or not math.isfinite(float(exp.params.default_F)):
        raise FlagError("-hkl/-default_F: structure factors must be finite numbers (found NaN or Inf)")
    setup = exp.setup
    info = exp.info
    geometry = [info.get(k) for k in ("distance", "close_distance", "pix0", "fdet", "sdet", "odet")]
    if not all(np.all(np.isfinite(np.asarray(v, np.float64))) for v in geometry if v is not None) or \
            not (0.0 < abs(float(info.get("distance", 1.0))) < 1e6):
        raise FlagError("detector geometry: the beam does not meet the detector plane at a finite distance "
                        "(check -twotheta, -detector_rot*, the detector vectors and -close_distance)")
    if setup.subpaths_per_pixel > MAX_SUBPATHS:
        auto = "automatic " if "-oversample" not in exp.options.get("given", set()) else ""
        raise FlagError(
            f"a pixel would need {setup.subpaths_per_pixel:.3g} sub-paths (layers x sources x mosaic domains x "
            f"phi steps x {auto}oversample^2 = {setup.thicksteps} x {setup.n_sources} x {setup.mosaic_domains} x "
            f"{setup.phisteps} x {setup.oversample}^2), more than {MAX_SUBPATHS:.0e}; "
            "give a smaller -oversample or check the geometry")
    fmin, fmax, smin, smax = setup.roi
    if fmin > setup.fpixels - 1 or smin > setup.spixels - 1:
        raise FlagError(f"-roi {fmin} {fmax} {smin} {smax}: selects no pixel of the "
                        f"{setup.fpixels}x{setup.spixels} detector")


def check_outputs(paths: dict[str, str]) -> None:
    """Every output can be created: its folder exists and is writable, the name is no folder."""
    for flag, path in paths.items():
        folder = os.path.dirname(os.path.abspath(path)) or "."
        if os.path.isdir(path):
            raise CLIError(f"{flag} {path}: is a directory")
        if not os.path.isdir(folder):
            raise CLIError(f"{flag} {path}: folder {folder} does not exist")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise CLIError(f"{flag} {path}: folder {folder} is not writable")
        if os.path.exists(path) and not os.access(path, os.W_OK) and not os.access(folder, os.W_OK):
            raise CLIError(f"{flag} {path}: file is not writable")


# ---------------------------------------------------------------------------------------------
# progress
# ---------------------------------------------------------------------------------------------


class Spinner:
    """An elapsed-time spinner on stderr while one render runs (only on a terminal).

    The render is one compiled call, so there is no honest fraction-done to show; the
    spinner says that work is going on and for how long.  It starts after ``delay`` seconds so
    that quick renders print nothing.
    """

    def __init__(self, label: str, stream: TextIO, enabled: bool, delay: float = 0.5):
        self.label, self.stream, self.enabled, self.delay = label, stream, enabled, delay
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._shown = False

    def __enter__(self):
        if self.enabled:
            self._t0 = time.monotonic()
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def _run(self):
        frames = "|/-\\"
        k = 0
        if self._stop.wait(self.delay):
            return
        while not self._stop.is_set():
            dt = time.monotonic() - self._t0
            self.stream.write(f"\r{self.label} {frames[k % 4]} {dt:6.1f} s")
            self.stream.flush()
            self._shown = True
            k += 1
            self._stop.wait(0.2)

    def __exit__(self, *exc):
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            if self._shown:
                dt = time.monotonic() - self._t0
                self.stream.write(f"\r{self.label} done in {dt:.1f} s\n")
                self.stream.flush()
        return False


def _progress_wanted(options: dict, stream: TextIO) -> bool:
    if not options.get("progress", True) or options.get("printout"):
        return False
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


# ---------------------------------------------------------------------------------------------
# the command
# ---------------------------------------------------------------------------------------------


def _enable_compilation_cache() -> None:
    """Persist compiled kernels across runs (set NANOBRAGG_JAX_CACHE=0 to disable, or a folder)."""
    import jax

    choice = os.environ.get("NANOBRAGG_JAX_CACHE", "")
    if choice.lower() in ("0", "off", "no", "false"):
        return
    try:
        if jax.config.jax_compilation_cache_dir:
            return
    except AttributeError:
        pass
    folder = choice or os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"),
                                    "nanobragg-jax")
    try:
        os.makedirs(folder, exist_ok=True)
        if not os.access(folder, os.W_OK):
            return
        jax.config.update("jax_compilation_cache_dir", folder)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    except Exception:  # a cache is an optimisation only
        pass


def _dtype_of(argv: Sequence[str]) -> str:
    for i, a in enumerate(argv):
        if a == "-dtype" and i + 1 < len(argv) and argv[i + 1] == "float32":
            return "float32"
    return "float64"


def _one_line(msg: str) -> str:
    return " ".join(str(msg).split())


def _seed(options: dict) -> int:
    seed = options.get("seed")
    if seed is None:
        seed = -int(time.time())
    return int(seed)


def run(argv: Sequence[str], out: TextIO, err: TextIO) -> int:
    """Parse, render, write; raise on any bad input (main() turns that into one line)."""
    from . import report
    from .flags import validate_argv

    validate_argv(list(argv))
    check_values(argv)
    dump = report._c_state(argv).dumpfilename
    dump_existed = os.path.exists(dump)
    try:
        return _render_and_write(argv, out, err)
    except BaseException:
        # a structure-factor cache written by this failed run would poison the next run
        # (it is read whenever -hkl is absent): take it back
        if not dump_existed and os.path.isfile(dump):
            try:
                os.remove(dump)
            except OSError:
                pass
        raise


def _render_and_write(argv: Sequence[str], out: TextIO, err: TextIO) -> int:
    from . import from_cli_args, report, simulate
    from .flags import FlagError

    clock = _Clock(err)
    from .io import outputs as panel_io  # panels branch: -expt / -exptout / -h5file / -cbffile

    argv, expt_model = panel_io.expand_expt(argv)
    exp = from_cli_args(list(argv))
    clock.lap("parse flags and inputs")
    check_cell(exp)
    check_experiment(exp)
    opts = exp.options
    opts["argv"] = list(argv)
    setup = exp.setup

    outputs = {"-floatfile": opts["floatfile"], "-intfile": opts["intfile"]}
    if opts.get("write_pgm"):
        outputs["-pgmfile"] = opts["pgmfile"]
    if opts.get("calculate_noise"):
        outputs["-noisefile"] = opts["noisefile"]
    if opts.get("pngfile"):
        outputs["-pngfile"] = opts["pngfile"]
    extra_outputs = panel_io.output_paths(argv)
    panel_io.precheck(extra_outputs, expt_model)
    outputs.update(extra_outputs)
    check_outputs(outputs)

    for name, pix in (("-printout_pixel", opts.get("printout_pixel")), ("-trace_pixel", opts.get("trace_pixel"))):
        if pix is None or tuple(pix) == (-1, -1):
            continue
        a, b = pix
        s, f = (b, a) if name == "-printout_pixel" else (a, b)
        if not (0 <= s < setup.spixels and 0 <= f < setup.fpixels):
            order = "f s" if name == "-printout_pixel" else "s f"
            raise FlagError(f"{name} {a} {b}: ({order}) is outside the {setup.fpixels}x{setup.spixels} detector")

    if opts.get("calculate_noise"):
        opts["seed_used"] = _seed(opts)

    from . import __version__

    banner = f"nanoBragg (nanobragg-jax {__version__}, JAX rebuild of the nanoBragg simulator)"
    for line in report.summary_lines(exp, argv, banner=banner):
        print(line, file=out)
    out.flush()

    label = f"rendering {setup.fpixels}x{setup.spixels} pixels"
    with Spinner(label, err, _progress_wanted(opts, err)):
        clock.lap("checks and summary")
        if expt_model is not None and len(expt_model.panels) > 1:
            exp, panel_images, image = panel_io.render_expt_panels(exp, expt_model)
            setup = exp.setup
        else:
            image = np.asarray(simulate(exp.setup, exp.params))
            panel_images = [image]
        clock.lap("render (compile + run)")
    image32 = image.astype(np.float32)
    bad = int(np.count_nonzero(~np.isfinite(image32)))
    if bad:
        print(f"nanoBragg: warning: {bad} pixels are not finite (NaN or Inf); check the geometry", file=err)

    # -printout / -printout_pixel / -trace_pixel: between the render and the statistics, like C
    from . import trace

    pp = opts.get("printout_pixel")
    if opts.get("printout"):
        pixel = None if pp is None or tuple(pp) == (-1, -1) or pp[0] < 0 else tuple(pp)
        for line in trace.c_printout_lines(exp, image32, pixel):
            print(line, file=out)
        if pixel is not None:
            for line in trace.trace_lines(exp, pixel[1], pixel[0], image32):
                print(line, file=out)
    tp = opts.get("trace_pixel")
    if tp is not None:
        for line in trace.trace_lines(exp, int(tp[0]), int(tp[1]), image32):
            print(line, file=out)

    clock.lap("traces")
    stats = report.image_statistics(image32, exp)
    omega = exp.info.get("panels_solid_angle") or report.solid_angle_sum(exp)
    int_scale = report.auto_int_scale(float(opts.get("intfile_scale") or 0.0), stats.max_I)
    adc = float(opts.get("adc", 40.0))
    ints = report.int_image(image32, setup, int_scale, adc)
    header = report.header_items(exp)
    roi = tuple(setup.roi)
    pgm_scale = report.auto_pgm_scale(float(opts.get("pgm_scale") or 0.0), int_scale, stats.rmsd)
    from .io import pgm as pgm_io
    from .io import smv as smv_io
    from .io._files import atomic_write_bytes

    preview = pgm_io.pgm_pixels(image32, pgm_scale, roi) if (opts.get("write_pgm") or opts.get("pngfile")) else None
    noise = None
    clock.lap("statistics and integer images")
    if opts.get("calculate_noise"):
        noise = _noise(exp, image32, adc, opts["seed_used"])
        clock.lap("noise")

    warning = trace.interpolation_warning(exp)
    if setup.interpolate:
        clock.lap("interpolation range check")
    for line in warning or [""]:
        print(line, file=out)
    for line in report.statistics_lines(stats, omega):
        print(line, file=out)
    n_pixels = setup.spixels * setup.fpixels
    print(f"writing {opts['floatfile']} as {n_pixels} 4-byte floats", file=out)
    atomic_write_bytes(opts["floatfile"], image32.astype("<f4").tobytes())
    for line in report.max_mean_lines(stats):
        print(line, file=out)
    print(f"intfile_scale = {report.g(int_scale)}", file=out)
    print(f"writing {opts['intfile']} as 2-byte integers", file=out)
    smv_io.write_smv(opts["intfile"], ints, header)
    if opts.get("write_pgm"):
        print(f"pgm_scale = {report.g(pgm_scale)}", file=out)
        print(f"writing {opts['pgmfile']} as 1-byte integers", file=out)
        atomic_write_bytes(opts["pgmfile"], pgm_io.pgm_bytes(image32, pgm_scale, roi))
    if opts.get("pngfile"):
        print(f"writing {opts['pngfile']} as 8-bit PNG (scaled by {report.g(pgm_scale)})", file=out)
        pgm_io.write_png(opts["pngfile"], preview)
    if noise is not None:
        data, photons, overloads = noise
        print("%.0f photons on noise image (%d overloads)" % (photons, overloads), file=out)
        print(f"writing {opts['noisefile']} as 2-byte integers", file=out)
        smv_io.write_smv(opts["noisefile"], data, header)
    panel_io.write_outputs(extra_outputs, exp, expt_model, panel_images, ints, out)
    out.flush()
    clock.lap("write files")
    clock.total()
    return 0


class _Clock:
    """Phase timings on stderr when NANOBRAGG_TIMING is set (for profiling the command)."""

    def __init__(self, stream: TextIO):
        self.stream = stream
        self.on = bool(os.environ.get("NANOBRAGG_TIMING"))
        self.t0 = self.t = time.perf_counter()

    def lap(self, what: str) -> None:
        if self.on:
            now = time.perf_counter()
            print(f"timing: {what:32s} {now - self.t:7.3f} s", file=self.stream)
            self.t = now

    def total(self) -> None:
        if self.on:
            print(f"timing: {'total after imports':32s} {time.perf_counter() - self.t0:7.3f} s", file=self.stream)


def _noise(exp, image32: np.ndarray, adc: float, seed: int):
    """The noise image: C-identical (-noise_exact) or the fast jax.random path."""
    from . import noise as noise_mod

    roi = tuple(exp.setup.roi)
    if exp.options.get("noise_exact"):
        statics = None
        if seed > 0:
            statics = _statics_before_noise(exp)
        return noise_mod.noise_image_exact(image32, seed, adc, roi, statics)
    import jax

    key = jax.random.PRNGKey(np.uint32(seed & 0xFFFFFFFF))
    return noise_mod.noise_image_fast(image32, key, adc, roi)


def _statics_before_noise(exp):
    """Replay the C program's earlier draws (mosaic domains, random misset) for a seed > 0."""
    from . import rng
    from .report import _c_state

    st = _c_state(exp.options.get("argv", []))
    misset_seed = None
    if st.misset[0] == -1.0:
        # the seed the random misset was drawn with: -misset_seed, else (as in the C program)
        # the start-up time, which we can only re-read
        misset_seed = st.misset_seed if st.misset_seed is not None else -int(time.time())
    return rng.replay_statics_before_noise(st.mosaic_seed, exp.setup.mosaic_domains, misset_seed)


class _LogStream:
    """stdout for the log: a reader that went away (``| head``) must not stop the run."""

    def __init__(self, stream: TextIO):
        self.stream = stream
        self.broken = False

    def write(self, text: str) -> int:
        if not self.broken:
            try:
                return self.stream.write(text)
            except BrokenPipeError:
                self.broken = True
            except UnicodeEncodeError:
                return self.stream.write(text.encode("ascii", "replace").decode("ascii"))
        return len(text)

    def flush(self) -> None:
        if not self.broken:
            try:
                self.stream.flush()
            except BrokenPipeError:
                self.broken = True

    def isatty(self) -> bool:
        try:
            return self.stream.isatty()
        except (AttributeError, ValueError):
            return False


def _silence_broken_stdout() -> None:
    """Point fd 1 at /dev/null so the interpreter's final flush does not complain."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``nanoBragg`` console script; returns the exit status."""
    console = argv is None
    args = [str(a) for a in (sys.argv[1:] if argv is None else argv)]
    out, err = _LogStream(sys.stdout), sys.stderr
    if not args or any(a in _HELP_FLAGS for a in args):
        out.write(help_text())
        out.flush()
        if out.broken and console:
            _silence_broken_stdout()
        return 0

    import jax

    previous = bool(jax.config.jax_enable_x64)
    jax.config.update("jax_enable_x64", _dtype_of(args) == "float64")
    if console:
        _enable_compilation_cache()
    from .flags import FlagError
    from .io.errors import InputFileError

    try:
        return run(args, out, err)
    except (FlagError, InputFileError, CLIError) as exc:
        print(f"nanoBragg: error: {_one_line(exc)}", file=err)
    except OSError as exc:
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        print(f"nanoBragg: error: {where}{_one_line(exc.strerror or exc)}", file=err)
    except (ValueError, ArithmeticError) as exc:
        print(f"nanoBragg: error: {_one_line(exc)}", file=err)
    except KeyboardInterrupt:
        print("nanoBragg: error: interrupted", file=err)
        return 130
    except MemoryError:
        print("nanoBragg: error: out of memory (try a smaller -roi, fewer sub-paths, or -dtype float32)", file=err)
    except Exception as exc:  # never a traceback
        if os.environ.get("NANOBRAGG_DEBUG"):
            raise
        if "RESOURCE_EXHAUSTED" in str(exc) or "Out of memory" in str(exc):
            print("nanoBragg: error: out of memory while rendering (try a smaller -roi, a smaller -oversample, "
                  "or -dtype float32)", file=err)
            return EXIT_USAGE
        print(f"nanoBragg: error: internal error ({type(exc).__name__}: {_one_line(exc)}); "
              "set NANOBRAGG_DEBUG=1 for a traceback", file=err)
    finally:
        err.flush()
        if out.broken and console:
            _silence_broken_stdout()
        if not console:
            jax.config.update("jax_enable_x64", previous)
    return EXIT_USAGE
