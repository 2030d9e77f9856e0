"""The ``nanoBragg`` command: the C program's flags → render → the C program's output files.

Outputs, as the C program writes them (defaults in brackets):

* ``-floatfile`` [floatimage.bin]: raw float32 photons per pixel, always written;
* ``-intfile`` [intimage.img]: SMV image, value × scale + adc rounded and clipped to 16 bits,
  always written;
* ``-pgmfile`` [image.pgm]: 8-bit preview, written unless ``-nopgm``;
* ``-noisefile`` [noiseimage.img]: SMV image with Poisson noise, written unless ``-nonoise``;
* ``-pngfile`` (ours, no default): a preview to look at — logarithmic grey scale (dark =
  bright), the beam centre as a red cross, resolution rings in blue.

Every output is written atomically (temporary file in the same folder, then rename) and only
after the whole command has succeeded; every bad input ends the program with one line
``nanoBragg: error: ...`` on stderr and exit status 2, before any output is written.
"""

from __future__ import annotations

import math
import os
import sys
import threading
import time
from typing import Optional, Sequence, TextIO

import numpy as np

from ._entry import HELP_FLAGS as _HELP_FLAGS
# help: nanobragg_jax/helptext.py (importable without numpy or JAX, for a quick -h)
from .helptext import help_text  # noqa: F401  (re-exported)

EXIT_USAGE = 2


class CLIError(Exception):
    """A problem that ends the command with one message line (exit status 2)."""


# ---------------------------------------------------------------------------------------------
# command-line checks the library does not make
# ---------------------------------------------------------------------------------------------

# Value ranges of the flags (and of -img/-mask header keys) live in one table, ranges.py, and
# are checked by flags.validate_argv; check_values adds the checks that involve several values.
def check_values(argv: Sequence[str]) -> None:
    """Checks across the values of one flag (ROI order, zero vectors); ranges: flags.validate_argv."""
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
        if spec.kind == "misset" and i + 1 < len(argv) and "rand" in argv[i + 1]:
            nargs = 1
        values = argv[i + 1:i + 1 + nargs]
        if arg == "-roi" and len(values) == 4:
            xmin, xmax, ymin, ymax = (int(v) for v in values)
            if min(xmin, ymin) < 0:
                raise FlagError("-roi: xmin xmax ymin ymax must not be negative")
            if xmax < xmin or ymax < ymin:
                raise FlagError("-roi: xmin xmax ymin ymax must satisfy xmin <= xmax and ymin <= ymax")
        if arg in _VECTOR_FLAGS and len(values) == 3 and all(float(v) == 0.0 for v in values):
            raise FlagError(f"{arg}: the zero vector has no direction")
        i += 1 + nargs


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
    check_memory(exp)
    check_magnitudes(exp)


# Params field -> the flags that set it (for "does not fit float32" messages)
_FIELD_FLAGS = {
    "fluence": "-fluence/-flux", "default_F": "-default_F", "F_grid": "-hkl", "water_size": "-water",
    "distance": "-distance", "close_distance": "-close_distance", "cell": "-cell", "N": "-N",
    "recip_matrix": "-mat", "wavelength": "-lambda", "source_wavelengths": "-sourcefile",
    "source_dirs": "-sourcefile", "beam_center": "-Xbeam/-Ybeam", "pixel_size": "-pixel",
    "thickness": "-detector_thick", "attenuation_depth": "-detector_abs",
}


def check_magnitudes(exp) -> None:
    """Every parameter fits the arithmetic's dtype, and the brightest pixel fits it too."""
    import dataclasses

    from .estimates import magnitude_problem
    from .flags import FlagError

    dtype = str(exp.options.get("dtype") or "float64")
    for f in dataclasses.fields(exp.params):
        value = np.asarray(getattr(exp.params, f.name))
        if value.dtype.kind == "f" and value.size and not np.all(np.isfinite(value)):
            flag = _FIELD_FLAGS.get(f.name, f.name)
            hint = "; use -dtype float64" if dtype == "float32" else ""
            raise FlagError(f"{flag}: the value does not fit the {dtype} arithmetic "
                            f"(largest {np.finfo(np.dtype(dtype)).max:.3g}){hint}")
    problem = magnitude_problem(exp, dtype)
    if problem:
        raise FlagError(problem)


