"""``nanoBragg-shots``: a serial-crystallography dataset as one resumable NXmx (HDF5) stack.

usage:
  nanoBragg-shots --shots N --seed S -o OUT.h5 [--spectrum mono|sase|FILE] [options] NANOBRAGG_FLAGS…

Our options start with ``--``; every other argument is a nanoBragg flag (the
detector, crystal, structure factors, beam — exactly as the ``nanoBragg``
command reads them), including ``-expt FILE``: the detector (one or several
panels of one shape), the beam and the crystal's orientation from a DIALS
experiment list (``io.outputs.expand_expt``, as ``nanoBragg -expt``).  Shot i
gets a rotation U uniform on SO(3) applied to that crystal (or none with
``--orientations base``), a spectrum and a fluence that depend only on
(seed, i) (``shots.random_shots``), so a dataset is reproducible shot by shot.

File layout: NXmx (``io.nexus.create_nxmx``, the layout every NXmx file of this
package uses) with one image per shot, plus the per-shot ground truth:

  /entry                          NXentry, definition "NXmx"; attrs: program, version,
                                  n_shots (of the whole dataset), seed, run (JSON of every
                                  option and flag: the fingerprint)
  /entry/data/data                (n, spixels, fpixels) — (n, n_panels, slow, fast) for
                                  several panels — float32 photons/pixel, one shot per chunk
  /entry/instrument/beam/incident_wavelength          (n, C) Å: each shot's spectrum
  /entry/instrument/beam/incident_wavelength_weights  (n, C) relative weights
                                  (image = Σ w·image(λ)/Σ w)
  /entry/instrument/detector/…    panels as NXdetector_modules (NXtransformations)
  /entry/shots                    NXcollection, the ground truth of every shot:
    index                         (n,) int64: the shot's number in the dataset
    done                          (n,) uint8: 1 once the shot's image and truth are written
    orientation_U                 (n, 3, 3) rotation U (lab frame)
    reciprocal_matrix             (n, 3, 3) Å⁻¹, columns a*, b*, c* (= U·B)
    fluence                       (n,) photons/m² (the shot's scale)
    wavelengths, weights          the beam's two spectrum fields (hard links)

Resuming: rerunning the same command on an existing file keeps the shots whose
``done`` flag is set and renders the rest; the flags are flushed after every
block of shots, so a run killed at any point loses at most the block in flight
(the file of a run killed *while* HDF5 writes can be damaged: HDF5 is not
journaled).  A file made by a different command is refused (``--overwrite``
starts afresh).  Blocks always have the same shape (the last one is padded), so
a resumed file is bit-identical in content to an uninterrupted one.

Several hosts: with ``--coordinator HOST:PORT --num-processes P --process-id I``
each process calls ``jax.distributed.initialize``, renders the contiguous block
of shots ``shots.process_shot_indices`` gives it on its local devices and
writes its own part ``OUT`` with ``.partIofP`` before the suffix: a complete
NXmx file of its own shots (``/entry/shots/index`` says which).  Process 0 also
writes ``OUT`` itself as the master file: the same layout whose per-shot fields
are HDF5 virtual datasets joining the parts in shot order (the parts are found
beside it by relative name, so the folder can be moved as a whole).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from typing import Any, Optional, Sequence

import numpy as np

PROGRAM = "nanoBragg-shots"

# option: (number of values, default, help)
OPTIONS: dict[str, tuple[int, object, str]] = {
    "--shots": (1, None, "number of shots (required)"),
    "--seed": (1, 0, "dataset seed: shot i depends only on (seed, i)"),
    "-o": (1, None, "output HDF5 file (required)"),
    "--spectrum": (1, "mono", "mono | sase | FILE (two columns: wavelength Å or energy eV, weight)"),
    "--channels": (1, 32, "SASE: wavelength channels per shot"),
    "--bandwidth": (1, 2e-3, "SASE: relative FWHM of the envelope"),
    "--modes": (1, 20, "SASE: spikes per pulse"),
    "--mode-width": (1, 1e-4, "SASE: relative FWHM of one spike"),
    "--jitter": (1, 0.0, "SASE: relative r.m.s. jitter of the centre wavelength"),
    "--fluence-cv": (1, 0.0, "relative r.m.s. of a log-normal shot-to-shot fluence jitter"),
    "--orientations": (1, "random", "random (uniform on SO(3)) | base (the crystal as given, every shot)"),
    "--chunk": (1, 0, "shots per device step (0 = from the memory budget)"),
    "--block": (1, 0, "shots per write (flush) block (0 = chunk × devices)"),
    "--devices": (1, 0, "local devices sharing the shots (0 = all)"),
    "--coordinator": (1, None, "jax.distributed coordinator HOST:PORT (several hosts)"),
    "--num-processes": (1, 1, "jax.distributed: number of processes"),
    "--process-id": (1, 0, "jax.distributed: this process"),
    "--overwrite": (0, False, "start afresh even if OUT exists"),
    "--progress": (0, None, "progress bar even when stderr is not a terminal"),
    "--no-progress": (0, None, "no progress bar"),
    "--help": (0, False, "this help"),
}


class UsageError(ValueError):
    """A problem with the command line of nanoBragg-shots."""


def usage() -> str:
    lines = [f"usage: {PROGRAM} --shots N -o OUT.h5 [options] NANOBRAGG_FLAGS...", "", "options:"]
    for k, (n, d, h) in OPTIONS.items():
        lines.append(f"  {k:<16} {h}" + (f" (default {d})" if d not in (None, False) else ""))
    lines.append("every other argument is a nanoBragg flag (see nanoBragg -h)")
    return "\n".join(lines)


def split_args(argv: Sequence[str]) -> tuple[dict, list[str]]:
    """Our options (dict, converted) and the remaining nanoBragg flags (in order)."""
    opts = {k.lstrip("-").replace("-", "_"): d for k, (n, d, h) in OPTIONS.items()}
    rest: list[str] = []
    i = 0
    argv = list(argv)
    while i < len(argv):
        a = argv[i]
        if a in OPTIONS:
            n, d, _ = OPTIONS[a]
            key = a.lstrip("-").replace("-", "_")
            if n == 0:
                opts[key] = True
                if a == "--progress":
                    opts["progress"] = True
                if a == "--no-progress":
                    opts["progress"] = False
                i += 1
                continue
            if i + 1 >= len(argv):
                raise UsageError(f"{a} needs a value")
            v = argv[i + 1]
            try:
                opts[key] = v if isinstance(d, str) or d is None else type(d)(v)
            except ValueError:
                raise UsageError(f"{a}: {v!r} is not a {type(d).__name__}") from None
            i += 2
            continue
        if a.startswith("--"):
            raise UsageError(f"unknown option {a} (see {PROGRAM} --help)")
        rest.append(a)
        i += 1
    opts.pop("no_progress", None)
    if opts.get("help"):
        return opts, rest
    if opts["shots"] is None:
        raise UsageError("--shots N is required")
    opts["shots"] = int(opts["shots"])
    if opts["shots"] <= 0:
        raise UsageError("--shots must be > 0")
    if not opts["o"]:
        raise UsageError("-o OUT.h5 is required")
    if opts["num_processes"] < 1 or not 0 <= opts["process_id"] < opts["num_processes"]:
        raise UsageError("--process-id must be in [0, --num-processes)")
    if opts["orientations"] not in ("random", "base"):
        raise UsageError(f"--orientations: random or base, not {opts['orientations']!r}")
    return opts, rest


def part_path(path: str, process_id: int, num_processes: int) -> str:
    """The file process ``process_id`` writes (``path`` itself for one process)."""
    if num_processes == 1:
        return path
    stem, ext = os.path.splitext(path)
    return f"{stem}.part{process_id}of{num_processes}{ext or '.h5'}"


def _spectrum_arg(opts: dict) -> Any:
    from . import spectra

    sp = opts["spectrum"]
    if sp in ("mono", "sase"):
        return sp
    try:
        return spectra.read_spectrum(sp)
    except (OSError, ValueError) as e:
        raise UsageError(f"--spectrum {sp}: {e}") from None


def _fingerprint(opts: dict, flags: list[str]) -> str:
    keep = {k: opts[k] for k in ("shots", "seed", "spectrum", "channels", "bandwidth", "modes",
                                  "mode_width", "jitter", "fluence_cv", "orientations", "num_processes")}
    if opts["spectrum"] not in ("mono", "sase"):
        with open(opts["spectrum"], "rb") as fh:
            keep["spectrum_file"] = fh.read().decode("utf-8", "replace")
    for i, a in enumerate(flags[:-1]):
        if a == "-expt":  # the experiment list's content, not only its name
            with open(flags[i + 1], "rb") as fh:
                keep["expt_sha256"] = hashlib.sha256(fh.read()).hexdigest()
    return json.dumps(dict(options=keep, flags=list(flags)), sort_keys=True)


# Per-shot ground truth in /entry/shots: name → (shape after the shot axis, dtype, units).
# The spectrum lives in the NXbeam (linked into /entry/shots).
TRUTH_FIELDS: dict = {
    "index": ((), np.int64, None),
    "done": ((), np.uint8, None),
    "orientation_U": ((3, 3), np.float64, None),
    "reciprocal_matrix": ((3, 3), np.float64, "1/angstrom"),
    "fluence": ((), np.float64, "photons/m^2"),
}


class Layout:
    """What a dataset file holds besides pixel values: the panels (io.expt.ExptPanel), the
    ``create_nxmx`` geometry keywords and the number of spectrum channels C."""

    def __init__(self, panels: list, geometry: dict, n_channels: int) -> None:
        self.panels = panels
        self.geometry = geometry
        self.n_channels = n_channels

    @property
    def image_shape(self) -> tuple:
        """One shot's stored image: (slow, fast) or (n_panels, slow, fast)."""
        from .io.nexus import stored_shape

        p = self.panels[0]
        return stored_shape(1, len(self.panels), p.n_slow, p.n_fast)[1:]

    def create(self, fh: Any, n: int, attrs: dict, source: Optional[list] = None,
               index: Optional[np.ndarray] = None) -> None:
        """Build the file in the empty h5py file ``fh``: ``n`` shots, empty (``source`` None; the
        shot numbers ``index``) or virtual, joining ``source`` = [(relative part path, n_p)] in
        shot order."""
        from .io.nexus import Allocate, create_nxmx, put_field, require_h5py

        h5py = require_h5py()

        def field(name: str, trailing: tuple, dtype: Any) -> Any:
            if source is None:
                return Allocate((n,) + tuple(trailing), dtype)
            lay = h5py.VirtualLayout((n,) + tuple(trailing), dtype)
            at = 0
            for part, n_p in source:
                if n_p:  # a process with no shots (more processes than shots) adds nothing
                    lay[at:at + n_p] = h5py.VirtualSource(part, name, (n_p,) + tuple(trailing))
                at += n_p
            return lay

        C = self.n_channels
        create_nxmx(fh, self.panels, field("/entry/data/data", self.image_shape, np.float32),
                    wavelength=field("/entry/instrument/beam/incident_wavelength", (C,), np.float64),
                    wavelength_weights=field("/entry/instrument/beam/incident_wavelength_weights", (C,),
                                             np.float64),
                    title=f"{PROGRAM} dataset", **self.geometry)
        entry = fh["/entry"]
        entry.attrs.update(attrs)
        g = entry.create_group("shots")
        g.attrs["NX_class"] = "NXcollection"
        for name, (trailing, dtype, units) in TRUTH_FIELDS.items():
            put_field(g, name, field(f"/entry/shots/{name}", trailing, dtype), units)
        beam = entry["instrument/beam"]
        g["wavelengths"] = beam["incident_wavelength"]  # hard links: one spectrum, two names
        g["weights"] = beam["incident_wavelength_weights"]
        if index is not None:
            g["index"][...] = index