def check_memory(exp) -> None:
    """The images of a run must fit in the memory the machine has free (estimated)."""
    from .estimates import available_memory_bytes, image_memory_bytes
    from .flags import FlagError

    need = image_memory_bytes(exp.setup)
    have = available_memory_bytes()
    if have is not None and need > have:
        s = exp.setup
        raise FlagError(f"-detpixels: a {s.fpixels}x{s.spixels} detector needs about {need / 2**30:.3g} GiB "
                        f"of memory for its images, more than the {have / 2**30:.3g} GiB available; "
                        "use fewer or larger pixels")


def check_outputs(paths: dict[str, str], inputs: Optional[dict[str, str]] = None) -> None:
    """Every output can be created and none is another output or an input (outputs.py)."""
    from .outputs import OutputError, check_output_paths

    try:
        check_output_paths(paths, inputs)
    except OutputError as exc:
        raise CLIError(str(exc)) from None


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


def _enable_compilation_cache() -> Optional[str]:
    """Persist compiled kernels across runs (set NANOBRAGG_JAX_CACHE=0 to disable, or a folder).

    Returns the folder for whole compiled programs (``_compiled.executables_on_disk``: a
    warm run loads them without tracing), inside the compilation cache; None when off.
    """
    from .simulate import enable_compilation_cache

    try:
        folder = enable_compilation_cache(keep_existing=True)
    except Exception:  # a cache is an optimisation only
        return None
    return os.path.join(folder, "programs") if folder else None