def _layout(exp: Any, expt_model: Any, n_channels: int) -> Layout:
    from .io import expt as expt_io
    from .io.nexus import simulation_geometry

    truth = expt_io.model_from_experiment(exp, expt_model.panels if expt_model is not None else None)
    return Layout(list(truth.panels), simulation_geometry(exp, truth), n_channels)


def _create(path: str, layout: Layout, n: int, attrs: dict, source: Optional[list] = None,
            index: Optional[np.ndarray] = None) -> None:
    """Write a new dataset (or master) file atomically: no partial file on failure."""
    from .io._files import atomic_write
    from .io.nexus import require_h5py

    h5py = require_h5py()

    def write(tmp: str) -> None:
        with h5py.File(tmp, "w") as fh:
            layout.create(fh, n, attrs, source, index)

    atomic_write(path, write)


def _open(path: str, opts: dict, fp: str, layout: Layout, mine: np.ndarray, attrs: dict) -> Any:
    """The part file of this process, opened for writing (created when new)."""
    import h5py

    if os.path.exists(path) and not opts["overwrite"]:
        try:
            f = h5py.File(path, "r+")
        except OSError as e:
            raise UsageError(f"{path}: cannot be opened to resume ({e}); use --overwrite to replace it") from None
        if "/entry/shots/done" not in f or f["/entry"].attrs.get("run") != fp:
            f.close()
            raise UsageError(f"{path} was written by a different command (use --overwrite to replace it)")
        return f
    _create(path, layout, len(mine), attrs, index=mine)
    return h5py.File(path, "r+")