def _threads_of(argv: Sequence[str]) -> int:
    """Cores to render on: the last ``-nthreads N`` (checked later), else every core we may use."""
    n = None
    for i, a in enumerate(argv[:-1]):
        if a == "-nthreads":
            try:
                n = int(argv[i + 1])
            except ValueError:
                n = None  # validate_argv names the bad value
    if n is None or n < 1:
        try:
            n = len(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            n = os.cpu_count() or 1
    return max(1, n)


def _use_cores(jax, n: int) -> None:
    """Expose ``n`` CPU devices so that ``simulate`` spreads its tiles over ``n`` cores.

    XLA:CPU runs one program on one core; ``simulate`` divides the tiles between the CPU
    devices with ``shard_map``.  The command owns its process, so it may set this before
    JAX's backend starts (a library must leave that choice to the program; see
    docs/performance.md).
    """
    try:
        jax.config.update("jax_num_cpu_devices", int(n))
    except Exception:  # backend already started (main() called from a program): keep its devices
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
    from .outputs import planned_inputs, planned_outputs

    validate_argv(list(argv))
    check_values(argv)
    st = report._c_state(argv)
    # every output can be written, and none is another output or an input, before any work
    check_outputs(planned_outputs(st), planned_inputs(st))
    dump = st.dumpfilename
    dump_existed = os.path.exists(dump)
    reused = None
    if st.hklfilename is None and dump_existed and "-dump" not in argv:
        instead = "-default_F alone" if "-default_F" in argv else "no structure factors"
        reused = (f"nanoBragg: warning: using the structure factors cached in {dump} by an earlier -hkl run "
                  f"(as the C program does when -hkl is absent), not {instead}; delete {dump} or give -hkl")
    try:
        return _render_and_write(argv, out, err, reused)
    except BaseException:
        # a structure-factor cache written by this failed run would poison the next run
        # (it is read whenever -hkl is absent): take it back
        if not dump_existed and os.path.isfile(dump):
            try:
                os.remove(dump)
            except OSError:
                pass
        raise


def _render_and_write(argv: Sequence[str], out: TextIO, err: TextIO, cache_warning: Optional[str] = None) -> int:
    from . import from_cli_args, report, simulate
    from .flags import FlagError
    from .outputs import StagedOutputs

    clock = _Clock(err)
    from .io import outputs as panel_io  # panels branch: -expt / -exptout / -h5file / -cbffile

    argv, expt_model = panel_io.expand_expt(argv)
    exp = from_cli_args(list(argv))
    clock.lap("parse flags and inputs")
    opts = exp.options
    opts["argv"] = list(argv)
    check_cell(exp)
    check_experiment(exp)
    setup = exp.setup
    if cache_warning:
        print(cache_warning, file=err)

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

    # a pixel to print that is not on the detector: the C program prints nothing for it and
    # renders; so do we, with a warning
    outside = set()
    for name, pix in (("-printout_pixel", opts.get("printout_pixel")), ("-trace_pixel", opts.get("trace_pixel"))):
        if pix is None or tuple(pix) == (-1, -1) or (name == "-printout_pixel" and pix[0] < 0):
            continue
        a, b = pix
        s, f = (b, a) if name == "-printout_pixel" else (a, b)
        if not (0 <= s < setup.spixels and 0 <= f < setup.fpixels):
            order = "f s" if name == "-printout_pixel" else "s f"
            outside.add(name)
            print(f"nanoBragg: warning: {name} {a} {b}: ({order}) is outside the {setup.fpixels}x{setup.spixels} "
                  "detector; nothing is printed for it", file=err)

    if opts.get("calculate_noise"):
        opts["seed_used"] = _seed(opts)

    from . import __version__

    banner = f"nanoBragg (nanobragg-jax {__version__}, JAX rebuild of the nanoBragg simulator)"
    for line in report.summary_lines(exp, argv, banner=banner):
        print(line, file=out)
    if "-show_config" in argv or "-echo_config" in argv:
        from .config_echo import config_lines

        for line in config_lines(exp, argv):
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
        # the estimate before rendering should make this unreachable; never write such an image
        dtype = str(opts.get("dtype") or "float64")
        hint = " (try -dtype float64)" if dtype == "float32" else ""
        raise FlagError(f"the rendered image has {bad} pixels that are not finite (NaN or Inf){hint}; "
                        "check the geometry and the magnitudes of -fluence, -default_F/-hkl, -N and -water; "
                        "no file was written")

    # -printout / -printout_pixel / -trace_pixel: between the render and the statistics, like C
    from . import trace

    stats = report.image_statistics(image32, exp)
    pp = opts.get("printout_pixel")
    if opts.get("printout"):
        pixel = None if pp is None or tuple(pp) == (-1, -1) or pp[0] < 0 else tuple(pp)
        print("Debug output enabled (-printout): the C program's values of "
              + ("every rendered pixel follow" if pixel is None else "one pixel follow"), file=out)
        if pixel is not None:
            print(f"Limiting output to pixel fast={pixel[0]} slow={pixel[1]} (-printout_pixel f s)", file=out)
        for line in trace.c_printout_lines(exp, image32, pixel):
            print(line, file=out)
        if pixel is not None and "-printout_pixel" not in outside:
            for line in trace.trace_lines(exp, pixel[1], pixel[0], image32):
                print(line, file=out)
        print(report.printout_summary_line(stats, image32.shape), file=out)
    tp = opts.get("trace_pixel")
    if tp is not None and "-trace_pixel" not in outside:
        print(f"Tracing pixel slow={int(tp[0])} fast={int(tp[1])} (-trace_pixel s f)", file=out)
        for line in trace.trace_lines(exp, int(tp[0]), int(tp[1]), image32):
            print(line, file=out)

    clock.lap("traces")
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

    preview = _png_preview(exp, image32) if opts.get("pngfile") else None
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
    # all or nothing: every file is written beside its destination first, then all are
    # renamed into place; a failed write leaves no output (outputs.py)
    with StagedOutputs() as staged:
        print(f"writing {opts['floatfile']} as {n_pixels} 4-byte floats", file=out)
        staged.add("-floatfile", opts["floatfile"],
                   lambda tmp: atomic_write_bytes(tmp, image32.astype("<f4").tobytes()))
        print(f"Statistics of the {stats.n_rendered} rendered pixels (photons per pixel):", file=out)  # ours
        for line in report.max_mean_lines(stats):
            print(line, file=out)
        print(f"intfile_scale = {report.g(int_scale)}", file=out)
        print(f"writing {opts['intfile']} as 2-byte integers", file=out)
        staged.add("-intfile", opts["intfile"], lambda tmp: smv_io.write_smv(tmp, ints, header))
        if opts.get("write_pgm"):
            print(f"pgm_scale = {report.g(pgm_scale)}", file=out)
            print(f"writing {opts['pgmfile']} as 1-byte integers", file=out)
            staged.add("-pgmfile", opts["pgmfile"],
                       lambda tmp: atomic_write_bytes(tmp, pgm_io.pgm_bytes(image32, pgm_scale, roi)))
        if opts.get("pngfile"):
            rgb, note = preview
            print(f"writing {opts['pngfile']} as an RGB PNG preview ({note})", file=out)
            staged.add("-pngfile", opts["pngfile"], lambda tmp: pgm_io.write_png(tmp, rgb))
        if noise is not None:
            data, photons, overloads = noise
            print("%.0f photons on noise image (%d overloads)" % (photons, overloads), file=out)
            print(f"writing {opts['noisefile']} as 2-byte integers", file=out)
            staged.add("-noisefile", opts["noisefile"], lambda tmp: smv_io.write_smv(tmp, data, header))
        panel_io.write_outputs(extra_outputs, exp, expt_model, panel_images, ints, out, staged)
        staged.commit()
    out.flush()
    clock.lap("write files")
    clock.total()
    return 0


def _png_preview(exp, image32: np.ndarray):
    """The -pngfile picture (RGB array) and a log note saying what it shows."""
    from .io import pgm as pgm_io
    from .report import g

    info = exp.info
    pixel_m = float(exp.params.pixel_size) / 1000.0
    pix0, fdet, sdet, beam = (np.asarray(info[k], np.float64) for k in ("pix0", "fdet", "sdet", "beam"))
    beam_pixel = None
    normal = np.cross(fdet, sdet)
    if abs(float(beam @ normal)) > 1e-12 and pixel_m > 0:
        hit = beam * float(pix0 @ normal) / float(beam @ normal) - pix0  # beam spot, from pix0
        beam_pixel = (float(hit @ sdet) / pixel_m - 0.5, float(hit @ fdet) / pixel_m - 0.5)
    rings: list = []
    dmap = None
    try:
        dmap = pgm_io.resolution_map(image32.shape, pix0, fdet, sdet, beam, pixel_m, float(info["lambda0"]))
        rings = pgm_io.ring_resolutions(dmap)
    except (KeyError, ValueError, FloatingPointError):
        pass
    rgb = pgm_io.preview_rgb(image32, tuple(exp.setup.roi), beam_pixel, dmap, rings)
    note = "log scale, dark = bright"
    if beam_pixel is not None:
        note += f"; beam centre (red) at fast {beam_pixel[1]:.1f} slow {beam_pixel[0]:.1f}"
    if rings:
        note += "; rings (blue) at " + " ".join(g(d) for d in rings) + " A"
    return rgb, note


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
    """The noise image: C-identical (-noise_exact) or numpy's Poisson sampler (default)."""
    from . import noise as noise_mod

    roi = tuple(exp.setup.roi)
    if exp.options.get("noise_exact"):
        statics = None
        if seed > 0:
            statics = _statics_before_noise(exp)
        return noise_mod.noise_image_exact(image32, seed, adc, roi, statics)
    # numpy's compiled Poisson sampler: milliseconds per megapixel, nothing to compile
    return noise_mod.noise_image_numpy(image32, seed, adc, roi)


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


class _quiet_numerics:
    """No raw numpy/Python warnings (with source paths) reach the user.

    Floating-point trouble is checked explicitly (estimates before rendering, a finite image
    before writing), so numpy's RuntimeWarnings are silenced; any other warning is shown as one
    ``nanoBragg: warning: ...`` line without a source location.
    """

    def __init__(self, err: TextIO):
        self.err = err

    def __enter__(self):
        import warnings

        self._np = np.seterr(all="ignore")
        self._warnings = warnings.catch_warnings()
        self._warnings.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)
        err = self.err

        def show(message, category, filename, lineno, file=None, line=None):
            print(f"nanoBragg: warning: {_one_line(message)}", file=err)

        warnings.showwarning = show
        return self

    def __exit__(self, *exc):
        np.seterr(**self._np)
        self._warnings.__exit__(*exc)
        return False


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

    if console:
        _use_cores(jax, _threads_of(args))
    previous = bool(jax.config.jax_enable_x64)
    jax.config.update("jax_enable_x64", _dtype_of(args) == "float64")
    programs = _enable_compilation_cache() if console else None
    from ._compiled import executables_on_disk
    from .flags import FlagError, MissingInputError
    from .io.errors import InputFileError
    from .outputs import OutputError

    try:
        with _quiet_numerics(err), executables_on_disk(programs):
            return run(args, out, err)
    except (FlagError, InputFileError, CLIError, OutputError) as exc:
        if isinstance(exc, MissingInputError):
            # as the C program does when it has no structure factors: the message and the usage text
            out.write(f"Error: {_one_line(exc)}\n\n{help_text()}")
            out.flush()
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