def write_master(path: str, layout: Layout, n_shots: int, num_processes: int, attrs: dict) -> None:
    """``path``: the NXmx master file joining the parts of ``num_processes`` processes (virtual
    datasets in shot order; parts referred to by relative name, beside the master)."""
    from .shots import process_shot_indices

    base = os.path.basename
    source = [(base(part_path(path, p, num_processes)), len(process_shot_indices(n_shots, p, num_processes)))
              for p in range(num_processes)]
    _create(path, layout, n_shots, dict(attrs, parts=json.dumps([s for s, _ in source])), source)


def _check_master_target(path: str, opts: dict) -> None:
    """Refuse to replace a file at the master's name that is not a master (unless --overwrite)."""
    if not os.path.exists(path) or opts["overwrite"]:
        return
    import h5py

    try:
        with h5py.File(path, "r") as f:
            is_master = "parts" in f["/entry"].attrs
    except (OSError, KeyError):
        is_master = False
    if not is_master:
        raise UsageError(f"{path} exists and is not a master file of parts (use --overwrite to replace it)")


def run(argv: Sequence[str]) -> int:
    """The command: returns the exit status."""
    opts, flags = split_args(argv)
    if opts.get("help"):
        print(usage())
        return 0
    spectrum = _spectrum_arg(opts)
    from .io.outputs import expand_expt

    user_flags = list(flags)
    flags, expt_model = expand_expt(flags)
    if expt_model is not None and len({(p.n_fast, p.n_slow, p.pixel_size) for p in expt_model.panels}) != 1:
        raise UsageError("-expt: panels of different shapes or pixel sizes need one dataset per shape "
                         "(not yet supported)")
    if opts["coordinator"]:
        import jax

        jax.distributed.initialize(coordinator_address=opts["coordinator"],
                                   num_processes=opts["num_processes"],
                                   process_id=opts["process_id"], initialization_timeout=300)
    import jax

    from .experiment import from_cli_args
    from .simulate import enable_compilation_cache

    # a resumed (or repeated) run loads the compiled renderer instead of compiling it again
    enable_compilation_cache(min_compile_time_secs=1.0)
    from .shots import choose_chunk, process_shot_indices, random_shots, shot_setup, simulate_shots

    exp = from_cli_args(flags)
    if exp.params is None:
        print(usage())
        return 0
    from .cli import check_cell, check_experiment

    check_cell(exp)  # the nanoBragg command's checks of values known after parsing
    check_experiment(exp)
    setup, params = exp.setup, exp.params
    stack = None
    if expt_model is not None and len(expt_model.panels) > 1:
        from .panels import PanelStack

        stack = PanelStack.from_panels(expt_model.panels)
    n = opts["shots"]
    n_channels = (1 if spectrum == "mono" else opts["channels"] if spectrum == "sase"
                  else spectrum.wavelengths.size)
    layout = _layout(exp, expt_model, n_channels)
    n_dev = opts["devices"] or len(jax.local_devices())
    n_dev = max(1, min(n_dev, len(jax.local_devices())))
    P, me = opts["num_processes"], opts["process_id"]
    mine = process_shot_indices(n, me, P)
    chunk = opts["chunk"]
    if not chunk:
        st = shot_setup(setup, n_channels)
        if stack is not None:
            from .panels import panel_setup

            st = panel_setup(st, stack)
        chunk = choose_chunk(st, max(1, len(mine) // n_dev), 256 << 20, 8,
                             1 if stack is None else stack.n_panels)[0]
    block = opts["block"] or chunk * n_dev
    from . import __version__

    fp = _fingerprint(opts, user_flags)
    attrs = dict(program=PROGRAM, version=__version__, n_shots=n, seed=opts["seed"], run=fp)
    path = part_path(opts["o"], me, P)
    if P > 1 and me == 0:
        _check_master_target(opts["o"], opts)
    fresh = opts["overwrite"] or not os.path.exists(path)
    f = _open(path, opts, fp, layout, mine, attrs)
    written = 0
    try:
        if P > 1 and me == 0:
            write_master(opts["o"], layout, n, P, attrs)
        done = f["/entry/shots/done"][...]
        index = f["/entry/shots/index"][...]
        todo = [k for k in range(len(index)) if not done[k]]
        bar = None
        show = opts["progress"] if opts["progress"] is not None else sys.stderr.isatty()
        if show:
            from tqdm import tqdm

            bar = tqdm(total=len(index), initial=len(index) - len(todo), unit="shot", desc=PROGRAM)
        g, d = f["/entry/shots"], f["/entry/data/data"]
        U = None if opts["orientations"] == "random" else np.broadcast_to(np.eye(3), (block, 3, 3))
        for b in range(0, len(todo), block):
            rows = todo[b:b + block]
            # every block has the same shape (the last one repeats its last shot) so that
            # one compiled program renders every shot: a resumed file is bit-identical
            full = [int(index[k]) for k in rows]
            full += [full[-1]] * (block - len(full))
            sh = random_shots(setup, params, len(full), opts["seed"], indices=full,
                              spectrum=spectrum, n_channels=opts["channels"],
                              bandwidth=opts["bandwidth"], n_modes=opts["modes"],
                              mode_width=opts["mode_width"], jitter=opts["jitter"],
                              fluence_cv=opts["fluence_cv"], orientations=U)
            imgs = np.asarray(simulate_shots(setup, params, sh, devices=n_dev, chunk=chunk, panels=stack))
            k = len(rows)
            if not np.all(np.isfinite(imgs[:k].astype(np.float32))):
                raise UsageError(f"shots {full[0]}…{full[k - 1]}: the rendered images have pixels that are not "
                                 "finite (NaN or Inf); check -fluence, -default_F/-hkl, -N and -water "
                                 "(or -dtype float64)")
            sel = np.asarray(rows)
            for j, r in enumerate(rows):  # one shot per chunk of the stored stack
                d[r] = imgs[j].astype(np.float32)
            g["orientation_U"][sel] = sh.U[:k]
            g["reciprocal_matrix"][sel] = sh.recip_matrix[:k]
            g["wavelengths"][sel] = sh.wavelengths[:k]
            g["weights"][sel] = sh.weights[:k]
            g["fluence"][sel] = sh.fluence[:k]
            f.flush()
            g["done"][sel] = 1
            f.flush()
            written += k
            if bar is not None:
                bar.update(k)
            else:
                print(f"{PROGRAM}: {b + k}/{len(todo)} shots written to {path}", flush=True)
        if bar is not None:
            bar.close()
        if todo:
            import datetime as _dt

            f["/entry/end_time"][()] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    except BaseException:
        f.close()
        if fresh and not written:  # a run that wrote nothing leaves no file behind
            os.unlink(path)
        raise
    finally:
        if f.id.valid:
            f.close()
        if opts["coordinator"]:
            jax.distributed.shutdown()
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Console entry point ``nanoBragg-shots`` (also callable as ``main(argv)`` from Python)."""
    import jax

    from .flags import FlagError
    from .io.errors import InputFileError

    console = argv is None
    argv = sys.argv[1:] if console else list(argv)
    from .cli import _dtype_of, _threads_of, _use_cores

    # Process-wide JAX settings belong to the entry point, not to run(): float64 unless
    # -dtype float32 (put back afterwards when called from Python, as nanoBragg does), and,
    # when the command owns its process, one CPU device per core (or --devices N) — the shot
    # axis is sharded over devices, and one device alone does not keep two cores busy
    # (2 cores: 2,071 shots/s on 2 devices against 1,404 on one; docs/shots.md).
    previous = bool(jax.config.jax_enable_x64)
    try:
        if console:
            opts, _ = split_args(argv)
            _use_cores(jax, opts["devices"] or _threads_of([]))
        jax.config.update("jax_enable_x64", _dtype_of(argv) == "float64")
        return run(argv)
    except (UsageError, FlagError, InputFileError) as e:
        print(f"{PROGRAM}: error: {e}", file=sys.stderr)
        return 2
    finally:
        if not console:
            jax.config.update("jax_enable_x64", previous)


if __name__ == "__main__":
    sys.exit(main())
